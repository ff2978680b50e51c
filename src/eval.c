#include "icasweep/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/loss.h"
#include "icasweep/rng.h"
#include "icasweep/task.h"

/* Contexts per forward pass. The products of a forward pass round
 * differently with the number of contexts it carries, so this count is
 * part of what makes evaluation numbers reproducible. */
#define EVAL_CHUNK 8
_Static_assert(EVAL_CHUNK <= CONFIG_MAX_CONTEXTS_PER_PASS, "config_check_sizes bounds passes");

int eval_gd_steps(double p) { return (int)floor(50.0 - 25.0 * p + 1e-9); }

double eval_gd_one(const float *x, const float *resp, const float *r_seen,
                   int k, int d, int steps, const float *y_star, float *A)
{
    float pred[d], dpred[d];
    float m1[d * d], m2[d * d];
    memset(m1, 0, sizeof m1);
    memset(m2, 0, sizeof m2);
    const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    /* with k < 2 there is nothing to rank: the loss is identically zero and
     * A keeps its initial value (docs/science.md, "The gradient-descent baseline") */
    for (int t = 1; k >= 2 && t <= steps; t++) {
        for (int j = 0; j < d; j++) {
            float s = 0;
            for (int i = 0; i < d; i++)
                s += x[i] * A[i * d + j];
            pred[j] = s;
            dpred[j] = 0;
        }
        loss_one(LOSS_PL, pred, resp, r_seen, k, d, 1.0f, dpred);
        double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) {
                int ij = i * d + j;
                double g = (double)x[i] * dpred[j];
                m1[ij] = (float)(b1 * m1[ij] + (1 - b1) * g);
                m2[ij] = (float)(b2 * m2[ij] + (1 - b2) * g * g);
                A[ij] -= (float)(lr / bc1 * m1[ij] / (sqrt(m2[ij] / bc2) + eps));
            }
    }
    for (int j = 0; j < d; j++) {
        float s = 0;
        for (int i = 0; i < d; i++)
            s += x[i] * A[i * d + j];
        pred[j] = s;
    }
    return 1.0 - loss_cosine(pred, y_star, d);
}

double eval_blind_one(const float *resp, int k, int d, const float *y_star)
{
    if (k <= 0)
        return NAN;
    float mean[d];
    for (int j = 0; j < d; j++) {
        double s = 0;
        for (int i = 0; i < k; i++)
            s += resp[(size_t)i * d + j];
        mean[j] = (float)(s / k);
    }
    return 1.0 - loss_cosine(mean, y_star, d);
}

double eval_pick_one(const float *resp, const float *r_seen, int k, int d,
                     const float *y_star)
{
    if (k <= 0)
        return NAN;
    int best = 0;
    for (int i = 1; i < k; i++)
        if (r_seen[i] > r_seen[best])
            best = i;
    return 1.0 - loss_cosine(resp + (size_t)best * d, y_star, d);
}

int eval_contexts_create(const run_config *cfg, task_context **out, icas_err *err)
{
    const int B = cfg->eval_batch;
    *out = NULL;
    task_context *ctx = calloc((size_t)B, sizeof *ctx);
    if (!ctx)
        return icas_fail(err, "eval: out of memory for %d contexts", B);
    for (int c = 0; c < B; c++)
        if (task_context_alloc(&ctx[c], cfg->dims, cfg->points)) {
            eval_contexts_free(ctx, B);
            return icas_fail(err, "eval: out of memory for %d contexts", B);
        }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < B; c++) {
        rng_state rng;
        rng_init(&rng, cfg->seed, rng_stream(RNG_EVAL, (uint64_t)c, 0));
        task_sample(&ctx[c], &rng);
    }
    *out = ctx;
    return 0;
}

void eval_contexts_free(task_context *ctx, int n)
{
    if (!ctx)
        return;
    for (int c = 0; c < n; c++)
        task_context_free(&ctx[c]);
    free(ctx);
}

/* Mean over B contexts of per_context [B, N], column by column, in context
 * order, into out [N]. */
static void mean_over_contexts(const double *per_context, int B, int N, float *out)
{
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int c = 0; c < B; c++)
            s += per_context[(size_t)c * N + i];
        out[i] = (float)(s / B);
    }
}

/* The level whose tokens and predictions are saved with the model: p = 0
 * when evaluated (docs/science.md, "Evaluation"), else the first level. */
static int saved_level(const run_config *cfg)
{
    for (int i = 0; i < cfg->n_eval_noise; i++)
        if (cfg->eval_noise[i] == 0)
            return i;
    return 0;
}

int eval_run(const run_config *cfg, const model *m, run_result *out,
             icas_err *err)
{
    const int d = cfg->dims, N = cfg->points, T = 3 * N, B = cfg->eval_batch;
    const int P = cfg->n_eval_noise, chunk = EVAL_CHUNK;
    const int keep = saved_level(cfg);
    float *eval_tokens = out->eval_tokens, *eval_pred = out->eval_pred;
    int rc = -1;
    task_context *ctx = NULL;
    float *tokens = malloc(sizeof(float) * (size_t)chunk * T * d);
    float *r_seen = malloc(sizeof(float) * (size_t)B * N);
    double *err_c = malloc(sizeof(double) * (size_t)B * N);
    model_acts acts;
    memset(&acts, 0, sizeof acts);
    if (!tokens || !r_seen || !err_c) {
        icas_fail(err, "eval: out of memory for %d contexts", B);
        goto done;
    }
    if (model_acts_create(&acts, m->dims, chunk, TASK_QUERY_STRIDE,
                          PRECISION_FP32, err) ||
        eval_contexts_create(cfg, &ctx, err))
        goto done;
    if (out->eval_target)
        for (int c = 0; c < B; c++)
            memcpy(out->eval_target + (size_t)c * d, ctx[c].y_star, sizeof(float) * (size_t)d);

    for (int pi = 0; pi < P; pi++) {
        double p = cfg->eval_noise[pi];
        for (int c = 0; c < B; c++)
            task_seen_rewards(&ctx[c], p, r_seen + (size_t)c * N);
        /* the transformer */
        for (int c0 = 0; c0 < B; c0 += chunk) {
            int M = B - c0 < chunk ? B - c0 : chunk;
            for (int b = 0; b < M; b++)
                task_tokens(&ctx[c0 + b], r_seen + (size_t)(c0 + b) * N,
                            tokens + (size_t)b * T * d);
            model_forward(m, &acts, tokens, M);
            for (int b = 0; b < M; b++) {
                const task_context *cx = &ctx[c0 + b];
                for (int i = 0; i < N; i++) {
                    const float *pred = acts.out + ((size_t)b * N + i) * d;
                    err_c[(size_t)(c0 + b) * N + i] = 1.0 - loss_cosine(pred, cx->y_star, d);
                    if (pi == keep && eval_pred)
                        memcpy(eval_pred + ((size_t)(c0 + b) * N + i) * d, pred,
                               sizeof(float) * (size_t)d);
                }
                if (pi == keep && eval_tokens)
                    memcpy(eval_tokens + (size_t)(c0 + b) * T * d,
                           tokens + (size_t)b * T * d, sizeof(float) * (size_t)T * d);
            }
        }
        mean_over_contexts(err_c, B, N, out->tf_err + (size_t)pi * N);
        /* the GD baseline on the same contexts and rewards */
        int steps = eval_gd_steps(p);
#pragma omp parallel for schedule(dynamic, 4)
        for (int c = 0; c < B; c++) {
            const task_context *cx = &ctx[c];
            float A[d * d];
            float bound = 1.0f / sqrtf((float)d);
            for (int k = 0; k < N; k++) {
                rng_state rng;
                rng_init(&rng, cfg->seed, rng_stream(RNG_GD, (uint64_t)c, (uint64_t)k));
                for (int i = 0; i < d * d; i++)
                    A[i] = bound * (2.0f * rng_uniform(&rng) - 1.0f);
                err_c[(size_t)c * N + k] =
                    eval_gd_one(cx->x, cx->resp, r_seen + (size_t)c * N, k, d,
                                steps, cx->y_star, A);
            }
        }
        mean_over_contexts(err_c, B, N, out->gd_err + (size_t)pi * N);
        /* the reference strategies; k = 0 has no response to use */
        for (int c = 0; c < B; c++)
            for (int k = 0; k < N; k++)
                err_c[(size_t)c * N + k] = eval_blind_one(ctx[c].resp, k, d, ctx[c].y_star);
        mean_over_contexts(err_c, B, N, out->blind_err + (size_t)pi * N);
        for (int c = 0; c < B; c++)
            for (int k = 0; k < N; k++)
                err_c[(size_t)c * N + k] = eval_pick_one(ctx[c].resp, r_seen + (size_t)c * N,
                                                         k, d, ctx[c].y_star);
        mean_over_contexts(err_c, B, N, out->pick_err + (size_t)pi * N);
    }
    rc = 0;
done:
    eval_contexts_free(ctx, B);
    free(tokens);
    free(r_seen);
    free(err_c);
    model_acts_free(&acts);
    return rc;
}
