#include "icasweep/selfcorrect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/eval.h"
#include "icasweep/loss.h"
#include "icasweep/rng.h"

void selfcorrect_project(const float *v, const float *y_star, const float *e, int d,
                         double *a, double *b)
{
    double yy = 0, ye = 0, ee = 0, vy = 0, ve = 0;
    for (int j = 0; j < d; j++) {
        yy += (double)y_star[j] * y_star[j];
        ye += (double)y_star[j] * e[j];
        ee += (double)e[j] * e[j];
        vy += (double)v[j] * y_star[j];
        ve += (double)v[j] * e[j];
    }
    /* [yy ye; ye ee] [a; b] = [vy; ve]; the determinant is |y*|^2 |e|^2
     * sin^2 of their angle, so relative to yy * ee it measures how far from
     * parallel they are */
    double det = yy * ee - ye * ye;
    if (!(det > 1e-12 * yy * ee) || yy == 0 || ee == 0) {
        *a = yy > 0 ? vy / yy : 0;
        *b = 0;
        return;
    }
    *a = (vy * ee - ve * ye) / det;
    *b = (ve * yy - vy * ye) / det;
}

double selfcorrect_true_reward(double a, double b)
{
    double s = a + b;
    if (!(s > 0))
        return 0;
    double r = a / s;
    if (!(r > 0))
        return 0;
    return r > 1 ? 1 : r;
}

double selfcorrect_kendall_tau(const float *x, const float *y, int n)
{
    if (n < 2)
        return NAN;
    double s = 0, tx = 0, ty = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            int dx = (x[i] > x[j]) - (x[i] < x[j]);
            int dy = (y[i] > y[j]) - (y[i] < y[j]);
            s += dx * dy;
            tx += dx == 0;
            ty += dy == 0;
        }
    double n0 = 0.5 * n * (n - 1.0);
    double den = sqrt((n0 - tx) * (n0 - ty));
    return den > 0 ? s / den : NAN;
}

/* One triplet at position i of a token sequence [3N, d]. */
static void put_triplet(float *seq, int i, int d, const float *y, float r)
{
    memcpy(seq + (size_t)(3 * i + 1) * d, y, sizeof(float) * (size_t)d);
    memset(seq + (size_t)(3 * i + 2) * d, 0, sizeof(float) * (size_t)d);
    seq[(size_t)(3 * i + 2) * d] = r;
}

/* Mean over B contexts of v [B, stride] at column `col`, in context order. */
static float mean_column(const double *v, int B, int stride, int col)
{
    double s = 0;
    for (int c = 0; c < B; c++)
        s += v[(size_t)c * stride + col];
    return (float)(s / B);
}

int selfcorrect_loop(const run_config *cfg, const task_context *ctx, int B,
                     const sc_predictor *pred, run_result *out, icas_err *err)
{
    const int d = cfg->dims, N = cfg->points, T = 3 * N, chunk = SELFCORRECT_CHUNK;
    const int Q = cfg->n_sc_q, K = cfg->n_sc_k0, R = cfg->sc_rounds;
    if (R <= 0)
        return 0;
    if (!out->sc_err || out->SQ != Q || out->SK != K || out->SR != R)
        return icas_fail(err, "selfcorrect: result arrays not allocated for this configuration");
    int rc = -1;
    float *tokens = malloc(sizeof(float) * (size_t)chunk * T * d);
    float *pout = malloc(sizeof(float) * (size_t)chunk * N * d);
    float *r_seen = malloc(sizeof(float) * (size_t)N);
    double *err_c = malloc(sizeof(double) * (size_t)B * (N > R ? N : R));
    float *r_true = malloc(sizeof(float) * (size_t)R * B); /* [R, B] */
    float *r_crit = malloc(sizeof(float) * (size_t)R * B);
    float *y = malloc(sizeof(float) * (size_t)d);
    if (!tokens || !pout || !r_seen || !err_c || !r_true || !r_crit || !y) {
        icas_fail(err, "selfcorrect: out of memory for %d contexts", B);
        goto done;
    }
    for (int qi = 0; qi < Q; qi++) {
        const double q = cfg->sc_q[qi];
        /* the open loop: ordinary evaluation at noise q, all positions */
        for (int c0 = 0; c0 < B; c0 += chunk) {
            int M = B - c0 < chunk ? B - c0 : chunk;
            for (int m = 0; m < M; m++) {
                task_seen_rewards(&ctx[c0 + m], q, r_seen);
                task_tokens(&ctx[c0 + m], r_seen, tokens + (size_t)m * T * d);
            }
            pred->predict(pred->user, tokens, M, pout);
            for (int m = 0; m < M; m++)
                for (int i = 0; i < N; i++)
                    err_c[(size_t)(c0 + m) * N + i] =
                        1.0 - loss_cosine(pout + ((size_t)m * N + i) * d, ctx[c0 + m].y_star, d);
        }
        for (int ki = 0; ki < K; ki++)
            for (int t = 0; t < R; t++)
                out->sc_open_err[((size_t)qi * K + ki) * R + t] =
                    mean_column(err_c, B, N, cfg->sc_k0[ki] + t);

        /* the closed loop */
        for (int ki = 0; ki < K; ki++) {
            const int k0 = cfg->sc_k0[ki];
            for (int c0 = 0; c0 < B; c0 += chunk) {
                int M = B - c0 < chunk ? B - c0 : chunk;
                memset(tokens, 0, sizeof(float) * (size_t)M * T * d);
                for (int m = 0; m < M; m++) {
                    const task_context *cx = &ctx[c0 + m];
                    float *seq = tokens + (size_t)m * T * d;
                    task_seen_rewards(cx, q, r_seen);
                    for (int i = 0; i < N; i++)
                        memcpy(seq + (size_t)3 * i * d, cx->x, sizeof(float) * (size_t)d);
                    for (int i = 0; i < k0; i++)
                        put_triplet(seq, i, d, cx->resp + (size_t)i * d, r_seen[i]);
                }
                for (int t = 0; t < R; t++) {
                    const int pos = k0 + t;
                    pred->predict(pred->user, tokens, M, pout);
                    for (int m = 0; m < M; m++) {
                        const int c = c0 + m;
                        const task_context *cx = &ctx[c];
                        const float *v = pout + ((size_t)m * N + pos) * d;
                        double a, b;
                        selfcorrect_project(v, cx->y_star, cx->e, d, &a, &b);
                        float r = (float)selfcorrect_true_reward(a, b);
                        rng_state rng;
                        rng_init(&rng, cfg->seed, rng_stream(RNG_CRITIC, (uint64_t)c, (uint64_t)pos));
                        float errs = rng_uniform(&rng), guess = rng_uniform(&rng);
                        float seen = (double)errs < q ? guess : r;
                        /* the same arithmetic as task_sample's responses */
                        for (int j = 0; j < d; j++)
                            y[j] = r * cx->y_star[j] + (1 - r) * cx->e[j];
                        put_triplet(tokens + (size_t)m * T * d, pos, d, y, seen);
                        err_c[(size_t)c * R + t] = 1.0 - loss_cosine(v, cx->y_star, d);
                        r_true[(size_t)t * B + c] = r;
                        r_crit[(size_t)t * B + c] = seen;
                    }
                }
            }
            double tau_sum = 0;
            int tau_n = 0;
            for (int t = 0; t < R; t++) {
                out->sc_err[((size_t)qi * K + ki) * R + t] = mean_column(err_c, B, R, t);
                double tau = selfcorrect_kendall_tau(r_crit + (size_t)t * B,
                                                     r_true + (size_t)t * B, B);
                if (isfinite(tau)) {
                    tau_sum += tau;
                    tau_n++;
                }
            }
            out->sc_tau[(size_t)qi * K + ki] = tau_n ? (float)(tau_sum / tau_n) : NAN;
        }
    }
    rc = 0;
done:
    free(tokens);
    free(pout);
    free(r_seen);
    free(err_c);
    free(r_true);
    free(r_crit);
    free(y);
    return rc;
}

/* ---- with a trained model ------------------------------------------------ */

typedef struct {
    const model *m;
    model_acts *acts;
    int N, d;
} model_predictor;

static void model_predict(void *user, const float *tokens, int M, float *out)
{
    model_predictor *p = user;
    model_forward(p->m, p->acts, tokens, M);
    memcpy(out, p->acts->out, sizeof(float) * (size_t)M * p->N * p->d);
}

int selfcorrect_run(const run_config *cfg, const model *m, run_result *out, icas_err *err)
{
    if (cfg->sc_rounds <= 0)
        return 0;
    const int d = cfg->dims, N = cfg->points, B = cfg->eval_batch;
    int rc = -1;
    model_acts acts;
    memset(&acts, 0, sizeof acts);
    task_context *ctx = NULL;
    if (model_acts_create(&acts, m->dims, SELFCORRECT_CHUNK, TASK_QUERY_STRIDE,
                          PRECISION_FP32, err) ||
        eval_contexts_create(cfg, &ctx, err))
        goto done;
    model_predictor mp = {.m = m, .acts = &acts, .N = N, .d = d};
    sc_predictor pred = {.predict = model_predict, .user = &mp};
    rc = selfcorrect_loop(cfg, ctx, B, &pred, out, err);
done:
    eval_contexts_free(ctx, B);
    model_acts_free(&acts);
    return rc;
}
