/* The BLAS adapter against the BLAS this build links: it names the vendor
 * and the kernel the library chose, and making the BLAS single-threaded
 * leaves OpenMP's own thread count alone (OpenBLAS's OpenMP build sets
 * OpenMP's count in openblas_set_num_threads, which would make the whole
 * engine serial). With OpenBLAS, the kernel is the one OPENBLAS_CORETYPE
 * names when it is set. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "icasweep/blasthreads.h"
#include "testutil.h"

int main(void)
{
    /* a product first, as the engine's: it also makes the linker keep the
     * library, whose names the adapter finds through weak references */
    float a[4] = {1, 2, 3, 4}, c[4] = {0};
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2);
    CHECK(c[0] == 7 && c[1] == 10 && c[2] == 15 && c[3] == 22, "sgemm gave %g %g %g %g", c[0],
          c[1], c[2], c[3]);
    blas_info b;
    blas_describe(&b);
    printf("blas: %s; kernel %s; %s\n", b.name, b.kernel, b.config);
    CHECK(b.name[0] && b.kernel[0], "empty description");
    CHECK(strstr(b.config, "cblas_sgemm from /") != NULL, "no library file in: %s", b.config);

    omp_set_num_threads(3);
    char why[512] = "";
    int rc = blas_threads_single(why, sizeof why);
    CHECK(omp_get_max_threads() == 3, "OpenMP threads %d after blas_threads_single, not 3",
          omp_get_max_threads());
    CHECK((rc == 0) == (b.vendor != BLAS_UNKNOWN), "rc %d for vendor %d (%s)", rc, b.vendor, why);

    if (b.vendor == BLAS_OPENBLAS) {
        const char *core = getenv("OPENBLAS_CORETYPE");
        if (core && *core)
            CHECK(strcasecmp(b.kernel, core) == 0, "kernel %s, OPENBLAS_CORETYPE %s", b.kernel,
                  core);
        /* the threads outside OpenMP regions: 1 where the adapter set them */
        blas_describe(&b);
        if (strstr(b.config, "pthreads build"))
            CHECK(strstr(b.config, "1 thread ") || strstr(b.config, "1 thread;"),
                  "pthread OpenBLAS not single-threaded: %s", b.config);
    }
    if (b.vendor == BLAS_BLIS) {
        blas_describe(&b);
        CHECK(strstr(b.config, "1 thread") != NULL, "BLIS not single-threaded: %s", b.config);
    }
    return test_finish("test_blasthreads");
}
