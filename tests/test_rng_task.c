/* The counter-based RNG and the task sampler: known answers, reproducible
 * and independent streams, sampler moments and the task's structure. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/rng.h"
#include "icasweep/task.h"
#include "testutil.h"

static void test_known_answer(void)
{
    /* Random123's known-answer vector for philox4x32-10 with a zero counter
     * and key: our (seed 0, stream 0) is exactly that block. */
    rng_state s;
    rng_init(&s, 0, 0);
    const uint32_t want[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
    for (int i = 0; i < 4; i++) {
        uint32_t got = rng_u32(&s);
        CHECK(got == want[i], "philox word %d: %08x, want %08x", i, got, want[i]);
    }
}

static void test_streams(void)
{
    rng_state a, b, c;
    rng_init(&a, 42, rng_stream(RNG_TRAIN, 7, 3));
    rng_init(&b, 42, rng_stream(RNG_TRAIN, 7, 3));
    rng_init(&c, 42, rng_stream(RNG_TRAIN, 7, 4));
    int same = 1, equal_other = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = rng_u32(&a), y = rng_u32(&b), z = rng_u32(&c);
        same &= x == y;
        equal_other += x == z;
    }
    CHECK(same, "same seed and stream must repeat");
    CHECK(equal_other < 3, "neighbouring streams share %d of 1000 words", equal_other);
    CHECK(rng_stream(RNG_TRAIN, 1, 0) != rng_stream(RNG_EVAL, 1, 0), "purposes must differ");
    CHECK(rng_stream(RNG_TRAIN, 1, 0) != rng_stream(RNG_TRAIN, 0, 1), "indices must differ");
    rng_init(&a, 1, 5);
    rng_init(&b, 2, 5);
    int equal_seed = 0;
    for (int i = 0; i < 1000; i++)
        equal_seed += rng_u32(&a) == rng_u32(&b);
    CHECK(equal_seed < 3, "different seeds share %d of 1000 words", equal_seed);
}

static void test_moments(void)
{
    rng_state s;
    rng_init(&s, 123, rng_stream(RNG_EVAL, 0, 0));
    const int n = 1000000;
    double su = 0, su2 = 0, sn = 0, sn2 = 0, sn4 = 0, umin = 1, umax = 0;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&s), z = rng_normal(&s);
        su += u; su2 += u * u;
        sn += z; sn2 += z * z; sn4 += z * z * z * z;
        umin = fmin(umin, u); umax = fmax(umax, u);
    }
    double mu = su / n, vu = su2 / n - mu * mu, mz = sn / n, vz = sn2 / n - mz * mz;
    /* 5 standard errors */
    CHECK(fabs(mu - 0.5) < 5 * sqrt(1.0 / 12 / n), "uniform mean %f", mu);
    CHECK(fabs(vu - 1.0 / 12) < 5 * sqrt(1.0 / 180 / n), "uniform variance %f", vu);
    CHECK(umin > 0 && umax < 1, "uniform must be in the open interval: %g %g", umin, umax);
    CHECK(fabs(mz) < 5 / sqrt((double)n), "normal mean %f", mz);
    CHECK(fabs(vz - 1) < 5 * sqrt(2.0 / n), "normal variance %f", vz);
    CHECK(fabs(sn4 / n - 3) < 5 * sqrt(96.0 / n), "normal fourth moment %f", sn4 / n);
}

static void test_task(void)
{
    const int d = 5, N = 20, n_ctx = 20000;
    task_context c;
    REQUIRE(task_context_alloc(&c, d, N) == 0, "alloc");
    double replaced = 0, sx = 0, sx2 = 0, sr = 0;
    float r_seen[N], tokens[3 * N * d];
    for (int k = 0; k < n_ctx; k++) {
        rng_state s;
        rng_init(&s, 9, rng_stream(RNG_TRAIN, 0, (uint64_t)k));
        task_sample(&c, &s);
        for (int j = 0; j < d; j++) {
            sx += c.x[j];
            sx2 += c.x[j] * c.x[j];
        }
        task_seen_rewards(&c, 0.3, r_seen);
        for (int i = 0; i < N; i++) {
            replaced += r_seen[i] != c.r_true[i];
            sr += r_seen[i];
        }
        if (k < 50) {
            /* y_i = r_i y* + (1 - r_i) e with one e for every i */
            float e0[d];
            for (int j = 0; j < d; j++)
                e0[j] = (c.resp[j] - c.r_true[0] * c.y_star[j]) / (1 - c.r_true[0]);
            for (int i = 1; i < N; i++)
                for (int j = 0; j < d; j++) {
                    float e = (c.resp[i * d + j] - c.r_true[i] * c.y_star[j]) / (1 - c.r_true[i]);
                    CHECK(fabsf(e - e0[j]) < 1e-3f * (1 + fabsf(e0[j])) ||
                              c.r_true[i] > 0.99f,
                          "context %d response %d: bad response %g vs %g", k, i, e, e0[j]);
                }
            /* the layout: x, y_i, (r_i, 0, ..., 0) */
            task_tokens(&c, r_seen, tokens);
            for (int i = 0; i < N; i++) {
                CHECK(memcmp(tokens + 3 * i * d, c.x, sizeof(float) * d) == 0, "x token %d", i);
                CHECK(memcmp(tokens + (3 * i + 1) * d, c.resp + i * d, sizeof(float) * d) == 0,
                      "y token %d", i);
                CHECK(tokens[(3 * i + 2) * d] == r_seen[i], "reward token %d", i);
                for (int j = 1; j < d; j++)
                    CHECK(tokens[(3 * i + 2) * d + j] == 0, "reward token %d pad", i);
            }
            /* p = 0 sees the truth; p = 1 sees none of it */
            float r0[N], r1[N];
            task_seen_rewards(&c, 0.0, r0);
            task_seen_rewards(&c, 1.0, r1);
            for (int i = 0; i < N; i++) {
                CHECK(r0[i] == c.r_true[i], "p=0 must see the true reward");
                CHECK(r1[i] == c.r_fresh[i], "p=1 must see only fresh draws");
            }
        }
    }
    double nx = (double)n_ctx * d, nr = (double)n_ctx * N;
    CHECK(fabs(sx / nx) < 5 / sqrt(nx), "x mean %f", sx / nx);
    CHECK(fabs(sx2 / nx - 1) < 5 * sqrt(2 / nx), "x variance %f", sx2 / nx);
    CHECK(fabs(replaced / nr - 0.3) < 5 * sqrt(0.21 / nr), "replaced fraction %f at p=0.3",
          replaced / nr);
    CHECK(fabs(sr / nr - 0.5) < 5 * sqrt(1.0 / 12 / nr), "seen reward mean %f", sr / nr);
    task_context_free(&c);
}

int main(void)
{
    test_known_answer();
    test_streams();
    test_moments();
    test_task();
    return test_finish("test_rng_task");
}
