/* One run's configuration (every knob of docs/science.md), its validation, its
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
/* The closed loop's starting sizes k0 and critic noise levels q (docs/science.md
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
    /* evaluation noise levels p (docs/science.md, "Evaluation") */
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

/* The paper's defaults (docs/science.md): d=5, N=20, L=20, H=3, E=96, softmax, MLP
 * on, Plackett-Luce, 3000 steps, batch 256, lr 1e-4, p=0, seed 0, eval batch
 * 256 at p = 0, 0.25, 0.5, 0.75, 1. */
run_config config_default(void);

/* Training and evaluation run the model on at most this many contexts at a
 * time (TRAIN_CHUNK, EVAL_CHUNK); config_check_sizes (part of config_check)
 * bounds its arrays by it. */
#define CONFIG_MAX_CONTEXTS_PER_PASS 8

/* ---- validation ------------------------------------------------------------
 * One validation for every way a run is described: the command line and the
 * grid parse their text with the same functions and check it with the same
 * checks; a problem says which field is at fault and which fields it names,
 * and its message spells them as the caller asks: the command line's flags
 * or the grid's keys. */

/* The fields of a run that parsing and validation name: the knobs of
 * knobs.def by their knob_id, then the lists. */
enum {
    CONFIG_FIELD_EVAL_NOISE = CONFIG_N_KNOBS, /* --eval-noise, eval_noise */
    CONFIG_FIELD_SC_ROUNDS,                   /* --sc-rounds, selfcorrect.rounds */
    CONFIG_FIELD_SC_K0,                       /* --sc-k0, selfcorrect.k0 */
    CONFIG_FIELD_SC_Q,                        /* --sc-q, selfcorrect.q */
    CONFIG_N_FIELDS
};

typedef enum {
    CONFIG_NAMES_FLAGS, /* --eval-noise, --sc-k0: the command line */
    CONFIG_NAMES_KEYS   /* eval_noise, selfcorrect.k0: the grid file */
} config_naming;

/* The name of field f (a knob_id or CONFIG_FIELD_*) as `naming` spells it. */
void config_field_name(int field, config_naming naming, char *out, size_t n);
/* The field whose name under `naming` is `name`, or -1. */
int config_field_named(const char *name, config_naming naming);
/* 1 for the list fields (eval_noise, k0, q): they take several values. */
int config_field_is_list(int field);
/* A list field's most values (ICAS_MAX_EVAL_NOISE, ...); 1 for the others. */
int config_field_max_items(int field);

#define CONFIG_PROBLEM_MAX_NAMED 8

typedef struct {
    int field; /* the field at fault */
    int item;  /* a list field's value at fault, by index; -1: the field as a whole */
    /* every field the message names, the one at fault first: a combination
     * ("heads 5 does not divide embd 96") belongs to whichever of them the
     * caller can point at */
    int n_named;
    int named[CONFIG_PROBLEM_MAX_NAMED];
    char msg[1024]; /* "--sc-q 1.5: must be in [0,1]", or with the grid's keys */
} config_problem;

/* Parses one value of a field from text: a scalar knob's value (item is
 * ignored), or value number `item` of a list field (the list's count is not
 * changed). The syntax is plain decimal notation (no "inf", hexadecimal or
 * blanks), a word for a choice; the value is then checked against its own
 * range. Returns 0, or -1 with p filled in. */
int config_parse_item(int field, const char *text, int item, run_config *c,
                      config_naming naming, config_problem *p);
/* Checks that a list field may hold n values (1 to its maximum). */
int config_check_count(int field, int n, config_naming naming, config_problem *p);
/* A whole list field from its values' texts: count, each value, then the
 * field's check (config_check_field). */
int config_parse_list(int field, const char *const *items, int n, run_config *c,
                      config_naming naming, config_problem *p);
/* Checks one field on its own: a knob against its range; a list's count,
 * each value's range, and that no value is listed twice (a repeated noise
 * level or k0 or q would be computed twice into identical rows and give
 * the run another id for the same numbers). */
int config_check_field(int field, const run_config *c, config_naming naming,
                       config_problem *p);
/* Checks a whole run: every field, then the combinations (heads divides
 * embd; the products of sizes the engine stores in an int or on the stack,
 * README "Limits"; the closed loop: rounds > 0 needs k0 and q, rounds = 0
 * none, every k0 + rounds at most points - 1). */
int config_check(const run_config *c, config_naming naming, config_problem *p);
/* config_check with the flags' names, as an icas_err. */
int config_validate(const run_config *cfg, icas_err *err);

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
