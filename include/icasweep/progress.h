/* Progress lines for long work: a step counter with loss, steps/s,
 * GFLOP/s and ETA (a live line on a terminal, plain lines in a log), and
 * durations written for people ("1h02m"). */
#ifndef ICASWEEP_PROGRESS_H
#define ICASWEEP_PROGRESS_H

#include <stddef.h>

typedef struct {
    const char *label;
    double start, last_print;
    double step_flops;
    int tty;
    int first_step;
} progress_meter;

/* Progress lines on stderr: a live line on a terminal, plain lines every
 * 10 seconds otherwise. */
void progress_init(progress_meter *p, const char *label, double step_flops,
                   int first_step);
/* A train_options.progress callback; user is a progress_meter. */
void progress_step(void *user, int step, int steps, float loss);

/* "1h02m", "3m05s", "12.0s"; "?" when not finite */
void progress_format_duration(double seconds, char *out, size_t n);

#endif
