#include "icasweep/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icasweep/atomicfile.h"
#include "icasweep/fault.h"
#include "icasweep/hash.h"
#include "icasweep/model.h"

#define LOG_MAGIC "ICASLOG1"
#define RECORD_MAGIC "ICASREC1"
#define JOURNAL_VERSION 2

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes; /* sizeof(log_header): layouts must agree */
    uint32_t record_header_bytes;
    uint32_t unused;
    uint64_t grid_bytes; /* the grid text that follows, then a checksum */
} log_header;

typedef struct {
    char magic[8];
    uint64_t record_bytes; /* the whole record, checksum included */
    char run_id[ICAS_RUN_ID_LEN];
    int32_t row, has_model;
    int32_t steps, P, N, SQ, SK, SR, eval_batch, dims, points, unused;
    uint64_t n_params;
    char finished_at[JOURNAL_FINISHED_AT_LEN];
    run_outcome outcome;
} record_header;

struct journal {
    char path[4096];
    int fd;
    long long data_start; /* where records begin: after the header */
    long long size;       /* bytes durable in the log */
    int records;          /* synced records since the last cut */
    char *pending;        /* records appended, not yet written */
    size_t n_pending, cap_pending;
    int n_waiting;
};

void journal_path(const char *results, char *out, size_t n)
{
    snprintf(out, n, "%s.journal", results);
}

int journal_create(const char *path, const char *grid_text, journal **out, icas_err *err)
{
    *out = NULL;
    const char *text = grid_text ? grid_text : "";
    log_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, LOG_MAGIC, 8);
    h.version = JOURNAL_VERSION;
    h.header_bytes = sizeof h;
    h.record_header_bytes = sizeof(record_header);
    h.grid_bytes = strlen(text);
    uint64_t sum = hash_fnv1a64(&h, sizeof h, HASH_ICASWEEP_INIT);
    sum = hash_fnv1a64(text, h.grid_bytes, sum);
    atomicfile_part parts[3] = {{&h, sizeof h}, {text, h.grid_bytes}, {&sum, sizeof sum}};
    if (atomicfile_write(path, "journal header", parts, 3, err))
        return -1;
    journal *j = calloc(1, sizeof *j);
    if (!j)
        return icas_fail(err, "%s: out of memory", path);
    snprintf(j->path, sizeof j->path, "%s", path);
    j->fd = open(path, O_WRONLY | O_APPEND);
    if (j->fd < 0) {
        int e = errno;
        free(j);
        return icas_fail_errno(err, e, "%s: cannot open the result journal: %s", path,
                               strerror(e));
    }
    j->data_start = j->size = (long long)(sizeof h + h.grid_bytes + sizeof sum);
    *out = j;
    return 0;
}

static int reserve(journal *j, size_t more)
{
    if (j->n_pending + more <= j->cap_pending)
        return 0;
    size_t cap = j->cap_pending ? j->cap_pending : 1 << 16;
    while (cap < j->n_pending + more)
        cap *= 2;
    char *bigger = realloc(j->pending, cap);
    if (!bigger)
        return -1;
    j->pending = bigger;
    j->cap_pending = cap;
    return 0;
}

static void fill_header(record_header *h, int row, const run_result *r, const char *finished_at)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, RECORD_MAGIC, 8);
    memcpy(h->run_id, r->run_id, ICAS_RUN_ID_LEN);
    h->row = row;
    h->has_model = run_result_has_model(r);
    h->steps = r->cfg.steps;
    h->P = r->P;
    h->N = r->N;
    h->SQ = r->sc_err ? r->SQ : 0;
    h->SK = r->sc_err ? r->SK : 0;
    h->SR = r->sc_err ? r->SR : 0;
    h->eval_batch = r->cfg.eval_batch;
    h->dims = r->cfg.dims;
    h->points = r->cfg.points;
    h->n_params = h->has_model ? r->n_params : 0;
    snprintf(h->finished_at, sizeof h->finished_at, "%s", finished_at);
    run_result_get_outcome(r, &h->outcome);
}

int journal_append(journal *j, int row, const run_result *r, const char *finished_at,
                   icas_err *err)
{
    record_header h;
    fill_header(&h, row, r, finished_at);
    run_part parts[RUN_RESULT_MAX_PARTS];
    int n = run_result_parts(r, parts);
    size_t bytes = sizeof h + sizeof(uint64_t);
    for (int i = 0; i < n; i++)
        bytes += sizeof(float) * parts[i].n;
    h.record_bytes = bytes;
    if (reserve(j, bytes))
        return icas_fail(err, "%s: out of memory for a journal record", j->path);
    char *at = j->pending + j->n_pending;
    memcpy(at, &h, sizeof h);
    size_t off = sizeof h;
    for (int i = 0; i < n; i++) {
        memcpy(at + off, parts[i].data, sizeof(float) * parts[i].n);
        off += sizeof(float) * parts[i].n;
    }
    uint64_t sum = hash_fnv1a64(at, off, HASH_ICASWEEP_INIT);
    memcpy(at + off, &sum, sizeof sum);
    j->n_pending += bytes;
    j->n_waiting++;
    return 0;
}

int journal_sync(journal *j, icas_err *err)
{
    if (j->n_pending == 0)
        return 0;
    int ok = fault_write_all(j->fd, j->pending, j->n_pending, "journal write") == 0;
    ok = ok && (fault_point("journal fsync") == 0 && fdatasync(j->fd) == 0);
    int e = errno;
    if (!ok) {
        /* a partial record must not stay in front of later ones */
        if (ftruncate(j->fd, (off_t)j->size) != 0) {
            /* the next scan stops at the partial record; nothing after it
             * was acknowledged */
        }
        j->n_pending = 0;
        j->n_waiting = 0;
        return icas_fail_errno(err, e, "%s: cannot write the result journal: %s", j->path,
                               strerror(e));
    }
    j->size += (long long)j->n_pending;
    j->records += j->n_waiting;
    j->n_pending = 0;
    j->n_waiting = 0;
    return 0;
}

int journal_truncate(journal *j, icas_err *err)
{
    if (fault_point("journal truncate") || ftruncate(j->fd, (off_t)j->data_start) != 0 ||
        fault_point("journal fsync") || fdatasync(j->fd) != 0)
        return icas_fail_errno(err, errno, "%s: cannot cut back the result journal: %s",
                               j->path, strerror(errno));
    j->size = j->data_start;
    j->records = 0;
    return 0;
}

int journal_records(const journal *j) { return j->records; }
long long journal_bytes(const journal *j) { return j->size; }

void journal_close(journal *j)
{
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    free(j->pending);
    free(j);
}

int journal_remove(const char *path, icas_err *err)
{
    if (fault_unlink(path) != 0 && errno != ENOENT)
        return icas_fail_errno(err, errno, "%s: %s", path, strerror(errno));
    if (fault_fsync_dir_of(path) != 0)
        return icas_fail_errno(err, errno, "%s: fsync of its directory: %s", path,
                               strerror(errno));
    return 0;
}

/* ---- reading ------------------------------------------------------------- */

/* Opens a log and checks its header; *f NULL (return 0) when there is none.
 * *grid (if not NULL) receives the grid text, malloc'd. */
static int open_log(const char *path, FILE **f, char **grid, long long *size, icas_err *err)
{
    *f = fopen(path, "rb");
    if (!*f)
        return errno == ENOENT ? 0 : icas_fail_errno(err, errno, "%s: %s", path, strerror(errno));
    struct stat st;
    *size = fstat(fileno(*f), &st) == 0 ? (long long)st.st_size : 0;
    log_header h;
    char *text = NULL;
    uint64_t stored = 0;
    int ok = fread(&h, sizeof h, 1, *f) == 1 && memcmp(h.magic, LOG_MAGIC, 8) == 0;
    if (ok && (h.version != JOURNAL_VERSION || h.header_bytes != sizeof h ||
               h.record_header_bytes != sizeof(record_header))) {
        fclose(*f);
        *f = NULL;
        return icas_fail(err, "%s: result journal of format %u, this program reads format %d "
                              "(finish the sweep with the icasweep that wrote it)",
                         path, h.version, JOURNAL_VERSION);
    }
    ok = ok && (long long)h.grid_bytes < *size && (text = malloc(h.grid_bytes + 1)) != NULL &&
         fread(text, 1, h.grid_bytes, *f) == h.grid_bytes &&
         fread(&stored, sizeof stored, 1, *f) == 1;
    if (ok) {
        text[h.grid_bytes] = 0;
        uint64_t sum = hash_fnv1a64(&h, sizeof h, HASH_ICASWEEP_INIT);
        ok = hash_fnv1a64(text, h.grid_bytes, sum) == stored;
    }
    if (!ok) {
        free(text);
        fclose(*f);
        *f = NULL;
        return icas_fail(err, "%s: not a result journal, or its header is damaged", path);
    }
    if (grid)
        *grid = text;
    else
        free(text);
    return 0;
}

int journal_grid_text(const char *path, char **text, icas_err *err)
{
    FILE *f;
    long long size;
    *text = NULL;
    if (open_log(path, &f, text, &size, err))
        return -1;
    if (f)
        fclose(f);
    return 0;
}

/* 1 when the record's sizes are those of configuration c. */
static int sizes_match(const record_header *h, const run_config *c)
{
    int sq = c->sc_rounds > 0 ? c->n_sc_q : 0, sk = c->sc_rounds > 0 ? c->n_sc_k0 : 0,
        sr = c->sc_rounds > 0 ? c->sc_rounds : 0;
    return h->steps == c->steps && h->P == c->n_eval_noise && h->N == c->points &&
           h->SQ == sq && h->SK == sk && h->SR == sr && h->eval_batch == c->eval_batch &&
           h->dims == c->dims && h->points == c->points &&
           h->outcome.status >= RUN_PENDING && h->outcome.status <= RUN_INTERRUPTED &&
           (!h->has_model || h->n_params == model_count_params(model_dims_of(c)));
}

int journal_scan(const char *path, const run_config *runs, int n_runs, FILE *log,
                 journal_visit visit, void *user, journal_scan_info *info, icas_err *err)
{
    memset(info, 0, sizeof *info);
    FILE *f;
    long long size;
    if (open_log(path, &f, NULL, &size, err))
        return -1;
    if (!f)
        return 0;
    info->exists = 1;
    int rc = 0;
    long long at = ftell(f);
    char *buf = NULL;
    size_t cap = 0;
    while (rc == 0 && at < size) {
        record_header h;
        if (size - at < (long long)sizeof h || fread(&h, sizeof h, 1, f) != 1 ||
            memcmp(h.magic, RECORD_MAGIC, 8) != 0 || h.record_bytes < sizeof h + 8 ||
            (long long)h.record_bytes > size - at) {
            /* a write cut short; nothing after it was ever written */
            info->torn = 1;
            break;
        }
        size_t n = (size_t)h.record_bytes;
        if (n > cap) {
            char *bigger = realloc(buf, n);
            if (!bigger) {
                rc = icas_fail(err, "%s: out of memory reading a %zu-byte record", path, n);
                break;
            }
            buf = bigger;
            cap = n;
        }
        memcpy(buf, &h, sizeof h);
        if (fread(buf + sizeof h, 1, n - sizeof h, f) != n - sizeof h) {
            info->torn = 1;
            break;
        }
        at += (long long)n;
        uint64_t stored;
        memcpy(&stored, buf + n - 8, 8);
        if (hash_fnv1a64(buf, n - 8, HASH_ICASWEEP_INIT) != stored) {
            info->damaged++;
            if (log)
                fprintf(log, "icasweep: warning: %s: damaged journal record of row %d "
                             "(checksum mismatch); ignored, its run is redone\n",
                        path, h.row);
            continue;
        }
        if (!runs) {
            info->records++;
            continue;
        }
        char id[ICAS_RUN_ID_LEN];
        int row = h.row;
        if (row >= 0 && row < n_runs)
            config_run_id(&runs[row], id);
        if (row < 0 || row >= n_runs || strncmp(id, h.run_id, ICAS_RUN_ID_LEN) != 0 ||
            !sizes_match(&h, &runs[row])) {
            info->foreign++;
            if (log)
                fprintf(log, "icasweep: warning: %s: a record of run %.20s (row %d) that is "
                             "not this grid's; ignored\n", path, h.run_id, row);
            continue;
        }
        run_result r;
        if (run_result_alloc(&r, &runs[row], h.has_model, err)) {
            rc = -1;
            break;
        }
        r.status = (run_status)h.outcome.status; /* decides the parts */
        run_part parts[RUN_RESULT_MAX_PARTS];
        int np = run_result_parts(&r, parts);
        size_t off = sizeof h, want = sizeof h + 8;
        for (int i = 0; i < np; i++)
            want += sizeof(float) * parts[i].n;
        if (want != n) {
            info->foreign++;
            run_result_free(&r);
            continue;
        }
        for (int i = 0; i < np; i++) {
            memcpy(parts[i].data, buf + off, sizeof(float) * parts[i].n);
            off += sizeof(float) * parts[i].n;
        }
        run_result_set_outcome(&r, &h.outcome);
        char finished_at[JOURNAL_FINISHED_AT_LEN];
        memcpy(finished_at, h.finished_at, sizeof finished_at);
        finished_at[sizeof finished_at - 1] = 0;
        info->records++;
        if (visit)
            rc = visit(user, row, &r, finished_at, err);
        run_result_free(&r);
    }
    free(buf);
    fclose(f);
    return rc;
}
