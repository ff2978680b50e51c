/* One run's configuration (every knob of SPEC.md), its validation, its
 * stable identifier and its cost estimate; and the YAML grid file that
 * expands into many runs. */
#ifndef ICASWEEP_CONFIG_H
#define ICASWEEP_CONFIG_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>

#include "icasweep/error.h"

#define ICAS_MAX_EVAL_NOISE 16
#define ICAS_RUN_ID_LEN 20 /* "r" + 16 hex digits + NUL, padded */

typedef enum { ATTN_SOFTMAX = 0, ATTN_LINEAR = 1 } attention_kind;
typedef enum { LOSS_PL = 0, LOSS_BT = 1 } loss_kind;

typedef struct {
    /* task (SPEC "One context") */
    int dims;   /* d */
    int points; /* N; the sequence has T = 3N tokens */
    /* model */
    int layers; /* L */
    int heads;  /* H */
    int embd;   /* E, divisible by H */
    attention_kind attention;
    int ffn; /* 1: MLP block on, 0: off */
    /* training */
    loss_kind loss;
    int steps;
    int batch;
    double lr;
    double train_noise; /* p at training time, in [0,1] */
    uint64_t seed;
    /* evaluation */
    int eval_batch;
    int n_eval_noise;
    double eval_noise[ICAS_MAX_EVAL_NOISE];
} run_config;

/* The paper's defaults (SPEC.md): d=5, N=20, L=20, H=3, E=96, softmax, MLP
 * on, Plackett-Luce, 3000 steps, batch 256, lr 1e-4, p=0, seed 0, eval batch
 * 256 at p = 0, 0.25, 0.5, 0.75, 1. */
run_config config_default(void);

/* The task's width d is at most this: the sampler and the GD baseline keep
 * a few d x d matrices on the stack of each thread (4 d^2 floats = 64 KiB). */
#define CONFIG_MAX_DIMS 64
/* Training and evaluation run the model on at most this many contexts at a
 * time (TRAIN_CHUNK, EVAL_CHUNK); config_check_sizes bounds its arrays. */
#define CONFIG_MAX_CONTEXTS_PER_PASS 8

/* Checks every field; on failure the message names the field (with the CLI
 * flag spelling, e.g. "--heads 5 does not divide --embd 96"). */
int config_validate(const run_config *cfg, icas_err *err);

/* A stable id derived from everything that changes the run's numbers
 * (configuration and seed), the same on every machine: "r" + 16 hex. */
/* The size limits alone (called by config_validate): every product of sizes
 * that the engine stores in an int or on the stack must fit; the message
 * names the flags and the product. */
int config_check_sizes(const run_config *cfg, icas_err *err);

/* Trainable parameters of the model (as a double: it may exceed any int). */
double config_param_count(const run_config *cfg);

void config_run_id(const run_config *cfg, char out[ICAS_RUN_ID_LEN]);

/* Model FLOPs of one training step: (6 * params + 6 * L * E * T) per token
 * times batch * T tokens (the convention of issue 5). */
double config_train_step_flops(const run_config *cfg);
/* Estimated FLOPs of the whole run: training, evaluation and GD baseline. */
double config_run_flops(const run_config *cfg);

const char *attention_name(attention_kind k);
const char *loss_name(loss_kind k);
int attention_parse(const char *s, attention_kind *out);
int loss_parse(const char *s, loss_kind *out);

/* Human-readable one-line summary "L=2 H=2 E=32 softmax ffn=on pl p=0 ..." */
void config_describe(const run_config *cfg, char *out, size_t n);

#endif
