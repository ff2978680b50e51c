/* icasweep plan's arithmetic: the longest-first schedule's makespan, the
 * rate file (the lines icasweep-bench --rate-file writes; a bad line named
 * by file and line), and the choice of a rate for a configuration (its own
 * model's, else the nearest in parameter count, per precision). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "icasweep/plan.h"
#include "testutil.h"

static void check_makespan(void)
{
    const double h[] = {1, 2, 3, 4, 5};
    CHECK(plan_makespan(h, 5, 1) == 15, "1 worker: %g", plan_makespan(h, 5, 1));
    /* longest first, each to the least loaded: loads 5|4, 5|7, 7|7, 8|7 */
    CHECK(plan_makespan(h, 5, 2) == 8, "2 workers: %g", plan_makespan(h, 5, 2));
    CHECK(plan_makespan(h, 5, 10) == 5, "10 workers: %g", plan_makespan(h, 5, 10));
    CHECK(plan_makespan(h, 0, 3) == 0, "no runs: %g", plan_makespan(h, 0, 3));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void check_rate_file(void)
{
    char path[] = "/tmp/icas_rates_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    /* as icasweep-bench writes them */
    write_file(path,
               "config=paper precision=fp32 threads=1 gflops=150.000 layers=20 embd=96 heads=3 "
               "points=20 batch=256 kernels=oneDNN_avx2\n"
               "config=paper precision=bf16 threads=1 gflops=300.000 layers=20 embd=96 heads=3 "
               "points=20 batch=256 kernels=oneDNN_avx2\n"
               "config=paper precision=fp32 threads=2 gflops=290.000 layers=20 embd=96 heads=3 "
               "points=20 batch=256 kernels=oneDNN_avx2\n"
               "config=small precision=fp32 threads=1 gflops=90.000 layers=2 embd=32 heads=2 "
               "points=20 batch=64 kernels=oneDNN_avx2\n");
    plan_rate *r = NULL;
    int n = 0;
    icas_err err;
    CHECK(plan_read_rates(path, &r, &n, &err) == 0, "%s", err.msg);
    CHECK(n == 4, "%d rate lines", n);
    run_config c = config_default(); /* the paper's model */
    CHECK(plan_rate_for(r, n, &c, PRECISION_FP32) == 150, "paper fp32: %g",
          plan_rate_for(r, n, &c, PRECISION_FP32));
    CHECK(plan_rate_for(r, n, &c, PRECISION_BF16) == 300, "paper bf16: %g",
          plan_rate_for(r, n, &c, PRECISION_BF16));
    /* L=4, E=32: nearer the small model in parameters than the paper's */
    c.layers = 4;
    c.embd = 32;
    c.heads = 2;
    CHECK(plan_rate_for(r, n, &c, PRECISION_FP32) == 90, "L=4 E=32 fp32: %g",
          plan_rate_for(r, n, &c, PRECISION_FP32));
    /* bf16 has only the paper's line: that one */
    CHECK(plan_rate_for(r, n, &c, PRECISION_BF16) == 300, "L=4 E=32 bf16: %g",
          plan_rate_for(r, n, &c, PRECISION_BF16));
    free(r);

    write_file(path, "config=paper precision=fp32 threads=1 gflops=150 layers=20 embd=96 heads=3 "
                     "points=20\n# a comment\n\nconfig=x precision=fp16 threads=1 gflops=1 "
                     "layers=1 embd=8 heads=2 points=3\n");
    CHECK(plan_read_rates(path, &r, &n, &err) != 0, "a precision fp16 line was accepted");
    char want[64];
    snprintf(want, sizeof want, "%s:4:", path);
    CHECK(strstr(err.msg, want) != NULL, "message '%s' does not name %s", err.msg, want);
    unlink(path);
    CHECK(plan_read_rates(path, &r, &n, &err) != 0 && strstr(err.msg, path),
          "a missing file: '%s'", err.msg);
}

int main(void)
{
    check_makespan();
    check_rate_file();
    return test_finish("test_plan");
}
