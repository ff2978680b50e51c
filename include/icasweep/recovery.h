/* Recovery: before a sweep writes a result file (or `icasweep repair`
 * mends one), makes the file and its result journal (journal.h) agree, so
 * that every result ever acknowledged is in the file and every row the
 * file marks done holds all its numbers.
 *
 *  - no file: created; with records in the journal, built from them;
 *  - a file that cannot be read (damaged from outside: truncated,
 *    overwritten): built anew from the journal's records, the damaged one
 *    kept as <path>.damaged; refused when the journal has none;
 *  - a file whose rows are the first rows of `layout`, in order, with
 *    another grid text (a grid that keeps every run of the file and adds
 *    runs, or only rewords it): grown, rebuilt whole with its rows kept
 *    (row numbers, numbers, checksums) and the added rows pending, its
 *    grid the new one and the new grid added to /grid_history; the old
 *    file is replaced only by the complete new one, so a kill leaves one
 *    or the other and a rerun does or finds the growth;
 *  - a file of other runs or another schema: refused;
 *  - a file of an earlier icasweep's layout: rewritten whole in this one
 *    (its sound rows, then the journal's records);
 *  - otherwise, in place: the journal's records are written into their
 *    rows (the file may lack any of them: a kill can come between the
 *    journal and the file), and a row marked done whose numbers fail its
 *    checksum and that the journal does not hold is made pending (its run
 *    is redone).
 * Only the journal's records are read besides the file: the journal holds
 * just the results since the file was last made durable. The file is
 * durable (fsync) when this returns 0. */
#ifndef ICASWEEP_RECOVERY_H
#define ICASWEEP_RECOVERY_H

#include <stdio.h>

#include "icasweep/error.h"
#include "icasweep/store.h"

typedef struct {
    int created;          /* there was neither file nor journal: a new file */
    int journal_records;  /* sound records of this grid's runs in the journal */
    int applied;          /* of them, written into the file */
    int hollow;           /* rows marked done without their numbers, made pending */
    int damaged;          /* the file could not be read */
    int rebuilt;          /* the file was built anew (missing, damaged or converted) */
    int converted;        /* it was an earlier icasweep's layout */
    int from_file;        /* rows a rebuild kept from the old file */
    int refused;          /* another grid's file, or damaged with no journal */
    int grown;            /* the file was grown: its grid changed */
    int added;            /* rows the growth appended */
} recovery_report;

/* As above for the file `path` of `layout` and the journal at
 * `journal_file`. What was done goes to `log` (may be NULL) and *out; each
 * row's status afterwards (run_status; a row without its numbers intact is
 * RUN_PENDING) to *status, malloc'd [layout->n_runs]. */
int recovery_prepare(const char *path, const store_layout *layout, const char *journal_file,
                     FILE *log, recovery_report *out, int **status, icas_err *err);

#endif
