/* Grid files: the shipped grids expand to the expected runs in the expected
 * order with duplicates joined; the format's rules (precedence, width,
 * order, defaults); and every kind of problem is reported at its
 * file:line:column, all at once, combination problems once. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "icasweep/grid.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* The shipped grid `name`, from the source tree in $ICAS_SOURCE_DIR or
 * relative to the working directory. */
static const char *shipped(const char *name, char *buf, size_t size)
{
    const char *src = getenv("ICAS_SOURCE_DIR");
    const char *prefixes[] = {src, ".", "..", "../.."};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        if (!prefixes[i])
            continue;
        snprintf(buf, size, "%s/jobs/grids/%s", prefixes[i], name);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    return NULL;
}

typedef struct {
    char dir[64];
    char path[128]; /* dir/grid.yaml */
    int rc;
    grid g;
    icas_err err;
    char *diag; /* everything written to diag */
} loaded;

/* Writes `text` to a fresh grid.yaml and loads it, capturing diagnostics. */
static void load_text(const char *text, loaded *l)
{
    memset(l, 0, sizeof *l);
    snprintf(l->dir, sizeof l->dir, "/tmp/test_grid.XXXXXX");
    if (!mkdtemp(l->dir)) {
        CHECK(0, "mkdtemp failed");
        l->rc = -1;
        return;
    }
    snprintf(l->path, sizeof l->path, "%s/grid.yaml", l->dir);
    FILE *f = fopen(l->path, "wb");
    fputs(text, f);
    fclose(f);
    size_t size = 0;
    FILE *diag = open_memstream(&l->diag, &size);
    l->rc = grid_load(l->path, &l->g, diag, &l->err);
    fclose(diag);
}

static void unload(loaded *l)
{
    grid_free(&l->g);
    free(l->diag);
    unlink(l->path);
    rmdir(l->dir);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static int count_substr(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, what)) != NULL; p++)
        n++;
    return n;
}

/* Asserts that the file fails with `expect` ("grid.yaml:4:14: message")
 * among its diagnostics; `line` is the caller's, for the failure message. */
static void expect_problem(const char *text, const char *expect, int line)
{
    char want[512];
    snprintf(want, sizeof want, "/%s", expect);
    loaded l;
    load_text(text, &l);
    CHECK(l.rc != 0, "line %d: loaded, expected '%s'", line, expect);
    CHECK(l.diag && strstr(l.diag, want), "line %d: want '%s', got:\n%s", line, expect,
          l.diag ? l.diag : "(nothing)");
    CHECK(strstr(l.err.msg, "grid.yaml: ") && strstr(l.err.msg, " in grid file"),
          "line %d: summary '%s'", line, l.err.msg);
    CHECK(l.g.runs == NULL && l.g.n_runs == 0 && l.g.text == NULL,
          "line %d: a failed load leaves an empty grid", line);
    unload(&l);
}
#define EXPECT_PROBLEM(text, expect) expect_problem(text, expect, __LINE__)

static int ids_unique(const grid *g)
{
    for (int i = 0; i < g->n_runs; i++)
        for (int j = 0; j < i; j++) {
            char a[ICAS_RUN_ID_LEN], b[ICAS_RUN_ID_LEN];
            config_run_id(&g->runs[i], a);
            config_run_id(&g->runs[j], b);
            if (strcmp(a, b) == 0)
                return 0;
        }
    return 1;
}

static int all_valid(const grid *g)
{
    for (int i = 0; i < g->n_runs; i++) {
        icas_err err;
        if (config_validate(&g->runs[i], &err))
            return 0;
    }
    return 1;
}

/* ---- the shipped grids ---------------------------------------------------- */

static void test_smoke(void)
{
    char buf[4096];
    const char *path = shipped("smoke.yaml", buf, sizeof buf);
    CHECK(path != NULL, "jobs/grids/smoke.yaml not found (set ICAS_SOURCE_DIR)");
    if (!path)
        return;
    grid g;
    icas_err err;
    int rc = grid_load(path, &g, stderr, &err);
    CHECK(rc == 0, "smoke.yaml: %s", err.msg);
    if (rc)
        return;
    CHECK(g.n_runs == 8, "smoke.yaml: %d runs, want 8", g.n_runs);
    /* axes layers [1, 2] x attention [softmax, linear] x seeds [0, 1]:
     * layers slowest, seeds innermost */
    for (int i = 0; i < g.n_runs && g.n_runs == 8; i++) {
        const run_config *c = &g.runs[i];
        CHECK(c->layers == 1 + i / 4, "run %d: layers %d", i, c->layers);
        CHECK(c->attention == ((i / 2) % 2 ? ATTN_LINEAR : ATTN_SOFTMAX), "run %d: attention", i);
        CHECK(c->seed == (uint64_t)(i % 2), "run %d: seed", i);
        CHECK(c->dims == 5 && c->points == 8 && c->heads == 2 && c->embd == 16,
              "run %d: task or model size", i);
        CHECK(c->steps == 20 && c->batch == 16 && c->eval_batch == 16 && c->lr == 1e-3,
              "run %d: training settings", i);
        CHECK(c->n_eval_noise == 3 && c->eval_noise[0] == 0 && c->eval_noise[1] == 0.5 &&
                  c->eval_noise[2] == 1,
              "run %d: eval noise", i);
    }
    CHECK(g.checkpoint_every == 10, "checkpoint_every %d", g.checkpoint_every);
    CHECK(g.save_model == 0, "save_model");
    CHECK(ids_unique(&g), "smoke.yaml: run ids repeat");
    char *text = read_all(path);
    CHECK(text && g.text && strcmp(text, g.text) == 0, "grid.text is the file's text");
    free(text);
    grid_free(&g);
}

static int count_runs(const grid *g, int layers, int heads, int embd, int a, int ffn)
{
    int n = 0;
    for (int i = 0; i < g->n_runs; i++) {
        const run_config *c = &g->runs[i];
        n += c->layers == layers && c->heads == heads && c->embd == embd && c->attention == a &&
             c->ffn == ffn;
    }
    return n;
}

static void test_paper(void)
{
    char buf[4096];
    const char *path = shipped("paper.yaml", buf, sizeof buf);
    CHECK(path != NULL, "jobs/grids/paper.yaml not found");
    if (!path)
        return;
    grid g;
    icas_err err;
    int rc = grid_load(path, &g, stderr, &err);
    CHECK(rc == 0, "paper.yaml: %s", err.msg);
    if (rc)
        return;
    /* depth 4 + heads 4 + attention 2 + mlp 2 = 12 points, of which the
     * default (L=20 H=3 softmax MLP on) is in all four: 9 points x 3 seeds */
    CHECK(g.n_runs == 27, "paper.yaml: %d runs, want 27", g.n_runs);
    CHECK(ids_unique(&g), "paper.yaml: run ids repeat");
    CHECK(all_valid(&g), "paper.yaml: a run fails config_validate");
    CHECK(count_runs(&g, 20, 3, 96, ATTN_SOFTMAX, 1) == 3, "the default point once per seed");
    const int depths[] = {5, 10, 15, 20}, heads[] = {1, 3, 4, 6};
    for (int i = 0; i < 4; i++) {
        CHECK(count_runs(&g, depths[i], 3, 96, ATTN_SOFTMAX, 1) == 3, "depth %d", depths[i]);
        CHECK(count_runs(&g, 20, heads[i], 32 * heads[i], ATTN_SOFTMAX, 1) == 3, "heads %d",
              heads[i]);
    }
    CHECK(count_runs(&g, 20, 3, 96, ATTN_LINEAR, 1) == 3, "linear attention");
    CHECK(count_runs(&g, 20, 3, 96, ATTN_SOFTMAX, 0) == 3, "MLP off");
    for (int i = 0; i < g.n_runs; i++) {
        const run_config *c = &g.runs[i];
        CHECK(c->steps == 3000 && c->batch == 256 && c->lr == 1e-4 && c->n_eval_noise == 5 &&
                  c->train_noise == 0 && c->seed == (uint64_t)(i % 3),
              "run %d: the paper's settings", i);
    }
    /* the first sub-grid comes first, in order */
    CHECK(g.runs[0].layers == 5 && g.runs[3].layers == 10 && g.runs[9].layers == 20,
          "depth ablation first");
    grid_free(&g);
}

static void test_other_shipped(void)
{
    const struct {
        const char *name;
        int runs;
    } want[] = {{"quick.yaml", 12}, {"example.yaml", 24}, {"findings.yaml", 64}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char buf[4096];
        const char *path = shipped(want[i].name, buf, sizeof buf);
        CHECK(path != NULL, "%s not found", want[i].name);
        if (!path)
            continue;
        grid g;
        icas_err err;
        int rc = grid_load(path, &g, stderr, &err);
        CHECK(rc == 0, "%s: %s", want[i].name, err.msg);
        if (rc)
            continue;
        CHECK(g.n_runs == want[i].runs, "%s: %d runs, want %d", want[i].name, g.n_runs,
              want[i].runs);
        CHECK(ids_unique(&g), "%s: run ids repeat", want[i].name);
        CHECK(all_valid(&g), "%s: a run fails config_validate", want[i].name);
        grid_free(&g);
    }
}

/* ---- the format ----------------------------------------------------------- */

static void test_defaults(void)
{
    const char *text = "settings:\n  layers: 2\n";
    loaded l;
    load_text(text, &l);
    CHECK(l.rc == 0, "%s\n%s", l.err.msg, l.diag);
    if (l.rc == 0) {
        run_config want = config_default();
        want.layers = 2;
        char a[ICAS_RUN_ID_LEN], b[ICAS_RUN_ID_LEN];
        config_run_id(&want, a);
        config_run_id(&l.g.runs[0], b);
        CHECK(l.g.n_runs == 1 && strcmp(a, b) == 0, "one run: the default with layers 2");
        CHECK(l.g.checkpoint_every == 500 && l.g.save_model == 0, "default checkpointing");
        CHECK(l.g.text && strcmp(l.g.text, text) == 0, "text");
        CHECK(l.diag && l.diag[0] == 0, "no diagnostics: %s", l.diag);
    }
    unload(&l);

    load_text("settings: {lr: 1, train_noise: 1}\nsave_model: true\ncheckpoint_every: 0\n"
              "eval_noise: [0.1, 0.9]\nseeds: [18446744073709551615]\n",
              &l);
    CHECK(l.rc == 0, "%s\n%s", l.err.msg, l.diag);
    if (l.rc == 0) {
        const run_config *c = &l.g.runs[0];
        CHECK(c->lr == 1 && c->train_noise == 1, "integers are numbers");
        CHECK(l.g.save_model == 1 && l.g.checkpoint_every == 0, "save_model, checkpoint_every");
        CHECK(c->n_eval_noise == 2 && c->eval_noise[0] == 0.1 && c->eval_noise[1] == 0.9,
              "eval_noise");
        CHECK(c->seed == UINT64_MAX, "seeds are 64-bit");
    }
    unload(&l);
}

static void test_order(void)
{
    /* canonical order: heads, attention, train_noise (last fastest), seeds */
    loaded l;
    load_text("settings:\n  embd: 12\nseeds: [7, 9]\naxes:\n  train_noise: [0, 0.5]\n"
              "grids:\n  - attention: [softmax, linear]\n    heads: [1, 2]\n",
              &l);
    CHECK(l.rc == 0, "%s\n%s", l.err.msg, l.diag);
    CHECK(l.g.n_runs == 16, "%d runs, want 16", l.g.n_runs);
    for (int i = 0; i < l.g.n_runs && l.g.n_runs == 16; i++) {
        const run_config *c = &l.g.runs[i];
        CHECK(c->heads == 1 + i / 8, "run %d: heads %d", i, c->heads);
        CHECK(c->attention == ((i / 4) % 2 ? ATTN_LINEAR : ATTN_SOFTMAX), "run %d: attention", i);
        CHECK(c->train_noise == ((i / 2) % 2 ? 0.5 : 0), "run %d: train_noise", i);
        CHECK(c->seed == (i % 2 ? 9u : 7u), "run %d: seed", i);
    }
    unload(&l);
}

static void test_precedence_and_width(void)
{
    /* sub-grid over axes over settings; embd_per_head and embd are one knob */
    loaded l;
    load_text("settings:\n  layers: 2\n  embd_per_head: 8\naxes:\n  layers: [3, 4]\n"
              "grids:\n"
              "  - layers: 5\n    heads: [1, 2]\n"   /* E = 8, 16 */
              "  - heads: 3\n    embd: 24\n"         /* L 3, 4 with E = 24 */
              "  - heads: 3\n",                      /* L 3, 4, E = 24: duplicates */
              &l);
    CHECK(l.rc == 0, "%s\n%s", l.err.msg, l.diag);
    const int want[][3] = {{5, 1, 8}, {5, 2, 16}, {3, 3, 24}, {4, 3, 24}};
    CHECK(l.g.n_runs == 4, "%d runs, want 4 (the third sub-grid repeats the second)",
          l.g.n_runs);
    for (int i = 0; i < l.g.n_runs && l.g.n_runs == 4; i++)
        CHECK(l.g.runs[i].layers == want[i][0] && l.g.runs[i].heads == want[i][1] &&
                  l.g.runs[i].embd == want[i][2],
              "run %d: L=%d H=%d E=%d, want %d %d %d", i, l.g.runs[i].layers,
              l.g.runs[i].heads, l.g.runs[i].embd, want[i][0], want[i][1], want[i][2]);
    CHECK(ids_unique(&l.g), "ids repeat");
    unload(&l);
}

static void test_duplicates_joined(void)
{
    /* two one-factor ablations around L=2 H=2 share that point */
    loaded l;
    load_text("settings: {layers: 2, heads: 2, embd: 8}\nseeds: [0, 1, 2]\ngrids:\n"
              "  - layers: [1, 2, 3]\n  - attention: [linear, softmax]\n  - {ffn: [on, off]}\n",
              &l);
    CHECK(l.rc == 0, "%s\n%s", l.err.msg, l.diag);
    CHECK(l.g.n_runs == 5 * 3, "%d runs, want 15", l.g.n_runs);
    CHECK(ids_unique(&l.g), "ids repeat");
    if (l.g.n_runs == 15) {
        CHECK(l.g.runs[9].attention == ATTN_LINEAR && l.g.runs[12].ffn == 0,
              "later sub-grids keep their order without the shared point");
    }
    unload(&l);
}

/* ---- problems ------------------------------------------------------------- */

static void test_problems(void)
{
    EXPECT_PROBLEM("settings:\n  dims: 5\ngrids:\n  - layers: [two]\n",
                   "grid.yaml:4:14: layers two: expected an integer");
    EXPECT_PROBLEM("axes:\n  layers: [1, 5.5]\n",
                   "grid.yaml:2:15: layers 5.5: expected an integer");
    EXPECT_PROBLEM("axes:\n  steps: 3e3\n", "grid.yaml:2:10: steps 3e3: expected an integer");
    EXPECT_PROBLEM("axes:\n  layers: \"5\"\n",
                   "grid.yaml:2:11: layers: expected an integer, got the quoted string '5'");
    EXPECT_PROBLEM("settings:\n  layers: 2\n   heads: 3\n",
                   "grid.yaml:3:9: YAML syntax error: mapping values are not allowed");
    EXPECT_PROBLEM("axes: [1, 2\n", "grid.yaml:2:1: YAML syntax error:");
    EXPECT_PROBLEM("setings:\n  layers: 2\n",
                   "grid.yaml:1:1: unknown key 'setings' (allowed: settings, axes, grids, seeds, "
                   "eval_noise, checkpoint_every, save_model, selfcorrect)");
    EXPECT_PROBLEM("grids:\n  - name: x\n    layer: [1, 2]\n",
                   "grid.yaml:3:5: unknown key 'layer' in sub-grid (allowed: name, seeds, dims, "
                   "points, layers, heads,");
    EXPECT_PROBLEM("settings:\n  name: x\n", "grid.yaml:2:3: unknown key 'name' in settings");
    EXPECT_PROBLEM("settings:\n  layers: [2, 3]\n",
                   "grid.yaml:2:11: layers: expected one value (lists go under axes or grids), "
                   "got a list");
    EXPECT_PROBLEM("axes:\n  heads: {a: 1}\n",
                   "grid.yaml:2:10: heads: expected a value or a list of values, got a mapping");
    EXPECT_PROBLEM("axes:\n  layers: [[1, 2]]\n",
                   "grid.yaml:2:12: layers: expected an integer, got a list");
    EXPECT_PROBLEM("settings: [layers]\n",
                   "grid.yaml:1:11: settings: expected a mapping of knob: value, got a list");
    EXPECT_PROBLEM("grids:\n  - layers: 2\n  - [heads]\n",
                   "grid.yaml:3:5: sub-grid: expected a mapping of knob: values, got a list");
    EXPECT_PROBLEM("axes:\n  heads: []\n",
                   "grid.yaml:2:10: heads: empty list; give at least one value");
    EXPECT_PROBLEM("axes:\n  layers:\n", "grid.yaml:2:10: layers: expected an integer, got nothing");
    EXPECT_PROBLEM("axes:\n  heads: [3, 0]\n", "grid.yaml:2:14: heads 0: must be between 1 and 1024");
    EXPECT_PROBLEM("axes:\n  train_noise: [0, 1.5]\n",
                   "grid.yaml:2:20: train_noise 1.5: must be in [0,1]");
    EXPECT_PROBLEM("axes:\n  lr: -1.0e-3\n", "grid.yaml:2:7: lr -0.001: must be a positive number");
    EXPECT_PROBLEM("axes:\n  lr: .inf\n", "grid.yaml:2:7: lr .inf: expected a number");
    EXPECT_PROBLEM("axes:\n  attention: [softmax, relu]\n",
                   "grid.yaml:2:24: attention relu: expected softmax or linear");
    EXPECT_PROBLEM("axes:\n  loss: mse\n", "grid.yaml:2:9: loss mse: expected pl or bt");
    EXPECT_PROBLEM("axes:\n  ffn: maybe\n", "grid.yaml:2:8: ffn maybe: expected off or on");
    EXPECT_PROBLEM("axes:\n  layers: [1, 2, 1]\n", "grid.yaml:2:18: layers 1: listed twice");
    EXPECT_PROBLEM("settings:\n  layers: 2\n  heads: 2\n  layers: 3\n",
                   "grid.yaml:4:3: duplicate key 'layers' (first at line 2)");
    EXPECT_PROBLEM("seeds: [0]\nseeds: [1]\n",
                   "grid.yaml:2:1: duplicate key 'seeds' (first at line 1)");
    EXPECT_PROBLEM("grids:\n  - embd: 64\n    heads: 2\n    embd_per_head: 32\n",
                   "grid.yaml:4:5: embd and embd_per_head both set the width in sub-grid");
    EXPECT_PROBLEM("seeds: []\n", "grid.yaml:1:8: seeds: empty list");
    EXPECT_PROBLEM("seeds: 3\n",
                   "grid.yaml:1:8: seeds: expected a list of integers such as [0, 1, 2], got '3'");
    EXPECT_PROBLEM("seeds: [0, -1]\n",
                   "grid.yaml:1:12: seeds: expected a non-negative integer, got '-1'");
    EXPECT_PROBLEM("seeds: [18446744073709551616]\n",
                   "grid.yaml:1:9: seeds: 18446744073709551616 does not fit 64 bits");
    EXPECT_PROBLEM("eval_noise: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.91, 0.92,"
                   " 0.93, 0.94, 0.95, 0.96, 1]\n",
                   "grid.yaml:1:13: eval_noise: at most 16 values, got 17");
    EXPECT_PROBLEM("eval_noise: [0, 2]\n", "grid.yaml:1:17: eval_noise 2: must be in [0,1]");
    EXPECT_PROBLEM("eval_noise: []\n", "grid.yaml:1:13: eval_noise: an empty list");
    /* the list fields: parsed and checked by config as the flags are, each
     * problem at the value at fault; a repeated level is refused */
    EXPECT_PROBLEM("eval_noise: [0, 0.5, 0]\n", "grid.yaml:1:22: eval_noise 0: listed twice");
    EXPECT_PROBLEM("eval_noise: 0.5\n",
                   "grid.yaml:1:13: eval_noise: expected a list such as [0, 0.5, 1], got '0.5'");
    EXPECT_PROBLEM("eval_noise: ['0.5']\n",
                   "grid.yaml:1:14: eval_noise: expected a number, got the quoted string '0.5'");
    EXPECT_PROBLEM("selfcorrect: {rounds: 2, k0: [1, 2, 1], q: [0]}\n",
                   "grid.yaml:1:37: selfcorrect.k0 1: listed twice");
    EXPECT_PROBLEM("selfcorrect: {rounds: 2, k0: 1, q: [0, 7]}\n",
                   "grid.yaml:1:40: selfcorrect.q 7: must be in [0,1]");
    /* k0 + rounds <= points - 1: at the k0, or at the points that vary */
    EXPECT_PROBLEM("settings: {points: 8}\nselfcorrect: {rounds: 3, k0: [1, 6], q: [0]}\n",
                   "grid.yaml:2:34: selfcorrect.k0 6: with selfcorrect.rounds 3, needs points 10 "
                   "or more, got 8 (k0 + rounds at most points - 1)");
    EXPECT_PROBLEM("axes: {points: [8, 4]}\nselfcorrect: {rounds: 3, k0: [1], q: [0]}\n",
                   "grid.yaml:1:20: selfcorrect.k0 1: with selfcorrect.rounds 3, needs points 5 "
                   "or more, got 4");
    EXPECT_PROBLEM("checkpoint_every: -5\n",
                   "grid.yaml:1:19: checkpoint_every: must be 0 (never) or more, got -5");
    EXPECT_PROBLEM("save_model: 2\n", "grid.yaml:1:13: save_model: expected true or false, got '2'");
    EXPECT_PROBLEM("grids: []\n", "grid.yaml:1:8: grids: empty list");
    EXPECT_PROBLEM("grids: {layers: 2}\n",
                   "grid.yaml:1:8: grids: expected a list of sub-grids, got a mapping");
    EXPECT_PROBLEM("", "grid.yaml:1:1: the file is empty");
    EXPECT_PROBLEM("- layers: 2\n", "grid.yaml:1:1: expected a mapping with keys settings,");
    EXPECT_PROBLEM("settings: {layers: 2}\n---\naxes: {heads: [1]}\n",
                   "grid.yaml:3:1: a grid file holds one YAML document");
    EXPECT_PROBLEM("settings:\n  dims: 5\xff\n", "grid.yaml:2:10: YAML error: invalid leading UTF-8");
    /* config_validate's problems, at the value that causes them */
    EXPECT_PROBLEM("settings:\n  points: 2\n",
                   "grid.yaml:2:11: points 2: must be between 3 and 10000");
    EXPECT_PROBLEM("axes:\n  layers: [2, 2000]\n",
                   "grid.yaml:2:15: layers 2000: must be between 1 and 1024");
    EXPECT_PROBLEM("settings:\n  embd: 96\ngrids:\n  - heads: [1, 3, 5]\n",
                   "grid.yaml:4:19: heads 5 does not divide embd 96");
    EXPECT_PROBLEM("settings:\n  heads: 4\naxes:\n  embd: [64, 66]\n",
                   "grid.yaml:4:14: heads 4 does not divide embd 66");
    EXPECT_PROBLEM("settings:\n  embd_per_head: 40000\naxes:\n  heads: [1, 2]\n",
                   "grid.yaml:2:18: embd 80000: must be between 1 and 65536");
    /* the run cap, before anything is expanded */
    char big[4096] = "axes:\n";
    const char *knobs[] = {"layers", "steps", "batch"};
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(big);
        len += (size_t)snprintf(big + len, sizeof big - len, "  %s: [", knobs[k]);
        for (int v = 1; v <= 47; v++)
            len += (size_t)snprintf(big + len, sizeof big - len, "%d%s", v, v < 47 ? ", " : "]\n");
    }
    EXPECT_PROBLEM(big, "grid.yaml:2:3: the grid expands to more than 100000 runs");
}

static void test_combination_once(void)
{
    /* heads 5 fails with embd 96 for 2 train_noise values x 3 seeds and in
     * two sub-grids crossed with the same axis: one problem */
    loaded l;
    load_text("settings:\n  embd: 96\nseeds: [0, 1, 2]\naxes:\n  heads: [3, 5]\n"
              "  train_noise: [0, 0.5]\ngrids:\n  - layers: [1, 2]\n  - attention: linear\n",
              &l);
    CHECK(l.rc != 0, "heads 5 with embd 96 must fail");
    CHECK(count_substr(l.diag, "heads 5 does not divide embd 96") == 1,
          "reported once, got:\n%s", l.diag);
    CHECK(strstr(l.diag ? l.diag : "", "/grid.yaml:5:14: heads 5") != NULL, "located: %s",
          l.diag);
    CHECK(strstr(l.err.msg, "grid.yaml: 1 problem in grid file") != NULL, "summary: %s",
          l.err.msg);
    unload(&l);

    /* 199 distinct combination problems (997 is prime): the first 100, then
     * a note, not one line per run */
    char text[4096] = "settings:\n  embd: 997\nseeds: [0, 1]\naxes:\n  heads: [";
    for (int h = 2; h <= 200; h++) {
        size_t len = strlen(text);
        snprintf(text + len, sizeof text - len, "%d%s", h, h < 200 ? ", " : "]\n");
    }
    load_text(text, &l);
    CHECK(l.rc != 0, "must fail");
    CHECK(count_lines(l.diag) == 101 && count_substr(l.diag, "too many problems") == 1,
          "%d lines", count_lines(l.diag));
    CHECK(strstr(l.diag ? l.diag : "", "/grid.yaml:5:11: heads 2 does not divide embd 997"),
          "the first problem is located");
    unload(&l);
}

static void test_all_at_once(void)
{
    loaded l;
    load_text("settings:\n"
              "  layers: [2]\n"          /* 2:11 list in settings */
              "  heads: 0\n"             /* 3:10 */
              "bogus: 1\n"               /* 4:1 unknown key */
              "seeds: [0, x]\n"          /* 5:12 */
              "grids:\n"
              "  - layers: [two, 3]\n"   /* 7:14 */
              "    attention: relu\n"    /* 8:16 */
              "  - heads: []\n",         /* 9:12 */
              &l);
    const char *want[] = {
        "/grid.yaml:2:11: layers: expected one value",
        "/grid.yaml:3:10: heads 0: must be between 1 and 1024",
        "/grid.yaml:4:1: unknown key 'bogus'",
        "/grid.yaml:5:12: seeds: expected a non-negative integer, got 'x'",
        "/grid.yaml:7:14: layers two: expected an integer",
        "/grid.yaml:8:16: attention relu: expected softmax or linear",
        "/grid.yaml:9:12: heads: empty list",
    };
    CHECK(l.rc != 0, "must fail");
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        CHECK(l.diag && strstr(l.diag, want[i]), "missing '%s' in:\n%s", want[i], l.diag);
    CHECK(count_lines(l.diag) == 7, "%d lines, want 7:\n%s", count_lines(l.diag), l.diag);
    CHECK(strstr(l.err.msg, "grid.yaml: 7 problems in grid file") != NULL, "summary: %s",
          l.err.msg);
    unload(&l);

    /* a broken sub-grid does not hide a combination problem in another */
    load_text("settings:\n  embd: 96\ngrids:\n  - layers: [x]\n  - heads: [5]\n", &l);
    CHECK(l.diag && strstr(l.diag, "/grid.yaml:4:14: layers x: expected an integer") &&
              strstr(l.diag, "/grid.yaml:5:13: heads 5 does not divide embd 96"),
          "both sub-grids' problems:\n%s", l.diag);
    unload(&l);

    /* every bad value of a list, not the first alone */
    load_text("eval_noise: [x, 0.5, 2]\n", &l);
    CHECK(l.diag && strstr(l.diag, "/grid.yaml:1:14: eval_noise x: expected a number") &&
              strstr(l.diag, "/grid.yaml:1:22: eval_noise 2: must be in [0,1]") &&
              count_lines(l.diag) == 2,
          "both values' problems:\n%s", l.diag);
    unload(&l);

    /* diag may be NULL: problems are still counted */
    load_text("axes:\n  heads: [0]\n", &l);
    grid g;
    icas_err err;
    CHECK(grid_load(l.path, &g, NULL, &err) != 0 && strstr(err.msg, "1 problem"),
          "without diag: %s", err.msg);
    unload(&l);
}

/* ---- a sub-grid's own seeds, and comparing grids ---------------------------- */

#define TINY                                                                                    \
    "settings: {layers: 1, heads: 2, embd: 8, points: 5, steps: 2, batch: 2, eval_batch: 2}\n"

/* Loads `text` and fills ids (at most 64 runs); returns the run count, -1
 * on failure. */
static int load_ids(const char *text, loaded *l, char (*ids)[ICAS_RUN_ID_LEN])
{
    load_text(text, l);
    CHECK(l->rc == 0, "%s\n%s\n%s", text, l->err.msg, l->diag);
    if (l->rc != 0 || l->g.n_runs > 64)
        return -1;
    grid_run_ids(&l->g, ids);
    return l->g.n_runs;
}

static void test_subgrid_seeds(void)
{
    /* the comparison's base: 2 sub-grids x 2 seeds */
    const char *base = TINY "seeds: [0, 1]\ngrids:\n  - ffn: [on, off]\n  - attention: linear\n";
    loaded a, b;
    char ida[64][ICAS_RUN_ID_LEN], idb[64][ICAS_RUN_ID_LEN];
    int na = load_ids(base, &a, ida);
    CHECK(na == 6, "base: %d runs, want 6", na);

    /* more seeds for the second sub-grid only: its runs come after the
     * first's, seeds innermost, and the old runs keep their ids */
    int nb = load_ids(TINY "seeds: [0, 1]\ngrids:\n  - ffn: [on, off]\n"
                      "  - attention: linear\n    seeds: [0, 1, 2, 3]\n",
                      &b, idb);
    CHECK(nb == 8, "%d runs, want 8", nb);
    if (na == 6 && nb == 8) {
        for (int i = 0; i < 8; i++)
            CHECK(b.g.runs[i].seed == (uint64_t)(i < 4 ? i % 2 : i - 4) &&
                      b.g.runs[i].attention == (i < 4 ? ATTN_SOFTMAX : ATTN_LINEAR),
                  "run %d: seed %llu attention %d", i, (unsigned long long)b.g.runs[i].seed,
                  b.g.runs[i].attention);
        for (int i = 0; i < 6; i++)
            CHECK(strcmp(ida[i], idb[i]) == 0, "row %d: id %s became %s", i, ida[i], idb[i]);
        grid_comparison cmp;
        int map[8];
        icas_err err;
        CHECK(grid_compare(ida, a.g.runs, na, idb, b.g.runs, nb, &cmp, map, &err) == 0,
              "%s", err.msg);
        CHECK(cmp.relation == GRID_EXTENDS && cmp.n_kept == 6 && cmp.n_added == 2 &&
                  cmp.n_moved == 0 && cmp.n_missing == 0 && cmp.first_missing == -1,
              "extends: relation %d kept %d added %d moved %d (%s)", cmp.relation, cmp.n_kept,
              cmp.n_added, cmp.n_moved, cmp.text);
        for (int i = 0; i < 8; i++)
            CHECK(map[i] == (i < 6 ? i : -1), "new run %d: old row %d", i, map[i]);
        CHECK(strcmp(cmp.text, "keeps the 6 runs (0 in other rows) and adds 2") == 0, "%s",
              cmp.text);
    }
    unload(&b);

    /* more seeds for the first sub-grid: the old runs move to other rows */
    nb = load_ids(TINY "seeds: [0, 1]\ngrids:\n  - ffn: [on, off]\n    seeds: [0, 1, 2]\n"
                  "  - attention: linear\n",
                  &b, idb);
    CHECK(nb == 8, "%d runs, want 8", nb);
    if (na == 6 && nb == 8) {
        grid_comparison cmp;
        int map[8];
        icas_err err;
        CHECK(grid_compare(ida, NULL, na, idb, NULL, nb, &cmp, map, &err) == 0,
              "%s", err.msg);
        /* new order: on 0 1 2, off 0 1 2, linear 0 1 */
        const int want[8] = {0, 1, -1, 2, 3, -1, 4, 5};
        for (int i = 0; i < 8; i++)
            CHECK(map[i] == want[i], "new run %d: old row %d, want %d", i, map[i], want[i]);
        CHECK(cmp.relation == GRID_EXTENDS && cmp.n_added == 2 && cmp.n_moved == 4,
              "moved: relation %d added %d moved %d", cmp.relation, cmp.n_added, cmp.n_moved);
    }
    unload(&b);

    /* a sub-grid's seeds replace the top level's, not add to them, and a
     * point two sub-grids share runs once per seed: seeds 0 and 1 from the
     * first sub-grid, 2 and 3 added by the second */
    nb = load_ids(TINY "seeds: [0, 1]\ngrids:\n  - ffn: [on, off]\n"
                  "  - ffn: on\n    seeds: [3, 0, 2]\n",
                  &b, idb);
    CHECK(nb == 6, "%d runs, want 6", nb);
    if (nb == 6)
        CHECK(b.g.runs[4].seed == 3 && b.g.runs[5].seed == 2 && b.g.runs[4].ffn == 1,
              "the shared point's new seeds, in the sub-grid's order");
    unload(&b);

    /* identical; and differing: an old run dropped, or changed */
    if (na == 6) {
        grid_comparison cmp;
        icas_err err;
        CHECK(grid_compare(ida, a.g.runs, na, ida, a.g.runs, na, &cmp, NULL, &err) == 0 &&
                  cmp.relation == GRID_IDENTICAL && strcmp(cmp.text, "the same 6 runs") == 0,
              "identical: %d %s", cmp.relation, cmp.text);

        nb = load_ids(TINY "seeds: [0, 1]\ngrids:\n  - ffn: [on]\n  - attention: linear\n", &b,
                      idb);
        if (nb == 4) {
            CHECK(grid_compare(ida, a.g.runs, na, idb, b.g.runs, nb, &cmp, NULL, &err) == 0,
                  "%s", err.msg);
            char want[256];
            snprintf(want, sizeof want, "row 2, %s (L=1 H=2 E=8 attn=softmax ffn=off", ida[2]);
            CHECK(cmp.relation == GRID_DIFFERS && cmp.first_missing == 2 && cmp.n_missing == 2 &&
                      strncmp(cmp.text, want, strlen(want)) == 0 &&
                      strstr(cmp.text, "seed=0), is not in the new grid") &&
                      strstr(cmp.text, "2 of 6 runs missing"),
                  "dropped: %d first %d: %s", cmp.relation, cmp.first_missing, cmp.text);
        }
        unload(&b);

        nb = load_ids("settings: {layers: 2, heads: 2, embd: 8, points: 5, steps: 2, batch: 2, "
                      "eval_batch: 2}\nseeds: [0, 1]\ngrids:\n  - ffn: [on, off]\n"
                      "  - attention: linear\n",
                      &b, idb);
        if (nb == 6) {
            CHECK(grid_compare(ida, a.g.runs, na, idb, b.g.runs, nb, &cmp, NULL, &err) == 0,
                  "%s", err.msg);
            char want[256];
            snprintf(want, sizeof want, "is not in the new grid, whose row 0 is %s (L=2 H=2",
                     idb[0]);
            CHECK(cmp.relation == GRID_DIFFERS && cmp.first_missing == 0 && cmp.n_added == 6 &&
                      strstr(cmp.text, want),
                  "changed: %d first %d: %s", cmp.relation, cmp.first_missing, cmp.text);
        }
        unload(&b);

        /* a list with a repeated id is refused, naming the rows */
        char rep[3][ICAS_RUN_ID_LEN];
        memcpy(rep[0], ida[0], ICAS_RUN_ID_LEN);
        memcpy(rep[1], ida[1], ICAS_RUN_ID_LEN);
        memcpy(rep[2], ida[0], ICAS_RUN_ID_LEN);
        CHECK(grid_compare(ida, NULL, na, rep, NULL, 3, &cmp, NULL, &err) != 0 &&
                  strstr(err.msg, "is in rows 0 and 2 of the new grid's list"),
              "repeated id: %s", err.msg);
    }
    unload(&a);

    /* a sub-grid's seeds are checked like the top level's, at their place,
     * and a problem there spoils that sub-grid alone */
    EXPECT_PROBLEM("grids:\n  - layers: 2\n    seeds: 3\n",
                   "grid.yaml:3:12: seeds: expected a list of integers such as [0, 1, 2], got '3'");
    EXPECT_PROBLEM("grids:\n  - layers: 2\n    seeds: [4, x, 4]\n",
                   "grid.yaml:3:16: seeds: expected a non-negative integer, got 'x'");
    EXPECT_PROBLEM("grids:\n  - layers: 2\n    seeds: [4, 5, 4]\n",
                   "grid.yaml:3:19: seeds 4: listed twice");
    EXPECT_PROBLEM("seeds: [0]\nsettings:\n  seeds: [1]\n",
                   "grid.yaml:3:3: unknown key 'seeds' in settings");
    loaded l;
    load_text("settings: {embd: 96}\ngrids:\n  - seeds: []\n  - heads: [5]\n", &l);
    CHECK(l.diag && strstr(l.diag, "/grid.yaml:3:12: seeds: empty list") &&
              strstr(l.diag, "/grid.yaml:4:13: heads 5 does not divide embd 96"),
          "both sub-grids' problems:\n%s", l.diag);
    unload(&l);
}

static void test_missing_file(void)
{
    grid g;
    icas_err err;
    int rc = grid_load("/nonexistent/grid.yaml", &g, stderr, &err);
    CHECK(rc != 0, "a missing file loads");
    CHECK(strcmp(err.msg, "/nonexistent/grid.yaml: cannot open: No such file or directory") == 0,
          "message: %s", err.msg);
    CHECK(g.runs == NULL && g.text == NULL && g.n_runs == 0, "empty grid after failure");
    grid_free(&g);
}

int main(void)
{
    test_smoke();
    test_paper();
    test_other_shipped();
    test_defaults();
    test_order();
    test_precedence_and_width();
    test_duplicates_joined();
    test_problems();
    test_combination_once();
    test_all_at_once();
    test_subgrid_seeds();
    test_missing_file();
    return test_finish("test_grid");
}
