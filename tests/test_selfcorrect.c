/* The closed self-correction loop of SPEC "Self-correction in a closed
 * loop": the projection onto span(y*, e) and the true reward, Kendall's
 * tau-b on hand cases, the loop with stand-in predictors on hand-built
 * contexts against values computed by hand, and with a model: the critic's
 * tau at q = 0, 0.5 and 1, the open loop equal to ordinary evaluation, round
 * 1 equal to the open loop (causality: the tokens after the prediction
 * differ), bitwise equality at 1, 2 and 3 threads, and the run id. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/eval.h"
#include "icasweep/selfcorrect.h"
#include "icasweep/train.h"
#include "testutil.h"

static void test_projection(void)
{
    enum { D = 5 };
    rng_state rng;
    rng_init(&rng, 7, 0);
    double worst = 0;
    for (int trial = 0; trial < 200; trial++) {
        float y[D], e[D], v[D], w[D];
        for (int j = 0; j < D; j++) {
            y[j] = rng_normal(&rng);
            e[j] = rng_normal(&rng);
            w[j] = rng_normal(&rng);
        }
        /* w minus its projection on the plane: a component the least
         * squares must ignore */
        double a0, b0;
        selfcorrect_project(w, y, e, D, &a0, &b0);
        float ortho[D];
        for (int j = 0; j < D; j++)
            ortho[j] = (float)(w[j] - a0 * y[j] - b0 * e[j]);
        /* a response of the family, r y* + (1 - r) e, maps back onto r */
        float r = rng_uniform(&rng);
        for (int j = 0; j < D; j++)
            v[j] = r * y[j] + (1 - r) * e[j];
        double a, b;
        selfcorrect_project(v, y, e, D, &a, &b);
        double got = selfcorrect_true_reward(a, b);
        worst = fmax(worst, fabs(got - r));
        CHECK(test_close(a, r, 2e-5, 0) && test_close(b, 1 - r, 2e-5, 0),
              "family response r=%.6f: a=%.7f b=%.7f", r, a, b);
        CHECK(test_close(got, r, 2e-5, 0), "true reward of r y* + (1-r) e: %.7f, want %.7f", got, r);
        /* any point of the plane, plus an orthogonal part */
        double A = 3 * rng_normal(&rng), B = 3 * rng_normal(&rng);
        for (int j = 0; j < D; j++)
            v[j] = (float)(A * y[j] + B * e[j]) + ortho[j];
        selfcorrect_project(v, y, e, D, &a, &b);
        CHECK(test_close(a, A, 1e-4, 1e-4) && test_close(b, B, 1e-4, 1e-4),
              "a y* + b e + orthogonal: (%.6f, %.6f), want (%.6f, %.6f)", a, b, A, B);
    }
    printf("projection: family responses map back onto r within %.2e\n", worst);
    /* the reward's clipping */
    CHECK(selfcorrect_true_reward(0.25, 0.75) == 0.25, "a/(a+b) for a=0.25, b=0.75");
    CHECK(selfcorrect_true_reward(2, -0.5) == 1, "a/(a+b) > 1 is not clipped to 1");
    CHECK(selfcorrect_true_reward(-1, 2) == 0, "a/(a+b) < 0 is not clipped to 0");
    CHECK(selfcorrect_true_reward(1, -1) == 0, "a + b = 0 does not give 0");
    CHECK(selfcorrect_true_reward(-1, -1) == 0, "a + b < 0 does not give 0");
    CHECK(selfcorrect_true_reward(NAN, 1) == 0, "NaN does not give 0");
    /* a degenerate plane: e parallel to y* */
    const float y2[2] = {1, 2}, e2[2] = {2, 4}, v2[2] = {3, 1};
    double a, b;
    selfcorrect_project(v2, y2, e2, 2, &a, &b);
    CHECK(test_close(a, 1.0, 1e-12, 0) && b == 0, "parallel y*, e: (%g, %g), want (1, 0)", a, b);
}

static void test_kendall(void)
{
    const float x[4] = {1, 2, 3, 4}, up[4] = {10, 20, 30, 40}, down[4] = {4, 3, 2, 1};
    CHECK(selfcorrect_kendall_tau(x, up, 4) == 1, "same order: tau != 1");
    CHECK(selfcorrect_kendall_tau(x, down, 4) == -1, "reversed order: tau != -1");
    /* ties: x = 1 2 2 3, y = 1 2 3 3: of the 6 pairs, 4 concordant, (1,2)
     * tied in x, (2,3) tied in y: tau-b = 4 / sqrt(5 * 5) = 0.8 */
    const float tx[4] = {1, 2, 2, 3}, ty[4] = {1, 2, 3, 3};
    double t = selfcorrect_kendall_tau(tx, ty, 4);
    CHECK(test_close(t, 0.8, 1e-12, 0), "tau-b with ties: %.6f, want 0.8", t);
    /* 1 3 2 against 1 2 3: pairs (0,1) +, (0,2) +, (1,2) -: 1/3 */
    const float a[3] = {1, 3, 2}, b[3] = {1, 2, 3};
    t = selfcorrect_kendall_tau(a, b, 3);
    CHECK(test_close(t, 1.0 / 3, 1e-12, 0), "tau of 132 vs 123: %.6f, want 1/3", t);
    const float flat[3] = {5, 5, 5};
    CHECK(isnan(selfcorrect_kendall_tau(flat, b, 3)), "constant x: tau is not NaN");
    CHECK(isnan(selfcorrect_kendall_tau(x, up, 1)), "n = 1: tau is not NaN");
}

/* ---- stand-in predictors on hand-built contexts -------------------------- */

enum { HD = 2, HN = 6, HB = 2, HR = 3 };

/* Two contexts with y* = (1, 0), e = (0, 1), so a response r y* + (1-r) e is
 * (r, 1 - r) and its error is 1 - r / sqrt(r^2 + (1 - r)^2). */
static const float hand_r[HB][HN] = {{0.3f, 0.6f, 0.2f, 0.9f, 0.1f, 0.5f},
                                     {0.8f, 0.1f, 0.4f, 0.95f, 0.3f, 0.7f}};

static void hand_contexts(task_context ctx[HB])
{
    for (int c = 0; c < HB; c++) {
        REQUIRE(task_context_alloc(&ctx[c], HD, HN) == 0, "out of memory");
        ctx[c].x[0] = 1;
        ctx[c].x[1] = -1;
        ctx[c].y_star[0] = 1;
        ctx[c].y_star[1] = 0;
        ctx[c].e[0] = 0;
        ctx[c].e[1] = 1;
        for (int i = 0; i < HN; i++) {
            float r = hand_r[c][i];
            ctx[c].r_true[i] = r;
            ctx[c].r_noise[i] = 1; /* never replaced at q < 1 */
            ctx[c].r_fresh[i] = 0.5f;
            ctx[c].resp[i * HD] = r;
            ctx[c].resp[i * HD + 1] = 1 - r;
        }
    }
}

static double err_of(double r) { return 1 - r / sqrt(r * r + (1 - r) * (1 - r)); }

/* The response with the highest reward token among the triplets before
 * query i (ties: the earliest); zero at i = 0. `nudge` > 0 instead returns
 * the family response with reward min(1, that reward + nudge): a model that
 * improves on the best it has seen. */
typedef struct {
    float nudge;
} standin;

static void standin_predict(void *user, const float *tokens, int M, float *out)
{
    const standin *s = user;
    const int T = 3 * HN;
    for (int m = 0; m < M; m++) {
        const float *seq = tokens + (size_t)m * T * HD;
        for (int i = 0; i < HN; i++) {
            float *o = out + ((size_t)m * HN + i) * HD;
            o[0] = o[1] = 0;
            int best = -1;
            for (int j = 0; j < i; j++)
                if (best < 0 || seq[(3 * j + 2) * HD] > seq[(3 * best + 2) * HD])
                    best = j;
            if (best < 0)
                continue;
            if (s->nudge > 0) {
                float r = fminf(1, seq[(3 * best + 2) * HD] + s->nudge);
                o[0] = r;
                o[1] = 1 - r;
            } else {
                memcpy(o, seq + (3 * best + 1) * HD, sizeof(float) * HD);
            }
        }
    }
}

static run_config hand_config(void)
{
    run_config c = config_default();
    c.dims = HD;
    c.points = HN;
    c.eval_batch = HB;
    c.sc_rounds = HR;
    c.n_sc_k0 = 2;
    c.sc_k0[0] = 2;
    c.sc_k0[1] = 0;
    c.n_sc_q = 1;
    c.sc_q[0] = 0;
    return c;
}

static void test_hand_loop(void)
{
    run_config c = hand_config();
    icas_err err;
    CHECK(config_validate(&c, &err) == 0, "%s", err.msg);
    task_context ctx[HB];
    hand_contexts(ctx);
    run_result r;
    REQUIRE(run_result_alloc(&r, &c, 0, &err) == 0, "%s", err.msg);
    const int R = c.sc_rounds;

    /* best-so-far with a perfect critic. k0 = 2: round 1 picks the better
     * of the two given responses (0.6 and 0.8), its answer comes back with
     * that true reward, and every later round picks the same answer again:
     * the error stays at err(0.6) and err(0.8). The open loop instead sees
     * the given responses 2 and 3 (0.2, 0.9 and 0.4, 0.95): at position 4
     * it picks 0.9 and 0.95. k0 = 0: round 1 has nothing (zero prediction,
     * error 1, true reward 0), and its answer e comes back with reward 0,
     * which every later round picks: error 1 - cos(e, y*) = 1. */
    standin best = {0};
    sc_predictor pred = {standin_predict, &best};
    CHECK(selfcorrect_loop(&c, ctx, HB, &pred, &r, &err) == 0, "%s", err.msg);
    const double closed2[HR] = {(err_of(0.6) + err_of(0.8)) / 2, (err_of(0.6) + err_of(0.8)) / 2,
                               (err_of(0.6) + err_of(0.8)) / 2};
    const double open2[HR] = {(err_of(0.6) + err_of(0.8)) / 2, (err_of(0.6) + err_of(0.8)) / 2,
                             (err_of(0.9) + err_of(0.95)) / 2};
    const double open0[HR] = {1, (err_of(0.3) + err_of(0.8)) / 2, (err_of(0.6) + err_of(0.8)) / 2};
    for (int t = 0; t < R; t++) {
        CHECK(test_close(r.sc_err[t], closed2[t], 1e-6, 0), "best-so-far k0=2 round %d: %.7f, "
              "want %.7f", t + 1, r.sc_err[t], closed2[t]);
        CHECK(test_close(r.sc_open_err[t], open2[t], 1e-6, 0), "open loop k0=2 t=%d: %.7f, "
              "want %.7f", t + 1, r.sc_open_err[t], open2[t]);
        CHECK(test_close(r.sc_err[R + t], 1.0, 1e-6, 0), "best-so-far k0=0 round %d: %.7f, "
              "want 1", t + 1, r.sc_err[R + t]);
        CHECK(test_close(r.sc_open_err[R + t], open0[t], 1e-6, 0), "open loop k0=0 t=%d: %.7f, "
              "want %.7f", t + 1, r.sc_open_err[R + t], open0[t]);
    }
    /* a perfect critic ranks the two contexts' rewards as they are */
    CHECK(r.sc_tau[0] == 1, "perfect critic, k0=2: tau %.4f, want 1", r.sc_tau[0]);
    /* k0 = 0: every true reward is 0 in both contexts, tau is undefined */
    CHECK(isnan(r.sc_tau[1]), "k0=0: all rewards tied, tau %.4f, want NaN", r.sc_tau[1]);

    /* an improver with a perfect critic: each round's answer has reward 0.1
     * above the best the model has been shown, and is shown back with it:
     * 0.7, 0.8, 0.9 (context 0) and 0.9, 1, 1 (context 1). k0 = 0: 0 (the
     * zero prediction), then 0.1, 0.2. */
    standin up = {0.1f};
    pred.user = &up;
    CHECK(selfcorrect_loop(&c, ctx, HB, &pred, &r, &err) == 0, "%s", err.msg);
    const double up2[HR] = {(err_of(0.7) + err_of(0.9)) / 2, (err_of(0.8) + err_of(1.0)) / 2,
                           (err_of(0.9) + err_of(1.0)) / 2};
    const double up0[HR] = {1, err_of(0.1), err_of(0.2)};
    for (int t = 0; t < R; t++) {
        CHECK(test_close(r.sc_err[t], up2[t], 1e-5, 0), "improver k0=2 round %d: %.7f, want "
              "%.7f", t + 1, r.sc_err[t], up2[t]);
        CHECK(test_close(r.sc_err[R + t], up0[t], 1e-5, 0), "improver k0=0 round %d: %.7f, "
              "want %.7f", t + 1, r.sc_err[R + t], up0[t]);
    }
    printf("hand loop: best-so-far %.4f %.4f %.4f (open %.4f %.4f %.4f); improver %.4f %.4f "
           "%.4f\n", closed2[0], closed2[1], closed2[2], open2[0], open2[1], open2[2], up2[0],
           up2[1], up2[2]);
    run_result_free(&r);
    for (int i = 0; i < HB; i++)
        task_context_free(&ctx[i]);
}

/* ---- with a model ---------------------------------------------------------- */

static run_config model_config(void)
{
    run_config c = config_default();
    c.layers = 2;
    c.heads = 2;
    c.embd = 16;
    c.points = 10;
    c.steps = 1;
    c.eval_batch = 200; /* not a multiple of the chunk: the last chunk is short */
    c.n_eval_noise = 2;
    c.eval_noise[0] = 0.5;
    c.eval_noise[1] = 1;
    c.sc_rounds = 5;
    c.n_sc_k0 = 2;
    c.sc_k0[0] = 1;
    c.sc_k0[1] = 4;
    c.n_sc_q = 3;
    c.sc_q[0] = 0;
    c.sc_q[1] = 0.5;
    c.sc_q[2] = 1;
    return c;
}

/* The loop, and with_eval the ordinary evaluation (whose GD baseline is
 * the slow part), at a thread count. */
static void run_model(const run_config *c, const model *m, int threads, int with_eval,
                      run_result *r)
{
    icas_err err;
    omp_set_num_threads(threads);
    REQUIRE(run_result_alloc(r, c, 0, &err) == 0, "%s", err.msg);
    if (with_eval)
        CHECK(eval_run(c, m, r, &err) == 0, "%s", err.msg);
    CHECK(selfcorrect_run(c, m, r, &err) == 0, "%s", err.msg);
}

static void test_with_model(void)
{
    run_config c = model_config();
    icas_err err;
    CHECK(config_validate(&c, &err) == 0, "%s", err.msg);
    model m;
    REQUIRE(model_create(&m, model_dims_of(&c), &err) == 0, "%s", err.msg);
    model_init_params(&m, 3);
    /* larger weights than the initialisation's, so that predictions vary
     * between contexts and the true rewards spread over (0, 1) */
    for (size_t i = 0; i < m.n_params; i++)
        m.params[i] *= 4;
    run_result r1, r2, r3;
    run_model(&c, &m, 1, 1, &r1);
    const int Q = c.n_sc_q, K = c.n_sc_k0, R = c.sc_rounds, N = c.points;

    /* the critic: exact at q = 0, uninformative at q = 1 (tau's standard
     * deviation under independence is sqrt(2(2n+5) / (9n(n-1)))) ~ 0.048 for
     * n = 200, less averaged over 5 rounds), in between at 0.5 */
    for (int k = 0; k < K; k++) {
        float t0 = r1.sc_tau[0 * K + k], th = r1.sc_tau[1 * K + k], t1 = r1.sc_tau[2 * K + k];
        printf("model k0=%d: critic tau %.3f (q=0), %.3f (q=0.5), %.3f (q=1)\n", c.sc_k0[k], t0,
               th, t1);
        CHECK(t0 == 1, "q=0 k0=%d: tau %.4f, want 1", c.sc_k0[k], t0);
        CHECK(fabsf(t1) < 0.1, "q=1 k0=%d: tau %.4f, want near 0", c.sc_k0[k], t1);
        CHECK(th > 0.15 && th < 0.85, "q=0.5 k0=%d: tau %.4f, want between", c.sc_k0[k], th);
    }
    for (int q = 0; q < Q; q++)
        for (int k = 0; k < K; k++) {
            const float *closed = r1.sc_err + ((size_t)q * K + k) * R;
            const float *open = r1.sc_open_err + ((size_t)q * K + k) * R;
            /* causality: round 1 sees the same k0 triplets as the open loop
             * at position k0; the tokens after it differ (zeros here, the
             * given responses there) and must not matter */
            CHECK(closed[0] == open[0], "q=%g k0=%d: round 1 %.7f differs from the open loop "
                  "%.7f", c.sc_q[q], c.sc_k0[k], closed[0], open[0]);
            for (int t = 0; t < R; t++)
                CHECK(isfinite(closed[t]) && closed[t] >= 0 && closed[t] <= 2,
                      "q=%g k0=%d round %d: error %g", c.sc_q[q], c.sc_k0[k], t + 1, closed[t]);
            /* the open loop is the ordinary evaluation where p = q */
            for (int p = 0; p < c.n_eval_noise; p++)
                if (c.eval_noise[p] == c.sc_q[q])
                    for (int t = 0; t < R; t++)
                        CHECK(open[t] == r1.tf_err[p * N + c.sc_k0[k] + t],
                              "open loop q=%g k0=%d t=%d: %.7f, /eval/tf_err %.7f", c.sc_q[q],
                              c.sc_k0[k], t + 1, open[t], r1.tf_err[p * N + c.sc_k0[k] + t]);
        }

    /* bitwise the same at 2 and 3 threads */
    run_model(&c, &m, 2, 0, &r2);
    run_model(&c, &m, 3, 0, &r3);
    float *a1[RUN_RESULT_N_SC], *a2[RUN_RESULT_N_SC], *a3[RUN_RESULT_N_SC];
    int n1[RUN_RESULT_N_SC], n2[RUN_RESULT_N_SC], n3[RUN_RESULT_N_SC];
    int n = run_result_sc_arrays(&r1, a1, n1);
    CHECK(n == RUN_RESULT_N_SC, "no closed-loop arrays");
    run_result_sc_arrays(&r2, a2, n2);
    run_result_sc_arrays(&r3, a3, n3);
    for (int i = 0; i < n; i++) {
        CHECK(memcmp(a1[i], a2[i], sizeof(float) * (size_t)n1[i]) == 0,
              "closed-loop array %d differs between 1 and 2 threads", i);
        CHECK(memcmp(a1[i], a3[i], sizeof(float) * (size_t)n1[i]) == 0,
              "closed-loop array %d differs between 1 and 3 threads", i);
    }
    omp_set_num_threads(1);
    run_result_free(&r1);
    run_result_free(&r2);
    run_result_free(&r3);
    model_free(&m);
}

/* train_and_evaluate runs the loop after evaluation; without a closed loop
 * there are no arrays. */
static void test_train_and_evaluate(void)
{
    run_config c = model_config();
    c.eval_batch = 16;
    c.steps = 3;
    c.batch = 8;
    icas_err err;
    run_result r;
    REQUIRE(train_and_evaluate(&c, NULL, &r, &err) == 0, "%s", err.msg);
    CHECK(r.status == RUN_DONE && r.sc_err && isfinite(r.sc_err[0]) && isfinite(r.sc_tau[0]),
          "closed loop not run by train_and_evaluate");
    run_result_free(&r);
    c.sc_rounds = c.n_sc_k0 = c.n_sc_q = 0;
    REQUIRE(train_and_evaluate(&c, NULL, &r, &err) == 0, "%s", err.msg);
    float *a[RUN_RESULT_N_SC];
    int len[RUN_RESULT_N_SC];
    CHECK(run_result_sc_arrays(&r, a, len) == 0 && r.sc_err == NULL,
          "a run without a closed loop has closed-loop arrays");
    run_result_free(&r);
}

/* Ids of configurations without a closed loop are those they had before
 * it existed (README's plan of paper.yaml: the default model, seed 0);
 * every closed-loop field changes the id. */
static void test_run_id(void)
{
    run_config c = config_default();
    char id[ICAS_RUN_ID_LEN], other[ICAS_RUN_ID_LEN];
    config_run_id(&c, id);
    CHECK(strcmp(id, "r1f12ba43be4374a4") == 0, "default run id %s, was r1f12ba43be4374a4", id);
    c.sc_rounds = 5;
    c.n_sc_k0 = 1;
    c.sc_k0[0] = 2;
    c.n_sc_q = 1;
    c.sc_q[0] = 0.5;
    config_run_id(&c, other);
    CHECK(strcmp(id, other) != 0, "a closed loop does not change the run id");
    run_config d = c;
    d.sc_k0[0] = 3;
    config_run_id(&d, id);
    CHECK(strcmp(id, other) != 0, "k0 does not change the run id");
    d = c;
    d.sc_q[0] = 0.25;
    config_run_id(&d, id);
    CHECK(strcmp(id, other) != 0, "q does not change the run id");
    d = c;
    d.sc_rounds = 4;
    config_run_id(&d, id);
    CHECK(strcmp(id, other) != 0, "rounds does not change the run id");
}

/* config_validate_selfcorrect names the flag at fault. */
static void test_validate(void)
{
    run_config base = model_config(), c;
    icas_err err;
#define EXPECT(want, stmt)                                                        \
    do {                                                                          \
        c = base;                                                                 \
        stmt;                                                                     \
        int rc = config_validate(&c, &err);                                       \
        CHECK(rc != 0 && strstr(err.msg, want), "%s: rc %d, message '%s'", #stmt, \
              rc, rc ? err.msg : "");                                             \
    } while (0)
    EXPECT("--sc-rounds -1", c.sc_rounds = -1);
    EXPECT("--sc-k0 given without --sc-rounds", c.sc_rounds = 0);
    EXPECT("--sc-q given without --sc-rounds", (c.sc_rounds = 0, c.n_sc_k0 = 0));
    EXPECT("--sc-rounds 5: needs --sc-k0", c.n_sc_k0 = 0);
    EXPECT("--sc-rounds 5: needs --sc-q", c.n_sc_q = 0);
    EXPECT("--sc-k0 5", c.sc_k0[1] = 5);   /* 5 + 5 > 10 - 1 */
    EXPECT("--sc-k0 -1", c.sc_k0[0] = -1);
    EXPECT("--sc-k0 1: listed twice", c.sc_k0[1] = 1);
    EXPECT("--sc-q 1.5", c.sc_q[1] = 1.5);
    EXPECT("--sc-q -0.5", c.sc_q[1] = -0.5);
    EXPECT("--sc-q 0: listed twice", c.sc_q[1] = 0);
    EXPECT("--sc-k0: at most", c.n_sc_k0 = ICAS_MAX_SC_K0 + 1);
    EXPECT("--sc-q: at most", c.n_sc_q = ICAS_MAX_SC_Q + 1);
#undef EXPECT
    c = base;
    c.sc_k0[1] = 4; /* 4 + 5 = 9 = N - 1: the last allowed */
    CHECK(config_validate(&c, &err) == 0, "k0 + rounds = N - 1 refused: %s", err.msg);
}

int main(void)
{
    test_projection();
    test_kendall();
    test_hand_loop();
    test_with_model();
    test_train_and_evaluate();
    test_run_id();
    test_validate();
    return test_finish("test_selfcorrect");
}
