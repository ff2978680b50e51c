/* How a grid relates to the result file it is swept into: a grid that
 * keeps every run of the file and adds runs grows the file, its runs then
 * taking the file's rows (the file's runs in their rows, the added runs
 * appended in the grid's order; recovery.h does the growth itself). */
#ifndef ICASWEEP_GROWTH_H
#define ICASWEEP_GROWTH_H

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/grid.h"

/* Compares g (its run ids in ids, g->n_runs) with the runs of the existing
 * result file `path` (grid_compare, the file's runs named from the grid
 * text it stores) and, when g grows it or reorders its runs
 * (GRID_EXTENDS), puts g's runs and ids in the file's rows. *cmp says how
 * they relate; *n_file is the file's rows. Returns 0 (also when there is
 * no file, or it cannot be read: *n_file -1, g untouched; recovery judges
 * it), or -1 with err set (no memory). */
int growth_match_rows(const char *path, grid *g, char (*ids)[ICAS_RUN_ID_LEN],
                      grid_comparison *cmp, int *n_file, icas_err *err);

#endif
