/* Errors as values: a function that can fail takes an `icas_err *` and
 * returns 0 on success, non-zero on failure with a one-line message that
 * names the file, line, flag or rank at fault. */
#ifndef ICASWEEP_ERROR_H
#define ICASWEEP_ERROR_H

#include <stddef.h>

/* Exit statuses, shared by every command (documented in the README). */
enum {
    EXIT_ALL_DONE = 0,     /* every run finished */
    EXIT_RUN_FAILED = 1,   /* finished, but some run diverged or failed */
    EXIT_USAGE = 2,        /* bad input: nothing was run or written */
    EXIT_INTERRUPTED = 3,  /* stopped by a signal; the same command resumes */
    EXIT_IO = 4,           /* I/O, MPI or internal error */
};

typedef struct {
    char msg[1024];
    /* the errno of a failed system call (ENOSPC, EIO, ...) when the failure
     * was one; 0 for every other failure. Callers tell "the disk is full"
     * (stop, resume later) from "this run cannot be done" by it. */
    int sys_errno;
} icas_err;

/* Formats the message into err (if non-NULL) and returns -1, so that
 * `return icas_fail(err, "...")` reads naturally at the failure site. */
int icas_fail(icas_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The same for a failed system call: records e in err->sys_errno. */
int icas_fail_errno(icas_err *err, int e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with context ("store: ", "run 3: "). */
int icas_wrap(icas_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
