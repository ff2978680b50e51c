#define _DEFAULT_SOURCE /* flock */
#include "icasweep/store.h"

#include "icasweep/model.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef ICAS_VERSION
#define ICAS_VERSION "unknown"
#endif
#ifndef ICAS_GIT_REVISION
#define ICAS_GIT_REVISION "unknown"
#endif

/* ---- the /runs row ------------------------------------------------------ */

typedef struct {
    char run_id[ICAS_RUN_ID_LEN];
    int32_t row, layers, heads, embd;
    char attention[8];
    int8_t ffn;
    char loss[4];
    double train_noise, lr;
    int32_t batch, steps;
    uint64_t seed;
    int32_t dims, points, eval_batch;
    char status[12];
    char reason[128];
    double wall_seconds, train_seconds, eval_seconds;
    float final_loss;
    int32_t steps_done;
    char host[64];
    int32_t rank, threads;
    char finished_at[32];
} run_row;

/* The [R, P, N] curves under /eval, in run_result_curves order. */
static const struct {
    const char *name;      /* under /eval */
    const char *description;
} curve_datasets[RUN_RESULT_N_CURVES] = {
    {"tf_err", "transformer error [run, eval noise, i]: mean over evaluation contexts of "
               "1 - cos(prediction at query token 3i, y*), with i in-context examples; "
               "NaN until the run is done"},
    {"gd_err", "GD baseline error [run, eval noise, k]: a linear map trained with Adam "
               "(lr 0.1, floor(50 - 25p) steps) on the PL loss of k examples; mean of "
               "1 - cos(x A, y*) over the same contexts"},
    {"blind_err", "reward-blind average [run, eval noise, k]: mean over the same contexts "
                  "of 1 - cos(mean(y_0..y_{k-1}), y*), what a model that ignores the "
                  "rewards can reach (the same at every p); NaN at k = 0"},
    {"pick_err", "critic-following pick [run, eval noise, k]: mean over the same contexts "
                 "of 1 - cos(y_j, y*), j the highest seen reward among the first k "
                 "(ties: lowest index); NaN at k = 0"},
};

static hid_t string_type(size_t n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, n);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    return t;
}

/* The compound type of a row; the same layout in memory and in the file. */
static hid_t row_type(void)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(run_row));
    hid_t s;
#define STR(field)                                                            \
    s = string_type(sizeof(((run_row *)0)->field));                           \
    H5Tinsert(t, #field, HOFFSET(run_row, field), s);                         \
    H5Tclose(s);
#define NUM(field, type) H5Tinsert(t, #field, HOFFSET(run_row, field), type);
    STR(run_id)
    NUM(row, H5T_NATIVE_INT32)
    NUM(layers, H5T_NATIVE_INT32)
    NUM(heads, H5T_NATIVE_INT32)
    NUM(embd, H5T_NATIVE_INT32)
    STR(attention)
    NUM(ffn, H5T_NATIVE_INT8)
    STR(loss)
    NUM(train_noise, H5T_NATIVE_DOUBLE)
    NUM(lr, H5T_NATIVE_DOUBLE)
    NUM(batch, H5T_NATIVE_INT32)
    NUM(steps, H5T_NATIVE_INT32)
    NUM(seed, H5T_NATIVE_UINT64)
    NUM(dims, H5T_NATIVE_INT32)
    NUM(points, H5T_NATIVE_INT32)
    NUM(eval_batch, H5T_NATIVE_INT32)
    STR(status)
    STR(reason)
    NUM(wall_seconds, H5T_NATIVE_DOUBLE)
    NUM(train_seconds, H5T_NATIVE_DOUBLE)
    NUM(eval_seconds, H5T_NATIVE_DOUBLE)
    NUM(final_loss, H5T_NATIVE_FLOAT)
    NUM(steps_done, H5T_NATIVE_INT32)
    STR(host)
    NUM(rank, H5T_NATIVE_INT32)
    NUM(threads, H5T_NATIVE_INT32)
    STR(finished_at)
#undef STR
#undef NUM
    return t;
}

/* Fixed-length HDF5 strings are null-padded, not null-terminated: a value
 * may fill the field. */
static void copy_str(char *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n);
    memset(dst, 0, n);
    memcpy(dst, src, len);
}

static void row_from_config(run_row *r, int row, const run_config *c)
{
    memset(r, 0, sizeof *r);
    config_run_id(c, r->run_id);
    r->row = row;
    r->layers = c->layers;
    r->heads = c->heads;
    r->embd = c->embd;
    copy_str(r->attention, sizeof r->attention, attention_name(c->attention));
    r->ffn = (int8_t)c->ffn;
    copy_str(r->loss, sizeof r->loss, loss_name(c->loss));
    r->train_noise = c->train_noise;
    r->lr = c->lr;
    r->batch = c->batch;
    r->steps = c->steps;
    r->seed = c->seed;
    r->dims = c->dims;
    r->points = c->points;
    r->eval_batch = c->eval_batch;
    copy_str(r->status, sizeof r->status, run_status_name(RUN_PENDING));
    r->final_loss = NAN;
    r->wall_seconds = r->train_seconds = r->eval_seconds = NAN;
    r->rank = r->threads = -1;
}

static void now_iso(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- small HDF5 helpers ------------------------------------------------ */

/* HDF5 prints its error stack on every failure; we report one line of our
 * own instead. */
typedef struct {
    H5E_auto2_t func;
    void *data;
} quiet_state;

static quiet_state hdf5_quiet(void)
{
    quiet_state q;
    H5Eget_auto2(H5E_DEFAULT, &q.func, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

static void hdf5_restore(quiet_state q) { H5Eset_auto2(H5E_DEFAULT, q.func, q.data); }

static int set_string_attr(hid_t obj, const char *name, const char *value)
{
    hid_t t = string_type(strlen(value) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, t, value);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

/* Reads a string attribute (fixed or variable length) into a malloc'd
 * buffer; NULL if absent. */
static char *get_string_attr(hid_t obj, const char *name)
{
    if (H5Aexists(obj, name) <= 0)
        return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    char *out = NULL;
    if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *v = NULL;
        if (H5Aread(a, mt, &v) >= 0 && v) {
            out = strdup(v);
            H5free_memory(v);
        }
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        out = calloc(n + 1, 1);
        hid_t mt = string_type(n);
        H5Tset_cset(mt, H5Tget_cset(ft));
        if (H5Aread(a, mt, out) < 0) {
            free(out);
            out = NULL;
        }
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return out;
}

/* Creates a dataset of `rank` (at most 4) dims filled with `fill` (float or int),
 * chunked along the first axis so a row can be rewritten cheaply, and
 * gives it a description. Returns 0 or -1. */
static int make_dataset(hid_t loc, const char *name, hid_t type, int rank,
                        const hsize_t *dims, const void *fill,
                        const char *description, hid_t *out)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[4];
    int nonempty = 1;
    for (int i = 0; i < rank; i++) {
        chunk[i] = i == 0 ? 1 : dims[i];
        if (dims[i] == 0)
            nonempty = 0;
    }
    if (nonempty)
        H5Pset_chunk(dcpl, rank, chunk);
    if (fill)
        H5Pset_fill_value(dcpl, type, fill);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC);
    hid_t ds = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    if (ds < 0)
        return -1;
    if (set_string_attr(ds, "description", description) < 0) {
        H5Dclose(ds);
        return -1;
    }
    if (out)
        *out = ds;
    else
        H5Dclose(ds);
    return 0;
}

/* Writes buf into ds at [row, ...] (a hyperslab of one row). */
static herr_t write_row(hid_t ds, hid_t memtype, hsize_t row, const void *buf)
{
    hid_t fsp = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(fsp);
    hsize_t dims[4], start[4] = {row, 0, 0, 0}, count[4];
    H5Sget_simple_extent_dims(fsp, dims, NULL);
    count[0] = 1;
    for (int i = 1; i < rank; i++)
        count[i] = dims[i];
    herr_t rc = H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t msp = H5Screate_simple(rank, count, NULL);
    if (rc >= 0)
        rc = H5Dwrite(ds, memtype, msp, fsp, H5P_DEFAULT, buf);
    H5Sclose(msp);
    H5Sclose(fsp);
    return rc;
}

/* ---- /selfcorrect ---------------------------------------------------------- */

/* The closed loop's arrays (selfcorrect.h), in run_result_sc_arrays order,
 * each [R, Q, K0, rounds] or [R, Q, K0]. */
static const struct {
    const char *name; /* under /selfcorrect */
    int rank;
    const char *description;
} sc_datasets[RUN_RESULT_N_SC] = {
    {"err", 4, "closed-loop self-correction error [run, q, k0, round t = 1..R]: mean over "
               "the evaluation contexts of 1 - cos(v_t, y*), v_t the model's prediction at "
               "query position k0 + t - 1 after k0 given triplets (rewards seen at critic "
               "noise q) and t - 1 of its own answers, each mapped onto r y* + (1 - r) e "
               "with r its true reward and shown with the critic's reward (a fresh U(0,1) "
               "with probability q); NaN for runs without a closed loop or not done"},
    {"open_err", 4, "open-loop comparison [run, q, k0, t]: the ordinary evaluation error "
                    "with k0 + t - 1 given responses, rewards seen at noise q, on the same "
                    "contexts (equals /eval/tf_err where p = q)"},
    {"critic_tau", 3, "critic accuracy [run, q, k0]: Kendall tau-b between the rewards the "
                      "critic gave and the true rewards across the evaluation contexts, "
                      "per round, averaged over the rounds"},
};

static int same_selfcorrect(const run_config *a, const run_config *b)
{
    if (a->sc_rounds != b->sc_rounds || a->n_sc_k0 != b->n_sc_k0 || a->n_sc_q != b->n_sc_q)
        return 0;
    for (int i = 0; i < a->n_sc_k0; i++)
        if (a->sc_k0[i] != b->sc_k0[i])
            return 0;
    for (int i = 0; i < a->n_sc_q; i++)
        if (a->sc_q[i] != b->sc_q[i])
            return 0;
    return 1;
}

/* /selfcorrect with its axes and NaN-filled arrays, when the runs have a
 * closed loop (all or none of them: layout_check). */
static int write_selfcorrect_layout(hid_t f, const store_layout *l)
{
    const run_config *c0 = &l->runs[0];
    if (c0->sc_rounds <= 0)
        return 0;
    const hsize_t R = (hsize_t)l->n_runs, Q = (hsize_t)c0->n_sc_q, K = (hsize_t)c0->n_sc_k0,
                  T = (hsize_t)c0->sc_rounds;
    const hsize_t dims[4] = {R, Q, K, T};
    const float nanf_ = NAN;
    int32_t k0[ICAS_MAX_SC_K0], rounds[c0->sc_rounds];
    for (int i = 0; i < c0->n_sc_k0; i++)
        k0[i] = c0->sc_k0[i];
    for (int t = 0; t < c0->sc_rounds; t++)
        rounds[t] = t + 1;
    hid_t g = H5Gcreate2(f, "selfcorrect", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    hid_t ds = -1;
    int ok = make_dataset(g, "q", H5T_NATIVE_DOUBLE, 1, &Q, NULL,
                          "critic noise levels q of the closed loop [Q]: the probability "
                          "that the critic returns a fresh U(0,1) instead of the true reward",
                          &ds) == 0;
    if (ok) {
        ok = H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, c0->sc_q) >= 0;
        H5Dclose(ds);
    }
    ok = ok && make_dataset(g, "k0", H5T_NATIVE_INT32, 1, &K, NULL,
                            "given triplets before the first round [K0]", &ds) == 0;
    if (ok) {
        ok = H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, k0) >= 0;
        H5Dclose(ds);
    }
    ok = ok && make_dataset(g, "round", H5T_NATIVE_INT32, 1, &T, NULL,
                            "round numbers t = 1..R, the last axis of err and open_err [R]",
                            &ds) == 0;
    if (ok) {
        ok = H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, rounds) >= 0;
        H5Dclose(ds);
    }
    for (int i = 0; ok && i < RUN_RESULT_N_SC; i++)
        ok = make_dataset(g, sc_datasets[i].name, H5T_NATIVE_FLOAT, sc_datasets[i].rank, dims,
                          &nanf_, sc_datasets[i].description, NULL) == 0;
    H5Gclose(g);
    return ok ? 0 : -1;
}

/* One run's closed-loop arrays into row `row`; nothing when it has none. */
static int write_selfcorrect_row(hid_t f, int row, const run_result *r)
{
    float *arrays[RUN_RESULT_N_SC];
    int lengths[RUN_RESULT_N_SC];
    int n = run_result_sc_arrays((run_result *)r, arrays, lengths);
    int ok = 1;
    for (int i = 0; ok && i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "selfcorrect/%s", sc_datasets[i].name);
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
        ok = ds >= 0 && write_row(ds, H5T_NATIVE_FLOAT, (hsize_t)row, arrays[i]) >= 0;
        if (ds >= 0)
            H5Dclose(ds);
    }
    return ok ? 0 : -1;
}

/* ---- store_create -------------------------------------------------------- */

static int layout_check(const store_layout *l, icas_err *err)
{
    if (l->n_runs < 1)
        return icas_fail(err, "no runs to store");
    const run_config *c0 = &l->runs[0];
    for (int i = 1; i < l->n_runs; i++) {
        const run_config *c = &l->runs[i];
        int same = c->dims == c0->dims && c->points == c0->points &&
                   c->n_eval_noise == c0->n_eval_noise;
        for (int p = 0; same && p < c->n_eval_noise; p++)
            same = c->eval_noise[p] == c0->eval_noise[p];
        if (!same)
            return icas_fail(err, "run %d differs from run 0 in dims, points or "
                                  "eval_noise, which one file's arrays share", i);
        if (!same_selfcorrect(c, c0))
            return icas_fail(err, "run %d differs from run 0 in its selfcorrect rounds, k0 "
                                  "or q, which one file's /selfcorrect arrays share", i);
    }
    return 0;
}

static int write_layout(hid_t f, const store_layout *l)
{
    const run_config *c0 = &l->runs[0];
    const hsize_t R = (hsize_t)l->n_runs, P = (hsize_t)c0->n_eval_noise,
                  N = (hsize_t)c0->points;
    int S = 0;
    for (int i = 0; i < l->n_runs; i++)
        S = l->runs[i].steps > S ? l->runs[i].steps : S;
    const float nanf_ = NAN;
    char created[32];
    now_iso(created, sizeof created);
    int32_t schema = STORE_SCHEMA_VERSION;

    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "schema_version", H5T_NATIVE_INT32, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT32, &schema);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    if (rc < 0 || set_string_attr(f, "program_version", ICAS_VERSION) ||
        set_string_attr(f, "git_revision", ICAS_GIT_REVISION) ||
        set_string_attr(f, "grid", l->grid_text ? l->grid_text : "") ||
        set_string_attr(f, "created", created))
        return -1;

    /* /runs, every row pending */
    hid_t rt = row_type();
    run_row *rows = calloc((size_t)R, sizeof *rows);
    hid_t ds = -1;
    int ok = rows != NULL;
    for (hsize_t i = 0; ok && i < R; i++)
        row_from_config(&rows[i], (int)i, &l->runs[i]);
    ok = ok && make_dataset(f, "runs", rt, 1, &R, NULL,
                            "one row per run, in plan order: configuration, status "
                            "(pending, done, diverged, failed, interrupted), reason, "
                            "timings, final training loss, where it ran",
                            &ds) == 0;
    ok = ok && H5Dwrite(ds, rt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) >= 0;
    if (ds >= 0)
        H5Dclose(ds);
    free(rows);
    H5Tclose(rt);
    if (!ok)
        return -1;

    hid_t g_eval = H5Gcreate2(f, "eval", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g_train = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g_models = H5Gcreate2(f, "models", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ok = g_eval >= 0 && g_train >= 0 && g_models >= 0;
    hsize_t dims3[3] = {R, P, N}, dims2[2] = {R, (hsize_t)S}, dimS = (hsize_t)S;
    ok = ok && make_dataset(g_eval, "noise", H5T_NATIVE_DOUBLE, 1, &P, NULL,
                            "evaluation reward-noise levels p [P]", &ds) == 0;
    if (ok) {
        ok = H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, c0->eval_noise) >= 0;
        H5Dclose(ds);
    }
    for (int i = 0; ok && i < RUN_RESULT_N_CURVES; i++)
        ok = make_dataset(g_eval, curve_datasets[i].name, H5T_NATIVE_FLOAT, 3, dims3,
                          &nanf_, curve_datasets[i].description, NULL) == 0;
    ok = ok && make_dataset(g_train, "step", H5T_NATIVE_INT32, 1, &dimS, NULL,
                            "training step numbers 1..S [S]", &ds) == 0;
    if (ok) {
        int32_t *steps = malloc(sizeof(int32_t) * (size_t)(S ? S : 1));
        for (int i = 0; ok && steps && i < S; i++)
            steps[i] = i + 1;
        ok = steps && H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps) >= 0;
        free(steps);
        H5Dclose(ds);
    }
    ok = ok && make_dataset(g_train, "loss", H5T_NATIVE_FLOAT, 2, dims2, &nanf_,
                            "mean training loss of each step [run, step]; NaN past a run's "
                            "steps or before it ran",
                            NULL) == 0;
    if (g_eval >= 0) H5Gclose(g_eval);
    if (g_train >= 0) H5Gclose(g_train);
    if (g_models >= 0) H5Gclose(g_models);
    ok = ok && write_selfcorrect_layout(f, l) == 0;
    return ok ? 0 : -1;
}

int store_create(const char *path, const store_layout *layout, int force,
                 icas_err *err)
{
    struct stat st;
    if (layout_check(layout, err))
        return icas_wrap(err, "%s: ", path);
    if (!force && stat(path, &st) == 0)
        return icas_fail(err, "%s exists (use --force to replace it)", path);
    /* Built under a temporary name in the same directory, renamed into
     * place only when complete: `path` is never half-written. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    quiet_state q = hdf5_quiet();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        hdf5_restore(q);
        int e = errno;
        return icas_fail(err, "cannot create %s: %s", path,
                         e ? strerror(e) : "HDF5 could not create the file");
    }
    int rc = write_layout(f, layout);
    rc = H5Fclose(f) < 0 ? -1 : rc;
    hdf5_restore(q);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc) {
        int e = errno;
        unlink(tmp);
        return icas_fail(err, "cannot write %s: %s", path, e ? strerror(e) : "HDF5 error");
    }
    return 0;
}

/* ---- reading ------------------------------------------------------------- */

/* Reads every row of /runs (malloc'd). */
static int read_rows(hid_t f, const char *path, run_row **rows, int *n, icas_err *err)
{
    hid_t ds = H5Dopen2(f, "runs", H5P_DEFAULT);
    if (ds < 0)
        return icas_fail(err, "%s: no /runs table (not an icasweep result file?)", path);
    hid_t sp = H5Dget_space(ds);
    hssize_t count = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    *rows = calloc((size_t)(count > 0 ? count : 1), sizeof **rows);
    hid_t rt = row_type();
    herr_t rc = *rows ? H5Dread(ds, rt, H5S_ALL, H5S_ALL, H5P_DEFAULT, *rows) : -1;
    H5Tclose(rt);
    H5Dclose(ds);
    if (rc < 0) {
        free(*rows);
        *rows = NULL;
        return icas_fail(err, "%s: cannot read /runs", path);
    }
    *n = (int)count;
    return 0;
}

static hid_t open_file(const char *path, unsigned mode, icas_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return icas_fail(err, "%s: %s", path, strerror(errno));
    hid_t f = H5Fopen(path, mode, H5P_DEFAULT);
    if (f < 0)
        return icas_fail(err, "%s: not a readable HDF5 file%s", path,
                         mode == H5F_ACC_RDWR ? " (or locked by another process)" : "");
    return f;
}

static int check_schema(hid_t f, const char *path, icas_err *err)
{
    int32_t v = -1;
    if (H5Aexists(f, "schema_version") > 0) {
        hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
        H5Aread(a, H5T_NATIVE_INT32, &v);
        H5Aclose(a);
    }
    if (v == 1)
        return icas_fail(err, "%s: schema version 1, written by an older icasweep: it lacks "
                              "/eval/blind_err and /eval/pick_err (the reference strategies); "
                              "this program writes version %d (start over with --force, or "
                              "finish it with the icasweep that made it)",
                         path, STORE_SCHEMA_VERSION);
    if (v != STORE_SCHEMA_VERSION)
        return icas_fail(err, "%s: schema version %d, this program reads %d", path, v,
                         STORE_SCHEMA_VERSION);
    return 0;
}

int store_check_same(const char *path, const store_layout *layout, icas_err *err)
{
    quiet_state q = hdf5_quiet();
    hid_t f = open_file(path, H5F_ACC_RDONLY, err);
    if (f < 0) {
        hdf5_restore(q);
        return -1;
    }
    run_row *rows = NULL;
    int n = 0, rc = check_schema(f, path, err);
    if (rc == 0)
        rc = read_rows(f, path, &rows, &n, err);
    char *grid_text = rc == 0 ? get_string_attr(f, "grid") : NULL;
    H5Fclose(f);
    hdf5_restore(q);
    if (rc)
        return rc;
    const char *want = layout->grid_text ? layout->grid_text : "";
    int first_diff = -1;
    for (int i = 0; i < n && i < layout->n_runs; i++) {
        char id[ICAS_RUN_ID_LEN];
        config_run_id(&layout->runs[i], id);
        if (strncmp(id, rows[i].run_id, ICAS_RUN_ID_LEN) != 0) {
            first_diff = i;
            break;
        }
    }
    if (n != layout->n_runs || first_diff >= 0) {
        char where[256] = "";
        if (first_diff >= 0) {
            char id[ICAS_RUN_ID_LEN];
            config_run_id(&layout->runs[first_diff], id);
            snprintf(where, sizeof where, "; row %d is %.20s in the file but %s in the grid",
                     first_diff, rows[first_diff].run_id, id);
        }
        rc = icas_fail(err, "%s was made from a different grid: %d runs in the file, %d in "
                            "the grid%s", path, n, layout->n_runs, where);
    } else if (!grid_text || strcmp(grid_text, want) != 0) {
        rc = icas_fail(err, "%s was made from a different grid file: the same runs, but "
                            "the grid text stored in the file differs", path);
    }
    free(rows);
    free(grid_text);
    return rc;
}

int store_read_status(const char *path, int *n_runs, int **status, icas_err *err)
{
    quiet_state q = hdf5_quiet();
    hid_t f = open_file(path, H5F_ACC_RDONLY, err);
    if (f < 0) {
        hdf5_restore(q);
        return -1;
    }
    run_row *rows = NULL;
    int n = 0, rc = read_rows(f, path, &rows, &n, err);
    H5Fclose(f);
    hdf5_restore(q);
    if (rc)
        return rc;
    *status = malloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        (*status)[i] = RUN_PENDING;
        for (int s = RUN_PENDING; s <= RUN_INTERRUPTED; s++)
            if (strncmp(rows[i].status, run_status_name((run_status)s),
                        sizeof rows[i].status) == 0)
                (*status)[i] = s;
    }
    *n_runs = n;
    free(rows);
    return 0;
}

/* ---- writing a result ---------------------------------------------------- */

static int write_model(hid_t f, const run_result *r)
{
    param_view *views = NULL;
    int n_views = 0;
    if (model_view_table(model_dims_of(&r->cfg), &views, &n_views, NULL))
        return -1;
    hid_t models = H5Gopen2(f, "models", H5P_DEFAULT);
    if (models < 0) {
        free(views);
        return -1;
    }
    if (H5Lexists(models, r->run_id, H5P_DEFAULT) > 0)
        H5Ldelete(models, r->run_id, H5P_DEFAULT);
    hid_t g = H5Gcreate2(models, r->run_id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = g >= 0;
    for (int i = 0; ok && i < n_views; i++) {
        const param_view *v = &views[i];
        hsize_t dims[2] = {(hsize_t)v->shape[0], (hsize_t)v->shape[1]};
        hid_t sp = H5Screate_simple(v->rank, dims, NULL);
        hid_t ds = H5Dcreate2(g, v->name, H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
        ok = ds >= 0 &&
             H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      r->params + v->offset) >= 0 &&
             set_string_attr(ds, "description",
                             "trained parameter, GPT-2 name and orientation "
                             "(y = x W + b, W stored [in, out])") == 0;
        if (ds >= 0)
            H5Dclose(ds);
        H5Sclose(sp);
    }
    const run_config *c = &r->cfg;
    struct {
        const char *name;
        const float *data;
        int rank;
        hsize_t dims[3];
        const char *description;
    } extra[3] = {
        {"eval_tokens", r->eval_tokens, 3,
         {(hsize_t)c->eval_batch, 3 * (hsize_t)c->points, (hsize_t)c->dims},
         "evaluation token sequences fed to the model at evaluation noise 0 [B, 3N, d]: "
         "x, y_i, (r_i, 0, ..., 0) with the rewards the model sees"},
        {"eval_pred", r->eval_pred, 3,
         {(hsize_t)c->eval_batch, (hsize_t)c->points, (hsize_t)c->dims},
         "the model's predictions at query tokens 3i for those sequences [B, N, d]"},
        {"eval_target", r->eval_target, 2,
         {(hsize_t)c->eval_batch, (hsize_t)c->dims, 0},
         "each evaluation context's best response y* = x W* [B, d]: with eval_tokens, "
         "every curve under /eval can be recomputed from the file"},
    };
    for (int i = 0; ok && i < 3; i++) {
        if (!extra[i].data)
            continue;
        hid_t sp = H5Screate_simple(extra[i].rank, extra[i].dims, NULL);
        hid_t ds = H5Dcreate2(g, extra[i].name, H5T_NATIVE_FLOAT, sp, H5P_DEFAULT,
                              H5P_DEFAULT, H5P_DEFAULT);
        ok = ds >= 0 &&
             H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, extra[i].data) >= 0 &&
             set_string_attr(ds, "description", extra[i].description) == 0;
        if (ds >= 0)
            H5Dclose(ds);
        H5Sclose(sp);
    }
    if (g >= 0)
        H5Gclose(g);
    H5Gclose(models);
    free(views);
    return ok ? 0 : -1;
}

int store_write_result(const char *path, int row, const run_result *r, icas_err *err)
{
    quiet_state q = hdf5_quiet();
    hid_t f = open_file(path, H5F_ACC_RDWR, err);
    if (f < 0) {
        hdf5_restore(q);
        return -1;
    }
    int rc = 0;
    run_row *rows = NULL;
    int n = 0;
    if (read_rows(f, path, &rows, &n, err)) {
        rc = -1;
        goto done;
    }
    if (row < 0 || row >= n) {
        rc = icas_fail(err, "%s: row %d out of range (%d runs)", path, row, n);
        goto done;
    }
    if (strncmp(rows[row].run_id, r->run_id, ICAS_RUN_ID_LEN) != 0) {
        rc = icas_fail(err, "%s: row %d holds run %.20s, not %s", path, row, rows[row].run_id,
                       r->run_id);
        goto done;
    }
    run_row out;
    row_from_config(&out, row, &r->cfg);
    copy_str(out.status, sizeof out.status, run_status_name(r->status));
    copy_str(out.reason, sizeof out.reason, r->reason);
    out.wall_seconds = r->wall_seconds;
    out.train_seconds = r->train_seconds;
    out.eval_seconds = r->eval_seconds;
    out.final_loss = r->final_loss;
    out.steps_done = r->steps_done;
    copy_str(out.host, sizeof out.host, r->host);
    out.rank = r->rank;
    out.threads = r->threads;
    now_iso(out.finished_at, sizeof out.finished_at);

    hid_t rt = row_type();
    hid_t ds_runs = H5Dopen2(f, "runs", H5P_DEFAULT);
    hid_t ds_loss = H5Dopen2(f, "train/loss", H5P_DEFAULT);
    int ok = ds_runs >= 0 && ds_loss >= 0;
    float *curves[RUN_RESULT_N_CURVES];
    run_result_curves((run_result *)r, curves);
    for (int i = 0; ok && i < RUN_RESULT_N_CURVES; i++) {
        char name[64];
        snprintf(name, sizeof name, "eval/%s", curve_datasets[i].name);
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
        ok = ds >= 0 && write_row(ds, H5T_NATIVE_FLOAT, (hsize_t)row, curves[i]) >= 0;
        if (ds >= 0)
            H5Dclose(ds);
    }
    ok = ok && write_selfcorrect_row(f, row, r) == 0;
    ok = ok && write_row(ds_runs, rt, (hsize_t)row, &out) >= 0;
    if (ok) {
        /* the loss row is S long; this run has cfg.steps of them */
        hid_t fsp = H5Dget_space(ds_loss);
        hsize_t dims[2];
        H5Sget_simple_extent_dims(fsp, dims, NULL);
        float *buf = malloc(sizeof(float) * (size_t)dims[1]);
        ok = buf != NULL;
        for (hsize_t i = 0; ok && i < dims[1]; i++)
            buf[i] = i < (hsize_t)r->cfg.steps ? r->train_loss[i] : NAN;
        ok = ok && write_row(ds_loss, H5T_NATIVE_FLOAT, (hsize_t)row, buf) >= 0;
        free(buf);
        H5Sclose(fsp);
    }
    if (ok && r->params && r->status == RUN_DONE)
        ok = write_model(f, r) == 0;
    if (ds_runs >= 0) H5Dclose(ds_runs);
    if (ds_loss >= 0) H5Dclose(ds_loss);
    H5Tclose(rt);
    ok = ok && H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0;
    if (!ok)
        rc = icas_fail(err, "%s: cannot write the result of row %d (run %s)", path, row,
                       r->run_id);
done:
    free(rows);
    if (H5Fclose(f) < 0 && rc == 0)
        rc = icas_fail(err, "%s: cannot close the file after writing row %d", path, row);
    hdf5_restore(q);
    return rc;
}

/* ---- summary ------------------------------------------------------------- */

/* ---- checkpoints and the writer's lock: file names ---------------------- */

void store_checkpoint_dir(const char *path, const char *ckpt_dir, char *out, size_t n)
{
    if (ckpt_dir)
        snprintf(out, n, "%s", ckpt_dir);
    else
        snprintf(out, n, "%s.ckpt", path);
}

void store_checkpoint_file(const char *dir, const char *run_id, char *out, size_t n)
{
    snprintf(out, n, "%s/%.*s.ckpt", dir, ICAS_RUN_ID_LEN, run_id);
}

static void lock_file(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s.lock", path);
}

/* The holder's note ("pid P on host H") from an open lock file. */
static void read_lock_note(int d, char *holder, size_t n)
{
    ssize_t got = read(d, holder, n - 1);
    holder[got > 0 ? got : 0] = 0;
    holder[strcspn(holder, "\n")] = 0;
}

/* 1 when a sweep holds the lock of `path` (its note in holder), 0 when none
 * does. Takes the lock shared for an instant, so it never blocks a writer
 * and never creates the lock file. */
static int lock_holder(const char *path, char *holder, size_t n)
{
    char lock[4096];
    lock_file(path, lock, sizeof lock);
    holder[0] = 0;
    int d = open(lock, O_RDONLY);
    if (d < 0)
        return 0;
    int held = flock(d, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    if (held)
        read_lock_note(d, holder, n);
    else
        flock(d, LOCK_UN);
    close(d);
    return held;
}

int store_print_summary(const char *path, const char *ckpt_dir, FILE *out, icas_err *err)
{
    quiet_state q = hdf5_quiet();
    hid_t f = open_file(path, H5F_ACC_RDONLY, err);
    if (f < 0) {
        hdf5_restore(q);
        return -1;
    }
    run_row *rows = NULL;
    int n = 0, rc = check_schema(f, path, err);
    if (rc == 0)
        rc = read_rows(f, path, &rows, &n, err);
    char *version = get_string_attr(f, "program_version");
    char *revision = get_string_attr(f, "git_revision");
    H5Fclose(f);
    hdf5_restore(q);
    if (rc) {
        free(version);
        free(revision);
        return rc;
    }
    /* Unfinished runs with a checkpoint continue mid-training when the
     * sweep is run again; the others start from step 0. */
    char dir[4096], file[4096 + ICAS_RUN_ID_LEN + 8];
    store_checkpoint_dir(path, ckpt_dir, dir, sizeof dir);
    int count[RUN_INTERRUPTED + 1] = {0}, with_ckpt = 0;
    double wall = 0;
    for (int i = 0; i < n; i++) {
        int s = RUN_PENDING;
        for (int k = RUN_PENDING; k <= RUN_INTERRUPTED; k++)
            if (strncmp(rows[i].status, run_status_name((run_status)k), sizeof rows[i].status) == 0)
                s = k;
        count[s]++;
        if (s == RUN_DONE)
            wall += rows[i].wall_seconds;
        if (s == RUN_PENDING || s == RUN_INTERRUPTED) {
            store_checkpoint_file(dir, rows[i].run_id, file, sizeof file);
            with_ckpt += access(file, R_OK) == 0;
        }
    }
    int unfinished = count[RUN_PENDING] + count[RUN_INTERRUPTED];
    fprintf(out, "%s: %d runs: %d done, %d diverged, %d failed, %d interrupted, %d pending\n",
            path, n, count[RUN_DONE], count[RUN_DIVERGED], count[RUN_FAILED],
            count[RUN_INTERRUPTED], count[RUN_PENDING]);
    for (int i = 0; i < n; i++)
        if (strncmp(rows[i].status, "done", sizeof rows[i].status) != 0 &&
            strncmp(rows[i].status, "pending", sizeof rows[i].status) != 0)
            fprintf(out, "  row %d %.20s %.12s: %.128s\n", i, rows[i].run_id, rows[i].status,
                    rows[i].reason);
    if (count[RUN_DONE])
        fprintf(out, "done runs: %.1f s of training and evaluation in all, %.1f s on average\n",
                wall, wall / count[RUN_DONE]);
    if (unfinished)
        fprintf(out, "unfinished runs: %d of %d have a checkpoint in %s and resume mid-training\n",
                with_ckpt, unfinished, dir);
    char holder[256];
    if (lock_holder(path, holder, sizeof holder))
        fprintf(out, "a sweep is writing this file now (%s)\n", holder[0] ? holder : "holder unknown");
    else if (unfinished)
        fprintf(out, "no sweep is writing this file: run the same sweep command to finish it\n");
    fprintf(out, "written by icasweep %s (%s)\n", version ? version : "?",
            revision ? revision : "?");
    free(rows);
    free(version);
    free(revision);
    return 0;
}

/* ---- the writer's lock ------------------------------------------------- */

int store_lock(const char *path, int *fd, icas_err *err)
{
    char lock[4096];
    lock_file(path, lock, sizeof lock);
    int d = open(lock, O_RDWR | O_CREAT, 0644);
    if (d < 0)
        return icas_fail(err, "%s: cannot create lock file: %s", lock, strerror(errno));
    if (flock(d, LOCK_EX | LOCK_NB) != 0) {
        char holder[256];
        read_lock_note(d, holder, sizeof holder);
        close(d);
        return icas_fail(err, "%s is being written by another sweep (%s); refusing a second "
                              "writer", path, holder[0] ? holder : "holder unknown");
    }
    char me[256], host[128] = "";
    gethostname(host, sizeof host - 1);
    int len = snprintf(me, sizeof me, "pid %ld on host %s\n", (long)getpid(), host);
    if (ftruncate(d, 0) != 0 || write(d, me, (size_t)len) != len) {
        /* the lock holds without the note; the note only helps messages */
    }
    *fd = d;
    return 0;
}

void store_unlock(const char *path, int fd)
{
    char lock[4096];
    lock_file(path, lock, sizeof lock);
    unlink(lock);
    close(fd);
}
