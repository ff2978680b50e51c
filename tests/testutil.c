#include "testutil.h"

#include <math.h>
#include <stdlib.h>

int test_failures = 0;
int test_checks = 0;

int test_close(double a, double b, double atol, double rtol)
{
    return isfinite(a) && fabs(a - b) <= atol + rtol * fabs(b);
}

int test_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    if (test_checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    return test_failures ? 1 : 0;
}

void test_stop(void)
{
    fprintf(stderr, "stopped: the rest depends on the check that failed (%d checks, %d failed)\n",
            test_checks, test_failures);
    exit(1);
}
