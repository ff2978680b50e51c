#include "icasweep/matmul.h"

#include <assert.h>
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ICAS_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

/* Present in OpenBLAS only; weak so that another BLAS still links. */
extern char *openblas_get_corename(void) __attribute__((weak));

/* ---- bf16 ----------------------------------------------------------- */

static inline bf16 bf16_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    /* a NaN keeps its sign and stays a (quiet) NaN; everything else rounds
     * to nearest, ties to even, in the integer domain */
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (bf16)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16)(u >> 16);
}

static inline float f32_of(bf16 b)
{
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

void bf16_from_f32(bf16 *dst, const float *src, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_of(src[i]);
}

void bf16_from_f32_2d(bf16 *dst, int ld_dst, const float *src, int ld_src, int rows,
                      int cols)
{
    for (int r = 0; r < rows; r++)
        bf16_from_f32(dst + (size_t)r * ld_dst, src + (size_t)r * ld_src, (size_t)cols);
}

void f32_from_bf16(float *dst, const bf16 *src, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        dst[i] = f32_of(src[i]);
}

/* ---- the naive reference -------------------------------------------- */

#define REF_BODY(load)                                                                  \
    for (int i = 0; i < s->M; i++)                                                      \
        for (int j = 0; j < s->N; j++) {                                                \
            double acc = 0;                                                             \
            for (int k = 0; k < s->K; k++) {                                            \
                size_t ia = s->ta ? (size_t)k * s->lda + i : (size_t)i * s->lda + k;    \
                size_t ib = s->tb ? (size_t)j * s->ldb + k : (size_t)k * s->ldb + j;    \
                acc += (double)load(A[ia]) * (double)load(B[ib]);                       \
            }                                                                           \
            float *c = &C[(size_t)i * s->ldc + j];                                      \
            *c = (float)(s->alpha * acc + (s->beta != 0 ? (double)s->beta * *c : 0.0)); \
        }

#define AS_IS(x) (x)
void matmul_ref_f32(const matmul_shape *s, const float *A, const float *B, float *C)
{
    REF_BODY(AS_IS)
}

void matmul_ref_bf16(const matmul_shape *s, const bf16 *A, const bf16 *B, float *C)
{
    REF_BODY(f32_of)
}
#undef AS_IS
#undef REF_BODY

/* ---- the context ---------------------------------------------------- */

/* Kernels cached per thread and shape: the shapes of a model are a few
 * dozen, looked up by a linear scan. */
#define CACHE_ENTRIES 96

typedef struct {
    matmul_shape shape;
    int bf16_inputs;
#ifdef ICAS_HAVE_ONEDNN
    dnnl_primitive_t prim; /* NULL: oneDNN has no kernel; OpenBLAS computes it */
    dnnl_memory_t a, b, c;
#endif
} cache_entry;

typedef struct {
    cache_entry *entries; /* [CACHE_ENTRIES] */
    int n, next_evict;
    float *wide_a, *wide_b; /* [max_operand] each: bf16 operands widened */
#ifdef ICAS_HAVE_ONEDNN
    dnnl_stream_t stream;
#endif
} thread_state;

struct matmul_ctx {
    matmul_backend backend; /* MATMUL_AUTO only when oneDNN is built in */
    int bf16_native;
    int n_threads;
    size_t max_operand;
    char name[48];
    thread_state *t; /* [n_threads] */
#ifdef ICAS_HAVE_ONEDNN
    dnnl_engine_t engine;
#endif
};

#ifdef ICAS_HAVE_ONEDNN
static const char *isa_name(dnnl_cpu_isa_t isa)
{
    /* the values are bit sets, each ISA a superset of the one before */
    static const struct { dnnl_cpu_isa_t isa; const char *name; } names[] = {
        {dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"},
        {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
        {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
        {dnnl_cpu_isa_avx512_core, "avx512_core"},
        {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"},
        {dnnl_cpu_isa_avx2, "avx2"},
        {dnnl_cpu_isa_avx, "avx"},
        {dnnl_cpu_isa_sse41, "sse41"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (((unsigned)isa & (unsigned)names[i].isa) == (unsigned)names[i].isa)
            return names[i].name;
    return "generic";
}

/* bf16 products on bf16 instructions: oneDNN also runs bf16 on plain
 * AVX-512 by emulation, slower than FP32, so that counts as no. */
static int onednn_bf16_native(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) ==
           (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}
#endif

void matmul_backend_kernel_name(matmul_backend backend, char *out, size_t n)
{
#ifdef ICAS_HAVE_ONEDNN
    if (backend == MATMUL_AUTO) {
        snprintf(out, n, "oneDNN %s", isa_name(dnnl_get_effective_cpu_isa()));
        return;
    }
#endif
    (void)backend;
    snprintf(out, n, "OpenBLAS %s", openblas_get_corename ? openblas_get_corename() : "?");
}

int matmul_create(matmul_ctx **out, matmul_backend backend, size_t max_operand,
                  icas_err *err)
{
    matmul_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return icas_fail(err, "matmul: out of memory");
#ifndef ICAS_HAVE_ONEDNN
    backend = MATMUL_OPENBLAS;
#endif
    c->backend = backend;
    c->n_threads = omp_get_max_threads();
    c->max_operand = max_operand;
    matmul_backend_kernel_name(backend, c->name, sizeof c->name);
    c->t = calloc((size_t)c->n_threads, sizeof *c->t);
    if (!c->t)
        goto oom;
#ifdef ICAS_HAVE_ONEDNN
    if (backend == MATMUL_AUTO) {
        if (dnnl_engine_create(&c->engine, dnnl_cpu, 0) != dnnl_success) {
            matmul_free(c);
            return icas_fail(err, "matmul: oneDNN could not make a CPU engine");
        }
        c->bf16_native = onednn_bf16_native();
    }
#endif
    for (int i = 0; i < c->n_threads; i++) {
        thread_state *t = &c->t[i];
        t->entries = calloc(CACHE_ENTRIES, sizeof *t->entries);
        if (!t->entries)
            goto oom;
        /* also with native bf16: a shape oneDNN has no kernel for is widened */
        if (max_operand > 0) {
            t->wide_a = malloc(sizeof(float) * max_operand);
            t->wide_b = malloc(sizeof(float) * max_operand);
            if (!t->wide_a || !t->wide_b)
                goto oom;
        }
#ifdef ICAS_HAVE_ONEDNN
        if (c->engine &&
            dnnl_stream_create(&t->stream, c->engine, dnnl_stream_default_flags) != dnnl_success) {
            matmul_free(c);
            return icas_fail(err, "matmul: oneDNN could not make a stream");
        }
#endif
    }
    *out = c;
    return 0;
oom:
    matmul_free(c);
    return icas_fail(err, "matmul: out of memory for %zu-element scratch", max_operand);
}

#ifdef ICAS_HAVE_ONEDNN
static void entry_release(cache_entry *e)
{
    if (e->prim) {
        dnnl_primitive_destroy(e->prim);
        dnnl_memory_destroy(e->a);
        dnnl_memory_destroy(e->b);
        dnnl_memory_destroy(e->c);
    }
    e->prim = NULL;
}
#endif

void matmul_free(matmul_ctx *c)
{
    if (!c)
        return;
    if (c->t)
        for (int i = 0; i < c->n_threads; i++) {
            thread_state *t = &c->t[i];
#ifdef ICAS_HAVE_ONEDNN
            for (int k = 0; t->entries && k < t->n; k++)
                entry_release(&t->entries[k]);
            if (t->stream)
                dnnl_stream_destroy(t->stream);
#endif
            free(t->entries);
            free(t->wide_a);
            free(t->wide_b);
        }
    free(c->t);
#ifdef ICAS_HAVE_ONEDNN
    if (c->engine)
        dnnl_engine_destroy(c->engine);
#endif
    free(c);
}

const char *matmul_kernel_name(const matmul_ctx *c) { return c->name; }
int matmul_bf16_native(const matmul_ctx *c) { return c->bf16_native; }

/* ---- OpenBLAS -------------------------------------------------------- */

/* Inside the model's parallel loops OpenBLAS's OpenMP build runs
 * single-threaded by itself. */
static void blas_f32(const matmul_shape *s, const float *A, const float *B, float *C)
{
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, s->alpha, A, s->lda, B,
                s->ldb, s->beta, C, s->ldc);
}

/* A stored operand's rows and columns */
static void stored_dims(int trans, int rows_op, int cols_op, int *rows, int *cols)
{
    *rows = trans ? cols_op : rows_op;
    *cols = trans ? rows_op : cols_op;
}

/* bf16 inputs as FP32 products: each product of two bf16 values is exact in
 * FP32, so this computes what a bf16 kernel computes, summed in the FP32
 * kernel's order. */
static void widened_bf16(matmul_ctx *c, thread_state *t, const matmul_shape *s,
                         const bf16 *A, const bf16 *B, float *C)
{
    int ra, ca, rb, cb;
    stored_dims(s->ta, s->M, s->K, &ra, &ca);
    stored_dims(s->tb, s->K, s->N, &rb, &cb);
    assert((size_t)ra * ca <= c->max_operand && (size_t)rb * cb <= c->max_operand);
    for (int r = 0; r < ra; r++)
        f32_from_bf16(t->wide_a + (size_t)r * ca, A + (size_t)r * s->lda, (size_t)ca);
    for (int r = 0; r < rb; r++)
        f32_from_bf16(t->wide_b + (size_t)r * cb, B + (size_t)r * s->ldb, (size_t)cb);
    matmul_shape w = *s;
    w.lda = ca;
    w.ldb = cb;
    matmul_f32(c, &w, t->wide_a, t->wide_b, C);
}

/* ---- oneDNN ---------------------------------------------------------- */

#ifdef ICAS_HAVE_ONEDNN
static int same_shape(const matmul_shape *x, const matmul_shape *y)
{
    return x->ta == y->ta && x->tb == y->tb && x->M == y->M && x->N == y->N &&
           x->K == y->K && x->lda == y->lda && x->ldb == y->ldb && x->ldc == y->ldc &&
           x->alpha == y->alpha && x->beta == y->beta;
}

/* A oneDNN matmul for this shape, its memory objects bound later. Leaves
 * e->prim NULL when oneDNN has no kernel for it (then OpenBLAS computes
 * it, the same way every time). */
static void entry_build(matmul_ctx *c, cache_entry *e, const matmul_shape *s, int bf16_inputs)
{
    dnnl_data_type_t in = bf16_inputs ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t ma, mb, mc;
    dnnl_dims_t da = {s->M, s->K}, db = {s->K, s->N}, dc = {s->M, s->N};
    dnnl_dims_t sa = {s->ta ? 1 : s->lda, s->ta ? s->lda : 1};
    dnnl_dims_t sb = {s->tb ? 1 : s->ldb, s->tb ? s->ldb : 1};
    dnnl_dims_t sc = {s->ldc, 1};
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    e->shape = *s;
    e->bf16_inputs = bf16_inputs;
    e->prim = NULL;
    int ok = dnnl_memory_desc_init_by_strides(&ma, 2, da, in, sa) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&mb, 2, db, in, sb) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&mc, 2, dc, dnnl_f32, sc) == dnnl_success &&
             dnnl_matmul_desc_init(&md, &ma, &mb, NULL, &mc) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && s->alpha != 1.0f)
        ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &s->alpha) == dnnl_success;
    if (ok && s->beta != 0.0f)
        ok = dnnl_post_ops_create(&po) == dnnl_success &&
             dnnl_post_ops_append_sum(po, s->beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &md, attr, c->engine, NULL) == dnnl_success &&
         dnnl_primitive_create(&e->prim, pd) == dnnl_success;
    if (ok) {
        ok = dnnl_memory_create(&e->a, &ma, c->engine, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&e->b, &mb, c->engine, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&e->c, &mc, c->engine, DNNL_MEMORY_NONE) == dnnl_success;
        if (!ok) {
            dnnl_primitive_destroy(e->prim);
            e->prim = NULL;
        }
    }
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
}

static cache_entry *entry_for(matmul_ctx *c, thread_state *t, const matmul_shape *s,
                              int bf16_inputs)
{
    for (int i = 0; i < t->n; i++)
        if (t->entries[i].bf16_inputs == bf16_inputs && same_shape(&t->entries[i].shape, s))
            return &t->entries[i];
    cache_entry *e;
    if (t->n < CACHE_ENTRIES) {
        e = &t->entries[t->n++];
    } else { /* full: replace the oldest entry */
        e = &t->entries[t->next_evict];
        t->next_evict = (t->next_evict + 1) % CACHE_ENTRIES;
        entry_release(e);
    }
    entry_build(c, e, s, bf16_inputs);
    return e;
}

/* One product on the calling thread: with one thread as oneDNN's OpenMP
 * limit, the kernel it builds and runs is the same for any thread count. */
static int onednn_run(matmul_ctx *c, thread_state *t, const matmul_shape *s,
                      const void *A, const void *B, float *C, int bf16_inputs)
{
    const int threads = omp_get_max_threads();
    if (threads != 1)
        omp_set_num_threads(1);
    cache_entry *e = entry_for(c, t, s, bf16_inputs);
    int done = 0;
    if (e->prim) {
        dnnl_memory_set_data_handle(e->a, (void *)A);
        dnnl_memory_set_data_handle(e->b, (void *)B);
        dnnl_memory_set_data_handle(e->c, C);
        dnnl_exec_arg_t args[3] = {
            {DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
        done = dnnl_primitive_execute(e->prim, t->stream, 3, args) == dnnl_success &&
               dnnl_stream_wait(t->stream) == dnnl_success;
    }
    if (threads != 1)
        omp_set_num_threads(threads);
    return done;
}
#endif

static thread_state *this_thread(matmul_ctx *c)
{
    const int i = omp_get_thread_num();
    assert(i < c->n_threads);
    return &c->t[i];
}

void matmul_f32(matmul_ctx *c, const matmul_shape *s, const float *A, const float *B,
                float *C)
{
    assert(s->beta == 0.0f || s->beta == 1.0f);
    if (s->M == 0 || s->N == 0)
        return;
#ifdef ICAS_HAVE_ONEDNN
    if (c->backend == MATMUL_AUTO && onednn_run(c, this_thread(c), s, A, B, C, 0))
        return;
#endif
    blas_f32(s, A, B, C);
}

void matmul_bf16(matmul_ctx *c, const matmul_shape *s, const bf16 *A, const bf16 *B,
                 float *C)
{
    assert(s->beta == 0.0f || s->beta == 1.0f);
    if (s->M == 0 || s->N == 0)
        return;
    thread_state *t = this_thread(c);
#ifdef ICAS_HAVE_ONEDNN
    if (c->bf16_native && onednn_run(c, t, s, A, B, C, 1))
        return;
#endif
    widened_bf16(c, t, s, A, B, C);
}
