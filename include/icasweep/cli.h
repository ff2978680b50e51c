/* The command line: `icasweep train|sweep|plan|status`, flag parsing with
 * messages that name the flag and value, progress lines, exit statuses. */
#ifndef ICASWEEP_CLI_H
#define ICASWEEP_CLI_H

#include "icasweep/config.h"
#include "icasweep/error.h"

int cli_main(int argc, char **argv);

/* Parses one run flag (--layers 2, --attention linear, ...) into cfg.
 * Returns 1 if `flag` is a run flag and was consumed with `value`, 0 if it is
 * not a run flag, -1 (err set) if the value is invalid. */
int cli_parse_run_flag(run_config *cfg, const char *flag, const char *value,
                       icas_err *err);

#endif
