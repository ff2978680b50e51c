#include "icasweep/grid.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_RUNS 100000
#define MAX_VALUES 256

/* ---- knobs ---------------------------------------------------------------- */

typedef enum { K_INT, K_DOUBLE, K_ATTENTION, K_FFN, K_LOSS } knob_type;

typedef enum {
    KN_DIMS, KN_POINTS, KN_LAYERS, KN_HEADS, KN_EMBD, KN_EMBD_PER_HEAD,
    KN_ATTENTION, KN_FFN, KN_LOSS, KN_TRAIN_NOISE, KN_LR, KN_BATCH, KN_STEPS,
    KN_EVAL_BATCH, KN_COUNT
} knob_id;

/* The canonical order: the expansion varies the last knob fastest. */
static const struct {
    const char *name;
    knob_type type;
    const char *flag; /* how config_validate names it */
} KNOBS[KN_COUNT] = {
    {"dims", K_INT, "--dims"},
    {"points", K_INT, "--points"},
    {"layers", K_INT, "--layers"},
    {"heads", K_INT, "--heads"},
    {"embd", K_INT, "--embd"},
    {"embd_per_head", K_INT, "--embd"},
    {"attention", K_ATTENTION, "--attention"},
    {"ffn", K_FFN, "--ffn"},
    {"loss", K_LOSS, "--loss"},
    {"train_noise", K_DOUBLE, "--train-noise"},
    {"lr", K_DOUBLE, "--lr"},
    {"batch", K_INT, "--batch"},
    {"steps", K_INT, "--steps"},
    {"eval_batch", K_INT, "--eval-batch"},
};

typedef struct {
    double num; /* every knob value fits a double (ints checked exact) */
    yaml_mark_t mark;
} knob_value;

typedef struct {
    int n;
    knob_value v[MAX_VALUES];
} knob_axis;

/* ---- diagnostics ---------------------------------------------------------- */

typedef struct {
    const char *path;
    FILE *diag;
    int problems;
    char last[8][256]; /* recent messages, to report a combination problem once */
    int n_last;
} reporter;

static void report(reporter *r, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(reporter *r, yaml_mark_t mark, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->problems++;
    if (r->diag)
        fprintf(r->diag, "%s:%zu:%zu: %s\n", r->path, mark.line + 1, mark.column + 1, msg);
}

/* Reports a problem found after expansion once, however many runs share it. */
static void report_once(reporter *r, yaml_mark_t mark, const char *msg)
{
    char key[256];
    snprintf(key, sizeof key, "%zu:%zu:%.200s", mark.line, mark.column, msg);
    for (int i = 0; i < r->n_last; i++)
        if (strcmp(r->last[i], key) == 0)
            return;
    if (r->n_last < 8)
        snprintf(r->last[r->n_last++], sizeof r->last[0], "%s", key);
    report(r, mark, "%s", msg);
}

/* ---- scalar parsing -------------------------------------------------------- */

static const char *scalar(yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static const char *node_kind(yaml_node_t *n)
{
    return n->type == YAML_SEQUENCE_NODE ? "a list"
           : n->type == YAML_MAPPING_NODE ? "a mapping" : "a scalar";
}

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* Parses one knob value; reports and returns -1 when it is not valid for
 * the knob on its own (combinations are checked after expansion). */
static int parse_knob(reporter *r, knob_id k, yaml_node_t *n, knob_value *out)
{
    const char *name = KNOBS[k].name;
    out->mark = n->start_mark;
    if (n->type != YAML_SCALAR_NODE) {
        report(r, n->start_mark, "%s: expected a value, got %s", name, node_kind(n));
        return -1;
    }
    const char *s = scalar(n);
    switch (KNOBS[k].type) {
    case K_INT: {
        double v;
        if (parse_number(s, &v) || v != floor(v) || fabs(v) > 1e9) {
            report(r, n->start_mark, "%s: expected an integer, got '%s'", name, s);
            return -1;
        }
        if (v <= 0) {
            report(r, n->start_mark, "%s: must be positive, got %s", name, s);
            return -1;
        }
        out->num = v;
        return 0;
    }
    case K_DOUBLE: {
        double v;
        if (parse_number(s, &v)) {
            report(r, n->start_mark, "%s: expected a number, got '%s'", name, s);
            return -1;
        }
        if (k == KN_TRAIN_NOISE && !(v >= 0 && v <= 1)) {
            report(r, n->start_mark, "%s: must be in [0,1], got %s", name, s);
            return -1;
        }
        if (k == KN_LR && !(v > 0)) {
            report(r, n->start_mark, "%s: must be positive, got %s", name, s);
            return -1;
        }
        out->num = v;
        return 0;
    }
    case K_ATTENTION: {
        attention_kind a;
        if (attention_parse(s, &a)) {
            report(r, n->start_mark, "attention: expected softmax or linear, got '%s'", s);
            return -1;
        }
        out->num = a;
        return 0;
    }
    case K_LOSS: {
        loss_kind l;
        if (loss_parse(s, &l)) {
            report(r, n->start_mark, "loss: expected pl or bt, got '%s'", s);
            return -1;
        }
        out->num = l;
        return 0;
    }
    case K_FFN:
        if (!strcmp(s, "on") || !strcmp(s, "true") || !strcmp(s, "yes")) out->num = 1;
        else if (!strcmp(s, "off") || !strcmp(s, "false") || !strcmp(s, "no")) out->num = 0;
        else {
            report(r, n->start_mark, "ffn: expected on or off, got '%s'", s);
            return -1;
        }
        return 0;
    }
    return -1;
}

static int find_knob(const char *name)
{
    for (int k = 0; k < KN_COUNT; k++)
        if (!strcmp(KNOBS[k].name, name))
            return k;
    return -1;
}

static void unknown_knob(reporter *r, yaml_node_t *key, const char *where)
{
    report(r, key->start_mark,
           "%s: unknown key '%s' (known: dims, points, layers, heads, embd, embd_per_head, "
           "attention, ffn, loss, train_noise, lr, batch, steps, eval_batch)",
           where, key->type == YAML_SCALAR_NODE ? scalar(key) : "?");
}

/* Duplicate keys in one mapping: libyaml keeps them all, so check here. */
static void check_duplicates(reporter *r, yaml_document_t *doc, yaml_node_t *map)
{
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top; a++)
        for (yaml_node_pair_t *b = map->data.mapping.pairs.start; b < a; b++) {
            yaml_node_t *ka = yaml_document_get_node(doc, a->key);
            yaml_node_t *kb = yaml_document_get_node(doc, b->key);
            if (ka->type == YAML_SCALAR_NODE && kb->type == YAML_SCALAR_NODE &&
                !strcmp(scalar(ka), scalar(kb)))
                report(r, ka->start_mark, "duplicate key '%s' (first at line %zu)", scalar(ka),
                       kb->start_mark.line + 1);
        }
}

/* An axis: a list of values, or one value. */
static void parse_axis(reporter *r, yaml_document_t *doc, knob_id k, yaml_node_t *n,
                       knob_axis *axis)
{
    axis->n = 0;
    if (n->type == YAML_SCALAR_NODE) {
        if (parse_knob(r, k, n, &axis->v[0]) == 0)
            axis->n = 1;
        return;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        report(r, n->start_mark, "%s: expected a value or a list of values, got %s",
               KNOBS[k].name, node_kind(n));
        return;
    }
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0) {
        report(r, n->start_mark, "%s: empty axis (give at least one value)", KNOBS[k].name);
        return;
    }
    if (count > MAX_VALUES) {
        report(r, n->start_mark, "%s: at most %d values", KNOBS[k].name, MAX_VALUES);
        return;
    }
    int bad = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        knob_value v;
        if (parse_knob(r, k, yaml_document_get_node(doc, *it), &v) == 0)
            axis->v[axis->n++] = v;
        else
            bad = 1;
    }
    if (bad)
        axis->n = 0;
}

/* A mapping of knob -> axis (the `axes` block or one sub-grid). */
typedef struct {
    knob_axis axes[KN_COUNT];
    int present[KN_COUNT];
    yaml_mark_t mark;
} axis_set;

static void parse_axis_set(reporter *r, yaml_document_t *doc, yaml_node_t *map,
                           const char *where, int allow_name, axis_set *out)
{
    memset(out, 0, sizeof *out);
    out->mark = map->start_mark;
    if (map->type != YAML_MAPPING_NODE) {
        report(r, map->start_mark, "%s: expected a mapping of knob: values, got %s", where,
               node_kind(map));
        return;
    }
    check_duplicates(r, doc, map);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *key = yaml_document_get_node(doc, p->key);
        yaml_node_t *val = yaml_document_get_node(doc, p->value);
        if (key->type != YAML_SCALAR_NODE) {
            report(r, key->start_mark, "%s: keys must be knob names", where);
            continue;
        }
        if (allow_name && !strcmp(scalar(key), "name")) {
            if (val->type != YAML_SCALAR_NODE)
                report(r, val->start_mark, "name: expected a label, got %s", node_kind(val));
            continue;
        }
        int k = find_knob(scalar(key));
        if (k < 0) {
            unknown_knob(r, key, where);
            continue;
        }
        out->present[k] = 1;
        parse_axis(r, doc, (knob_id)k, val, &out->axes[k]);
    }
    if (out->present[KN_EMBD] && out->present[KN_EMBD_PER_HEAD])
        report(r, map->start_mark, "%s: give embd or embd_per_head, not both", where);
}

/* ---- expansion ------------------------------------------------------------ */

typedef struct {
    run_config base;
    knob_value base_value[KN_COUNT]; /* from settings, for locating problems */
    int base_present[KN_COUNT];
    uint64_t *seeds;
    int n_seeds;
    yaml_mark_t seeds_mark;
    grid *out;
    int capacity;
} expansion;

static void apply_knob(run_config *c, knob_id k, double v)
{
    switch (k) {
    case KN_DIMS: c->dims = (int)v; break;
    case KN_POINTS: c->points = (int)v; break;
    case KN_LAYERS: c->layers = (int)v; break;
    case KN_HEADS: c->heads = (int)v; break;
    case KN_EMBD: c->embd = (int)v; break;
    case KN_EMBD_PER_HEAD: break; /* applied once heads is known */
    case KN_ATTENTION: c->attention = (attention_kind)(int)v; break;
    case KN_FFN: c->ffn = (int)v; break;
    case KN_LOSS: c->loss = (loss_kind)(int)v; break;
    case KN_TRAIN_NOISE: c->train_noise = v; break;
    case KN_LR: c->lr = v; break;
    case KN_BATCH: c->batch = (int)v; break;
    case KN_STEPS: c->steps = (int)v; break;
    case KN_EVAL_BATCH: c->eval_batch = (int)v; break;
    case KN_COUNT: break;
    }
}

/* Where a config_validate message points: the value that set the knob it
 * names, else the sub-grid. */
static yaml_mark_t locate(const char *msg, const yaml_mark_t *marks, const int *set,
                          yaml_mark_t fallback)
{
    /* "--heads H does not divide --embd E": blame heads' value */
    for (int k = 0; k < KN_COUNT; k++) {
        size_t len = strlen(KNOBS[k].flag);
        if (!strncmp(msg, KNOBS[k].flag, len) && (msg[len] == ' ' || msg[len] == ':')) {
            if (set[k])
                return marks[k];
            if (k == KN_EMBD && set[KN_EMBD_PER_HEAD])
                return marks[KN_EMBD_PER_HEAD];
        }
    }
    return fallback;
}

static int add_run(expansion *e, reporter *r, const run_config *c)
{
    char id[ICAS_RUN_ID_LEN];
    config_run_id(c, id);
    grid *g = e->out;
    for (int i = 0; i < g->n_runs; i++) {
        char other[ICAS_RUN_ID_LEN];
        config_run_id(&g->runs[i], other);
        if (!strcmp(id, other))
            return 0; /* joined without duplicates */
    }
    if (g->n_runs == MAX_RUNS) {
        yaml_mark_t m = {0, 0, 0};
        report_once(r, m, "the grid has more than 100000 runs");
        return -1;
    }
    if (g->n_runs == e->capacity) {
        int cap = e->capacity ? 2 * e->capacity : 64;
        run_config *p = realloc(g->runs, sizeof *p * (size_t)cap);
        if (!p)
            return -1;
        g->runs = p;
        e->capacity = cap;
    }
    g->runs[g->n_runs++] = *c;
    return 0;
}

static void expand_subgrid(expansion *e, reporter *r, const axis_set *axes, const axis_set *sub)
{
    const knob_axis *use[KN_COUNT];
    int n_use = 0;
    knob_id which[KN_COUNT];
    for (int k = 0; k < KN_COUNT; k++) {
        const knob_axis *a = sub && sub->present[k] ? &sub->axes[k]
                             : axes && axes->present[k] ? &axes->axes[k] : NULL;
        if (!a)
            continue;
        if (a->n == 0)
            return; /* already reported */
        use[n_use] = a;
        which[n_use++] = (knob_id)k;
    }
    int idx[KN_COUNT] = {0};
    for (;;) {
        run_config c = e->base;
        yaml_mark_t marks[KN_COUNT];
        int set[KN_COUNT];
        for (int k = 0; k < KN_COUNT; k++) {
            marks[k] = e->base_value[k].mark;
            set[k] = e->base_present[k];
        }
        double per_head = set[KN_EMBD_PER_HEAD] ? e->base_value[KN_EMBD_PER_HEAD].num : 0;
        for (int i = 0; i < n_use; i++) {
            const knob_value *v = &use[i]->v[idx[i]];
            apply_knob(&c, which[i], v->num);
            marks[which[i]] = v->mark;
            set[which[i]] = 1;
            if (which[i] == KN_EMBD_PER_HEAD)
                per_head = v->num;
            if (which[i] == KN_EMBD)
                per_head = 0; /* an explicit width wins over a settings default */
        }
        if (per_head > 0)
            c.embd = (int)per_head * c.heads;
        for (int s = 0; s < e->n_seeds; s++) {
            c.seed = e->seeds[s];
            icas_err err;
            if (config_validate(&c, &err)) {
                report_once(r, locate(err.msg, marks, set, sub ? sub->mark : e->seeds_mark),
                            err.msg);
                break;
            }
            if (add_run(e, r, &c))
                return;
        }
        int i = n_use - 1;
        while (i >= 0 && ++idx[i] == use[i]->n)
            idx[i--] = 0;
        if (i < 0)
            break;
    }
}

/* ---- the file ------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                buf = NULL;
            }
            buf = p;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

static void parse_top(reporter *r, yaml_document_t *doc, yaml_node_t *root, expansion *e,
                      grid *g)
{
    axis_set axes, settings;
    int have_axes = 0, have_grids = 0, have_eval_noise = 0;
    yaml_node_t *grids = NULL;
    memset(&axes, 0, sizeof axes);
    memset(&settings, 0, sizeof settings);
    check_duplicates(r, doc, root);
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *key = yaml_document_get_node(doc, p->key);
        yaml_node_t *val = yaml_document_get_node(doc, p->value);
        const char *k = key->type == YAML_SCALAR_NODE ? scalar(key) : "";
        if (!strcmp(k, "settings")) {
            parse_axis_set(r, doc, val, "settings", 0, &settings);
            if (val->type == YAML_MAPPING_NODE)
                for (yaml_node_pair_t *q = val->data.mapping.pairs.start;
                     q < val->data.mapping.pairs.top; q++) {
                    yaml_node_t *v = yaml_document_get_node(doc, q->value);
                    yaml_node_t *kk = yaml_document_get_node(doc, q->key);
                    if (v->type == YAML_SEQUENCE_NODE && kk->type == YAML_SCALAR_NODE)
                        report(r, v->start_mark, "settings.%s: expected one value, got a list "
                               "(lists go under axes or grids)", scalar(kk));
                }
            for (int i = 0; i < KN_COUNT; i++) {
                if (!settings.present[i] || settings.axes[i].n != 1)
                    continue;
                apply_knob(&e->base, (knob_id)i, settings.axes[i].v[0].num);
                e->base_value[i] = settings.axes[i].v[0];
                e->base_present[i] = 1;
            }
        } else if (!strcmp(k, "axes")) {
            parse_axis_set(r, doc, val, "axes", 0, &axes);
            have_axes = 1;
        } else if (!strcmp(k, "grids")) {
            grids = val;
            have_grids = 1;
            if (val->type != YAML_SEQUENCE_NODE)
                report(r, val->start_mark, "grids: expected a list of sub-grids, got %s",
                       node_kind(val));
            else if (val->data.sequence.items.top == val->data.sequence.items.start)
                report(r, val->start_mark, "grids: empty list");
        } else if (!strcmp(k, "seeds")) {
            e->seeds_mark = val->start_mark;
            yaml_node_item_t *start = NULL, *top = NULL;
            yaml_node_item_t single = p->value;
            if (val->type == YAML_SEQUENCE_NODE) {
                start = val->data.sequence.items.start;
                top = val->data.sequence.items.top;
            } else if (val->type == YAML_SCALAR_NODE) {
                start = &single;
                top = &single + 1;
            } else {
                report(r, val->start_mark, "seeds: expected a list of integers, got %s",
                       node_kind(val));
            }
            if (start == top && val->type == YAML_SEQUENCE_NODE)
                report(r, val->start_mark, "seeds: empty list");
            free(e->seeds);
            e->seeds = calloc((size_t)(top - start) + 1, sizeof *e->seeds);
            e->n_seeds = 0;
            for (yaml_node_item_t *it = start; it && it < top; it++) {
                yaml_node_t *n = yaml_document_get_node(doc, *it);
                char *end;
                errno = 0;
                const char *s = n->type == YAML_SCALAR_NODE ? scalar(n) : "";
                unsigned long long v = strtoull(s, &end, 10);
                if (n->type != YAML_SCALAR_NODE || errno || end == s || *end || s[0] == '-')
                    report(r, n->start_mark, "seeds: expected a non-negative integer, got '%s'",
                           n->type == YAML_SCALAR_NODE ? s : node_kind(n));
                else
                    e->seeds[e->n_seeds++] = v;
            }
        } else if (!strcmp(k, "eval_noise")) {
            have_eval_noise = 1;
            if (val->type != YAML_SEQUENCE_NODE) {
                report(r, val->start_mark, "eval_noise: expected a list of numbers in [0,1]");
                continue;
            }
            int n = 0;
            for (yaml_node_item_t *it = val->data.sequence.items.start;
                 it < val->data.sequence.items.top; it++) {
                yaml_node_t *v = yaml_document_get_node(doc, *it);
                double x;
                if (v->type != YAML_SCALAR_NODE || parse_number(scalar(v), &x) || x < 0 || x > 1)
                    report(r, v->start_mark, "eval_noise: expected a number in [0,1], got '%s'",
                           v->type == YAML_SCALAR_NODE ? scalar(v) : node_kind(v));
                else if (n == ICAS_MAX_EVAL_NOISE)
                    report(r, v->start_mark, "eval_noise: at most %d levels", ICAS_MAX_EVAL_NOISE);
                else
                    e->base.eval_noise[n++] = x;
            }
            if (n == 0 && val->data.sequence.items.top == val->data.sequence.items.start)
                report(r, val->start_mark, "eval_noise: empty list");
            if (n > 0)
                e->base.n_eval_noise = n;
        } else if (!strcmp(k, "checkpoint_every")) {
            double v;
            if (val->type != YAML_SCALAR_NODE || parse_number(scalar(val), &v) || v < 0 ||
                v != floor(v))
                report(r, val->start_mark, "checkpoint_every: expected a non-negative integer");
            else
                g->checkpoint_every = (int)v;
        } else if (!strcmp(k, "save_model")) {
            const char *s = val->type == YAML_SCALAR_NODE ? scalar(val) : "";
            if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) g->save_model = 1;
            else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")) g->save_model = 0;
            else report(r, val->start_mark, "save_model: expected true or false");
        } else {
            report(r, key->start_mark,
                   "unknown key '%s' (known: settings, axes, grids, seeds, eval_noise, "
                   "checkpoint_every, save_model)", k);
        }
    }
    (void)have_eval_noise;
    if (!e->seeds) {
        e->seeds = calloc(1, sizeof *e->seeds);
        e->n_seeds = 1; /* seed 0 */
    }
    if (r->problems)
        return;
    if (have_grids && grids && grids->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = grids->data.sequence.items.start;
             it < grids->data.sequence.items.top; it++) {
            axis_set sub;
            parse_axis_set(r, doc, yaml_document_get_node(doc, *it), "grids", 1, &sub);
            if (r->problems == 0)
                expand_subgrid(e, r, have_axes ? &axes : NULL, &sub);
        }
    } else {
        expand_subgrid(e, r, have_axes ? &axes : NULL, NULL);
    }
}

int grid_load(const char *path, grid *out, FILE *diag, icas_err *err)
{
    memset(out, 0, sizeof *out);
    out->checkpoint_every = 500;
    size_t len;
    char *text = read_file(path, &len);
    if (!text)
        return icas_fail(err, "%s: cannot open: %s", path, strerror(errno));
    reporter r = {.path = path, .diag = diag};
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_mark_t m = parser.problem_mark;
        report(&r, m, "YAML syntax: %s%s%s", parser.problem ? parser.problem : "error",
               parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        free(text);
        return icas_fail(err, "%s: 1 problem in grid file", path);
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    expansion e;
    memset(&e, 0, sizeof e);
    e.base = config_default();
    e.out = out;
    if (!root || root->type != YAML_MAPPING_NODE) {
        yaml_mark_t m = root ? root->start_mark : parser.mark;
        report(&r, m, "a grid file is a mapping (settings, axes, grids, seeds, eval_noise)");
    } else {
        parse_top(&r, &doc, root, &e, out);
    }
    if (r.problems == 0 && out->n_runs == 0) {
        yaml_mark_t m = root ? root->start_mark : parser.mark;
        report(&r, m, "the grid has no runs");
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(e.seeds);
    if (r.problems) {
        free(text);
        grid_free(out);
        return icas_fail(err, "%s: %d problem%s in grid file", path, r.problems,
                         r.problems > 1 ? "s" : "");
    }
    out->text = text;
    return 0;
}

void grid_free(grid *g)
{
    free(g->runs);
    free(g->text);
    g->runs = NULL;
    g->text = NULL;
    g->n_runs = 0;
}
