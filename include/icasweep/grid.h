/* YAML grid files (parsed with libyaml): shared settings, axes, seeds,
 * evaluation noise levels and sub-grids, expanded into the list of runs of a
 * sweep. The run order is the row order of the result file. And how the
 * runs of two grids relate: whether a new grid keeps a file's runs. */
#ifndef ICASWEEP_GRID_H
#define ICASWEEP_GRID_H

#include <stdio.h>

#include "icasweep/config.h"
#include "icasweep/error.h"

typedef struct {
    run_config *runs; /* in plan order, duplicates removed */
    int n_runs;
    char *text;       /* the grid file's text, stored in the result file */
    int checkpoint_every; /* steps between checkpoints; 0 = never */
    int save_model;       /* 1: store /models/<run_id> for every run */
} grid;

/* Parses and validates a grid file before any work starts. Every problem is
 * written to `diag`, one per line "file:line:column: message"; returns
 * non-zero if there was any, with a one-line summary in err. */
int grid_load(const char *path, grid *out, FILE *diag, icas_err *err);
/* The same from text in memory (len bytes, need not be NUL-terminated);
 * `name` labels the diagnostics. */
int grid_parse(const char *name, const char *text, size_t len, grid *out, FILE *diag,
               icas_err *err);
void grid_free(grid *g);

/* ---- comparing a file's grid with a new one -------------------------------- */

/* How a new grid's runs relate to those of a file made from another grid. */
typedef enum {
    GRID_IDENTICAL = 0, /* the same runs in the same rows */
    GRID_EXTENDS,       /* every old run is among the new ones, perhaps in another row,
                         * and n_added are new (0: the same runs, reordered) */
    GRID_DIFFERS        /* an old run is not among the new ones (first_missing) */
} grid_relation;

typedef struct {
    grid_relation relation;
    int n_kept;        /* old runs that are among the new ones */
    int n_added;       /* new runs that are not among the old ones */
    int n_moved;       /* kept runs whose row in the new grid is another */
    int n_missing;     /* old runs that are not among the new ones */
    int first_missing; /* the lowest old row whose run is not among the new; -1: none */
    /* one line for a message: "the same 12 runs", "keeps the 12 runs (3 in
     * other rows) and adds 8", or "row 3, r0123456789abcdef (L=2 ... seed=1),
     * is not in the new grid, whose row 3 is r... (L=3 ...); 2 of 12 runs
     * missing" */
    char text[1024];
} grid_comparison;

/* Compares the runs of a file's grid with a new grid's, by run id (a run's
 * id stands for everything that changes its numbers, config_run_id):
 * old_ids[0 .. n_old) in row order, new_ids[0 .. n_new) in the new grid's
 * order, each list without repeats. old_runs and new_runs (either may be
 * NULL) describe the runs in `text`. new_to_old (n_new entries, may be
 * NULL) receives for every new run its old row, or -1 for an added run: the
 * rows a grown file appends. Nothing else is read or written. Returns 0, or
 * -1 with err set (a repeated id, no memory). */
int grid_compare(const char (*old_ids)[ICAS_RUN_ID_LEN], const run_config *old_runs, int n_old,
                 const char (*new_ids)[ICAS_RUN_ID_LEN], const run_config *new_runs, int n_new,
                 grid_comparison *out, int *new_to_old, icas_err *err);

/* The run ids of a grid's runs, in its order: ids[g->n_runs]. */
void grid_run_ids(const grid *g, char (*ids)[ICAS_RUN_ID_LEN]);

#endif
