/* Grid files: expansion order and counts of the shipped grids, duplicates
 * joined, and every kind of problem reported at its file:line:column, all
 * at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "icasweep/grid.h"
#include "testutil.h"

static char dir[] = "/tmp/icas_grid_XXXXXX";

/* Loads `text` from dir/name; returns the diagnostics (malloc'd) and rc. */
static char *load_text(const char *name, const char *text, grid *g, int *rc)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    char *diag = NULL;
    size_t len = 0;
    FILE *d = open_memstream(&diag, &len);
    icas_err err;
    *rc = grid_load(path, g, d, &err);
    fclose(d);
    return diag;
}

/* The file must be rejected with a problem at exactly `where` ("4:12")
 * whose message contains `what`. */
static void expect_problem(const char *text, const char *where, const char *what)
{
    grid g;
    int rc;
    char *diag = load_text("bad.yaml", text, &g, &rc);
    char want[128];
    snprintf(want, sizeof want, "bad.yaml:%s: ", where);
    char *at = strstr(diag, want);
    CHECK(rc != 0, "accepted a bad grid (%s)", what);
    CHECK(at && strstr(at, what) && strchr(at, '\n') > strstr(at, what),
          "want '%s...%s', got:\n%s", want, what, diag);
    free(diag);
}

static void test_shipped(void)
{
    const char *src = getenv("ICAS_SOURCE_DIR");
    char path[1024];
    struct { const char *name; int runs; } grids[] = {
        {"smoke.yaml", 8}, {"quick.yaml", 6}, {"paper.yaml", 33}, {"example.yaml", 15},
    };
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/jobs/grids/%s", src ? src : ".", grids[i].name);
        grid g;
        icas_err err;
        int rc = grid_load(path, &g, stderr, &err);
        CHECK(rc == 0, "%s: %s", path, err.msg);
        if (rc)
            continue;
        CHECK(g.n_runs == grids[i].runs, "%s: %d runs, want %d", grids[i].name, g.n_runs,
              grids[i].runs);
        for (int a = 0; a < g.n_runs; a++)
            for (int b = 0; b < a; b++) {
                char ia[ICAS_RUN_ID_LEN], ib[ICAS_RUN_ID_LEN];
                config_run_id(&g.runs[a], ia);
                config_run_id(&g.runs[b], ib);
                CHECK(strcmp(ia, ib) != 0, "%s: runs %d and %d share an id", grids[i].name, a, b);
            }
        CHECK(g.text && strstr(g.text, "seeds"), "%s: text not kept", grids[i].name);
        grid_free(&g);
    }
}

static void test_expansion(void)
{
    grid g;
    int rc;
    char *diag = load_text("ok.yaml",
                           "settings:\n  steps: 7\n  embd_per_head: 4\n"
                           "seeds: [5, 6]\n"
                           "eval_noise: [0, 1]\n"
                           "axes:\n  attention: [softmax, linear]\n"
                           "grids:\n"
                           "  - layers: [1, 2]\n    heads: 2\n"
                           "  - layers: 2\n    heads: [2, 3]\n",
                           &g, &rc);
    CHECK(rc == 0, "rejected: %s", diag);
    /* sub-grid 1: 2 layers x 2 attention x 2 seeds = 8; sub-grid 2 adds
     * heads 3 only (heads 2 at L=2 is a duplicate): 2 attention x 2 seeds */
    CHECK(g.n_runs == 12, "%d runs, want 12", g.n_runs);
    if (rc == 0 && g.n_runs == 12) {
        /* layers before attention, the last knob fastest, seeds innermost */
        const run_config *r = g.runs;
        CHECK(r[0].layers == 1 && r[0].attention == ATTN_SOFTMAX && r[0].seed == 5, "row 0");
        CHECK(r[1].layers == 1 && r[1].attention == ATTN_SOFTMAX && r[1].seed == 6, "row 1");
        CHECK(r[2].layers == 1 && r[2].attention == ATTN_LINEAR, "row 2");
        CHECK(r[4].layers == 2 && r[4].heads == 2, "row 4");
        CHECK(r[8].layers == 2 && r[8].heads == 3 && r[8].embd == 12, "row 8: E = 4 * 3");
        CHECK(r[0].steps == 7 && r[0].embd == 8 && r[0].n_eval_noise == 2, "settings");
    }
    free(diag);
    grid_free(&g);
}

static void test_problems(void)
{
    expect_problem("settings:\n  layers: 2\n  bogus: 3\n", "3:3", "unknown key 'bogus'");
    expect_problem("settings:\n  layers: 2\nseed: [1]\n", "3:1", "unknown key 'seed'");
    expect_problem("axes:\n  layers: [1, two]\n", "2:15", "expected an integer, got 'two'");
    expect_problem("axes:\n  layers: 2.5\n", "2:11", "expected an integer");
    expect_problem("axes:\n  heads: []\n", "2:10", "empty axis");
    expect_problem("axes:\n  attention: [softmax, cosine]\n", "2:24", "softmax or linear");
    expect_problem("settings:\n  train_noise: 1.5\n", "2:16", "must be in [0,1]");
    expect_problem("settings:\n  layers: [2, 3]\n", "2:11", "expected one value");
    expect_problem("settings:\n  layers: {a: 1}\n", "2:11", "expected a value");
    expect_problem("settings:\n  embd: 96\naxes:\n  heads: [3, 5]\n", "4:14",
                   "--heads 5 does not divide --embd 96");
    expect_problem("axes:\n  embd: 8\n  embd_per_head: 4\n", "2:3", "not both");
    expect_problem("seeds: [1, -2]\n", "1:12", "non-negative integer");
    expect_problem("seeds: []\n", "1:8", "empty list");
    expect_problem("eval_noise: [0, 2]\n", "1:17", "number in [0,1]");
    expect_problem("settings:\n  layers: 2\n  layers: 3\n", "3:3", "duplicate key 'layers'");
    expect_problem("settings:\n  layers: [2\n", "3:1", "YAML syntax");
    expect_problem("- just\n- a list\n", "1:1", "a grid file is a mapping");

    /* several problems in one file are all reported */
    grid g;
    int rc;
    char *diag = load_text("bad.yaml", "settings:\n  bogus: 1\naxes:\n  heads: []\n"
                                       "  layers: [x]\nwhat: 2\n", &g, &rc);
    int lines = 0;
    for (char *p = diag; (p = strchr(p, '\n')); p++)
        lines++;
    CHECK(rc != 0 && lines == 4, "want 4 problems at once, got %d:\n%s", lines, diag);
    free(diag);

    icas_err err;
    CHECK(grid_load("/nonexistent/grid.yaml", &g, stderr, &err) != 0 &&
              strstr(err.msg, "/nonexistent/grid.yaml"),
          "missing file: %s", err.msg);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    test_shipped();
    test_expansion();
    test_problems();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_grid");
}
