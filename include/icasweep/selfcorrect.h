/* docs/science.md, "The closed loop" (beyond the paper): a trained
 * model is fed its own answers, each mapped onto the task's response family
 * and judged by a critic that errs with probability q, round after round;
 * the error of every round, the open-loop error on the same contexts and
 * the critic's Kendall tau are what a run reports (run_result.sc_*).
 *
 * One context, one (q, k0):
 *   tokens: x, y_i, (r'_i, 0..0) for the k0 given triplets, i < k0, with
 *           r'_i the rewards seen at noise q (task_seen_rewards); after
 *           them only the query tokens x, the rest zero;
 *   round t = 1..R, at position i = k0 + t - 1:
 *     v_t   = the model's prediction at query token 3i;
 *     v_t  ~ a y* + b e (least squares in span(y*, e));
 *     r_t   = a / (a + b) clipped to [0, 1], 0 when a + b <= 0 (true reward);
 *     r'_t  = a fresh U(0,1) with probability q, else r_t (the critic);
 *     the triplet (x, r_t y* + (1 - r_t) e, r'_t) is written at position i;
 *     err_t = 1 - cos(v_t, y*).
 * The model is causal, so one forward pass per round over the whole
 * sequence is exact: tokens after 3i (zeros, or whatever they hold) do not
 * reach the prediction at 3i.
 *
 * Random numbers: the critic's two draws for the response at position i of
 * evaluation context c come from stream (RNG_CRITIC, c, i) of the run's
 * seed, whether it errs first and its guess second, the same at every q
 * (coupled across q like the task's reward noise). Contexts are processed
 * in fixed chunks of SELFCORRECT_CHUNK and means are taken in context order,
 * so the numbers do not depend on the thread count. */
#ifndef ICASWEEP_SELFCORRECT_H
#define ICASWEEP_SELFCORRECT_H

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/model.h"
#include "icasweep/result.h"
#include "icasweep/task.h"

/* Contexts per forward pass: the same count as ordinary evaluation, so the
 * open-loop errors equal /eval/tf_err bit for bit where p = q. */
#define SELFCORRECT_CHUNK 8

/* Least squares of v [d] in the plane of y* and e [d]: the (a, b) that
 * minimise |v - a y* - b e|, from the 2x2 normal equations in double. When
 * y* and e are parallel (or zero) the plane is a line: b = 0 and a is the
 * projection on y* (a = 0 if y* is zero). */
void selfcorrect_project(const float *v, const float *y_star, const float *e, int d,
                         double *a, double *b);

/* The true reward of a response a y* + b e: a / (a + b) clipped to [0, 1];
 * 0 when a + b <= 0 (or not a number). */
double selfcorrect_true_reward(double a, double b);

/* Kendall's tau-b of x and y [n] (ties counted as neither concordant nor
 * discordant, the denominator corrected for them); NaN when n < 2 or when
 * x or y has no two distinct values. */
double selfcorrect_kendall_tau(const float *x, const float *y, int n);

/* What the loop needs from a model: predictions at the N query tokens of M
 * (at most SELFCORRECT_CHUNK) sequences, tokens [M, 3N, d] -> out [M, N, d].
 * A stand-in predictor in the tests reads the tokens directly. */
typedef struct {
    void (*predict)(void *user, const float *tokens, int M, float *out);
    void *user;
} sc_predictor;

/* The closed loop and the open-loop comparison on contexts ctx[0..B-1],
 * at every q and k0 of cfg, with the critic's draws from cfg->seed:
 * fills out->sc_err, sc_open_err [Q, K0, R] and sc_tau [Q, K0] (allocated by
 * run_result_alloc). sc_tau is the mean over rounds of the tau-b between the
 * critic's rewards and the true rewards across the B contexts (rounds where
 * it is undefined are left out; NaN if all are). */
int selfcorrect_loop(const run_config *cfg, const task_context *ctx, int B,
                     const sc_predictor *pred, run_result *out, icas_err *err);

/* The loop with a trained model on the run's evaluation contexts (those of
 * eval_run, from eval_contexts_create). Does nothing when cfg->sc_rounds
 * is 0. */
int selfcorrect_run(const run_config *cfg, const model *m, run_result *out, icas_err *err);

#endif
