#include "icasweep/config.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
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

static void *field_of(const knob_def *k, run_config *c) { return (char *)c + k->offset; }

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
        memcpy(field_of(k, c), &v, sizeof v);
    } else if (is_real(k)) {
        memcpy(field_of(k, c), &value, sizeof value);
    } else {
        int v = (int)value;
        memcpy(field_of(k, c), &v, sizeof v);
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

/* ---- validation ------------------------------------------------------------ */

/* The names of every field in one spelling: a message names several. */
typedef struct {
    char s[CONFIG_N_FIELDS][40];
} field_names;

static const struct {
    const char *flag, *key;
} LIST_NAMES[CONFIG_N_FIELDS - CONFIG_N_KNOBS] = {
    [CONFIG_FIELD_EVAL_NOISE - CONFIG_N_KNOBS] = {"--eval-noise", "eval_noise"},
    [CONFIG_FIELD_SC_ROUNDS - CONFIG_N_KNOBS] = {"--sc-rounds", "selfcorrect.rounds"},
    [CONFIG_FIELD_SC_K0 - CONFIG_N_KNOBS] = {"--sc-k0", "selfcorrect.k0"},
    [CONFIG_FIELD_SC_Q - CONFIG_N_KNOBS] = {"--sc-q", "selfcorrect.q"},
};

/* The closed loop's rounds: a typo (20000) would run for days. */
#define CONFIG_MAX_SC_ROUNDS 10000

void config_field_name(int field, config_naming naming, char *out, size_t n)
{
    if (field >= 0 && field < CONFIG_N_KNOBS) {
        if (naming == CONFIG_NAMES_FLAGS)
            knob_flag(&config_knobs[field], out, n);
        else
            snprintf(out, n, "%s", config_knobs[field].name);
    } else if (field >= CONFIG_N_KNOBS && field < CONFIG_N_FIELDS) {
        int i = field - CONFIG_N_KNOBS;
        snprintf(out, n, "%s",
                 naming == CONFIG_NAMES_FLAGS ? LIST_NAMES[i].flag : LIST_NAMES[i].key);
    } else {
        snprintf(out, n, "?");
    }
}

int config_field_named(const char *name, config_naming naming)
{
    char buf[64];
    for (int f = 0; f < CONFIG_N_FIELDS; f++) {
        config_field_name(f, naming, buf, sizeof buf);
        if (strcmp(buf, name) == 0)
            return f;
    }
    return -1;
}

int config_field_is_list(int field)
{
    return field == CONFIG_FIELD_EVAL_NOISE || field == CONFIG_FIELD_SC_K0 ||
           field == CONFIG_FIELD_SC_Q;
}

int config_field_max_items(int field)
{
    return field == CONFIG_FIELD_EVAL_NOISE ? ICAS_MAX_EVAL_NOISE
           : field == CONFIG_FIELD_SC_K0    ? ICAS_MAX_SC_K0
           : field == CONFIG_FIELD_SC_Q     ? ICAS_MAX_SC_Q
                                            : 1;
}

static void names_of(config_naming naming, field_names *nm)
{
    for (int f = 0; f < CONFIG_N_FIELDS; f++)
        config_field_name(f, naming, nm->s[f], sizeof nm->s[f]);
}

/* The fields a message names, the one at fault first; -1 ends the list. */
#define NAMED(...) ((const int[]){__VA_ARGS__, -1})

static int fail(config_problem *p, int item, const int *named, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(config_problem *p, int item, const int *named, const char *fmt, ...)
{
    if (!p)
        return -1;
    p->field = named[0];
    p->item = item;
    p->n_named = 0;
    for (int i = 0; named[i] >= 0 && p->n_named < CONFIG_PROBLEM_MAX_NAMED; i++)
        p->named[p->n_named++] = named[i];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof p->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* The values of the list fields. */
static int list_count(int field, const run_config *c)
{
    return field == CONFIG_FIELD_EVAL_NOISE ? c->n_eval_noise
           : field == CONFIG_FIELD_SC_K0    ? c->n_sc_k0
                                            : c->n_sc_q;
}

static double list_value(int field, const run_config *c, int i)
{
    return field == CONFIG_FIELD_EVAL_NOISE ? c->eval_noise[i]
           : field == CONFIG_FIELD_SC_K0    ? c->sc_k0[i]
                                            : c->sc_q[i];
}

static void set_list_count(int field, run_config *c, int n)
{
    *(field == CONFIG_FIELD_EVAL_NOISE ? &c->n_eval_noise
      : field == CONFIG_FIELD_SC_K0    ? &c->n_sc_k0
                                       : &c->n_sc_q) = n;
}

/* Integer-valued fields: COUNT, CHOICE and SWITCH knobs, rounds, k0. */
static int is_integer_field(int field)
{
    if (field < CONFIG_N_KNOBS)
        return !is_real(&config_knobs[field]) && config_knobs[field].type != KNOB_TYPE_SEED;
    return field == CONFIG_FIELD_SC_ROUNDS || field == CONFIG_FIELD_SC_K0;
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Plain decimal notation only ("5", "-0.5", "1.0e-4", ".5"): strtod alone
 * would also take "inf", "nan", hexadecimal and leading blanks. */
static int is_decimal(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    int digits = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        digits++;
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++)
            digits++;
    if (!digits)
        return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        return all_digits(s);
    }
    return *s == 0;
}

/* One value's own check: a knob's range, a list value's range. */
static int check_value(int field, const run_config *c, int item, const field_names *nm,
                       config_problem *p)
{
    const char *name = nm->s[field];
    char words[128];
    if (field == CONFIG_FIELD_EVAL_NOISE || field == CONFIG_FIELD_SC_Q) {
        double v = list_value(field, c, item);
        if (!(v >= 0 && v <= 1))
            return fail(p, item, NAMED(field), "%s %g: must be in [0,1]", name, v);
        return 0;
    }
    if (field == CONFIG_FIELD_SC_K0) {
        if (c->sc_k0[item] < 0)
            return fail(p, item, NAMED(field), "%s %d: must be 0 or more", name, c->sc_k0[item]);
        return 0;
    }
    if (field == CONFIG_FIELD_SC_ROUNDS) {
        if (c->sc_rounds < 0 || c->sc_rounds > CONFIG_MAX_SC_ROUNDS)
            return fail(p, -1, NAMED(field), "%s %d: must be between 0 (no closed loop) and %d",
                        name, c->sc_rounds, CONFIG_MAX_SC_ROUNDS);
        return 0;
    }
    const knob_def *k = &config_knobs[field];
    switch (k->type) {
    case KNOB_TYPE_COUNT: {
        int v = knob_get_int(k, c);
        if (v < k->lo || v > k->hi)
            return fail(p, -1, NAMED(field), "%s %d: must be between %.0f and %.0f", name, v,
                        k->lo, k->hi);
        return 0;
    }
    case KNOB_TYPE_REAL: {
        double v = knob_get_real(k, c);
        if (!(v >= k->lo && v <= k->hi))
            return fail(p, -1, NAMED(field), "%s %g: must be in [%g,%g]", name, v, k->lo, k->hi);
        return 0;
    }
    case KNOB_TYPE_POSITIVE: {
        double v = knob_get_real(k, c);
        if (!(v > 0) || !isfinite(v))
            return fail(p, -1, NAMED(field), "%s %g: must be a positive number", name, v);
        return 0;
    }
    case KNOB_TYPE_CHOICE:
    case KNOB_TYPE_SWITCH: {
        int v = knob_get_int(k, c);
        if (v < 0 || v >= n_words(k)) {
            knob_words_text(k, ", ", " or ", words, sizeof words);
            return fail(p, -1, NAMED(field), "%s: value %d is none of %s", name, v, words);
        }
        return 0;
    }
    case KNOB_TYPE_SEED:
        return 0;
    }
    return fail(p, -1, NAMED(field), "%s: unknown knob type %d", name, (int)k->type);
}

static int parse_item(int field, const char *text, int item, run_config *c,
                      const field_names *nm, config_problem *p)
{
    assert(field >= 0 && field < CONFIG_N_FIELDS);
    const char *name = nm->s[field];
    const knob_def *k = field < CONFIG_N_KNOBS ? &config_knobs[field] : NULL;
    char words[128];
    if (config_field_is_list(field) && (item < 0 || item >= config_field_max_items(field)))
        return fail(p, item, NAMED(field), "%s: at most %d values", name,
                    config_field_max_items(field));
    if (!text[0]) {
        if (k && k->words)
            knob_words_text(k, ", ", " or ", words, sizeof words);
        return fail(p, item, NAMED(field), "%s: expected %s, got nothing", name,
                    k && k->words                  ? words
                    : k && k->type == KNOB_TYPE_SEED ? "a non-negative integer"
                    : is_integer_field(field)        ? "an integer"
                                                     : "a number");
    }
    errno = 0;
    if (k && (k->type == KNOB_TYPE_CHOICE || k->type == KNOB_TYPE_SWITCH)) {
        int v = knob_word_index(k, text);
        if (v < 0) {
            knob_words_text(k, ", ", " or ", words, sizeof words);
            return fail(p, item, NAMED(field), "%s %s: expected %s", name, text, words);
        }
        knob_set(k, c, v);
    } else if (k && k->type == KNOB_TYPE_SEED) {
        if (!all_digits(text))
            return fail(p, item, NAMED(field), "%s %s: expected a non-negative integer", name,
                        text);
        unsigned long long v = strtoull(text, NULL, 10);
        if (errno == ERANGE || v > UINT64_MAX)
            return fail(p, item, NAMED(field), "%s %s: does not fit 64 bits", name, text);
        uint64_t s = (uint64_t)v;
        memcpy(field_of(k, c), &s, sizeof s);
    } else if (is_integer_field(field)) {
        if (!all_digits(text + (text[0] == '+' || text[0] == '-')))
            return fail(p, item, NAMED(field), "%s %s: expected an integer", name, text);
        long long v = strtoll(text, NULL, 10);
        if (errno == ERANGE || v < INT_MIN || v > INT_MAX) {
            if (k)
                return fail(p, item, NAMED(field), "%s %s: must be between %.0f and %.0f", name,
                            text, k->lo, k->hi);
            return fail(p, item, NAMED(field), "%s %s: out of range", name, text);
        }
        if (k)
            knob_set(k, c, (double)v);
        else if (field == CONFIG_FIELD_SC_ROUNDS)
            c->sc_rounds = (int)v;
        else
            c->sc_k0[item] = (int)v;
    } else {
        if (!is_decimal(text))
            return fail(p, item, NAMED(field), "%s %s: expected a number", name, text);
        double v = strtod(text, NULL);
        if (errno == ERANGE || !isfinite(v))
            return fail(p, item, NAMED(field), "%s %s: out of range", name, text);
        if (k)
            knob_set(k, c, v);
        else if (field == CONFIG_FIELD_EVAL_NOISE)
            c->eval_noise[item] = v;
        else
            c->sc_q[item] = v;
    }
    return check_value(field, c, config_field_is_list(field) ? item : -1, nm, p);
}

int config_parse_item(int field, const char *text, int item, run_config *c,
                      config_naming naming, config_problem *p)
{
    field_names nm;
    names_of(naming, &nm);
    return parse_item(field, text, item, c, &nm, p);
}

static int check_count(int field, int n, int min, const field_names *nm, config_problem *p)
{
    int max = config_field_max_items(field);
    if (n > max)
        return fail(p, -1, NAMED(field), "%s: at most %d values, got %d", nm->s[field], max, n);
    if (n < min)
        return fail(p, -1, NAMED(field), "%s: an empty list; give 1 to %d values", nm->s[field],
                    max);
    return 0;
}

int config_check_count(int field, int n, config_naming naming, config_problem *p)
{
    field_names nm;
    names_of(naming, &nm);
    return check_count(field, n, 1, &nm, p);
}

static int check_field(int field, const run_config *c, const field_names *nm, config_problem *p)
{
    if (!config_field_is_list(field))
        return check_value(field, c, -1, nm, p);
    int n = list_count(field, c);
    /* the closed loop's lists are empty without a closed loop */
    if (check_count(field, n, field == CONFIG_FIELD_EVAL_NOISE, nm, p))
        return -1;
    for (int i = 0; i < n; i++) {
        if (check_value(field, c, i, nm, p))
            return -1;
        for (int j = 0; j < i; j++)
            if (list_value(field, c, j) == list_value(field, c, i))
                return fail(p, i, NAMED(field), "%s %g: listed twice", nm->s[field],
                            list_value(field, c, i));
    }
    return 0;
}

int config_check_field(int field, const run_config *c, config_naming naming, config_problem *p)
{
    field_names nm;
    names_of(naming, &nm);
    return check_field(field, c, &nm, p);
}

int config_parse_list(int field, const char *const *items, int n, run_config *c,
                      config_naming naming, config_problem *p)
{
    field_names nm;
    names_of(naming, &nm);
    if (!config_field_is_list(field))
        return n == 1 ? parse_item(field, items[0], -1, c, &nm, p)
                      : fail(p, -1, NAMED(field), "%s: expected one value, got %d", nm.s[field],
                             n);
    if (check_count(field, n, 1, &nm, p))
        return -1;
    for (int i = 0; i < n; i++)
        if (parse_item(field, items[i], i, c, &nm, p))
            return -1;
    set_list_count(field, c, n);
    return check_field(field, c, &nm, p);
}

/* The closed loop's fields together: rounds > 0 needs k0 and q; rounds 0
 * none; every k0 + rounds at most points - 1 (the loop predicts at query
 * positions k0 .. k0 + rounds - 1, docs/science.md). */
static int check_selfcorrect(const run_config *c, const field_names *nm, config_problem *p)
{
    const int R = CONFIG_FIELD_SC_ROUNDS, K0 = CONFIG_FIELD_SC_K0, Q = CONFIG_FIELD_SC_Q;
    if (c->sc_rounds == 0) {
        if (c->n_sc_k0 || c->n_sc_q)
            return fail(p, -1, NAMED(c->n_sc_k0 ? K0 : Q, R),
                        "%s given without %s (the number of closed-loop rounds, at least 1)",
                        nm->s[c->n_sc_k0 ? K0 : Q], nm->s[R]);
        return 0;
    }
    if (c->n_sc_k0 == 0 || c->n_sc_q == 0)
        return fail(p, -1, NAMED(R, c->n_sc_k0 == 0 ? K0 : Q), "%s %d: needs %s (%s)", nm->s[R],
                    c->sc_rounds, nm->s[c->n_sc_k0 == 0 ? K0 : Q],
                    c->n_sc_k0 == 0 ? "the given triplets before the first round"
                                    : "the critic's noise levels");
    for (int i = 0; i < c->n_sc_k0; i++) {
        long need = (long)c->sc_k0[i] + c->sc_rounds + 1;
        if (need > c->points)
            return fail(p, i, NAMED(K0, R, KNOB_ID_points),
                        "%s %d: with %s %d, needs %s %ld or more, got %d (k0 + rounds at most "
                        "points - 1)",
                        nm->s[K0], c->sc_k0[i], nm->s[R], c->sc_rounds, nm->s[KNOB_ID_points],
                        need, c->points);
    }
    return 0;
}

/* Products of sizes that the engine holds in an `int` (array indices, MPI
 * element counts) or on the stack; each is refused here, before any work,
 * rather than overflowing later. The table is in the README ("Limits"). */
static int config_check_sizes(const run_config *c, const field_names *nm, config_problem *p)
{
    const int64_t M = CONFIG_MAX_CONTEXTS_PER_PASS, T = 3 * (int64_t)c->points;
    const int64_t E = c->embd, d = c->dims, H = c->heads, L = c->layers;
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
            return fail(p, -1,
                        NAMED(KNOB_ID_layers, KNOB_ID_heads, KNOB_ID_embd, KNOB_ID_points,
                              KNOB_ID_dims, KNOB_ID_eval_batch),
                        "%s %d %s %d %s %d %s %d %s %d %s %d: %s = %.3g exceeds %d",
                        nm->s[KNOB_ID_layers], c->layers, nm->s[KNOB_ID_heads], c->heads,
                        nm->s[KNOB_ID_embd], c->embd, nm->s[KNOB_ID_points], c->points,
                        nm->s[KNOB_ID_dims], c->dims, nm->s[KNOB_ID_eval_batch], c->eval_batch,
                        products[i].what, products[i].value, INT32_MAX);
    return 0;
}

/* The knobs' ranges (knobs.def) keep a typo (--layers 2000) from allocating
 * the machine away; then the combinations. */
int config_check(const run_config *c, config_naming naming, config_problem *p)
{
    field_names nm;
    names_of(naming, &nm);
    for (int f = 0; f < CONFIG_N_FIELDS; f++)
        if (check_field(f, c, &nm, p))
            return -1;
    if (c->embd % c->heads != 0)
        return fail(p, -1, NAMED(KNOB_ID_heads, KNOB_ID_embd), "%s %d does not divide %s %d",
                    nm.s[KNOB_ID_heads], c->heads, nm.s[KNOB_ID_embd], c->embd);
    if (config_check_sizes(c, &nm, p))
        return -1;
    return check_selfcorrect(c, &nm, p);
}

int config_validate(const run_config *c, icas_err *err)
{
    config_problem p;
    if (config_check(c, CONFIG_NAMES_FLAGS, &p))
        return icas_fail(err, "%s", p.msg);
    return 0;
}

static int in_id_v1(const knob_def *k);

/* Knobs added after the first version of the run id are named only when
 * they differ from their default, as in the id, so that a label of an
 * existing configuration does not change when a knob is added. */
void config_describe(const run_config *c, char *out, size_t n)
{
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < CONFIG_N_KNOBS && len < n; i++) {
        const knob_def *k = &config_knobs[i];
        if (k->section != KNOB_SECTION_MODEL && k->section != KNOB_SECTION_TRAINING)
            continue;
        if (!in_id_v1(k) && knob_is_default(k, c))
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
