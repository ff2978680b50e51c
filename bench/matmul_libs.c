/* matmul_libs: OpenBLAS, libxsmm and oneDNN at the engine's product shapes,
 * one thread, the numbers that chose the kernel library of matmul.c.
 *
 *   cc -O2 -march=native bench/matmul_libs.c -o matmul_libs \
 *      -I/usr/include/oneapi -ldnnl /usr/lib/libxsmm.a \
 *      /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so -fopenmp -lm -ldl -lpthread
 *   OMP_NUM_THREADS=1 ./matmul_libs
 *
 * Shapes are row-major C[M,N] = op(A)[M,K] op(B)[K,N], as the engine issues
 * them: the linear layers' forward (NN), input gradient (NT: B = W read
 * transposed), weight gradient (TN), and attention (q k^T, NT). libxsmm is
 * column-major: a row-major NN product is its NN with the operands swapped,
 * TN is its NT (supported), NT is its TN, which libxsmm 1.17 refuses: that
 * row is timed with an explicit transpose of the operand included. Every
 * result is checked against a double-precision product (max error over max
 * value). GFLOP/s: median of 201 calls after 20 untimed. */
#include <cblas.h>
#include <libxsmm.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { REPS = 201 };

typedef struct {
    const char *what;
    int ta, tb, M, N, K;
} shape;

static const shape shapes[] = {
    {"c_attn fwd", 0, 0, 240, 288, 96},  {"c_fc fwd", 0, 0, 240, 384, 96},
    {"mlp proj fwd", 0, 0, 240, 96, 384}, {"attn proj fwd", 0, 0, 240, 96, 96},
    {"c_attn dinp", 0, 1, 240, 96, 288}, {"c_attn dW", 1, 0, 96, 288, 240},
    {"att q k^T", 0, 1, 60, 60, 32},      {"att a v", 0, 0, 60, 32, 60},
};

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A[M,K] stored [K,M] when ta; B[K,N] stored [N,K] when tb; row-major, dense */
static double check(const shape *s, const float *A, const float *B, const float *C)
{
    double maxerr = 0, maxv = 0;
    for (int i = 0; i < s->M; i++)
        for (int j = 0; j < s->N; j++) {
            double acc = 0;
            for (int k = 0; k < s->K; k++) {
                double a = s->ta ? A[k * s->M + i] : A[i * s->K + k];
                double b = s->tb ? B[j * s->K + k] : B[k * s->N + j];
                acc += a * b;
            }
            maxerr = fmax(maxerr, fabs(acc - C[i * s->N + j]));
            maxv = fmax(maxv, fabs(acc));
        }
    return maxerr / maxv;
}

typedef void (*run_fn)(void *state);

static double time_it(run_fn f, void *st, const shape *s)
{
    double t[REPS];
    for (int r = 0; r < 20; r++)
        f(st);
    for (int r = 0; r < REPS; r++) {
        double t0 = omp_get_wtime();
        f(st);
        t[r] = omp_get_wtime() - t0;
    }
    qsort(t, REPS, sizeof *t, cmpd);
    return 2.0 * s->M * s->N * s->K / t[REPS / 2] * 1e-9;
}

typedef struct {
    const shape *s;
    float *A, *B, *C, *tmp;
    libxsmm_smmfunction k;
    libxsmm_bsmmfunction bk;
    libxsmm_bfloat16 *Ab, *Bb, *Bv;
    dnnl_primitive_t prim;
    dnnl_stream_t stream;
    dnnl_memory_t ma, mb, mc;
} state;

static void run_blas(void *p)
{
    state *st = p;
    const shape *s = st->s;
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, 1.0f, st->A,
                s->ta ? s->M : s->K, st->B, s->tb ? s->K : s->N, 0.0f, st->C, s->N);
}

static void run_xsmm(void *p)
{
    state *st = p;
    const shape *s = st->s;
    const float *B = st->B;
    if (s->tb) { /* NT row-major: transpose B[N,K] to [K,N] first */
        for (int j = 0; j < s->N; j++)
            for (int k = 0; k < s->K; k++)
                st->tmp[k * s->N + j] = st->B[j * s->K + k];
        B = st->tmp;
    }
    st->k(B, st->A, st->C);
}

/* bf16 inputs: row-major NN C = A B is libxsmm's C^T = B^T A^T with its
 * "A" = B^T in VNNI pairs along k; packing B is timed when pack is set */
static void vnni_pack(const shape *s, const libxsmm_bfloat16 *B, libxsmm_bfloat16 *Bv)
{
    /* B [K,N] row-major = col-major [N,K]; VNNI: [K/2][N][2] */
    for (int k = 0; k < s->K; k += 2)
        for (int j = 0; j < s->N; j++) {
            Bv[(k / 2) * s->N * 2 + j * 2] = B[k * s->N + j];
            Bv[(k / 2) * s->N * 2 + j * 2 + 1] = B[(k + 1) * s->N + j];
        }
}

static void run_xsmm_bf16_pack(void *p)
{
    state *st = p;
    vnni_pack(st->s, st->Bb, st->Bv);
    st->bk(st->Bv, st->Ab, st->C);
}

static void run_xsmm_bf16(void *p)
{
    state *st = p;
    st->bk(st->Bv, st->Ab, st->C);
}

static void run_dnnl(void *p)
{
    state *st = p;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, st->ma}, {DNNL_ARG_WEIGHTS, st->mb},
                               {DNNL_ARG_DST, st->mc}};
    dnnl_primitive_execute(st->prim, st->stream, 3, args);
    dnnl_stream_wait(st->stream);
}

static int dnnl_setup(state *st, dnnl_engine_t eng, dnnl_data_type_t dt, void *A, void *B)
{
    const shape *s = st->s;
    dnnl_memory_desc_t ma, mb, mc;
    dnnl_dims_t da = {s->M, s->K}, db = {s->K, s->N}, dc = {s->M, s->N};
    dnnl_dims_t sa = {s->ta ? 1 : s->K, s->ta ? s->M : 1};
    dnnl_dims_t sb = {s->tb ? 1 : s->N, s->tb ? s->K : 1}, sc = {s->N, 1};
    dnnl_memory_desc_init_by_strides(&ma, 2, da, dt, sa);
    dnnl_memory_desc_init_by_strides(&mb, 2, db, dt, sb);
    dnnl_memory_desc_init_by_strides(&mc, 2, dc, dnnl_f32, sc);
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    dnnl_matmul_desc_init(&md, &ma, &mb, NULL, &mc);
    if (dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) != dnnl_success)
        return -1;
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    printf(" [%s]", impl);
    dnnl_primitive_create(&st->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_create(&st->ma, &ma, eng, A);
    dnnl_memory_create(&st->mb, &mb, eng, B);
    dnnl_memory_create(&st->mc, &mc, eng, st->C);
    return 0;
}

static libxsmm_bfloat16 to_bf16(float x)
{
    unsigned u;
    memcpy(&u, &x, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (libxsmm_bfloat16)(u >> 16);
}

static float from_bf16(libxsmm_bfloat16 b)
{
    unsigned u = (unsigned)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

int main(void)
{
    libxsmm_init();
    dnnl_engine_t eng;
    dnnl_engine_create(&eng, dnnl_cpu, 0);
    dnnl_stream_t stream;
    dnnl_stream_create(&stream, eng, dnnl_stream_default_flags);
    printf("libxsmm target %s, oneDNN ISA 0x%x, OpenBLAS %s, %d thread(s)\n",
           libxsmm_get_target_arch(), (unsigned)dnnl_get_effective_cpu_isa(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(own choice)",
           omp_get_max_threads());
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const shape *s = &shapes[i];
        state st = {.s = s, .stream = stream};
        size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
        st.A = malloc(4 * na);
        st.B = malloc(4 * nb);
        st.C = malloc(4 * nc);
        st.tmp = malloc(4 * nb);
        st.Ab = malloc(2 * na);
        st.Bb = malloc(2 * nb);
        st.Bv = malloc(2 * nb);
        float *Ar = malloc(4 * na), *Br = malloc(4 * nb);
        for (size_t j = 0; j < na; j++)
            st.A[j] = (float)((j * 2654435761u) % 1000) * 1e-3f - 0.5f;
        for (size_t j = 0; j < nb; j++)
            st.B[j] = (float)((j * 40503u) % 1000) * 1e-3f - 0.5f;
        for (size_t j = 0; j < na; j++)
            Ar[j] = from_bf16(st.Ab[j] = to_bf16(st.A[j]));
        for (size_t j = 0; j < nb; j++)
            Br[j] = from_bf16(st.Bb[j] = to_bf16(st.B[j]));
        printf("%-14s %c%c M=%d N=%d K=%d\n", s->what, s->ta ? 'T' : 'N', s->tb ? 'T' : 'N',
               s->M, s->N, s->K);
        double g = time_it(run_blas, &st, s);
        printf("  OpenBLAS fp32  %6.1f GFLOP/s err %.1e\n", g, check(s, st.A, st.B, st.C));
        /* libxsmm fp32 */
        float alpha = 1, beta = 0;
        int flags = s->ta ? LIBXSMM_GEMM_FLAG_TRANS_B : 0;
        libxsmm_blasint lda = s->N, ldb = s->ta ? s->M : s->K, ldc = s->N;
        st.k = libxsmm_smmdispatch(s->N, s->M, s->K, &lda, &ldb, &ldc, &alpha, &beta, &flags,
                                   NULL);
        if (st.k) {
            g = time_it(run_xsmm, &st, s);
            printf("  libxsmm fp32   %6.1f GFLOP/s err %.1e%s\n", g,
                   check(s, st.A, st.B, st.C), s->tb ? " (transpose of B timed)" : "");
        } else {
            printf("  libxsmm fp32   refused\n");
        }
        /* libxsmm bf16 (NN only: A in VNNI pairs) */
        if (!s->ta && !s->tb) {
            int bflags = LIBXSMM_GEMM_FLAG_VNNI_A;
            lda = s->N;
            ldb = s->K;
            st.bk = libxsmm_bsmmdispatch(s->N, s->M, s->K, &lda, &ldb, &ldc, &alpha, &beta,
                                         &bflags, NULL);
            if (st.bk) {
                vnni_pack(s, st.Bb, st.Bv);
                g = time_it(run_xsmm_bf16, &st, s);
                double e = check(s, Ar, Br, st.C);
                double g2 = time_it(run_xsmm_bf16_pack, &st, s);
                printf("  libxsmm bf16   %6.1f GFLOP/s prepacked, %6.1f packing B each call, "
                       "err vs rounded %.1e\n", g, g2, e);
            } else {
                printf("  libxsmm bf16   refused\n");
            }
        }
        printf("  oneDNN fp32  ");
        if (dnnl_setup(&st, eng, dnnl_f32, st.A, st.B) == 0) {
            g = time_it(run_dnnl, &st, s);
            printf(" %6.1f GFLOP/s err %.1e\n", g, check(s, st.A, st.B, st.C));
            dnnl_primitive_destroy(st.prim);
        } else {
            printf(" unimplemented\n");
        }
        printf("  oneDNN bf16  ");
        if (dnnl_setup(&st, eng, dnnl_bf16, st.Ab, st.Bb) == 0) {
            g = time_it(run_dnnl, &st, s);
            printf(" %6.1f GFLOP/s err vs rounded %.1e\n", g, check(s, Ar, Br, st.C));
            dnnl_primitive_destroy(st.prim);
        } else {
            printf(" unimplemented on this CPU\n");
        }
    }
    return 0;
}
