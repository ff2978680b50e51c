#include "icasweep/result.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "icasweep/model.h"

const char *run_status_name(run_status s)
{
    switch (s) {
    case RUN_PENDING: return "pending";
    case RUN_DONE: return "done";
    case RUN_DIVERGED: return "diverged";
    case RUN_FAILED: return "failed";
    case RUN_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}

void run_result_curves(run_result *r, float *curves[RUN_RESULT_N_CURVES])
{
    curves[0] = r->tf_err;
    curves[1] = r->gd_err;
    curves[2] = r->blind_err;
    curves[3] = r->pick_err;
}

int run_result_alloc(run_result *r, const run_config *cfg, int with_model,
                     icas_err *err)
{
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    config_run_id(cfg, r->run_id);
    r->P = cfg->n_eval_noise;
    r->N = cfg->points;
    r->final_loss = NAN;
    size_t PN = (size_t)r->P * r->N;
    r->train_loss = malloc(sizeof(float) * (size_t)cfg->steps);
    r->tf_err = malloc(sizeof(float) * PN);
    r->gd_err = malloc(sizeof(float) * PN);
    r->blind_err = malloc(sizeof(float) * PN);
    r->pick_err = malloc(sizeof(float) * PN);
    if (!r->train_loss || !r->tf_err || !r->gd_err || !r->blind_err || !r->pick_err)
        goto oom;
    for (int i = 0; i < cfg->steps; i++)
        r->train_loss[i] = NAN;
    for (size_t i = 0; i < PN; i++)
        r->tf_err[i] = r->gd_err[i] = r->blind_err[i] = r->pick_err[i] = NAN;
    if (cfg->sc_rounds > 0) {
        r->SQ = cfg->n_sc_q;
        r->SK = cfg->n_sc_k0;
        r->SR = cfg->sc_rounds;
        size_t QKR = (size_t)r->SQ * r->SK * r->SR, QK = (size_t)r->SQ * r->SK;
        r->sc_err = malloc(sizeof(float) * QKR);
        r->sc_open_err = malloc(sizeof(float) * QKR);
        r->sc_tau = malloc(sizeof(float) * QK);
        if (!r->sc_err || !r->sc_open_err || !r->sc_tau)
            goto oom;
        for (size_t i = 0; i < QKR; i++)
            r->sc_err[i] = r->sc_open_err[i] = NAN;
        for (size_t i = 0; i < QK; i++)
            r->sc_tau[i] = NAN;
    }
    if (with_model) {
        size_t T = 3 * (size_t)cfg->points, d = (size_t)cfg->dims;
        size_t B = (size_t)cfg->eval_batch;
        r->n_params = model_count_params(model_dims_of(cfg));
        r->params = malloc(sizeof(float) * r->n_params);
        r->eval_tokens = malloc(sizeof(float) * B * T * d);
        r->eval_pred = malloc(sizeof(float) * B * (size_t)cfg->points * d);
        r->eval_target = malloc(sizeof(float) * B * d);
        if (!r->params || !r->eval_tokens || !r->eval_pred || !r->eval_target)
            goto oom;
    }
    return 0;
oom:
    run_result_free(r);
    return icas_fail(err, "run %s: out of memory for its results", r->run_id);
}

int run_result_sc_arrays(run_result *r, float *arrays[RUN_RESULT_N_SC],
                         int lengths[RUN_RESULT_N_SC])
{
    if (!r->sc_err)
        return 0;
    int QKR = r->SQ * r->SK * r->SR, QK = r->SQ * r->SK;
    arrays[0] = r->sc_err;
    arrays[1] = r->sc_open_err;
    arrays[2] = r->sc_tau;
    lengths[0] = lengths[1] = QKR;
    lengths[2] = QK;
    return RUN_RESULT_N_SC;
}

void run_result_free(run_result *r)
{
    free(r->sc_err);
    free(r->sc_open_err);
    free(r->sc_tau);
    r->sc_err = r->sc_open_err = r->sc_tau = NULL;
    free(r->train_loss);
    free(r->tf_err);
    free(r->gd_err);
    free(r->blind_err);
    free(r->pick_err);
    free(r->params);
    free(r->eval_tokens);
    free(r->eval_pred);
    free(r->eval_target);
    r->train_loss = r->tf_err = r->gd_err = r->blind_err = r->pick_err = NULL;
    r->params = r->eval_tokens = r->eval_pred = r->eval_target = NULL;
}

#define RUN_OUTCOME_COPY_(type, name, dims) memcpy(&dst->name, &src->name, sizeof dst->name);

void run_result_get_outcome(const run_result *src, run_outcome *dst)
{
    memset(dst, 0, sizeof *dst);
    RUN_OUTCOME_FIELDS(RUN_OUTCOME_COPY_)
    dst->reason[sizeof dst->reason - 1] = 0;
    dst->host[sizeof dst->host - 1] = 0;
}

void run_result_set_outcome(run_result *dst, const run_outcome *src)
{
    RUN_OUTCOME_FIELDS(RUN_OUTCOME_COPY_)
    dst->reason[sizeof dst->reason - 1] = 0;
    dst->host[sizeof dst->host - 1] = 0;
}

int run_result_has_model(const run_result *r)
{
    return r->params != NULL && r->status == RUN_DONE;
}

int run_result_parts(const run_result *r, run_part parts[RUN_RESULT_MAX_PARTS])
{
    const run_config *c = &r->cfg;
    size_t PN = (size_t)r->P * r->N, B = (size_t)c->eval_batch, d = (size_t)c->dims;
    size_t N = (size_t)c->points;
    int k = 0;
    parts[k++] = (run_part){"eval/tf_err", RUN_PART_ROW, r->tf_err, PN};
    parts[k++] = (run_part){"eval/gd_err", RUN_PART_ROW, r->gd_err, PN};
    parts[k++] = (run_part){"eval/blind_err", RUN_PART_ROW, r->blind_err, PN};
    parts[k++] = (run_part){"eval/pick_err", RUN_PART_ROW, r->pick_err, PN};
    parts[k++] = (run_part){"train/loss", RUN_PART_ROW, r->train_loss, (size_t)c->steps};
    if (r->sc_err) {
        size_t QKR = (size_t)r->SQ * r->SK * r->SR, QK = (size_t)r->SQ * r->SK;
        parts[k++] = (run_part){"selfcorrect/err", RUN_PART_SELFCORRECT, r->sc_err, QKR};
        parts[k++] = (run_part){"selfcorrect/open_err", RUN_PART_SELFCORRECT, r->sc_open_err, QKR};
        parts[k++] = (run_part){"selfcorrect/critic_tau", RUN_PART_SELFCORRECT, r->sc_tau, QK};
    }
    if (run_result_has_model(r)) {
        parts[k++] = (run_part){"params", RUN_PART_MODEL, r->params, r->n_params};
        parts[k++] = (run_part){"eval_tokens", RUN_PART_MODEL, r->eval_tokens, B * 3 * N * d};
        parts[k++] = (run_part){"eval_pred", RUN_PART_MODEL, r->eval_pred, B * N * d};
        parts[k++] = (run_part){"eval_target", RUN_PART_MODEL, r->eval_target, B * d};
    }
    return k;
}
