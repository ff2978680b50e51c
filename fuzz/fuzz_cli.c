/* libFuzzer target: `icasweep train`'s argument parser (cli_parse_train).
 * The input is split at NUL bytes into argv. Whatever it holds, the parser
 * returns help, an error with a message, or a configuration that passes
 * config_validate; never a crash or undefined behaviour. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "train";
    for (size_t i = 0; i <= size && argc < MAX_ARGS + 1;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    train_args a;
    icas_err err;
    int rc = cli_parse_train(argc, argv, &a, &err);
    if (rc == 0 && (config_validate(&a.cfg, &err) || !a.output))
        abort();
    if (rc < 0 && err.msg[0] == 0)
        abort();
    free(buf);
    return 0;
}
