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

/* The task's width d is at most this: the sampler and the GD baseline keep
 * a few d x d matrices on the stack of each thread (4 d^2 floats = 64 KiB). */
#define CONFIG_MAX_DIMS 64

typedef enum { ATTN_SOFTMAX = 0, ATTN_LINEAR = 1 } attention_kind;
typedef enum { LOSS_PL = 0, LOSS_BT = 1 } loss_kind;
/* the inputs of training's matrix products (matmul.h); sums are FP32 */
typedef enum { PRECISION_FP32 = 0, PRECISION_BF16 = 1 } precision_kind;

/* The C type of each knob type of knobs.def. */
#define CONFIG_CTYPE_COUNT int
#define CONFIG_CTYPE_REAL double
#define CONFIG_CTYPE_POSITIVE double
#define CONFIG_CTYPE_CHOICE int
#define CONFIG_CTYPE_SWITCH int
#define CONFIG_CTYPE_SEED uint64_t

typedef struct {
    /* the scalar knobs, one field each (knobs.def) */
#define KNOB(name, type, ...) CONFIG_CTYPE_##type name;
#include "icasweep/knobs.def"
#undef KNOB
    /* evaluation noise levels p (SPEC "Evaluation") */
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

/* ---- the knob table (knobs.def) ----------------------------------------- */

typedef enum {
    KNOB_TYPE_COUNT, KNOB_TYPE_REAL, KNOB_TYPE_POSITIVE, KNOB_TYPE_CHOICE,
    KNOB_TYPE_SWITCH, KNOB_TYPE_SEED
} knob_type;

typedef enum {
    KNOB_SECTION_TASK, KNOB_SECTION_MODEL, KNOB_SECTION_TRAINING, KNOB_SECTION_EVALUATION
} knob_section;

/* KNOB_ID_<name>: a knob's index in config_knobs, in knobs.def order. */
typedef enum {
#define KNOB(name, ...) KNOB_ID_##name,
#include "icasweep/knobs.def"
#undef KNOB
    CONFIG_N_KNOBS
} knob_id;

typedef struct {
    const char *name;          /* field of run_config, grid key, /runs column */
    knob_type type;
    size_t offset;             /* of the field in run_config */
    double default_value;
    double lo, hi;             /* COUNT and REAL: the inclusive range */
    const char *const *words;  /* CHOICE: the words, by index; NULL-terminated */
    knob_section section;
    const char *label;         /* short name in summaries and the run id */
    const char *meaning;
} knob_def;

extern const knob_def config_knobs[CONFIG_N_KNOBS];

/* The knob called `name` (a grid key or /runs column), or NULL. */
const knob_def *config_knob_named(const char *name);
/* The command-line flag of a knob: "--" and its name, '_' as '-'. */
void knob_flag(const knob_def *k, char *out, size_t n);
/* "task", "model", "training", "evaluation". */
const char *knob_section_name(knob_section s);
/* CHOICE: the index of `word` (a SWITCH also takes off/on/false/true), or
 * -1 when it is none of them. */
int knob_word_index(const knob_def *k, const char *word);
/* The allowed words, "softmax or linear", for messages and help. */
void knob_words_text(const knob_def *k, const char *sep, const char *last_sep, char *out,
                     size_t n);

/* Sets knob k of c from a command-line value, checking the type and range;
 * the message names the flag ("--layers 0: must be between 1 and 1024"). */
int knob_parse(const knob_def *k, const char *text, run_config *c, icas_err *err);
/* Checks knob k's value in c against its range; message as knob_parse. */
int knob_check(const knob_def *k, const run_config *c, icas_err *err);
/* A COUNT, CHOICE or SWITCH value as an int; REAL and POSITIVE as a double. */
int knob_get_int(const knob_def *k, const run_config *c);
double knob_get_real(const knob_def *k, const run_config *c);
uint64_t knob_get_seed(const knob_def *k, const run_config *c);
/* Sets a value of any type but SEED from a double (integers exactly). */
void knob_set(const knob_def *k, run_config *c, double value);

typedef enum {
    KNOB_TEXT_ID,   /* exact and stable: %.17g, a switch as 0/1 */
    KNOB_TEXT_HUMAN /* short: %g, a switch as off/on */
} knob_text_style;
/* The value of knob k in c as text. */
void knob_format(const knob_def *k, const run_config *c, knob_text_style style, char *out,
                 size_t n);
/* 1 when knob k of c holds its default. */
int knob_is_default(const knob_def *k, const run_config *c);

/* The paper's defaults (SPEC.md): d=5, N=20, L=20, H=3, E=96, softmax, MLP
 * on, Plackett-Luce, 3000 steps, batch 256, lr 1e-4, p=0, seed 0, eval batch
 * 256 at p = 0, 0.25, 0.5, 0.75, 1. */
run_config config_default(void);

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

/* A one-line summary of the model and training knobs, "L=2 H=2 E=32
 * attn=softmax ffn=on loss=pl p=0 ...", and the closed loop if any. */
void config_describe(const run_config *cfg, char *out, size_t n);

#endif
