/* The HDF5 result file: one file holds every run of a sweep (a `train`
 * file is a sweep of one run). Layout (schema version STORE_SCHEMA_VERSION):
 *
 *   /runs          compound table [R], one row per run in plan order
 *   /eval/noise    [P]        evaluation noise levels
 *   /eval/tf_err   [R, P, N]  transformer error at position i
 *   /eval/gd_err   [R, P, N]  GD baseline with k examples
 *   /eval/blind_err [R, P, N] reward-blind average of k responses
 *   /eval/pick_err [R, P, N]  highest-seen-reward response of k
 *   /train/step    [S]        1..S (S = the largest step count of the grid)
 *   /train/loss    [R, S]     training loss per step, NaN past a run's steps
 *   /selfcorrect/  only when the runs have a closed loop (selfcorrect.h;
 *                  all runs of a file share its rounds, k0 and q):
 *     q [Q], k0 [K0], round [T] (1..T)   its axes
 *     err        [R, Q, K0, T]  error of round t's own answer
 *     open_err   [R, Q, K0, T]  ordinary evaluation with k0 + t - 1 responses
 *     critic_tau [R, Q, K0]     critic's Kendall tau-b, mean over rounds
 *   /models/<run_id>/...      with save_model, one group per run, NaN until
 *                             the run is done: GPT-2-named parameters,
 *                             eval_tokens [B, 3N, d], eval_pred [B, N, d],
 *                             eval_target [B, d]
 *   /grid_history  compound [H]: applied_at (UTC), runs (rows from then on),
 *                  grid (text) of each grid the file was made from or grown
 *                  by, oldest first; the last is the `grid` attribute
 *   root attributes: schema_version, program_version, git_revision,
 *                    grid (the grid file's text), created
 *   every dataset has a `description` attribute.
 *
 * Every per-run dataset is chunked (about 16 KiB of runs a chunk) along an
 * extendible first axis, so rows can be appended by extending that axis,
 * and every byte of the file is allocated when it is created:
 * writing a result afterwards changes only that run's bytes (raw data; the
 * file's structure, HDF5's metadata, is never written again). So a kill in
 * the middle of a write can tear only the row being written, never the
 * rest of the file, and a reader can open the file at any time, even
 * while a sweep holds it open for writing. Each /runs row carries a
 * checksum of all its numbers, model included (row_checksum below; the
 * /runs attribute checksum_covers names the parts), so a torn or damaged
 * row is told from a sound one; the result journal (journal.h) holds every
 * result until the file holding it is durable. */
#ifndef ICASWEEP_STORE_H
#define ICASWEEP_STORE_H

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/result.h"

/* 2: /eval/blind_err, /eval/pick_err and /models/<id>/eval_target added */
#define STORE_SCHEMA_VERSION 2

/* One grid a file was made from or grown by: /grid_history, one row per
 * grid in the order applied, the last the file's `grid` attribute. */
typedef struct {
    char applied_at[32]; /* UTC, "2026-12-04T19:30:00Z" */
    int n_runs;          /* the file's rows from then on */
    char *text;          /* the grid file's text */
} store_grid_entry;

typedef struct {
    int n_runs;             /* R */
    const run_config *runs; /* [R], in row order */
    const char *grid_text;  /* stored as the `grid` attribute; may be NULL */
    int save_model;         /* 1: a /models/<run_id> group per run */
    /* [R] each run's config_run_id, when the caller has them (a run id
     * costs tens of microseconds); NULL: computed where needed */
    const char (*run_ids)[ICAS_RUN_ID_LEN];
    /* the grids applied before this one, oldest first (a grown file's);
     * store_create writes them to /grid_history, then grid_text at the
     * creation time. n_history 0: a new file, one entry. */
    const store_grid_entry *history;
    int n_history;
} store_layout;

/* Called first and last by the program: HDF5 is closed explicitly, so that
 * a handle left open anywhere shows at once; after an I/O error (a flush
 * that failed) the one file HDF5 cannot drop is left to the exit. */
void store_library_init(void);
void store_library_close(int after_io_error);

/* 0 when the runs can share one file (the same dims, points, eval_noise
 * and closed-loop axes), else -1 naming the first run that differs. */
int store_layout_check(const store_layout *layout, icas_err *err);

/* Creates `path` with every row pending, built under "<path>.tmp" and
 * renamed into place complete. Refuses an existing path unless force. */
int store_create(const char *path, const store_layout *layout, int force,
                 icas_err *err);

/* ---- writing: a file kept open ------------------------------------------ */

typedef struct store_file store_file;

/* Opens a file made by store_create for writing in place (store_read says
 * whether an existing file is of that layout: store_contents.in_place).
 * HDF5's file lock is not taken, so readers can open the file meanwhile;
 * writers of one file exclude each other with the sweep's lock. */
int store_open(const char *path, store_file **out, icas_err *err);

/* Writes a finished (or failed, or interrupted) run into row `row`: its
 * arrays, its model (with one), then its /runs row with the checksum.
 * The row's run_id must be r's. Durable only after store_sync. On
 * failure err->sys_errno is the errno when a system call failed. */
int store_write(store_file *f, int row, const run_result *r, const char *finished_at,
                icas_err *err);

/* Makes row `row` pending again (configuration of cfg, no numbers). */
int store_write_pending(store_file *f, int row, const run_config *cfg, icas_err *err);

/* fsync of the file: every row written before is durable. */
int store_sync(store_file *f, icas_err *err);

/* Closes (also after a failed write); returns the close's error. */
int store_close(store_file *f, icas_err *err);

/* For `icasweep train`: opens, writes row `row` now, syncs and closes. */
int store_write_result(const char *path, int row, const run_result *r, icas_err *err);

/* fsync of a closed file at path. */
int store_sync_path(const char *path, icas_err *err);

/* ---- reading -------------------------------------------------------------- */

typedef struct {
    char run_id[ICAS_RUN_ID_LEN];
    int status;      /* run_status as the row says; -1: a word this program does not know */
    int sound;       /* its numbers are all there and match the row's checksum
                      * (pending rows: 1) */
    char reason[129];
    double wall_seconds;
} store_row_info;

typedef struct {
    int n_runs;
    store_row_info *rows;   /* [n_runs] */
    char *grid_text;        /* the `grid` attribute ("" when absent) */
    char *program_version, *git_revision;
    /* /grid_history, oldest first; a file made before it existed reads as
     * one entry: its grid attribute at its `created` time */
    store_grid_entry *history;
    int n_history;
    int in_place;           /* the layout store_create makes now, written in place;
                             * 0: an earlier icasweep's file (rewritten whole,
                             * store_copy_rows, before a sweep writes it) */
} store_contents;

/* Reads every row of an existing file and checks each (row_sound). Returns
 * 0; -1 when the file cannot be opened or read whole (damaged: err says
 * why); -2 when it is readable but not a file this program writes
 * (another schema version: err says which). */
int store_read(const char *path, store_contents *out, icas_err *err);
void store_contents_free(store_contents *c);

/* The run ids of the rows of an existing file, in row order (ids
 * malloc'd [*n]), and its grid text (malloc'd, "" when absent): what a
 * sweep compares its grid with, without reading the numbers. */
int store_read_run_ids(const char *path, char (**ids)[ICAS_RUN_ID_LEN], int *n,
                       char **grid_text, icas_err *err);

/* Copies the sound rows of `from` (an existing file, of any layout) that
 * keep[row] selects into the open file `to` of the same runs. */
int store_copy_rows(const char *from, store_file *to, const store_layout *layout,
                    const int *keep, int *n_copied, icas_err *err);

#endif
