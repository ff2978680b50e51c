/* SPEC.md "Evaluation" and "Gradient-descent baseline": error curves of a
 * trained model at several evaluation noise levels, and the GD baseline on
 * the same contexts. */
#ifndef ICASWEEP_EVAL_H
#define ICASWEEP_EVAL_H

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/model.h"

/* tf_err [P, N] and gd_err [P, N]; with eval_tokens/eval_pred non-NULL also
 * the tokens and predictions at the first evaluation noise level. */
int eval_run(const run_config *cfg, const model *m, float *tf_err,
             float *gd_err, float *eval_tokens, float *eval_pred,
             icas_err *err);

/* The GD baseline on one context: A [d, d] (pred = x A) starts at A (given,
 * updated in place), Adam lr 0.1 for `steps` steps on the PL loss of x A
 * against resp [k, d] ranked by r_seen [k]. Returns 1 - cos(x A, y_star). */
double eval_gd_one(const float *x, const float *resp, const float *r_seen,
                   int k, int d, int steps, const float *y_star, float *A);

/* floor(50 - 25 p) */
int eval_gd_steps(double p);

#endif
