/* icasweep-bench: how fast is a training step.
 *
 * For each configuration ("paper": L=20 E=96 H=3 batch 256; "small": L=2
 * E=32 H=2 batch 64; both d=5 N=20 softmax, MLP on, Plackett-Luce) it times
 * whole training steps (data, forward, loss, backward, Adam) after a warm-up
 * through the public trainer API (train.h) and prints
 *   - seconds per step (median, min, max), tokens/s (batch * 3N per step);
 *   - model GFLOP/s, FLOPs per token = 6 * params + 6 * L * E * T
 *     (config_train_step_flops), as a fraction of an sgemm ceiling measured
 *     in the same process on this configuration's linear-layer shapes;
 *   - peak resident memory of the configuration;
 *   - the trainer's per-phase profile (seconds per step and %);
 *   - for the paper configuration, one evaluation + GD baseline (eval.h, eval
 *     batch 256 at 5 noise levels) as % of a 3000-step training run.
 * Threads: OMP_NUM_THREADS (OpenMP regions and the OpenMP build of
 * OpenBLAS alike). Each configuration ends with one parseable line
 *   RESULT config=paper threads=1 s_per_step=... gflops=... rss_mb=...
 * (or a TSV table with --tsv). Exit status 0 on success, 1 on a failed run,
 * 2 on bad arguments. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/eval.h"
#include "icasweep/model.h"
#include "icasweep/train.h"

/* Present in OpenBLAS only; weak so that another BLAS still links. */
extern char *openblas_get_config(void) __attribute__((weak));

#define MAX_CONFIGS 2
#define PAPER_STEPS 3000 /* the training run the evaluation is compared with */

typedef struct {
    const char *name;
    run_config cfg;
    int steps, warmup;
} bench_config;

typedef struct {
    double med, min, max, mean;
} stats;

typedef struct {
    const char *name;
    int threads, steps, warmup;
    size_t n_params;
    stats step;          /* seconds per step */
    double tokens_per_s, gflops, sgemm_gflops, rss_mb;
    double first_loss, last_loss;
    train_profile prof;  /* seconds per step */
    double eval_s;       /* < 0: not measured */
} bench_result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, min, max and mean of v[n] (sorts v). */
static stats stats_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    stats s = {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0], v[n - 1],
               sum / n};
    return s;
}

static double now(void) { return omp_get_wtime(); }

/* ---- machine ------------------------------------------------------------ */

static void cpu_model(char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ' || *v == '\t')
                    v++;
                snprintf(out, n, "%s", v);
                out[strcspn(out, "\n")] = 0;
            }
            break;
        }
    }
    fclose(f);
}

static void print_machine(void)
{
    char cpu[256], date[64];
    cpu_model(cpu, sizeof cpu);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&t));
    const char *omp_env = getenv("OMP_NUM_THREADS");
    printf("MACHINE cpu=\"%s\" cores=%ld OMP_NUM_THREADS=%s omp_max_threads=%d "
           "blas=\"%s\" date=%s\n",
           cpu, sysconf(_SC_NPROCESSORS_ONLN), omp_env ? omp_env : "(unset)",
           omp_get_max_threads(),
           openblas_get_config ? openblas_get_config() : "not OpenBLAS", date);
}

/* ---- peak memory -------------------------------------------------------- */

/* Resets the kernel's peak-RSS counter (VmHWM) so that each configuration
 * reports its own peak; returns 0 when that worked. */
static int reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int ok = fputs("5", f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Peak RSS in MB: VmHWM (since the last reset) when readable, else
 * getrusage's ru_maxrss (peak of the whole process). */
static double peak_rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long kb = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
                break;
        fclose(f);
        if (kb >= 0)
            return kb / 1024.0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* ---- sgemm ceiling ------------------------------------------------------ */

/* GFLOP/s of C[M,N] = A[M,K] B[K,N] (row major, the orientation of the
 * model's linear layers): median of `reps` timed products after one
 * untimed. Returns < 0 when out of memory. */
static double sgemm_gflops(int M, int K, int N, int reps)
{
    float *A = malloc(sizeof(float) * (size_t)M * K);
    float *B = malloc(sizeof(float) * (size_t)K * N);
    float *C = malloc(sizeof(float) * (size_t)M * N);
    double *t = malloc(sizeof(double) * (size_t)reps);
    double g = -1;
    if (A && B && C && t) {
        for (size_t i = 0; i < (size_t)M * K; i++)
            A[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        for (size_t i = 0; i < (size_t)K * N; i++)
            B[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
        for (int r = -1; r < reps; r++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f,
                        A, K, B, N, 0.0f, C, N);
            if (r >= 0)
                t[r] = now() - t0;
        }
        stats s = stats_of(t, reps);
        g = 2.0 * M * K * N / s.med * 1e-9;
    }
    free(A);
    free(B);
    free(C);
    free(t);
    return g;
}

/* The four linear-layer shapes (K, N) of a block: c_attn E->3E, attn proj
 * E->E, c_fc E->4E, mlp proj 4E->E; at rows = batch * T (the whole batch as
 * one product, the ceiling) and at rows = GEMM_BLOCK_CONTEXTS * T (what the
 * trainer actually issues). Prints them and returns the ceiling: the best shape's
 * median at batch * T rows. */
static double sgemm_ceiling(const run_config *c, const char *name)
{
    const int E = c->embd, T = 3 * c->points;
    const int KN[4][2] = {{E, 3 * E}, {E, E}, {E, 4 * E}, {4 * E, E}};
    const int rows[2] = {c->batch * T, GEMM_BLOCK_CONTEXTS * T};
    double best = -1;
    printf("  sgemm (%s shapes, %d threads, median of 7):", name,
           omp_get_max_threads());
    for (int r = 0; r < 2; r++) {
        printf("%s M=%d:", r ? ";" : "", rows[r]);
        for (int s = 0; s < 4; s++) {
            double g = sgemm_gflops(rows[r], KN[s][0], KN[s][1], 7);
            printf(" %dx%d %.1f", KN[s][0], KN[s][1], g);
            if (r == 0 && g > best)
                best = g;
        }
    }
    printf(" GFLOP/s\n");
    return best;
}

/* ---- one configuration -------------------------------------------------- */

static void print_profile(const bench_result *r)
{
    const train_profile *p = &r->prof;
    const char *names[6] = {"data", "matmul", "attention", "elementwise", "loss",
                            "optimizer"};
    const double v[6] = {p->data, p->matmul, p->attention, p->elementwise, p->loss,
                         p->optimizer};
    /* phases are means per step, so they are compared with the mean step;
     * "other" is what no phase timer covers (zeroing gradients, gaps) */
    const double mean = r->step.mean;
    double sum = 0;
    for (int i = 0; i < 6; i++)
        sum += v[i];
    printf("  profile (s/step, %% of mean step %.4f s):", mean);
    for (int i = 0; i < 6; i++)
        printf(" %s %.4f (%.1f%%)", names[i], v[i], 100.0 * v[i] / mean);
    printf(" other %.4f (%.1f%%)\n", mean - sum, 100.0 * (mean - sum) / mean);
}

/* Times `bc` and fills `out`. Returns 0, or non-zero with err set. */
static int bench_one(const bench_config *bc, int with_eval, bench_result *out,
                     icas_err *err)
{
    const run_config *c = &bc->cfg;
    memset(out, 0, sizeof *out);
    out->name = bc->name;
    out->threads = omp_get_max_threads();
    out->steps = bc->steps;
    out->warmup = bc->warmup;
    out->eval_s = -1;
    out->n_params = model_count_params(model_dims_of(c));
    char desc[256];
    config_describe(c, desc, sizeof desc);
    printf("CONFIG %s: %s (params %zu, T %d, tokens/step %d)\n", bc->name, desc,
           out->n_params, 3 * c->points, c->batch * 3 * c->points);
    fflush(stdout);

    int rss_reset = reset_peak_rss();
    trainer *t = NULL;
    double *dt = malloc(sizeof(double) * (size_t)bc->steps);
    run_result curves;
    int have_curves = 0;
    int rc = -1;
    if (!dt) {
        icas_fail(err, "bench: out of memory");
        goto done;
    }
    if (trainer_create(&t, c, err)) {
        icas_wrap(err, "%s: ", bc->name);
        goto done;
    }
    int step = 0;
    for (int i = 0; i < bc->warmup; i++, step++) {
        float loss = trainer_step(t, step);
        if (i == 0)
            out->first_loss = loss;
    }
    trainer_reset_profile(t);
    for (int i = 0; i < bc->steps; i++, step++) {
        double t0 = now();
        float loss = trainer_step(t, step);
        dt[i] = now() - t0;
        if (!isfinite(loss)) {
            icas_fail(err, "%s: loss %g at step %d", bc->name, loss, step);
            goto done;
        }
        if (step == 0)
            out->first_loss = loss;
        out->last_loss = loss;
    }
    out->prof = *trainer_profile(t);
    double *pv[6] = {&out->prof.data, &out->prof.matmul, &out->prof.attention,
                     &out->prof.elementwise, &out->prof.loss, &out->prof.optimizer};
    for (int i = 0; i < 6; i++)
        *pv[i] /= bc->steps;
    out->step = stats_of(dt, bc->steps);
    out->tokens_per_s = (double)c->batch * 3 * c->points / out->step.med;
    out->gflops = config_train_step_flops(c) / out->step.med * 1e-9;

    if (with_eval) {
        if (run_result_alloc(&curves, c, 0, err))
            goto done;
        have_curves = 1;
        double t0 = now();
        if (eval_run(c, trainer_model(t), &curves, err)) {
            icas_wrap(err, "%s: eval: ", bc->name);
            goto done;
        }
        out->eval_s = now() - t0;
    }
    out->rss_mb = peak_rss_mb();
    if (rss_reset)
        fprintf(stderr, "bench: could not reset peak RSS; rss_mb is the "
                        "process peak so far\n");
    out->sgemm_gflops = sgemm_ceiling(c, bc->name);
    rc = 0;
done:
    free(dt);
    if (have_curves)
        run_result_free(&curves);
    trainer_free(t);
    return rc;
}

static void print_result(const bench_result *r, const run_config *c)
{
    printf("  step: median %.4f s, min %.4f, max %.4f (%d steps after %d warm-up)"
           "; loss %.4f -> %.4f\n",
           r->step.med, r->step.min, r->step.max, r->steps, r->warmup,
           r->first_loss, r->last_loss);
    printf("  throughput: %.0f tokens/s, %.2f GFLOP/s model (%.3g GFLOP/step), "
           "%.1f%% of sgemm ceiling %.1f GFLOP/s\n",
           r->tokens_per_s, r->gflops, config_train_step_flops(c) * 1e-9,
           100.0 * r->gflops / r->sgemm_gflops, r->sgemm_gflops);
    printf("  peak RSS: %.1f MB\n", r->rss_mb);
    print_profile(r);
    if (r->eval_s >= 0) {
        double run = PAPER_STEPS * r->step.med;
        printf("  eval + GD baseline (eval batch %d, %d noise levels): %.2f s = "
               "%.2f%% of a %d-step training run (%.0f s)\n",
               c->eval_batch, c->n_eval_noise, r->eval_s, 100.0 * r->eval_s / run,
               PAPER_STEPS, run);
    }
}

static void print_result_line(const bench_result *r)
{
    printf("RESULT impl=icasweep config=%s threads=%d steps=%d s_per_step=%.6f "
           "s_min=%.6f s_max=%.6f tokens_per_s=%.1f gflops=%.3f sgemm_gflops=%.3f "
           "frac_sgemm=%.4f rss_mb=%.1f params=%zu",
           r->name, r->threads, r->steps, r->step.med, r->step.min, r->step.max,
           r->tokens_per_s, r->gflops, r->sgemm_gflops, r->gflops / r->sgemm_gflops,
           r->rss_mb, r->n_params);
    printf(" p_data=%.6f p_matmul=%.6f p_attention=%.6f p_elementwise=%.6f "
           "p_loss=%.6f p_optimizer=%.6f",
           r->prof.data, r->prof.matmul, r->prof.attention, r->prof.elementwise,
           r->prof.loss, r->prof.optimizer);
    if (r->eval_s >= 0)
        printf(" eval_s=%.3f eval_pct=%.3f", r->eval_s,
               100.0 * r->eval_s / (PAPER_STEPS * r->step.med));
    printf("\n");
}

static void print_tsv(const bench_result *r, int n)
{
    printf("config\tthreads\tsteps\ts_per_step\ts_min\ts_max\ttokens_per_s\tgflops\t"
           "sgemm_gflops\tfrac_sgemm\trss_mb\tp_data\tp_matmul\tp_attention\t"
           "p_elementwise\tp_loss\tp_optimizer\teval_s\n");
    for (int i = 0; i < n; i++)
        printf("%s\t%d\t%d\t%.6f\t%.6f\t%.6f\t%.1f\t%.3f\t%.3f\t%.4f\t%.1f\t%.6f\t"
               "%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.3f\n",
               r[i].name, r[i].threads, r[i].steps, r[i].step.med, r[i].step.min,
               r[i].step.max, r[i].tokens_per_s, r[i].gflops, r[i].sgemm_gflops,
               r[i].gflops / r[i].sgemm_gflops, r[i].rss_mb, r[i].prof.data,
               r[i].prof.matmul, r[i].prof.attention, r[i].prof.elementwise,
               r[i].prof.loss, r[i].prof.optimizer, r[i].eval_s);
}

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: icasweep-bench [--config paper|small|both] [--steps N] "
            "[--warmup N]\n"
            "                      [--eval | --no-eval] [--tsv] [--no-machine]\n"
            "Times whole training steps. Defaults: --config both; paper 5 steps "
            "after 1\n"
            "warm-up, small 50 after 5. Evaluation timing: paper only unless --eval"
            "\n(all) or --no-eval (none). Threads: OMP_NUM_THREADS.\n");
}

static int parse_int(const char *flag, const char *s, int lo, int *out)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *end || v < lo || v > 1000000) {
        fprintf(stderr, "icasweep-bench: %s needs an integer >= %d, got '%s'\n",
                flag, lo, s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *which = "both";
    int steps = -1, warmup = -1, eval_mode = -1, tsv = 0, machine = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--config") && v) {
            which = v;
            i++;
        } else if (!strcmp(a, "--steps")) {
            if (parse_int(a, v, 1, &steps))
                return 2;
            i++;
        } else if (!strcmp(a, "--warmup")) {
            if (parse_int(a, v, 0, &warmup))
                return 2;
            i++;
        } else if (!strcmp(a, "--eval")) {
            eval_mode = 1;
        } else if (!strcmp(a, "--no-eval")) {
            eval_mode = 0;
        } else if (!strcmp(a, "--tsv")) {
            tsv = 1;
        } else if (!strcmp(a, "--no-machine")) {
            machine = 0;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "icasweep-bench: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    int want_paper = !strcmp(which, "paper") || !strcmp(which, "both");
    int want_small = !strcmp(which, "small") || !strcmp(which, "both");
    if (!want_paper && !want_small) {
        fprintf(stderr, "icasweep-bench: --config must be paper, small or both, got '%s'\n",
                which);
        return 2;
    }

    bench_config bc[MAX_CONFIGS];
    int n = 0;
    if (want_paper) {
        bc[n].name = "paper";
        bc[n].cfg = config_default();
        bc[n].steps = steps > 0 ? steps : 5;
        bc[n].warmup = warmup >= 0 ? warmup : 1;
        n++;
    }
    if (want_small) {
        bc[n].name = "small";
        bc[n].cfg = config_default();
        bc[n].cfg.layers = 2;
        bc[n].cfg.embd = 32;
        bc[n].cfg.heads = 2;
        bc[n].cfg.batch = 64;
        bc[n].steps = steps > 0 ? steps : 50;
        bc[n].warmup = warmup >= 0 ? warmup : 5;
        n++;
    }

    if (machine)
        print_machine();
    bench_result res[MAX_CONFIGS];
    for (int i = 0; i < n; i++) {
        icas_err err = {{0}, 0};
        int with_eval = eval_mode < 0 ? !strcmp(bc[i].name, "paper") : eval_mode;
        if (bench_one(&bc[i], with_eval, &res[i], &err)) {
            fprintf(stderr, "icasweep-bench: %s\n", err.msg);
            return 1;
        }
        print_result(&res[i], &bc[i].cfg);
        print_result_line(&res[i]);
        fflush(stdout);
    }
    if (tsv)
        print_tsv(res, n);
    return 0;
}
