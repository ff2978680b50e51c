/* The GPT-2-style decoder of docs/science.md ("The model"): forward and backward for
 * softmax or linear causal attention, H heads, L layers, MLP on or off.
 *
 * Parameters, gradients (and, in optim, Adam's moments) are each one flat
 * float block split by a table of named views whose names and orientation
 * are GPT-2's (y = x W + b, W stored [in, out]). Activations are processed
 * for a chunk of M contexts at a time: rows are (context, token) pairs,
 * BT = M * T of them, so a linear layer is a matrix product (matmul.h)
 * per block of rows (GEMM_BLOCK_CONTEXTS).
 *
 * Precision: FP32, or (PRECISION_BF16) every matrix product takes bf16
 * inputs and sums in FP32; parameters, gradients, layer norms, softmax and
 * everything element-wise stay FP32. The bf16 weights are a copy of the
 * parameters that model_params_changed refreshes. */
#ifndef ICASWEEP_MODEL_H
#define ICASWEEP_MODEL_H

#include <stddef.h>

#include "icasweep/config.h"
#include "icasweep/error.h"
#include "icasweep/matmul.h"

#define ICAS_VIEW_NAME 48

typedef struct {
    int d, T, E, H, L;
    attention_kind attention;
    int ffn;
} model_dims;

/* How a tensor is initialised (docs/science.md, "Initialisation"). */
typedef enum { INIT_ZERO, INIT_ONE, INIT_NORMAL, INIT_RESID, INIT_FANIN } param_init;

typedef struct {
    char name[ICAS_VIEW_NAME]; /* GPT-2 name, e.g. "h.0.attn.c_attn.weight" */
    size_t offset;             /* in floats, into the block */
    int rank;                  /* 1 or 2 */
    int shape[2];
    param_init init;
    int fan_in;                /* for INIT_FANIN */
} param_view;

/* Named pointers into one block (parameters or gradients). */
typedef struct {
    float *ln_1_w, *ln_1_b;
    float *c_attn_w, *c_attn_b;   /* [E, 3E]: q | k | v, heads contiguous */
    float *attn_proj_w, *attn_proj_b;
    float *ln_2_w, *ln_2_b;       /* NULL without ffn */
    float *c_fc_w, *c_fc_b;       /* [E, 4E] */
    float *mlp_proj_w, *mlp_proj_b; /* [4E, E] */
} layer_params;

typedef struct {
    float *read_in_w, *read_in_b; /* [d, E], [E] */
    float *wpe;                   /* [T, E] */
    layer_params *h;              /* [L] */
    float *ln_f_w, *ln_f_b;
    float *read_out_w, *read_out_b; /* [E, d], [d] */
} param_ptrs;

typedef struct {
    model_dims dims;
    size_t n_params;
    int n_views;
    param_view *views; /* [n_views] */
    float *params; /* [n_params] */
    float *grads;  /* [n_params] */
    bf16 *params_bf16; /* [n_params] rounded copy, or NULL (model_enable_bf16) */
    param_ptrs p, g;
} model;

/* Linear layers run as one matrix product per block of this many contexts
 * (at most; the last block of a chunk may be smaller), the blocks spread
 * over the OpenMP threads, each product on one thread. Blocks of 240 rows
 * keep a block's activations in cache and need no packing copies in
 * OpenBLAS's small-matrix kernels: one thread trains the L=2, E=32 model
 * 8% faster than with one product per 16-context chunk. A fixed count, not one derived from the thread count, so that
 * every thread count computes the same sums in the same order. */
#define GEMM_BLOCK_CONTEXTS 4

/* Activations for up to M contexts (forward cache and backward scratch). */
typedef struct {
    int M;    /* capacity in contexts */
    precision_kind precision;
    matmul_ctx *mm;  /* the kernels, per-thread state for n_threads */
    int n_threads;   /* omp_get_max_threads() at creation */
    bf16 *lp_qkv;    /* bf16: [M*T, 3E] q, k, v as attention's products read them */
    bf16 *lp_dout;   /* bf16: [M*T, E] the gradient at attention's output */
    bf16 *lp_thread; /* bf16: [n_threads][lp_per_thread] operand scratch */
    size_t lp_per_thread;
    int out_stride;  /* outputs at tokens 0, s, 2s, ... of each context */
    int block_rows;  /* rows per linear-layer product: GEMM_BLOCK_CONTEXTS * T */
    float *dw_part;  /* [blocks][largest IC*OC]: each block's share of a dW */
    float *buf;
    bf16 *lp_buf;
    size_t n_floats;
    /* per layer l, [M*T, ...] */
    float *x_in;     /* read-in output (residual stream at layer 0) [BT,E] */
    float *resid;    /* residual stream entering each layer [L+1][BT,E] */
    float *ln1, *ln1_mean, *ln1_rstd; /* [L][BT,E], [L][BT], [L][BT] */
    float *qkv;      /* [L][BT,3E] */
    float *att;      /* [L][M,H,T,T] weights after softmax/masking (the last
                        layer's [M,H,ceil(T/out_stride),T]) */
    float *atty;     /* [L][BT,E] attention output before projection */
    float *resid_mid;/* [L][BT,E] after attention residual */
    float *ln2, *ln2_mean, *ln2_rstd; /* [L][BT,E], [L][BT], [L][BT] */
    float *gelu_grad;/* [L][BT,4E] GELU'(x) at the MLP's pre-activation x */
    float *fc_gelu;  /* [L][BT,4E] */
    float *lnf, *lnf_mean, *lnf_rstd; /* [BT,E], [BT], [BT] */
    float *out;      /* [M, ceil(T/out_stride), d] read-out at the output tokens */
    /* backward scratch */
    float *d_resid;  /* [BT,E] gradient of the residual stream */
    float *d_tmp;    /* [BT,E] gradient of an attention output or LN output */
    float *d_qkv;    /* [BT,3E] */
    float *d_att;    /* [M,H,T,T] */
    float *d_fc;     /* [BT,4E] */
    float *d_out;    /* [BT,d] scratch for the caller's dloss/dout */
    /* seconds spent, accumulated across calls (for the profile) */
    double t_matmul, t_attention, t_elementwise;
} model_acts;

model_dims model_dims_of(const run_config *cfg);
/* Allocates parameters and gradients and builds the view table. */
int model_create(model *m, model_dims dims, icas_err *err);
/* Allocates and fills m->params_bf16, which activations of PRECISION_BF16
 * read. */
int model_enable_bf16(model *m, icas_err *err);
/* To be called whenever m->params changed (an optimiser step, loading,
 * perturbing): refreshes the bf16 copy, if any. */
void model_params_changed(model *m);
void model_free(model *m);
/* The initialisation of docs/science.md, drawn from the run's seed (stream
 * RNG_INIT); calls model_params_changed. */
void model_init_params(model *m, uint64_t seed);
/* Binds named pointers to a block laid out like m->params. */
void model_bind(const model *m, float *block, param_ptrs *out);
/* The view of a tensor by GPT-2 name, or NULL. */
const param_view *model_find_view(const model *m, const char *name);
size_t model_count_params(model_dims dims);
/* The table of named views of a parameter block of these dimensions, in
 * block order, without allocating the block itself: what a reader or writer
 * of stored parameters needs. *views is malloc'd (free() it). */
int model_view_table(model_dims dims, param_view **views, int *n_views,
                     icas_err *err);

/* out_stride s: the model's outputs are needed only at tokens 0, s, 2s, ...
 * of each context (1: every token). The last layer then carries only those
 * rows past its attention, which no other row of it reaches the output
 * through: with s = 3 (the task's query tokens) and L = 2 that is about a
 * quarter of the work of a training step. */
int model_acts_create(model_acts *a, model_dims dims, int M, int out_stride,
                      precision_kind precision, icas_err *err);
void model_acts_free(model_acts *a);

/* tokens [M, T, d] -> acts->out [M, ceil(T/out_stride), d]. With
 * PRECISION_BF16 acts, m must have its bf16 copy (model_enable_bf16). */
void model_forward(const model *m, model_acts *a, const float *tokens, int M);
/* Given dout = dloss/dout (laid out as acts->out), accumulates (+=)
 * parameter gradients into m->grads. Must follow model_forward on the same
 * acts and tokens. */
void model_backward(model *m, model_acts *a, const float *tokens,
                    const float *dout, int M);
void model_zero_grad(model *m);

#endif
