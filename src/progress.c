#include "icasweep/progress.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <unistd.h>

void progress_format_duration(double s, char *out, size_t n)
{
    if (!isfinite(s) || s < 0)
        snprintf(out, n, "?");
    else if (s >= 3600)
        snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(out, n, "%.1fs", s);
}

void progress_init(progress_meter *p, const char *label, double step_flops,
                       int first_step)
{
    p->label = label;
    p->start = omp_get_wtime();
    p->last_print = -1e9;
    p->step_flops = step_flops;
    p->tty = isatty(STDERR_FILENO);
    p->first_step = first_step;
}

void progress_step(void *user, int step, int steps, float loss)
{
    progress_meter *p = user;
    double now = omp_get_wtime();
    /* a live line refreshes often; a log file gets a line every 10 s */
    double period = p->tty ? 0.25 : 10.0;
    if (step < steps && now - p->last_print < period && step != p->first_step + 1)
        return;
    p->last_print = now;
    double rate = (step - p->first_step) / fmax(now - p->start, 1e-9);
    char eta[32];
    progress_format_duration((steps - step) / rate, eta, sizeof eta);
    fprintf(stderr, "%s%s step %d/%d  loss %.5f  %.2f steps/s  %.1f GFLOP/s  ETA %s%s",
            p->tty ? "\r\033[K" : "", p->label, step, steps, loss, rate,
            rate * p->step_flops / 1e9, eta, p->tty && step < steps ? "" : "\n");
    fflush(stderr);
}
