/* YAML grid files (parsed with libyaml): shared settings, axes, seeds,
 * evaluation noise levels and sub-grids, expanded into the list of runs of a
 * sweep. The run order is the row order of the result file. */
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

#endif
