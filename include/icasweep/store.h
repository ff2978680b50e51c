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
 *   /models/<run_id>/...      with save_model: GPT-2-named parameters,
 *                             eval_tokens [B, 3N, d], eval_pred [B, N, d],
 *                             eval_target [B, d]
 *   root attributes: schema_version, program_version, git_revision,
 *                    grid (the grid file's text), created
 *   every dataset has a `description` attribute.
 *
 * The file is created whole with every row "pending"; each finished run
 * then fills its row, and the file is closed after every write, so readers
 * can open it between writes. A sweep records each result first in its
 * journal (journal.h), so a kill inside a write, which can leave the file
 * unreadable, loses nothing: store_recover rebuilds the file. Each /runs
 * row carries a checksum of its numbers (added within schema version 2:
 * readers that do not know the column ignore it). */
#ifndef ICASWEEP_STORE_H
#define ICASWEEP_STORE_H

#include <stdio.h>

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/result.h"

/* 2: /eval/blind_err, /eval/pick_err and /models/<id>/eval_target added */
#define STORE_SCHEMA_VERSION 2

typedef struct {
    int n_runs;             /* R */
    const run_config *runs; /* [R], in row order */
    const char *grid_text;  /* stored as the `grid` attribute; may be NULL */
} store_layout;

/* Called first and last by the program: HDF5 is closed explicitly, so that
 * a handle left open anywhere shows at once; after an I/O error (a flush
 * that failed) the one file HDF5 cannot drop is left to the exit. */
void store_library_init(void);
void store_library_close(int after_io_error);

/* Creates `path` with every row pending. Refuses an existing path unless
 * force (then it is replaced only once the new file is complete). */
int store_create(const char *path, const store_layout *layout, int force,
                 icas_err *err);

/* Writes a finished (or failed) run into row `row`, then flushes and
 * closes the file. The row's run_id must match. */
int store_write_result(const char *path, int row, const run_result *r, icas_err *err);

/* Records a finished (or failed, or interrupted) run: first as its entry
 * in the result journal `journal` (journal.h: written whole and renamed
 * into place, so it exists complete or not at all), then in row `row` of
 * the file. On failure err->sys_errno is the errno when a system call
 * failed (ENOSPC, EIO, ...), and the message names the file. */
int store_record(const char *path, const char *journal, int row, const run_result *r,
                 icas_err *err);

typedef struct {
    int created;         /* there was no file: a new one was made */
    int journal_entries; /* usable journal entries of this grid's runs */
    int stale;           /* journal results not (wholly) in the file */
    int hollow;          /* rows marked done without their numbers (no entry) */
    int damaged;         /* the file could not be opened or read */
    int rebuilt;         /* the file was rebuilt from the journal */
    int from_journal;    /* rows the rebuild took from the journal */
    int refused;         /* another grid's file, or damaged with no journal */
} store_recovery;

/* Makes `path` a sound file of `layout` before a sweep starts or resumes:
 * creates it when missing (rebuilding it from the journal when there is
 * one); otherwise reads it whole and checks it against the journal, and
 * when it cannot be read, or a journal result is not in it exactly, or a
 * row is marked done without its numbers, builds it anew under a temporary
 * name (journal results first, then the old file's sound rows; hollow rows
 * become pending) and renames it over the old one. A file from another
 * grid, or a damaged file without a journal, is refused (out->refused).
 * What was done goes to `log` (may be NULL) and *out. */
int store_recover(const char *path, const store_layout *layout, const char *journal,
                  FILE *log, store_recovery *out, icas_err *err);

/* After the last run: makes the file durable (fsync) and removes the
 * journal. */
int store_finish(const char *path, const char *journal, icas_err *err);

/* Per-row status codes (run_status) of an existing file; *status is malloc'd
 * with *n_runs entries. */
int store_read_status(const char *path, int *n_runs, int **status,
                      icas_err *err);

/* Prints a summary of a file (done, failed with reasons, missing, mean wall
 * time, how many unfinished runs have a checkpoint in ckpt_dir, NULL for
 * "<path>.ckpt", and whether a sweep is writing it now) to `out`; works
 * while a sweep writes it or after one died. */
int store_print_summary(const char *path, const char *ckpt_dir, FILE *out, icas_err *err);

/* Where a sweep writing `path` keeps its checkpoints: ckpt_dir when given,
 * else "<path>.ckpt"; and the checkpoint file of one run in that directory.
 * The sweep writes there and `icasweep status` looks there. */
void store_checkpoint_dir(const char *path, const char *ckpt_dir, char *out, size_t n);
void store_checkpoint_file(const char *dir, const char *run_id, char *out, size_t n);

/* Takes an exclusive advisory lock (flock on "<path>.lock", created if
 * missing) so that a second sweep writing the same file is refused with a
 * message naming the holder (pid, host from the lock file). */
int store_lock(const char *path, int *fd, icas_err *err);
void store_unlock(const char *path, int fd);

#endif
