#include "icasweep/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "icasweep/blasthreads.h"
#include "icasweep/grid.h"
#include "icasweep/growth.h"
#include "icasweep/journal.h"
#include "icasweep/model.h"
#include "icasweep/plan.h"
#include "icasweep/progress.h"
#include "icasweep/provenance.h"
#include "icasweep/recovery.h"
#include "icasweep/sched.h"
#include "icasweep/store.h"
#include "icasweep/train.h"

/* ---- numbers and flags ------------------------------------------------ */

static int parse_int(const char *flag, const char *s, int *out, icas_err *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < -2147483647L || v > 2147483647L)
        return icas_fail(err, "%s %s: expected an integer", flag, s);
    *out = (int)v;
    return 0;
}

/* A list flag's values as given, "0,0.5,1", split at its commas; an empty
 * part ("0,,1") is a value the list parser refuses. */
#define CLI_MAX_LIST_VALUES 64
_Static_assert(ICAS_MAX_EVAL_NOISE <= CLI_MAX_LIST_VALUES &&
                   ICAS_MAX_SC_K0 <= CLI_MAX_LIST_VALUES && ICAS_MAX_SC_Q <= CLI_MAX_LIST_VALUES,
               "a list flag holds every value a list field takes");

static int parse_list_flag(run_config *cfg, int field, const char *flag, const char *value,
                           config_problem *p)
{
    char buf[1024];
    const char *items[CLI_MAX_LIST_VALUES];
    int n = 0;
    if (strlen(value) >= sizeof buf) {
        snprintf(p->msg, sizeof p->msg, "%s: a list of %zu characters is too long", flag,
                 strlen(value));
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", value);
    if (buf[0])
        for (char *part = buf;; part++) {
            if (n < CLI_MAX_LIST_VALUES)
                items[n] = part;
            n++;
            part = strchr(part, ',');
            if (!part)
                break;
            *part = 0;
        }
    if (n > CLI_MAX_LIST_VALUES)
        return config_check_count(field, n, CONFIG_NAMES_FLAGS, p);
    return config_parse_list(field, items, n, cfg, CONFIG_NAMES_FLAGS, p);
}

int cli_parse_run_flag(run_config *cfg, const char *flag, const char *value,
                       icas_err *err)
{
    int field = config_field_named(flag, CONFIG_NAMES_FLAGS);
    if (field < 0)
        return 0;
    config_problem p;
    int rc = config_field_is_list(field)
                 ? parse_list_flag(cfg, field, flag, value, &p)
                 : config_parse_item(field, value, -1, cfg, CONFIG_NAMES_FLAGS, &p);
    return rc ? icas_fail(err, "%s", p.msg) : 1;
}

static void print_knob_flags(FILE *f, knob_section section)
{
    run_config defaults = config_default();
    for (int i = 0; i < CONFIG_N_KNOBS; i++) {
        const knob_def *k = &config_knobs[i];
        if (k->section != section)
            continue;
        char flag[96], meta[64], value[64];
        knob_flag(k, flag, sizeof flag);
        if (k->type == KNOB_TYPE_CHOICE || k->type == KNOB_TYPE_SWITCH) {
            knob_words_text(k, "|", "|", meta, sizeof meta);
        } else {
            snprintf(meta, sizeof meta, "%s", k->label);
            for (char *p = meta; *p; p++)
                if (*p >= 'a' && *p <= 'z')
                    *p = (char)(*p - 'a' + 'A');
        }
        size_t len = strlen(flag);
        snprintf(flag + len, sizeof flag - len, " %s", meta);
        knob_format(k, &defaults, KNOB_TEXT_HUMAN, value, sizeof value);
        /* a long flag gets its text on the next line, like the others' column */
        if (strlen(flag) > 18)
            fprintf(f, "  %s\n  %-18s %s (default %s)\n", flag, "", k->meaning, value);
        else
            fprintf(f, "  %-18s %s (default %s)\n", flag, k->meaning, value);
    }
}

/* ---- signals ----------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* ---- icasweep train ------------------------------------------------------ */

static void train_usage(FILE *f)
{
    fprintf(f,
        "usage: icasweep train [options] -o RUN.h5\n"
        "Trains one transformer on the in-context alignment task (docs/science.md),\n"
        "evaluates it and the GD baseline, and writes a result file with one run.\n");
    for (int s = KNOB_SECTION_TASK; s <= KNOB_SECTION_EVALUATION; s++) {
        fprintf(f, "%s:\n", knob_section_name((knob_section)s));
        print_knob_flags(f, (knob_section)s);
        if (s == KNOB_SECTION_EVALUATION)
            fprintf(f, "  --eval-noise LIST  evaluation noise levels (default 0,0.25,0.5,0.75,1)\n");
    }
    fprintf(f,
        "closed-loop self-correction (docs/science.md; after evaluation, same contexts):\n"
        "  --sc-rounds R      rounds of the model correcting its own answer (default 0:\n"
        "                     none); every k0 + R at most N - 1\n"
        "  --sc-k0 LIST       given triplets before the first round, e.g. 2,5\n"
        "  --sc-q LIST        critic noise levels in [0,1], e.g. 0,0.5,1\n"
        "output:\n"
        "  -o, --output PATH  result file (required); never overwritten without --force\n"
        "  --force            replace an existing PATH (only once the run has finished)\n"
        "  --save-model       also store the parameters, eval tokens and predictions\n"
        "  --checkpoint PATH  checkpoint here every --checkpoint-every steps and on\n"
        "                     SIGINT/SIGTERM/SIGUSR1; rerunning resumes from it\n"
        "  --checkpoint-every K\n"
        "                     steps between checkpoints (default 500)\n"
        "  -q, --quiet        no progress lines\n"
        "  -h, --help         this text\n"
        "\n"
        "Threads: OMP_NUM_THREADS. Exit status: 0 done, 1 diverged, 2 bad input,\n"
        "3 interrupted (resumable with --checkpoint), 4 I/O error.\n");
}

static int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int cli_parse_train(int argc, char **argv, train_args *a, icas_err *err)
{
    memset(a, 0, sizeof *a);
    a->cfg = config_default();
    a->every = 500;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help"))
            return 1;
        if (!strcmp(s, "--force")) { a->force = 1; continue; }
        if (!strcmp(s, "--save-model")) { a->save_model = 1; continue; }
        if (!strcmp(s, "-q") || !strcmp(s, "--quiet")) { a->quiet = 1; continue; }
        if (i + 1 >= argc)
            return icas_fail(err, "%s: %s", s,
                             strncmp(s, "-", 1) ? "unexpected argument"
                                                : "missing value (or unknown flag)");
        const char *v = argv[++i];
        if (!strcmp(s, "-o") || !strcmp(s, "--output")) { a->output = v; continue; }
        if (!strcmp(s, "--checkpoint")) { a->ckpt = v; continue; }
        if (!strcmp(s, "--checkpoint-every")) {
            if (parse_int(s, v, &a->every, err) || a->every < 0)
                return icas_fail(err, "--checkpoint-every %s: expected a non-negative "
                                      "integer", v);
            continue;
        }
        int rc = cli_parse_run_flag(&a->cfg, s, v, err);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return icas_fail(err, "%s: unknown flag (see icasweep train --help)", s);
    }
    if (!a->output)
        return icas_fail(err, "-o PATH is required (see icasweep train --help)");
    if (config_validate(&a->cfg, err))
        return -1;
    return 0;
}

static int cmd_train(int argc, char **argv)
{
    train_args a;
    icas_err err;
    int pr = cli_parse_train(argc, argv, &a, &err);
    if (pr > 0) {
        train_usage(stdout);
        return EXIT_ALL_DONE;
    }
    if (pr < 0) {
        fprintf(stderr, "icasweep train: %s\n", err.msg);
        return EXIT_USAGE;
    }
    run_config cfg = a.cfg;
    const char *output = a.output, *ckpt = a.ckpt;
    int force = a.force, save_model = a.save_model, quiet = a.quiet, every = a.every;
    if (path_exists(output) && !force) {
        fprintf(stderr, "icasweep train: -o %s: file exists (use --force to replace it)\n",
                output);
        return EXIT_USAGE;
    }

    /* The file is laid out under a temporary name before training, which
     * proves the directory writable now rather than after hours of work,
     * and renamed over `output` only when complete. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.partial.%ld", output, (long)getpid());
    store_layout layout = {.n_runs = 1, .runs = &cfg, .grid_text = NULL,
                           .save_model = save_model};
    if (store_create(tmp, &layout, 1, &err)) {
        fprintf(stderr, "icasweep train: -o %s: %s\n", output, err.msg);
        return EXIT_USAGE;
    }

    install_stop_handlers();
    char label[256], id[ICAS_RUN_ID_LEN];
    config_run_id(&cfg, id);
    config_describe(&cfg, label, sizeof label);
    fprintf(stderr, "icasweep train: run %s: %s, %d threads\n", id, label,
            omp_get_max_threads());
    progress_meter prog;
    progress_init(&prog, id, config_train_step_flops(&cfg), 0);
    train_options opt = {
        .progress = quiet ? NULL : progress_step,
        .user = &prog,
        .stop = &stop_requested,
        .checkpoint_path = ckpt,
        .checkpoint_every = ckpt ? every : 0,
        .save_model = save_model,
    };
    run_result res;
    int status = EXIT_IO;
    if (train_and_evaluate(&cfg, &opt, &res, &err)) {
        fprintf(stderr, "icasweep train: %s\n", err.msg);
        goto out;
    }
    if (res.status == RUN_INTERRUPTED) {
        fprintf(stderr, "icasweep train: interrupted at step %d%s\n", res.steps_done,
                ckpt ? "; rerun the same command to resume from the checkpoint" : "");
        status = EXIT_INTERRUPTED;
        goto out;
    }
    if (store_write_result(tmp, 0, &res, &err) ||
        rename(tmp, output) != 0) {
        fprintf(stderr, "icasweep train: -o %s: %s\n", output,
                err.msg[0] ? err.msg : strerror(errno));
        goto out;
    }
    if (res.status == RUN_DIVERGED) {
        fprintf(stderr, "icasweep train: run diverged: %s (recorded in %s)\n", res.reason,
                output);
        status = EXIT_RUN_FAILED;
    } else {
        int last = res.N < 16 ? res.N - 1 : 15;
        fprintf(stderr,
                "icasweep train: done in %.1f s (train %.1f s, eval %.1f s); final loss "
                "%.5f; err at %d examples, p=%g: %.4f (GD %.4f); wrote %s\n",
                res.wall_seconds, res.train_seconds, res.eval_seconds, res.final_loss,
                last, cfg.eval_noise[0], res.tf_err[last], res.gd_err[last], output);
        status = EXIT_ALL_DONE;
    }
out:
    if (status != EXIT_ALL_DONE && status != EXIT_RUN_FAILED)
        unlink(tmp);
    run_result_free(&res);
    return status;
}

/* ---- icasweep plan / status ---------------------------------------------- */

static int cmd_plan(int argc, char **argv) { return plan_main(argc, argv); }

/* Prints a summary of a result file (done, failed with reasons, missing,
 * mean wall time, how many unfinished runs have a checkpoint in ckpt_dir,
 * NULL for "<path>.ckpt", what the journal holds, whether a sweep is
 * writing it now) to `out`; works while a sweep writes it or after one
 * died. A row marked done whose numbers fail its checksum is counted
 * pending. Returns 0; -1 (err set) when there is nothing to summarise;
 * -2 when the file is damaged (said on out). */
static int print_status(const char *path, const char *ckpt_dir, FILE *out, icas_err *err)
{
    char jpath[4200], holder[256];
    journal_path(path, jpath, sizeof jpath);
    journal_scan_info jinfo;
    icas_err jerr;
    if (journal_scan(jpath, NULL, 0, NULL, NULL, NULL, &jinfo, &jerr))
        memset(&jinfo, 0, sizeof jinfo);
    store_contents c;
    icas_err why;
    int rc = store_read(path, &c, &why);
    /* a rebuild renames a new file into place: try again a few times
     * before calling the file damaged while a sweep holds it */
    for (int attempt = 0; rc == -1 && attempt < 10 && sched_lock_holder(path, holder, sizeof holder);
         attempt++) {
        struct timespec pause = {0, 100000000L};
        nanosleep(&pause, NULL);
        rc = store_read(path, &c, &why);
    }
    if (rc == -1 && access(path, F_OK) != 0)
        return icas_fail(err, "%s", why.msg);
    if (rc == -2) {
        *err = why;
        return -1;
    }
    if (rc == -1) {
        fprintf(out, "%s: DAMAGED: %s\n", path, why.msg);
        if (jinfo.records > 0)
            fprintf(out, "the result journal %s holds %d recorded result%s: `icasweep repair %s` "
                         "(or the same `icasweep sweep` command) rebuilds the file from them, "
                         "keeping the damaged one as %s.damaged; runs not in the journal are "
                         "redone by the next sweep\n",
                    jpath, jinfo.records, jinfo.records == 1 ? "" : "s", path, path);
        else
            fprintf(out, "there is no result journal (%s) to rebuild it from: move it aside "
                         "and run the sweep again\n", jpath);
        return -2;
    }
    int n = c.n_runs;
    int count[RUN_INTERRUPTED + 1] = {0}, with_ckpt = 0, hollow = 0;
    char dir[4096], file[4096 + ICAS_RUN_ID_LEN + 8];
    sched_checkpoint_dir(path, ckpt_dir, dir, sizeof dir);
    double wall = 0;
    for (int i = 0; i < n; i++) {
        const store_row_info *r = &c.rows[i];
        int s = r->status < 0 || !r->sound ? RUN_PENDING : r->status;
        hollow += r->status > RUN_PENDING && !r->sound;
        count[s]++;
        if (s == RUN_DONE)
            wall += r->wall_seconds;
        if (s == RUN_PENDING || s == RUN_INTERRUPTED) {
            /* unfinished runs with a checkpoint continue mid-training */
            sched_checkpoint_file(dir, r->run_id, file, sizeof file);
            with_ckpt += access(file, R_OK) == 0;
        }
    }
    int unfinished = count[RUN_PENDING] + count[RUN_INTERRUPTED];
    fprintf(out, "%s: %d runs: %d done, %d diverged, %d failed, %d interrupted, %d pending\n",
            path, n, count[RUN_DONE], count[RUN_DIVERGED], count[RUN_FAILED],
            count[RUN_INTERRUPTED], count[RUN_PENDING]);
    for (int i = 0; i < n; i++) {
        const store_row_info *r = &c.rows[i];
        if (r->status > RUN_PENDING && !r->sound)
            fprintf(out, "  row %d %.20s: marked %s without its numbers intact (missing: a "
                         "write was cut short; or not matching the row's checksum: damaged); "
                         "counted pending\n", i, r->run_id, run_status_name(r->status));
        else if (r->status > RUN_DONE)
            fprintf(out, "  row %d %.20s %s: %.128s\n", i, r->run_id,
                    run_status_name(r->status), r->reason);
    }
    if (count[RUN_DONE])
        fprintf(out, "done runs: %.1f s of training and evaluation in all, %.1f s on average\n",
                wall, wall / count[RUN_DONE]);
    if (unfinished)
        fprintf(out, "unfinished runs: %d of %d have a checkpoint in %s and resume mid-training\n",
                with_ckpt, unfinished, dir);
    int writing = sched_lock_holder(path, holder, sizeof holder);
    if (writing)
        fprintf(out, "a sweep is writing this file now (%s)\n", holder[0] ? holder : "holder unknown");
    else if (unfinished)
        fprintf(out, "no sweep is writing this file: run the same sweep command to finish it\n");
    if (!writing && jinfo.records > 0)
        fprintf(out, "the result journal %s holds %d recorded result%s that the file may lack "
                     "(the sweep stopped before it merged them): `icasweep repair %s` or the "
                     "next sweep puts %s in\n", jpath, jinfo.records,
                jinfo.records == 1 ? "" : "s", path, jinfo.records == 1 ? "it" : "them");
    if (hollow)
        fprintf(out, "%d run%s marked done without %s numbers: `icasweep repair %s` takes %s "
                     "from the journal where it holds %s, and the next sweep reruns the rest\n",
                hollow, hollow == 1 ? "" : "s", hollow == 1 ? "its" : "their", path,
                hollow == 1 ? "it" : "them", hollow == 1 ? "it" : "them");
    fprintf(out, "written by icasweep %s (%s)\n", c.program_version ? c.program_version : "?",
            c.git_revision ? c.git_revision : "?");
    /* a grown file: which rows came with which grid (/grid_history) */
    if (c.n_history > 1) {
        fprintf(out, "grown: %d grids applied:", c.n_history);
        for (int i = 0; i < c.n_history; i++)
            fprintf(out, "%s %s (%d rows)", i ? ";" : "", c.history[i].applied_at,
                    c.history[i].n_runs);
        fprintf(out, "\n");
    }
    store_contents_free(&c);
    return 0;
}

static int cmd_status(int argc, char **argv)
{
    icas_err err;
    const char *path = NULL, *ckpt_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: icasweep status RESULTS.h5 [--checkpoint-dir DIR]\n"
                   "Summarises a result file while a sweep writes it or after one died:\n"
                   "runs done, diverged, failed (with reasons), interrupted and pending;\n"
                   "rows whose numbers fail their checksum (counted pending); how many\n"
                   "unfinished runs have a checkpoint (in DIR, default RESULTS.h5.ckpt);\n"
                   "results in the journal; whether a sweep is writing the file now.\n");
            return EXIT_ALL_DONE;
        }
        if (!strcmp(argv[i], "--checkpoint-dir") && i + 1 < argc) {
            ckpt_dir = argv[++i];
        } else if (argv[i][0] != '-' && !path) {
            path = argv[i];
        } else {
            fprintf(stderr, "icasweep status: %s: unknown or incomplete argument; usage: "
                            "icasweep status RESULTS.h5 [--checkpoint-dir DIR]\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: icasweep status RESULTS.h5 [--checkpoint-dir DIR]\n");
        return EXIT_USAGE;
    }
    int rc = print_status(path, ckpt_dir, stdout, &err);
    if (rc == -1)
        fprintf(stderr, "icasweep status: %s\n", err.msg);
    else if (rc == -2)
        fprintf(stderr, "icasweep status: %s is damaged (details above)\n", path);
    return rc ? EXIT_IO : EXIT_ALL_DONE;
}

/* `icasweep repair RESULTS.h5`: what a sweep does to its file before it
 * starts (recovery.h), without running anything. */
static int cmd_repair(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: icasweep repair RESULTS.h5\n"
                   "Mends a result file after a crash without running anything: puts in\n"
                   "the results its journal (RESULTS.h5.journal) holds, makes rows whose\n"
                   "numbers fail their checksum pending, and rebuilds a file that cannot\n"
                   "be read from the journal (keeping it as RESULTS.h5.damaged). The grid\n"
                   "is the one stored in the file (or in the journal). Refused while a\n"
                   "sweep writes the file. The next sweep reruns what is still missing.\n");
            return EXIT_ALL_DONE;
        }
        if (argv[i][0] != '-' && !path) {
            path = argv[i];
        } else {
            fprintf(stderr, "icasweep repair: %s: unexpected argument; usage: icasweep repair "
                            "RESULTS.h5\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: icasweep repair RESULTS.h5\n");
        return EXIT_USAGE;
    }
    icas_err err;
    int lock_fd = -1;
    if (sched_lock(path, &lock_fd, &err)) {
        fprintf(stderr, "icasweep repair: %s\n", err.msg);
        return EXIT_USAGE;
    }
    char jpath[4200];
    journal_path(path, jpath, sizeof jpath);
    /* the grid: the file's own, else the journal's */
    char *text = NULL;
    store_contents c;
    int status = EXIT_ALL_DONE;
    if (store_read(path, &c, &err) == 0) {
        text = strdup(c.grid_text);
        store_contents_free(&c);
    } else if (journal_grid_text(jpath, &text, &err) || !text) {
        fprintf(stderr, "icasweep repair: %s; and there is no result journal %s to rebuild "
                        "it from\n", err.msg, jpath);
        sched_unlock(path, lock_fd);
        return EXIT_USAGE;
    }
    grid g;
    if (!text || !text[0] || grid_parse(path, text, strlen(text), &g, stderr, &err)) {
        fprintf(stderr, "icasweep repair: %s: the grid stored with it cannot be read: %s\n",
                path, text && text[0] ? err.msg : "none stored (a `train` file?)");
        free(text);
        sched_unlock(path, lock_fd);
        return EXIT_USAGE;
    }
    /* a grown file's rows are not its grid's order: the grid's runs in them */
    char(*ids)[ICAS_RUN_ID_LEN] = malloc(sizeof *ids * (size_t)(g.n_runs ? g.n_runs : 1));
    grid_comparison cmp;
    int n_file;
    if (ids)
        grid_run_ids(&g, ids);
    if (!ids || growth_match_rows(path, &g, ids, &cmp, &n_file, &err)) {
        fprintf(stderr, "icasweep repair: %s\n", ids ? err.msg : "out of memory");
        free(ids);
        free(text);
        grid_free(&g);
        sched_unlock(path, lock_fd);
        return EXIT_IO;
    }
    store_layout layout = {.n_runs = g.n_runs, .runs = g.runs, .grid_text = g.text,
                           .save_model = g.save_model,
                           .run_ids = (const char (*)[ICAS_RUN_ID_LEN])ids};
    recovery_report rec;
    journal *j = NULL;
    int *row_status = NULL;
    if (recovery_prepare(path, &layout, jpath, stderr, &rec, &row_status, &err)) {
        fprintf(stderr, "icasweep repair: %s\n", err.msg);
        status = rec.refused ? EXIT_USAGE : EXIT_IO;
    } else if (rec.journal_records > 0 && journal_create(jpath, g.text, &j, &err)) {
        /* the file holds every record now, durably: the journal starts over */
        fprintf(stderr, "icasweep repair: %s\n", err.msg);
        status = EXIT_IO;
    } else {
        journal_close(j);
        printf("%s: repaired: %d result%s from the journal put in, %d row%s without their "
               "numbers made pending%s\n", path, rec.applied, rec.applied == 1 ? "" : "s",
               rec.hollow, rec.hollow == 1 ? "" : "s",
               rec.rebuilt ? (rec.damaged ? "; rebuilt from the journal (the damaged file is "
                                            "kept as .damaged)"
                                          : "; rebuilt")
                           : "");
        if (print_status(path, NULL, stdout, &err) == -1)
            fprintf(stderr, "icasweep repair: %s\n", err.msg);
    }
    free(row_status);
    free(ids);
    free(text);
    grid_free(&g);
    sched_unlock(path, lock_fd);
    return status;
}

/* ---- icasweep knobs -------------------------------------------------------- */

/* The knob table as a Markdown table: what a grid key, flag and /runs
 * column mean, their ranges and defaults, straight from knobs.def. */
static int cmd_knobs(int argc, char **argv)
{
    if (argc > 1) {
        int help = !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help");
        fprintf(help ? stdout : stderr,
                "usage: icasweep knobs\n"
                "Lists every knob of a run: grid key and /runs column, train flag, type and\n"
                "range, default, meaning.\n");
        return help ? EXIT_ALL_DONE : EXIT_USAGE;
    }
    run_config defaults = config_default();
    printf("| knob (grid key, /runs column) | flag | values | default | section | meaning |\n"
           "|---|---|---|---|---|---|\n");
    for (int i = 0; i < CONFIG_N_KNOBS; i++) {
        const knob_def *k = &config_knobs[i];
        char flag[64], values[128], value[64];
        knob_flag(k, flag, sizeof flag);
        knob_format(k, &defaults, KNOB_TEXT_HUMAN, value, sizeof value);
        switch (k->type) {
        case KNOB_TYPE_COUNT:
            snprintf(values, sizeof values, "integer %.0f..%.0f", k->lo, k->hi);
            break;
        case KNOB_TYPE_REAL:
            snprintf(values, sizeof values, "number in [%g, %g]", k->lo, k->hi);
            break;
        case KNOB_TYPE_POSITIVE:
            snprintf(values, sizeof values, "number > 0");
            break;
        case KNOB_TYPE_CHOICE:
        case KNOB_TYPE_SWITCH:
            knob_words_text(k, " \\| ", " \\| ", values, sizeof values);
            break;
        case KNOB_TYPE_SEED:
            snprintf(values, sizeof values, "integer 0..2^64-1 (grids: `seeds`)");
            break;
        }
        printf("| `%s` | `%s` | %s | %s | %s | %s |\n", k->name, flag, values, value,
               knob_section_name(k->section), k->meaning);
    }
    return EXIT_ALL_DONE;
}

static void usage(FILE *f)
{
    fprintf(f,
            "icasweep %s (%s): ablation sweeps of self-correction as in-context alignment\n"
            "\n"
            "  icasweep train [options] -o RUN.h5         train and evaluate one configuration\n"
            "  mpirun -np N icasweep sweep GRID.yaml -o RESULTS.h5\n"
            "                                             run every grid point into one file\n"
            "  icasweep plan GRID.yaml                    list a grid's runs and their cost\n"
            "  icasweep status RESULTS.h5                 summarise a result file\n"
            "  icasweep repair RESULTS.h5                 mend a file after a crash from its journal\n"
            "  icasweep knobs                             every knob: key, flag, range, default\n"
            "\n"
            "`icasweep COMMAND --help` describes each command.\n",
            ICAS_VERSION, ICAS_GIT_REVISION);
}

int cli_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    int (*command)(int, char **) = !strcmp(cmd, "train")    ? cmd_train
                                   : !strcmp(cmd, "sweep")  ? sched_main
                                   : !strcmp(cmd, "plan")   ? cmd_plan
                                   : !strcmp(cmd, "status") ? cmd_status
                                   : !strcmp(cmd, "repair") ? cmd_repair
                                   : !strcmp(cmd, "knobs")  ? cmd_knobs
                                                            : NULL;
    if (command) {
        char why[512];
        if ((command == cmd_train || command == sched_main) && blas_threads_single(why, sizeof why))
            fprintf(stderr, "icasweep %s: warning: %s\n", cmd, why);
        store_library_init();
        int status = command(argc - 1, argv + 1);
        store_library_close(status == EXIT_IO);
        return status;
    }
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return EXIT_ALL_DONE;
    }
    if (!strcmp(cmd, "--version")) {
        provenance_print(stdout);
        return EXIT_ALL_DONE;
    }
    fprintf(stderr, "icasweep: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
