#include "icasweep/model.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/rng.h"
#include "icasweep/vmath.h"

#define LN_EPS 1e-5f

model_dims model_dims_of(const run_config *cfg)
{
    model_dims dims = {
        .d = cfg->dims,
        .T = 3 * cfg->points,
        .E = cfg->embd,
        .H = cfg->heads,
        .L = cfg->layers,
        .attention = cfg->attention,
        .ffn = cfg->ffn,
    };
    return dims;
}

/* ---- the parameter table -------------------------------------------- */

typedef struct {
    param_view *views; /* NULL: only count */
    int n_views;
    size_t offset;
} table_builder;

static void add_view(table_builder *tb, const char *name, int rows, int cols,
                     param_init init, int fan_in)
{
    if (tb->views) {
        param_view *v = &tb->views[tb->n_views];
        snprintf(v->name, sizeof v->name, "%s", name);
        v->offset = tb->offset;
        v->rank = cols > 0 ? 2 : 1;
        v->shape[0] = rows;
        v->shape[1] = cols > 0 ? cols : 1;
        v->init = init;
        v->fan_in = fan_in;
    }
    tb->offset += (size_t)rows * (cols > 0 ? cols : 1);
    tb->n_views++;
}

/* The GPT-2 names, order and shapes; also where each tensor's init comes
 * from (docs/science.md, "Initialisation"). */
static void build_table(model_dims D, table_builder *tb)
{
    int E = D.E;
    char name[ICAS_VIEW_NAME];
    add_view(tb, "read_in.weight", D.d, E, INIT_FANIN, D.d);
    add_view(tb, "read_in.bias", E, 0, INIT_FANIN, D.d);
    add_view(tb, "wpe", D.T, E, INIT_NORMAL, 0);
    for (int l = 0; l < D.L; l++) {
#define LAYER_VIEW(suffix, rows, cols, init)                                \
    snprintf(name, sizeof name, "h.%d.%s", l, suffix);                      \
    add_view(tb, name, rows, cols, init, 0);
        LAYER_VIEW("ln_1.weight", E, 0, INIT_ONE)
        LAYER_VIEW("ln_1.bias", E, 0, INIT_ZERO)
        LAYER_VIEW("attn.c_attn.weight", E, 3 * E, INIT_NORMAL)
        LAYER_VIEW("attn.c_attn.bias", 3 * E, 0, INIT_ZERO)
        LAYER_VIEW("attn.c_proj.weight", E, E, INIT_RESID)
        LAYER_VIEW("attn.c_proj.bias", E, 0, INIT_ZERO)
        if (D.ffn) {
            LAYER_VIEW("ln_2.weight", E, 0, INIT_ONE)
            LAYER_VIEW("ln_2.bias", E, 0, INIT_ZERO)
            LAYER_VIEW("mlp.c_fc.weight", E, 4 * E, INIT_NORMAL)
            LAYER_VIEW("mlp.c_fc.bias", 4 * E, 0, INIT_ZERO)
            LAYER_VIEW("mlp.c_proj.weight", 4 * E, E, INIT_RESID)
            LAYER_VIEW("mlp.c_proj.bias", E, 0, INIT_ZERO)
        }
#undef LAYER_VIEW
    }
    add_view(tb, "ln_f.weight", E, 0, INIT_ONE, 0);
    add_view(tb, "ln_f.bias", E, 0, INIT_ZERO, 0);
    add_view(tb, "read_out.weight", E, D.d, INIT_FANIN, E);
    add_view(tb, "read_out.bias", D.d, 0, INIT_FANIN, E);
}

size_t model_count_params(model_dims dims)
{
    table_builder tb = {0};
    build_table(dims, &tb);
    return tb.offset;
}

int model_view_table(model_dims dims, param_view **views, int *n_views,
                     icas_err *err)
{
    table_builder tb = {0};
    build_table(dims, &tb);
    tb.views = calloc((size_t)tb.n_views, sizeof *tb.views);
    if (!tb.views)
        return icas_fail(err, "model: out of memory for %d tensor views", tb.n_views);
    tb.n_views = 0;
    tb.offset = 0;
    build_table(dims, &tb);
    *views = tb.views;
    *n_views = tb.n_views;
    return 0;
}

void model_bind(const model *m, float *block, param_ptrs *out)
{
    /* The table's order is fixed by build_table; walk it in step. */
    const param_view *v = m->views;
    layer_params *h = out->h;
    out->read_in_w = block + (v++)->offset;
    out->read_in_b = block + (v++)->offset;
    out->wpe = block + (v++)->offset;
    for (int l = 0; l < m->dims.L; l++) {
        layer_params *lp = &h[l];
        lp->ln_1_w = block + (v++)->offset;
        lp->ln_1_b = block + (v++)->offset;
        lp->c_attn_w = block + (v++)->offset;
        lp->c_attn_b = block + (v++)->offset;
        lp->attn_proj_w = block + (v++)->offset;
        lp->attn_proj_b = block + (v++)->offset;
        if (m->dims.ffn) {
            lp->ln_2_w = block + (v++)->offset;
            lp->ln_2_b = block + (v++)->offset;
            lp->c_fc_w = block + (v++)->offset;
            lp->c_fc_b = block + (v++)->offset;
            lp->mlp_proj_w = block + (v++)->offset;
            lp->mlp_proj_b = block + (v++)->offset;
        } else {
            lp->ln_2_w = lp->ln_2_b = lp->c_fc_w = lp->c_fc_b = NULL;
            lp->mlp_proj_w = lp->mlp_proj_b = NULL;
        }
    }
    out->ln_f_w = block + (v++)->offset;
    out->ln_f_b = block + (v++)->offset;
    out->read_out_w = block + (v++)->offset;
    out->read_out_b = block + (v++)->offset;
}

int model_create(model *m, model_dims dims, icas_err *err)
{
    memset(m, 0, sizeof *m);
    m->dims = dims;
    if (model_view_table(dims, &m->views, &m->n_views, err))
        return -1;
    m->n_params = model_count_params(dims);
    m->params = calloc(m->n_params, sizeof(float));
    m->grads = calloc(m->n_params, sizeof(float));
    m->p.h = calloc((size_t)dims.L, sizeof(layer_params));
    m->g.h = calloc((size_t)dims.L, sizeof(layer_params));
    if (!m->params || !m->grads || !m->p.h || !m->g.h) {
        model_free(m);
        return icas_fail(err, "model: out of memory for %zu parameters",
                         m->n_params);
    }
    model_bind(m, m->params, &m->p);
    model_bind(m, m->grads, &m->g);
    return 0;
}

int model_enable_bf16(model *m, icas_err *err)
{
    if (!m->params_bf16) {
        m->params_bf16 = malloc(sizeof(bf16) * m->n_params);
        if (!m->params_bf16)
            return icas_fail(err, "model: out of memory for %zu bf16 parameters",
                             m->n_params);
    }
    model_params_changed(m);
    return 0;
}

void model_params_changed(model *m)
{
    if (!m->params_bf16)
        return;
    const size_t n = m->n_params, part = 4096;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += part)
        bf16_from_f32(m->params_bf16 + i, m->params + i, n - i < part ? n - i : part);
}

void model_free(model *m)
{
    free(m->params);
    free(m->grads);
    free(m->params_bf16);
    m->params_bf16 = NULL;
    free(m->p.h);
    free(m->g.h);
    free(m->views);
    m->views = NULL;
    m->n_views = 0;
    m->params = m->grads = NULL;
    m->p.h = m->g.h = NULL;
}

void model_init_params(model *m, uint64_t seed)
{
    float resid_std = 0.02f / sqrtf(2.0f * (float)m->dims.L);
    for (int i = 0; i < m->n_views; i++) {
        const param_view *v = &m->views[i];
        size_t n = (size_t)v->shape[0] * v->shape[1];
        float *w = m->params + v->offset;
        rng_state rng;
        rng_init(&rng, seed, rng_stream(RNG_INIT, (uint64_t)i, 0));
        for (size_t j = 0; j < n; j++) {
            switch ((param_init)v->init) {
            case INIT_ZERO: w[j] = 0; break;
            case INIT_ONE: w[j] = 1; break;
            case INIT_NORMAL: w[j] = 0.02f * rng_normal(&rng); break;
            case INIT_RESID: w[j] = resid_std * rng_normal(&rng); break;
            case INIT_FANIN: {
                float bound = 1.0f / sqrtf((float)v->fan_in);
                w[j] = bound * (2.0f * rng_uniform(&rng) - 1.0f);
                break;
            }
            }
        }
    }
    model_params_changed(m);
}

const param_view *model_find_view(const model *m, const char *name)
{
    for (int i = 0; i < m->n_views; i++)
        if (strcmp(m->views[i].name, name) == 0)
            return &m->views[i];
    return NULL;
}

void model_zero_grad(model *m)
{
    memset(m->grads, 0, m->n_params * sizeof(float));
}

/* ---- activations ----------------------------------------------------- */

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

int model_acts_create(model_acts *a, model_dims D, int M, int out_stride,
                      precision_kind precision, icas_err *err)
{
    memset(a, 0, sizeof *a);
    if (out_stride < 1 || out_stride > D.T)
        return icas_fail(err, "model: output stride %d outside 1..%d", out_stride, D.T);
    a->M = M;
    a->out_stride = out_stride;
    a->precision = precision;
    a->block_rows = GEMM_BLOCK_CONTEXTS * D.T;
    a->n_threads = omp_get_max_threads();
    size_t BT = (size_t)M * D.T, E = (size_t)D.E, L = (size_t)D.L;
    size_t blocks = ((size_t)M + GEMM_BLOCK_CONTEXTS - 1) / GEMM_BLOCK_CONTEXTS;
    /* the largest weight: [E,4E] or [4E,E] with the MLP, [E,3E] without;
     * read-in and read-out are [d,E] and [E,d] */
    size_t widest = 4 * E * E, dE = (size_t)D.d * E;
    widest = widest > dE ? widest : dE;
    size_t TT = (size_t)M * D.H * D.T * D.T;
    size_t ffn = D.ffn ? 1 : 0;
    struct { float **p; size_t n; } plan[] = {
        {&a->resid, (L + 1) * BT * E},
        {&a->ln1, L * BT * E}, {&a->ln1_mean, L * BT}, {&a->ln1_rstd, L * BT},
        {&a->qkv, L * BT * 3 * E},
        {&a->att, L * TT},
        {&a->atty, L * BT * E},
        {&a->resid_mid, L * BT * E},
        {&a->ln2, ffn * L * BT * E}, {&a->ln2_mean, ffn * L * BT},
        {&a->ln2_rstd, ffn * L * BT},
        {&a->gelu_grad, ffn * L * BT * 4 * E}, {&a->fc_gelu, ffn * L * BT * 4 * E},
        {&a->lnf, BT * E}, {&a->lnf_mean, BT}, {&a->lnf_rstd, BT},
        {&a->out, BT * (size_t)D.d},
        {&a->d_resid, BT * E}, {&a->d_tmp, BT * E}, {&a->d_qkv, BT * 3 * E},
        {&a->d_att, TT}, {&a->d_fc, ffn * BT * 4 * E},
        {&a->d_out, BT * (size_t)D.d},
        {&a->dw_part, blocks * widest},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
        total += plan[i].n;
    a->buf = malloc(total * sizeof(float));
    if (!a->buf)
        return icas_fail(err, "model: out of memory for activations of %d "
                              "contexts (%.1f MiB)",
                         M, total * 4.0 / (1 << 20));
    a->n_floats = total;
    float *p = a->buf;
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        *plan[i].p = plan[i].n ? p : NULL;
        p += plan[i].n;
    }
    a->x_in = a->resid;

    /* bf16 operands: a block's rows of a linear layer's input and output
     * gradient (at most 4E wide), or an attention head's weights and their
     * gradient ([T, T] each), per thread */
    const size_t block_operand = (size_t)a->block_rows * (D.ffn ? 4 * E : 3 * E);
    const size_t head_operand = (size_t)D.T * D.T;
    const size_t max_operand = max_size(max_size(block_operand, head_operand), widest);
    if (precision == PRECISION_BF16) {
        a->lp_per_thread = 2 * max_size(block_operand, head_operand);
        size_t n = BT * 4 * E + (size_t)a->n_threads * a->lp_per_thread;
        a->lp_buf = malloc(n * sizeof(bf16));
        if (!a->lp_buf) {
            model_acts_free(a);
            return icas_fail(err, "model: out of memory for bf16 operands (%.1f MiB)",
                             n * 2.0 / (1 << 20));
        }
        a->lp_qkv = a->lp_buf;
        a->lp_dout = a->lp_qkv + BT * 3 * E;
        a->lp_thread = a->lp_dout + BT * E;
    }
    if (matmul_create(&a->mm, MATMUL_AUTO, precision == PRECISION_BF16 ? max_operand : 0,
                      err)) {
        model_acts_free(a);
        return -1;
    }
    return 0;
}

void model_acts_free(model_acts *a)
{
    free(a->buf);
    free(a->lp_buf);
    matmul_free(a->mm);
    memset(a, 0, sizeof *a);
}

/* ---- layers ---------------------------------------------------------- */

/* This thread's two bf16 operand buffers, each lp_per_thread / 2. */
static bf16 *thread_lp(const model_acts *a, int which)
{
    const int i = omp_get_thread_num();
    assert(i < a->n_threads);
    return a->lp_thread + (size_t)i * a->lp_per_thread + (size_t)which * (a->lp_per_thread / 2);
}

/* The bf16 copy of weight tensor w (a pointer into m->params) when a
 * computes in bf16, else NULL. */
static const bf16 *lowp_weights(const model *m, const model_acts *a, const float *w)
{
    if (a->precision != PRECISION_BF16)
        return NULL;
    assert(m->params_bf16 && w >= m->params && w < m->params + m->n_params);
    return m->params_bf16 + (w - m->params);
}

/* out [BT,OC] = inp [BT,IC] @ w [IC,OC] + b [OC], one product per block of
 * a->block_rows rows (GEMM_BLOCK_CONTEXTS), each on one thread. w_lp: w in
 * bf16, to compute with bf16 inputs (the block's rows of inp rounded
 * here), or NULL for FP32. */
static void linear_forward(const model_acts *a, float *out, const float *inp,
                           const float *w, const bf16 *w_lp, const float *b, int BT,
                           int IC, int OC)
{
    const int R = a->block_rows, blocks = (BT + R - 1) / R;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < blocks; k++) {
        const int r0 = k * R, rows = BT - r0 < R ? BT - r0 : R;
        const float *inp_k = inp + (size_t)r0 * IC;
        float *out_k = out + (size_t)r0 * OC;
        for (int r = 0; r < rows; r++)
            memcpy(out_k + (size_t)r * OC, b, sizeof(float) * (size_t)OC);
        const matmul_shape s = {.M = rows, .N = OC, .K = IC, .lda = IC, .ldb = OC,
                                .ldc = OC, .alpha = 1, .beta = 1};
        if (w_lp) {
            bf16 *inp_lp = thread_lp(a, 0);
            bf16_from_f32(inp_lp, inp_k, (size_t)rows * IC);
            matmul_bf16(a->mm, &s, inp_lp, w_lp, out_k);
        } else {
            matmul_f32(a->mm, &s, inp_k, w, out_k);
        }
    }
}

/* Backward of linear_forward. dinp = dout @ w^T (overwritten; skipped when
 * dinp is NULL); dw += inp^T @ dout; db += column sums of dout. Each block's
 * share of dw lands in its own slot of a->dw_part and the shares are added
 * in block order: the same sums in the same order whichever thread
 * computed which block. w_lp as in linear_forward. */
static void linear_backward(const model_acts *a, float *dinp, float *dw, float *db,
                            const float *dout, const float *inp, const float *w,
                            const bf16 *w_lp, int BT, int IC, int OC)
{
    const int R = a->block_rows, blocks = (BT + R - 1) / R;
    const size_t W = (size_t)IC * OC;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < blocks; k++) {
        const int r0 = k * R, rows = BT - r0 < R ? BT - r0 : R;
        const float *dout_k = dout + (size_t)r0 * OC, *inp_k = inp + (size_t)r0 * IC;
        float *share = a->dw_part + (size_t)k * W;
        const matmul_shape s_dinp = {.tb = 1, .M = rows, .N = IC, .K = OC, .lda = OC,
                                     .ldb = OC, .ldc = IC, .alpha = 1, .beta = 0};
        const matmul_shape s_dw = {.ta = 1, .M = IC, .N = OC, .K = rows, .lda = IC,
                                   .ldb = OC, .ldc = OC, .alpha = 1, .beta = 0};
        if (w_lp) {
            bf16 *dout_lp = thread_lp(a, 0), *inp_lp = thread_lp(a, 1);
            bf16_from_f32(dout_lp, dout_k, (size_t)rows * OC);
            bf16_from_f32(inp_lp, inp_k, (size_t)rows * IC);
            if (dinp)
                matmul_bf16(a->mm, &s_dinp, dout_lp, w_lp, dinp + (size_t)r0 * IC);
            matmul_bf16(a->mm, &s_dw, inp_lp, dout_lp, share);
        } else {
            if (dinp)
                matmul_f32(a->mm, &s_dinp, dout_k, w, dinp + (size_t)r0 * IC);
            matmul_f32(a->mm, &s_dw, inp_k, dout_k, share);
        }
    }
    for (int k = 0; k < blocks; k++) {
        const float *share = a->dw_part + (size_t)k * W;
#pragma omp simd
        for (size_t i = 0; i < W; i++)
            dw[i] += share[i];
    }
    /* rows in order, whatever the thread count: the sum is reproducible */
    for (int r = 0; r < BT; r++) {
        const float *d_r = dout + (size_t)r * OC;
#pragma omp simd
        for (int c = 0; c < OC; c++)
            db[c] += d_r[c];
    }
}

/* out [BT,E] = (inp - mean) * rstd * w + b, per row; mean, rstd [BT] kept */
static void layernorm_forward(float *out, float *mean, float *rstd,
                              const float *inp, const float *w, const float *b,
                              int BT, int E)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BT; r++) {
        const float *x = inp + (size_t)r * E;
        float *y = out + (size_t)r * E;
        float mu = 0;
#pragma omp simd reduction(+ : mu)
        for (int i = 0; i < E; i++)
            mu += x[i];
        mu /= E;
        float var = 0;
#pragma omp simd reduction(+ : var)
        for (int i = 0; i < E; i++)
            var += (x[i] - mu) * (x[i] - mu);
        var /= E;
        float rs = 1.0f / sqrtf(var + LN_EPS);
#pragma omp simd
        for (int i = 0; i < E; i++)
            y[i] = (x[i] - mu) * rs * w[i] + b[i];
        mean[r] = mu;
        rstd[r] = rs;
    }
}

/* dinp += LN backward of dout; dw, db += their gradients. */
static void layernorm_backward(float *dinp, float *dw, float *db,
                               const float *dout, const float *inp,
                               const float *w, const float *mean,
                               const float *rstd, int BT, int E)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BT; r++) {
        const float *x = inp + (size_t)r * E, *dy = dout + (size_t)r * E;
        float *dx = dinp + (size_t)r * E;
        float mu = mean[r], rs = rstd[r];
        float mean_dxhat = 0, mean_dxhat_xhat = 0;
#pragma omp simd reduction(+ : mean_dxhat, mean_dxhat_xhat)
        for (int i = 0; i < E; i++) {
            float xhat = (x[i] - mu) * rs;
            float dxhat = dy[i] * w[i];
            mean_dxhat += dxhat;
            mean_dxhat_xhat += dxhat * xhat;
        }
        mean_dxhat /= E;
        mean_dxhat_xhat /= E;
#pragma omp simd
        for (int i = 0; i < E; i++) {
            float xhat = (x[i] - mu) * rs;
            float dxhat = dy[i] * w[i];
            dx[i] += rs * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
        }
    }
    for (int r = 0; r < BT; r++) {
        const float *x = inp + (size_t)r * E, *dy = dout + (size_t)r * E;
        float mu = mean[r], rs = rstd[r];
#pragma omp simd
        for (int i = 0; i < E; i++) {
            dw[i] += dy[i] * (x[i] - mu) * rs;
            db[i] += dy[i];
        }
    }
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* out = GELU(x) for x = fc; fc is then overwritten with GELU'(x), all the
 * backward pass needs of it. Computing the derivative here, where tanh is
 * at hand, spares the backward pass a second tanh per element;
 * the arithmetic is the same as evaluating it there, so are the bits. */
static void gelu_forward(float *out, float *fc, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = fc[i];
        float t = vmath_tanh(GELU_K * (x + 0.044715f * x * x * x));
        float dt = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        out[i] = 0.5f * x * (1.0f + t);
        fc[i] = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dt;
    }
}

/* d *= GELU'(x), in place, from the derivative gelu_forward left behind */
static void gelu_backward(float *d, const float *gelu_grad, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        d[i] *= gelu_grad[i];
}

/* sum_s a[s] * (b ? b[s] : 1) over s < len in sixteen interleaved partial
 * sums (one 512-bit vector) combined pairwise: a fixed order (so the same
 * bits on any thread), and vectorisable, where one running sum is a chain
 * of dependent adds. */
#define SUM_LANES 16
static inline float sum_lanes(const float *a, const float *b, int len)
{
    float part[SUM_LANES] = {0};
    int s = 0;
    for (; s + SUM_LANES <= len; s += SUM_LANES)
#pragma omp simd
        for (int j = 0; j < SUM_LANES; j++)
            part[j] += b ? a[s + j] * b[s + j] : a[s + j];
    for (int j = 0; s < len; s++, j++)
        part[j] += b ? a[s] * b[s] : a[s];
    for (int w = SUM_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            part[j] = part[j] + part[j + w];
    return part[0];
}

/* qkv [M*T, 3E] rounded to bf16 into a->lp_qkv (bf16 activations only). */
static void round_qkv(const model_acts *a, const float *qkv, int M, int T, int E)
{
    if (a->precision != PRECISION_BF16)
        return;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < M * T; r++)
        bf16_from_f32(a->lp_qkv + (size_t)r * 3 * E, qkv + (size_t)r * 3 * E, (size_t)3 * E);
}

/* C = op(A) op(B) for attention: FP32 operands, or with bf16 activations
 * their bf16 copies (A_lp, B_lp) */
static void attention_product(const model_acts *a, const matmul_shape *s, const float *A,
                              const bf16 *A_lp, const float *B, const bf16 *B_lp, float *C)
{
    if (a->precision == PRECISION_BF16)
        matmul_bf16(a->mm, s, A_lp, B_lp, C);
    else
        matmul_f32(a->mm, s, A, B, C);
}

/* Causal attention for M contexts and H heads, queried at every qs-th token.
 * qkv [M*T, 3E] (q | k | v, head h at columns h*hs within each block).
 * Query rows are the tokens t_k = k * qs, k < Tq = ceil(T / qs): all of
 * them when qs = 1; in the last layer only the tokens whose outputs are
 * used (model_acts_create's out_stride), since no other row of it reaches
 * the output. Keys and values are every token's.
 * att [M,H,Tq,T] receives the weights (row k uses columns 0..t_k, the rest
 * 0); out [M*Tq, E]. softmax: att = softmax(q k^T / sqrt(hs)) over s <= t_k;
 * linear: att = q k^T / sqrt(hs) for s <= t_k, no normalisation.
 * The products run on the full rectangle (the masked part is zeroed
 * after): at T = 60 that is faster than skipping it by hand. In bf16 the
 * products read q, k, v and the weights rounded; the scores, the softmax
 * and the stored weights are FP32. */
static void attention_forward(const model_acts *a, float *out, float *att,
                              const float *qkv, int M, int T, int qs, int E, int H,
                              attention_kind kind)
{
    const int hs = E / H, ld = 3 * E, Tq = (T + qs - 1) / qs;
    const float scale = 1.0f / sqrtf((float)hs);
    const int lowp = a->precision == PRECISION_BF16;
    round_qkv(a, qkv, M, T, E);
    /* scores = scale * q k^T; out = att v */
    const matmul_shape s_scores = {.tb = 1, .M = Tq, .N = T, .K = hs, .lda = qs * ld,
                                   .ldb = ld, .ldc = T, .alpha = scale, .beta = 0};
    const matmul_shape s_out = {.M = Tq, .N = hs, .K = T, .lda = T, .ldb = ld, .ldc = E,
                                .alpha = 1, .beta = 0};
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < M * H; bh++) {
        int b = bh / H, h = bh % H;
        const size_t at_q = (size_t)b * T * ld + h * hs;
        const float *q_bh = qkv + at_q, *k_bh = q_bh + E, *v_bh = q_bh + 2 * E;
        const bf16 *q_lp = lowp ? a->lp_qkv + at_q : NULL;
        const bf16 *k_lp = lowp ? q_lp + E : NULL, *v_lp = lowp ? q_lp + 2 * E : NULL;
        float *att_bh = att + (size_t)bh * Tq * T;
        attention_product(a, &s_scores, q_bh, q_lp, k_bh, k_lp, att_bh);
        for (int k = 0; k < Tq; k++) {
            const int t = k * qs;
            float *a_t = att_bh + (size_t)k * T;
            if (kind == ATTN_SOFTMAX) {
                float maxv = a_t[0];
#pragma omp simd reduction(max : maxv)
                for (int s = 1; s <= t; s++)
                    maxv = a_t[s] > maxv ? a_t[s] : maxv;
#pragma omp simd
                for (int s = 0; s <= t; s++)
                    a_t[s] = vmath_exp(a_t[s] - maxv);
                float inv = 1.0f / sum_lanes(a_t, NULL, t + 1);
#pragma omp simd
                for (int s = 0; s <= t; s++)
                    a_t[s] *= inv;
            }
            for (int s = t + 1; s < T; s++)
                a_t[s] = 0;
        }
        bf16 *att_lp = NULL;
        if (lowp) {
            att_lp = thread_lp(a, 0);
            bf16_from_f32(att_lp, att_bh, (size_t)Tq * T);
        }
        attention_product(a, &s_out, att_bh, att_lp, v_bh, v_lp,
                          out + (size_t)b * Tq * E + h * hs);
    }
}

/* Backward of attention_forward: dqkv [M*T, 3E] (overwritten; the q part of
 * rows that were not queried is 0) from dout [M*Tq, E]. datt is scratch
 * [M,H,Tq,T]. */
static void attention_backward(const model_acts *a, float *dqkv, float *datt,
                               const float *dout, const float *att, const float *qkv,
                               int M, int T, int qs, int E, int H, attention_kind kind)
{
    const int hs = E / H, ld = 3 * E, Tq = (T + qs - 1) / qs;
    const float scale = 1.0f / sqrtf((float)hs);
    const int lowp = a->precision == PRECISION_BF16;
    round_qkv(a, qkv, M, T, E);
    if (lowp) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < M * Tq; r++)
            bf16_from_f32(a->lp_dout + (size_t)r * E, dout + (size_t)r * E, (size_t)E);
    }
    /* out = att @ v: datt = dout v^T, dv = att^T dout */
    const matmul_shape s_datt = {.tb = 1, .M = Tq, .N = T, .K = hs, .lda = E, .ldb = ld,
                                 .ldc = T, .alpha = 1, .beta = 0};
    const matmul_shape s_dv = {.ta = 1, .M = T, .N = hs, .K = Tq, .lda = T, .ldb = E,
                               .ldc = ld, .alpha = 1, .beta = 0};
    /* z = scale * q @ k^T: dq = scale dz k, dk = scale dz^T q */
    const matmul_shape s_dq = {.M = Tq, .N = hs, .K = T, .lda = T, .ldb = ld,
                               .ldc = qs * ld, .alpha = scale, .beta = 0};
    const matmul_shape s_dk = {.ta = 1, .M = T, .N = hs, .K = Tq, .lda = T,
                               .ldb = qs * ld, .ldc = ld, .alpha = scale, .beta = 0};
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < M * H; bh++) {
        int b = bh / H, h = bh % H;
        const size_t at_q = (size_t)b * T * ld + h * hs, at_out = (size_t)b * Tq * E + h * hs;
        const float *q_bh = qkv + at_q, *k_bh = q_bh + E, *v_bh = q_bh + 2 * E;
        const bf16 *q_lp = lowp ? a->lp_qkv + at_q : NULL;
        const bf16 *k_lp = lowp ? q_lp + E : NULL, *v_lp = lowp ? q_lp + 2 * E : NULL;
        const bf16 *do_lp = lowp ? a->lp_dout + at_out : NULL;
        bf16 *att_lp = lowp ? thread_lp(a, 0) : NULL, *datt_lp = lowp ? thread_lp(a, 1) : NULL;
        float *dq_bh = dqkv + at_q, *dk_bh = dq_bh + E, *dv_bh = dq_bh + 2 * E;
        const float *att_bh = att + (size_t)bh * Tq * T;
        const float *do_bh = dout + at_out;
        float *datt_bh = datt + (size_t)bh * Tq * T;
        if (lowp)
            bf16_from_f32(att_lp, att_bh, (size_t)Tq * T);
        attention_product(a, &s_datt, do_bh, do_lp, v_bh, v_lp, datt_bh);
        attention_product(a, &s_dv, att_bh, att_lp, do_bh, do_lp, dv_bh);
        /* att = softmax(z): dz_ts = a_ts (da_ts - sum_s' a_ts' da_ts');
         * linear: dz = da. Masked entries get no gradient. */
        for (int k = 0; k < Tq; k++) {
            const int t = k * qs;
            const float *a_t = att_bh + (size_t)k * T;
            float *da_t = datt_bh + (size_t)k * T;
            if (kind == ATTN_SOFTMAX) {
                float dot = sum_lanes(a_t, da_t, t + 1);
#pragma omp simd
                for (int s = 0; s <= t; s++)
                    da_t[s] = a_t[s] * (da_t[s] - dot);
            }
            for (int s = t + 1; s < T; s++)
                da_t[s] = 0;
        }
        if (qs > 1)
            for (int t = 0; t < T; t++)
                if (t % qs)
                    memset(dq_bh + (size_t)t * ld, 0, sizeof(float) * (size_t)hs);
        if (lowp)
            bf16_from_f32(datt_lp, datt_bh, (size_t)Tq * T);
        attention_product(a, &s_dq, datt_bh, datt_lp, k_bh, k_lp, dq_bh);
        attention_product(a, &s_dk, datt_bh, datt_lp, q_bh, q_lp, dk_bh);
    }
}

/* dst [M*Tq, E] += src [M*T, E] at the rows of tokens 0, qs, 2qs, ...: the
 * residual connection around attention, in the layer whose later rows are
 * only the queried ones (qs = 1: every row). */
static void add_queried_rows(float *dst, const float *src, int M, int T, int qs, int E)
{
    const int Tq = (T + qs - 1) / qs;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < M * Tq; r++) {
        const float *s_r = src + ((size_t)(r / Tq) * T + (size_t)(r % Tq) * qs) * E;
        float *d_r = dst + (size_t)r * E;
#pragma omp simd
        for (int i = 0; i < E; i++)
            d_r[i] = d_r[i] + s_r[i];
    }
}

/* The reverse: g [M*Tq, E] (the gradient at the queried rows) spread in
 * place to [M*T, E], zero at the other rows. Rows move only to higher
 * indices, so going from the last row down never overwrites one still to
 * be read. */
static void spread_queried_rows(float *g, int M, int T, int qs, int E)
{
    const int Tq = (T + qs - 1) / qs;
    for (int r = M * T - 1; r >= 0; r--) {
        const int b = r / T, t = r % T;
        float *g_r = g + (size_t)r * E;
        if (t % qs)
            memset(g_r, 0, sizeof(float) * (size_t)E);
        else
            memmove(g_r, g + ((size_t)b * Tq + t / qs) * E, sizeof(float) * (size_t)E);
    }
}

/* x [BT,E] += wpe [T,E] at each row's token position */
static void add_positions(float *x, const float *wpe, int BT, int T, int E)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BT; r++) {
        const float *wpe_t = wpe + (size_t)(r % T) * E;
        float *x_r = x + (size_t)r * E;
#pragma omp simd
        for (int i = 0; i < E; i++)
            x_r[i] += wpe_t[i];
    }
}

/* dwpe [T,E] += dx [BT,E] summed over the rows of each token position, rows
 * in order (a reproducible sum) */
static void add_positions_backward(float *dwpe, const float *dx, int BT, int T, int E)
{
    for (int r = 0; r < BT; r++) {
        float *dwpe_t = dwpe + (size_t)(r % T) * E;
        const float *dx_r = dx + (size_t)r * E;
#pragma omp simd
        for (int i = 0; i < E; i++)
            dwpe_t[i] += dx_r[i];
    }
}

static void add_into(float *dst, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = a[i] + b[i];
}

/* ---- the model ------------------------------------------------------- */

/* Layer l's part of an activation array that holds, per layer, `rows` rows
 * (the capacity a->M * T) of `per_row` floats. */
static float *layer_part(float *base, int l, int rows, int per_row)
{
    return base + (size_t)l * (size_t)rows * (size_t)per_row;
}

/* Runs the statement(s) and adds the seconds they took to the phase timer
 * acts->t_<phase> (matmul, attention or elementwise). */
#define TIMED(acts, phase, ...)                                                        \
    do {                                                                               \
        double t0_ = omp_get_wtime();                                                  \
        __VA_ARGS__;                                                                   \
        (acts)->t_##phase += omp_get_wtime() - t0_;                                    \
    } while (0)

/* Token stride of the rows a layer carries past its attention: every row
 * but in the last layer, whose only rows that reach the output are the
 * tokens 0, s, 2s, ... with s = out_stride. */
static int query_stride(const model_acts *a, const model_dims *D, int l)
{
    return l == D->L - 1 ? a->out_stride : 1;
}

void model_forward(const model *m, model_acts *a, const float *tokens, int M)
{
    const model_dims D = m->dims;
    const int T = D.T, E = D.E, d = D.d, BT = M * T, cap = a->M * T;
    const size_t TT = (size_t)a->M * D.H * T * T;
    const param_ptrs *p = &m->p;

    /* read-in and read-out stay FP32 in every precision: they carry the
     * task's numbers in and the predictions out, at 2d/(12E) of the work */
    TIMED(a, matmul, linear_forward(a, a->resid, tokens, p->read_in_w, NULL, p->read_in_b,
                                    BT, d, E));
    TIMED(a, elementwise, add_positions(a->resid, p->wpe, BT, T, E));

    int BQ = BT; /* rows after the attention of the layer, see query_stride */
    for (int l = 0; l < D.L; l++) {
        const layer_params *w = &p->h[l];
        const int qs = query_stride(a, &D, l);
        BQ = M * ((T + qs - 1) / qs);
        float *resid = layer_part(a->resid, l, cap, E);
        float *resid_next = layer_part(a->resid, l + 1, cap, E);
        float *ln1 = layer_part(a->ln1, l, cap, E), *qkv = layer_part(a->qkv, l, cap, 3 * E);
        float *atty = layer_part(a->atty, l, cap, E);
        float *resid_mid = layer_part(a->resid_mid, l, cap, E);
        float *att = a->att + (size_t)l * TT;

        TIMED(a, elementwise,
              layernorm_forward(ln1, layer_part(a->ln1_mean, l, cap, 1),
                                layer_part(a->ln1_rstd, l, cap, 1), resid, w->ln_1_w,
                                w->ln_1_b, BT, E));
        TIMED(a, matmul, linear_forward(a, qkv, ln1, w->c_attn_w,
                                        lowp_weights(m, a, w->c_attn_w), w->c_attn_b, BT, E,
                                        3 * E));
        TIMED(a, attention, attention_forward(a, atty, att, qkv, M, T, qs, E, D.H,
                                              D.attention));
        /* resid_mid = resid + atty @ W_proj + b (the projection lands in
         * resid_mid first, then the residual is added) */
        TIMED(a, matmul, linear_forward(a, resid_mid, atty, w->attn_proj_w,
                                        lowp_weights(m, a, w->attn_proj_w), w->attn_proj_b,
                                        BQ, E, E));
        TIMED(a, elementwise, add_queried_rows(resid_mid, resid, M, T, qs, E));

        if (!D.ffn) {
            memcpy(resid_next, resid_mid, sizeof(float) * (size_t)BQ * E);
            continue;
        }
        /* fc holds the pre-activation until gelu_forward turns it into GELU' */
        float *ln2 = layer_part(a->ln2, l, cap, E), *fc = layer_part(a->gelu_grad, l, cap, 4 * E);
        float *fc_gelu = layer_part(a->fc_gelu, l, cap, 4 * E);
        TIMED(a, elementwise,
              layernorm_forward(ln2, layer_part(a->ln2_mean, l, cap, 1),
                                layer_part(a->ln2_rstd, l, cap, 1), resid_mid, w->ln_2_w,
                                w->ln_2_b, BQ, E));
        TIMED(a, matmul, linear_forward(a, fc, ln2, w->c_fc_w, lowp_weights(m, a, w->c_fc_w),
                                        w->c_fc_b, BQ, E, 4 * E));
        TIMED(a, elementwise, gelu_forward(fc_gelu, fc, (size_t)BQ * 4 * E));
        TIMED(a, matmul, linear_forward(a, resid_next, fc_gelu, w->mlp_proj_w,
                                        lowp_weights(m, a, w->mlp_proj_w), w->mlp_proj_b, BQ,
                                        4 * E, E));
        TIMED(a, elementwise, add_into(resid_next, resid_next, resid_mid, (size_t)BQ * E));
    }

    TIMED(a, elementwise,
          layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, layer_part(a->resid, D.L, cap, E),
                            p->ln_f_w, p->ln_f_b, BQ, E));
    TIMED(a, matmul, linear_forward(a, a->out, a->lnf, p->read_out_w, NULL, p->read_out_b, BQ,
                                    E, d));
}

void model_backward(model *m, model_acts *a, const float *tokens,
                    const float *dout, int M)
{
    const model_dims D = m->dims;
    const int T = D.T, E = D.E, d = D.d, BT = M * T, cap = a->M * T;
    const size_t TT = (size_t)a->M * D.H * T * T;
    const param_ptrs *p = &m->p, *g = &m->g;
    float *d_resid = a->d_resid, *d_tmp = a->d_tmp;
    const int qs_last = query_stride(a, &D, D.L - 1);
    const int BQ_last = M * ((T + qs_last - 1) / qs_last);

    /* out = lnf @ W_out + b */
    TIMED(a, matmul, linear_backward(a, d_tmp, g->read_out_w, g->read_out_b, dout, a->lnf,
                                     p->read_out_w, NULL, BQ_last, E, d));
    /* lnf = LN_f(resid[L]) */
    TIMED(a, elementwise, {
        memset(d_resid, 0, sizeof(float) * (size_t)BQ_last * E);
        layernorm_backward(d_resid, g->ln_f_w, g->ln_f_b, d_tmp,
                           layer_part(a->resid, D.L, cap, E), p->ln_f_w, a->lnf_mean,
                           a->lnf_rstd, BQ_last, E);
    });

    for (int l = D.L - 1; l >= 0; l--) {
        const layer_params *w = &p->h[l];
        const layer_params *gw = &g->h[l];
        const int qs = query_stride(a, &D, l), BQ = M * ((T + qs - 1) / qs);
        float *resid = layer_part(a->resid, l, cap, E);
        float *resid_mid = layer_part(a->resid_mid, l, cap, E);
        float *ln1 = layer_part(a->ln1, l, cap, E), *qkv = layer_part(a->qkv, l, cap, 3 * E);
        float *atty = layer_part(a->atty, l, cap, E);
        float *att = a->att + (size_t)l * TT;

        /* d_resid holds BQ rows: the gradient at resid_next */
        if (D.ffn) {
            float *ln2 = layer_part(a->ln2, l, cap, E);
            float *gelu_grad = layer_part(a->gelu_grad, l, cap, 4 * E);
            float *fc_gelu = layer_part(a->fc_gelu, l, cap, 4 * E);
            /* resid_next = resid_mid + fc_gelu @ W_mproj + b: d_resid passes
             * through to resid_mid unchanged, plus the MLP branch below */
            TIMED(a, matmul, linear_backward(a, a->d_fc, gw->mlp_proj_w, gw->mlp_proj_b,
                                             d_resid, fc_gelu, w->mlp_proj_w,
                                             lowp_weights(m, a, w->mlp_proj_w), BQ, 4 * E, E));
            TIMED(a, elementwise, gelu_backward(a->d_fc, gelu_grad, (size_t)BQ * 4 * E));
            TIMED(a, matmul, linear_backward(a, d_tmp, gw->c_fc_w, gw->c_fc_b, a->d_fc, ln2,
                                             w->c_fc_w, lowp_weights(m, a, w->c_fc_w), BQ, E,
                                             4 * E));
            TIMED(a, elementwise,
                  layernorm_backward(d_resid, gw->ln_2_w, gw->ln_2_b, d_tmp, resid_mid,
                                     w->ln_2_w, layer_part(a->ln2_mean, l, cap, 1),
                                     layer_part(a->ln2_rstd, l, cap, 1), BQ, E));
        }
        /* resid_mid = resid + atty @ W_proj + b */
        TIMED(a, matmul, linear_backward(a, d_tmp, gw->attn_proj_w, gw->attn_proj_b, d_resid,
                                         atty, w->attn_proj_w,
                                         lowp_weights(m, a, w->attn_proj_w), BQ, E, E));
        TIMED(a, attention, attention_backward(a, a->d_qkv, a->d_att, d_tmp, att, qkv, M, T,
                                               qs, E, D.H, D.attention));
        /* qkv = ln1 @ W_attn + b */
        TIMED(a, matmul, linear_backward(a, d_tmp, gw->c_attn_w, gw->c_attn_b, a->d_qkv, ln1,
                                         w->c_attn_w, lowp_weights(m, a, w->c_attn_w), BT, E,
                                         3 * E));
        TIMED(a, elementwise, {
            /* the residual path carries d_resid to the queried rows of resid */
            if (qs > 1)
                spread_queried_rows(d_resid, M, T, qs, E);
            layernorm_backward(d_resid, gw->ln_1_w, gw->ln_1_b, d_tmp, resid, w->ln_1_w,
                               layer_part(a->ln1_mean, l, cap, 1),
                               layer_part(a->ln1_rstd, l, cap, 1), BT, E);
        });
    }

    /* resid[0] = tokens @ W_in + b + wpe[t] */
    TIMED(a, matmul, linear_backward(a, NULL, g->read_in_w, g->read_in_b, d_resid, tokens,
                                     p->read_in_w, NULL, BT, d, E));
    TIMED(a, elementwise, add_positions_backward(g->wpe, d_resid, BT, T, E));
}
