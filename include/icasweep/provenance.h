/* The software stack a result was computed with: the BLAS, MPI and HDF5
 * libraries and the matrix-product kernels as each reports itself at run time, the compiler and the flags
 * that set the code generated. `icasweep --version` prints it after the
 * program's version and revision; every result file stores it as root
 * attributes of the same names, beside program_version and git_revision. */
#ifndef ICASWEEP_PROVENANCE_H
#define ICASWEEP_PROVENANCE_H

#include <stdio.h>

enum { PROVENANCE_ITEMS = 7, PROVENANCE_VALUE_LEN = 1024 };

typedef struct {
    const char *name; /* the root attribute's name: "blas", "mpi_library", ... */
    char value[PROVENANCE_VALUE_LEN];
} provenance_item;

/* Fills items with blas, blas_kernel, blas_config, matmul_kernel (the
 * library and instruction set of the model's products, matmul.h),
 * mpi_library, hdf5_library and compiler_flags, in that order.
 * Needs no MPI_Init (MPI_Get_library_version may be called before it). */
void provenance_collect(provenance_item items[PROVENANCE_ITEMS]);

/* "icasweep VERSION (REVISION)", then one "name: value" line per item. */
void provenance_print(FILE *f);

#endif
