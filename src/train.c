#include "icasweep/train.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdint.h>

#include "icasweep/atomicfile.h"
#include "icasweep/blasthreads.h"
#include "icasweep/eval.h"
#include "icasweep/hash.h"
#include "icasweep/loss.h"
#include "icasweep/optim.h"
#include "icasweep/rng.h"
#include "icasweep/selfcorrect.h"
#include "icasweep/task.h"

_Static_assert(TRAIN_CHUNK <= CONFIG_MAX_CONTEXTS_PER_PASS, "config_check_sizes bounds passes");

/* ---- the training step ---------------------------------------------- */

struct trainer {
    run_config cfg;
    model m;
    model_acts acts;
    adam_state opt;
    task_context *ctx; /* [TRAIN_CHUNK] */
    float *tokens;     /* [TRAIN_CHUNK, T, d] */
    float *r_seen;     /* [TRAIN_CHUNK, N] */
    double *loss_c;    /* [TRAIN_CHUNK] */
    train_profile prof;
};

int trainer_create(trainer **out, const run_config *cfg, icas_err *err)
{
    if (config_validate(cfg, err))
        return -1;
    /* the model calls BLAS inside its OpenMP loops; the commands warn when
     * the BLAS is one that cannot be told */
    char blas_why[512];
    (void)blas_threads_single(blas_why, sizeof blas_why);
    trainer *t = calloc(1, sizeof *t);
    if (!t)
        return icas_fail(err, "trainer: out of memory");
    const int chunk = TRAIN_CHUNK, d = cfg->dims, N = cfg->points, T = 3 * N;
    t->cfg = *cfg;
    if (model_create(&t->m, model_dims_of(cfg), err) ||
        model_acts_create(&t->acts, t->m.dims, chunk, TASK_QUERY_STRIDE,
                          (precision_kind)cfg->precision, err) ||
        (cfg->precision == PRECISION_BF16 && model_enable_bf16(&t->m, err)) ||
        adam_init(&t->opt, t->m.n_params, cfg->lr, err))
        goto fail;
    model_init_params(&t->m, cfg->seed);
    t->ctx = calloc(chunk, sizeof *t->ctx);
    t->tokens = malloc(sizeof(float) * (size_t)chunk * T * d);
    t->r_seen = malloc(sizeof(float) * (size_t)chunk * N);
    t->loss_c = malloc(sizeof(double) * chunk);
    if (!t->ctx || !t->tokens || !t->r_seen || !t->loss_c) {
        icas_fail(err, "trainer: out of memory");
        goto fail;
    }
    for (int b = 0; b < chunk; b++)
        if (task_context_alloc(&t->ctx[b], d, N)) {
            icas_fail(err, "trainer: out of memory");
            goto fail;
        }
    *out = t;
    return 0;
fail:
    trainer_free(t);
    return -1;
}

void trainer_free(trainer *t)
{
    if (!t)
        return;
    if (t->ctx)
        for (int b = 0; b < TRAIN_CHUNK; b++)
            task_context_free(&t->ctx[b]);
    free(t->ctx);
    free(t->tokens);
    free(t->r_seen);
    free(t->loss_c);
    adam_free(&t->opt);
    model_acts_free(&t->acts);
    model_free(&t->m);
    free(t);
}

model *trainer_model(trainer *t) { return &t->m; }

const train_profile *trainer_profile(const trainer *t)
{
    /* the model's own timers live in its activations */
    ((trainer *)t)->prof.matmul = t->acts.t_matmul;
    ((trainer *)t)->prof.attention = t->acts.t_attention;
    ((trainer *)t)->prof.elementwise = t->acts.t_elementwise;
    return &t->prof;
}

void trainer_reset_profile(trainer *t)
{
    memset(&t->prof, 0, sizeof t->prof);
    t->acts.t_matmul = t->acts.t_attention = t->acts.t_elementwise = 0;
}

float trainer_step(trainer *t, int step)
{
    const run_config *cfg = &t->cfg;
    const int chunk = TRAIN_CHUNK, d = cfg->dims, N = cfg->points, T = 3 * N;
    const int B = cfg->batch;
    double loss_sum = 0, t0;

    model_zero_grad(&t->m);
    for (int c0 = 0; c0 < B; c0 += chunk) {
        const int M = B - c0 < chunk ? B - c0 : chunk;
        t0 = omp_get_wtime();
#pragma omp parallel for schedule(static)
        for (int b = 0; b < M; b++) {
            rng_state rng;
            rng_init(&rng, cfg->seed,
                     rng_stream(RNG_TRAIN, (uint64_t)step, (uint64_t)(c0 + b)));
            task_sample(&t->ctx[b], &rng);
            task_seen_rewards(&t->ctx[b], cfg->train_noise, t->r_seen + (size_t)b * N);
            task_tokens(&t->ctx[b], t->r_seen + (size_t)b * N,
                        t->tokens + (size_t)b * T * d);
        }
        t->prof.data += omp_get_wtime() - t0;

        model_forward(&t->m, &t->acts, t->tokens, M);

        t0 = omp_get_wtime();
        /* the model's outputs are the predictions, [M, N, d] */
        float *dout = t->acts.d_out;
        memset(dout, 0, sizeof(float) * (size_t)M * N * d);
#pragma omp parallel for schedule(static)
        for (int b = 0; b < M; b++)
            t->loss_c[b] = loss_context(cfg->loss, t->acts.out + (size_t)b * N * d,
                                        t->ctx[b].resp, t->r_seen + (size_t)b * N, N, d,
                                        1.0f / (float)B, dout + (size_t)b * N * d);
        for (int b = 0; b < M; b++)
            loss_sum += t->loss_c[b];
        t->prof.loss += omp_get_wtime() - t0;

        model_backward(&t->m, &t->acts, t->tokens, dout, M);
    }
    t0 = omp_get_wtime();
    adam_step(&t->opt, t->m.params, t->m.grads);
    model_params_changed(&t->m);
    t->prof.optimizer += omp_get_wtime() - t0;
    return (float)(loss_sum / B);
}

/* ---- checkpoints ----------------------------------------------------- */

/* A checkpoint is everything that the rest of the run depends on: the
 * parameters, Adam's moments and step count, the losses so far, and the
 * next step (which is also the RNG position, since contexts are addressed
 * by step). Written whole by atomicfile_write, so a kill during the write
 * leaves the previous checkpoint intact. The header names the run, the
 * format and the program version; a checksum (64-bit FNV-1a, hash.h) of
 * everything before it ends the file. A checkpoint that fails any check is
 * not used: the run restarts from step 0 with a warning. */
#define CKPT_MAGIC "ICASCKP2"

typedef struct {
    char magic[8];
    char run_id[ICAS_RUN_ID_LEN];
    char program_version[24];
    int32_t next_step;
    int32_t steps;
    int64_t adam_t;
    uint64_t n_params;
    double elapsed;
} ckpt_header;

static int checkpoint_save(const char *path, const trainer *t, int next_step,
                           const float *train_loss, double elapsed,
                           icas_err *err)
{
    ckpt_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CKPT_MAGIC, 8);
    config_run_id(&t->cfg, h.run_id);
    snprintf(h.program_version, sizeof h.program_version, "%s", ICAS_VERSION);
    h.next_step = next_step;
    h.steps = t->cfg.steps;
    h.adam_t = t->opt.t;
    h.n_params = t->m.n_params;
    h.elapsed = elapsed;
    size_t n = t->m.n_params;
    /* the header, the arrays, then the checksum of both */
    atomicfile_part parts[6] = {{&h, sizeof h},
                                {t->m.params, sizeof(float) * n},
                                {t->opt.m, sizeof(float) * n},
                                {t->opt.v, sizeof(float) * n},
                                {train_loss, sizeof(float) * (size_t)t->cfg.steps}};
    uint64_t sum = HASH_ICASWEEP_INIT;
    for (int i = 0; i < 5; i++)
        sum = hash_fnv1a64(parts[i].data, parts[i].n, sum);
    parts[5] = (atomicfile_part){&sum, sizeof sum};
    return atomicfile_write(path, "checkpoint", parts, 6, err);
}

/* Returns 1 and restores the trainer if `path` holds a sound checkpoint of
 * this run; 0 if there is none; -1 with the reason in err when there is a
 * file that cannot be used (garbled, truncated, checksum mismatch, another
 * run's, another program version's). The trainer is untouched unless 1. */
static int checkpoint_load(const char *path, trainer *t, int *next_step,
                           float *train_loss, double *elapsed, icas_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    ckpt_header h;
    char id[ICAS_RUN_ID_LEN];
    config_run_id(&t->cfg, id);
    size_t n = t->m.n_params, steps = (size_t)t->cfg.steps;
    float *buf = NULL;
    int rc = -1;
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, CKPT_MAGIC, 8) != 0) {
        icas_fail(err, "%s: not a checkpoint of this program's format", path);
    } else if (strncmp(h.program_version, ICAS_VERSION, sizeof h.program_version) != 0) {
        icas_fail(err, "%s: written by icasweep %.24s, this is %s", path, h.program_version,
                  ICAS_VERSION);
    } else if (strncmp(h.run_id, id, ICAS_RUN_ID_LEN) != 0 || h.n_params != n ||
               h.steps != t->cfg.steps) {
        icas_fail(err, "%s: holds run %.20s, not %s", path, h.run_id, id);
    } else if (h.next_step < 0 || h.next_step > h.steps || h.adam_t < 0) {
        icas_fail(err, "%s: impossible step %d of %d", path, h.next_step, h.steps);
    } else if (!(buf = malloc(sizeof(float) * (3 * n + steps)))) {
        icas_fail(err, "%s: out of memory", path);
    } else {
        uint64_t stored, sum = hash_fnv1a64(&h, sizeof h, HASH_ICASWEEP_INIT);
        char extra;
        int ok = fread(buf, sizeof(float), 3 * n + steps, f) == 3 * n + steps &&
                 fread(&stored, sizeof stored, 1, f) == 1 && fread(&extra, 1, 1, f) == 0;
        sum = hash_fnv1a64(buf, sizeof(float) * (3 * n + steps), sum);
        if (!ok) {
            icas_fail(err, "%s: truncated checkpoint", path);
        } else if (stored != sum) {
            icas_fail(err, "%s: checkpoint checksum mismatch (damaged)", path);
        } else {
            memcpy(t->m.params, buf, sizeof(float) * n);
            model_params_changed(&t->m);
            memcpy(t->opt.m, buf + n, sizeof(float) * n);
            memcpy(t->opt.v, buf + 2 * n, sizeof(float) * n);
            memcpy(train_loss, buf + 3 * n, sizeof(float) * steps);
            t->opt.t = h.adam_t;
            *next_step = h.next_step;
            *elapsed = h.elapsed;
            rc = 1;
        }
    }
    free(buf);
    fclose(f);
    return rc;
}

/* ---- a whole run ------------------------------------------------------ */

int train_and_evaluate(const run_config *cfg, const train_options *opt,
                       run_result *out, icas_err *err)
{
    trainer *t = NULL;
    int save_model = opt && opt->save_model;
    const char *ckpt = opt ? opt->checkpoint_path : NULL;
    int every = opt ? opt->checkpoint_every : 0;
    if (run_result_alloc(out, cfg, save_model, err))
        return -1;
    gethostname(out->host, sizeof out->host - 1);
    out->threads = omp_get_max_threads();
    if (trainer_create(&t, cfg, err))
        return -1;

    double start = omp_get_wtime(), before = 0;
    int first = 0;
    if (ckpt) {
        icas_err why;
        if (checkpoint_load(ckpt, t, &first, out->train_loss, &before, &why) < 0)
            fprintf(stderr, "icasweep: warning: %s; run %s restarts from step 0\n", why.msg,
                    out->run_id);
    }
    out->status = RUN_DONE;
    int step;
    for (step = first; step < cfg->steps; step++) {
        if (opt && opt->stop && *opt->stop) {
            out->status = RUN_INTERRUPTED;
            snprintf(out->reason, sizeof out->reason, "interrupted at step %d", step);
            break;
        }
        float loss = trainer_step(t, step);
        out->train_loss[step] = loss;
        out->final_loss = loss;
        if (!isfinite(loss)) {
            out->status = RUN_DIVERGED;
            snprintf(out->reason, sizeof out->reason,
                     "training loss became %s at step %d", isnan(loss) ? "NaN" : "Inf",
                     step + 1);
            step++;
            break;
        }
        if (opt && opt->progress)
            opt->progress(opt->user, step + 1, cfg->steps, loss);
        if (ckpt && every > 0 && (step + 1) % every == 0 && step + 1 < cfg->steps &&
            checkpoint_save(ckpt, t, step + 1, out->train_loss,
                            before + omp_get_wtime() - start, err)) {
            trainer_free(t);
            return -1;
        }
    }
    out->steps_done = step;
    if (step > 0 && isfinite(out->train_loss[step - 1]))
        out->final_loss = out->train_loss[step - 1];
    out->train_seconds = before + omp_get_wtime() - start;

    if (out->status == RUN_INTERRUPTED) {
        int rc = ckpt ? checkpoint_save(ckpt, t, step, out->train_loss,
                                        out->train_seconds, err)
                      : 0;
        out->wall_seconds = out->train_seconds;
        trainer_free(t);
        return rc;
    }
    if (out->status == RUN_DONE) {
        double e0 = omp_get_wtime();
        if (eval_run(cfg, &t->m, out, err) || selfcorrect_run(cfg, &t->m, out, err)) {
            trainer_free(t);
            return -1;
        }
        out->eval_seconds = omp_get_wtime() - e0;
    }
    if (save_model)
        memcpy(out->params, t->m.params, sizeof(float) * t->m.n_params);
    out->wall_seconds = out->train_seconds + out->eval_seconds;
    if (ckpt && !opt->keep_checkpoint)
        unlink(ckpt);
    trainer_free(t);
    return 0;
}
