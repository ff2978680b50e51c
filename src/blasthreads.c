#define _GNU_SOURCE /* dladdr, RTLD_DEFAULT */
#include "icasweep/blasthreads.h"

#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

/* Each vendor's own calls, weak: the one linked resolves its names, the
 * others stay NULL. Prototypes as the vendors' headers give them; BLIS's
 * integers are its gint_t (64 bits in Debian's and the default build), and
 * a 32-bit build reads the same registers' low halves. */
extern char *openblas_get_config(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));
extern int openblas_get_parallel(void) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));
extern void openblas_set_num_threads(int) __attribute__((weak));

extern void bli_init(void) __attribute__((weak));
extern const char *bli_info_get_version_str(void) __attribute__((weak));
extern int bli_arch_query_id(void) __attribute__((weak));
extern const char *bli_arch_string(int) __attribute__((weak));
extern long bli_info_get_enable_openmp(void) __attribute__((weak));
extern long bli_info_get_enable_pthreads(void) __attribute__((weak));
extern long bli_thread_get_num_threads(void) __attribute__((weak));
extern void bli_thread_set_num_threads(long) __attribute__((weak));

extern void MKL_Get_Version_String(char *, int) __attribute__((weak));
extern int MKL_Get_Max_Threads(void) __attribute__((weak));
extern void MKL_Set_Num_Threads(int) __attribute__((weak));
extern int MKL_CBWR_Get_Auto_Branch(void) __attribute__((weak));

extern void flexiblas_get_version(int *, int *, int *) __attribute__((weak));
extern int flexiblas_current_backend(char *, size_t) __attribute__((weak));
extern int flexiblas_get_num_threads(void) __attribute__((weak));
extern void flexiblas_set_num_threads(int) __attribute__((weak));

/* FlexiBLAS first: it forwards to a backend it loads itself, whose names
 * are not visible here. */
static blas_vendor linked_vendor(void)
{
    if (flexiblas_current_backend && flexiblas_set_num_threads)
        return BLAS_FLEXIBLAS;
    if (MKL_Get_Version_String && MKL_Set_Num_Threads)
        return BLAS_MKL;
    if (bli_info_get_version_str && bli_thread_set_num_threads)
        return BLAS_BLIS;
    if (openblas_get_config && openblas_set_num_threads)
        return BLAS_OPENBLAS;
    return BLAS_UNKNOWN;
}

/* MKL's code branches, numbered as mkl_service.h numbers MKL_CBWR_* */
static const char *mkl_branch_name(int b)
{
    static const char *const names[] = {
        [4] = "SSE2",        [6] = "SSSE3",   [7] = "SSE4_1",       [8] = "SSE4_2",
        [9] = "AVX",         [10] = "AVX2",   [11] = "AVX512_MIC",  [12] = "AVX512",
        [13] = "AVX512_MIC_E1", [14] = "AVX512_E1", [15] = "AVX512_E2", [16] = "AVX512_E3",
        [17] = "AVX512_E4",  [18] = "AVX2_E1", [19] = "AVX512_E5",
    };
    if (b >= 0 && b < (int)(sizeof names / sizeof *names) && names[b])
        return names[b];
    return "unknown branch";
}

static void describe_openblas(blas_info *b)
{
    /* "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64" */
    const char *cfg = openblas_get_config();
    char version[32] = "";
    sscanf(cfg ? cfg : "", "OpenBLAS %31s", version);
    snprintf(b->name, sizeof b->name, "OpenBLAS %s", version[0] ? version : "(version unknown)");
    snprintf(b->kernel, sizeof b->kernel, "%s",
             openblas_get_corename ? openblas_get_corename() : "unknown");
    int par = openblas_get_parallel ? openblas_get_parallel() : -1;
    snprintf(b->config, sizeof b->config, "%s build, %d thread%s outside OpenMP regions; %s",
             par == 0   ? "sequential"
             : par == 1 ? "pthreads"
             : par == 2 ? "OpenMP"
                        : "unknown threading",
             openblas_get_num_threads ? openblas_get_num_threads() : -1,
             openblas_get_num_threads && openblas_get_num_threads() == 1 ? "" : "s",
             cfg ? cfg : "");
}

static void describe_blis(blas_info *b)
{
    /* bli_arch_query_id aborts when BLIS_ARCH_TYPE is set and BLIS is not
     * initialised yet; bli_init does nothing the second time */
    bli_init();
    snprintf(b->name, sizeof b->name, "BLIS %s", bli_info_get_version_str());
    snprintf(b->kernel, sizeof b->kernel, "%s",
             bli_arch_query_id && bli_arch_string ? bli_arch_string(bli_arch_query_id())
                                                  : "unknown");
    long omp = bli_info_get_enable_openmp ? bli_info_get_enable_openmp() : 0;
    long pth = bli_info_get_enable_pthreads ? bli_info_get_enable_pthreads() : 0;
    /* -1: not set, BLIS then reads BLIS_NUM_THREADS or OMP_NUM_THREADS */
    long threads = bli_thread_get_num_threads ? bli_thread_get_num_threads() : -1L;
    char count[64];
    if (threads < 1)
        snprintf(count, sizeof count, "thread count from BLIS_NUM_THREADS or OMP_NUM_THREADS");
    else
        snprintf(count, sizeof count, "%ld thread%s", threads, threads == 1 ? "" : "s");
    snprintf(b->config, sizeof b->config, "%s build, %s",
             omp   ? "OpenMP"
             : pth ? "pthreads"
                   : "sequential",
             count);
}

static void describe_mkl(blas_info *b)
{
    char v[256] = "";
    MKL_Get_Version_String(v, (int)sizeof v);
    snprintf(b->name, sizeof b->name, "MKL %s", v);
    snprintf(b->kernel, sizeof b->kernel, "%s",
             MKL_CBWR_Get_Auto_Branch ? mkl_branch_name(MKL_CBWR_Get_Auto_Branch()) : "unknown");
    snprintf(b->config, sizeof b->config, "%d thread%s",
             MKL_Get_Max_Threads ? MKL_Get_Max_Threads() : -1,
             MKL_Get_Max_Threads && MKL_Get_Max_Threads() == 1 ? "" : "s");
}

static void describe_flexiblas(blas_info *b)
{
    int major = 0, minor = 0, patch = 0;
    if (flexiblas_get_version)
        flexiblas_get_version(&major, &minor, &patch);
    snprintf(b->name, sizeof b->name, "FlexiBLAS %d.%d.%d", major, minor, patch);
    char backend[sizeof b->kernel] = "";
    flexiblas_current_backend(backend, sizeof backend);
    snprintf(b->kernel, sizeof b->kernel, "backend %s", backend[0] ? backend : "unknown");
    snprintf(b->config, sizeof b->config, "%d thread%s",
             flexiblas_get_num_threads ? flexiblas_get_num_threads() : -1,
             flexiblas_get_num_threads && flexiblas_get_num_threads() == 1 ? "" : "s");
}

/* The file cblas_sgemm was loaded from: which library the dynamic linker
 * chose (a RUNPATH, LD_LIBRARY_PATH or Debian's alternatives decide it). */
static void blas_library_file(char *out, size_t n)
{
    Dl_info where;
    void *sgemm = dlsym(RTLD_DEFAULT, "cblas_sgemm");
    if (sgemm && dladdr(sgemm, &where) && where.dli_fname && where.dli_fname[0])
        snprintf(out, n, "%s", where.dli_fname);
    else
        snprintf(out, n, "unknown");
}

void blas_describe(blas_info *out)
{
    memset(out, 0, sizeof *out);
    out->vendor = linked_vendor();
    switch (out->vendor) {
    case BLAS_OPENBLAS:
        describe_openblas(out);
        break;
    case BLAS_BLIS:
        describe_blis(out);
        break;
    case BLAS_MKL:
        describe_mkl(out);
        break;
    case BLAS_FLEXIBLAS:
        describe_flexiblas(out);
        break;
    case BLAS_UNKNOWN:
        snprintf(out->name, sizeof out->name, "unknown (not OpenBLAS, BLIS, MKL or FlexiBLAS)");
        snprintf(out->kernel, sizeof out->kernel, "unknown");
        break;
    }
    char file[256];
    blas_library_file(file, sizeof file);
    size_t used = strlen(out->config);
    snprintf(out->config + used, sizeof out->config - used, "%scblas_sgemm from %s",
             used ? "; " : "", file);
}

void blas_identity(char *out, size_t n)
{
    blas_info b;
    blas_describe(&b);
    snprintf(out, n, "%s, kernel %s", b.name, b.kernel);
}

int blas_threads_single(char *why, size_t n)
{
    /* OpenBLAS's OpenMP build and FlexiBLAS over it set OpenMP's thread
     * count in their thread setter: put ours back */
    int omp_threads = omp_get_max_threads();
    int rc = 0;
    switch (linked_vendor()) {
    case BLAS_OPENBLAS:
        /* the OpenMP build (2) runs serially inside a parallel region by
         * itself; a sequential build (0) has no threads */
        if (!openblas_get_parallel || openblas_get_parallel() != 2)
            openblas_set_num_threads(1);
        break;
    case BLAS_BLIS:
        bli_thread_set_num_threads(1);
        break;
    case BLAS_MKL:
        MKL_Set_Num_Threads(1);
        break;
    case BLAS_FLEXIBLAS:
        flexiblas_set_num_threads(1);
        break;
    case BLAS_UNKNOWN:
        snprintf(why, n,
                 "the linked BLAS is not OpenBLAS, BLIS, MKL or FlexiBLAS, whose thread "
                 "controls icasweep knows; if it starts threads of its own they oversubscribe "
                 "the %d OpenMP threads (make it serial with its own setting, or set "
                 "OMP_NUM_THREADS=1)",
                 omp_threads);
        rc = -1;
        break;
    }
    omp_set_num_threads(omp_threads);
    return rc;
}
