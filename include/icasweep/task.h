/* The synthetic in-context alignment task of docs/science.md ("The task", "The
 * sequence"): sampling a context and laying it out as 3N tokens of width d. */
#ifndef ICASWEEP_TASK_H
#define ICASWEEP_TASK_H

#include "icasweep/rng.h"

/* One context; the arrays are owned by the caller (see task_context_alloc). */
typedef struct {
    int d, N;
    float *x;        /* [d]    the query */
    float *y_star;   /* [d]    x W*, the best response */
    float *e;        /* [d]    x W_bad, the bad response */
    float *resp;     /* [N,d]  y_i = r_i y* + (1 - r_i) x W_bad */
    float *r_true;   /* [N]    true rewards, which built the responses */
    float *r_noise;  /* [N]    U(0,1) draws that decide whether a reward is replaced */
    float *r_fresh;  /* [N]    the replacement draws */
} task_context;

int task_context_alloc(task_context *c, int d, int N);
void task_context_free(task_context *c);

/* Draws a context from a stream. The noise draws are part of the context, so
 * the same context can be seen at any noise level (coupled across p). */
void task_sample(task_context *c, rng_state *rng);

/* The rewards the model sees at noise p: r_fresh[i] where r_noise[i] < p,
 * else r_true[i]. */
void task_seen_rewards(const task_context *c, double p, float *r_seen /*[N]*/);

/* tokens [3N, d]: for each i, x, y_i, (r_seen_i, 0, ..., 0). */
void task_tokens(const task_context *c, const float *r_seen, float *tokens);

/* Prediction i is the model's output at token 3i, the query of example i
 * (docs/science.md): the outputs used are those at every TASK_QUERY_STRIDE-th token. */
#define TASK_QUERY_STRIDE 3

#endif
