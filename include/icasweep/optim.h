/* Adam (docs/science.md, "Training"), PyTorch's formulation, over one flat block. */
#ifndef ICASWEEP_OPTIM_H
#define ICASWEEP_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "icasweep/error.h"

typedef struct {
    double lr, beta1, beta2, eps;
    int64_t t;  /* steps taken */
    size_t n;
    float *m;   /* [n] first moments */
    float *v;   /* [n] second moments */
} adam_state;

int adam_init(adam_state *a, size_t n, double lr, icas_err *err);
void adam_free(adam_state *a);
/* One step: params -= lr_t * m_hat / (sqrt(v_hat) + eps). */
void adam_step(adam_state *a, float *params, const float *grads);

#endif
