#include "icasweep/task.h"

#include <stdlib.h>
#include <string.h>

int task_context_alloc(task_context *c, int d, int N)
{
    memset(c, 0, sizeof *c);
    c->d = d;
    c->N = N;
    c->x = malloc(sizeof(float) * (size_t)d);
    c->y_star = malloc(sizeof(float) * (size_t)d);
    c->e = malloc(sizeof(float) * (size_t)d);
    c->resp = malloc(sizeof(float) * (size_t)N * d);
    c->r_true = malloc(sizeof(float) * (size_t)N);
    c->r_noise = malloc(sizeof(float) * (size_t)N);
    c->r_fresh = malloc(sizeof(float) * (size_t)N);
    if (!c->x || !c->y_star || !c->e || !c->resp || !c->r_true || !c->r_noise ||
        !c->r_fresh) {
        task_context_free(c);
        return -1;
    }
    return 0;
}

void task_context_free(task_context *c)
{
    free(c->x);
    free(c->y_star);
    free(c->e);
    free(c->resp);
    free(c->r_true);
    free(c->r_noise);
    free(c->r_fresh);
    memset(c, 0, sizeof *c);
}

void task_sample(task_context *c, rng_state *rng)
{
    int d = c->d, N = c->N;
    float W_star[d * d], W_bad[d * d];
    float *e = c->e;
    for (int i = 0; i < d; i++)
        c->x[i] = rng_normal(rng);
    for (int i = 0; i < d * d; i++)
        W_star[i] = rng_normal(rng);
    for (int i = 0; i < d * d; i++)
        W_bad[i] = rng_normal(rng);
    /* row vector times matrix: y*_j = sum_i x_i W*_ij */
    for (int j = 0; j < d; j++) {
        float ys = 0, eb = 0;
        for (int i = 0; i < d; i++) {
            ys += c->x[i] * W_star[i * d + j];
            eb += c->x[i] * W_bad[i * d + j];
        }
        c->y_star[j] = ys;
        e[j] = eb;
    }
    for (int n = 0; n < N; n++) {
        float r = rng_uniform(rng);
        c->r_true[n] = r;
        c->r_noise[n] = rng_uniform(rng);
        c->r_fresh[n] = rng_uniform(rng);
        for (int j = 0; j < d; j++)
            c->resp[n * d + j] = r * c->y_star[j] + (1 - r) * e[j];
    }
}

void task_seen_rewards(const task_context *c, double p, float *r_seen)
{
    for (int n = 0; n < c->N; n++)
        r_seen[n] = (double)c->r_noise[n] < p ? c->r_fresh[n] : c->r_true[n];
}

void task_tokens(const task_context *c, const float *r_seen, float *tokens)
{
    int d = c->d;
    memset(tokens, 0, sizeof(float) * (size_t)3 * c->N * d);
    for (int n = 0; n < c->N; n++) {
        float *t = tokens + (size_t)3 * n * d;
        memcpy(t, c->x, sizeof(float) * (size_t)d);
        memcpy(t + d, c->resp + (size_t)n * d, sizeof(float) * (size_t)d);
        t[2 * d] = r_seen[n];
    }
}
