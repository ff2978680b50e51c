/* YAML grid files: parsing, validation with located diagnostics, and the
 * expansion into the ordered, duplicate-free list of runs.
 *
 * The file is loaded whole into a libyaml document so that every value keeps
 * its node's start mark: any problem, including one found only after the
 * expansion (heads not dividing embd), is reported at the value that caused
 * it. A part of the file that had a problem is not expanded, so that one typo
 * is reported once and not again as a consequence. The format is documented
 * in jobs/grids/example.yaml. */
#include "icasweep/grid.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* A typo such as `seeds: [0, 1, ..., 99999]` crossed with a few axes would
 * otherwise plan (and allocate) millions of runs. */
#define GRID_MAX_RUNS 100000
/* Problems found by the expansion can be as many as the runs; past this many
 * the rest are consequences of the same mistakes. */
#define GRID_MAX_EXPANSION_PROBLEMS 100
/* A grid file is a page of text; a path to a disk image or a device given by
 * mistake is refused before it is read whole into memory. */
#define GRID_MAX_BYTES (16 << 20)

static const char *const TOP_KEYS =
    "settings, axes, grids, seeds, eval_noise, checkpoint_every, save_model, selfcorrect";

/* ---- diagnostics ---------------------------------------------------------- */

typedef struct {
    const char *path;
    FILE *diag; /* may be NULL: count only */
    int problems;
    char **seen; /* "line:column:message" of expansion problems reported */
    int n_seen, cap_seen;
} reporter;

static void report(reporter *r, yaml_mark_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(reporter *r, yaml_mark_t at, const char *fmt, ...)
{
    r->problems++;
    if (!r->diag)
        return;
    fprintf(r->diag, "%s:%zu:%zu: ", r->path, at.line + 1, at.column + 1);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->diag, fmt, ap);
    va_end(ap);
    fputc('\n', r->diag);
}

/* A problem of a combination recurs in every run that shares the offending
 * values (every seed, every sub-grid crossed with the same axis): report each
 * (place, message) once. Returns -1 once there are too many to go on. */
static int report_once(reporter *r, yaml_mark_t at, const char *msg)
{
    char key[1200];
    snprintf(key, sizeof key, "%zu:%zu:%s", at.line, at.column, msg);
    for (int i = 0; i < r->n_seen; i++)
        if (strcmp(r->seen[i], key) == 0)
            return 0;
    if (r->n_seen == GRID_MAX_EXPANSION_PROBLEMS) {
        report(r, at, "too many problems in the expansion; fix those above first");
        return -1;
    }
    if (r->n_seen == r->cap_seen) {
        int cap = r->cap_seen ? 2 * r->cap_seen : 16;
        char **p = realloc(r->seen, sizeof *p * (size_t)cap);
        if (!p)
            return -1;
        r->seen = p;
        r->cap_seen = cap;
    }
    r->seen[r->n_seen] = strdup(key);
    if (!r->seen[r->n_seen])
        return -1;
    r->n_seen++;
    report(r, at, "%s", msg);
    return 0;
}

static void reporter_free(reporter *r)
{
    for (int i = 0; i < r->n_seen; i++)
        free(r->seen[i]);
    free(r->seen);
}

/* ---- YAML nodes ----------------------------------------------------------- */

static const char *text_of(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static int is_scalar(const yaml_node_t *n) { return n->type == YAML_SCALAR_NODE; }

static int is_quoted(const yaml_node_t *n)
{
    return n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
           n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
}

/* How a node reads in a message: 'two', a list, a mapping, nothing. */
static const char *describe(const yaml_node_t *n, char *buf, size_t size)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->data.scalar.length == 0 && !is_quoted(n))
        return "nothing";
    snprintf(buf, size, "%s'%.200s'", is_quoted(n) ? "the quoted string " : "", text_of(n));
    return buf;
}

static size_t n_items(const yaml_node_t *seq)
{
    return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

static yaml_node_t *item(yaml_document_t *doc, const yaml_node_t *seq, size_t i)
{
    return yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
}

/* Checks that a mapping's key is a name and appears for the first time;
 * libyaml keeps repeated keys, YAML forbids them. Returns the name, or NULL
 * after reporting. */
static const char *key_name(reporter *r, yaml_document_t *doc, const yaml_node_t *map,
                            const yaml_node_pair_t *pair)
{
    char buf[256];
    yaml_node_t *key = yaml_document_get_node(doc, pair->key);
    if (!is_scalar(key)) {
        report(r, key->start_mark, "expected a key name, got %s", describe(key, buf, sizeof buf));
        return NULL;
    }
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++) {
        yaml_node_t *earlier = yaml_document_get_node(doc, p->key);
        if (is_scalar(earlier) && strcmp(text_of(earlier), text_of(key)) == 0) {
            report(r, key->start_mark, "duplicate key '%s' (first at line %zu)", text_of(key),
                   earlier->start_mark.line + 1);
            return NULL;
        }
    }
    return text_of(key);
}

/* ---- scalars -------------------------------------------------------------- */

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* An integer in plain decimal: "5.5", "1e3" and the quoted "5" are not. */
static int parse_int(reporter *r, const yaml_node_t *n, const char *name, long *out)
{
    char buf[256];
    const char *s = is_scalar(n) ? text_of(n) : "";
    if (!is_scalar(n) || is_quoted(n) || !all_digits(s + (*s == '+' || *s == '-'))) {
        report(r, n->start_mark, "%s: expected an integer, got %s", name,
               describe(n, buf, sizeof buf));
        return -1;
    }
    errno = 0;
    long v = strtol(s, NULL, 10);
    if (errno == ERANGE || v > INT_MAX || v < INT_MIN) {
        report(r, n->start_mark, "%s: %s is too large", name, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* true or false (also on or off); quoting a word does not change it. */
static int parse_bool(reporter *r, const yaml_node_t *n, const char *name, int *out)
{
    char buf[256];
    const char *t = is_scalar(n) ? text_of(n) : "";
    if (is_scalar(n) && (!strcmp(t, "true") || !strcmp(t, "on"))) {
        *out = 1;
        return 0;
    }
    if (is_scalar(n) && (!strcmp(t, "false") || !strcmp(t, "off"))) {
        *out = 0;
        return 0;
    }
    report(r, n->start_mark, "%s: expected true or false, got %s", name,
           describe(n, buf, sizeof buf));
    return -1;
}

static int parse_seed(reporter *r, const yaml_node_t *n, uint64_t *out)
{
    char buf[256];
    if (!is_scalar(n) || is_quoted(n) || !all_digits(text_of(n))) {
        report(r, n->start_mark, "seeds: expected a non-negative integer, got %s",
               describe(n, buf, sizeof buf));
        return -1;
    }
    errno = 0;
    unsigned long long v = strtoull(text_of(n), NULL, 10);
    if (errno == ERANGE || v > UINT64_MAX) {
        report(r, n->start_mark, "seeds: %s does not fit 64 bits", text_of(n));
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* ---- knobs ---------------------------------------------------------------- */

/* A grid key that sets a knob: a slot. Slots 0 .. CONFIG_N_KNOBS - 1 are the
 * knobs of knobs.def (all but the seed, which grids list under `seeds`);
 * embd_per_head is a second spelling of the width, E = value * heads. */
enum { SLOT_EMBD_PER_HEAD = CONFIG_N_KNOBS, N_SLOTS };

/* A value of a knob and where it was written; choices hold their index. */
typedef struct {
    double x;
    yaml_mark_t at;
} knob_value;

static const char *slot_name(int k)
{
    return k == SLOT_EMBD_PER_HEAD ? "embd_per_head" : config_knobs[k].name;
}

static int is_grid_key(int k)
{
    return k == SLOT_EMBD_PER_HEAD || config_knobs[k].type != KNOB_TYPE_SEED;
}

static int find_slot(const char *name)
{
    if (strcmp(name, "embd_per_head") == 0)
        return SLOT_EMBD_PER_HEAD;
    const knob_def *k = config_knob_named(name);
    return k && k->type != KNOB_TYPE_SEED ? (int)(k - config_knobs) : -1;
}

/* The slots in the canonical order of the expansion: knobs.def's order,
 * embd_per_head beside embd. */
static int canonical_slots(int out[N_SLOTS])
{
    int n = 0;
    for (int k = 0; k < CONFIG_N_KNOBS; k++) {
        if (is_grid_key(k))
            out[n++] = k;
        if (k == KNOB_ID_embd)
            out[n++] = SLOT_EMBD_PER_HEAD;
    }
    return n;
}

static void knob_names(char *buf, size_t size)
{
    int order[N_SLOTS], n = canonical_slots(order);
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "",
                                slot_name(order[i]));
}

/* What a field's value is, for a message about a YAML node that is none. */
static const char *expects(int field, char *buf, size_t size)
{
    if (field < CONFIG_N_KNOBS) {
        const knob_def *k = &config_knobs[field];
        switch (k->type) {
        case KNOB_TYPE_COUNT: return "an integer";
        case KNOB_TYPE_REAL:
        case KNOB_TYPE_POSITIVE: return "a number";
        case KNOB_TYPE_CHOICE:
        case KNOB_TYPE_SWITCH: knob_words_text(k, ", ", " or ", buf, size); return buf;
        case KNOB_TYPE_SEED: return "a non-negative integer";
        }
    }
    return field == CONFIG_FIELD_SC_K0 || field == CONFIG_FIELD_SC_ROUNDS ? "an integer"
                                                                          : "a number";
}

static int takes_words(int field)
{
    return field < CONFIG_N_KNOBS && config_knobs[field].words != NULL;
}

/* The text of a node that holds one value of `field`, for config to parse:
 * a scalar, and for a number unquoted (quoting a word does not change it,
 * but "5" in quotes is a string). Reports and returns NULL otherwise. */
static const char *value_text(reporter *r, const yaml_node_t *n, int field)
{
    char buf[256], name[64], words[128];
    if (is_scalar(n) && (takes_words(field) || !is_quoted(n)))
        return text_of(n);
    config_field_name(field, CONFIG_NAMES_KEYS, name, sizeof name);
    report(r, n->start_mark, "%s: expected %s, got %s", name,
           expects(field, words, sizeof words), describe(n, buf, sizeof buf));
    return NULL;
}

/* Parses one value of slot k and checks it against the knob's range, with
 * the parser and check the command line uses (combinations are checked
 * after the expansion). */
static int parse_knob_value(reporter *r, int k, const yaml_node_t *n, knob_value *out)
{
    memset(out, 0, sizeof *out);
    out->at = n->start_mark;
    if (k == SLOT_EMBD_PER_HEAD) {
        long i = 0;
        if (parse_int(r, n, "embd_per_head", &i))
            return -1;
        if (i < 1) {
            report(r, n->start_mark, "embd_per_head %ld: must be at least 1", i);
            return -1;
        }
        out->x = (double)i;
        return 0;
    }
    const knob_def *def = &config_knobs[k];
    const char *text = value_text(r, n, k);
    if (!text)
        return -1;
    run_config c = config_default();
    config_problem p;
    if (config_parse_item(k, text, -1, &c, CONFIG_NAMES_KEYS, &p)) {
        report(r, n->start_mark, "%s", p.msg);
        return -1;
    }
    out->x = def->type == KNOB_TYPE_REAL || def->type == KNOB_TYPE_POSITIVE
                 ? knob_get_real(def, &c)
                 : knob_get_int(def, &c);
    return 0;
}

/* seeds: a list of distinct seeds, at the top level (every sub-grid's) or
 * in one sub-grid (its own, replacing the top level's for its runs). */
static int parse_seeds(reporter *r, yaml_document_t *doc, yaml_node_t *n, uint64_t **seeds,
                       int *n_seeds)
{
    char buf[256];
    if (n->type != YAML_SEQUENCE_NODE) {
        /* `seeds: 3` reads as "three seeds" but would mean seed 3 alone */
        report(r, n->start_mark, "seeds: expected a list of integers such as [0, 1, 2], got %s",
               describe(n, buf, sizeof buf));
        return -1;
    }
    if (n_items(n) == 0) {
        report(r, n->start_mark, "seeds: empty list; give at least one seed");
        return -1;
    }
    free(*seeds);
    *n_seeds = 0;
    *seeds = calloc(n_items(n), sizeof **seeds);
    if (!*seeds) {
        report(r, n->start_mark, "seeds: out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n_items(n); i++) {
        yaml_node_t *one = item(doc, n, i);
        uint64_t seed;
        if (parse_seed(r, one, &seed)) {
            rc = -1;
            continue;
        }
        for (int j = 0; j < *n_seeds; j++)
            if ((*seeds)[j] == seed) {
                report(r, one->start_mark, "seeds %s: listed twice", text_of(one));
                rc = -1;
            }
        (*seeds)[(*n_seeds)++] = seed;
    }
    return rc;
}

/* ---- levels: settings, axes, sub-grids ------------------------------------ */

typedef struct {
    int n; /* 0: not given at this level */
    knob_value *v;
    int given;
    yaml_mark_t key_at;
} knob_list;

typedef struct {
    knob_list k[N_SLOTS];
    yaml_mark_t at;   /* the mapping */
    const char *name; /* a sub-grid's label, in the document; may be NULL */
    uint64_t *seeds;  /* a sub-grid's own seeds; NULL: the top level's */
    int n_seeds;
    int given;
    int bad;          /* had a problem: not expanded */
} level;

static void level_free(level *l)
{
    for (int k = 0; k < N_SLOTS; k++)
        free(l->k[k].v);
    free(l->seeds);
    memset(l, 0, sizeof *l);
}

/* The values of knob k at one level: one value, or (if lists are allowed) a
 * list of distinct values in the order of the expansion. */
static int parse_knob_list(reporter *r, yaml_document_t *doc, int k, yaml_node_t *n,
                           int lists, knob_list *out)
{
    char buf[256];
    const char *name = slot_name(k);
    size_t count = n->type == YAML_SEQUENCE_NODE ? n_items(n) : 1;
    if (n->type == YAML_MAPPING_NODE || (!lists && n->type == YAML_SEQUENCE_NODE)) {
        report(r, n->start_mark, "%s: expected %s, got %s", name,
               lists ? "a value or a list of values" : "one value (lists go under axes or grids)",
               describe(n, buf, sizeof buf));
        return -1;
    }
    if (count == 0) {
        report(r, n->start_mark, "%s: empty list; give at least one value", name);
        return -1;
    }
    out->v = calloc(count, sizeof *out->v);
    if (!out->v) {
        report(r, n->start_mark, "%s: out of memory", name);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *one = n->type == YAML_SEQUENCE_NODE ? item(doc, n, i) : n;
        knob_value v;
        if (parse_knob_value(r, k, one, &v)) {
            rc = -1;
            continue;
        }
        for (int j = 0; j < out->n; j++)
            if (out->v[j].x == v.x) {
                report(r, one->start_mark, "%s %s: listed twice", name, text_of(one));
                rc = -1;
            }
        out->v[out->n++] = v;
    }
    return rc;
}

/* settings (lists = 0), axes or a sub-grid (is_subgrid: `name` allowed). */
static void parse_level(reporter *r, yaml_document_t *doc, yaml_node_t *map, const char *what,
                        int lists, int is_subgrid, level *out)
{
    char buf[256], names[256];
    int before = r->problems;
    memset(out, 0, sizeof *out);
    out->at = map->start_mark;
    out->given = 1;
    if (map->type != YAML_MAPPING_NODE) {
        report(r, map->start_mark, "%s: expected a mapping of knob: %s, got %s", what,
               lists ? "values" : "value", describe(map, buf, sizeof buf));
        out->bad = 1;
        return;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *key = key_name(r, doc, map, p);
        yaml_node_t *val = yaml_document_get_node(doc, p->value);
        if (!key)
            continue;
        if (is_subgrid && strcmp(key, "seeds") == 0) {
            parse_seeds(r, doc, val, &out->seeds, &out->n_seeds);
            continue;
        }
        if (is_subgrid && strcmp(key, "name") == 0) {
            if (!is_scalar(val))
                report(r, val->start_mark, "name: expected a label, got %s",
                       describe(val, buf, sizeof buf));
            else
                out->name = text_of(val);
            continue;
        }
        int k = find_slot(key);
        if (k < 0) {
            knob_names(names, sizeof names);
            report(r, yaml_document_get_node(doc, p->key)->start_mark,
                   "unknown key '%s' in %s (allowed: %s%s)", key, what,
                   is_subgrid ? "name, seeds, " : "", names);
            continue;
        }
        out->k[k].given = 1;
        out->k[k].key_at = yaml_document_get_node(doc, p->key)->start_mark;
        parse_knob_list(r, doc, k, val, lists, &out->k[k]);
    }
    const knob_list *e = &out->k[KNOB_ID_embd], *eph = &out->k[SLOT_EMBD_PER_HEAD];
    if (e->given && eph->given) {
        const knob_list *later = e->key_at.index > eph->key_at.index ? e : eph;
        report(r, later->key_at,
               "embd and embd_per_head both set the width in %s; give one of them", what);
    }
    out->bad = r->problems > before;
}

/* ---- the top level -------------------------------------------------------- */

typedef struct {
    level settings, axes; /* axes: all n = 0 when absent */
    level *subgrids;      /* NULL: the axes alone are the one sub-grid */
    int n_subgrids;
    uint64_t *seeds;
    int n_seeds;
    /* eval_noise (n_eval_noise 0: the default levels) and selfcorrect
     * (sc_rounds 0: no closed loop), shared by every run, and where each
     * value was written */
    run_config lists;
    yaml_mark_t eval_noise_at[ICAS_MAX_EVAL_NOISE], sc_k0_at[ICAS_MAX_SC_K0],
        sc_q_at[ICAS_MAX_SC_Q], sc_rounds_at, selfcorrect_at;
    int shared_bad; /* a problem in a part every sub-grid uses */
    yaml_mark_t root_at;
} grid_spec;

static void spec_free(grid_spec *s)
{
    level_free(&s->settings);
    level_free(&s->axes);
    for (int i = 0; i < s->n_subgrids; i++)
        level_free(&s->subgrids[i]);
    free(s->subgrids);
    free(s->seeds);
}

static void set_list_count(run_config *c, int field, int n)
{
    *(field == CONFIG_FIELD_EVAL_NOISE ? &c->n_eval_noise
      : field == CONFIG_FIELD_SC_K0    ? &c->n_sc_k0
                                       : &c->n_sc_q) = n;
}

/* A list field (eval_noise, selfcorrect.k0, selfcorrect.q) from a YAML list,
 * or from one value where `scalar_ok`: the count, each value and the list
 * as a whole are parsed and checked by config, as the flag's are, and each
 * problem is reported at the value at fault. marks[i]: where value i is. */
static int parse_list_field(reporter *r, yaml_document_t *doc, yaml_node_t *n, int field,
                            int scalar_ok, run_config *c, yaml_mark_t *marks)
{
    char buf[256], name[64];
    config_problem p;
    config_field_name(field, CONFIG_NAMES_KEYS, name, sizeof name);
    if (n->type == YAML_MAPPING_NODE || (!scalar_ok && n->type != YAML_SEQUENCE_NODE)) {
        /* `eval_noise: 0.5` would read as one level where a list is meant */
        report(r, n->start_mark, "%s: expected %s, got %s", name,
               scalar_ok ? "one value or a list" : "a list such as [0, 0.5, 1]",
               describe(n, buf, sizeof buf));
        return -1;
    }
    size_t count = n->type == YAML_SEQUENCE_NODE ? n_items(n) : 1;
    if (config_check_count(field, count > INT_MAX ? INT_MAX : (int)count, CONFIG_NAMES_KEYS,
                           &p)) {
        report(r, n->start_mark, "%s", p.msg);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *one = n->type == YAML_SEQUENCE_NODE ? item(doc, n, i) : n;
        marks[i] = one->start_mark;
        const char *text = value_text(r, one, field);
        if (!text) {
            rc = -1;
        } else if (config_parse_item(field, text, (int)i, c, CONFIG_NAMES_KEYS, &p)) {
            report(r, one->start_mark, "%s", p.msg);
            rc = -1;
        }
    }
    if (rc)
        return -1;
    set_list_count(c, field, (int)count);
    if (config_check_field(field, c, CONFIG_NAMES_KEYS, &p)) {
        report(r, p.item >= 0 ? marks[p.item] : n->start_mark, "%s", p.msg);
        set_list_count(c, field, 0);
        return -1;
    }
    return 0;
}

/* selfcorrect: {rounds: R, k0: K or [K, ...], q: Q or [Q, ...]}, every key
 * required: the closed loop (selfcorrect.h) run after every run's
 * evaluation. What depends on a run's points (k0 + rounds <= points - 1) is
 * checked with the run (config_check). */
static int parse_selfcorrect(reporter *r, yaml_document_t *doc, yaml_node_t *n, grid_spec *s)
{
    char buf[256];
    run_config *c = &s->lists;
    if (n->type != YAML_MAPPING_NODE) {
        report(r, n->start_mark, "selfcorrect: expected a mapping with keys rounds, k0, q, "
               "got %s", describe(n, buf, sizeof buf));
        return -1;
    }
    s->selfcorrect_at = n->start_mark;
    int before = r->problems, have_rounds = 0, have_k0 = 0, have_q = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *key = key_name(r, doc, n, p);
        yaml_node_t *val = yaml_document_get_node(doc, p->value);
        if (!key)
            continue;
        if (strcmp(key, "rounds") == 0) {
            config_problem prob;
            const char *text = value_text(r, val, CONFIG_FIELD_SC_ROUNDS);
            have_rounds = 1;
            s->sc_rounds_at = val->start_mark;
            if (!text)
                continue;
            if (config_parse_item(CONFIG_FIELD_SC_ROUNDS, text, -1, c, CONFIG_NAMES_KEYS, &prob))
                report(r, val->start_mark, "%s", prob.msg);
            else if (c->sc_rounds < 1)
                report(r, val->start_mark, "selfcorrect.rounds %d: must be at least 1 (leave "
                       "the block out for no closed loop)", c->sc_rounds);
        } else if (strcmp(key, "k0") == 0) {
            have_k0 = 1;
            parse_list_field(r, doc, val, CONFIG_FIELD_SC_K0, 1, c, s->sc_k0_at);
        } else if (strcmp(key, "q") == 0) {
            have_q = 1;
            parse_list_field(r, doc, val, CONFIG_FIELD_SC_Q, 1, c, s->sc_q_at);
        } else {
            report(r, yaml_document_get_node(doc, p->key)->start_mark,
                   "unknown key '%s' in selfcorrect (allowed: rounds, k0, q)", key);
        }
    }
    if (!have_rounds || !have_k0 || !have_q)
        report(r, n->start_mark, "selfcorrect: missing %s (the block needs rounds, k0 and q)",
               !have_rounds ? "rounds" : !have_k0 ? "k0" : "q");
    if (r->problems > before) {
        c->sc_rounds = c->n_sc_k0 = c->n_sc_q = 0;
        return -1;
    }
    return 0;
}

static int parse_grids(reporter *r, yaml_document_t *doc, yaml_node_t *n, grid_spec *s)
{
    char buf[256];
    if (n->type != YAML_SEQUENCE_NODE) {
        report(r, n->start_mark, "grids: expected a list of sub-grids, got %s",
               describe(n, buf, sizeof buf));
        return -1;
    }
    if (n_items(n) == 0) {
        report(r, n->start_mark, "grids: empty list; leave it out to expand the axes alone");
        return -1;
    }
    free(s->subgrids);
    s->subgrids = calloc(n_items(n), sizeof *s->subgrids);
    if (!s->subgrids) {
        report(r, n->start_mark, "grids: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n_items(n); i++)
        parse_level(r, doc, item(doc, n, i), "sub-grid", 1, 1, &s->subgrids[s->n_subgrids++]);
    return 0;
}

static void parse_top(reporter *r, yaml_document_t *doc, yaml_node_t *root, grid_spec *s,
                      grid *g)
{
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
        const char *key = key_name(r, doc, root, p);
        yaml_node_t *val = yaml_document_get_node(doc, p->value);
        int before = r->problems;
        if (!key) {
            s->shared_bad = 1;
            continue;
        }
        if (strcmp(key, "settings") == 0) {
            parse_level(r, doc, val, "settings", 0, 0, &s->settings);
        } else if (strcmp(key, "axes") == 0) {
            parse_level(r, doc, val, "axes", 1, 0, &s->axes);
        } else if (strcmp(key, "grids") == 0) {
            if (parse_grids(r, doc, val, s))
                s->shared_bad = 1; /* the axes alone would be another grid */
        } else if (strcmp(key, "seeds") == 0) {
            parse_seeds(r, doc, val, &s->seeds, &s->n_seeds);
        } else if (strcmp(key, "eval_noise") == 0) {
            parse_list_field(r, doc, val, CONFIG_FIELD_EVAL_NOISE, 0, &s->lists,
                             s->eval_noise_at);
        } else if (strcmp(key, "checkpoint_every") == 0) {
            long every;
            if (parse_int(r, val, "checkpoint_every", &every) == 0) {
                if (every < 0)
                    report(r, val->start_mark, "checkpoint_every: must be 0 (never) or more, "
                           "got %ld", every);
                else
                    g->checkpoint_every = (int)every;
            }
        } else if (strcmp(key, "selfcorrect") == 0) {
            parse_selfcorrect(r, doc, val, s);
        } else if (strcmp(key, "save_model") == 0) {
            parse_bool(r, val, "save_model", &g->save_model);
        } else {
            report(r, yaml_document_get_node(doc, p->key)->start_mark,
                   "unknown key '%s' (allowed: %s)", key, TOP_KEYS);
        }
        /* a problem in a sub-grid spoils that sub-grid only */
        if (r->problems > before && strcmp(key, "grids") != 0)
            s->shared_bad = 1;
    }
    if (!s->seeds) {
        s->seeds = calloc(1, sizeof *s->seeds); /* seed 0 */
        if (!s->seeds) {
            report(r, root->start_mark, "out of memory");
            s->shared_bad = 1;
        }
        s->n_seeds = 1;
    }
}

/* ---- expansion ------------------------------------------------------------ */

typedef struct {
    grid *out;
    int cap;
    uint64_t *ids; /* open addressing; ids[i] valid where used[i] */
    unsigned char *used;
    size_t id_cap; /* power of two */
    int stop;      /* the run cap, memory or the problem limit was hit */
} expander;

static uint64_t id_value(const run_config *c)
{
    char id[ICAS_RUN_ID_LEN];
    config_run_id(c, id);
    return strtoull(id + 1, NULL, 16);
}

static size_t id_slot(const expander *x, uint64_t id)
{
    size_t i = (size_t)(id ^ (id >> 29)) & (x->id_cap - 1);
    while (x->used[i] && x->ids[i] != id)
        i = (i + 1) & (x->id_cap - 1);
    return i;
}

static int id_grow(expander *x)
{
    size_t cap = x->id_cap ? 2 * x->id_cap : 256;
    uint64_t *ids = calloc(cap, sizeof *ids);
    unsigned char *used = calloc(cap, 1);
    if (!ids || !used) {
        free(ids);
        free(used);
        return -1;
    }
    expander bigger = {.ids = ids, .used = used, .id_cap = cap};
    for (size_t i = 0; i < x->id_cap; i++)
        if (x->used[i]) {
            size_t j = id_slot(&bigger, x->ids[i]);
            ids[j] = x->ids[i];
            used[j] = 1;
        }
    free(x->ids);
    free(x->used);
    x->ids = ids;
    x->used = used;
    x->id_cap = cap;
    return 0;
}

/* Appends the run unless its id was already produced: one-factor-at-a-time
 * sub-grids share their default point. */
static int add_run(reporter *r, expander *x, const run_config *c, yaml_mark_t at)
{
    if (2 * ((size_t)x->out->n_runs + 1) > x->id_cap && id_grow(x))
        goto oom;
    uint64_t id = id_value(c);
    size_t slot = id_slot(x, id);
    if (x->used[slot])
        return 0;
    if (x->out->n_runs == GRID_MAX_RUNS) {
        report(r, at, "the grid has more than %d runs", GRID_MAX_RUNS);
        x->stop = 1;
        return -1;
    }
    if (x->out->n_runs == x->cap) {
        int cap = x->cap ? 2 * x->cap : 64;
        run_config *runs = realloc(x->out->runs, sizeof *runs * (size_t)cap);
        if (!runs)
            goto oom;
        x->out->runs = runs;
        x->cap = cap;
    }
    x->used[slot] = 1;
    x->ids[slot] = id;
    x->out->runs[x->out->n_runs++] = *c;
    return 0;
oom:
    report(r, at, "out of memory");
    x->stop = 1;
    return -1;
}

/* One knob of a sub-grid's product and the level whose values it takes. */
typedef struct {
    int k; /* slot */
    const knob_list *values;
} axis;

/* The knobs a sub-grid sets, in canonical order, each from the most specific
 * level that gives it: sub-grid, then axes, then settings. embd and
 * embd_per_head are two spellings of one knob, the width. */
static int sub_axes(const grid_spec *s, const level *sub, axis out[N_SLOTS])
{
    const level *levels[3] = {&s->settings, &s->axes, sub};
    int width_from = -1;
    for (int i = 0; i < 3; i++)
        if (levels[i] && (levels[i]->k[KNOB_ID_embd].n || levels[i]->k[SLOT_EMBD_PER_HEAD].n))
            width_from = i;
    int order[N_SLOTS], n_order = canonical_slots(order), n = 0;
    for (int o = 0; o < n_order; o++) {
        int k = order[o];
        const knob_list *pick = NULL;
        for (int i = 0; i < 3; i++) {
            if (!levels[i] || !levels[i]->k[k].n)
                continue;
            if ((k == KNOB_ID_embd || k == SLOT_EMBD_PER_HEAD) && i != width_from)
                continue;
            pick = &levels[i]->k[k];
        }
        if (pick)
            out[n++] = (axis){k, pick};
    }
    return n;
}

/* Where field f's value of the current run was written, if anywhere: the
 * value of its axis (the width of embd_per_head is embd's), or for a list
 * field the value `item` (-1: the list). */
static int place_of(const grid_spec *s, int f, int item, const axis *axes, int n_axes,
                    const int *idx, yaml_mark_t *at)
{
    for (int a = 0; a < n_axes; a++) {
        int k = axes[a].k == SLOT_EMBD_PER_HEAD ? KNOB_ID_embd : axes[a].k;
        if (k == f) {
            *at = axes[a].values->v[idx[a]].at;
            return 1;
        }
    }
    const run_config *c = &s->lists;
    if (f == CONFIG_FIELD_EVAL_NOISE && c->n_eval_noise) {
        *at = s->eval_noise_at[item >= 0 && item < c->n_eval_noise ? item : 0];
        return 1;
    }
    if (c->sc_rounds <= 0)
        return 0;
    if (f == CONFIG_FIELD_SC_ROUNDS)
        *at = s->sc_rounds_at;
    else if (f == CONFIG_FIELD_SC_K0)
        *at = item >= 0 && item < c->n_sc_k0 ? s->sc_k0_at[item] : s->selfcorrect_at;
    else if (f == CONFIG_FIELD_SC_Q)
        *at = item >= 0 && item < c->n_sc_q ? s->sc_q_at[item] : s->selfcorrect_at;
    else
        return 0;
    return 1;
}

/* Where a problem of a run belongs: the value of a field it names that
 * varies in this sub-grid (with `heads: [1, 3, 5]` and one embd, heads 5 is
 * the culprit), else the field at fault, else any field it names, else the
 * sub-grid. */
static yaml_mark_t blame(const grid_spec *s, const config_problem *p, const axis *axes,
                         int n_axes, const int *idx, yaml_mark_t fallback)
{
    yaml_mark_t at;
    for (int j = 0; j < p->n_named; j++)
        for (int a = 0; a < n_axes; a++) {
            int k = axes[a].k == SLOT_EMBD_PER_HEAD ? KNOB_ID_embd : axes[a].k;
            if (k == p->named[j] && axes[a].values->n > 1)
                return axes[a].values->v[idx[a]].at;
        }
    for (int j = 0; j < p->n_named; j++)
        if (place_of(s, p->named[j], j == 0 ? p->item : -1, axes, n_axes, idx, &at))
            return at;
    return fallback;
}

static void expand_subgrid(reporter *r, expander *x, const grid_spec *s, const level *sub,
                           run_config base)
{
    axis axes[N_SLOTS];
    int n = sub_axes(s, sub, axes);
    yaml_mark_t where = sub ? sub->at : s->axes.given ? s->axes.at : s->root_at;
    /* a sub-grid's own seeds replace the top level's for its runs */
    const uint64_t *seeds = sub && sub->seeds ? sub->seeds : s->seeds;
    const int n_seeds = sub && sub->seeds ? sub->n_seeds : s->n_seeds;
    long long count = n_seeds;
    for (int a = 0; a < n; a++) {
        count *= axes[a].values->n;
        if (count > GRID_MAX_RUNS) {
            if (sub && sub->name)
                report(r, where, "sub-grid '%s' expands to more than %d runs", sub->name,
                       GRID_MAX_RUNS);
            else
                report(r, where, "%s expands to more than %d runs",
                       sub ? "this sub-grid" : "the grid", GRID_MAX_RUNS);
            return;
        }
    }
    int idx[N_SLOTS] = {0};
    for (;;) {
        run_config c = base;
        int per_head = 0;
        for (int a = 0; a < n; a++) {
            const knob_value *v = &axes[a].values->v[idx[a]];
            if (axes[a].k == SLOT_EMBD_PER_HEAD)
                per_head = (int)v->x;
            else
                knob_set(&config_knobs[axes[a].k], &c, v->x);
        }
        if (per_head) {
            long long e = (long long)per_head * c.heads;
            c.embd = e > INT_MAX ? INT_MAX : (int)e;
        }
        config_problem p; /* a seed cannot make a run invalid: check each point once */
        if (config_check(&c, CONFIG_NAMES_KEYS, &p)) {
            if (report_once(r, blame(s, &p, axes, n, idx, where), p.msg)) {
                x->stop = 1;
                return;
            }
        } else {
            for (int i = 0; i < n_seeds && !x->stop; i++) {
                c.seed = seeds[i];
                add_run(r, x, &c, where);
            }
            if (x->stop)
                return;
        }
        int a = n - 1; /* the odometer: the last knob fastest */
        while (a >= 0 && ++idx[a] == axes[a].values->n)
            idx[a--] = 0;
        if (a < 0)
            return;
    }
}

static void expand(reporter *r, const grid_spec *s, grid *g)
{
    expander x = {.out = g};
    run_config base = config_default();
    const run_config *l = &s->lists;
    if (l->n_eval_noise) {
        base.n_eval_noise = l->n_eval_noise;
        memcpy(base.eval_noise, l->eval_noise, sizeof l->eval_noise);
    }
    if (l->sc_rounds > 0) {
        base.sc_rounds = l->sc_rounds;
        base.n_sc_k0 = l->n_sc_k0;
        memcpy(base.sc_k0, l->sc_k0, sizeof l->sc_k0);
        base.n_sc_q = l->n_sc_q;
        memcpy(base.sc_q, l->sc_q, sizeof l->sc_q);
    }
    if (!s->subgrids) {
        expand_subgrid(r, &x, s, NULL, base);
    } else {
        for (int i = 0; i < s->n_subgrids && !x.stop; i++)
            if (!s->subgrids[i].bad)
                expand_subgrid(r, &x, s, &s->subgrids[i], base);
    }
    free(x.ids);
    free(x.used);
}

/* ---- the file ------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len, int *err_no)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err_no = errno;
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n + 1 < cap)
            break;
        if (cap >= GRID_MAX_BYTES) {
            free(buf);
            fclose(f);
            *err_no = EFBIG;
            return NULL;
        }
        char *bigger = realloc(buf, 2 * cap);
        if (!bigger) {
            free(buf);
            buf = NULL;
        }
        buf = bigger;
        cap *= 2;
    }
    *err_no = !buf ? ENOMEM : ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (*err_no) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* libyaml gives a byte offset, not a mark, for text it cannot decode. */
static yaml_mark_t mark_at_offset(const char *text, size_t len, size_t offset)
{
    yaml_mark_t m = {0, 0, 0};
    for (size_t i = 0; i < offset && i < len; i++, m.index++) {
        if (text[i] == '\n') {
            m.line++;
            m.column = 0;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            m.column++;
        }
    }
    return m;
}

static void report_syntax(reporter *r, const yaml_parser_t *p, const char *text, size_t len)
{
    if (p->context)
        report(r, p->problem_mark, "YAML syntax error: %s (%s at line %zu, column %zu)",
               p->problem ? p->problem : "unknown", p->context, p->context_mark.line + 1,
               p->context_mark.column + 1);
    else if (p->error == YAML_READER_ERROR)
        report(r, mark_at_offset(text, len, p->problem_offset), "YAML error: %s (byte %zu)",
               p->problem ? p->problem : "unreadable text", p->problem_offset);
    else
        report(r, p->problem_mark, "YAML syntax error: %s", p->problem ? p->problem : "unknown");
}

/* Parses the text into the spec; any problem is reported. */
static void load_spec(reporter *r, const char *text, size_t len, grid_spec *s, grid *g)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    yaml_mark_t start = {0, 0, 0};
    if (!yaml_parser_initialize(&parser)) {
        report(r, start, "out of memory");
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        report_syntax(r, &parser, text, len);
        yaml_parser_delete(&parser);
        return;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        report(r, start, "the file is empty; a grid has at least settings or axes");
    } else if (root->type != YAML_MAPPING_NODE) {
        char buf[256];
        report(r, root->start_mark, "expected a mapping with keys %s, got %s", TOP_KEYS,
               describe(root, buf, sizeof buf));
    } else {
        s->root_at = root->start_mark;
        parse_top(r, &doc, root, s, g);
        /* a second document would be silently ignored */
        if (!yaml_parser_load(&parser, &extra)) {
            report_syntax(r, &parser, text, len);
        } else {
            yaml_node_t *more = yaml_document_get_root_node(&extra);
            if (more)
                report(r, more->start_mark, "a grid file holds one YAML document; this is a "
                       "second one");
            yaml_document_delete(&extra);
        }
        if (!s->shared_bad)
            expand(r, s, g);
        if (r->problems == 0 && g->n_runs == 0)
            report(r, root->start_mark, "the grid has no runs");
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

int grid_parse(const char *name, const char *text, size_t len, grid *out, FILE *diag,
               icas_err *err)
{
    memset(out, 0, sizeof *out);
    out->checkpoint_every = 500;
    /* the text is kept (stored in the result file) and parsed as a C string
     * by the checks that follow: a NUL byte inside it would cut it short */
    if (memchr(text, 0, len)) {
        size_t at = (size_t)((const char *)memchr(text, 0, len) - text);
        yaml_mark_t m = mark_at_offset(text, len, at);
        if (diag)
            fprintf(diag, "%s:%zu:%zu: a NUL byte (a binary file, not a YAML grid)\n", name,
                    m.line + 1, m.column + 1);
        return icas_fail(err, "%s: 1 problem in grid file", name);
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return icas_fail(err, "%s: out of memory", name);
    memcpy(copy, text, len);
    copy[len] = 0;
    reporter r = {.path = name, .diag = diag};
    grid_spec spec;
    memset(&spec, 0, sizeof spec);
    load_spec(&r, copy, len, &spec, out);
    spec_free(&spec);
    reporter_free(&r);
    if (r.problems) {
        free(copy);
        grid_free(out);
        return icas_fail(err, "%s: %d problem%s in grid file", name, r.problems,
                         r.problems == 1 ? "" : "s");
    }
    out->text = copy;
    return 0;
}

int grid_load(const char *path, grid *out, FILE *diag, icas_err *err)
{
    memset(out, 0, sizeof *out);
    size_t len = 0;
    int err_no = 0;
    char *text = slurp(path, &len, &err_no);
    if (!text)
        return icas_fail(err, "%s: cannot open: %s", path, strerror(err_no));
    int rc = grid_parse(path, text, len, out, diag, err);
    free(text);
    return rc;
}

void grid_free(grid *g)
{
    free(g->runs);
    free(g->text);
    g->runs = NULL;
    g->text = NULL;
    g->n_runs = 0;
}

/* ---- comparing a file's grid with a new one -------------------------------- */

void grid_run_ids(const grid *g, char (*ids)[ICAS_RUN_ID_LEN])
{
    for (int i = 0; i < g->n_runs; i++)
        config_run_id(&g->runs[i], ids[i]);
}

typedef struct {
    const char *id;
    int row;
} id_row;

static int by_id(const void *a, const void *b)
{
    return strcmp(((const id_row *)a)->id, ((const id_row *)b)->id);
}

/* The list's ids sorted, for lookups; NULL with err set on a repeated id. */
static id_row *sorted_ids(const char (*ids)[ICAS_RUN_ID_LEN], int n, const char *which,
                          icas_err *err)
{
    id_row *s = malloc(sizeof *s * (size_t)(n > 0 ? n : 1));
    if (!s) {
        icas_fail(err, "comparing grids: out of memory for %d runs", n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        s[i] = (id_row){ids[i], i};
    qsort(s, (size_t)n, sizeof *s, by_id);
    for (int i = 1; i < n; i++)
        if (strcmp(s[i - 1].id, s[i].id) == 0) {
            int a = s[i - 1].row < s[i].row ? s[i - 1].row : s[i].row;
            int b = s[i - 1].row < s[i].row ? s[i].row : s[i - 1].row;
            icas_fail(err, "comparing grids: run %s is in rows %d and %d of the %s list",
                      s[i].id, a, b, which);
            free(s);
            return NULL;
        }
    return s;
}

static int row_of(const id_row *sorted, int n, const char *id)
{
    id_row key = {id, -1};
    const id_row *hit = n ? bsearch(&key, sorted, (size_t)n, sizeof *sorted, by_id) : NULL;
    return hit ? hit->row : -1;
}

/* "r0123456789abcdef (L=2 H=2 ... seed=1)", or the id alone without a config. */
static void run_label(const char *id, const run_config *c, char *out, size_t n)
{
    char desc[512];
    if (!c) {
        snprintf(out, n, "%s", id);
        return;
    }
    config_describe(c, desc, sizeof desc);
    snprintf(out, n, "%s (%s)", id, desc);
}

int grid_compare(const char (*old_ids)[ICAS_RUN_ID_LEN], const run_config *old_runs, int n_old,
                 const char (*new_ids)[ICAS_RUN_ID_LEN], const run_config *new_runs, int n_new,
                 grid_comparison *out, int *new_to_old, icas_err *err)
{
    memset(out, 0, sizeof *out);
    out->first_missing = -1;
    id_row *olds = sorted_ids(old_ids, n_old, "file's", err);
    if (!olds)
        return -1;
    id_row *news = sorted_ids(new_ids, n_new, "new grid's", err);
    if (!news) {
        free(olds);
        return -1;
    }
    for (int i = 0; i < n_new; i++) {
        int row = row_of(olds, n_old, new_ids[i]);
        if (new_to_old)
            new_to_old[i] = row;
        out->n_added += row < 0;
    }
    for (int i = 0; i < n_old; i++) {
        int row = row_of(news, n_new, old_ids[i]);
        if (row < 0) {
            if (out->first_missing < 0)
                out->first_missing = i;
            out->n_missing++;
        } else {
            out->n_kept++;
            out->n_moved += row != i;
        }
    }
    if (out->n_missing) {
        int i = out->first_missing;
        char was[600], now[600] = "";
        run_label(old_ids[i], old_runs ? &old_runs[i] : NULL, was, sizeof was);
        /* what stands in its row now: the run it was changed into, often */
        if (i < n_new && row_of(olds, n_old, new_ids[i]) < 0) {
            char label[560];
            run_label(new_ids[i], new_runs ? &new_runs[i] : NULL, label, sizeof label);
            snprintf(now, sizeof now, ", whose row %d is %s", i, label);
        }
        out->relation = GRID_DIFFERS;
        snprintf(out->text, sizeof out->text, "row %d, %s, is not in the new grid%s; %d of %d "
                 "runs missing", i, was, now, out->n_missing, n_old);
    } else if (out->n_added == 0 && out->n_moved == 0) {
        out->relation = GRID_IDENTICAL;
        snprintf(out->text, sizeof out->text, "the same %d runs", n_old);
    } else {
        out->relation = GRID_EXTENDS;
        snprintf(out->text, sizeof out->text, "keeps the %d runs (%d in other rows) and adds %d",
                 n_old, out->n_moved, out->n_added);
    }
    free(olds);
    free(news);
    return 0;
}
