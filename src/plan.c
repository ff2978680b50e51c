#include "icasweep/plan.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/grid.h"
#include "icasweep/train.h"

#define MEASURE_STEPS 2   /* timed, after one warm-up */
/* Layers of the model measured: the rate per FLOP of a deeper model is its
 * layers' (the read-in and read-out are 2d/(12E) of a layer's work), so a
 * few layers tell it, in a fraction of the time. */
#define MEASURE_LAYERS 4
#define TIME_MARGIN 1.25  /* --time over the estimate: noise, evaluation, start-up */

/* ---- rate files ------------------------------------------------------- */

static int field(const char *line, const char *key, char *out, size_t n)
{
    size_t k = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += k)
        if ((p == line || p[-1] == ' ') && p[k] == '=') {
            size_t len = strcspn(p + k + 1, " \n");
            if (len == 0 || len >= n)
                return -1;
            memcpy(out, p + k + 1, len);
            out[len] = 0;
            return 0;
        }
    return -1;
}

static int int_field(const char *line, const char *key, int *out)
{
    char v[32], *end;
    if (field(line, key, v, sizeof v))
        return -1;
    long x = strtol(v, &end, 10);
    if (*end || x < 0 || x > 1000000000)
        return -1;
    *out = (int)x;
    return 0;
}

int plan_read_rates(const char *path, plan_rate **rates, int *n, icas_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return icas_fail(err, "%s: cannot open the rate file", path);
    plan_rate *v = NULL;
    int count = 0, cap = 0, lineno = 0, rc = 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[strspn(line, " \t\n")] == 0 || line[0] == '#')
            continue;
        plan_rate r;
        char prec[16], g[32], *end;
        if (field(line, "precision", prec, sizeof prec) || field(line, "gflops", g, sizeof g) ||
            int_field(line, "threads", &r.threads) || int_field(line, "layers", &r.layers) ||
            int_field(line, "embd", &r.embd) || int_field(line, "heads", &r.heads) ||
            int_field(line, "points", &r.points) || (strcmp(prec, "fp32") && strcmp(prec, "bf16")) ||
            (r.gflops = strtod(g, &end), *end) || !(r.gflops > 0)) {
            rc = icas_fail(err, "%s:%d: not a rate line (want precision=fp32|bf16 threads= "
                                "gflops= layers= embd= heads= points=, as icasweep-bench "
                                "--rate-file writes)", path, lineno);
            break;
        }
        r.precision = strcmp(prec, "bf16") ? PRECISION_FP32 : PRECISION_BF16;
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            plan_rate *grown = realloc(v, sizeof *v * (size_t)cap);
            if (!grown) {
                rc = icas_fail(err, "%s: out of memory", path);
                break;
            }
            v = grown;
        }
        v[count++] = r;
    }
    fclose(f);
    if (rc) {
        free(v);
        return rc;
    }
    *rates = v;
    *n = count;
    return 0;
}

double plan_rate_for(const plan_rate *rates, int n, const run_config *cfg, int prec)
{
    double best = 0, best_dist = INFINITY;
    const double want = config_param_count(cfg);
    for (int i = 0; i < n; i++) {
        const plan_rate *r = &rates[i];
        if (r->precision != prec || r->threads != 1)
            continue;
        run_config c = *cfg;
        c.layers = r->layers;
        c.embd = r->embd;
        c.heads = r->heads;
        c.points = r->points;
        int same = r->layers == cfg->layers && r->embd == cfg->embd &&
                   r->heads == cfg->heads && r->points == cfg->points;
        double dist = same ? -1 : fabs(log(config_param_count(&c) / want));
        if (dist < best_dist) {
            best_dist = dist;
            best = r->gflops;
        }
    }
    return best;
}

/* ---- measuring -------------------------------------------------------- */

int plan_measure_rate(const run_config *cfg, int prec, double *gflops, icas_err *err)
{
    run_config c = *cfg;
    c.precision = prec;
    c.batch = TRAIN_CHUNK;
    c.layers = c.layers < MEASURE_LAYERS ? c.layers : MEASURE_LAYERS;
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    trainer *t;
    int rc = trainer_create(&t, &c, err);
    if (rc == 0) {
        trainer_step(t, 0);
        double best = INFINITY;
        for (int s = 1; s <= MEASURE_STEPS; s++) {
            double t0 = omp_get_wtime();
            trainer_step(t, s);
            double dt = omp_get_wtime() - t0;
            best = dt < best ? dt : best;
        }
        /* the least disturbed step: on a shared node the others include
         * other processes' time */
        *gflops = config_train_step_flops(&c) / best * 1e-9;
        trainer_free(t);
    }
    omp_set_num_threads(threads);
    return rc;
}

/* ---- scheduling ------------------------------------------------------- */

static int by_hours_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

double plan_makespan(const double *hours, int n, int workers)
{
    if (n == 0 || workers < 1)
        return 0;
    double *h = malloc(sizeof *h * (size_t)n), *load = calloc((size_t)workers, sizeof *load);
    if (!h || !load) {
        free(h);
        free(load);
        return NAN;
    }
    memcpy(h, hours, sizeof *h * (size_t)n);
    qsort(h, (size_t)n, sizeof *h, by_hours_desc);
    for (int i = 0; i < n; i++) {
        int least = 0;
        for (int w = 1; w < workers; w++)
            least = load[w] < load[least] ? w : least;
        load[least] += h[i];
    }
    double most = 0;
    for (int w = 0; w < workers; w++)
        most = load[w] > most ? load[w] : most;
    free(h);
    free(load);
    return most;
}

/* ---- the command ------------------------------------------------------ */

/* The index of the first run whose model is run i's but for the depth (so
 * each distinct width, head count, attention and MLP is measured once:
 * plan_measure_rate caps the depth). */
static int first_same_model(const grid *g, int i)
{
    const run_config *a = &g->runs[i];
    for (int j = 0; j < i; j++) {
        const run_config *b = &g->runs[j];
        if ((a->layers < MEASURE_LAYERS ? a->layers : MEASURE_LAYERS) ==
                (b->layers < MEASURE_LAYERS ? b->layers : MEASURE_LAYERS) &&
            a->embd == b->embd && a->heads == b->heads && a->points == b->points && a->dims == b->dims && a->attention == b->attention &&
            a->ffn == b->ffn)
            return j;
    }
    return i;
}

/* --time as [D-]HH:MM:00 for `hours` plus the margin, at least a minute */
static void print_time(double hours, int ranks, int threads)
{
    long m = (long)ceil(hours * TIME_MARGIN * 60);
    m = m < 1 ? 1 : m;
    char t[32];
    if (m >= 1440)
        snprintf(t, sizeof t, "%ld-%02ld:%02ld:00", m / 1440, m % 1440 / 60, m % 60);
    else
        snprintf(t, sizeof t, "%02ld:%02ld:00", m / 60, m % 60);
    printf("sbatch --ntasks=%d --cpus-per-task=%d --time=%s", ranks, threads, t);
}

int plan_main(int argc, char **argv)
{
    const char *path = NULL, *rate_file = NULL;
    double gflops = 0;
    int ranks = 2, measure = 1;
    icas_err err;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: icasweep plan GRID.yaml [--rate-file PATH | --gflops G | --no-measure]\n"
                   "                     [--ranks R]\n"
                   "Lists the runs of a grid with their FLOPs and core-hours in FP32 and bf16\n"
                   "at this node's rate, measured in a few seconds (a few steps of each distinct\n"
                   "model on one thread), read from a rate file (icasweep-bench --rate-file),\n"
                   "or G GFLOP/s per core for both; --no-measure lists FLOPs only. Then the\n"
                   "Slurm request for R ranks (R - 1 one-thread workers; default 2).\n");
            return EXIT_ALL_DONE;
        }
        if (!strcmp(a, "--gflops") && v) {
            gflops = strtod(v, &end);
            if (*end || !(gflops > 0) || !isfinite(gflops)) {
                fprintf(stderr, "icasweep plan: --gflops %s: expected a positive number\n", v);
                return EXIT_USAGE;
            }
            i++;
        } else if (!strcmp(a, "--rate-file") && v) {
            rate_file = v;
            i++;
        } else if (!strcmp(a, "--ranks") && v) {
            long r = strtol(v, &end, 10);
            if (*end || r < 2 || r > 1000000) {
                fprintf(stderr, "icasweep plan: --ranks %s: expected an integer >= 2 (the "
                                "master and at least one worker)\n", v);
                return EXIT_USAGE;
            }
            ranks = (int)r;
            i++;
        } else if (!strcmp(a, "--no-measure")) {
            measure = 0;
        } else if (!path && a[0] != '-') {
            path = a;
        } else {
            fprintf(stderr, "icasweep plan: %s: unexpected or incomplete argument\n", a);
            return EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "icasweep plan: a grid file is required\n");
        return EXIT_USAGE;
    }
    if ((rate_file != NULL) + (gflops > 0) + !measure > 1) {
        fprintf(stderr, "icasweep plan: --rate-file, --gflops and --no-measure exclude each other\n");
        return EXIT_USAGE;
    }
    grid g;
    if (grid_load(path, &g, stderr, &err)) {
        fprintf(stderr, "icasweep plan: %s\n", err.msg);
        return EXIT_USAGE;
    }
    plan_rate *rates = NULL;
    int n_rates = 0, status = EXIT_USAGE;
    if (rate_file && plan_read_rates(rate_file, &rates, &n_rates, &err)) {
        fprintf(stderr, "icasweep plan: %s\n", err.msg);
        grid_free(&g);
        return EXIT_USAGE;
    }
    const int n = g.n_runs;
    double *rate = calloc((size_t)n * 2, sizeof *rate);  /* [run][precision] GFLOP/s */
    double *hours = calloc((size_t)n * 2, sizeof *hours); /* [precision][run] */
    if (!rate || !hours) {
        fprintf(stderr, "icasweep plan: out of memory for %d runs\n", n);
        goto done;
    }
    const char *source = measure ? "measured here, 1 thread" : "none";
    if (gflops > 0)
        source = "--gflops";
    else if (rate_file)
        source = rate_file;
    double t0 = omp_get_wtime();
    for (int i = 0; i < n; i++)
        for (int p = 0; p < 2; p++) {
            const run_config *c = &g.runs[i];
            int j = first_same_model(&g, i);
            if (gflops > 0)
                rate[2 * i + p] = gflops;
            else if (rate_file)
                rate[2 * i + p] = plan_rate_for(rates, n_rates, c, p);
            else if (measure && j < i)
                rate[2 * i + p] = rate[2 * j + p];
            else if (measure && plan_measure_rate(c, p, &rate[2 * i + p], &err)) {
                fprintf(stderr, "icasweep plan: measuring row %d: %s\n", i, err.msg);
                status = EXIT_IO;
                goto done;
            }
        }
    if (measure && !rate_file && !(gflops > 0))
        fprintf(stderr, "icasweep plan: measured the rates in %.1f s\n", omp_get_wtime() - t0);

    double total = 0, total_h[2] = {0, 0};
    int have[2] = {1, 1};
    printf("%5s  %-17s  %9s  %8s  %8s  %9s  %9s  %s\n", "row", "run_id", "TFLOP", "fp32 GF/s",
           "bf16 GF/s", "fp32 core-h", "bf16 core-h", "configuration");
    for (int i = 0; i < n; i++) {
        char id[ICAS_RUN_ID_LEN], desc[256];
        config_run_id(&g.runs[i], id);
        config_describe(&g.runs[i], desc, sizeof desc);
        double f = config_run_flops(&g.runs[i]);
        total += f;
        char col[2][3][24];
        for (int p = 0; p < 2; p++) {
            double r = rate[2 * i + p];
            hours[p * n + i] = r > 0 ? f / (r * 1e9) / 3600 : 0;
            have[p] &= r > 0;
            total_h[p] += hours[p * n + i];
            snprintf(col[p][0], sizeof col[p][0], r > 0 ? "%.1f" : "-", r);
            snprintf(col[p][1], sizeof col[p][1], r > 0 ? "%.3f" : "-", hours[p * n + i]);
        }
        printf("%5d  %-17s  %9.2f  %8s  %8s  %9s  %9s  %s\n", i, id, f / 1e12, col[0][0],
               col[1][0], col[0][1], col[1][1], desc);
    }
    printf("total: %d runs, %.1f TFLOP; rates: %s\n", n, total / 1e12, source);
    for (int p = 0; p < 2; p++) {
        const char *name = p ? "bf16" : "fp32";
        if (!measure && !rate_file && !(gflops > 0))
            continue;
        if (!have[p]) {
            printf("%s: no rate for some runs (the rate file has no one-thread %s line)\n", name,
                   name);
            continue;
        }
        double span = plan_makespan(hours + p * n, n, ranks - 1);
        printf("%s: %.2f core-hours; %d ranks (%d workers): about %.2f h; ", name, total_h[p],
               ranks, ranks - 1, span);
        print_time(span, ranks, 1);
        printf("\n");
    }
    status = EXIT_ALL_DONE;
done:
    free(rate);
    free(hours);
    free(rates);
    grid_free(&g);
    return status;
}
