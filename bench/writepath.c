/* The master's write path alone, driven with made-up results (no training,
 * no MPI): what recording one result costs at row 1 and at row N.
 *
 *   icasweep-writepath [--rows N] [--group G] [--dir DIR]
 *
 * Creates DIR/writepath.h5 with N pending rows (runs shaped as a tiny grid:
 * d = 3, N = 4 points, 6 steps, 2 evaluation noise levels), then records
 * every row as the sweep's master does (sched.c): G results appended to the
 * journal, one journal fsync for them, each written into the file kept
 * open, the file fsync'd and the journal cut back every
 * ICAS_JOURNAL_MERGE_EVERY (default 256) results. Prints results/s over the
 * first and the last 10% of rows, the files the journal took, the peak RSS;
 * then stops as a kill would (the journal holding the results since its
 * last cut) and times the restart: what a resuming sweep does before its
 * first new result (recovery_prepare, which checks every row, a fresh
 * journal, the file opened). */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icasweep/journal.h"
#include "icasweep/recovery.h"
#include "icasweep/store.h"

static void made_up(run_result *r, int row)
{
    r->status = RUN_DONE;
    r->steps_done = r->cfg.steps;
    for (int i = 0; i < r->cfg.steps; i++)
        r->train_loss[i] = 1.0f / (float)(i + 1 + row);
    r->final_loss = r->train_loss[r->cfg.steps - 1];
    size_t PN = (size_t)r->P * r->N;
    for (size_t i = 0; i < PN; i++) {
        r->tf_err[i] = 0.5f + 1e-6f * (float)row;
        r->gd_err[i] = 0.4f;
        r->blind_err[i] = r->pick_err[i] = i % (size_t)r->N ? 0.3f : NAN;
    }
    snprintf(r->host, sizeof r->host, "writepath");
    r->wall_seconds = r->train_seconds = 1.0;
    r->eval_seconds = 0.1;
    r->rank = 1;
    r->threads = 1;
}

static int journal_files(const char *dir)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c '^writepath.h5.journal'", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

int main(int argc, char **argv)
{
    int n = 10000, group = 1;
    const char *dir = ".";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--group") && i + 1 < argc)
            group = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: icasweep-writepath [--rows N] [--group G] [--dir DIR]\n");
            return 2;
        }
    }
    if (n < 10 || group < 1) {
        fprintf(stderr, "icasweep-writepath: --rows at least 10, --group at least 1\n");
        return 2;
    }
    store_library_init();
    char path[4096], jpath[4200];
    snprintf(path, sizeof path, "%s/writepath.h5", dir);
    journal_path(path, jpath, sizeof jpath);
    unlink(path);
    unlink(jpath);
    run_config *runs = malloc(sizeof *runs * (size_t)n);
    for (int i = 0; i < n; i++) {
        runs[i] = config_default();
        runs[i].dims = 3;
        runs[i].points = 4;
        runs[i].steps = 6;
        runs[i].layers = 1;
        runs[i].heads = 1;
        runs[i].embd = 4;
        runs[i].n_eval_noise = 2;
        runs[i].eval_noise[0] = 0;
        runs[i].eval_noise[1] = 1;
        runs[i].seed = (uint64_t)i;
    }
    const char *grid = "made-up runs of icasweep-writepath";
    char(*ids)[ICAS_RUN_ID_LEN] = malloc(sizeof *ids * (size_t)n);
    for (int i = 0; i < n; i++)
        config_run_id(&runs[i], ids[i]);
    store_layout layout = {.n_runs = n, .runs = runs, .grid_text = grid,
                           .run_ids = (const char(*)[ICAS_RUN_ID_LEN])ids};
    icas_err err;
    int merge_every = getenv("ICAS_JOURNAL_MERGE_EVERY") ? atoi(getenv("ICAS_JOURNAL_MERGE_EVERY"))
                                                         : 256;
    if (merge_every < 1)
        merge_every = 256;
    double t0 = omp_get_wtime();
    store_file *f;
    journal *j;
    if (store_create(path, &layout, 1, &err) || store_open(path, &f, &err) ||
        journal_create(jpath, grid, &j, &err)) {
        fprintf(stderr, "icasweep-writepath: %s\n", err.msg);
        return 1;
    }
    double t_create = omp_get_wtime() - t0;
    int tenth = n / 10;
    double t_first = 0, t_last = 0;
    run_result *batch = calloc((size_t)group, sizeof *batch);
    for (int start = 0; start < n; start += group) {
        int m = start + group <= n ? group : n - start;
        for (int k = 0; k < m; k++) {
            run_result_alloc(&batch[k], &runs[start + k], 0, &err);
            made_up(&batch[k], start + k);
        }
        double a = omp_get_wtime();
        for (int k = 0; k < m; k++)
            if (journal_append(j, start + k, &batch[k], "2026-01-01T00:00:00Z", &err))
                goto fail;
        if (journal_sync(j, &err))
            goto fail;
        for (int k = 0; k < m; k++)
            if (store_write(f, start + k, &batch[k], "2026-01-01T00:00:00Z", &err))
                goto fail;
        if (journal_records(j) >= merge_every && (store_sync(f, &err) || journal_truncate(j, &err)))
            goto fail;
        double dt = omp_get_wtime() - a;
        /* a group's time is shared by its results */
        for (int k = 0; k < m; k++) {
            int row = start + k;
            if (row < tenth)
                t_first += dt / m;
            else if (row >= n - tenth)
                t_last += dt / m;
            run_result_free(&batch[k]);
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int in_journal = journal_records(j);
    int files = journal_files(dir);
    /* stop as a kill would: the file not closed, the journal as it is */
    journal_close(j);
    store_close(f, &err);
    /* the sweep computes every run id at each start (sched.c) */
    t0 = omp_get_wtime();
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        config_run_id(&runs[i], ids[i]);
    double t_ids = omp_get_wtime() - t0;
    recovery_report rec;
    int *status;
    if (recovery_prepare(path, &layout, jpath, NULL, &rec, &status, &err) ||
        journal_create(jpath, grid, &j, &err) || store_open(path, &f, &err)) {
        fprintf(stderr, "icasweep-writepath: restart: %s\n", err.msg);
        return 1;
    }
    double t_restart = omp_get_wtime() - t0;
    journal_close(j);
    store_close(f, &err);
    int done = 0;
    for (int i = 0; i < n; i++)
        done += status[i] == RUN_DONE;
    free(status);
    printf("rows %d, group %d: create %.2f s; results/s first 10%% %.0f, last 10%% %.0f; "
           "journal: %d file, %d records at the stop; peak RSS %.1f MB; restart %.2f s "
           "(run ids %.2f s; %d records replayed, %d rows done and sound)\n",
           n, group, t_create, tenth / t_first, tenth / t_last, files, in_journal,
           ru.ru_maxrss / 1024.0, t_restart, t_ids, rec.applied, done);
    free(batch);
    free(ids);
    free(runs);
    store_library_close(0);
    return done == n ? 0 : 1;
fail:
    fprintf(stderr, "icasweep-writepath: %s\n", err.msg);
    return 1;
}
