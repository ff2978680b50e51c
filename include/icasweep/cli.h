/* The command line: `icasweep train|sweep|plan|status`, flag parsing with
 * messages that name the flag and value, progress lines, exit statuses. */
#ifndef ICASWEEP_CLI_H
#define ICASWEEP_CLI_H

#include "icasweep/config.h"
#include "icasweep/error.h"

int cli_main(int argc, char **argv);

/* The arguments of `icasweep train`, parsed and validated (config_validate)
 * without touching any file. */
typedef struct {
    run_config cfg;
    const char *output, *ckpt; /* point into argv */
    int force, save_model, quiet, every;
} train_args;

/* argv[0] is "train". Returns 0 (a is complete and valid), 1 (--help asked
 * for), -1 (err names the flag and value). */
int cli_parse_train(int argc, char **argv, train_args *a, icas_err *err);

/* Parses one run flag (--layers 2, --attention linear, ...) into cfg.
 * Returns 1 if `flag` is a run flag and was consumed with `value`, 0 if it is
 * not a run flag, -1 (err set) if the value is invalid. */
int cli_parse_run_flag(run_config *cfg, const char *flag, const char *value,
                       icas_err *err);

#endif
