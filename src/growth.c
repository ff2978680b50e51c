#include "icasweep/growth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "icasweep/store.h"

/* The runs of the file's grid in the file's rows (old_runs[n_old]), for
 * naming them: from the grid text stored in the file, each matched to its
 * row by run id (a grown file's rows are not its grid's order). NULL when
 * the text does not give every row's run. */
static run_config *runs_of_file(const char *text, const char (*old_ids)[ICAS_RUN_ID_LEN],
                                int n_old)
{
    grid og;
    icas_err ignore;
    FILE *quiet = fopen("/dev/null", "w");
    int bad = !quiet || grid_parse("the file's grid", text, strlen(text), &og, quiet, &ignore);
    if (quiet)
        fclose(quiet);
    if (bad)
        return NULL;
    run_config *runs = calloc((size_t)(n_old ? n_old : 1), sizeof *runs);
    int found = 0;
    for (int i = 0; runs && i < og.n_runs; i++) {
        char id[ICAS_RUN_ID_LEN];
        config_run_id(&og.runs[i], id);
        for (int r = 0; r < n_old; r++)
            if (!strncmp(id, old_ids[r], ICAS_RUN_ID_LEN)) {
                runs[r] = og.runs[i];
                found++;
                break;
            }
    }
    grid_free(&og);
    if (found != n_old) {
        free(runs);
        return NULL;
    }
    return runs;
}

int growth_match_rows(const char *path, grid *g, char (*ids)[ICAS_RUN_ID_LEN],
                      grid_comparison *cmp, int *n_file, icas_err *err)
{
    memset(cmp, 0, sizeof *cmp);
    cmp->first_missing = -1;
    *n_file = -1;
    struct stat st;
    char(*old_ids)[ICAS_RUN_ID_LEN] = NULL;
    char *text = NULL;
    int n_old = 0;
    icas_err unreadable;
    if (stat(path, &st) != 0 || store_read_run_ids(path, &old_ids, &n_old, &text, &unreadable))
        return 0;
    int n = g->n_runs;
    run_config *old_runs = runs_of_file(text, (const char (*)[ICAS_RUN_ID_LEN])old_ids, n_old);
    int *new_to_old = malloc(sizeof(int) * (size_t)(n ? n : 1));
    run_config *runs = malloc(sizeof *runs * (size_t)(n ? n : 1));
    char(*in_rows)[ICAS_RUN_ID_LEN] = malloc(sizeof *in_rows * (size_t)(n ? n : 1));
    int rc = 0;
    if (!new_to_old || !runs || !in_rows)
        rc = icas_fail(err, "%s: out of memory", path);
    else
        rc = grid_compare((const char (*)[ICAS_RUN_ID_LEN])old_ids, old_runs, n_old,
                          (const char (*)[ICAS_RUN_ID_LEN])ids, g->runs, n, cmp, new_to_old,
                          err);
    if (rc == 0 && cmp->relation == GRID_EXTENDS) {
        /* the file's runs in their rows, then the added ones in g's order */
        int added = n_old;
        for (int i = 0; i < n; i++) {
            int row = new_to_old[i] >= 0 ? new_to_old[i] : added++;
            runs[row] = g->runs[i];
            memcpy(in_rows[row], ids[i], ICAS_RUN_ID_LEN);
        }
        memcpy(g->runs, runs, sizeof *runs * (size_t)n);
        memcpy(ids, in_rows, sizeof *in_rows * (size_t)n);
    }
    if (rc == 0)
        *n_file = n_old;
    free(in_rows);
    free(runs);
    free(new_to_old);
    free(old_runs);
    free(old_ids);
    free(text);
    return rc;
}
