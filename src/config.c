#include "icasweep/config.h"

#include <inttypes.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "icasweep/hash.h"

run_config config_default(void)
{
    run_config c;
    memset(&c, 0, sizeof c);
    c.dims = 5;
    c.points = 20;
    c.layers = 20;
    c.heads = 3;
    c.embd = 96;
    c.attention = ATTN_SOFTMAX;
    c.ffn = 1;
    c.loss = LOSS_PL;
    c.steps = 3000;
    c.batch = 256;
    c.lr = 1e-4;
    c.train_noise = 0.0;
    c.seed = 0;
    c.eval_batch = 256;
    c.n_eval_noise = 5;
    for (int i = 0; i < 5; i++)
        c.eval_noise[i] = 0.25 * i;
    return c;
}

const char *attention_name(attention_kind k)
{
    return k == ATTN_LINEAR ? "linear" : "softmax";
}

const char *loss_name(loss_kind k) { return k == LOSS_BT ? "bt" : "pl"; }

int attention_parse(const char *s, attention_kind *out)
{
    if (strcmp(s, "softmax") == 0) *out = ATTN_SOFTMAX;
    else if (strcmp(s, "linear") == 0) *out = ATTN_LINEAR;
    else return -1;
    return 0;
}

int loss_parse(const char *s, loss_kind *out)
{
    if (strcmp(s, "pl") == 0) *out = LOSS_PL;
    else if (strcmp(s, "bt") == 0) *out = LOSS_BT;
    else return -1;
    return 0;
}

/* Upper bounds keep a typo (--layers 2000) from allocating the machine away. */
int config_validate(const run_config *c, icas_err *err)
{
#define POSITIVE(field, flag, max)                                           \
    if (c->field <= 0 || c->field > (max))                                   \
        return icas_fail(err, flag " %d: must be between 1 and %d",          \
                         c->field, (max));
    POSITIVE(dims, "--dims", CONFIG_MAX_DIMS)
    POSITIVE(layers, "--layers", 1024)
    POSITIVE(heads, "--heads", 1024)
    POSITIVE(embd, "--embd", 65536)
    POSITIVE(steps, "--steps", 100000000)
    POSITIVE(batch, "--batch", 1000000)
    POSITIVE(eval_batch, "--eval-batch", 1000000)
#undef POSITIVE
    if (c->points < 3 || c->points > 10000)
        return icas_fail(err, "--points %d: must be between 3 and 10000 "
                              "(the loss needs predictions n >= 2)", c->points);
    if (c->embd % c->heads != 0)
        return icas_fail(err, "--heads %d does not divide --embd %d",
                         c->heads, c->embd);
    if (c->attention != ATTN_SOFTMAX && c->attention != ATTN_LINEAR)
        return icas_fail(err, "--attention: unknown kind %d", (int)c->attention);
    if (c->loss != LOSS_PL && c->loss != LOSS_BT)
        return icas_fail(err, "--loss: unknown kind %d", (int)c->loss);
    if (c->ffn != 0 && c->ffn != 1)
        return icas_fail(err, "--ffn %d: must be on or off", c->ffn);
    if (!(c->lr > 0) || !isfinite(c->lr))
        return icas_fail(err, "--lr %g: must be a positive number", c->lr);
    if (!(c->train_noise >= 0 && c->train_noise <= 1))
        return icas_fail(err, "--train-noise %g: must be in [0,1]", c->train_noise);
    if (c->n_eval_noise < 1 || c->n_eval_noise > ICAS_MAX_EVAL_NOISE)
        return icas_fail(err, "--eval-noise: between 1 and %d levels, got %d",
                         ICAS_MAX_EVAL_NOISE, c->n_eval_noise);
    for (int i = 0; i < c->n_eval_noise; i++)
        if (!(c->eval_noise[i] >= 0 && c->eval_noise[i] <= 1))
            return icas_fail(err, "--eval-noise %g: must be in [0,1]",
                             c->eval_noise[i]);
    if (config_check_sizes(c, err))
        return -1;
    return config_validate_selfcorrect(c, err);
}

int config_validate_selfcorrect(const run_config *c, icas_err *err)
{
    if (c->sc_rounds < 0 || c->sc_rounds > 10000)
        return icas_fail(err, "--sc-rounds %d: must be between 0 (no closed loop) and 10000",
                         c->sc_rounds);
    if (c->n_sc_k0 < 0 || c->n_sc_k0 > ICAS_MAX_SC_K0)
        return icas_fail(err, "--sc-k0: at most %d values, got %d", ICAS_MAX_SC_K0, c->n_sc_k0);
    if (c->n_sc_q < 0 || c->n_sc_q > ICAS_MAX_SC_Q)
        return icas_fail(err, "--sc-q: at most %d levels, got %d", ICAS_MAX_SC_Q, c->n_sc_q);
    if (c->sc_rounds == 0) {
        if (c->n_sc_k0 || c->n_sc_q)
            return icas_fail(err, "--sc-%s given without --sc-rounds (the number of "
                                  "closed-loop rounds, at least 1)", c->n_sc_k0 ? "k0" : "q");
        return 0;
    }
    if (c->n_sc_k0 == 0 || c->n_sc_q == 0)
        return icas_fail(err, "--sc-rounds %d: needs --sc-%s (a list such as %s)", c->sc_rounds,
                         c->n_sc_k0 == 0 ? "k0" : "q", c->n_sc_k0 == 0 ? "2,5" : "0,0.5,1");
    for (int i = 0; i < c->n_sc_k0; i++) {
        int k0 = c->sc_k0[i];
        /* the loop predicts at query positions k0 .. k0 + rounds - 1 (SPEC:
         * it runs while k0 + rounds <= N - 1) */
        if (k0 < 0 || (long)k0 + c->sc_rounds > (long)c->points - 1)
            return icas_fail(err, "--sc-k0 %d: with --sc-rounds %d, k0 must be in [0, %d] "
                                  "(k0 + rounds at most --points %d minus 1)",
                             k0, c->sc_rounds, c->points - 1 - c->sc_rounds, c->points);
        for (int j = 0; j < i; j++)
            if (c->sc_k0[j] == k0)
                return icas_fail(err, "--sc-k0 %d: listed twice", k0);
    }
    for (int i = 0; i < c->n_sc_q; i++) {
        double q = c->sc_q[i];
        if (!(q >= 0 && q <= 1))
            return icas_fail(err, "--sc-q %g: must be in [0,1]", q);
        for (int j = 0; j < i; j++)
            if (c->sc_q[j] == q)
                return icas_fail(err, "--sc-q %g: listed twice", q);
    }
    return 0;
}

/* Products of sizes that the engine holds in an `int` (array indices, MPI
 * element counts) or on the stack; each is refused here, before any work,
 * rather than overflowing later. The table is in the README ("Limits"). */
int config_check_sizes(const run_config *c, icas_err *err)
{
    const int64_t M = CONFIG_MAX_CONTEXTS_PER_PASS, T = 3 * (int64_t)c->points;
    const int64_t E = c->embd, d = c->dims, H = c->heads, L = c->layers;
    if (c->dims > CONFIG_MAX_DIMS)
        return icas_fail(err, "--dims %d: at most %d (the task and the GD baseline keep "
                              "d x d matrices on the stack)", c->dims, CONFIG_MAX_DIMS);
    struct {
        const char *what;
        double value; /* in double: the products themselves may overflow int64 */
    } products[] = {
        {"parameters (sent as one MPI message)", config_param_count(c)},
        {"activations of one layer's MLP, 8 contexts x 3*points tokens x 4*embd",
         (double)M * T * 4 * E},
        {"attention scores of one layer, 8 contexts x heads x (3*points)^2",
         (double)M * H * T * T},
        {"one weight matrix, embd x 4*embd", 4.0 * E * E},
        {"evaluation tokens, eval_batch x 3*points x dims (sent as one MPI message)",
         (double)c->eval_batch * T * d},
        {"evaluation errors, eval_batch x points x 3", (double)c->eval_batch * T},
        {"layers x 8 contexts x 3*points tokens", (double)L * M * T},
    };
    for (size_t i = 0; i < sizeof products / sizeof products[0]; i++)
        if (products[i].value > (double)INT32_MAX)
            return icas_fail(err, "--layers %d --heads %d --embd %d --points %d --dims %d "
                                  "--eval-batch %d: %s = %.3g exceeds %d",
                             c->layers, c->heads, c->embd, c->points, c->dims,
                             c->eval_batch, products[i].what, products[i].value, INT32_MAX);
    return 0;
}

void config_describe(const run_config *c, char *out, size_t n)
{
    snprintf(out, n,
             "L=%d H=%d E=%d %s ffn=%s loss=%s p=%g lr=%g batch=%d steps=%d "
             "seed=%" PRIu64,
             c->layers, c->heads, c->embd, attention_name(c->attention),
             c->ffn ? "on" : "off", loss_name(c->loss), c->train_noise, c->lr,
             c->batch, c->steps, c->seed);
    size_t len = strlen(out);
    if (c->sc_rounds > 0 && len < n)
        snprintf(out + len, n - len, " selfcorrect: rounds=%d x %d k0 x %d q", c->sc_rounds,
                 c->n_sc_k0, c->n_sc_q);
}

/* FNV-1a over a canonical text of the configuration: stable across
 * machines and builds, unlike hashing the struct's bytes (padding). */
void config_run_id(const run_config *c, char out[ICAS_RUN_ID_LEN])
{
    char canon[1024];
    int len = snprintf(canon, sizeof canon,
                       "d=%d;N=%d;L=%d;H=%d;E=%d;attn=%s;ffn=%d;loss=%s;"
                       "steps=%d;batch=%d;lr=%.17g;p=%.17g;seed=%" PRIu64
                       ";eb=%d;en=",
                       c->dims, c->points, c->layers, c->heads, c->embd,
                       attention_name(c->attention), c->ffn, loss_name(c->loss),
                       c->steps, c->batch, c->lr, c->train_noise, c->seed,
                       c->eval_batch);
    for (int i = 0; i < c->n_eval_noise && len < (int)sizeof canon - 32; i++)
        len += snprintf(canon + len, sizeof canon - (size_t)len, "%.17g,",
                        c->eval_noise[i]);
    if (c->sc_rounds > 0) {
        len += snprintf(canon + len, sizeof canon - (size_t)len, ";sc=%d;k0=", c->sc_rounds);
        for (int i = 0; i < c->n_sc_k0 && len < (int)sizeof canon - 32; i++)
            len += snprintf(canon + len, sizeof canon - (size_t)len, "%d,", c->sc_k0[i]);
        len += snprintf(canon + len, sizeof canon - (size_t)len, ";q=");
        for (int i = 0; i < c->n_sc_q && len < (int)sizeof canon - 32; i++)
            len += snprintf(canon + len, sizeof canon - (size_t)len, "%.17g,", c->sc_q[i]);
    }
    uint64_t h = hash_fnv1a64(canon, (size_t)len, HASH_ICASWEEP_INIT);
    snprintf(out, ICAS_RUN_ID_LEN, "r%016" PRIx64, h);
}

double config_param_count(const run_config *c)
{
    double E = c->embd, d = c->dims, T = 3.0 * c->points, L = c->layers;
    double block = 2 * E + E * 3 * E + 3 * E + E * E + E;
    if (c->ffn)
        block += 2 * E + E * 4 * E + 4 * E + 4 * E * E + E;
    return d * E + E + T * E + L * block + 2 * E + E * d + d;
}

double config_train_step_flops(const run_config *c)
{
    double T = 3.0 * c->points;
    double per_token = 6 * config_param_count(c) + 6.0 * c->layers * c->embd * T;
    return per_token * T * c->batch;
}

double config_run_flops(const run_config *c)
{
    double T = 3.0 * c->points;
    double fwd_per_token = 2 * config_param_count(c) + 2.0 * c->layers * c->embd * T;
    double eval = fwd_per_token * T * c->eval_batch * c->n_eval_noise;
    /* GD baseline: per (context, k, level) about 50 Adam steps of k cosines
     * and a d x d update; small but counted. */
    double gd = (double)c->eval_batch * c->points * c->n_eval_noise * 50.0 *
                (c->points * 6.0 * c->dims + 4.0 * c->dims * c->dims);
    /* closed loop: a forward pass of the evaluation batch per round, per
     * (q, k0), and one per q for the open-loop comparison */
    double sc = c->sc_rounds > 0
                    ? fwd_per_token * T * c->eval_batch * c->n_sc_q * (c->n_sc_k0 * c->sc_rounds + 1.0)
                    : 0;
    return config_train_step_flops(c) * c->steps + eval + gd + sc;
}
