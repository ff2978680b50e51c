/* One run from start to result: initialise, train with Adam on fresh
 * contexts (docs/science.md, "Training"), then evaluate (eval.h) and, when configured,
 * run the closed self-correction loop (selfcorrect.h). Chunks of
 * TRAIN_CHUNK contexts bound activation memory; their gradients accumulate
 * in a fixed order, so results do not depend on the thread count. */
#ifndef ICASWEEP_TRAIN_H
#define ICASWEEP_TRAIN_H

#include <signal.h>
#include <stddef.h>

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/model.h"
#include "icasweep/result.h"

/* Two product blocks (GEMM_BLOCK_CONTEXTS) per chunk, one for each of two
 * threads; a chunk of 16 was about 5% slower on one thread: the
 * activations of fewer contexts stay in cache. Results depend on it. */
#define TRAIN_CHUNK 8

typedef struct {
    /* called after every step; may be NULL */
    void (*progress)(void *user, int step, int steps, float loss);
    void *user;
    /* when it becomes non-zero the run checkpoints and returns
     * RUN_INTERRUPTED; may be NULL */
    const volatile sig_atomic_t *stop;
    const char *checkpoint_path; /* NULL: no checkpoints */
    int checkpoint_every;        /* steps; 0: only when stopped */
    int save_model;
    /* 1: a finished run leaves its checkpoint for the caller to remove
     * once its result is durable; 0: it removes it itself */
    int keep_checkpoint;
} train_options;

/* The training loop one step at a time, for the benchmark and the tests. */
typedef struct trainer trainer;

/* Seconds spent per phase since creation (or the last reset). */
typedef struct {
    double data;        /* sampling contexts and building tokens */
    double matmul;      /* BLAS products of the linear layers */
    double attention;   /* scores, softmax/mask, weighted sums, backward */
    double elementwise; /* LayerNorm, GELU, residuals, bias sums */
    double loss;        /* ranking loss and its gradient */
    double optimizer;   /* Adam */
} train_profile;

int trainer_create(trainer **t, const run_config *cfg, icas_err *err);
void trainer_free(trainer *t);
/* One whole training step (data, forward, loss, backward, Adam) for step
 * index `step` (0-based; it selects the step's contexts). Returns the mean
 * loss over the batch. */
float trainer_step(trainer *t, int step);
const train_profile *trainer_profile(const trainer *t);
void trainer_reset_profile(trainer *t);
/* The model being trained (parameters readable, e.g. for evaluation). */
model *trainer_model(trainer *t);

/* Trains and evaluates one configuration. Returns 0 when a result was
 * produced (status DONE, DIVERGED or INTERRUPTED: see out->status), non-zero
 * with err set when the run could not be carried out (allocation, I/O).
 * Resumes from checkpoint_path when it holds a checkpoint of this run. */
int train_and_evaluate(const run_config *cfg, const train_options *opt,
                       run_result *out, icas_err *err);

#endif
