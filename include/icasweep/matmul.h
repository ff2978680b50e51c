/* Matrix products for the model: C = alpha op(A) op(B) + beta C, row-major,
 * FP32 or with bf16 inputs accumulated in FP32, through a kernel library.
 *
 * Backends: oneDNN's matmul (when the build found it: its JIT kernels use
 * the widest vectors the CPU has, AVX-512 and its bf16 dot products
 * included, whatever OPENBLAS_CORETYPE says), or OpenBLAS's sgemm (the
 * fallback, and a build option to use alone). A naive reference of both
 * precisions sits beside them for the tests.
 *
 * Reproducibility: every product runs single-threaded in the calling thread
 * (the model parallelises over products), with a kernel that depends on the
 * shape and the CPU only, so results do not depend on the thread count.
 * Two CPUs with different vector units get different kernels and round
 * differently; matmul_kernel_name says which kernels a process uses. */
#ifndef ICASWEEP_MATMUL_H
#define ICASWEEP_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "icasweep/error.h"

/* A bfloat16: the top 16 bits of an IEEE float. */
typedef uint16_t bf16;

typedef enum {
    MATMUL_AUTO,    /* oneDNN if built with it, else OpenBLAS */
    MATMUL_OPENBLAS /* OpenBLAS (bf16 inputs widened to FP32) */
} matmul_backend;

/* A product's operands: op(A) is [M,K] (A stored [K,M] when ta), op(B) is
 * [K,N] (B stored [N,K] when tb), C [M,N]; lda, ldb, ldc are the row
 * strides of the stored matrices. beta is 0 (C is overwritten, its old
 * contents may be garbage) or 1 (C accumulates). */
typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
} matmul_shape;

/* The kernels and their per-thread state (cached kernels, scratch) for up
 * to omp_get_max_threads() threads at creation. max_operand: the most
 * elements of one bf16 operand (rows x columns stored) the caller will
 * pass: widening them to FP32 when the CPU has no bf16 products needs
 * that much scratch per thread. */
typedef struct matmul_ctx matmul_ctx;

int matmul_create(matmul_ctx **ctx, matmul_backend backend, size_t max_operand,
                  icas_err *err);
void matmul_free(matmul_ctx *ctx);

/* C = alpha op(A) op(B) + beta C in FP32. */
void matmul_f32(matmul_ctx *ctx, const matmul_shape *s, const float *A, const float *B,
                float *C);
/* The same with bf16 A and B: every product of two inputs is exact in
 * FP32, the sums are FP32. */
void matmul_bf16(matmul_ctx *ctx, const matmul_shape *s, const bf16 *A, const bf16 *B,
                 float *C);

/* Naive references: sums in k order, in double, rounded once. */
void matmul_ref_f32(const matmul_shape *s, const float *A, const float *B, float *C);
void matmul_ref_bf16(const matmul_shape *s, const bf16 *A, const bf16 *B, float *C);

/* The kernels a context computes with, e.g. "oneDNN avx512_core_bf16" or
 * "OpenBLAS Haswell", and whether its bf16 products run on the CPU's bf16
 * instructions (1) or are widened to FP32 products (0). */
const char *matmul_kernel_name(const matmul_ctx *ctx);
int matmul_bf16_native(const matmul_ctx *ctx);
/* The kernels a context of this backend would use, without making one. */
void matmul_backend_kernel_name(matmul_backend backend, char *out, size_t n);

/* Round to nearest even (NaN stays NaN), and back (exact). */
void bf16_from_f32(bf16 *dst, const float *src, size_t n);
/* dst [rows, cols] (row stride ld_dst) from src [rows, cols] (ld_src). */
void bf16_from_f32_2d(bf16 *dst, int ld_dst, const float *src, int ld_src, int rows,
                      int cols);
void f32_from_bf16(float *dst, const bf16 *src, size_t n);

#endif
