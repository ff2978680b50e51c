/* Minimal test harness: CHECK records a failure with file:line and goes on;
 * REQUIRE records it and ends the program, for a step the rest of the test
 * builds on (a failed create leaves nothing to test, and going on would read
 * an uninitialised object); test_finish() prints the tally and returns the
 * exit status. */
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

#define REQUIRE(cond, ...)                                                  \
    do {                                                                    \
        test_checks++;                                                      \
        if (!(cond)) {                                                      \
            test_failures++;                                                \
            fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
            test_stop();                                                    \
        }                                                                   \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
int test_close(double a, double b, double atol, double rtol);
int test_finish(const char *name);
/* Prints the tally and exits with status 1 (after a failed REQUIRE). */
_Noreturn void test_stop(void);

#endif
