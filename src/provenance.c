#include "icasweep/provenance.h"

#include <hdf5.h>
#include <mpi.h>
#include <string.h>

#include "icasweep/blasthreads.h"
#include "icasweep/matmul.h"

#ifndef ICAS_VERSION
#define ICAS_VERSION "unknown"
#endif
#ifndef ICAS_GIT_REVISION
#define ICAS_GIT_REVISION "unknown"
#endif
#ifndef ICAS_COMPILE_FLAGS
#define ICAS_COMPILE_FLAGS "unknown"
#endif

#if defined(__clang__)
#define COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define COMPILER "GCC " __VERSION__
#else
#define COMPILER "unknown compiler"
#endif

/* MPI_Get_library_version on one line: its first line, then each further
 * line of at most 100 characters, joined by "; ", tabs as spaces (MPICH's
 * longer lines are its configure and compiler command lines). */
static void mpi_library(char *out, size_t n)
{
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    out[0] = '\0';
    if (MPI_Get_library_version(text, &len) != MPI_SUCCESS) {
        snprintf(out, n, "unknown (MPI_Get_library_version failed)");
        return;
    }
    text[len < (int)sizeof text ? len : (int)sizeof text - 1] = '\0';
    size_t used = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t l = strlen(line);
        while (l > 0 && (line[l - 1] == ' ' || line[l - 1] == '\r'))
            line[--l] = '\0';
        if (l == 0 || (used > 0 && l > 100))
            continue;
        for (char *c = line; *c; c++)
            if (*c == '\t')
                *c = ' ';
        int w = snprintf(out + used, n - used, "%s%s", used ? "; " : "", line);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
}

static void hdf5_library(char *out, size_t n)
{
    unsigned major = 0, minor = 0, release = 0;
    H5get_libversion(&major, &minor, &release);
#ifdef H5_HAVE_PARALLEL
    const char *kind = "parallel";
#else
    const char *kind = "serial";
#endif
    snprintf(out, n, "HDF5 %u.%u.%u (%s build; built against %d.%d.%d)", major, minor, release,
             kind, H5_VERS_MAJOR, H5_VERS_MINOR, H5_VERS_RELEASE);
}

void provenance_collect(provenance_item items[PROVENANCE_ITEMS])
{
    static const char *const names[PROVENANCE_ITEMS] = {
        "blas",        "blas_kernel",  "blas_config",   "matmul_kernel",
        "mpi_library", "hdf5_library", "compiler_flags"};
    for (int i = 0; i < PROVENANCE_ITEMS; i++)
        items[i].name = names[i];
    blas_info b;
    blas_describe(&b);
    snprintf(items[0].value, PROVENANCE_VALUE_LEN, "%s", b.name);
    snprintf(items[1].value, PROVENANCE_VALUE_LEN, "%s", b.kernel);
    snprintf(items[2].value, PROVENANCE_VALUE_LEN, "%s", b.config);
    matmul_backend_kernel_name(MATMUL_AUTO, items[3].value, PROVENANCE_VALUE_LEN);
    mpi_library(items[4].value, PROVENANCE_VALUE_LEN);
    hdf5_library(items[5].value, PROVENANCE_VALUE_LEN);
    snprintf(items[6].value, PROVENANCE_VALUE_LEN, "%s; %s", COMPILER, ICAS_COMPILE_FLAGS);
}

void provenance_print(FILE *f)
{
    provenance_item items[PROVENANCE_ITEMS];
    provenance_collect(items);
    fprintf(f, "icasweep %s (%s)\n", ICAS_VERSION, ICAS_GIT_REVISION);
    for (int i = 0; i < PROVENANCE_ITEMS; i++)
        fprintf(f, "%s: %s\n", items[i].name, items[i].value);
}
