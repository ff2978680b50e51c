#include "icasweep/store.h"

#include "icasweep/fault.h"
#include "icasweep/hash.h"
#include "icasweep/model.h"
#include "icasweep/provenance.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The column type of each knob type of knobs.def: a choice is its word,
 * a switch 0 or 1. */
#define ROW_CTYPE_COUNT(name) int32_t name;
#define ROW_CTYPE_REAL(name) double name;
#define ROW_CTYPE_POSITIVE(name) double name;
#define ROW_CTYPE_CHOICE(name) char name[ROW_WORD_LEN];
#define ROW_CTYPE_SWITCH(name) int8_t name;
#define ROW_CTYPE_SEED(name) uint64_t name;
#define ROW_WORD_LEN 8

typedef struct {
    char run_id[ICAS_RUN_ID_LEN];
    int32_t row;
#define KNOB(name, type, ...) ROW_CTYPE_##type(name)
#include "icasweep/knobs.def"
#undef KNOB
    char status[12];
    char reason[128];
    double wall_seconds, train_seconds, eval_seconds;
    float final_loss;
    int32_t steps_done;
    char host[64];
    int32_t rank, threads;
    char finished_at[32];
    /* FNV-1a 64 of the row's numbers as stored (row_checksum); 0 while the
     * row is pending, and in files written before the column existed */
    uint64_t checksum;
    /* FNV-1a 64 of the row's saved model (model_checksum); 0 without one */
    uint64_t model_checksum;
} run_row;

/* The description attribute of each per-run dataset, by its path (the
 * names of run_result_parts). */
static const struct {
    const char *name;
    const char *description;
} part_descriptions[] = {
    {"train/loss", "mean training loss of each step [run, step]; NaN past a run's steps or "
                   "before it ran"},
    {"eval/tf_err", "transformer error [run, eval noise, i]: mean over evaluation contexts of "
                    "1 - cos(prediction at query token 3i, y*), with i in-context examples; "
                    "NaN until the run is done"},
    {"eval/gd_err", "GD baseline error [run, eval noise, k]: a linear map trained with Adam "
                    "(lr 0.1, floor(50 - 25p) steps) on the PL loss of k examples; mean of "
                    "1 - cos(x A, y*) over the same contexts"},
    {"eval/blind_err", "reward-blind average [run, eval noise, k]: mean over the same contexts "
                       "of 1 - cos(mean(y_0..y_{k-1}), y*), what a model that ignores the "
                       "rewards can reach (the same at every p); NaN at k = 0"},
    {"eval/pick_err", "critic-following pick [run, eval noise, k]: mean over the same contexts "
                      "of 1 - cos(y_j, y*), j the highest seen reward among the first k "
                      "(ties: lowest index); NaN at k = 0"},
    {"selfcorrect/err", "closed-loop self-correction error [run, q, k0, round t = 1..R]: mean "
                        "over the evaluation contexts of 1 - cos(v_t, y*), v_t the model's "
                        "prediction at query position k0 + t - 1 after k0 given triplets "
                        "(rewards seen at critic noise q) and t - 1 of its own answers, each "
                        "mapped onto r y* + (1 - r) e with r its true reward and shown with "
                        "the critic's reward (a fresh U(0,1) with probability q); NaN for "
                        "runs without a closed loop or not done"},
    {"selfcorrect/open_err", "open-loop comparison [run, q, k0, t]: the ordinary evaluation "
                             "error with k0 + t - 1 given responses, rewards seen at noise q, "
                             "on the same contexts (equals /eval/tf_err where p = q)"},
    {"selfcorrect/critic_tau", "critic accuracy [run, q, k0]: Kendall tau-b between the "
                               "rewards the critic gave and the true rewards across the "
                               "evaluation contexts, per round, averaged over the rounds"},
    {"eval_tokens", "evaluation token sequences fed to the model at evaluation noise 0 "
                    "[B, 3N, d]: x, y_i, (r_i, 0, ..., 0) with the rewards the model sees"},
    {"eval_pred", "the model's predictions at query tokens 3i for those sequences [B, N, d]"},
    {"eval_target", "each evaluation context's best response y* = x W* [B, d]: with "
                    "eval_tokens, every curve under /eval can be recomputed from the file"},
};

static const char *part_description(const char *name)
{
    for (size_t i = 0; i < sizeof part_descriptions / sizeof part_descriptions[0]; i++)
        if (!strcmp(part_descriptions[i].name, name))
            return part_descriptions[i].description;
    return "";
}

/* The per-run datasets of the file, in run_result_parts order (a result's
 * arrays but its model): what a row write touches and, in this order, what
 * the /runs checksum covers, then model_checksum (the /runs attribute
 * checksum_covers names them). A file without that attribute (written by
 * an earlier icasweep) has checksums of the first five only. */
#define N_ROW_DATASETS 8
#define ROW_LOSS 4     /* train/loss: [S] in the file, [steps] in a result */
#define ROW_FIRST_SC 5 /* the closed loop's, present only with one */
static const char *const row_dataset_names[N_ROW_DATASETS] = {
    "eval/tf_err", "eval/gd_err", "eval/blind_err", "eval/pick_err", "train/loss",
    "selfcorrect/err", "selfcorrect/open_err", "selfcorrect/critic_tau",
};

static int row_dataset_index(const char *name)
{
    for (int i = 0; i < N_ROW_DATASETS; i++)
        if (!strcmp(row_dataset_names[i], name))
            return i;
    return -1;
}

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
#define ROW_H5_COUNT(name) NUM(name, H5T_NATIVE_INT32)
#define ROW_H5_REAL(name) NUM(name, H5T_NATIVE_DOUBLE)
#define ROW_H5_POSITIVE(name) NUM(name, H5T_NATIVE_DOUBLE)
#define ROW_H5_CHOICE(name) STR(name)
#define ROW_H5_SWITCH(name) NUM(name, H5T_NATIVE_INT8)
#define ROW_H5_SEED(name) NUM(name, H5T_NATIVE_UINT64)
#define KNOB(name, type, ...) ROW_H5_##type(name)
#include "icasweep/knobs.def"
#undef KNOB
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
    NUM(checksum, H5T_NATIVE_UINT64)
    NUM(model_checksum, H5T_NATIVE_UINT64)
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

/* id: c's run id, or NULL to compute it */
static void row_from_config(run_row *r, int row, const run_config *c, const char *id)
{
    memset(r, 0, sizeof *r);
    if (id)
        memcpy(r->run_id, id, ICAS_RUN_ID_LEN);
    else
        config_run_id(c, r->run_id);
    r->row = row;
#define ROW_SET_COUNT(name) r->name = c->name;
#define ROW_SET_REAL(name) r->name = c->name;
#define ROW_SET_POSITIVE(name) r->name = c->name;
#define ROW_SET_CHOICE(name)                                                  \
    knob_format(&config_knobs[KNOB_ID_##name], c, KNOB_TEXT_ID, word, sizeof word); \
    copy_str(r->name, sizeof r->name, word);
#define ROW_SET_SWITCH(name) r->name = (int8_t)c->name;
#define ROW_SET_SEED(name) r->name = c->name;
    char word[64];
#define KNOB(name, type, ...) ROW_SET_##type(name)
#include "icasweep/knobs.def"
#undef KNOB
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

/* File access with the strong close degree: H5Fclose closes every object
 * still open in the file, so that no error path can leave a handle behind
 * (HDF5 then reports "infinite loop closing library" at exit). */
static hid_t strong_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    return fapl;
}

/* errno of the failed system call behind an HDF5 failure, if it was one */
static int io_errno(void)
{
    int e = errno;
    return e == ENOSPC || e == EIO || e == EDQUOT || e == EROFS || e == EFBIG ? e : 0;
}

/* Creates attribute `name` of obj and writes data; closes t and sp. */
static int write_attr(hid_t obj, const char *name, hid_t t, hid_t sp, const void *data)
{
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, t, data);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

static int set_string_attr(hid_t obj, const char *name, const char *value)
{
    return write_attr(obj, name, string_type(strlen(value) + 1), H5Screate(H5S_SCALAR), value);
}

/* A 1-D attribute of n fixed-length strings, as long as the longest. */
static int set_string_list_attr(hid_t obj, const char *name, const char *const *values, int n)
{
    if (n < 1)
        return -1;
    size_t longest = 1;
    for (int i = 0; i < n; i++)
        longest = strlen(values[i]) + 1 > longest ? strlen(values[i]) + 1 : longest;
    char *buf = calloc((size_t)n, longest);
    if (!buf)
        return -1;
    for (int i = 0; i < n; i++)
        memcpy(buf + (size_t)i * longest, values[i], strlen(values[i]));
    hsize_t dim = (hsize_t)n;
    int rc = write_attr(obj, name, string_type(longest), H5Screate_simple(1, &dim, NULL), buf);
    free(buf);
    return rc;
}

/* The knob table on /runs, so that a reader knows which columns are the
 * configuration without a list of its own: `knobs` (the column names, in
 * knobs.def order), `knob_labels`, `knob_sections`, `knob_meanings`. */
static int set_knob_attrs(hid_t runs)
{
    const char *names[CONFIG_N_KNOBS], *labels[CONFIG_N_KNOBS], *sections[CONFIG_N_KNOBS],
        *meanings[CONFIG_N_KNOBS];
    for (int i = 0; i < CONFIG_N_KNOBS; i++) {
        names[i] = config_knobs[i].name;
        labels[i] = config_knobs[i].label;
        sections[i] = knob_section_name(config_knobs[i].section);
        meanings[i] = config_knobs[i].meaning;
    }
    return set_string_list_attr(runs, "knobs", names, CONFIG_N_KNOBS) ||
                   set_string_list_attr(runs, "knob_labels", labels, CONFIG_N_KNOBS) ||
                   set_string_list_attr(runs, "knob_sections", sections, CONFIG_N_KNOBS) ||
                   set_string_list_attr(runs, "knob_meanings", meanings, CONFIG_N_KNOBS)
               ? -1
               : 0;
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

/* Runs per chunk of a per-run dataset: chunks of about CHUNK_BYTES, so that
 * reading a whole table is a few large reads (a restart reads every row).
 * Writing one row still writes only that row's bytes: the chunks are not
 * filtered and the chunk cache is off (store_open), so HDF5 writes the
 * selection in place (one pwrite per dataset, measured with strace). */
#define CHUNK_BYTES 16384
static hsize_t runs_per_chunk(size_t row_bytes, hsize_t R)
{
    hsize_t k = row_bytes >= CHUNK_BYTES ? 1 : CHUNK_BYTES / (row_bytes ? row_bytes : 1);
    return k < R ? k : (R ? R : 1);
}

/* Creates a dataset of `rank` (at most 4) dims filled with `fill` (may be
 * NULL), every byte allocated now. With per_run, chunked (runs_per_chunk)
 * along an extendible first axis (rows can be added later without moving
 * the others); else contiguous. Gives it a description. Returns 0 or -1. */
static int make_dataset(hid_t loc, const char *name, hid_t type, int rank,
                        const hsize_t *dims, int per_run, const void *fill,
                        const char *description, hid_t *out)
{
    hsize_t maxdims[4], chunk[4];
    int nonempty = 1;
    size_t row_bytes = H5Tget_size(type);
    for (int i = 0; i < rank; i++) {
        maxdims[i] = per_run && i == 0 ? H5S_UNLIMITED : dims[i];
        chunk[i] = dims[i];
        if (i > 0)
            row_bytes *= (size_t)dims[i];
        if (dims[i] == 0)
            nonempty = 0;
    }
    chunk[0] = runs_per_chunk(row_bytes, dims[0]);
    int chunked = per_run && nonempty;
    hid_t sp = H5Screate_simple(rank, dims, chunked ? maxdims : NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked)
        H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
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
    herr_t rc = row < dims[0] ? H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL)
                              : -1;
    hid_t msp = H5Screate_simple(rank, count, NULL);
    if (rc >= 0)
        rc = H5Dwrite(ds, memtype, msp, fsp, H5P_DEFAULT, buf);
    H5Sclose(msp);
    H5Sclose(fsp);
    return rc;
}

static int write_whole(hid_t loc, const char *name, hid_t type, hsize_t n, const void *data,
                       const char *description)
{
    hid_t ds = -1;
    if (make_dataset(loc, name, type, 1, &n, 0, NULL, description, &ds))
        return -1;
    int ok = n == 0 || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    H5Dclose(ds);
    return ok ? 0 : -1;
}

/* ---- the library ---------------------------------------------------------- */

void store_library_init(void) { H5dont_atexit(); }

void store_library_close(int after_io_error)
{
    /* After a failed write the library may still hold the file whose last
     * flush failed (H5Fclose cannot drop it while its cache is dirty), and
     * closing the library would report that as "infinite loop closing
     * library". The process is about to exit, which releases it; every
     * result is in the journal. */
    if (!after_io_error)
        H5close();
}

/* ---- store_create -------------------------------------------------------- */

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

int store_layout_check(const store_layout *l, icas_err *err)
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

/* /selfcorrect with its axes and NaN-filled arrays, when the runs have a
 * closed loop (all or none of them: store_layout_check). */
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
    int ok = write_whole(g, "q", H5T_NATIVE_DOUBLE, Q, c0->sc_q,
                         "critic noise levels q of the closed loop [Q]: the probability "
                         "that the critic returns a fresh U(0,1) instead of the true reward") == 0 &&
             write_whole(g, "k0", H5T_NATIVE_INT32, K, k0,
                         "given triplets before the first round [K0]") == 0 &&
             write_whole(g, "round", H5T_NATIVE_INT32, T, rounds,
                         "round numbers t = 1..R, the last axis of err and open_err [R]") == 0;
    /* [R, Q, K0, T] twice, then [R, Q, K0] */
    for (int k = ROW_FIRST_SC; ok && k < N_ROW_DATASETS; k++)
        ok = make_dataset(g, row_dataset_names[k] + strlen("selfcorrect/"), H5T_NATIVE_FLOAT,
                          k < N_ROW_DATASETS - 1 ? 4 : 3, dims, 1, &nanf_,
                          part_description(row_dataset_names[k]), NULL) == 0;
    H5Gclose(g);
    return ok ? 0 : -1;
}

/* The model of one run, laid out NaN-filled: /models/<run_id>/<view>... */
static int write_model_layout(hid_t models, const run_config *c, const char *run_id)
{
    char id[ICAS_RUN_ID_LEN];
    if (run_id)
        memcpy(id, run_id, ICAS_RUN_ID_LEN);
    else
        config_run_id(c, id);
    param_view *views = NULL;
    int n_views = 0;
    if (model_view_table(model_dims_of(c), &views, &n_views, NULL))
        return -1;
    const float nanf_ = NAN;
    hid_t g = H5Gcreate2(models, id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = g >= 0;
    for (int i = 0; ok && i < n_views; i++) {
        hsize_t dims[2] = {(hsize_t)views[i].shape[0], (hsize_t)views[i].shape[1]};
        ok = make_dataset(g, views[i].name, H5T_NATIVE_FLOAT, views[i].rank, dims, 0, &nanf_,
                          "trained parameter, GPT-2 name and orientation (y = x W + b, W "
                          "stored [in, out]); NaN until the run is done", NULL) == 0;
    }
    hsize_t B = (hsize_t)c->eval_batch, N = (hsize_t)c->points, d = (hsize_t)c->dims;
    const struct {
        const char *name;
        int rank;
        hsize_t dims[3];
    } extra[3] = {{"eval_tokens", 3, {B, 3 * N, d}},
                  {"eval_pred", 3, {B, N, d}},
                  {"eval_target", 2, {B, d, 0}}};
    for (int i = 0; ok && i < 3; i++)
        ok = make_dataset(g, extra[i].name, H5T_NATIVE_FLOAT, extra[i].rank, extra[i].dims, 0,
                          &nanf_, part_description(extra[i].name), NULL) == 0;
    /* the order model_checksum hashes the datasets in */
    const char **order = malloc(sizeof *order * (size_t)(n_views + 3));
    ok = ok && order;
    for (int i = 0; ok && i < n_views; i++)
        order[i] = views[i].name;
    if (ok) {
        order[n_views] = "eval_tokens";
        order[n_views + 1] = "eval_pred";
        order[n_views + 2] = "eval_target";
        ok = set_string_list_attr(g, "checksum_order", order, n_views + 3) == 0;
    }
    free(order);
    if (g >= 0)
        H5Gclose(g);
    free(views);
    return ok ? 0 : -1;
}

/* ---- the grid history ---------------------------------------------------- */

/* A /grid_history row as stored: the text a variable-length string, so
 * that one grid's length does not set every row's. */
typedef struct {
    char applied_at[32];
    int32_t runs;
    char *grid;
} history_row;

static hid_t history_type(void)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(history_row));
    hid_t s = string_type(sizeof(((history_row *)0)->applied_at));
    H5Tinsert(t, "applied_at", HOFFSET(history_row, applied_at), s);
    H5Tclose(s);
    H5Tinsert(t, "runs", HOFFSET(history_row, runs), H5T_NATIVE_INT32);
    s = H5Tcopy(H5T_C_S1);
    H5Tset_size(s, H5T_VARIABLE);
    H5Tset_cset(s, H5T_CSET_UTF8);
    H5Tinsert(t, "grid", HOFFSET(history_row, grid), s);
    H5Tclose(s);
    return t;
}

/* /grid_history: l's earlier grids, then its own at `now`. */
static int write_grid_history(hid_t f, const store_layout *l, const char *now)
{
    hsize_t H = (hsize_t)l->n_history + 1;
    history_row *rows = calloc((size_t)H, sizeof *rows);
    if (!rows)
        return -1;
    for (int i = 0; i < l->n_history; i++) {
        copy_str(rows[i].applied_at, sizeof rows[i].applied_at, l->history[i].applied_at);
        rows[i].runs = l->history[i].n_runs;
        rows[i].grid = l->history[i].text ? l->history[i].text : "";
    }
    copy_str(rows[H - 1].applied_at, sizeof rows[H - 1].applied_at, now);
    rows[H - 1].runs = l->n_runs;
    rows[H - 1].grid = (char *)(l->grid_text ? l->grid_text : "");
    hid_t t = history_type();
    hid_t ds = -1;
    int ok = make_dataset(f, "grid_history", t, 1, &H, 0, NULL,
                          "each grid the file was made from or grown by, oldest first: "
                          "applied_at (UTC), runs (the file's rows from then on: a grown "
                          "file keeps its rows and appends the new grid's added runs), "
                          "grid (the grid file's text); the last is the root attribute grid",
                          &ds) == 0;
    ok = ok && H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) >= 0;
    if (ds >= 0)
        H5Dclose(ds);
    H5Tclose(t);
    free(rows);
    return ok ? 0 : -1;
}

/* The file's grid history (store_contents.history); a file without
 * /grid_history has one entry, its grid attribute at its creation. */
static int read_grid_history(hid_t f, store_grid_entry **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (H5Lexists(f, "grid_history", H5P_DEFAULT) <= 0) {
        store_grid_entry *e = calloc(1, sizeof *e);
        char *created = get_string_attr(f, "created");
        char *text = get_string_attr(f, "grid");
        if (!e) {
            free(created);
            free(text);
            return -1;
        }
        copy_str(e->applied_at, sizeof e->applied_at - 1, created ? created : "");
        e->text = text ? text : strdup("");
        free(created);
        hid_t runs = H5Dopen2(f, "runs", H5P_DEFAULT);
        hid_t sp = runs >= 0 ? H5Dget_space(runs) : -1;
        e->n_runs = sp >= 0 ? (int)H5Sget_simple_extent_npoints(sp) : 0;
        if (sp >= 0)
            H5Sclose(sp);
        if (runs >= 0)
            H5Dclose(runs);
        *out = e;
        *n = 1;
        return e->text ? 0 : -1;
    }
    hid_t ds = H5Dopen2(f, "grid_history", H5P_DEFAULT);
    hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
    hssize_t H = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    history_row *rows = H > 0 ? calloc((size_t)H, sizeof *rows) : NULL;
    store_grid_entry *e = H > 0 ? calloc((size_t)H, sizeof *e) : NULL;
    hid_t t = history_type();
    int ok = rows && e && H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) >= 0;
    for (hssize_t i = 0; ok && i < H; i++) {
        copy_str(e[i].applied_at, sizeof e[i].applied_at - 1, rows[i].applied_at);
        e[i].n_runs = rows[i].runs;
        e[i].text = strdup(rows[i].grid ? rows[i].grid : "");
        ok = e[i].text != NULL;
    }
    if (rows && sp >= 0 && H5Dvlen_reclaim(t, sp, H5P_DEFAULT, rows) < 0)
        ok = 0;
    H5Tclose(t);
    free(rows);
    if (sp >= 0)
        H5Sclose(sp);
    if (ds >= 0)
        H5Dclose(ds);
    if (!ok) {
        for (hssize_t i = 0; e && i < H; i++)
            free(e[i].text);
        free(e);
        return -1;
    }
    *out = e;
    *n = (int)H;
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
        set_string_attr(f, "created", created) || write_grid_history(f, l, created))
        return -1;
    provenance_item stack[PROVENANCE_ITEMS];
    provenance_collect(stack);
    for (int i = 0; i < PROVENANCE_ITEMS; i++)
        if (set_string_attr(f, stack[i].name, stack[i].value))
            return -1;

    /* /runs, every row pending */
    hid_t rt = row_type();
    run_row *rows = calloc((size_t)R, sizeof *rows);
    hid_t ds = -1;
    int ok = rows != NULL;
    for (hsize_t i = 0; ok && i < R; i++)
        row_from_config(&rows[i], (int)i, &l->runs[i], l->run_ids ? l->run_ids[i] : NULL);
    ok = ok && make_dataset(f, "runs", rt, 1, &R, 1, NULL,
                            "one row per run, in plan order: configuration, status "
                            "(pending, done, diverged, failed, interrupted), reason, "
                            "timings, final training loss, where it ran, checksum "
                            "(FNV-1a 64 of the row's parts named by the attribute "
                            "checksum_covers, in that order, as stored: float32 bytes of "
                            "each array row, the loss row NaN-padded to S, then the "
                            "model_checksum column's 8 bytes; 0 while pending), "
                            "model_checksum (FNV-1a 64 of the run's /models group: each "
                            "parameter in model order, then eval_tokens, eval_pred, "
                            "eval_target; 0 without a saved model)",
                            &ds) == 0;
    ok = ok && H5Dwrite(ds, rt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) >= 0;
    ok = ok && set_knob_attrs(ds) == 0;
    const char *covers[N_ROW_DATASETS + 1];
    int n_covers = 0;
    for (int i = 0; i < N_ROW_DATASETS; i++)
        if (i < ROW_FIRST_SC || c0->sc_rounds > 0)
            covers[n_covers++] = row_dataset_names[i];
    covers[n_covers++] = "model_checksum";
    ok = ok && set_string_list_attr(ds, "checksum_covers", covers, n_covers) == 0;
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
    hsize_t dims3[3] = {R, P, N}, dims2[2] = {R, (hsize_t)S};
    ok = ok && write_whole(g_eval, "noise", H5T_NATIVE_DOUBLE, P, c0->eval_noise,
                           "evaluation reward-noise levels p [P]") == 0;
    static const char *const curves[] = {"tf_err", "gd_err", "blind_err", "pick_err"};
    for (int i = 0; ok && i < 4; i++) {
        char path[64];
        snprintf(path, sizeof path, "eval/%s", curves[i]);
        ok = make_dataset(g_eval, curves[i], H5T_NATIVE_FLOAT, 3, dims3, 1, &nanf_,
                          part_description(path), NULL) == 0;
    }
    int32_t *steps = malloc(sizeof(int32_t) * (size_t)(S ? S : 1));
    for (int i = 0; steps && i < S; i++)
        steps[i] = i + 1;
    ok = ok && steps && write_whole(g_train, "step", H5T_NATIVE_INT32, (hsize_t)S, steps,
                                    "training step numbers 1..S [S]") == 0;
    free(steps);
    ok = ok && make_dataset(g_train, "loss", H5T_NATIVE_FLOAT, 2, dims2, 1, &nanf_,
                            part_description("train/loss"), NULL) == 0;
    for (int i = 0; ok && l->save_model && i < l->n_runs; i++)
        ok = write_model_layout(g_models, &l->runs[i], l->run_ids ? l->run_ids[i] : NULL) == 0;
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
    if (store_layout_check(layout, err))
        return icas_wrap(err, "%s: ", path);
    if (!force && stat(path, &st) == 0)
        return icas_fail(err, "%s exists (use --force to replace it)", path);
    /* Built under a temporary name in the same directory, renamed into
     * place only when complete: `path` is never half-written. The name is
     * fixed, so a creation killed midway leaves one file that the next
     * creation replaces (writers of one path exclude each other: the sweep
     * holds its lock, `train` writes a name of its own). */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    quiet_state q = hdf5_quiet();
    fault_hdf5_begin();
    errno = 0;
    hid_t fapl = strong_fapl();
    hid_t f = fault_point("hdf5 create") ? -1
                                         : H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) {
        int e = errno;
        fault_hdf5_end();
        hdf5_restore(q);
        return icas_fail_errno(err, io_errno(), "cannot create %s: %s", path,
                               e ? strerror(e) : "HDF5 could not create the file");
    }
    int rc = write_layout(f, layout);
    int e = errno;
    if (fault_point("hdf5 close") || H5Fclose(f) < 0) {
        rc = -1;
        e = errno;
    }
    fault_hdf5_end();
    hdf5_restore(q);
    /* durable before it takes the place of anything */
    if (rc == 0 && store_sync_path(tmp, err) != 0) {
        rc = -1;
        e = err->sys_errno;
    }
    if (rc == 0 && (fault_rename(tmp, path) != 0 || fault_fsync_dir_of(path) != 0)) {
        rc = -1;
        e = errno;
    }
    if (rc) {
        unlink(tmp);
        errno = e;
        return icas_fail_errno(err, io_errno(), "cannot write %s: %s", path,
                               e ? strerror(e) : "HDF5 error");
    }
    return 0;
}

int store_sync_path(const char *path, icas_err *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fault_fsync(fd, "fsync result file") != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return icas_fail_errno(err, e, "%s: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

/* ---- checksums --------------------------------------------------------- */

/* FNV-1a 64 of a saved model as stored: each parameter view in model order,
 * then eval_tokens, eval_pred, eval_target; never 0 (0 means "none"). */
static uint64_t model_checksum(const run_result *r, const param_view *views, int n_views)
{
    uint64_t h = HASH_ICASWEEP_INIT;
    for (int i = 0; i < n_views; i++)
        h = hash_fnv1a64(r->params + views[i].offset,
                         sizeof(float) * (size_t)views[i].shape[0] * (size_t)views[i].shape[1], h);
    run_part parts[RUN_RESULT_MAX_PARTS];
    int n = run_result_parts(r, parts);
    for (int i = 0; i < n; i++)
        if (parts[i].kind == RUN_PART_MODEL && strcmp(parts[i].name, "params") != 0)
            h = hash_fnv1a64(parts[i].data, sizeof(float) * parts[i].n, h);
    return h ? h : 1;
}

/* The checksum of a row's numbers: its arrays a[k] of n[k] floats, in
 * row_dataset_names order as stored (the loss row NaN-padded to S), then
 * the model_checksum value; without cover_all (an earlier icasweep's
 * file) only the first five. The closed loop's are NULL without one.
 * FNV-1a 64, never 0. */
static uint64_t row_checksum(const float *const a[N_ROW_DATASETS], const size_t n[N_ROW_DATASETS],
                             int cover_all, uint64_t model_sum)
{
    uint64_t h = HASH_ICASWEEP_INIT;
    for (int k = 0; k < N_ROW_DATASETS; k++)
        if (a[k] && (k < ROW_FIRST_SC || cover_all))
            h = hash_fnv1a64(a[k], sizeof(float) * n[k], h);
    if (cover_all)
        h = hash_fnv1a64(&model_sum, sizeof model_sum, h);
    return h ? h : 1;
}

/* The /runs row of a result recorded at finished_at. */
static void row_from_result(run_row *out, int row, const run_result *r, const char *finished_at)
{
    row_from_config(out, row, &r->cfg, r->run_id);
    copy_str(out->status, sizeof out->status, run_status_name(r->status));
    copy_str(out->reason, sizeof out->reason, r->reason);
    out->wall_seconds = r->wall_seconds;
    out->train_seconds = r->train_seconds;
    out->eval_seconds = r->eval_seconds;
    out->final_loss = r->final_loss;
    out->steps_done = r->steps_done;
    copy_str(out->host, sizeof out->host, r->host);
    out->rank = r->rank;
    out->threads = r->threads;
    copy_str(out->finished_at, sizeof out->finished_at, finished_at);
}

static int row_status(const run_row *r)
{
    for (int k = RUN_PENDING; k <= RUN_INTERRUPTED; k++)
        if (strncmp(r->status, run_status_name((run_status)k), sizeof r->status) == 0)
            return k;
    return -1;
}

/* The result a row holds (the inverse of row_from_result). */
static void row_to_outcome(const run_row *o, run_outcome *out)
{
    memset(out, 0, sizeof *out);
    int st = row_status(o);
    out->status = (run_status)(st < 0 ? RUN_PENDING : st);
    snprintf(out->reason, sizeof out->reason, "%.*s", (int)sizeof o->reason, o->reason);
    out->wall_seconds = o->wall_seconds;
    out->train_seconds = o->train_seconds;
    out->eval_seconds = o->eval_seconds;
    out->final_loss = o->final_loss;
    out->steps_done = o->steps_done;
    snprintf(out->host, sizeof out->host, "%.*s", (int)sizeof out->host - 1, o->host);
    out->rank = o->rank;
    out->threads = o->threads;
}

/* ---- opening ------------------------------------------------------------- */

static hid_t open_file(const char *path, unsigned mode, icas_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return icas_fail(err, "%s: %s", path, strerror(errno));
    hid_t fapl = strong_fapl();
    /* The writer takes no HDF5 file lock: readers must be able to open the
     * file while a sweep keeps it open, and the sweep's own lock keeps a
     * second writer out. */
    if (mode == H5F_ACC_RDWR)
        H5Pset_file_locking(fapl, 0, 1);
    errno = 0;
    hid_t f = H5Fopen(path, mode, fapl);
    /* opening for writing writes the superblock: a full disk shows here */
    int e = f < 0 ? io_errno() : 0;
    H5Pclose(fapl);
    if (e)
        return icas_fail_errno(err, e, "%s: cannot open for writing: %s", path, strerror(e));
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

/* ---- writing in place ----------------------------------------------------- */

struct store_file {
    char path[4096];
    hid_t f, runs, row_t;
    hid_t ds[N_ROW_DATASETS]; /* -1 when the file has none (no closed loop) */
    hsize_t S;                /* the loss rows' length */
    int n_runs;
    int cover_all;            /* checksum_covers present: the full checksum */
    int has_sc;
    int fd;                   /* the file's descriptor, for fsync */
};

int store_open(const char *path, store_file **out, icas_err *err)
{
    *out = NULL;
    store_file *s = calloc(1, sizeof *s);
    if (!s)
        return icas_fail(err, "%s: out of memory", path);
    snprintf(s->path, sizeof s->path, "%s", path);
    for (int i = 0; i < N_ROW_DATASETS; i++)
        s->ds[i] = -1;
    s->runs = s->row_t = -1;
    quiet_state q = hdf5_quiet();
    fault_hdf5_begin();
    s->f = fault_point("hdf5 open") ? -1 : open_file(path, H5F_ACC_RDWR, err);
    if (s->f < 0) {
        if (err->msg[0] == 0 || errno == ENOSPC || errno == EIO)
            icas_fail_errno(err, errno, "%s: cannot open for writing: %s", path, strerror(errno));
        fault_hdf5_end();
        hdf5_restore(q);
        free(s);
        return -1;
    }
    /* no chunk cache: every row write goes to the file at once, and a
     * reader meets the bytes there */
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk_cache(dapl, 0, 0, 1.0);
    int ok = 1;
    s->has_sc = H5Lexists(s->f, "selfcorrect", H5P_DEFAULT) > 0;
    for (int i = 0; ok && i < N_ROW_DATASETS; i++) {
        if (!s->has_sc && i >= ROW_FIRST_SC)
            break;
        s->ds[i] = H5Dopen2(s->f, row_dataset_names[i], dapl);
        ok = s->ds[i] >= 0;
    }
    s->runs = ok ? H5Dopen2(s->f, "runs", dapl) : -1;
    ok = ok && s->runs >= 0;
    H5Pclose(dapl);
    if (ok) {
        hid_t sp = H5Dget_space(s->ds[ROW_LOSS]);
        hsize_t d2[2] = {0, 0};
        H5Sget_simple_extent_dims(sp, d2, NULL);
        H5Sclose(sp);
        s->S = d2[1];
        sp = H5Dget_space(s->runs);
        s->n_runs = (int)H5Sget_simple_extent_npoints(sp);
        H5Sclose(sp);
        s->cover_all = H5Aexists(s->runs, "checksum_covers") > 0;
        s->row_t = row_type();
        void *handle = NULL;
        ok = H5Fget_vfd_handle(s->f, H5P_DEFAULT, &handle) >= 0 && handle;
        s->fd = ok ? *(int *)handle : -1;
    }
    fault_hdf5_end();
    hdf5_restore(q);
    if (!ok) {
        icas_err ignore;
        store_close(s, &ignore);
        return icas_fail(err, "%s: not an icasweep result file (no /runs, /train/loss or "
                              "/eval table)", path);
    }
    *out = s;
    return 0;
}

/* A result's loss row padded with NaN to S (malloc'd; NULL when out of
 * memory). */
static float *padded_loss(const run_result *r, size_t S)
{
    float *buf = malloc(sizeof(float) * (S ? S : 1));
    for (size_t i = 0; buf && i < S; i++)
        buf[i] = i < (size_t)r->cfg.steps ? r->train_loss[i] : NAN;
    return buf;
}

/* Writes r's model into its (laid out) /models/<run_id> group. */
static int write_model(hid_t f, const run_result *r, const param_view *views, int n_views)
{
    char name[64];
    snprintf(name, sizeof name, "models/%.*s", ICAS_RUN_ID_LEN, r->run_id);
    hid_t g = H5Lexists(f, "models", H5P_DEFAULT) > 0 && H5Lexists(f, name, H5P_DEFAULT) > 0
                  ? H5Gopen2(f, name, H5P_DEFAULT)
                  : -1;
    int ok = g >= 0;
    run_part parts[RUN_RESULT_MAX_PARTS];
    int n = run_result_parts(r, parts);
    for (int i = 0; ok && i < n_views + n; i++) {
        const char *ds_name;
        const float *data;
        if (i < n_views) {
            ds_name = views[i].name;
            data = r->params + views[i].offset;
        } else if (parts[i - n_views].kind == RUN_PART_MODEL &&
                   strcmp(parts[i - n_views].name, "params") != 0) {
            ds_name = parts[i - n_views].name;
            data = parts[i - n_views].data;
        } else {
            continue;
        }
        hid_t ds = H5Dopen2(g, ds_name, H5P_DEFAULT);
        ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
        if (ds >= 0)
            H5Dclose(ds);
    }
    if (g >= 0)
        H5Gclose(g);
    return ok ? 0 : -1;
}

int store_write(store_file *s, int row, const run_result *r, const char *finished_at,
                icas_err *err)
{
    if (row < 0 || row >= s->n_runs)
        return icas_fail(err, "%s: row %d out of range (%d runs)", s->path, row, s->n_runs);
    char id[ICAS_RUN_ID_LEN];
    config_run_id(&r->cfg, id);
    if (strncmp(id, r->run_id, ICAS_RUN_ID_LEN) != 0)
        return icas_fail(err, "%s: row %d: result of run %.20s under the id %.20s", s->path, row,
                         id, r->run_id);
    run_row out;
    row_from_result(&out, row, r, finished_at);
    float *loss = padded_loss(r, (size_t)s->S);
    param_view *views = NULL;
    int n_views = 0;
    int has_model = run_result_has_model(r);
    if (!loss || (has_model && model_view_table(model_dims_of(&r->cfg), &views, &n_views, err))) {
        free(loss);
        return icas_fail(err, "%s: out of memory writing row %d", s->path, row);
    }
    /* the result's arrays, each into its dataset (the model's below) */
    const float *a[N_ROW_DATASETS] = {0};
    size_t n[N_ROW_DATASETS] = {0};
    run_part parts[RUN_RESULT_MAX_PARTS];
    int np = run_result_parts(r, parts), bad = 0;
    for (int i = 0; i < np; i++) {
        if (parts[i].kind == RUN_PART_MODEL)
            continue;
        int k = row_dataset_index(parts[i].name);
        bad |= k < 0 || s->ds[k] < 0;
        if (k >= 0) {
            a[k] = k == ROW_LOSS ? loss : parts[i].data;
            n[k] = k == ROW_LOSS ? (size_t)s->S : parts[i].n;
        }
    }
    for (int k = 0; k < N_ROW_DATASETS; k++)
        bad |= s->ds[k] >= 0 && !a[k];
    if (bad) {
        free(loss);
        free(views);
        return icas_fail(err, "%s: row %d: the result's closed-loop arrays and the file's "
                              "/selfcorrect do not match (one has them, the other not)",
                         s->path, row);
    }
    out.model_checksum = has_model ? model_checksum(r, views, n_views) : 0;
    out.checksum = row_checksum(a, n, s->cover_all, out.model_checksum);

    quiet_state q = hdf5_quiet();
    fault_hdf5_begin();
    errno = 0;
    int ok = 1;
    for (int k = 0; ok && k < N_ROW_DATASETS; k++) {
        if (s->ds[k] < 0)
            continue;
        ok = fault_point(k < ROW_FIRST_SC ? "hdf5 write curve" : "hdf5 write selfcorrect") == 0 &&
             write_row(s->ds[k], H5T_NATIVE_FLOAT, (hsize_t)row, a[k]) >= 0;
    }
    if (ok && has_model)
        ok = fault_point("hdf5 write model") == 0 && write_model(s->f, r, views, n_views) == 0;
    ok = ok && fault_point("hdf5 write row") == 0 &&
         write_row(s->runs, s->row_t, (hsize_t)row, &out) >= 0;
    int e = errno;
    fault_hdf5_end();
    hdf5_restore(q);
    free(loss);
    free(views);
    if (!ok)
        return icas_fail_errno(err, io_errno() ? io_errno() : (e == ENOSPC || e == EIO ? e : 0),
                               "%s: cannot write the result of row %d (run %s): %s", s->path,
                               row, r->run_id, e ? strerror(e) : "HDF5 error (no model group "
                               "for a saved model?)");
    return 0;
}

int store_write_pending(store_file *s, int row, const run_config *cfg, icas_err *err)
{
    run_result r;
    if (run_result_alloc(&r, cfg, 0, err))
        return -1;
    r.status = RUN_PENDING;
    r.rank = r.threads = -1;
    r.wall_seconds = r.train_seconds = r.eval_seconds = NAN;
    int rc = store_write(s, row, &r, "", err);
    run_result_free(&r);
    if (rc == 0) {
        /* a pending row carries no checksum */
        run_row out;
        row_from_config(&out, row, cfg, NULL);
        quiet_state q = hdf5_quiet();
        fault_hdf5_begin();
        errno = 0;
        if (fault_point("hdf5 write row") || write_row(s->runs, s->row_t, (hsize_t)row, &out) < 0)
            rc = icas_fail_errno(err, io_errno(), "%s: cannot write row %d: %s", s->path, row,
                                 errno ? strerror(errno) : "HDF5 error");
        fault_hdf5_end();
        hdf5_restore(q);
    }
    return rc;
}

int store_sync(store_file *s, icas_err *err)
{
    if (fault_fsync(s->fd, "fsync result file") != 0)
        return icas_fail_errno(err, errno, "%s: cannot make the file durable: %s", s->path,
                               strerror(errno));
    return 0;
}

int store_close(store_file *s, icas_err *err)
{
    if (!s)
        return 0;
    int rc = 0;
    quiet_state q = hdf5_quiet();
    fault_hdf5_begin();
    for (int i = 0; i < N_ROW_DATASETS; i++)
        if (s->ds[i] >= 0)
            H5Dclose(s->ds[i]);
    if (s->runs >= 0)
        H5Dclose(s->runs);
    if (s->row_t >= 0)
        H5Tclose(s->row_t);
    errno = 0;
    if (s->f >= 0 && (fault_point("hdf5 close") || H5Fclose(s->f) < 0))
        rc = icas_fail_errno(err, io_errno(), "%s: cannot close the file: %s", s->path,
                             errno ? strerror(errno) : "HDF5 error");
    fault_hdf5_end();
    hdf5_restore(q);
    free(s);
    return rc;
}

int store_write_result(const char *path, int row, const run_result *r, icas_err *err)
{
    char finished_at[32];
    now_iso(finished_at, sizeof finished_at);
    store_file *s;
    if (store_open(path, &s, err))
        return -1;
    int rc = store_write(s, row, r, finished_at, err);
    if (rc == 0)
        rc = store_sync(s, err);
    icas_err close_err;
    if (store_close(s, &close_err) && rc == 0) {
        *err = close_err;
        rc = -1;
    }
    return rc;
}

/* ---- reading ------------------------------------------------------------- */

/* Everything of a file needed to check it: rows and the per-run arrays. */
typedef struct {
    run_row *rows;
    int n;
    hsize_t P, N, S;
    float *arrays[N_ROW_DATASETS]; /* [R, per_row[i]] each; NULL for absent sc */
    size_t per_row[N_ROW_DATASETS];
    int has_sc, cover_all, has_models;
} file_image;

static void image_free(file_image *im)
{
    free(im->rows);
    for (int i = 0; i < N_ROW_DATASETS; i++)
        free(im->arrays[i]);
    memset(im, 0, sizeof *im);
}

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

/* Reads a whole float dataset of R rows; *per_row is its length per row. */
static float *read_all(hid_t f, const char *name, hsize_t R, size_t *per_row, hsize_t *dims)
{
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0)
        return NULL;
    hid_t sp = H5Dget_space(ds);
    float *buf = NULL;
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank >= 1 && rank <= 4) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        size_t n = 1;
        for (int i = 1; i < rank; i++)
            n *= (size_t)dims[i];
        *per_row = n;
        if (dims[0] == R)
            buf = malloc(sizeof(float) * (n * R > 0 ? n * R : 1));
        if (buf && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            free(buf);
            buf = NULL;
        }
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return buf;
}

/* 0 with the image read; -1 (err says why) when the file cannot be read
 * whole: damaged. */
static int read_image(hid_t f, const char *path, file_image *im, icas_err *err)
{
    memset(im, 0, sizeof *im);
    if (read_rows(f, path, &im->rows, &im->n, err))
        return -1;
    im->has_sc = H5Lexists(f, "selfcorrect", H5P_DEFAULT) > 0;
    im->has_models = H5Lexists(f, "models", H5P_DEFAULT) > 0;
    hid_t runs = H5Dopen2(f, "runs", H5P_DEFAULT);
    im->cover_all = runs >= 0 && H5Aexists(runs, "checksum_covers") > 0;
    if (runs >= 0)
        H5Dclose(runs);
    for (int i = 0; i < N_ROW_DATASETS; i++) {
        if (i >= ROW_FIRST_SC && !im->has_sc)
            break;
        hsize_t dims[4] = {0, 0, 0, 0};
        im->arrays[i] = read_all(f, row_dataset_names[i], (hsize_t)im->n, &im->per_row[i], dims);
        if (!im->arrays[i]) {
            image_free(im);
            return icas_fail(err, "%s: cannot read /%s", path, row_dataset_names[i]);
        }
        if (i == ROW_LOSS)
            im->S = dims[1];
        if (i == 0) {
            im->P = dims[1];
            im->N = dims[2];
        }
        if (i < ROW_LOSS && im->per_row[i] != (size_t)(im->P * im->N)) {
            image_free(im);
            return icas_fail(err, "%s: /%s and /eval/tf_err differ in shape", path,
                             row_dataset_names[i]);
        }
    }
    return 0;
}

/* Reads row i's saved model from /models/<run_id> into r (allocated with
 * a model for its configuration). Returns 0, or -1 when it is missing. */
static int read_model(hid_t f, const char *run_id, run_result *r, const param_view *views,
                      int n_views)
{
    char name[64];
    snprintf(name, sizeof name, "models/%.*s", ICAS_RUN_ID_LEN, run_id);
    if (H5Lexists(f, "models", H5P_DEFAULT) <= 0 || H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
    int ok = g >= 0;
    run_part parts[RUN_RESULT_MAX_PARTS];
    int n = run_result_parts(r, parts);
    for (int i = 0; ok && i < n_views + n; i++) {
        const char *ds_name;
        float *data;
        size_t count;
        if (i < n_views) {
            ds_name = views[i].name;
            data = r->params + views[i].offset;
            count = (size_t)views[i].shape[0] * (size_t)views[i].shape[1];
        } else if (parts[i - n_views].kind == RUN_PART_MODEL &&
                   strcmp(parts[i - n_views].name, "params") != 0) {
            ds_name = parts[i - n_views].name;
            data = parts[i - n_views].data;
            count = parts[i - n_views].n;
        } else {
            continue;
        }
        hid_t ds = H5Lexists(g, ds_name, H5P_DEFAULT) > 0 ? H5Dopen2(g, ds_name, H5P_DEFAULT) : -1;
        hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
        ok = sp >= 0 && (size_t)H5Sget_simple_extent_npoints(sp) == count &&
             H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
        if (sp >= 0)
            H5Sclose(sp);
        if (ds >= 0)
            H5Dclose(ds);
    }
    if (g >= 0)
        H5Gclose(g);
    return ok ? 0 : -1;
}

/* Row i of the image as a result of configuration cfg (allocated with a
 * model when with_model; the model is read from f). */
static int image_result(hid_t f, const file_image *im, int i, const run_config *cfg,
                        int with_model, run_result *r, char finished_at[32], icas_err *err)
{
    if (run_result_alloc(r, cfg, with_model, err))
        return -1;
    run_outcome o;
    row_to_outcome(&im->rows[i], &o);
    run_result_set_outcome(r, &o);
    snprintf(finished_at, 32, "%.*s", (int)sizeof im->rows[i].finished_at - 1,
             im->rows[i].finished_at);
    run_part parts[RUN_RESULT_MAX_PARTS];
    int np = run_result_parts(r, parts);
    for (int p = 0; p < np; p++) {
        int k = parts[p].kind == RUN_PART_MODEL ? -1 : row_dataset_index(parts[p].name);
        if (k < 0 || !im->arrays[k])
            continue;
        size_t count = parts[p].n < im->per_row[k] ? parts[p].n : im->per_row[k];
        memcpy(parts[p].data, im->arrays[k] + (size_t)i * im->per_row[k], sizeof(float) * count);
    }
    if (with_model) {
        param_view *views = NULL;
        int n_views = 0;
        int rc = model_view_table(model_dims_of(cfg), &views, &n_views, err);
        if (rc == 0 && read_model(f, im->rows[i].run_id, r, views, n_views) != 0)
            rc = icas_fail(err, "row %d: its saved model cannot be read", i);
        free(views);
        if (rc) {
            run_result_free(r);
            return -1;
        }
    }
    return 0;
}

/* model_checksum of the model stored in /models/<run_id>, its datasets
 * hashed in the order of the group's checksum_order attribute (written
 * when the group was laid out). -1 when it is missing or unreadable. */
static int model_checksum_in_file(hid_t f, const char *run_id, uint64_t *sum)
{
    char name[64];
    snprintf(name, sizeof name, "models/%.*s", ICAS_RUN_ID_LEN, run_id);
    if (H5Lexists(f, "models", H5P_DEFAULT) <= 0 || H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
    if (g < 0)
        return -1;
    int ok = H5Aexists(g, "checksum_order") > 0;
    hid_t a = ok ? H5Aopen(g, "checksum_order", H5P_DEFAULT) : -1;
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    size_t len = t >= 0 ? H5Tget_size(t) : 0;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : 0;
    char *names = ok && len > 0 && n > 0 ? calloc((size_t)n, len + 1) : NULL;
    ok = names != NULL;
    if (ok) {
        hid_t mt = string_type(len);
        ok = H5Aread(a, mt, names) >= 0;
        H5Tclose(mt);
    }
    uint64_t h = HASH_ICASWEEP_INIT;
    float *buf = NULL;
    size_t cap = 0;
    for (hssize_t i = 0; ok && i < n; i++) {
        char ds_name[256];
        snprintf(ds_name, sizeof ds_name, "%.*s", (int)len, names + (size_t)i * len);
        hid_t ds = H5Lexists(g, ds_name, H5P_DEFAULT) > 0 ? H5Dopen2(g, ds_name, H5P_DEFAULT) : -1;
        hid_t dsp = ds >= 0 ? H5Dget_space(ds) : -1;
        hssize_t count = dsp >= 0 ? H5Sget_simple_extent_npoints(dsp) : -1;
        ok = count >= 0;
        if (ok && (size_t)count > cap) {
            free(buf);
            cap = (size_t)count;
            buf = malloc(sizeof(float) * (cap ? cap : 1));
            ok = buf != NULL;
        }
        ok = ok && (count == 0 ||
                    H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
        if (ok)
            h = hash_fnv1a64(buf, sizeof(float) * (size_t)count, h);
        if (dsp >= 0)
            H5Sclose(dsp);
        if (ds >= 0)
            H5Dclose(ds);
    }
    free(buf);
    free(names);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    H5Gclose(g);
    *sum = h ? h : 1;
    return ok ? 0 : -1;
}

/* A row is sound when its numbers match its checksum (rows written before
 * the checksum existed have 0 and skip that check) and, marked done, holds
 * them all: every transformer and GD error, the reference curves past
 * k = 0, the loss of every step, and a saved model whose bytes match the
 * row's model_checksum. */
static int row_sound(hid_t f, const file_image *im, int i)
{
    const run_row *r = &im->rows[i];
    size_t PN = (size_t)(im->P * im->N);
    const float *a[N_ROW_DATASETS];
    for (int k = 0; k < N_ROW_DATASETS; k++)
        a[k] = im->arrays[k] ? im->arrays[k] + (size_t)i * im->per_row[k] : NULL;
    if (r->checksum && row_checksum(a, im->per_row, im->cover_all, r->model_checksum) != r->checksum)
        return 0;
    if (row_status(r) != RUN_DONE)
        return 1;
    for (size_t j = 0; j < PN; j++) {
        size_t k = j % im->N;
        if (!isfinite(a[0][j]) || !isfinite(a[1][j]))
            return 0;
        if (k > 0 && (!isfinite(a[2][j]) || !isfinite(a[3][j])))
            return 0;
    }
    if (r->steps < 0 || (hsize_t)r->steps > im->S)
        return 0;
    for (int s = 0; s < r->steps; s++)
        if (!isfinite(a[ROW_LOSS][s]))
            return 0;
    if (im->cover_all && r->model_checksum) {
        /* the model the checksum names must be there, byte for byte */
        uint64_t sum = 0;
        if (model_checksum_in_file(f, r->run_id, &sum) || sum != r->model_checksum)
            return 0;
    }
    return 1;
}

int store_read(const char *path, store_contents *out, icas_err *err)
{
    memset(out, 0, sizeof *out);
    quiet_state q = hdf5_quiet();
    hid_t f = open_file(path, H5F_ACC_RDONLY, err);
    if (f < 0) {
        hdf5_restore(q);
        return -1;
    }
    if (check_schema(f, path, err)) {
        H5Fclose(f);
        hdf5_restore(q);
        return -2;
    }
    file_image im;
    if (read_image(f, path, &im, err)) {
        H5Fclose(f);
        hdf5_restore(q);
        return -1;
    }
    out->n_runs = im.n;
    out->rows = calloc((size_t)(im.n ? im.n : 1), sizeof *out->rows);
    for (int i = 0; out->rows && i < im.n; i++) {
        store_row_info *r = &out->rows[i];
        memcpy(r->run_id, im.rows[i].run_id, ICAS_RUN_ID_LEN);
        r->run_id[ICAS_RUN_ID_LEN - 1] = 0;
        r->status = row_status(&im.rows[i]);
        r->sound = row_sound(f, &im, i);
        snprintf(r->reason, sizeof r->reason, "%.*s", (int)sizeof im.rows[i].reason,
                 im.rows[i].reason);
        r->wall_seconds = im.rows[i].wall_seconds;
    }
    out->in_place = im.cover_all;
    char *g = get_string_attr(f, "grid");
    out->grid_text = g ? g : strdup("");
    out->program_version = get_string_attr(f, "program_version");
    out->git_revision = get_string_attr(f, "git_revision");
    int history_bad = read_grid_history(f, &out->history, &out->n_history);
    image_free(&im);
    H5Fclose(f);
    hdf5_restore(q);
    if (!out->rows || !out->grid_text) {
        store_contents_free(out);
        return icas_fail(err, "%s: out of memory", path);
    }
    if (history_bad) {
        store_contents_free(out);
        return icas_fail(err, "%s: cannot read /grid_history", path);
    }
    return 0;
}

void store_contents_free(store_contents *c)
{
    free(c->rows);
    free(c->grid_text);
    free(c->program_version);
    free(c->git_revision);
    for (int i = 0; i < c->n_history; i++)
        free(c->history[i].text);
    free(c->history);
    memset(c, 0, sizeof *c);
}

int store_copy_rows(const char *from, store_file *to, const store_layout *layout,
                    const int *keep, int *n_copied, icas_err *err)
{
    *n_copied = 0;
    quiet_state q = hdf5_quiet();
    hid_t f = open_file(from, H5F_ACC_RDONLY, err);
    file_image im;
    if (f < 0 || read_image(f, from, &im, err)) {
        if (f >= 0)
            H5Fclose(f);
        hdf5_restore(q);
        return -1;
    }
    hdf5_restore(q);
    int rc = 0;
    for (int i = 0; rc == 0 && i < im.n && i < layout->n_runs; i++) {
        int st = row_status(&im.rows[i]);
        if (!keep[i] || st <= RUN_PENDING)
            continue;
        q = hdf5_quiet();
        int sound = row_sound(f, &im, i);
        char name[64];
        snprintf(name, sizeof name, "models/%.*s", ICAS_RUN_ID_LEN, im.rows[i].run_id);
        int with_model = st == RUN_DONE && layout->save_model && im.has_models &&
                         H5Lexists(f, name, H5P_DEFAULT) > 0;
        hdf5_restore(q);
        if (!sound)
            continue;
        run_result r;
        char finished_at[32];
        q = hdf5_quiet();
        int got = image_result(f, &im, i, &layout->runs[i], with_model, &r, finished_at, err);
        hdf5_restore(q);
        if (got) {
            rc = icas_wrap(err, "%s: ", from);
            break;
        }
        rc = store_write(to, i, &r, finished_at, err);
        run_result_free(&r);
        *n_copied += rc == 0;
    }
    image_free(&im);
    q = hdf5_quiet();
    H5Fclose(f);
    hdf5_restore(q);
    return rc;
}

int store_read_run_ids(const char *path, char (**ids)[ICAS_RUN_ID_LEN], int *n,
                       char **grid_text, icas_err *err)
{
    *ids = NULL;
    *n = 0;
    *grid_text = NULL;
    quiet_state q = hdf5_quiet();
    hid_t f = open_file(path, H5F_ACC_RDONLY, err);
    run_row *rows = NULL;
    int count = 0;
    int rc = f < 0 || read_rows(f, path, &rows, &count, err) ? -1 : 0;
    if (rc == 0) {
        char *g = get_string_attr(f, "grid");
        *grid_text = g ? g : strdup("");
        *ids = malloc(sizeof **ids * (size_t)(count ? count : 1));
        if (!*grid_text || !*ids) {
            free(*grid_text);
            free(*ids);
            *grid_text = NULL;
            *ids = NULL;
            rc = icas_fail(err, "%s: out of memory", path);
        }
    }
    for (int i = 0; rc == 0 && i < count; i++) {
        memcpy((*ids)[i], rows[i].run_id, ICAS_RUN_ID_LEN);
        (*ids)[i][ICAS_RUN_ID_LEN - 1] = 0;
    }
    if (rc == 0)
        *n = count;
    free(rows);
    if (f >= 0)
        H5Fclose(f);
    hdf5_restore(q);
    return rc;
}
