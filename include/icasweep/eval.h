/* docs/science.md "Evaluation", "The gradient-descent baseline" and "Reference
 * strategies": error curves of a trained model at several evaluation noise
 * levels, and of the GD baseline, the reward-blind average and the
 * critic-following pick on the same contexts. */
#ifndef ICASWEEP_EVAL_H
#define ICASWEEP_EVAL_H

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/model.h"
#include "icasweep/result.h"
#include "icasweep/task.h"

/* The run's evaluation contexts, cfg->eval_batch of them: context c is drawn
 * from stream (RNG_EVAL, c, 0) of cfg->seed, whatever the thread count.
 * eval_run and the closed loop (selfcorrect_run) both evaluate on exactly
 * these, so their numbers compare context by context. *out is allocated
 * here (NULL on failure); free it with eval_contexts_free. */
int eval_contexts_create(const run_config *cfg, task_context **out, icas_err *err);

/* Frees n contexts from eval_contexts_create and the array; NULL is a no-op. */
void eval_contexts_free(task_context *ctx, int n);

/* Fills out->tf_err, gd_err, blind_err and pick_err [P, N] (allocated by
 * run_result_alloc); when out->eval_tokens is non-NULL (a saved model) also
 * eval_tokens, eval_pred and eval_target at the saved noise level (p = 0
 * when evaluated, else the first level). */
int eval_run(const run_config *cfg, const model *m, run_result *out,
             icas_err *err);

/* 1 - cos(mean(resp[0..k-1]), y_star): the reward-blind average of the
 * first k responses [k, d]. NaN for k = 0. */
double eval_blind_one(const float *resp, int k, int d, const float *y_star);

/* 1 - cos(resp[j], y_star) with j the highest of r_seen[0..k-1], ties to the
 * lowest index: the critic-following pick. NaN for k = 0. */
double eval_pick_one(const float *resp, const float *r_seen, int k, int d,
                     const float *y_star);

/* The GD baseline on one context: A [d, d] (pred = x A) starts at A (given,
 * updated in place), Adam lr 0.1 for `steps` steps on the PL loss of x A
 * against resp [k, d] ranked by r_seen [k]. Returns 1 - cos(x A, y_star). */
double eval_gd_one(const float *x, const float *resp, const float *r_seen,
                   int k, int d, int steps, const float *y_star, float *A);

/* floor(50 - 25 p) */
int eval_gd_steps(double p);

#endif
