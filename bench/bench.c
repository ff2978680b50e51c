/* icasweep-bench: how fast is a training step, against the core's peak.
 *
 * For each configuration ("paper": L=20 E=96 H=3 batch 256; "small": L=2
 * E=32 H=2 batch 64; both d=5 N=20 softmax, MLP on, Plackett-Luce) it times
 * whole training steps (data, forward, loss, backward, Adam) after a warm-up
 * through the public trainer API (train.h), in the precision --precision
 * names, and prints
 *   - seconds per step (median, min, max), tokens/s (batch * 3N per step);
 *   - model GFLOP/s, FLOPs per token = 6 * params + 6 * L * E * T
 *     (config_train_step_flops), as a fraction of the FMA peak measured in
 *     the same process right after, at the same thread count: independent
 *     multiply-add chains at the widest vector width the CPU has (FP32), and
 *     bf16 pair dot products (vdpbf16ps) where the CPU has them. A bf16 run
 *     on a CPU without them is compared with the FP32 peak (its products are
 *     widened to FP32, matmul.h);
 *   - peak resident memory of the configuration;
 *   - the trainer's per-phase profile (seconds per step and %);
 *   - for the paper configuration, one evaluation + GD baseline (eval.h, eval
 *     batch 256 at 5 noise levels) as % of a 3000-step training run.
 * Threads: OMP_NUM_THREADS. Each configuration ends with one parseable line
 *   RESULT impl=icasweep config=paper precision=fp32 threads=1 s_per_step=...
 * (or a TSV table with --tsv). --rate-file PATH appends, per configuration,
 * a line "config=... precision=... threads=... gflops=..." that `icasweep
 * plan --rate-file PATH` reads. Exit status 0 on success, 1 on a failed run,
 * 2 on bad arguments. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/eval.h"
#include "icasweep/matmul.h"
#include "icasweep/model.h"
#include "icasweep/train.h"

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
    double tokens_per_s, gflops, rss_mb;
    double peak_fp32, peak_bf16; /* GFLOP/s; peak_bf16 0: no bf16 instructions */
    double peak;                 /* the one of this run's precision */
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
    char kernels[64];
    matmul_backend_kernel_name(MATMUL_AUTO, kernels, sizeof kernels);
    printf("MACHINE cpu=\"%s\" cores=%ld OMP_NUM_THREADS=%s omp_max_threads=%d "
           "kernels=\"%s\" OPENBLAS_CORETYPE=%s date=%s\n",
           cpu, sysconf(_SC_NPROCESSORS_ONLN), omp_env ? omp_env : "(unset)",
           omp_get_max_threads(), kernels,
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)", date);
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

/* ---- FMA peak ------------------------------------------------------------ */

/* Independent multiply-add chains, enough of them to cover the latency of
 * two FMA pipes; each thread runs its own. Returns GFLOP/s over all
 * threads: the best of `tries` bursts of `iters` iterations (on a shared
 * machine the best burst is the one least disturbed). */
#define PEAK_CHAINS 16

__attribute__((target("avx2,fma"))) static float chains_256(long iters)
{
    __m256 acc[PEAK_CHAINS];
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    for (int j = 0; j < PEAK_CHAINS; j++)
        acc[j] = _mm256_set1_ps((float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < PEAK_CHAINS; j++)
            acc[j] = _mm256_fmadd_ps(acc[j], m, c);
    float sum = 0, part[8];
    for (int j = 0; j < PEAK_CHAINS; j++) {
        _mm256_storeu_ps(part, acc[j]);
        sum += part[0];
    }
    return sum;
}

__attribute__((target("avx512f"))) static float chains_512(long iters)
{
    __m512 acc[PEAK_CHAINS];
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    for (int j = 0; j < PEAK_CHAINS; j++)
        acc[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < PEAK_CHAINS; j++)
            acc[j] = _mm512_fmadd_ps(acc[j], m, c);
    float sum = 0;
    for (int j = 0; j < PEAK_CHAINS; j++)
        sum += _mm512_reduce_add_ps(acc[j]);
    return sum;
}

/* vdpbf16ps: per FP32 lane, acc += a0 b0 + a1 b1 (4 FLOPs) */
__attribute__((target("avx512f,avx512bf16"))) static float chains_bf16(long iters)
{
    __m512 acc[PEAK_CHAINS];
    const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
    const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(3e-3f), _mm512_set1_ps(1e-3f));
    for (int j = 0; j < PEAK_CHAINS; j++)
        acc[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < PEAK_CHAINS; j++)
            acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
    float sum = 0;
    for (int j = 0; j < PEAK_CHAINS; j++)
        sum += _mm512_reduce_add_ps(acc[j]);
    return sum;
}

typedef enum { PEAK_256, PEAK_512, PEAK_BF16 } peak_kind;

static double peak_gflops(peak_kind kind, long iters, int tries)
{
    const double flops_per_iter =
        PEAK_CHAINS * (kind == PEAK_256 ? 16.0 : kind == PEAK_512 ? 32.0 : 64.0);
    double best = 0;
    volatile float sink = 0;
    for (int r = 0; r < tries; r++) {
        double t0 = now();
        int threads = 1;
#pragma omp parallel
        {
            float v = kind == PEAK_256 ? chains_256(iters)
                      : kind == PEAK_512 ? chains_512(iters) : chains_bf16(iters);
#pragma omp atomic
            sink += v;
#pragma omp single
            threads = omp_get_num_threads();
        }
        double g = flops_per_iter * iters * threads / (now() - t0) * 1e-9;
        best = g > best ? g : best;
    }
    return best;
}

/* The FP32 peak at the widest width, and the bf16 one (0 without the
 * instructions), both at the current thread count. */
static void measure_peaks(double *fp32, double *bf16_peak)
{
    const long iters = 2000000; /* ~0.1 s a burst at 1e11 FLOP/s */
    __builtin_cpu_init();
    *fp32 = __builtin_cpu_supports("avx512f") ? peak_gflops(PEAK_512, iters, 5)
                                              : peak_gflops(PEAK_256, iters, 5);
    *bf16_peak = __builtin_cpu_supports("avx512bf16") ? peak_gflops(PEAK_BF16, iters, 5) : 0;
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
    measure_peaks(&out->peak_fp32, &out->peak_bf16);
    out->peak = c->precision == PRECISION_BF16 && out->peak_bf16 > 0 ? out->peak_bf16
                                                                     : out->peak_fp32;
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
           "%.1f%% of the %s peak %.1f GFLOP/s\n",
           r->tokens_per_s, r->gflops, config_train_step_flops(c) * 1e-9,
           100.0 * r->gflops / r->peak,
           c->precision == PRECISION_BF16 && r->peak_bf16 > 0 ? "bf16" : "FP32", r->peak);
    if (r->peak_bf16 > 0)
        printf("  peaks (same process, %d threads): FP32 %.1f, bf16 %.1f GFLOP/s\n",
               r->threads, r->peak_fp32, r->peak_bf16);
    else
        printf("  peaks (same process, %d threads): FP32 %.1f GFLOP/s; no bf16 "
               "instructions (bf16 products widened to FP32)\n",
               r->threads, r->peak_fp32);
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

static const char *precision_word(const run_config *c)
{
    return c->precision == PRECISION_BF16 ? "bf16" : "fp32";
}

static void print_result_line(const bench_result *r, const run_config *c)
{
    printf("RESULT impl=icasweep config=%s precision=%s threads=%d steps=%d s_per_step=%.6f "
           "s_min=%.6f s_max=%.6f tokens_per_s=%.1f gflops=%.3f peak_fp32=%.3f "
           "peak_bf16=%.3f frac_peak=%.4f rss_mb=%.1f params=%zu",
           r->name, precision_word(c), r->threads, r->steps, r->step.med, r->step.min,
           r->step.max, r->tokens_per_s, r->gflops, r->peak_fp32, r->peak_bf16,
           r->gflops / r->peak, r->rss_mb, r->n_params);
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
           "peak_gflops\tfrac_peak\trss_mb\tp_data\tp_matmul\tp_attention\t"
           "p_elementwise\tp_loss\tp_optimizer\teval_s\n");
    for (int i = 0; i < n; i++)
        printf("%s\t%d\t%d\t%.6f\t%.6f\t%.6f\t%.1f\t%.3f\t%.3f\t%.4f\t%.1f\t%.6f\t"
               "%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.3f\n",
               r[i].name, r[i].threads, r[i].steps, r[i].step.med, r[i].step.min,
               r[i].step.max, r[i].tokens_per_s, r[i].gflops, r[i].peak,
               r[i].gflops / r[i].peak, r[i].rss_mb, r[i].prof.data,
               r[i].prof.matmul, r[i].prof.attention, r[i].prof.elementwise,
               r[i].prof.loss, r[i].prof.optimizer, r[i].eval_s);
}

/* One line of the rate file (icasweep plan --rate-file). */
static int append_rate(const char *path, const bench_result *r, const run_config *c)
{
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    char kernels[64];
    matmul_backend_kernel_name(MATMUL_AUTO, kernels, sizeof kernels);
    for (char *k = kernels; *k; k++) /* one word: the line is space-separated */
        *k = *k == ' ' ? '_' : *k;
    fprintf(f, "config=%s precision=%s threads=%d gflops=%.3f layers=%d embd=%d heads=%d "
               "points=%d batch=%d kernels=%s\n",
            r->name, precision_word(c), r->threads, r->gflops, c->layers, c->embd, c->heads,
            c->points, c->batch, kernels);
    return fclose(f);
}

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: icasweep-bench [--config paper|small|both] [--precision fp32|bf16]\n"
            "                      [--steps N] [--warmup N] [--eval | --no-eval] [--tsv]\n"
            "                      [--no-machine] [--rate-file PATH]\n"
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
    int precision = PRECISION_FP32;
    const char *rate_file = NULL;
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
        } else if (!strcmp(a, "--precision") && v) {
            if (strcmp(v, "fp32") && strcmp(v, "bf16")) {
                fprintf(stderr, "icasweep-bench: --precision must be fp32 or bf16, got '%s'\n",
                        v);
                return 2;
            }
            precision = !strcmp(v, "bf16") ? PRECISION_BF16 : PRECISION_FP32;
            i++;
        } else if (!strcmp(a, "--rate-file") && v) {
            rate_file = v;
            i++;
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

    for (int i = 0; i < n; i++)
        bc[i].cfg.precision = precision;
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
        print_result_line(&res[i], &bc[i].cfg);
        fflush(stdout);
        if (rate_file && append_rate(rate_file, &res[i], &bc[i].cfg)) {
            fprintf(stderr, "icasweep-bench: %s: %s\n", rate_file, strerror(errno));
            return 1;
        }
    }
    if (tsv)
        print_tsv(res, n);
    return 0;
}
