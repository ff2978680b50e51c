/* One run's outcome: its status, training curve, evaluation curves and the
 * reference strategies' curves, timings and where it ran. train produces
 * it, sched sends it between ranks, store writes it. */
#ifndef ICASWEEP_RESULT_H
#define ICASWEEP_RESULT_H

#include <stddef.h>

#include "icasweep/config.h"
#include "icasweep/error.h"

typedef enum {
    RUN_PENDING = 0,
    RUN_DONE = 1,
    RUN_DIVERGED = 2,
    RUN_FAILED = 3,
    RUN_INTERRUPTED = 4, /* stopped by a signal; its checkpoint resumes it */
} run_status;

const char *run_status_name(run_status s);

/* The scalar parts of a result, X(type, name, array suffix): the one list
 * that run_result's fields, run_outcome (what the journal and the MPI
 * messages carry) and their copies are made from. */
#define RUN_OUTCOME_FIELDS(X)                                                 \
    X(run_status, status, )                                                   \
    X(char, reason, [256])                                                    \
    X(double, wall_seconds, )  /* training + evaluation of this attempt chain */ \
    X(double, train_seconds, )                                                \
    X(double, eval_seconds, )                                                 \
    X(float, final_loss, )     /* mean training loss of the last step */      \
    X(int, steps_done, )                                                      \
    X(char, host, [64])                                                       \
    X(int, rank, )                                                            \
    X(int, threads, )

#define RUN_OUTCOME_FIELD_(type, name, dims) type name dims;

/* A result's scalar parts as one plain value (sent and journaled as bytes:
 * every rank runs the same binary). */
typedef struct {
    RUN_OUTCOME_FIELDS(RUN_OUTCOME_FIELD_)
} run_outcome;

typedef struct {
    run_config cfg;
    char run_id[ICAS_RUN_ID_LEN];
    RUN_OUTCOME_FIELDS(RUN_OUTCOME_FIELD_)
    float *train_loss;    /* [cfg.steps], NaN where not reached */
    int P, N;
    /* [P, N] each, indexed by evaluation noise and position/example count */
    float *tf_err;        /* transformer error at position i (i examples) */
    float *gd_err;        /* GD baseline with k examples */
    float *blind_err;     /* reward-blind average of k responses; NaN at k = 0 */
    float *pick_err;      /* highest-seen-reward response of k; NaN at k = 0 */
    /* closed-loop self-correction (selfcorrect.h), when cfg.sc_rounds > 0;
     * else NULL. Q = cfg.n_sc_q, K0 = cfg.n_sc_k0, R = cfg.sc_rounds. */
    int SQ, SK, SR;
    float *sc_err;        /* [Q, K0, R] error of round t's own answer */
    float *sc_open_err;   /* [Q, K0, R] open loop: k0 + t - 1 given responses */
    float *sc_tau;        /* [Q, K0] critic's Kendall tau, mean over rounds */
    /* with save_model */
    size_t n_params;
    float *params;        /* [n_params], laid out as model.h's views */
    float *eval_tokens;   /* [eval_batch, 3N, d] at the saved noise level */
    float *eval_pred;     /* [eval_batch, N, d] */
    float *eval_target;   /* [eval_batch, d]: each context's y* */
} run_result;

/* Allocates the curves (NaN-filled) for cfg, and with with_model the
 * parameter and evaluation-context arrays. */
int run_result_alloc(run_result *r, const run_config *cfg, int with_model,
                     icas_err *err);
void run_result_free(run_result *r);

/* The [P, N] curves of a result, in the order they are stored and sent. */
#define RUN_RESULT_N_CURVES 4
void run_result_curves(run_result *r, float *curves[RUN_RESULT_N_CURVES]);

void run_result_get_outcome(const run_result *r, run_outcome *out);
void run_result_set_outcome(run_result *r, const run_outcome *in);

/* 1 when the result carries a saved model: allocated with one, and done
 * (a diverged or interrupted run has no model worth keeping). */
int run_result_has_model(const run_result *r);

/* The arrays of a result, in the one order in which the journal holds
 * them, the MPI messages send them, the store writes them and its row
 * checksum covers them:
 *   eval/tf_err, eval/gd_err, eval/blind_err, eval/pick_err [P*N each],
 *   train/loss [steps]; with a closed loop selfcorrect/err,
 *   selfcorrect/open_err [Q*K0*R], selfcorrect/critic_tau [Q*K0]; with a
 *   model (run_result_has_model) params [n_params], eval_tokens
 *   [B*3N*d], eval_pred [B*N*d], eval_target [B*d].
 * `name` is the dataset's path in the result file (a model's under
 * /models/<run_id>/); `kind` says which group of parts it belongs to. */
typedef enum { RUN_PART_ROW, RUN_PART_SELFCORRECT, RUN_PART_MODEL } run_part_kind;
typedef struct {
    const char *name;
    run_part_kind kind;
    float *data;
    size_t n; /* floats */
} run_part;
#define RUN_RESULT_MAX_PARTS 12
int run_result_parts(const run_result *r, run_part parts[RUN_RESULT_MAX_PARTS]);

/* The closed-loop arrays of a result, in the order they are stored and
 * sent, with their lengths in floats; returns how many there are (0 when
 * the run has no closed loop). */
#define RUN_RESULT_N_SC 3
int run_result_sc_arrays(run_result *r, float *arrays[RUN_RESULT_N_SC],
                         int lengths[RUN_RESULT_N_SC]);

#endif
