/* The transformer: central finite-difference checks of the gradient of every
 * parameter tensor (softmax and linear attention, with and without MLP, both
 * losses, outputs at every token or only at the query tokens as in
 * training), the two output layouts agreeing, and causality (changing token
 * t changes no output before t). In bf16 (products with bf16 inputs) the
 * analytic gradient is held against the FP32 model's finite differences at
 * a looser tolerance, BF16_GRAD_TOL, since the rounding of the inputs
 * (relative 2^-9) is not differentiable; its outputs stay within
 * BF16_OUT_TOL of FP32's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/loss.h"
#include "icasweep/model.h"
#include "icasweep/rng.h"
#include "icasweep/task.h"
#include "testutil.h"

enum { B = 2 };

/* normalised gradient error of the FP32 model (finite differences with
 * h = 1e-2 |w|), and of bf16's analytic gradient against them: measured
 * at most 1.9e-3 and 3.2e-2 over the checks below (the MLP's tensors the
 * worst in bf16); bf16 outputs were 5.9e-3 from FP32's */
#define FP32_GRAD_TOL 2e-2
#define BF16_GRAD_TOL 5e-2
#define BF16_OUT_TOL 2e-2

typedef struct {
    run_config cfg;
    int out_stride; /* 1 or TASK_QUERY_STRIDE */
    model m;
    model_acts a;
    task_context ctx[B];
    float *tokens, *r_seen, *dout;
} fixture;

static void fixture_init_prec(fixture *f, attention_kind attn, int ffn, loss_kind loss,
                              int out_stride, precision_kind prec)
{
    icas_err err;
    f->cfg = config_default();
    f->cfg.dims = 3;
    f->cfg.points = 5;
    f->cfg.layers = 2;
    f->cfg.heads = 2;
    f->cfg.embd = 8;
    f->cfg.attention = attn;
    f->cfg.ffn = ffn;
    f->cfg.loss = loss;
    f->out_stride = out_stride;
    int d = 3, N = 5, T = 15;
    if (model_create(&f->m, model_dims_of(&f->cfg), &err) ||
        model_acts_create(&f->a, f->m.dims, B, out_stride, prec, &err) ||
        (prec == PRECISION_BF16 && model_enable_bf16(&f->m, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    model_init_params(&f->m, 5);
    /* larger weights than GPT-2's 0.02 so every path carries signal */
    rng_state s;
    rng_init(&s, 77, 1);
    for (size_t i = 0; i < f->m.n_params; i++)
        f->m.params[i] += 0.3f * rng_normal(&s);
    model_params_changed(&f->m);
    f->tokens = malloc(sizeof(float) * B * T * d);
    f->r_seen = malloc(sizeof(float) * B * N);
    f->dout = calloc((size_t)B * T * d, sizeof(float));
    for (int b = 0; b < B; b++) {
        task_context_alloc(&f->ctx[b], d, N);
        rng_init(&s, 3, (uint64_t)b);
        task_sample(&f->ctx[b], &s);
        task_seen_rewards(&f->ctx[b], 0.0, f->r_seen + b * N);
        task_tokens(&f->ctx[b], f->r_seen + b * N, f->tokens + b * T * d);
    }
}

static void fixture_init(fixture *f, attention_kind attn, int ffn, loss_kind loss,
                         int out_stride)
{
    fixture_init_prec(f, attn, ffn, loss, out_stride, PRECISION_FP32);
}

static void fixture_free(fixture *f)
{
    for (int b = 0; b < B; b++)
        task_context_free(&f->ctx[b]);
    free(f->tokens);
    free(f->r_seen);
    free(f->dout);
    model_acts_free(&f->a);
    model_free(&f->m);
}

/* the output row of context b's prediction n */
static float *pred_row(const fixture *f, float *out, int b, int n)
{
    int T = 3 * f->cfg.points, s = f->out_stride, Tq = (T + s - 1) / s;
    return out + ((size_t)b * Tq + (size_t)TASK_QUERY_STRIDE * n / s) * f->cfg.dims;
}

/* forward + loss; with grad, also the backward pass into m.grads */
static double loss_of(fixture *f, int grad)
{
    int d = f->cfg.dims, N = f->cfg.points, T = 3 * N;
    model_forward(&f->m, &f->a, f->tokens, B);
    double loss = 0;
    memset(f->dout, 0, sizeof(float) * B * T * d);
    for (int b = 0; b < B; b++) {
        float pred[N * d], dpred[N * d];
        memset(dpred, 0, sizeof dpred);
        for (int n = 0; n < N; n++)
            memcpy(pred + n * d, pred_row(f, f->a.out, b, n), sizeof(float) * d);
        loss += loss_context(f->cfg.loss, pred, f->ctx[b].resp, f->r_seen + b * N, N, d,
                             1.0f / B, grad ? dpred : NULL) / B;
        for (int n = 0; n < N; n++)
            memcpy(pred_row(f, f->dout, b, n), dpred + n * d, sizeof(float) * d);
    }
    if (grad) {
        model_zero_grad(&f->m);
        model_backward(&f->m, &f->a, f->tokens, f->dout, B);
    }
    return loss;
}

/* The analytic gradient in precision prec against central finite
 * differences of the FP32 model. */
static void check_gradients(attention_kind attn, int ffn, loss_kind loss, int out_stride,
                            precision_kind prec)
{
    fixture f, lp;
    fixture_init(&f, attn, ffn, loss, out_stride);
    float *analytic = malloc(sizeof(float) * f.m.n_params);
    if (prec == PRECISION_BF16) {
        fixture_init_prec(&lp, attn, ffn, loss, out_stride, prec);
        loss_of(&lp, 1);
        memcpy(analytic, lp.m.grads, sizeof(float) * f.m.n_params);
        fixture_free(&lp);
    } else {
        loss_of(&f, 1);
        memcpy(analytic, f.m.grads, sizeof(float) * f.m.n_params);
    }
    const double tol = prec == PRECISION_BF16 ? BF16_GRAD_TOL : FP32_GRAD_TOL;
    const char *pname = prec == PRECISION_BF16 ? "bf16" : "fp32";
    double worst = 0;
    for (int v = 0; v < f.m.n_views; v++) {
        const param_view *view = &f.m.views[v];
        size_t n = (size_t)view->shape[0] * view->shape[1];
        double num = 0, den = 0;
        /* every entry of small tensors, a spread sample of large ones */
        size_t stride = n > 24 ? n / 24 : 1;
        for (size_t j = 0; j < n; j += stride) {
            float *w = f.m.params + view->offset + j;
            float save = *w, h = 1e-2f * fmaxf(1.0f, fabsf(save));
            *w = save + h;
            double up = loss_of(&f, 0);
            *w = save - h;
            double down = loss_of(&f, 0);
            *w = save;
            double fd = (up - down) / (2.0 * h);
            double an = analytic[view->offset + j];
            num += (fd - an) * (fd - an);
            den += fd * fd + an * an;
        }
        /* normalised error of the whole tensor, as ggml's GRAD mode does */
        double e = den > 0 ? sqrt(num / den) : sqrt(num);
        if (e > worst)
            worst = e;
        CHECK(e < tol && den > 0, "%s: %s attention, ffn %s, %s loss, output stride %d: %s "
              "gradient error %.3g (|g|^2 %.3g)", pname, attention_name(attn),
              ffn ? "on" : "off", loss_name(loss), out_stride, view->name, e, den);
    }
    printf("gradient check %s %s ffn=%s %s stride %d: %d tensors, worst normalised error "
           "%.2e\n", pname, attention_name(attn), ffn ? "on" : "off", loss_name(loss),
           out_stride, f.m.n_views, worst);
    free(analytic);
    fixture_free(&f);
}

static void check_causality(attention_kind attn, precision_kind prec)
{
    fixture f;
    fixture_init_prec(&f, attn, 1, LOSS_PL, 1, prec);
    int d = f.cfg.dims, T = 3 * f.cfg.points;
    model_forward(&f.m, &f.a, f.tokens, B);
    float *before = malloc(sizeof(float) * B * T * d);
    memcpy(before, f.a.out, sizeof(float) * B * T * d);
    for (int t = 0; t < T; t += 4) {
        for (int j = 0; j < d; j++)
            f.tokens[(1 * T + t) * d + j] += 1.5f; /* context 1 only */
        model_forward(&f.m, &f.a, f.tokens, B);
        int earlier_same = memcmp(f.a.out + T * d, before + T * d, sizeof(float) * t * d) == 0;
        int other_same = memcmp(f.a.out, before, sizeof(float) * T * d) == 0;
        int later_changed = memcmp(f.a.out + (T + t) * d, before + (T + t) * d,
                                   sizeof(float) * (T - t) * d) != 0;
        CHECK(earlier_same, "%s: changing token %d changed an earlier output",
              attention_name(attn), t);
        CHECK(other_same, "%s: changing context 1 changed context 0", attention_name(attn));
        CHECK(later_changed, "%s: changing token %d changed nothing after it",
              attention_name(attn), t);
        for (int j = 0; j < d; j++)
            f.tokens[(1 * T + t) * d + j] -= 1.5f;
        model_forward(&f.m, &f.a, f.tokens, B);
        memcpy(before, f.a.out, sizeof(float) * B * T * d);
    }
    free(before);
    fixture_free(&f);
}

/* Outputs only at the query tokens are the same numbers as those tokens'
 * outputs with every token computed, and so is the gradient, to rounding:
 * the last layer's other rows cannot reach them. */
static void check_query_outputs(attention_kind attn, int ffn)
{
    fixture all, q;
    fixture_init(&all, attn, ffn, LOSS_PL, 1);
    fixture_init(&q, attn, ffn, LOSS_PL, TASK_QUERY_STRIDE);
    double loss_all = loss_of(&all, 1), loss_q = loss_of(&q, 1);
    /* norm-wise, not per element: which GEMM kernel OpenBLAS picks for the
     * CPU changes the rounding, and an output near zero would turn a last-bit
     * difference into a large relative one */
    double out_num = 0, out_den = 0;
    for (int b = 0; b < B; b++)
        for (int n = 0; n < all.cfg.points; n++)
            for (int j = 0; j < all.cfg.dims; j++) {
                double x = pred_row(&all, all.a.out, b, n)[j], y = pred_row(&q, q.a.out, b, n)[j];
                out_num += (x - y) * (x - y);
                out_den += x * x;
            }
    double out_rel = out_den > 0 ? sqrt(out_num / out_den) : 1;
    double num = 0, den = 0;
    for (size_t i = 0; i < all.m.n_params; i++) {
        double x = all.m.grads[i], y = q.m.grads[i];
        num += (x - y) * (x - y);
        den += x * x;
    }
    CHECK(out_rel < 1e-5, "%s ffn=%s: query-only outputs differ by %.3g (relative)",
          attention_name(attn), ffn ? "on" : "off", out_rel);
    CHECK(fabs(loss_all - loss_q) <= 1e-6 * fabs(loss_all), "%s ffn=%s: loss %.9g vs %.9g",
          attention_name(attn), ffn ? "on" : "off", loss_all, loss_q);
    CHECK(den > 0 && sqrt(num / den) < 1e-5, "%s ffn=%s: query-only gradient differs by %.3g",
          attention_name(attn), ffn ? "on" : "off", den > 0 ? sqrt(num / den) : 0.0);
    printf("query-only outputs %s ffn=%s: outputs within %.1e, gradient within %.1e\n",
           attention_name(attn), ffn ? "on" : "off", out_rel, den > 0 ? sqrt(num / den) : 0.0);
    fixture_free(&all);
    fixture_free(&q);
}

/* bf16 outputs are FP32's to within BF16_OUT_TOL (norm-wise), and not
 * FP32's bits: the products really read rounded inputs. */
static void check_bf16_outputs(attention_kind attn)
{
    fixture f, lp;
    fixture_init(&f, attn, 1, LOSS_PL, 1);
    fixture_init_prec(&lp, attn, 1, LOSS_PL, 1, PRECISION_BF16);
    model_forward(&f.m, &f.a, f.tokens, B);
    model_forward(&lp.m, &lp.a, lp.tokens, B);
    size_t n = (size_t)B * 3 * f.cfg.points * f.cfg.dims;
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (double)(f.a.out[i] - lp.a.out[i]) * (f.a.out[i] - lp.a.out[i]);
        den += (double)f.a.out[i] * f.a.out[i];
    }
    double rel = den > 0 ? sqrt(num / den) : 1;
    CHECK(rel < BF16_OUT_TOL && rel > 1e-5, "%s: bf16 outputs %.3g from FP32's (relative)",
          attention_name(attn), rel);
    printf("bf16 outputs %s: within %.1e of FP32's\n", attention_name(attn), rel);
    fixture_free(&f);
    fixture_free(&lp);
}

/* The closed formula of config_param_count (which the cost estimate and
 * FLOP counts use) and the size of the view table (what the model
 * allocates) agree. */
static void check_param_count(void)
{
    int checked = 0;
    for (int L = 1; L <= 5; L += 2)
        for (int E = 6; E <= 96; E += 45)
            for (int d = 1; d <= 9; d += 4)
                for (int points = 3; points <= 20; points += 17)
                    for (int ffn = 0; ffn < 2; ffn++) {
                        run_config c = config_default();
                        c.layers = L;
                        c.embd = E;
                        c.heads = 3;
                        c.dims = d;
                        c.points = points;
                        c.ffn = ffn;
                        size_t table = model_count_params(model_dims_of(&c));
                        CHECK((double)table == config_param_count(&c),
                              "L=%d E=%d d=%d N=%d ffn=%d: table %zu, formula %.0f", L, E, d,
                              points, ffn, table, config_param_count(&c));
                        checked++;
                    }
    printf("parameter count: formula and table agree at %d configurations\n", checked);
}

int main(void)
{
    check_param_count();
    for (int a = 0; a < 2; a++)
        for (int ffn = 0; ffn < 2; ffn++) {
            for (int l = 0; l < 2; l++)
                for (int s = 1; s <= TASK_QUERY_STRIDE; s += TASK_QUERY_STRIDE - 1)
                    /* bf16 in training's layout only (outputs at the
                     * query tokens): the layouts agree, checked below */
                    for (int prec = 0; prec < (s > 1 ? 2 : 1); prec++)
                        check_gradients(a ? ATTN_LINEAR : ATTN_SOFTMAX, ffn,
                                        l ? LOSS_BT : LOSS_PL, s, (precision_kind)prec);
            check_query_outputs(a ? ATTN_LINEAR : ATTN_SOFTMAX, ffn);
        }
    for (int prec = 0; prec < 2; prec++) {
        check_causality(ATTN_SOFTMAX, (precision_kind)prec);
        check_causality(ATTN_LINEAR, (precision_kind)prec);
    }
    check_bf16_outputs(ATTN_SOFTMAX);
    check_bf16_outputs(ATTN_LINEAR);
    return test_finish("test_model");
}
