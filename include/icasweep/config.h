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
/* The closed loop's starting sizes k0 and critic noise levels q (SPEC
 * "Self-correction in a closed loop"): each (q, k0) pair costs R forward
 * passes of the evaluation batch, so a handful of each is the useful range. */
#define ICAS_MAX_SC_K0 8
#define ICAS_MAX_SC_Q 8

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
    /* closed-loop self-correction after training (selfcorrect.h); rounds 0:
     * none, and then the lists are empty */
    int sc_rounds;                 /* R */
    int n_sc_k0;
    int sc_k0[ICAS_MAX_SC_K0];     /* starting numbers of given triplets */
    int n_sc_q;
    double sc_q[ICAS_MAX_SC_Q];    /* critic noise levels, in [0,1] */
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
/* The closed-loop fields alone (part of config_validate): rounds >= 0; with
 * rounds > 0 one to ICAS_MAX_SC_K0 distinct k0 >= 0 and one to
 * ICAS_MAX_SC_Q distinct q in [0,1], every k0 + rounds <= points - 1; with
 * rounds = 0 no lists. Messages use the flags --sc-rounds, --sc-k0, --sc-q. */
int config_validate_selfcorrect(const run_config *cfg, icas_err *err);

/* The size limits alone (called by config_validate): every product of sizes
 * that the engine stores in an int or on the stack must fit; the message
 * names the flags and the product. */
int config_check_sizes(const run_config *cfg, icas_err *err);

/* Trainable parameters of the model (as a double: it may exceed any int). */
double config_param_count(const run_config *cfg);

/* A stable id derived from everything that changes the run's numbers
 * (configuration and seed), the same on every machine: "r" + 16 hex. The
 * closed-loop fields enter it only when rounds > 0, so configurations
 * without a closed loop keep the ids of files written without them. */
void config_run_id(const run_config *cfg, char out[ICAS_RUN_ID_LEN]);

/* Model FLOPs of one training step: (6 * params + 6 * L * E * T) per token
 * times batch * T tokens. */
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
