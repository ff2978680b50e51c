/* The result journal: one append-only log beside the result file,
 * `<RESULTS.h5>.journal`, in the manner of SQLite's write-ahead log. A
 * sweep appends every result it receives to the log and makes the log
 * durable (one fsync for the results that arrived together) before it tells
 * the worker so and before it writes the result file; the result file is
 * then updated in place. Every so often, once the result file itself is
 * durable (fsync), the log is cut back to its header: it holds only the
 * results the file may not yet hold, so it stays small, and recovery after
 * a kill reads only those.
 *
 * Format (this program's native layout, like a checkpoint): a file header
 * (magic "ICASLOG1", format version, header sizes, the grid file's text,
 * FNV-1a 64 checksum of all that), then records. A record is a header
 * (magic "ICASREC1", its length in bytes, run id, row, array sizes,
 * finished_at, the result's run_outcome), the result's arrays in
 * run_result_parts order as float32, and a FNV-1a 64 checksum (hash.h, from
 * HASH_ICASWEEP_INIT) of everything in the record before it. A record cut
 * short by a kill fails its length or checksum and is ignored: its result
 * was never acknowledged. */
#ifndef ICASWEEP_JOURNAL_H
#define ICASWEEP_JOURNAL_H

#include <stdio.h>

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/result.h"

#define JOURNAL_FINISHED_AT_LEN 32

/* "<results>.journal" */
void journal_path(const char *results, char *out, size_t n);

typedef struct journal journal;

/* Makes `path` a log with no records (replacing any earlier log whole and
 * atomically: atomicfile.h) whose header holds grid_text (may be NULL),
 * and opens it for appending. */
int journal_create(const char *path, const char *grid_text, journal **out, icas_err *err);

/* Adds r (the result of row `row`, recorded at finished_at) to the records
 * waiting for journal_sync; writes nothing yet. */
int journal_append(journal *j, int row, const run_result *r, const char *finished_at,
                   icas_err *err);

/* Writes the waiting records at the end of the log (one write) and makes
 * them durable (one fdatasync). On failure the log is cut back to what it
 * held before, err->sys_errno holds the errno (ENOSPC, EIO, ...) and the
 * waiting records are dropped. */
int journal_sync(journal *j, icas_err *err);

/* Cuts the log back to its header, durably. Only once the result file
 * holds every record, durably. */
int journal_truncate(journal *j, icas_err *err);

/* Records in the log since it was created or last cut back (synced ones),
 * and its size in bytes. */
int journal_records(const journal *j);
long long journal_bytes(const journal *j);

void journal_close(journal *j);

/* Removes the log (a missing one is fine) and makes that durable. */
int journal_remove(const char *path, icas_err *err);

/* What journal_scan found. */
typedef struct {
    int exists;   /* there is a log at path */
    int records;  /* sound records of this grid's runs, passed to visit */
    int foreign;  /* sound records not of this grid's runs: ignored */
    int damaged;  /* records failing their checksum: ignored */
    int torn;     /* 1 when the log ends in a record cut short */
} journal_scan_info;

/* Called with each sound record: r is allocated for runs[row] (visit may
 * keep nothing of it; it is freed after). Non-zero stops the scan with
 * that return value (err set by visit). */
typedef int (*journal_visit)(void *user, int row, const run_result *r,
                             const char *finished_at, icas_err *err);

/* Reads the log at `path` record by record, checking each (length,
 * checksum, run id and sizes against runs[row], n_runs rows), and passes
 * the sound ones of these runs to visit in log order. Damaged and foreign
 * records are reported to `log` (may be NULL) and skipped. A missing log has
 * no records (info->exists 0). runs may be NULL to count records without
 * reading them (visit is then not called and foreign/damaged are not told
 * apart from sound ones beyond their checksum). */
int journal_scan(const char *path, const run_config *runs, int n_runs, FILE *log,
                 journal_visit visit, void *user, journal_scan_info *info, icas_err *err);

/* The grid text in the log's header (malloc'd; NULL with return 0 when
 * there is no log). */
int journal_grid_text(const char *path, char **text, icas_err *err);

#endif
