/* The linked BLAS library: which one it is, as it reports itself, and
 * keeping it single-threaded. The engine calls BLAS from inside its own
 * OpenMP loops (one matrix product per block of contexts), so a BLAS that
 * starts threads of its own there oversubscribes the cores: the pthread
 * OpenBLAS ran 2.7x slower on 2 cores. Each vendor has its own control;
 * this module knows OpenBLAS's, BLIS's, MKL's and FlexiBLAS's, found at
 * run time through weak symbols, so the program links with any BLAS. */
#ifndef ICASWEEP_BLASTHREADS_H
#define ICASWEEP_BLASTHREADS_H

#include <stddef.h>

typedef enum {
    BLAS_UNKNOWN, /* a BLAS without a control this module knows (netlib's is serial) */
    BLAS_OPENBLAS,
    BLAS_BLIS,
    BLAS_MKL,
    BLAS_FLEXIBLAS
} blas_vendor;

typedef struct {
    blas_vendor vendor;
    char name[128];   /* vendor and version: "OpenBLAS 0.3.21", "BLIS 0.9.0" */
    char kernel[64];  /* the code path chosen for this CPU: "Haswell", "zen3"; FlexiBLAS: its backend */
    char config[512]; /* what else the library reports: threading, build options; its file */
} blas_info;

/* What the linked BLAS says about itself on this process's CPU. The kernel
 * can differ between nodes of one cluster (it is chosen at run time), so
 * ranks compare it before a sweep. */
void blas_describe(blas_info *out);

/* "NAME, kernel KERNEL": the part of blas_describe that sets a run's
 * numbers, for comparing ranks. Two processes with different kernels order
 * float additions differently, so their runs differ in the last bits and,
 * after training, by more. */
void blas_identity(char *out, size_t n);

/* Makes every BLAS call run on the calling thread alone (OpenBLAS's OpenMP
 * build does so inside parallel regions by itself and is left alone: its
 * thread setter would set OpenMP's own thread count). Leaves OpenMP's
 * thread count as it was. Returns 0 when the library is single-threaded
 * now, -1 when it is not one this module knows, with `why` saying so and
 * how to make it serial. */
int blas_threads_single(char *why, size_t n);

#endif
