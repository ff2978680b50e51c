/* Errors as values: a function that can fail takes an `icas_err *` and
 * returns 0 on success, non-zero on failure with a one-line message that
 * names the file, line, flag or rank at fault. */
#ifndef ICASWEEP_ERROR_H
#define ICASWEEP_ERROR_H

#include <stddef.h>

typedef struct {
    char msg[1024];
} icas_err;

/* Formats the message into err (if non-NULL) and returns -1, so that
 * `return icas_fail(err, "...")` reads naturally at the failure site. */
int icas_fail(icas_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message with context ("store: ", "run 3: "). */
int icas_wrap(icas_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
