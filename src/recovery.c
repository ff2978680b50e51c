#include "icasweep/recovery.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icasweep/fault.h"
#include "icasweep/journal.h"

/* journal_scan's visitor: writes each record into its row. */
typedef struct {
    store_file *file;
    int *applied_rows; /* [R]: the status + 1 of the record written there; 0: none */
    int applied;
} apply_state;

static int apply_record(void *user, int row, const run_result *r, const char *finished_at,
                        icas_err *err)
{
    apply_state *a = user;
    if (store_write(a->file, row, r, finished_at, err))
        return -1;
    if (!a->applied_rows[row])
        a->applied++;
    a->applied_rows[row] = (int)r->status + 1;
    return 0;
}

static int count_records(const char *journal_file, const store_layout *l, FILE *log,
                         journal_scan_info *info, icas_err *err)
{
    return journal_scan(journal_file, l->runs, l->n_runs, log, NULL, NULL, info, err);
}

/* Builds `path` anew under "<path>.rebuild": every row pending, then the
 * sound rows of `old` (an existing readable file; NULL for none), then the
 * journal's records; made durable and renamed over path. */
static int rebuild(const char *path, const store_layout *l, const char *old,
                   const char *journal_file, recovery_report *out, icas_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.rebuild", path);
    if (store_create(tmp, l, 1, err))
        return -1;
    store_file *f;
    if (store_open(tmp, &f, err))
        return -1;
    int rc = 0;
    int *keep = malloc(sizeof(int) * (size_t)l->n_runs);
    int *applied = calloc((size_t)l->n_runs, sizeof(int));
    if (!keep || !applied)
        rc = icas_fail(err, "out of memory");
    if (rc == 0 && old) {
        for (int i = 0; i < l->n_runs; i++)
            keep[i] = 1;
        rc = store_copy_rows(old, f, l, keep, &out->from_file, err);
    }
    apply_state a = {f, applied, 0};
    journal_scan_info info;
    if (rc == 0)
        rc = journal_scan(journal_file, l->runs, l->n_runs, NULL, apply_record, &a, &info, err);
    out->applied = a.applied;
    if (rc == 0)
        rc = store_sync(f, err);
    icas_err close_err;
    if (store_close(f, &close_err) && rc == 0) {
        *err = close_err;
        rc = -1;
    }
    free(keep);
    free(applied);
    if (rc == 0 && store_sync_path(tmp, err))
        rc = -1;
    if (rc == 0 && out->damaged) {
        /* the damaged file is kept beside the new one for inspection */
        char kept[4200];
        snprintf(kept, sizeof kept, "%s.damaged", path);
        if (fault_rename(path, kept) != 0 && errno != ENOENT)
            rc = icas_fail_errno(err, errno, "%s: %s", kept, strerror(errno));
    }
    if (rc == 0 && (fault_rename(tmp, path) != 0 || fault_fsync_dir_of(path) != 0))
        rc = icas_fail_errno(err, errno, "%s: %s", path, strerror(errno));
    if (rc)
        unlink(tmp);
    else
        out->rebuilt = 1;
    return rc;
}

/* Each row's status as a sweep should take it: a row whose numbers fail
 * its checksum counts pending. *status is malloc'd [n_runs]. */
static int statuses_of(const char *path, int n_runs, int **status, icas_err *err)
{
    store_contents c;
    if (store_read(path, &c, err))
        return -1;
    if (c.n_runs != n_runs) {
        store_contents_free(&c);
        return icas_fail(err, "%s: %d rows, the grid has %d runs", path, c.n_runs, n_runs);
    }
    *status = malloc(sizeof(int) * (size_t)(n_runs ? n_runs : 1));
    for (int i = 0; *status && i < n_runs; i++)
        (*status)[i] = c.rows[i].sound && c.rows[i].status >= 0 ? c.rows[i].status : RUN_PENDING;
    store_contents_free(&c);
    return *status ? 0 : icas_fail(err, "out of memory");
}

/* Refuses a file of other runs or another grid text. */
static int same_grid(const char *path, const store_contents *c, const store_layout *l,
                     icas_err *err)
{
    int first_diff = -1;
    for (int i = 0; i < c->n_runs && i < l->n_runs; i++) {
        char id[ICAS_RUN_ID_LEN];
        if (l->run_ids)
            memcpy(id, l->run_ids[i], ICAS_RUN_ID_LEN);
        else
            config_run_id(&l->runs[i], id);
        if (strncmp(id, c->rows[i].run_id, ICAS_RUN_ID_LEN) != 0) {
            first_diff = i;
            break;
        }
    }
    if (c->n_runs != l->n_runs || first_diff >= 0) {
        char where[256] = "";
        if (first_diff >= 0) {
            char id[ICAS_RUN_ID_LEN];
            config_run_id(&l->runs[first_diff], id);
            snprintf(where, sizeof where, "; row %d is %.20s in the file but %s in the grid",
                     first_diff, c->rows[first_diff].run_id, id);
        }
        return icas_fail(err, "%s was made from a different grid: %d runs in the file, %d in "
                              "the grid%s", path, c->n_runs, l->n_runs, where);
    }
    if (strcmp(c->grid_text, l->grid_text ? l->grid_text : "") != 0)
        return icas_fail(err, "%s was made from a different grid file: the same runs, but the "
                              "grid text stored in the file differs", path);
    return 0;
}

/* 1 when `l` grows the file of contents c: the file's rows are l's first
 * rows, in order, and l adds rows or another grid text. */
static int grows_file(const store_contents *c, const store_layout *l)
{
    if (c->n_runs > l->n_runs)
        return 0;
    for (int i = 0; i < c->n_runs; i++) {
        char id[ICAS_RUN_ID_LEN];
        if (l->run_ids)
            memcpy(id, l->run_ids[i], ICAS_RUN_ID_LEN);
        else
            config_run_id(&l->runs[i], id);
        if (strncmp(id, c->rows[i].run_id, ICAS_RUN_ID_LEN) != 0)
            return 0;
    }
    return c->n_runs < l->n_runs || strcmp(c->grid_text, l->grid_text ? l->grid_text : "") != 0;
}

/* Grows the file of contents c to `l`: a rebuild that keeps every row
 * (copied into the same row: its numbers, and its checksum while the loss
 * rows keep their length) and adds l's further rows pending, with the
 * file's grid history and l's grid after it. The journal's records are of
 * the file's rows, which keep their numbers: they are applied as ever. */
static int grow(const char *path, const store_contents *c, const store_layout *l,
                const char *journal_file, FILE *log, recovery_report *out, icas_err *err)
{
    store_layout grown = *l;
    grown.history = c->history;
    grown.n_history = c->n_history;
    if (log)
        fprintf(log, "icasweep: growing %s from %d to %d rows (its grid history: %d grid%s)\n",
                path, c->n_runs, l->n_runs, c->n_history + 1, c->n_history ? "s" : "");
    int rc = rebuild(path, &grown, path, journal_file, out, err);
    if (rc == 0) {
        out->grown = 1;
        out->added = l->n_runs - c->n_runs;
    }
    return rc;
}

static int prepare(const char *path, const store_layout *layout, const char *journal_file,
                   FILE *log, recovery_report *out, int **status, icas_err *err);

int recovery_prepare(const char *path, const store_layout *layout, const char *journal_file,
                     FILE *log, recovery_report *out, int **status, icas_err *err)
{
    *status = NULL;
    int rc = prepare(path, layout, journal_file, log, out, status, err);
    /* a file made or rebuilt here: its statuses from the file itself */
    if (rc == 0 && !*status)
        rc = statuses_of(path, layout->n_runs, status, err);
    return rc;
}

static int prepare(const char *path, const store_layout *layout, const char *journal_file,
                   FILE *log, recovery_report *out, int **status, icas_err *err)
{
    memset(out, 0, sizeof *out);
    if (store_layout_check(layout, err))
        return icas_wrap(err, "%s: ", path);
    /* what a rebuild or creation killed midway left behind (the caller
     * holds the sweep's lock: no one else writes these) */
    char leftover[4200];
    snprintf(leftover, sizeof leftover, "%s.rebuild", path);
    unlink(leftover);
    snprintf(leftover, sizeof leftover, "%s.rebuild.tmp", path);
    unlink(leftover);
    snprintf(leftover, sizeof leftover, "%s.tmp", path);
    unlink(leftover);

    journal_scan_info info;
    if (count_records(journal_file, layout, log, &info, err))
        return -1;
    out->journal_records = info.records;
    if (info.torn && log)
        fprintf(log, "icasweep: %s ends in a record cut short by the kill; its result was "
                     "never acknowledged and its run is redone\n", journal_file);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (info.records == 0) {
            int rc = store_create(path, layout, 0, err);
            out->created = rc == 0;
            return rc;
        }
        if (log)
            fprintf(log, "icasweep: %s is missing; rebuilding it from %d result%s in the "
                         "journal %s\n", path, info.records, info.records == 1 ? "" : "s",
                    journal_file);
        return rebuild(path, layout, NULL, journal_file, out, err);
    }

    store_contents c;
    icas_err why;
    int rc = store_read(path, &c, &why);
    if (rc == -2) {
        out->refused = 1;
        *err = why;
        return -1;
    }
    if (rc == -1) {
        out->damaged = 1;
        if (info.records == 0) {
            out->refused = 1;
            return icas_fail(err, "%s is damaged (%s) and there is no result journal %s to "
                                  "rebuild it from; move it aside to start over", path, why.msg,
                             journal_file);
        }
        if (log)
            fprintf(log, "icasweep: %s is damaged (%s); rebuilding it from %d result%s in the "
                         "journal %s (runs recorded before the journal was last cut back are "
                         "redone)\n", path, why.msg, info.records, info.records == 1 ? "" : "s",
                    journal_file);
        rc = rebuild(path, layout, NULL, journal_file, out, err);
        if (rc == 0 && log)
            fprintf(log, "icasweep: the damaged file is kept as %s.damaged\n", path);
        return rc;
    }
    if (grows_file(&c, layout)) {
        rc = grow(path, &c, layout, journal_file, log, out, err);
        store_contents_free(&c);
        return rc;
    }
    if (same_grid(path, &c, layout, err)) {
        store_contents_free(&c);
        out->refused = 1;
        return -1;
    }
    if (!c.in_place) {
        store_contents_free(&c);
        if (log)
            fprintf(log, "icasweep: %s was written by an earlier icasweep; rewriting it in "
                         "this version's layout (its results kept)\n", path);
        out->converted = 1;
        return rebuild(path, layout, path, journal_file, out, err);
    }

    store_file *f;
    if (store_open(path, &f, err)) {
        store_contents_free(&c);
        return -1;
    }
    int *applied = calloc((size_t)layout->n_runs, sizeof(int));
    apply_state a = {f, applied, 0};
    rc = applied ? 0 : icas_fail(err, "out of memory");
    if (rc == 0 && info.records > 0)
        rc = journal_scan(journal_file, layout->runs, layout->n_runs, NULL, apply_record, &a,
                          &info, err);
    out->applied = a.applied;
    int *final = rc == 0 ? malloc(sizeof(int) * (size_t)c.n_runs) : NULL;
    if (rc == 0 && !final)
        rc = icas_fail(err, "out of memory");
    for (int i = 0; rc == 0 && i < c.n_runs; i++) {
        final[i] = applied[i] ? applied[i] - 1
                : c.rows[i].sound && c.rows[i].status >= 0 ? c.rows[i].status
                                                          : RUN_PENDING;
        if (applied[i] || c.rows[i].status == RUN_PENDING || c.rows[i].sound)
            continue;
        rc = store_write_pending(f, i, &layout->runs[i], err);
        out->hollow++;
    }
    if (rc == 0)
        *status = final;
    else
        free(final);
    if (rc == 0 && (out->applied || out->hollow))
        rc = store_sync(f, err);
    icas_err close_err;
    if (store_close(f, &close_err) && rc == 0) {
        *err = close_err;
        rc = -1;
    }
    if (rc == 0 && out->applied && log)
        fprintf(log, "icasweep: %s: %d result%s from the journal written into the file\n", path,
                out->applied, out->applied == 1 ? "" : "s");
    if (rc == 0 && out->hollow && log)
        fprintf(log, "icasweep: %s: %d run%s marked done without %s numbers intact (the row "
                     "fails its checksum, and the journal does not hold %s); %s pending and "
                     "will be redone\n",
                path, out->hollow, out->hollow == 1 ? "" : "s",
                out->hollow == 1 ? "its" : "their", out->hollow == 1 ? "it" : "them",
                out->hollow == 1 ? "it is" : "they are");
    free(applied);
    store_contents_free(&c);
    return rc;
}
