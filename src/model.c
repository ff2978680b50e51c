#include "icasweep/model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/rng.h"

#define LN_EPS 1e-5f

model_dims model_dims_of(const run_config *cfg)
{
    model_dims d = {
        .d = cfg->dims,
        .T = 3 * cfg->points,
        .E = cfg->embd,
        .H = cfg->heads,
        .L = cfg->layers,
        .attention = cfg->attention,
        .ffn = cfg->ffn,
    };
    return d;
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

void model_free(model *m)
{
    free(m->params);
    free(m->grads);
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

int model_acts_create(model_acts *a, model_dims D, int M, int out_stride,
                      icas_err *err)
{
    memset(a, 0, sizeof *a);
    if (out_stride < 1 || out_stride > D.T)
        return icas_fail(err, "model: output stride %d outside 1..%d", out_stride, D.T);
    a->M = M;
    a->out_stride = out_stride;
    a->block_rows = GEMM_BLOCK_CONTEXTS * D.T;
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
    return 0;
}

void model_acts_free(model_acts *a)
{
    free(a->buf);
    memset(a, 0, sizeof *a);
}

/* ---- layers ---------------------------------------------------------- */

/* out [BT,OC] = inp [BT,IC] @ w [IC,OC] + b [OC], one product per block of
 * a->block_rows rows (GEMM_BLOCK_CONTEXTS). Inside the parallel loop
 * OpenBLAS's OpenMP build runs single-threaded. */
static void linear_forward(const model_acts *a, float *out, const float *inp,
                           const float *w, const float *b, int BT, int IC, int OC)
{
    const int R = a->block_rows, blocks = (BT + R - 1) / R;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < blocks; k++) {
        const int r0 = k * R, rows = BT - r0 < R ? BT - r0 : R;
        float *out_k = out + (size_t)r0 * OC;
        for (int r = 0; r < rows; r++)
            memcpy(out_k + (size_t)r * OC, b, sizeof(float) * (size_t)OC);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, OC, IC, 1.0f,
                    inp + (size_t)r0 * IC, IC, w, OC, 1.0f, out_k, OC);
    }
}

/* Backward of linear_forward. dinp = dout @ w^T (overwritten; skipped when
 * dinp is NULL); dw += inp^T @ dout; db += column sums of dout. Each block's
 * share of dw lands in its own slot of a->dw_part and the shares are added
 * in block order: the same sums in the same order whichever thread
 * computed which block. */
static void linear_backward(const model_acts *a, float *dinp, float *dw, float *db,
                            const float *dout, const float *inp,
                            const float *w, int BT, int IC, int OC)
{
    const int R = a->block_rows, blocks = (BT + R - 1) / R;
    const size_t W = (size_t)IC * OC;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < blocks; k++) {
        const int r0 = k * R, rows = BT - r0 < R ? BT - r0 : R;
        const float *dout_k = dout + (size_t)r0 * OC, *inp_k = inp + (size_t)r0 * IC;
        if (dinp)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, IC, OC, 1.0f,
                        dout_k, OC, w, OC, 0.0f, dinp + (size_t)r0 * IC, IC);
        /* zeroed and accumulated into (beta 1) rather than written (beta 0):
         * OpenBLAS's beta-0 small kernel for this shape is the slower one */
        float *share = a->dw_part + (size_t)k * W;
        memset(share, 0, sizeof(float) * W);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IC, OC, rows, 1.0f, inp_k,
                    IC, dout_k, OC, 1.0f, share, OC);
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
        for (int i = 0; i < E; i++) {
            float xhat = (x[i] - mu) * rs;
            float dxhat = dy[i] * w[i];
            dx[i] += rs * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
        }
    }
    for (int r = 0; r < BT; r++) {
        const float *x = inp + (size_t)r * E, *dy = dout + (size_t)r * E;
        float mu = mean[r], rs = rstd[r];
        for (int i = 0; i < E; i++) {
            dw[i] += dy[i] * (x[i] - mu) * rs;
            db[i] += dy[i];
        }
    }
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* tanh as a rational function (the form Eigen uses for float): within
 * 4e-7 of tanh everywhere, and unlike libm's tanhf it vectorises. The same
 * arithmetic runs in the vector body and the scalar remainder (no FMA
 * contraction in ISO C mode), so results never depend on how OpenMP splits
 * the loop. */
static inline float tanh_rational(float x)
{
    const float clamp = 7.90531110763549805f;
    x = x > clamp ? clamp : (x < -clamp ? -clamp : x);
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q;
}

/* out = GELU(x) for x = fc; fc is then overwritten with GELU'(x), all the
 * backward pass needs of it. Computing the derivative here, where tanh is
 * at hand, spares the backward pass a second tanh per element;
 * the arithmetic is the same as evaluating it there, so are the bits. */
static void gelu_forward(float *out, float *fc, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = fc[i];
        float t = tanh_rational(GELU_K * (x + 0.044715f * x * x * x));
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

/* exp for the attention softmax: Cody-Waite reduction x = n ln2 + r and a
 * degree-7 Taylor polynomial for exp(r), |r| <= ln2/2: within 1e-7
 * (relative) of exp for x in [-87, 0], the only range softmax feeds it
 * (below -87 it returns exp(-87) ~ 2e-38 instead of a denormal or 0, which
 * no sum notices). Unlike libm's expf it vectorises, which made the softmax
 * 2.5x faster at T = 60; like tanh_rational it runs the same
 * arithmetic in vector body and scalar remainder. */
static inline float exp_softmax(float x)
{
    /* NaN (a diverging run) fails both comparisons and becomes -87, so the
     * integer conversion below stays defined; it is handed back at the end
     * so that divergence still shows in the loss. */
    float xc = x > -87.0f ? x : -87.0f;
    xc = xc < 88.0f ? xc : 88.0f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (xc * 1.44269504088896341f + shifter) - shifter;
    float r = xc - n * 0.693145751953125f; /* ln2 split in two for an exact n * hi */
    r = r - n * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23; /* n in [-126, 127] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x == x ? p * scale : x;
}

/* sum_s a[s] * (b ? b[s] : 1) over s < len in eight interleaved partial
 * sums combined pairwise: a fixed order (so the same bits on any thread),
 * and vectorisable, where one running sum is a chain of dependent adds. */
static inline float sum8(const float *a, const float *b, int len)
{
    float part[8] = {0};
    int s = 0;
    for (; s + 8 <= len; s += 8)
        for (int j = 0; j < 8; j++)
            part[j] += b ? a[s + j] * b[s + j] : a[s + j];
    for (int j = 0; s < len; s++, j++)
        part[j] += b ? a[s] * b[s] : a[s];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
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
 * The products go through BLAS on the full rectangle (the masked part is
 * zeroed after): at T = 60 that is faster than skipping it by hand.
 * Inside this parallel loop OpenBLAS's OpenMP build runs single-threaded. */
static void attention_forward(float *out, float *att, const float *qkv,
                              int M, int T, int qs, int E, int H,
                              attention_kind kind)
{
    const int hs = E / H, ld = 3 * E, Tq = (T + qs - 1) / qs;
    const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < M * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *q_bh = qkv + (size_t)b * T * ld + h * hs;
        const float *k_bh = q_bh + E, *v_bh = q_bh + 2 * E;
        float *att_bh = att + (size_t)bh * Tq * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, T, hs, scale, q_bh,
                    qs * ld, k_bh, ld, 0.0f, att_bh, T);
        for (int k = 0; k < Tq; k++) {
            const int t = k * qs;
            float *a_t = att_bh + (size_t)k * T;
            if (kind == ATTN_SOFTMAX) {
                float maxv = a_t[0];
                for (int s = 1; s <= t; s++)
                    maxv = a_t[s] > maxv ? a_t[s] : maxv;
#pragma omp simd
                for (int s = 0; s <= t; s++)
                    a_t[s] = exp_softmax(a_t[s] - maxv);
                float inv = 1.0f / sum8(a_t, NULL, t + 1);
                for (int s = 0; s <= t; s++)
                    a_t[s] *= inv;
            }
            for (int s = t + 1; s < T; s++)
                a_t[s] = 0;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hs, T, 1.0f, att_bh, T,
                    v_bh, ld, 0.0f, out + (size_t)b * Tq * E + h * hs, E);
    }
}

/* Backward of attention_forward: dqkv [M*T, 3E] (overwritten; the q part of
 * rows that were not queried is 0) from dout [M*Tq, E]. datt is scratch
 * [M,H,Tq,T]. */
static void attention_backward(float *dqkv, float *datt, const float *dout,
                               const float *att, const float *qkv, int M,
                               int T, int qs, int E, int H, attention_kind kind)
{
    const int hs = E / H, ld = 3 * E, Tq = (T + qs - 1) / qs;
    const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < M * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *q_bh = qkv + (size_t)b * T * ld + h * hs;
        const float *k_bh = q_bh + E, *v_bh = q_bh + 2 * E;
        float *dq_bh = dqkv + (size_t)b * T * ld + h * hs;
        float *dk_bh = dq_bh + E, *dv_bh = dq_bh + 2 * E;
        const float *att_bh = att + (size_t)bh * Tq * T;
        const float *do_bh = dout + (size_t)b * Tq * E + h * hs;
        float *datt_bh = datt + (size_t)bh * Tq * T;
        /* out = att @ v */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, T, hs, 1.0f, do_bh, E,
                    v_bh, ld, 0.0f, datt_bh, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, Tq, 1.0f, att_bh, T,
                    do_bh, E, 0.0f, dv_bh, ld);
        /* att = softmax(z): dz_ts = a_ts (da_ts - sum_s' a_ts' da_ts');
         * linear: dz = da. Masked entries get no gradient. */
        for (int k = 0; k < Tq; k++) {
            const int t = k * qs;
            const float *a_t = att_bh + (size_t)k * T;
            float *da_t = datt_bh + (size_t)k * T;
            if (kind == ATTN_SOFTMAX) {
                float dot = sum8(a_t, da_t, t + 1);
                for (int s = 0; s <= t; s++)
                    da_t[s] = a_t[s] * (da_t[s] - dot);
            }
            for (int s = t + 1; s < T; s++)
                da_t[s] = 0;
        }
        /* z = scale * q @ k^T */
        if (qs > 1)
            for (int t = 0; t < T; t++)
                if (t % qs)
                    memset(dq_bh + (size_t)t * ld, 0, sizeof(float) * (size_t)hs);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hs, T, scale, datt_bh, T,
                    k_bh, ld, 0.0f, dq_bh, qs * ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, Tq, scale, datt_bh, T,
                    q_bh, qs * ld, 0.0f, dk_bh, ld);
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

static void add_into(float *dst, const float *a, const float *b, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = a[i] + b[i];
}

/* ---- the model ------------------------------------------------------- */

#define LAYER(ptr, l, per_row) ((ptr) + (size_t)(l) * (size_t)BTcap * (per_row))

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
    const int T = D.T, E = D.E, d = D.d, BT = M * T, BTcap = a->M * T;
    const size_t TT = (size_t)a->M * D.H * T * T;
    const param_ptrs *p = &m->p;
    double t0;

    t0 = omp_get_wtime();
    linear_forward(a, a->resid, tokens, p->read_in_w, p->read_in_b, BT, d, E);
    a->t_matmul += omp_get_wtime() - t0;
    t0 = omp_get_wtime();
#pragma omp parallel for schedule(static)
    for (int r = 0; r < BT; r++) {
        const float *wpe_t = p->wpe + (size_t)(r % T) * E;
        float *x = a->resid + (size_t)r * E;
        for (int i = 0; i < E; i++)
            x[i] += wpe_t[i];
    }
    a->t_elementwise += omp_get_wtime() - t0;

    int BQ = BT; /* rows after the attention of the layer, see query_stride */
    for (int l = 0; l < D.L; l++) {
        const layer_params *w = &p->h[l];
        const int qs = query_stride(a, &D, l);
        BQ = M * ((T + qs - 1) / qs);
        float *resid = LAYER(a->resid, l, E), *resid_next = LAYER(a->resid, l + 1, E);
        float *ln1 = LAYER(a->ln1, l, E), *qkv = LAYER(a->qkv, l, 3 * E);
        float *atty = LAYER(a->atty, l, E), *resid_mid = LAYER(a->resid_mid, l, E);
        float *att = a->att + (size_t)l * TT;

        t0 = omp_get_wtime();
        layernorm_forward(ln1, LAYER(a->ln1_mean, l, 1), LAYER(a->ln1_rstd, l, 1),
                          resid, w->ln_1_w, w->ln_1_b, BT, E);
        a->t_elementwise += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        linear_forward(a, qkv, ln1, w->c_attn_w, w->c_attn_b, BT, E, 3 * E);
        a->t_matmul += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        attention_forward(atty, att, qkv, M, T, qs, E, D.H, D.attention);
        a->t_attention += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        /* resid_mid = resid + atty @ W_proj + b (the projection lands in
         * resid_mid first, then the residual is added) */
        linear_forward(a, resid_mid, atty, w->attn_proj_w, w->attn_proj_b, BQ, E, E);
        a->t_matmul += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        add_queried_rows(resid_mid, resid, M, T, qs, E);
        a->t_elementwise += omp_get_wtime() - t0;

        if (!D.ffn) {
            memcpy(resid_next, resid_mid, sizeof(float) * (size_t)BQ * E);
            continue;
        }
        /* fc holds the pre-activation until gelu_forward turns it into GELU' */
        float *ln2 = LAYER(a->ln2, l, E), *fc = LAYER(a->gelu_grad, l, 4 * E);
        float *fc_gelu = LAYER(a->fc_gelu, l, 4 * E);
        t0 = omp_get_wtime();
        layernorm_forward(ln2, LAYER(a->ln2_mean, l, 1), LAYER(a->ln2_rstd, l, 1),
                          resid_mid, w->ln_2_w, w->ln_2_b, BQ, E);
        a->t_elementwise += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        linear_forward(a, fc, ln2, w->c_fc_w, w->c_fc_b, BQ, E, 4 * E);
        a->t_matmul += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        gelu_forward(fc_gelu, fc, (size_t)BQ * 4 * E);
        a->t_elementwise += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        linear_forward(a, resid_next, fc_gelu, w->mlp_proj_w, w->mlp_proj_b, BQ,
                       4 * E, E);
        a->t_matmul += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        add_into(resid_next, resid_next, resid_mid, (size_t)BQ * E);
        a->t_elementwise += omp_get_wtime() - t0;
    }

    t0 = omp_get_wtime();
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, LAYER(a->resid, D.L, E),
                      p->ln_f_w, p->ln_f_b, BQ, E);
    a->t_elementwise += omp_get_wtime() - t0;
    t0 = omp_get_wtime();
    linear_forward(a, a->out, a->lnf, p->read_out_w, p->read_out_b, BQ, E, d);
    a->t_matmul += omp_get_wtime() - t0;
}

void model_backward(model *m, model_acts *a, const float *tokens,
                    const float *dout, int M)
{
    const model_dims D = m->dims;
    const int T = D.T, E = D.E, d = D.d, BT = M * T, BTcap = a->M * T;
    const size_t TT = (size_t)a->M * D.H * T * T;
    const param_ptrs *p = &m->p, *g = &m->g;
    float *d_resid = a->d_resid, *d_tmp = a->d_tmp;
    const int qs_last = query_stride(a, &D, D.L - 1);
    const int BQ_last = M * ((T + qs_last - 1) / qs_last);
    double t0;

    /* out = lnf @ W_out + b */
    t0 = omp_get_wtime();
    linear_backward(a, d_tmp, g->read_out_w, g->read_out_b, dout, a->lnf,
                    p->read_out_w, BQ_last, E, d);
    a->t_matmul += omp_get_wtime() - t0;
    /* lnf = LN_f(resid[L]) */
    t0 = omp_get_wtime();
    memset(d_resid, 0, sizeof(float) * (size_t)BQ_last * E);
    layernorm_backward(d_resid, g->ln_f_w, g->ln_f_b, d_tmp,
                       LAYER(a->resid, D.L, E), p->ln_f_w, a->lnf_mean,
                       a->lnf_rstd, BQ_last, E);
    a->t_elementwise += omp_get_wtime() - t0;

    for (int l = D.L - 1; l >= 0; l--) {
        const layer_params *w = &p->h[l];
        const layer_params *gw = &g->h[l];
        const int qs = query_stride(a, &D, l), BQ = M * ((T + qs - 1) / qs);
        float *resid = LAYER(a->resid, l, E), *resid_mid = LAYER(a->resid_mid, l, E);
        float *ln1 = LAYER(a->ln1, l, E), *qkv = LAYER(a->qkv, l, 3 * E);
        float *atty = LAYER(a->atty, l, E);
        float *att = a->att + (size_t)l * TT;

        /* d_resid holds BQ rows: the gradient at resid_next */
        if (D.ffn) {
            float *ln2 = LAYER(a->ln2, l, E), *gelu_grad = LAYER(a->gelu_grad, l, 4 * E);
            float *fc_gelu = LAYER(a->fc_gelu, l, 4 * E);
            /* resid_next = resid_mid + fc_gelu @ W_mproj + b: d_resid passes
             * through to resid_mid unchanged, plus the MLP branch below */
            t0 = omp_get_wtime();
            linear_backward(a, a->d_fc, gw->mlp_proj_w, gw->mlp_proj_b, d_resid,
                            fc_gelu, w->mlp_proj_w, BQ, 4 * E, E);
            a->t_matmul += omp_get_wtime() - t0;
            t0 = omp_get_wtime();
            gelu_backward(a->d_fc, gelu_grad, (size_t)BQ * 4 * E);
            a->t_elementwise += omp_get_wtime() - t0;
            t0 = omp_get_wtime();
            linear_backward(a, d_tmp, gw->c_fc_w, gw->c_fc_b, a->d_fc, ln2,
                            w->c_fc_w, BQ, E, 4 * E);
            a->t_matmul += omp_get_wtime() - t0;
            t0 = omp_get_wtime();
            layernorm_backward(d_resid, gw->ln_2_w, gw->ln_2_b, d_tmp, resid_mid,
                               w->ln_2_w, LAYER(a->ln2_mean, l, 1),
                               LAYER(a->ln2_rstd, l, 1), BQ, E);
            a->t_elementwise += omp_get_wtime() - t0;
        }
        /* resid_mid = resid + atty @ W_proj + b */
        t0 = omp_get_wtime();
        linear_backward(a, d_tmp, gw->attn_proj_w, gw->attn_proj_b, d_resid, atty,
                        w->attn_proj_w, BQ, E, E);
        a->t_matmul += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        attention_backward(a->d_qkv, a->d_att, d_tmp, att, qkv, M, T, qs, E, D.H,
                           D.attention);
        a->t_attention += omp_get_wtime() - t0;
        /* qkv = ln1 @ W_attn + b */
        t0 = omp_get_wtime();
        linear_backward(a, d_tmp, gw->c_attn_w, gw->c_attn_b, a->d_qkv, ln1,
                        w->c_attn_w, BT, E, 3 * E);
        a->t_matmul += omp_get_wtime() - t0;
        t0 = omp_get_wtime();
        /* the residual path carries d_resid to the queried rows of resid */
        if (qs > 1)
            spread_queried_rows(d_resid, M, T, qs, E);
        layernorm_backward(d_resid, gw->ln_1_w, gw->ln_1_b, d_tmp, resid,
                           w->ln_1_w, LAYER(a->ln1_mean, l, 1),
                           LAYER(a->ln1_rstd, l, 1), BT, E);
        a->t_elementwise += omp_get_wtime() - t0;
    }

    /* resid[0] = tokens @ W_in + b + wpe[t] */
    t0 = omp_get_wtime();
    linear_backward(a, NULL, g->read_in_w, g->read_in_b, d_resid, tokens,
                    p->read_in_w, BT, d, E);
    a->t_matmul += omp_get_wtime() - t0;
    t0 = omp_get_wtime();
    for (int r = 0; r < BT; r++) {
        float *dwpe_t = g->wpe + (size_t)(r % T) * E;
        const float *dx = d_resid + (size_t)r * E;
        for (int i = 0; i < E; i++)
            dwpe_t[i] += dx[i];
    }
    a->t_elementwise += omp_get_wtime() - t0;
}
