#include "icasweep/optim.h"

#include <math.h>
#include <stdlib.h>

int adam_init(adam_state *a, size_t n, double lr, icas_err *err)
{
    a->lr = lr;
    a->beta1 = 0.9;
    a->beta2 = 0.999;
    a->eps = 1e-8;
    a->t = 0;
    a->n = n;
    a->m = calloc(n, sizeof(float));
    a->v = calloc(n, sizeof(float));
    if (!a->m || !a->v) {
        adam_free(a);
        return icas_fail(err, "adam: out of memory for %zu parameters", n);
    }
    return 0;
}

void adam_free(adam_state *a)
{
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}

void adam_step(adam_state *a, float *params, const float *grads)
{
    a->t++;
    float b1 = (float)a->beta1, b2 = (float)a->beta2;
    double bc1 = 1.0 - pow(a->beta1, (double)a->t);
    double bc2 = 1.0 - pow(a->beta2, (double)a->t);
    /* PyTorch: p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) */
    float step = (float)(a->lr / bc1);
    float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    float eps = (float)a->eps;
    float *m = a->m, *v = a->v;
    size_t n = a->n;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        params[i] -= step * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
    }
}
