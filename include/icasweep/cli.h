/* The command line: `icasweep train|sweep|plan|status`, flag parsing with
 * messages that name the flag and value, progress lines, exit statuses. */
#ifndef ICASWEEP_CLI_H
#define ICASWEEP_CLI_H

#include "icasweep/config.h"

/* Exit statuses, shared by every command (documented in the README). */
enum {
    EXIT_ALL_DONE = 0,     /* every run finished */
    EXIT_RUN_FAILED = 1,   /* finished, but some run diverged or failed */
    EXIT_USAGE = 2,        /* bad input: nothing was run or written */
    EXIT_INTERRUPTED = 3,  /* stopped by a signal; the same command resumes */
    EXIT_IO = 4,           /* I/O, MPI or internal error */
};

int cli_main(int argc, char **argv);

/* Parses one run flag (--layers 2, --attention linear, ...) into cfg.
 * Returns 1 if `flag` is a run flag and was consumed with `value`, 0 if it is
 * not a run flag, -1 (err set) if the value is invalid. */
int cli_parse_run_flag(run_config *cfg, const char *flag, const char *value,
                       icas_err *err);

/* Progress lines on stderr: a live line on a terminal, plain lines every
 * `period` seconds otherwise. */
typedef struct {
    const char *label;
    double start, last_print;
    double step_flops;
    int tty;
    int first_step;
} cli_progress;

void cli_progress_init(cli_progress *p, const char *label, double step_flops,
                       int first_step);
void cli_progress_step(void *user, int step, int steps, float loss);

/* "1h02m", "3m05s", "12s" */
void cli_format_duration(double seconds, char *out, size_t n);

#endif
