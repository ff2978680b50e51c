/* The engine against PyTorch: tests/data/reference.h5 holds float64 forward
 * passes, both losses, their gradients for every tensor, the error curve and
 * one GD-baseline case for small models (see tests/data/README.md). */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/eval.h"
#include "icasweep/loss.h"
#include "icasweep/model.h"
#include "icasweep/task.h"
#include "testutil.h"

static hid_t file;

static int read_doubles(const char *path, double *out, size_t n)
{
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t sp = H5Dget_space(ds);
    hssize_t count = H5Sget_simple_extent_npoints(sp);
    int rc = -1;
    if ((size_t)count == n)
        rc = H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0 ? -1 : 0;
    H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

static int read_int_attr(const char *group, const char *name)
{
    int v = -1;
    hid_t a = H5Aopen_by_name(file, group, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        H5Aread(a, H5T_NATIVE_INT, &v);
        H5Aclose(a);
    }
    return v;
}

static void read_string_attr(const char *group, const char *name, char *out, size_t n)
{
    out[0] = 0;
    hid_t a = H5Aopen_by_name(file, group, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        return;
    hid_t t = H5Aget_type(a);
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &s) >= 0 && s) {
            snprintf(out, n, "%s", s);
            H5free_memory(s);
        }
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(t);
        char *buf = calloc(sz + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz);
        H5Tset_cset(mt, H5Tget_cset(t));
        H5Aread(a, mt, buf);
        snprintf(out, n, "%s", buf);
        free(buf);
        H5Tclose(mt);
    }
    H5Tclose(t);
    H5Aclose(a);
}

/* Relative error of a tensor, normalised by its largest entry, so that tiny
 * components do not dominate (float32 against float64). */
static double max_rel_err(const float *got, const double *want, size_t n)
{
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(got[i] - want[i]));
    return scale > 0 ? worst / scale : worst;
}

/* out_stride 1 computes every token's output, TASK_QUERY_STRIDE only the
 * query tokens' (as training does); both must match PyTorch. */
static void check_group(const char *group, int out_stride)
{
    char attn[32], path[256];
    read_string_attr(group, "attention", attn, sizeof attn);
    run_config cfg = config_default();
    cfg.layers = read_int_attr(group, "layers");
    cfg.embd = read_int_attr(group, "embd");
    cfg.heads = read_int_attr(group, "heads");
    cfg.ffn = read_int_attr(group, "ffn");
    cfg.dims = read_int_attr(group, "dims");
    cfg.points = read_int_attr(group, "points");
    int B = read_int_attr(group, "batch");
    cfg.attention = knob_word_index(&config_knobs[KNOB_ID_attention], attn);
    CHECK(cfg.attention >= 0, "%s: attention '%s'", group, attn);
    icas_err err;
    CHECK(config_validate(&cfg, &err) == 0, "%s: %s", group, err.msg);

    model m;
    model_acts acts;
    if (model_create(&m, model_dims_of(&cfg), &err) || model_acts_create(&acts, m.dims, B, out_stride, PRECISION_FP32, &err)) {
        CHECK(0, "%s: %s", group, err.msg);
        return;
    }
    int d = cfg.dims, N = cfg.points, T = 3 * N;
    int Tq = (T + out_stride - 1) / out_stride, query_row = TASK_QUERY_STRIDE / out_stride;

    /* every tensor of the file is one of ours, with the same size */
    int n_file = 0;
    for (int i = 0; i < m.n_views; i++) {
        const param_view *v = &m.views[i];
        size_t n = (size_t)v->shape[0] * v->shape[1];
        double *w = malloc(n * sizeof *w);
        snprintf(path, sizeof path, "%s/weights/%s", group, v->name);
        int rc = read_doubles(path, w, n);
        CHECK(rc == 0, "%s: missing or mis-sized", path);
        if (rc == 0) {
            n_file++;
            for (size_t j = 0; j < n; j++)
                m.params[v->offset + j] = (float)w[j];
        }
        free(w);
    }
    snprintf(path, sizeof path, "%s/weights", group);
    H5G_info_t info;
    H5Gget_info_by_name(file, path, &info, H5P_DEFAULT);
    CHECK((int)info.nlinks == m.n_views, "%s: file has %d tensors, model %d", group,
          (int)info.nlinks, m.n_views);

    double *tokens_d = malloc(sizeof(double) * B * T * d);
    double *pred_d = malloc(sizeof(double) * B * N * d);
    double *resp_d = malloc(sizeof(double) * B * N * d);
    double *rew_d = malloc(sizeof(double) * B * N);
    double *ystar_d = malloc(sizeof(double) * B * d);
    double err_d[N], loss_want[2];
    snprintf(path, sizeof path, "%s/tokens", group);
    CHECK(read_doubles(path, tokens_d, (size_t)B * T * d) == 0, "%s", path);
    snprintf(path, sizeof path, "%s/pred", group);
    CHECK(read_doubles(path, pred_d, (size_t)B * N * d) == 0, "%s", path);
    snprintf(path, sizeof path, "%s/responses", group);
    CHECK(read_doubles(path, resp_d, (size_t)B * N * d) == 0, "%s", path);
    snprintf(path, sizeof path, "%s/rewards_seen", group);
    CHECK(read_doubles(path, rew_d, (size_t)B * N) == 0, "%s", path);
    snprintf(path, sizeof path, "%s/y_star", group);
    CHECK(read_doubles(path, ystar_d, (size_t)B * d) == 0, "%s", path);
    snprintf(path, sizeof path, "%s/err", group);
    CHECK(read_doubles(path, err_d, (size_t)N) == 0, "%s", path);
    snprintf(path, sizeof path, "%s/loss_pl", group);
    CHECK(read_doubles(path, &loss_want[0], 1) == 0, "%s", path);
    snprintf(path, sizeof path, "%s/loss_bt", group);
    CHECK(read_doubles(path, &loss_want[1], 1) == 0, "%s", path);

    float *tokens = malloc(sizeof(float) * B * T * d);
    float *pred = malloc(sizeof(float) * B * N * d);
    float *resp = malloc(sizeof(float) * B * N * d);
    float *rew = malloc(sizeof(float) * B * N);
    float *ystar = malloc(sizeof(float) * B * d);
    for (int i = 0; i < B * T * d; i++) tokens[i] = (float)tokens_d[i];
    for (int i = 0; i < B * N * d; i++) resp[i] = (float)resp_d[i];
    for (int i = 0; i < B * N; i++) rew[i] = (float)rew_d[i];
    for (int i = 0; i < B * d; i++) ystar[i] = (float)ystar_d[i];

    model_forward(&m, &acts, tokens, B);
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++)
            memcpy(pred + ((size_t)b * N + n) * d,
                   acts.out + ((size_t)b * Tq + (size_t)query_row * n) * d,
                   sizeof(float) * d);
    double e = max_rel_err(pred, pred_d, (size_t)B * N * d);
    CHECK(e < 1e-5, "%s, output stride %d: predictions differ from PyTorch by %.3g "
          "(relative)", group, out_stride, e);

    for (int n = 0; n < N; n++) {
        double err_n = 0;
        for (int b = 0; b < B; b++)
            err_n += 1 - loss_cosine(pred + ((size_t)b * N + n) * d, ystar + (size_t)b * d, d);
        err_n /= B;
        CHECK(test_close(err_n, err_d[n], 1e-5, 1e-4), "%s: err[%d] %.8g vs %.8g", group, n,
              err_n, err_d[n]);
    }

    loss_kind kinds[2] = {LOSS_PL, LOSS_BT};
    const char *gnames[2] = {"grad_pl", "grad_bt"};
    for (int k = 0; k < 2; k++) {
        model_zero_grad(&m);
        float *dout = calloc((size_t)B * T * d, sizeof(float));
        float *dpred = calloc((size_t)N * d, sizeof(float));
        double loss = 0;
        for (int b = 0; b < B; b++) {
            memset(dpred, 0, sizeof(float) * N * d);
            loss += loss_context(kinds[k], pred + (size_t)b * N * d, resp + (size_t)b * N * d,
                                 rew + (size_t)b * N, N, d, 1.0f / B, dpred) / B;
            for (int n = 0; n < N; n++)
                memcpy(dout + ((size_t)b * Tq + (size_t)query_row * n) * d,
                       dpred + (size_t)n * d,
                       sizeof(float) * d);
        }
        CHECK(test_close(loss, loss_want[k], 1e-5, 1e-5), "%s: %s loss %.10g vs %.10g", group,
              loss_name(kinds[k]), loss, loss_want[k]);
        model_backward(&m, &acts, tokens, dout, B);
        double worst = 0;
        const char *worst_name = "";
        for (int i = 0; i < m.n_views; i++) {
            const param_view *v = &m.views[i];
            size_t n = (size_t)v->shape[0] * v->shape[1];
            double *gw = malloc(n * sizeof *gw);
            snprintf(path, sizeof path, "%s/%s/%s", group, gnames[k], v->name);
            if (read_doubles(path, gw, n) == 0) {
                double ge = max_rel_err(m.grads + v->offset, gw, n);
                CHECK(ge < 1e-4, "%s, output stride %d: %s differs by %.3g (relative)", group,
                      out_stride, path, ge);
                if (ge > worst) {
                    worst = ge;
                    worst_name = v->name;
                }
            } else {
                CHECK(0, "%s: missing", path);
            }
            free(gw);
        }
        printf("%s %s: loss %.8f (ref %.8f), worst gradient error %.2e (%s)\n", group,
               loss_name(kinds[k]), loss, loss_want[k], worst, worst_name);
        free(dout);
        free(dpred);
    }
    printf("%s, output stride %d: %d tensors, prediction error %.2e\n", group, out_stride,
           n_file, e);
    free(tokens_d); free(pred_d); free(resp_d); free(rew_d); free(ystar_d);
    free(tokens); free(pred); free(resp); free(rew); free(ystar);
    model_acts_free(&acts);
    model_free(&m);
}

static void check_gd_baseline(void)
{
    int d = 5, k = read_int_attr("gd_baseline", "examples");
    int steps = read_int_attr("gd_baseline", "steps");
    CHECK(k == 6 && steps == 43, "gd_baseline attrs k=%d steps=%d", k, steps);
    CHECK(eval_gd_steps(0.25) == 43, "floor(50-25*0.25) = %d", eval_gd_steps(0.25));
    CHECK(eval_gd_steps(0) == 50 && eval_gd_steps(1) == 25, "gd steps at p=0,1");
    double x_d[5], resp_d[30], rew_d[6], ystar_d[5], A_d[25], Af_d[25], err_want;
    CHECK(read_doubles("gd_baseline/x", x_d, 5) == 0, "x");
    CHECK(read_doubles("gd_baseline/responses", resp_d, 30) == 0, "responses");
    CHECK(read_doubles("gd_baseline/rewards", rew_d, 6) == 0, "rewards");
    CHECK(read_doubles("gd_baseline/y_star", ystar_d, 5) == 0, "y_star");
    CHECK(read_doubles("gd_baseline/A_init", A_d, 25) == 0, "A_init");
    CHECK(read_doubles("gd_baseline/A_final", Af_d, 25) == 0, "A_final");
    CHECK(read_doubles("gd_baseline/err", &err_want, 1) == 0, "err");
    float x[5], resp[30], rew[6], ystar[5], A[25];
    for (int i = 0; i < 5; i++) { x[i] = (float)x_d[i]; ystar[i] = (float)ystar_d[i]; }
    for (int i = 0; i < 30; i++) resp[i] = (float)resp_d[i];
    for (int i = 0; i < 6; i++) rew[i] = (float)rew_d[i];
    for (int i = 0; i < 25; i++) A[i] = (float)A_d[i];
    double err = eval_gd_one(x, resp, rew, k, d, steps, ystar, A);
    CHECK(test_close(err, err_want, 1e-5, 1e-4), "GD baseline err %.8g vs %.8g", err, err_want);
    double ae = max_rel_err(A, Af_d, 25);
    CHECK(ae < 1e-4, "GD baseline A_final differs by %.3g", ae);
    printf("gd_baseline: err %.8f (ref %.8f), A_final error %.2e\n", err, err_want, ae);
}

int main(void)
{
    const char *dir = getenv("ICAS_TESTDATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/reference.h5", dir ? dir : "tests/data");
    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    const char *groups[] = {"softmax_mlp", "linear_mlp", "softmax_nomlp", "softmax_h3"};
    for (int i = 0; i < 4; i++) {
        check_group(groups[i], 1);
        check_group(groups[i], TASK_QUERY_STRIDE);
    }
    check_gd_baseline();
    H5Fclose(file);
    return test_finish("test_reference");
}
