/* The reference strategies of SPEC "Reference strategies": a case computed
 * by hand, SPEC's Monte Carlo values within their standard errors, and the
 * curves eval_run stores (NaN at k = 0, blind the same at every p). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/eval.h"
#include "icasweep/rng.h"
#include "icasweep/task.h"
#include "testutil.h"

static void test_hand_computed(void)
{
    /* d = 2, y* = (1, 0); responses (0,1), (1,1), (1,-1) with seen rewards
     * 0.2, 0.9, 0.5. Means of the first k: (0,1), (1/2,1), (2/3,1/3), whose
     * cosines with y* are 0, 1/sqrt(5), 2/sqrt(5); the highest seen reward
     * among the first k is response 0, then 1, then 1 (cosine 1/sqrt(2)). */
    const float y_star[2] = {1, 0};
    const float resp[6] = {0, 1, 1, 1, 1, -1};
    const float r_seen[3] = {0.2f, 0.9f, 0.5f};
    const double blind[4] = {NAN, 1.0, 1.0 - 1.0 / sqrt(5.0), 1.0 - 2.0 / sqrt(5.0)};
    const double pick[4] = {NAN, 1.0, 1.0 - 1.0 / sqrt(2.0), 1.0 - 1.0 / sqrt(2.0)};
    CHECK(isnan(eval_blind_one(resp, 0, 2, y_star)), "blind at k = 0 is not NaN");
    CHECK(isnan(eval_pick_one(resp, r_seen, 0, 2, y_star)), "pick at k = 0 is not NaN");
    for (int k = 1; k <= 3; k++) {
        double b = eval_blind_one(resp, k, 2, y_star);
        double p = eval_pick_one(resp, r_seen, k, 2, y_star);
        CHECK(test_close(b, blind[k], 1e-6, 0), "blind k=%d: %.7f, expected %.7f", k, b, blind[k]);
        CHECK(test_close(p, pick[k], 1e-6, 0), "pick k=%d: %.7f, expected %.7f", k, p, pick[k]);
    }
    /* equal seen rewards: the lowest index wins */
    const float tie[3] = {0.5f, 0.5f, 0.1f};
    CHECK(test_close(eval_pick_one(resp, tie, 3, 2, y_star), 1.0, 1e-6, 0),
          "pick with tied rewards did not take the lowest index");
}

/* SPEC: d = 5, N = 20, 20,000 contexts; SPEC's own standard error is about
 * 0.002. Our estimate passes when it is within 3 combined standard errors. */
static void test_monte_carlo(void)
{
    enum { C = 20000, D = 5, N = 20 };
    static const int blind_k[5] = {1, 2, 5, 10, 15};
    static const double blind_spec[5] = {0.402, 0.372, 0.353, 0.345, 0.342};
    static const double pick_p[3] = {0.0, 0.5, 1.0};
    static const double pick_spec[3] = {0.007, 0.202, 0.399};
    double sum_b[5] = {0}, sq_b[5] = {0}, sum_p[3] = {0}, sq_p[3] = {0};
    task_context ctx;
    REQUIRE(task_context_alloc(&ctx, D, N) == 0, "out of memory");
    float r_seen[N];
    for (int c = 0; c < C; c++) {
        rng_state rng;
        rng_init(&rng, 2024, rng_stream(RNG_EVAL, (uint64_t)c, 0));
        task_sample(&ctx, &rng);
        for (int i = 0; i < 5; i++) {
            double e = eval_blind_one(ctx.resp, blind_k[i], D, ctx.y_star);
            sum_b[i] += e;
            sq_b[i] += e * e;
        }
        for (int i = 0; i < 3; i++) {
            task_seen_rewards(&ctx, pick_p[i], r_seen);
            double e = eval_pick_one(ctx.resp, r_seen, 15, D, ctx.y_star);
            sum_p[i] += e;
            sq_p[i] += e * e;
        }
    }
    task_context_free(&ctx);
    for (int i = 0; i < 8; i++) {
        int is_blind = i < 5;
        double s = is_blind ? sum_b[i] : sum_p[i - 5], q = is_blind ? sq_b[i] : sq_p[i - 5];
        double spec = is_blind ? blind_spec[i] : pick_spec[i - 5];
        double mean = s / C, se = sqrt((q / C - mean * mean) / (C - 1));
        double tol = 3 * sqrt(se * se + 0.002 * 0.002);
        printf("%s %s=%g: %.4f (se %.4f), SPEC %.3f, |diff| %.4f <= %.4f\n",
               is_blind ? "blind" : "pick at k=15", is_blind ? "k" : "p",
               is_blind ? (double)blind_k[i] : pick_p[i - 5], mean, se, spec,
               fabs(mean - spec), tol);
        CHECK(fabs(mean - spec) <= tol, "%s: %.4f against SPEC's %.3f", is_blind ? "blind" : "pick",
              mean, spec);
    }
}

static void test_eval_run_curves(void)
{
    run_config c = config_default();
    c.layers = 1;
    c.heads = 1;
    c.embd = 8;
    c.steps = 1;
    c.eval_batch = 40;
    icas_err err;
    model m;
    run_result r;
    REQUIRE(model_create(&m, model_dims_of(&c), &err) == 0, "%s", err.msg);
    model_init_params(&m, c.seed);
    REQUIRE(run_result_alloc(&r, &c, 1, &err) == 0, "%s", err.msg);
    CHECK(eval_run(&c, &m, &r, &err) == 0, "%s", err.msg);
    const int N = c.points, P = c.n_eval_noise, d = c.dims;
    for (int p = 0; p < P; p++) {
        CHECK(isnan(r.blind_err[p * N]) && isnan(r.pick_err[p * N]),
              "k = 0 of the reference curves is not NaN at p=%g", c.eval_noise[p]);
        for (int k = 1; k < N; k++) {
            CHECK(r.blind_err[p * N + k] == r.blind_err[k],
                  "blind at k=%d differs between p=%g and p=%g", k, c.eval_noise[p],
                  c.eval_noise[0]);
            CHECK(isfinite(r.pick_err[p * N + k]), "pick k=%d p=%g not finite", k,
                  c.eval_noise[p]);
        }
    }
    /* at p = 0 following the critic is close to perfect, at p = 1 it is not */
    CHECK(r.pick_err[N - 1] < 0.05 && r.pick_err[(P - 1) * N + N - 1] > 0.2,
          "pick at k=%d: %.3f at p=0, %.3f at p=1", N - 1, r.pick_err[N - 1],
          r.pick_err[(P - 1) * N + N - 1]);
    /* eval_target holds y*: the pick at p = 0 is recomputable from the file's arrays */
    double s = 0;
    for (int b = 0; b < c.eval_batch; b++) {
        const float *tok = r.eval_tokens + (size_t)b * 3 * N * d;
        float resp[N * d], seen[N];
        for (int i = 0; i < N; i++) {
            memcpy(resp + i * d, tok + (3 * i + 1) * d, sizeof(float) * d);
            seen[i] = tok[(3 * i + 2) * d];
        }
        s += eval_pick_one(resp, seen, N - 1, d, r.eval_target + (size_t)b * d);
    }
    CHECK(test_close(s / c.eval_batch, r.pick_err[N - 1], 1e-6, 0),
          "pick recomputed from eval_tokens and eval_target: %.7f, stored %.7f",
          s / c.eval_batch, r.pick_err[N - 1]);
    run_result_free(&r);
    model_free(&m);
}

int main(void)
{
    test_hand_computed();
    test_monte_carlo();
    test_eval_run_curves();
    return test_finish("test_eval");
}
