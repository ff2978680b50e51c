/* The matrix-product kernels against the naive reference: every backend
 * (oneDNN when built in, OpenBLAS), FP32 and bf16 inputs, at the model's
 * shapes (linear layers forward and backward, attention with strided and
 * transposed operands), alpha, beta 0 and 1. Also: bf16 rounding (nearest
 * even, NaN kept, exact back), bf16 products really see rounded inputs, and
 * a product gives the same bits on any thread of a team as on one thread. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/matmul.h"
#include "icasweep/rng.h"
#include "testutil.h"

typedef struct {
    const char *what;
    matmul_shape s;
} named_shape;

/* row-major C[M,N] = alpha op(A) op(B) + beta C with the model's layouts:
 * T = 15 tokens, 4 contexts a block (60 rows), E = 24, 3 heads of 8, plus
 * the paper's own 240 x 96 x 288 */
static const named_shape shapes[] = {
    {"linear forward", {0, 0, 60, 72, 24, 24, 72, 72, 1, 1}},
    {"linear forward 4E->E", {0, 0, 60, 24, 96, 96, 24, 24, 1, 1}},
    {"linear forward, partial block", {0, 0, 17, 96, 24, 24, 96, 96, 1, 1}},
    {"linear dinp (B^T)", {0, 1, 60, 24, 72, 72, 72, 24, 1, 0}},
    {"linear dW (A^T)", {1, 0, 24, 72, 60, 24, 72, 72, 1, 0}},
    {"attention scores q k^T, strided", {0, 1, 5, 15, 8, 3 * 72, 72, 15, 0.35f, 0}},
    {"attention a v", {0, 0, 15, 8, 15, 15, 72, 24, 1, 0}},
    {"attention dv = a^T do", {1, 0, 15, 8, 5, 15, 24, 72, 1, 0}},
    {"attention dk = dz^T q", {1, 0, 15, 8, 5, 15, 3 * 72, 72, 0.35f, 0}},
    {"read-in, K = d = 3", {0, 0, 60, 24, 3, 3, 24, 24, 1, 1}},
    {"paper c_attn forward", {0, 0, 240, 288, 96, 96, 288, 288, 1, 1}},
    {"paper c_attn dW", {1, 0, 96, 288, 240, 96, 288, 288, 1, 0}},
};
enum { N_SHAPES = sizeof shapes / sizeof shapes[0] };

/* elements a stored operand spans */
static size_t span(int trans, int rows_op, int cols_op, int ld)
{
    int rows = trans ? cols_op : rows_op;
    return (size_t)(rows - 1) * ld + (size_t)(trans ? rows_op : cols_op);
}

typedef struct {
    float *A, *B, *C0;
    bf16 *Ab, *Bb;
    size_t na, nb, nc;
} operands;

static void make_operands(const matmul_shape *s, uint64_t seed, operands *o)
{
    o->na = span(s->ta, s->M, s->K, s->lda);
    o->nb = span(s->tb, s->K, s->N, s->ldb);
    o->nc = (size_t)(s->M - 1) * s->ldc + s->N;
    o->A = malloc(sizeof(float) * o->na);
    o->B = malloc(sizeof(float) * o->nb);
    o->C0 = malloc(sizeof(float) * o->nc);
    o->Ab = malloc(sizeof(bf16) * o->na);
    o->Bb = malloc(sizeof(bf16) * o->nb);
    rng_state r;
    rng_init(&r, seed, 3);
    for (size_t i = 0; i < o->na; i++)
        o->A[i] = rng_normal(&r);
    for (size_t i = 0; i < o->nb; i++)
        o->B[i] = rng_normal(&r);
    for (size_t i = 0; i < o->nc; i++)
        o->C0[i] = rng_normal(&r);
    bf16_from_f32(o->Ab, o->A, o->na);
    bf16_from_f32(o->Bb, o->B, o->nb);
}

static void free_operands(operands *o)
{
    free(o->A);
    free(o->B);
    free(o->C0);
    free(o->Ab);
    free(o->Bb);
}

/* max |x - y| over max |y| at C's elements (the rest of the rows untouched) */
static double rel_err(const matmul_shape *s, const float *x, const float *y)
{
    double e = 0, m = 0;
    for (int i = 0; i < s->M; i++)
        for (int j = 0; j < s->N; j++) {
            size_t k = (size_t)i * s->ldc + j;
            e = fmax(e, fabs((double)x[k] - y[k]));
            m = fmax(m, fabs((double)y[k]));
        }
    return m > 0 ? e / m : e;
}

static void check_backend(matmul_backend backend)
{
    icas_err err;
    matmul_ctx *ctx;
    CHECK(matmul_create(&ctx, backend, 240 * 288, &err) == 0, "%s", err.msg);
    printf("kernels: %s (bf16 %s)\n", matmul_kernel_name(ctx),
           matmul_bf16_native(ctx) ? "native" : "widened to FP32");
    for (int i = 0; i < N_SHAPES; i++) {
        const matmul_shape *s = &shapes[i].s;
        operands o;
        make_operands(s, (uint64_t)i, &o);
        float *ref = malloc(sizeof(float) * o.nc), *got = malloc(sizeof(float) * o.nc);
        float *ref16 = malloc(sizeof(float) * o.nc), *got16 = malloc(sizeof(float) * o.nc);
        memcpy(ref, o.C0, sizeof(float) * o.nc);
        memcpy(got, o.C0, sizeof(float) * o.nc);
        memcpy(ref16, o.C0, sizeof(float) * o.nc);
        memcpy(got16, o.C0, sizeof(float) * o.nc);
        matmul_ref_f32(s, o.A, o.B, ref);
        matmul_f32(ctx, s, o.A, o.B, got);
        matmul_ref_bf16(s, o.Ab, o.Bb, ref16);
        matmul_bf16(ctx, s, o.Ab, o.Bb, got16);
        /* FP32 sums of K products: a few ulps times sqrt(K) */
        double e32 = rel_err(s, got, ref), e16 = rel_err(s, got16, ref16);
        double rounding = rel_err(s, ref16, ref);
        CHECK(e32 < 1e-5, "%s, %s: FP32 error %.2e", matmul_kernel_name(ctx), shapes[i].what, e32);
        CHECK(e16 < 1e-5, "%s, %s: bf16 error %.2e against the reference of the rounded inputs",
              matmul_kernel_name(ctx), shapes[i].what, e16);
        /* the inputs were really rounded: 8-bit mantissas, ~1e-3 apart */
        CHECK(rounding > 1e-4 && rounding < 2e-2, "%s: bf16 and FP32 references %.2e apart",
              shapes[i].what, rounding);
        /* the elements between rows (ldc > N) are left alone */
        int untouched = 1;
        for (int r = 0; r + 1 < s->M; r++)
            for (int j = s->N; j < s->ldc; j++) {
                size_t k = (size_t)r * s->ldc + j;
                untouched &= got[k] == o.C0[k] && got16[k] == o.C0[k];
            }
        CHECK(untouched, "%s, %s: wrote outside C", matmul_kernel_name(ctx), shapes[i].what);
        printf("  %-34s M=%3d N=%3d K=%3d %c%c: FP32 %.1e, bf16 %.1e (rounding %.1e)\n",
               shapes[i].what, s->M, s->N, s->K, s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', e32,
               e16, rounding);
        free(ref);
        free(got);
        free(ref16);
        free(got16);
        free_operands(&o);
    }
    matmul_free(ctx);
}

/* Each thread of a team of 2 computes every shape; the bits equal those
 * of one thread computing it alone. */
static void check_threads(void)
{
    icas_err err;
    matmul_ctx *one, *two;
    omp_set_num_threads(1);
    CHECK(matmul_create(&one, MATMUL_AUTO, 240 * 288, &err) == 0, "%s", err.msg);
    omp_set_num_threads(2);
    CHECK(matmul_create(&two, MATMUL_AUTO, 240 * 288, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N_SHAPES; i++) {
        const matmul_shape *s = &shapes[i].s;
        operands o;
        make_operands(s, 100 + (uint64_t)i, &o);
        float *c[3];
        for (int k = 0; k < 3; k++) {
            c[k] = malloc(sizeof(float) * o.nc);
            memcpy(c[k], o.C0, sizeof(float) * o.nc);
        }
        for (int bf = 0; bf < 2; bf++) {
            for (int k = 0; k < 3; k++)
                memcpy(c[k], o.C0, sizeof(float) * o.nc);
            omp_set_num_threads(1);
            if (bf)
                matmul_bf16(one, s, o.Ab, o.Bb, c[0]);
            else
                matmul_f32(one, s, o.A, o.B, c[0]);
            omp_set_num_threads(2);
#pragma omp parallel num_threads(2)
            {
                int t = omp_get_thread_num();
                if (bf)
                    matmul_bf16(two, s, o.Ab, o.Bb, c[1 + t]);
                else
                    matmul_f32(two, s, o.A, o.B, c[1 + t]);
            }
            CHECK(memcmp(c[0], c[1], sizeof(float) * o.nc) == 0 &&
                      memcmp(c[0], c[2], sizeof(float) * o.nc) == 0,
                  "%s %s: threads of a team of 2 differ from 1 thread", shapes[i].what,
                  bf ? "bf16" : "FP32");
        }
        for (int k = 0; k < 3; k++)
            free(c[k]);
        free_operands(&o);
    }
    matmul_free(one);
    matmul_free(two);
}

static float f32_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static void check_rounding(void)
{
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1;
     * 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to the even
     * 1 + 2^-6; just above halfway rounds up */
    const float in[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f,
                        -2.5f, 0.0f, -0.0f, INFINITY, f32_bits(0x7f7fffffu)};
    const float want[] = {1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f, -2.5f, 0.0f, -0.0f,
                          INFINITY, INFINITY};
    enum { N = sizeof in / sizeof in[0] };
    bf16 b[N];
    float back[N];
    bf16_from_f32(b, in, N);
    f32_from_bf16(back, b, N);
    for (int i = 0; i < N; i++)
        CHECK(memcmp(&back[i], &want[i], sizeof(float)) == 0, "bf16(%a) = %a, want %a",
              (double)in[i], (double)back[i], (double)want[i]);
    float nan_in = NAN, nan_out;
    bf16 nb;
    bf16_from_f32(&nb, &nan_in, 1);
    f32_from_bf16(&nan_out, &nb, 1);
    CHECK(isnan(nan_out), "bf16(NaN) came back as %g", (double)nan_out);
    /* a NaN whose payload sits in the low 16 bits only stays a NaN */
    nan_in = f32_bits(0x7f800001u);
    bf16_from_f32(&nb, &nan_in, 1);
    f32_from_bf16(&nan_out, &nb, 1);
    CHECK(isnan(nan_out), "bf16 of a low-payload NaN came back as %g", (double)nan_out);
}

int main(void)
{
    check_rounding();
    check_backend(MATMUL_AUTO);
    check_backend(MATMUL_OPENBLAS);
    check_threads();
    return test_finish("test_matmul");
}
