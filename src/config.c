#include "icasweep/config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "icasweep/hash.h"

/* ---- the knob table ------------------------------------------------------ */

/* knobs.def writes a CHOICE's words as WORDS("a", "b"): a NULL-terminated
 * array of static storage. */
#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const char *const SWITCH_WORDS[] = {"off", "on", NULL};

const knob_def config_knobs[CONFIG_N_KNOBS] = {
#define KNOB(name_, type_, default_, lo_, hi_, words_, section_, label_, meaning_)         \
    [KNOB_ID_##name_] = {.name = #name_,                                                    \
                         .type = KNOB_TYPE_##type_,                                         \
                         .offset = offsetof(run_config, name_),                             \
                         .default_value = (default_),                                       \
                         .lo = (lo_),                                                       \
                         .hi = (hi_),                                                       \
                         .words = KNOB_TYPE_##type_ == KNOB_TYPE_SWITCH ? SWITCH_WORDS      \
                                                                        : (words_),         \
                         .section = KNOB_SECTION_##section_,                                \
                         .label = label_,                                                   \
                         .meaning = meaning_},
#include "icasweep/knobs.def"
#undef KNOB
};

const knob_def *config_knob_named(const char *name)
{
    for (int i = 0; i < CONFIG_N_KNOBS; i++)
        if (strcmp(config_knobs[i].name, name) == 0)
            return &config_knobs[i];
    return NULL;
}

void knob_flag(const knob_def *k, char *out, size_t n)
{
    snprintf(out, n, "--%s", k->name);
    for (char *p = out; *p; p++)
        if (*p == '_')
            *p = '-';
}

const char *knob_section_name(knob_section s)
{
    static const char *const names[] = {"task", "model", "training", "evaluation"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

static int n_words(const knob_def *k)
{
    int n = 0;
    while (k->words && k->words[n])
        n++;
    return n;
}

int knob_word_index(const knob_def *k, const char *word)
{
    for (int i = 0; i < n_words(k); i++)
        if (strcmp(k->words[i], word) == 0)
            return i;
    if (k->type == KNOB_TYPE_SWITCH) {
        if (strcmp(word, "false") == 0) return 0;
        if (strcmp(word, "true") == 0) return 1;
    }
    return -1;
}

void knob_words_text(const knob_def *k, const char *sep, const char *last_sep, char *out,
                     size_t n)
{
    size_t len = 0;
    int count = n_words(k);
    out[0] = 0;
    for (int i = 0; i < count && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, "%s%s",
                                i == 0 ? "" : i == count - 1 ? last_sep : sep, k->words[i]);
}

static void *field(const knob_def *k, run_config *c) { return (char *)c + k->offset; }

static const void *cfield(const knob_def *k, const run_config *c)
{
    return (const char *)c + k->offset;
}

int knob_get_int(const knob_def *k, const run_config *c)
{
    int v;
    memcpy(&v, cfield(k, c), sizeof v);
    return v;
}

double knob_get_real(const knob_def *k, const run_config *c)
{
    double v;
    memcpy(&v, cfield(k, c), sizeof v);
    return v;
}

uint64_t knob_get_seed(const knob_def *k, const run_config *c)
{
    uint64_t v;
    memcpy(&v, cfield(k, c), sizeof v);
    return v;
}

static int is_real(const knob_def *k)
{
    return k->type == KNOB_TYPE_REAL || k->type == KNOB_TYPE_POSITIVE;
}

void knob_set(const knob_def *k, run_config *c, double value)
{
    if (k->type == KNOB_TYPE_SEED) {
        uint64_t v = (uint64_t)value;
        memcpy(field(k, c), &v, sizeof v);
    } else if (is_real(k)) {
        memcpy(field(k, c), &value, sizeof value);
    } else {
        int v = (int)value;
        memcpy(field(k, c), &v, sizeof v);
    }
}

void knob_format(const knob_def *k, const run_config *c, knob_text_style style, char *out,
                 size_t n)
{
    switch (k->type) {
    case KNOB_TYPE_COUNT:
        snprintf(out, n, "%d", knob_get_int(k, c));
        return;
    case KNOB_TYPE_REAL:
    case KNOB_TYPE_POSITIVE:
        snprintf(out, n, style == KNOB_TEXT_ID ? "%.17g" : "%g", knob_get_real(k, c));
        return;
    case KNOB_TYPE_SWITCH:
    case KNOB_TYPE_CHOICE: {
        int v = knob_get_int(k, c);
        if (k->type == KNOB_TYPE_SWITCH && style == KNOB_TEXT_ID)
            snprintf(out, n, "%d", v);
        else
            snprintf(out, n, "%s", v >= 0 && v < n_words(k) ? k->words[v] : "?");
        return;
    }
    case KNOB_TYPE_SEED:
        snprintf(out, n, "%" PRIu64, knob_get_seed(k, c));
        return;
    }
}

int knob_is_default(const knob_def *k, const run_config *c)
{
    if (k->type == KNOB_TYPE_SEED)
        return knob_get_seed(k, c) == (uint64_t)k->default_value;
    if (is_real(k))
        return knob_get_real(k, c) == k->default_value;
    return knob_get_int(k, c) == (int)k->default_value;
}

int knob_check(const knob_def *k, const run_config *c, icas_err *err)
{
    char flag[64], words[128];
    knob_flag(k, flag, sizeof flag);
    switch (k->type) {
    case KNOB_TYPE_COUNT: {
        int v = knob_get_int(k, c);
        if (v < k->lo || v > k->hi)
            return icas_fail(err, "%s %d: must be between %.0f and %.0f", flag, v, k->lo, k->hi);
        return 0;
    }
    case KNOB_TYPE_REAL: {
        double v = knob_get_real(k, c);
        if (!(v >= k->lo && v <= k->hi))
            return icas_fail(err, "%s %g: must be in [%g,%g]", flag, v, k->lo, k->hi);
        return 0;
    }
    case KNOB_TYPE_POSITIVE: {
        double v = knob_get_real(k, c);
        if (!(v > 0) || !isfinite(v))
            return icas_fail(err, "%s %g: must be a positive number", flag, v);
        return 0;
    }
    case KNOB_TYPE_CHOICE:
    case KNOB_TYPE_SWITCH: {
        int v = knob_get_int(k, c);
        if (v < 0 || v >= n_words(k)) {
            knob_words_text(k, ", ", " or ", words, sizeof words);
            return icas_fail(err, "%s: value %d is none of %s", flag, v, words);
        }
        return 0;
    }
    case KNOB_TYPE_SEED:
        return 0;
    }
    return icas_fail(err, "%s: unknown knob type %d", flag, (int)k->type);
}

int knob_parse(const knob_def *k, const char *text, run_config *c, icas_err *err)
{
    char flag[64], words[128], *end;
    knob_flag(k, flag, sizeof flag);
    errno = 0;
    switch (k->type) {
    case KNOB_TYPE_COUNT: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < INT_MIN || v > INT_MAX)
            return icas_fail(err, "%s %s: expected an integer", flag, text);
        knob_set(k, c, (double)v);
        break;
    }
    case KNOB_TYPE_REAL:
    case KNOB_TYPE_POSITIVE: {
        double v = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(v))
            return icas_fail(err, "%s %s: expected a number", flag, text);
        knob_set(k, c, v);
        break;
    }
    case KNOB_TYPE_CHOICE:
    case KNOB_TYPE_SWITCH: {
        int v = knob_word_index(k, text);
        if (v < 0) {
            knob_words_text(k, ", ", " or ", words, sizeof words);
            return icas_fail(err, "%s %s: expected %s", flag, text, words);
        }
        knob_set(k, c, v);
        break;
    }
    case KNOB_TYPE_SEED: {
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || end == text || *end || text[0] == '-' || text[0] == '+' ||
            text[0] == ' ')
            return icas_fail(err, "%s %s: expected a non-negative integer", flag, text);
        uint64_t s = (uint64_t)v;
        memcpy(field(k, c), &s, sizeof s);
        break;
    }
    }
    return knob_check(k, c, err);
}

/* ---- one run ---------------------------------------------------------------- */

run_config config_default(void)
{
    run_config c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < CONFIG_N_KNOBS; i++)
        knob_set(&config_knobs[i], &c, config_knobs[i].default_value);
    c.n_eval_noise = 5;
    for (int i = 0; i < 5; i++)
        c.eval_noise[i] = 0.25 * i;
    return c;
}

const char *attention_name(attention_kind k)
{
    const knob_def *knob = &config_knobs[KNOB_ID_attention];
    return (int)k >= 0 && (int)k < n_words(knob) ? knob->words[k] : "?";
}

const char *loss_name(loss_kind k)
{
    const knob_def *knob = &config_knobs[KNOB_ID_loss];
    return (int)k >= 0 && (int)k < n_words(knob) ? knob->words[k] : "?";
}

/* The knobs' ranges (knobs.def) keep a typo (--layers 2000) from allocating
 * the machine away; then the combinations. */
int config_validate(const run_config *c, icas_err *err)
{
    for (int i = 0; i < CONFIG_N_KNOBS; i++)
        if (knob_check(&config_knobs[i], c, err))
            return -1;
    if (c->embd % c->heads != 0)
        return icas_fail(err, "--heads %d does not divide --embd %d",
                         c->heads, c->embd);
    if (c->n_eval_noise < 1 || c->n_eval_noise > ICAS_MAX_EVAL_NOISE)
        return icas_fail(err, "--eval-noise: between 1 and %d levels, got %d",
                         ICAS_MAX_EVAL_NOISE, c->n_eval_noise);
    for (int i = 0; i < c->n_eval_noise; i++)
        if (!(c->eval_noise[i] >= 0 && c->eval_noise[i] <= 1))
            return icas_fail(err, "--eval-noise %g: must be in [0,1]",
                             c->eval_noise[i]);
    if (config_check_sizes(c, err))
        return -1;
    return config_validate_selfcorrect(c, err);
}

int config_validate_selfcorrect(const run_config *c, icas_err *err)
{
    if (c->sc_rounds < 0 || c->sc_rounds > 10000)
        return icas_fail(err, "--sc-rounds %d: must be between 0 (no closed loop) and 10000",
                         c->sc_rounds);
    if (c->n_sc_k0 < 0 || c->n_sc_k0 > ICAS_MAX_SC_K0)
        return icas_fail(err, "--sc-k0: at most %d values, got %d", ICAS_MAX_SC_K0, c->n_sc_k0);
    if (c->n_sc_q < 0 || c->n_sc_q > ICAS_MAX_SC_Q)
        return icas_fail(err, "--sc-q: at most %d levels, got %d", ICAS_MAX_SC_Q, c->n_sc_q);
    if (c->sc_rounds == 0) {
        if (c->n_sc_k0 || c->n_sc_q)
            return icas_fail(err, "--sc-%s given without --sc-rounds (the number of "
                                  "closed-loop rounds, at least 1)", c->n_sc_k0 ? "k0" : "q");
        return 0;
    }
    if (c->n_sc_k0 == 0 || c->n_sc_q == 0)
        return icas_fail(err, "--sc-rounds %d: needs --sc-%s (a list such as %s)", c->sc_rounds,
                         c->n_sc_k0 == 0 ? "k0" : "q", c->n_sc_k0 == 0 ? "2,5" : "0,0.5,1");
    for (int i = 0; i < c->n_sc_k0; i++) {
        int k0 = c->sc_k0[i];
        /* the loop predicts at query positions k0 .. k0 + rounds - 1 (docs/science.md:
         * it runs while k0 + rounds <= N - 1) */
        if (k0 < 0 || (long)k0 + c->sc_rounds > (long)c->points - 1)
            return icas_fail(err, "--sc-k0 %d: with --sc-rounds %d, k0 must be in [0, %d] "
                                  "(k0 + rounds at most --points %d minus 1)",
                             k0, c->sc_rounds, c->points - 1 - c->sc_rounds, c->points);
        for (int j = 0; j < i; j++)
            if (c->sc_k0[j] == k0)
                return icas_fail(err, "--sc-k0 %d: listed twice", k0);
    }
    for (int i = 0; i < c->n_sc_q; i++) {
        double q = c->sc_q[i];
        if (!(q >= 0 && q <= 1))
            return icas_fail(err, "--sc-q %g: must be in [0,1]", q);
        for (int j = 0; j < i; j++)
            if (c->sc_q[j] == q)
                return icas_fail(err, "--sc-q %g: listed twice", q);
    }
    return 0;
}

/* Products of sizes that the engine holds in an `int` (array indices, MPI
 * element counts) or on the stack; each is refused here, before any work,
 * rather than overflowing later. The table is in the README ("Limits"). */
int config_check_sizes(const run_config *c, icas_err *err)
{
    const int64_t M = CONFIG_MAX_CONTEXTS_PER_PASS, T = 3 * (int64_t)c->points;
    const int64_t E = c->embd, d = c->dims, H = c->heads, L = c->layers;
    if (c->dims > CONFIG_MAX_DIMS)
        return icas_fail(err, "--dims %d: at most %d (the task and the GD baseline keep "
                              "d x d matrices on the stack)", c->dims, CONFIG_MAX_DIMS);
    struct {
        const char *what;
        double value; /* in double: the products themselves may overflow int64 */
    } products[] = {
        {"parameters (sent as one MPI message)", config_param_count(c)},
        {"activations of one layer's MLP, 8 contexts x 3*points tokens x 4*embd",
         (double)M * T * 4 * E},
        {"attention scores of one layer, 8 contexts x heads x (3*points)^2",
         (double)M * H * T * T},
        {"one weight matrix, embd x 4*embd", 4.0 * E * E},
        {"evaluation tokens, eval_batch x 3*points x dims (sent as one MPI message)",
         (double)c->eval_batch * T * d},
        {"evaluation errors, eval_batch x points x 3", (double)c->eval_batch * T},
        {"layers x 8 contexts x 3*points tokens", (double)L * M * T},
    };
    for (size_t i = 0; i < sizeof products / sizeof products[0]; i++)
        if (products[i].value > (double)INT32_MAX)
            return icas_fail(err, "--layers %d --heads %d --embd %d --points %d --dims %d "
                                  "--eval-batch %d: %s = %.3g exceeds %d",
                             c->layers, c->heads, c->embd, c->points, c->dims,
                             c->eval_batch, products[i].what, products[i].value, INT32_MAX);
    return 0;
}

void config_describe(const run_config *c, char *out, size_t n)
{
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < CONFIG_N_KNOBS && len < n; i++) {
        const knob_def *k = &config_knobs[i];
        if (k->section != KNOB_SECTION_MODEL && k->section != KNOB_SECTION_TRAINING)
            continue;
        char value[64];
        knob_format(k, c, KNOB_TEXT_HUMAN, value, sizeof value);
        len += (size_t)snprintf(out + len, n - len, "%s%s=%s", len ? " " : "", k->label, value);
    }
    if (c->sc_rounds > 0 && len < n)
        snprintf(out + len, n - len, " selfcorrect: rounds=%d x %d k0 x %d q", c->sc_rounds,
                 c->n_sc_k0, c->n_sc_q);
}

/* The knobs of the first version of the run id, in its order. Their text
 * is fixed so that the ids of every file already written stay valid; knobs
 * added since enter the id after everything else, and only when they differ
 * from their default, so an old configuration keeps its id. */
static const char *const ID_KNOBS_V1[] = {"dims",  "points", "layers", "heads", "embd",
                                          "attention", "ffn", "loss", "steps", "batch",
                                          "lr", "train_noise", "seed", "eval_batch"};

static int in_id_v1(const knob_def *k)
{
    for (size_t i = 0; i < sizeof ID_KNOBS_V1 / sizeof ID_KNOBS_V1[0]; i++)
        if (strcmp(ID_KNOBS_V1[i], k->name) == 0)
            return 1;
    return 0;
}

/* Appends "label=value" with `sep` before it to canon; the id's length is
 * bounded by the knob count, so 2048 bytes do not truncate. */
static int append_knob(char *canon, size_t size, int len, const char *sep, const knob_def *k,
                       const run_config *c)
{
    char value[64];
    knob_format(k, c, KNOB_TEXT_ID, value, sizeof value);
    if (len < (int)size)
        len += snprintf(canon + len, size - (size_t)len, "%s%s=%s", sep, k->label, value);
    return len;
}

/* FNV-1a over a canonical text of the configuration: stable across
 * machines and builds, unlike hashing the struct's bytes (padding). */
void config_run_id(const run_config *c, char out[ICAS_RUN_ID_LEN])
{
    char canon[2048];
    int len = 0;
    for (size_t i = 0; i < sizeof ID_KNOBS_V1 / sizeof ID_KNOBS_V1[0]; i++)
        len = append_knob(canon, sizeof canon, len, i ? ";" : "", config_knob_named(ID_KNOBS_V1[i]),
                          c);
    len += snprintf(canon + len, sizeof canon - (size_t)len, ";en=");
    for (int i = 0; i < c->n_eval_noise && len < (int)sizeof canon - 32; i++)
        len += snprintf(canon + len, sizeof canon - (size_t)len, "%.17g,",
                        c->eval_noise[i]);
    if (c->sc_rounds > 0) {
        len += snprintf(canon + len, sizeof canon - (size_t)len, ";sc=%d;k0=", c->sc_rounds);
        for (int i = 0; i < c->n_sc_k0 && len < (int)sizeof canon - 32; i++)
            len += snprintf(canon + len, sizeof canon - (size_t)len, "%d,", c->sc_k0[i]);
        len += snprintf(canon + len, sizeof canon - (size_t)len, ";q=");
        for (int i = 0; i < c->n_sc_q && len < (int)sizeof canon - 32; i++)
            len += snprintf(canon + len, sizeof canon - (size_t)len, "%.17g,", c->sc_q[i]);
    }
    for (int i = 0; i < CONFIG_N_KNOBS; i++)
        if (!in_id_v1(&config_knobs[i]) && !knob_is_default(&config_knobs[i], c))
            len = append_knob(canon, sizeof canon, len, ";", &config_knobs[i], c);
    if (len > (int)sizeof canon - 1)
        len = (int)sizeof canon - 1;
    uint64_t h = hash_fnv1a64(canon, (size_t)len, HASH_ICASWEEP_INIT);
    snprintf(out, ICAS_RUN_ID_LEN, "r%016" PRIx64, h);
}

double config_param_count(const run_config *c)
{
    double E = c->embd, d = c->dims, T = 3.0 * c->points, L = c->layers;
    double block = 2 * E + E * 3 * E + 3 * E + E * E + E;
    if (c->ffn)
        block += 2 * E + E * 4 * E + 4 * E + 4 * E * E + E;
    return d * E + E + T * E + L * block + 2 * E + E * d + d;
}

double config_train_step_flops(const run_config *c)
{
    double T = 3.0 * c->points;
    double per_token = 6 * config_param_count(c) + 6.0 * c->layers * c->embd * T;
    return per_token * T * c->batch;
}

double config_run_flops(const run_config *c)
{
    double T = 3.0 * c->points;
    double fwd_per_token = 2 * config_param_count(c) + 2.0 * c->layers * c->embd * T;
    double eval = fwd_per_token * T * c->eval_batch * c->n_eval_noise;
    /* GD baseline: per (context, k, level) about 50 Adam steps of k cosines
     * and a d x d update; small but counted. */
    double gd = (double)c->eval_batch * c->points * c->n_eval_noise * 50.0 *
                (c->points * 6.0 * c->dims + 4.0 * c->dims * c->dims);
    /* closed loop: a forward pass of the evaluation batch per round, per
     * (q, k0), and one per q for the open-loop comparison */
    double sc = c->sc_rounds > 0
                    ? fwd_per_token * T * c->eval_batch * c->n_sc_q * (c->n_sc_k0 * c->sc_rounds + 1.0)
                    : 0;
    return config_train_step_flops(c) * c->steps + eval + gd + sc;
}
