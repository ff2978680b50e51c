/* Minimal test harness: CHECK records a failure with file:line and goes on;
 * test_finish() prints the tally and returns the exit status. */
#ifndef ICAS_TESTUTIL_H
#define ICAS_TESTUTIL_H

#include <stdio.h>

extern int test_failures;
extern int test_checks;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        test_checks++;                                                      \
        if (!(cond)) {                                                      \
            test_failures++;                                                \
            fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
int test_close(double a, double b, double atol, double rtol);
int test_finish(const char *name);

#endif
