#define _DEFAULT_SOURCE /* DT_REG */
#include "icasweep/journal.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icasweep/atomicfile.h"
#include "icasweep/fault.h"
#include "icasweep/hash.h"
#include "icasweep/model.h"

#define JOURNAL_MAGIC "ICASJRN1"
#define JOURNAL_VERSION 1

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes; /* sizeof(journal_header): layouts must agree */
    char run_id[ICAS_RUN_ID_LEN];
    int32_t row, status;
    char reason[256];
    double wall_seconds, train_seconds, eval_seconds;
    float final_loss;
    int32_t steps_done;
    char host[64];
    int32_t rank, threads;
    int32_t steps, P, N, has_model;
    uint64_t n_params;
    int32_t eval_batch, dims, points, unused;
    char finished_at[JOURNAL_FINISHED_AT_LEN];
    uint64_t payload_floats;
} journal_header;

void journal_dir(const char *results, char *out, size_t n)
{
    snprintf(out, n, "%s.journal", results);
}

int journal_make_dir(const char *dir, icas_err *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return icas_fail_errno(err, errno, "%s: cannot create the result journal: %s", dir,
                               strerror(errno));
    return 0;
}

/* The arrays of an entry, in file order. */
typedef struct {
    float *p;
    size_t n;
} span;

/* At most: the loss, the curves, the closed loop's arrays, the model's four. */
#define MAX_SPANS (1 + RUN_RESULT_N_CURVES + RUN_RESULT_N_SC + 4)

static int entry_spans(const run_result *r, int has_model, span out[MAX_SPANS])
{
    const run_config *c = &r->cfg;
    size_t PN = (size_t)r->P * r->N, B = (size_t)c->eval_batch, d = (size_t)c->dims;
    size_t N = (size_t)c->points;
    int k = 0;
    out[k++] = (span){r->train_loss, (size_t)c->steps};
    out[k++] = (span){r->tf_err, PN};
    out[k++] = (span){r->gd_err, PN};
    out[k++] = (span){r->blind_err, PN};
    out[k++] = (span){r->pick_err, PN};
    float *sc[RUN_RESULT_N_SC];
    int sc_len[RUN_RESULT_N_SC];
    for (int i = 0, n = run_result_sc_arrays((run_result *)r, sc, sc_len); i < n; i++)
        out[k++] = (span){sc[i], (size_t)sc_len[i]};
    if (has_model) {
        out[k++] = (span){r->params, r->n_params};
        out[k++] = (span){r->eval_tokens, B * 3 * N * d};
        out[k++] = (span){r->eval_pred, B * N * d};
        out[k++] = (span){r->eval_target, B * d};
    }
    return k;
}

static void entry_path(const char *dir, const char *run_id, char *out, size_t n)
{
    snprintf(out, n, "%s/%.*s.res", dir, ICAS_RUN_ID_LEN, run_id);
}

int journal_write(const char *dir, int row, const run_result *r, const char *finished_at,
                  icas_err *err)
{
    char path[4200];
    entry_path(dir, r->run_id, path, sizeof path);
    journal_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, JOURNAL_MAGIC, 8);
    h.version = JOURNAL_VERSION;
    h.header_bytes = sizeof h;
    memcpy(h.run_id, r->run_id, ICAS_RUN_ID_LEN);
    h.row = row;
    h.status = (int32_t)r->status;
    snprintf(h.reason, sizeof h.reason, "%s", r->reason);
    h.wall_seconds = r->wall_seconds;
    h.train_seconds = r->train_seconds;
    h.eval_seconds = r->eval_seconds;
    h.final_loss = r->final_loss;
    h.steps_done = r->steps_done;
    memcpy(h.host, r->host, sizeof h.host);
    h.host[sizeof h.host - 1] = 0;
    h.rank = r->rank;
    h.threads = r->threads;
    h.steps = r->cfg.steps;
    h.P = r->P;
    h.N = r->N;
    h.has_model = r->params != NULL && r->status == RUN_DONE;
    h.n_params = h.has_model ? r->n_params : 0;
    h.eval_batch = r->cfg.eval_batch;
    h.dims = r->cfg.dims;
    h.points = r->cfg.points;
    snprintf(h.finished_at, sizeof h.finished_at, "%s", finished_at);
    span sp[MAX_SPANS];
    int n_sp = entry_spans(r, h.has_model, sp);
    for (int i = 0; i < n_sp; i++)
        h.payload_floats += sp[i].n;

    /* the header, the arrays, then the checksum of both */
    atomicfile_part parts[1 + MAX_SPANS + 1];
    int n_parts = 0;
    parts[n_parts++] = (atomicfile_part){&h, sizeof h};
    for (int i = 0; i < n_sp; i++)
        parts[n_parts++] = (atomicfile_part){sp[i].p, sizeof(float) * sp[i].n};
    uint64_t sum = HASH_ICASWEEP_INIT;
    for (int i = 0; i < n_parts; i++)
        sum = hash_fnv1a64(parts[i].data, parts[i].n, sum);
    parts[n_parts++] = (atomicfile_part){&sum, sizeof sum};
    return atomicfile_write(path, "journal", parts, n_parts, err);
}

static int by_row(const void *a, const void *b)
{
    const journal_item *x = a, *y = b;
    return x->row - y->row;
}

int journal_list(const char *dir, journal_item **items, int *n, icas_err *err)
{
    *items = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return icas_fail_errno(err, errno, "%s: %s", dir, strerror(errno));
    }
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".res") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            journal_item *bigger = realloc(*items, sizeof **items * (size_t)cap);
            if (!bigger) {
                closedir(d);
                free(*items);
                *items = NULL;
                return icas_fail(err, "%s: out of memory listing the journal", dir);
            }
            *items = bigger;
        }
        journal_item *it = &(*items)[*n];
        memset(it, 0, sizeof *it);
        snprintf(it->path, sizeof it->path, "%s/%s", dir, e->d_name);
        journal_header h;
        FILE *f = fopen(it->path, "rb");
        int got = f && fread(&h, sizeof h, 1, f) == 1 &&
                  memcmp(h.magic, JOURNAL_MAGIC, 8) == 0;
        if (f)
            fclose(f);
        if (got) {
            memcpy(it->run_id, h.run_id, ICAS_RUN_ID_LEN);
            it->run_id[ICAS_RUN_ID_LEN - 1] = 0;
            it->row = h.row;
            it->status = h.status;
        } else {
            it->row = -1; /* unreadable: journal_read says why */
            it->status = -1;
        }
        (*n)++;
    }
    closedir(d);
    if (*n > 1)
        qsort(*items, (size_t)*n, sizeof **items, by_row);
    return 0;
}

int journal_read(const char *file, const run_config *cfg, run_result *r, int *row,
                 char finished_at[JOURNAL_FINISHED_AT_LEN], icas_err *err)
{
    memset(r, 0, sizeof *r);
    FILE *f = fopen(file, "rb");
    if (!f)
        return icas_fail_errno(err, errno, "%s: %s", file, strerror(errno));
    journal_header h;
    char id[ICAS_RUN_ID_LEN];
    config_run_id(cfg, id);
    int rc = 0;
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, JOURNAL_MAGIC, 8) != 0) {
        rc = icas_fail(err, "%s: not a journal entry (truncated or garbled)", file);
    } else if (h.version != JOURNAL_VERSION || h.header_bytes != sizeof h) {
        rc = icas_fail(err, "%s: journal entry of format %u (%u-byte header), this program "
                            "reads format %d (%zu bytes)", file, h.version, h.header_bytes,
                       JOURNAL_VERSION, sizeof h);
    } else if (strncmp(h.run_id, id, ICAS_RUN_ID_LEN) != 0) {
        rc = icas_fail(err, "%s: holds run %.20s, not %s", file, h.run_id, id);
    } else if (h.steps != cfg->steps || h.P != cfg->n_eval_noise || h.N != cfg->points ||
               h.eval_batch != cfg->eval_batch || h.dims != cfg->dims ||
               h.status < RUN_PENDING || h.status > RUN_INTERRUPTED ||
               (h.has_model && h.n_params != model_count_params(model_dims_of(cfg)))) {
        rc = icas_fail(err, "%s: sizes do not match run %s's configuration", file, id);
    } else if (run_result_alloc(r, cfg, h.has_model, err)) {
        rc = -1;
    } else {
        span sp[MAX_SPANS];
        int n_sp = entry_spans(r, h.has_model, sp);
        uint64_t sum = hash_fnv1a64(&h, sizeof h, HASH_ICASWEEP_INIT), stored = 0;
        size_t total = 0;
        for (int i = 0; i < n_sp; i++)
            total += sp[i].n;
        int ok = total == h.payload_floats;
        for (int i = 0; ok && i < n_sp; i++) {
            ok = fread(sp[i].p, sizeof(float), sp[i].n, f) == sp[i].n;
            sum = hash_fnv1a64(sp[i].p, sizeof(float) * sp[i].n, sum);
        }
        char extra;
        ok = ok && fread(&stored, sizeof stored, 1, f) == 1 && fread(&extra, 1, 1, f) == 0;
        if (!ok || stored != sum) {
            rc = icas_fail(err, "%s: damaged journal entry (%s)", file,
                           ok ? "checksum mismatch" : "truncated or too long");
            run_result_free(r);
        } else {
            r->status = (run_status)h.status;
            snprintf(r->reason, sizeof r->reason, "%.*s", (int)sizeof h.reason - 1, h.reason);
            r->wall_seconds = h.wall_seconds;
            r->train_seconds = h.train_seconds;
            r->eval_seconds = h.eval_seconds;
            r->final_loss = h.final_loss;
            r->steps_done = h.steps_done;
            memcpy(r->host, h.host, sizeof r->host);
            r->host[sizeof r->host - 1] = 0;
            r->rank = h.rank;
            r->threads = h.threads;
            *row = h.row;
            memcpy(finished_at, h.finished_at, JOURNAL_FINISHED_AT_LEN);
            finished_at[JOURNAL_FINISHED_AT_LEN - 1] = 0;
        }
    }
    fclose(f);
    return rc;
}

int journal_remove(const char *dir, icas_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : icas_fail_errno(err, errno, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (fault_unlink(path) != 0 && errno != ENOENT)
            rc = icas_fail_errno(err, errno, "%s: %s", path, strerror(errno));
    }
    closedir(d);
    if (rc == 0 && (fault_point("rmdir journal") || rmdir(dir) != 0))
        rc = icas_fail_errno(err, errno, "%s: %s", dir, strerror(errno));
    return rc;
}
