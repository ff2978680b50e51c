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
#include <unistd.h>

#include "icasweep/blasthreads.h"
#include "icasweep/grid.h"
#include "icasweep/model.h"
#include "icasweep/progress.h"
#include "icasweep/provenance.h"
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

static int parse_double(const char *flag, const char *s, double *out, icas_err *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return icas_fail(err, "%s %s: expected a number", flag, s);
    *out = v;
    return 0;
}

static int parse_noise_list(const char *s, run_config *cfg, icas_err *err)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == ICAS_MAX_EVAL_NOISE)
            return icas_fail(err, "--eval-noise %s: at most %d levels", s,
                             ICAS_MAX_EVAL_NOISE);
        if (parse_double("--eval-noise", tok, &cfg->eval_noise[n], err))
            return -1;
        if (!(cfg->eval_noise[n] >= 0 && cfg->eval_noise[n] <= 1))
            return icas_fail(err, "--eval-noise %s: must be in [0,1]", tok);
        n++;
    }
    if (n == 0)
        return icas_fail(err, "--eval-noise '%s': expected a list such as 0,0.5,1", s);
    cfg->n_eval_noise = n;
    return 0;
}

/* --sc-rounds R, --sc-k0 LIST, --sc-q LIST: the closed loop's flags.
 * Returns as cli_parse_run_flag. The lists' values are range-checked here;
 * how they combine with each other and with --points, by
 * config_validate_selfcorrect. */
static int parse_selfcorrect_flag(run_config *cfg, const char *flag, const char *value,
                                  icas_err *err)
{
    if (strcmp(flag, "--sc-rounds") == 0) {
        if (parse_int(flag, value, &cfg->sc_rounds, err))
            return -1;
        if (cfg->sc_rounds < 0)
            return icas_fail(err, "--sc-rounds %s: must be 0 (no closed loop) or more", value);
        return 1;
    }
    int is_k0 = strcmp(flag, "--sc-k0") == 0;
    if (!is_k0 && strcmp(flag, "--sc-q") != 0)
        return 0;
    const int max = is_k0 ? ICAS_MAX_SC_K0 : ICAS_MAX_SC_Q;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", value);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return icas_fail(err, "%s %s: at most %d values", flag, value, max);
        if (is_k0) {
            if (parse_int(flag, tok, &cfg->sc_k0[n], err))
                return -1;
            if (cfg->sc_k0[n] < 0)
                return icas_fail(err, "%s %s: must be 0 or more", flag, tok);
        } else {
            if (parse_double(flag, tok, &cfg->sc_q[n], err))
                return -1;
            if (!(cfg->sc_q[n] >= 0 && cfg->sc_q[n] <= 1))
                return icas_fail(err, "%s %s: must be in [0,1]", flag, tok);
        }
        n++;
    }
    if (n == 0)
        return icas_fail(err, "%s '%s': expected a list such as %s", flag, value,
                         is_k0 ? "2,5" : "0,0.5,1");
    if (is_k0)
        cfg->n_sc_k0 = n;
    else
        cfg->n_sc_q = n;
    return 1;
}

int cli_parse_run_flag(run_config *cfg, const char *flag, const char *value,
                       icas_err *err)
{
    if (strncmp(flag, "--sc-", 5) == 0)
        return parse_selfcorrect_flag(cfg, flag, value, err);
    if (strcmp(flag, "--eval-noise") == 0)
        return parse_noise_list(value, cfg, err) ? -1 : 1;
    for (int i = 0; i < CONFIG_N_KNOBS; i++) {
        char name[64];
        knob_flag(&config_knobs[i], name, sizeof name);
        if (strcmp(flag, name) == 0)
            return knob_parse(&config_knobs[i], value, cfg, err) ? -1 : 1;
    }
    return 0;
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
        "Trains one transformer on the in-context alignment task (SPEC.md),\n"
        "evaluates it and the GD baseline, and writes a result file with one run.\n");
    for (int s = KNOB_SECTION_TASK; s <= KNOB_SECTION_EVALUATION; s++) {
        fprintf(f, "%s:\n", knob_section_name((knob_section)s));
        print_knob_flags(f, (knob_section)s);
        if (s == KNOB_SECTION_EVALUATION)
            fprintf(f, "  --eval-noise LIST  evaluation noise levels (default 0,0.25,0.5,0.75,1)\n");
    }
    fprintf(f,
        "closed-loop self-correction (SPEC; after evaluation, on the same contexts):\n"
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
    store_layout layout = {.n_runs = 1, .runs = &cfg, .grid_text = NULL};
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

static int cmd_plan(int argc, char **argv)
{
    const char *path = NULL;
    double gflops = 40.0;
    icas_err err;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: icasweep plan GRID.yaml [--gflops G]\n"
                   "Lists the runs of a grid with estimated FLOPs and core-hours\n"
                   "(at G GFLOP/s per core, default 40; measure yours with icasweep-bench).\n");
            return EXIT_ALL_DONE;
        }
        if (!strcmp(argv[i], "--gflops") && i + 1 < argc) {
            if (parse_double("--gflops", argv[++i], &gflops, &err) || gflops <= 0) {
                fprintf(stderr, "icasweep plan: --gflops %s: expected a positive number\n",
                        argv[i]);
                return EXIT_USAGE;
            }
        } else if (!path && argv[i][0] != '-') {
            path = argv[i];
        } else {
            fprintf(stderr, "icasweep plan: %s: unexpected argument\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "icasweep plan: a grid file is required\n");
        return EXIT_USAGE;
    }
    grid g;
    if (grid_load(path, &g, stderr, &err)) {
        fprintf(stderr, "icasweep plan: %s\n", err.msg);
        return EXIT_USAGE;
    }
    double total = 0;
    printf("%5s  %-17s  %10s  %10s  %s\n", "row", "run_id", "TFLOP", "core-h", "configuration");
    for (int i = 0; i < g.n_runs; i++) {
        char id[ICAS_RUN_ID_LEN], desc[256];
        config_run_id(&g.runs[i], id);
        config_describe(&g.runs[i], desc, sizeof desc);
        double f = config_run_flops(&g.runs[i]);
        total += f;
        printf("%5d  %-17s  %10.2f  %10.3f  %s\n", i, id, f / 1e12, f / (gflops * 1e9) / 3600,
               desc);
    }
    printf("total: %d runs, %.1f TFLOP, %.2f core-hours at %.0f GFLOP/s per core\n", g.n_runs,
           total / 1e12, total / (gflops * 1e9) / 3600, gflops);
    grid_free(&g);
    return EXIT_ALL_DONE;
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
                   "how many unfinished runs have a checkpoint (in DIR, default\n"
                   "RESULTS.h5.ckpt); whether a sweep is writing the file now.\n");
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
    if (store_print_summary(path, ckpt_dir, stdout, &err)) {
        fprintf(stderr, "icasweep status: %s\n", err.msg);
        return EXIT_IO;
    }
    return EXIT_ALL_DONE;
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
