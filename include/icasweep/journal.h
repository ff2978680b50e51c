/* The result journal: every result the sweep records lands first, whole,
 * in a small file of its own, `<RESULTS.h5>.journal/<run_id>.res`, written
 * under a temporary name, fsync'd, renamed into place and the directory
 * fsync'd. A journal entry therefore either exists complete (its checksum
 * holds) or not at all, whenever the process dies. The result file is
 * updated in place only after that, so whatever a kill inside an HDF5 write
 * does to the result file, the journal holds every recorded result and
 * store_recover() rebuilds the file from it.
 *
 * Entry format (one binary file, this program's native layout, like a
 * checkpoint): journal_header, then the float arrays train_loss[steps],
 * tf_err, gd_err, blind_err, pick_err [P*N each], with a saved model also
 * params[n_params], eval_tokens[B*3N*d], eval_pred[B*N*d], eval_target[B*d];
 * then a 64-bit FNV-1a checksum of everything before it (hash.h, from
 * HASH_ICASWEEP_INIT). */
#ifndef ICASWEEP_JOURNAL_H
#define ICASWEEP_JOURNAL_H

#include <stddef.h>

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/result.h"

#define JOURNAL_FINISHED_AT_LEN 32

/* "<results>.journal" */
void journal_dir(const char *results, char *out, size_t n);

/* Creates the directory if missing. */
int journal_make_dir(const char *dir, icas_err *err);

/* Writes r (the result of row `row`, recorded at finished_at) as the entry
 * of its run, replacing an earlier entry of the same run atomically. On
 * failure err->sys_errno holds the errno (ENOSPC, EIO, ...). */
int journal_write(const char *dir, int row, const run_result *r, const char *finished_at,
                  icas_err *err);

typedef struct {
    char path[4096];
    char run_id[ICAS_RUN_ID_LEN];
    int row;
    int status; /* run_status */
} journal_item;

/* The entries in dir (headers only, unverified), sorted by row; *items is
 * malloc'd (NULL when there are none). A missing directory has none. */
int journal_list(const char *dir, journal_item **items, int *n, icas_err *err);

/* Reads and verifies one entry (magic, format version, sizes, checksum)
 * as the result of configuration cfg: r is allocated for cfg and filled;
 * *row and finished_at are set. A damaged entry or one of another run is
 * an error naming the file. */
int journal_read(const char *file, const run_config *cfg, run_result *r, int *row,
                 char finished_at[JOURNAL_FINISHED_AT_LEN], icas_err *err);

/* Removes every file in dir, then dir. */
int journal_remove(const char *dir, icas_err *err);

#endif
