#define _DEFAULT_SOURCE /* flock */
#include "icasweep/store.h"

#include "icasweep/fault.h"
#include "icasweep/hash.h"
#include "icasweep/journal.h"
#include "icasweep/model.h"
#include "icasweep/provenance.h"

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

/* Row `row` of the closed loop's arrays of an open file into r (which
 * run_result_alloc sized); nothing when r has no closed loop. A file
 * without /selfcorrect leaves r's NaNs. */
static int read_selfcorrect_row(hid_t f, int row, run_result *r)
{
    float *arrays[RUN_RESULT_N_SC];
    int lengths[RUN_RESULT_N_SC];
    int n = run_result_sc_arrays(r, arrays, lengths);
    if (n == 0 || H5Lexists(f, "selfcorrect", H5P_DEFAULT) <= 0)
        return 0;
    int ok = 1;
    for (int i = 0; ok && i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "selfcorrect/%s", sc_datasets[i].name);
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
        hid_t fsp = ds >= 0 ? H5Dget_space(ds) : -1;
        int rank = fsp >= 0 ? H5Sget_simple_extent_ndims(fsp) : -1;
        hsize_t dims[4], start[4] = {(hsize_t)row, 0, 0, 0}, count[4];
        ok = rank >= 1 && rank <= 4 && H5Sget_simple_extent_dims(fsp, dims, NULL) >= 0 &&
             (hsize_t)row < dims[0];
        hsize_t per_row = 1;
        count[0] = 1;
        for (int k = 1; ok && k < rank; k++) {
            count[k] = dims[k];
            per_row *= dims[k];
        }
        ok = ok && per_row == (hsize_t)lengths[i] &&
             H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) >= 0;
        if (ok) {
            hid_t msp = H5Screate_simple(rank, count, NULL);
            ok = H5Dread(ds, H5T_NATIVE_FLOAT, msp, fsp, H5P_DEFAULT, arrays[i]) >= 0;
            H5Sclose(msp);
        }
        if (fsp >= 0)
            H5Sclose(fsp);
        if (ds >= 0)
            H5Dclose(ds);
    }
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
        row_from_config(&rows[i], (int)i, &l->runs[i]);
    ok = ok && make_dataset(f, "runs", rt, 1, &R, NULL,
                            "one row per run, in plan order: configuration, status "
                            "(pending, done, diverged, failed, interrupted), reason, "
                            "timings, final training loss, where it ran, checksum "
                            "(FNV-1a 64 of the row's /eval curves tf, gd, blind, pick "
                            "[P, N] then its /train/loss row [S], float32 bytes; 0 while "
                            "pending)",
                            &ds) == 0;
    ok = ok && H5Dwrite(ds, rt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) >= 0;
    ok = ok && set_knob_attrs(ds) == 0;
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
    if (rc == 0 && fault_rename(tmp, path) != 0) {
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
    hid_t fapl = strong_fapl();
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

/* The checksum of a row's numbers: its four [P, N] curves in
 * run_result_curves order, then its [S] loss row (NaN past the run's
 * steps), as float32 bytes, FNV-1a 64; never 0 (0 means "none"). */
static uint64_t row_checksum(float *const curves[RUN_RESULT_N_CURVES], size_t PN,
                             const float *loss, size_t S)
{
    uint64_t h = HASH_ICASWEEP_INIT;
    for (int k = 0; k < RUN_RESULT_N_CURVES; k++)
        h = hash_fnv1a64(curves[k], sizeof(float) * PN, h);
    h = hash_fnv1a64(loss, sizeof(float) * S, h);
    return h ? h : 1;
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

/* The /runs row of a result recorded at finished_at. */
static void row_from_result(run_row *out, int row, const run_result *r, const char *finished_at)
{
    row_from_config(out, row, &r->cfg);
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

/* Writes r into row `row` of the open file f: the curves, the loss row,
 * the model (with one), the /runs row last. Returns 0 or -1. */
static int write_result_into(hid_t f, int row, const run_result *r, const char *finished_at)
{
    run_row out;
    row_from_result(&out, row, r, finished_at);
    hid_t rt = row_type();
    hid_t ds_runs = H5Dopen2(f, "runs", H5P_DEFAULT);
    hid_t ds_loss = H5Dopen2(f, "train/loss", H5P_DEFAULT);
    int ok = ds_runs >= 0 && ds_loss >= 0;
    float *curves[RUN_RESULT_N_CURVES];
    run_result_curves((run_result *)r, curves);
    float *buf = NULL;
    if (ok) {
        /* the loss row is S long; this run has cfg.steps of them */
        hid_t fsp = H5Dget_space(ds_loss);
        hsize_t dims[2] = {0, 0};
        H5Sget_simple_extent_dims(fsp, dims, NULL);
        H5Sclose(fsp);
        buf = padded_loss(r, (size_t)dims[1]);
        ok = buf != NULL;
        if (ok)
            out.checksum = row_checksum(curves, (size_t)r->P * r->N, buf, (size_t)dims[1]);
    }
    for (int i = 0; ok && i < RUN_RESULT_N_CURVES; i++) {
        char name[64];
        snprintf(name, sizeof name, "eval/%s", curve_datasets[i].name);
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
        ok = ds >= 0 && fault_point("hdf5 write curve") == 0 &&
             write_row(ds, H5T_NATIVE_FLOAT, (hsize_t)row, curves[i]) >= 0;
        if (ds >= 0)
            H5Dclose(ds);
    }
    ok = ok && fault_point("hdf5 write loss") == 0 &&
         write_row(ds_loss, H5T_NATIVE_FLOAT, (hsize_t)row, buf) >= 0;
    free(buf);
    ok = ok && fault_point("hdf5 write selfcorrect") == 0 &&
         write_selfcorrect_row(f, row, r) == 0;
    if (ok && r->params && r->status == RUN_DONE)
        ok = fault_point("hdf5 write model") == 0 && write_model(f, r) == 0;
    ok = ok && fault_point("hdf5 write row") == 0 && write_row(ds_runs, rt, (hsize_t)row, &out) >= 0;
    if (ds_runs >= 0) H5Dclose(ds_runs);
    if (ds_loss >= 0) H5Dclose(ds_loss);
    H5Tclose(rt);
    ok = ok && fault_point("hdf5 flush") == 0 && H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0;
    return ok ? 0 : -1;
}

static int write_result_at(const char *path, int row, const run_result *r,
                           const char *finished_at, icas_err *err)
{
    quiet_state q = hdf5_quiet();
    fault_hdf5_begin();
    hid_t f = open_file(path, H5F_ACC_RDWR, err);
    if (f < 0) {
        fault_hdf5_end();
        hdf5_restore(q);
        return -1;
    }
    int rc = 0;
    run_row *rows = NULL;
    int n = 0;
    if (read_rows(f, path, &rows, &n, err)) {
        rc = -1;
    } else if (row < 0 || row >= n) {
        rc = icas_fail(err, "%s: row %d out of range (%d runs)", path, row, n);
    } else if (strncmp(rows[row].run_id, r->run_id, ICAS_RUN_ID_LEN) != 0) {
        rc = icas_fail(err, "%s: row %d holds run %.20s, not %s", path, row, rows[row].run_id,
                       r->run_id);
    } else {
        errno = 0;
        if (write_result_into(f, row, r, finished_at)) {
            int e = errno;
            rc = icas_fail_errno(err, io_errno(), "%s: cannot write the result of row %d "
                                 "(run %s): %s", path, row, r->run_id,
                                 e ? strerror(e) : "HDF5 error");
        }
    }
    free(rows);
    errno = 0;
    if ((fault_point("hdf5 close") || H5Fclose(f) < 0) && rc == 0) {
        int e = errno;
        rc = icas_fail_errno(err, io_errno(), "%s: cannot close the file after writing row "
                             "%d: %s", path, row, e ? strerror(e) : "HDF5 error");
    }
    fault_hdf5_end();
    hdf5_restore(q);
    return rc;
}

int store_write_result(const char *path, int row, const run_result *r, icas_err *err)
{
    char finished_at[32];
    now_iso(finished_at, sizeof finished_at);
    return write_result_at(path, row, r, finished_at, err);
}

int store_record(const char *path, const char *journal, int row, const run_result *r,
                 icas_err *err)
{
    char finished_at[32];
    now_iso(finished_at, sizeof finished_at);
    if (journal_write(journal, row, r, finished_at, err))
        return -1;
    return write_result_at(path, row, r, finished_at, err);
}

/* ---- verification and recovery ---------------------------------------- */

/* Everything of a file needed to check it: rows and the numeric arrays. */
typedef struct {
    run_row *rows;
    int n;
    hsize_t P, N, S;
    float *curves[RUN_RESULT_N_CURVES]; /* [R, P, N] each */
    float *loss;                        /* [R, S] */
} file_image;

static void image_free(file_image *im)
{
    free(im->rows);
    for (int i = 0; i < RUN_RESULT_N_CURVES; i++)
        free(im->curves[i]);
    free(im->loss);
    memset(im, 0, sizeof *im);
}

/* Reads a whole 2- or 3-dimensional float dataset of R rows. */
static float *read_all(hid_t f, const char *name, int rank, hsize_t R, hsize_t *dims)
{
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0)
        return NULL;
    hid_t sp = H5Dget_space(ds);
    float *buf = NULL;
    if (H5Sget_simple_extent_ndims(sp) == rank) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        size_t n = 1;
        for (int i = 0; i < rank; i++)
            n *= (size_t)dims[i];
        if (dims[0] == R)
            buf = malloc(sizeof(float) * (n ? n : 1));
        if (buf && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            free(buf);
            buf = NULL;
        }
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return buf;
}

/* 0 with the image read; -1 (err says why) when the file cannot be opened
 * or read whole: damaged. */
static int read_image(hid_t f, const char *path, file_image *im, icas_err *err)
{
    memset(im, 0, sizeof *im);
    if (read_rows(f, path, &im->rows, &im->n, err))
        return -1;
    hsize_t d3[3], d2[2];
    for (int i = 0; i < RUN_RESULT_N_CURVES; i++) {
        char name[64];
        snprintf(name, sizeof name, "eval/%s", curve_datasets[i].name);
        im->curves[i] = read_all(f, name, 3, (hsize_t)im->n, d3);
        if (!im->curves[i] || (i > 0 && (d3[1] != im->P || d3[2] != im->N))) {
            image_free(im);
            return icas_fail(err, "%s: cannot read /%s", path, name);
        }
        im->P = d3[1];
        im->N = d3[2];
    }
    im->loss = read_all(f, "train/loss", 2, (hsize_t)im->n, d2);
    if (!im->loss) {
        image_free(im);
        return icas_fail(err, "%s: cannot read /train/loss", path);
    }
    im->S = d2[1];
    return 0;
}

static int row_status(const run_row *r)
{
    for (int k = RUN_PENDING; k <= RUN_INTERRUPTED; k++)
        if (strncmp(r->status, run_status_name((run_status)k), sizeof r->status) == 0)
            return k;
    return -1;
}

/* A row is sound when its numbers match its checksum (rows written before
 * the checksum existed have 0 and skip that check) and, marked done, holds
 * them all: every transformer and GD error, the reference curves past
 * k = 0, and the loss of every step. */
static int row_sound(const file_image *im, int i, int steps)
{
    size_t PN = (size_t)(im->P * im->N);
    const run_row *r = &im->rows[i];
    if (r->checksum) {
        float *curves[RUN_RESULT_N_CURVES];
        for (int k = 0; k < RUN_RESULT_N_CURVES; k++)
            curves[k] = im->curves[k] + i * PN;
        if (row_checksum(curves, PN, im->loss + (size_t)i * im->S, (size_t)im->S) != r->checksum)
            return 0;
    }
    if (row_status(r) != RUN_DONE)
        return 1;
    for (size_t j = 0; j < PN; j++) {
        size_t k = j % im->N;
        if (!isfinite(im->curves[0][i * PN + j]) || !isfinite(im->curves[1][i * PN + j]))
            return 0;
        if (k > 0 && (!isfinite(im->curves[2][i * PN + j]) || !isfinite(im->curves[3][i * PN + j])))
            return 0;
    }
    if (steps < 0 || (hsize_t)steps > im->S)
        return 0;
    for (int s = 0; s < steps; s++)
        if (!isfinite(im->loss[(size_t)i * im->S + s]))
            return 0;
    return 1;
}

/* 1 when /models/<run_id> holds exactly r's saved model. */
static int model_matches(hid_t f, const run_result *r)
{
    char name[64];
    snprintf(name, sizeof name, "models/%s", r->run_id);
    if (H5Lexists(f, "models", H5P_DEFAULT) <= 0 || H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return 0;
    param_view *views = NULL;
    int n_views = 0, ok = 1;
    if (model_view_table(model_dims_of(&r->cfg), &views, &n_views, NULL))
        return 0;
    const run_config *c = &r->cfg;
    size_t B = (size_t)c->eval_batch, d = (size_t)c->dims, N = (size_t)c->points;
    struct {
        const char *name;
        const float *want;
        size_t n;
    } items[3] = {{"eval_tokens", r->eval_tokens, B * 3 * N * d},
                  {"eval_pred", r->eval_pred, B * N * d},
                  {"eval_target", r->eval_target, B * d}};
    for (int i = 0; ok && i < n_views + 3; i++) {
        char ds_name[256];
        const float *want;
        size_t n;
        if (i < n_views) {
            snprintf(ds_name, sizeof ds_name, "%s/%s", name, views[i].name);
            want = r->params + views[i].offset;
            n = (size_t)views[i].shape[0] * (size_t)views[i].shape[1];
        } else {
            snprintf(ds_name, sizeof ds_name, "%s/%s", name, items[i - n_views].name);
            want = items[i - n_views].want;
            n = items[i - n_views].n;
        }
        hid_t ds = H5Lexists(f, ds_name, H5P_DEFAULT) > 0 ? H5Dopen2(f, ds_name, H5P_DEFAULT)
                                                           : -1;
        float *got = malloc(sizeof(float) * (n ? n : 1));
        ok = ds >= 0 && got && H5Sget_simple_extent_npoints(H5Dget_space(ds)) >= 0;
        if (ok) {
            hid_t sp = H5Dget_space(ds);
            ok = (size_t)H5Sget_simple_extent_npoints(sp) == n &&
                 H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, got) >= 0 &&
                 memcmp(got, want, sizeof(float) * n) == 0;
            H5Sclose(sp);
        }
        free(got);
        if (ds >= 0)
            H5Dclose(ds);
    }
    free(views);
    return ok;
}

/* 1 when row i of the image holds exactly the journal's result r. */
static int row_matches(hid_t f, const file_image *im, int i, const run_result *r,
                       const char *finished_at)
{
    run_row want;
    row_from_result(&want, i, r, finished_at);
    size_t PN = (size_t)(im->P * im->N);
    if ((size_t)(r->P * r->N) != PN || (hsize_t)r->cfg.steps > im->S)
        return 0;
    float *curves[RUN_RESULT_N_CURVES];
    run_result_curves((run_result *)r, curves);
    float *loss_row = padded_loss(r, (size_t)im->S);
    if (!loss_row)
        return 0;
    want.checksum = row_checksum(curves, PN, loss_row, (size_t)im->S);
    free(loss_row);
    if (memcmp(&want, &im->rows[i], sizeof want) != 0)
        return 0;
    for (int k = 0; k < RUN_RESULT_N_CURVES; k++)
        if (memcmp(curves[k], im->curves[k] + i * PN, sizeof(float) * PN) != 0)
            return 0;
    const float *loss = im->loss + (size_t)i * im->S;
    if (memcmp(loss, r->train_loss, sizeof(float) * (size_t)r->cfg.steps) != 0)
        return 0;
    for (hsize_t s = (hsize_t)r->cfg.steps; s < im->S; s++)
        if (!isnan(loss[s]))
            return 0;
    if (r->params && r->status == RUN_DONE)
        return model_matches(f, r);
    return 1;
}

/* The row of the layout whose run id is `id`, or -1. */
static int layout_row(const store_layout *l, const char *id)
{
    for (int i = 0; i < l->n_runs; i++) {
        char x[ICAS_RUN_ID_LEN];
        config_run_id(&l->runs[i], x);
        if (strncmp(x, id, ICAS_RUN_ID_LEN) == 0)
            return i;
    }
    return -1;
}

/* One usable journal entry per row ([R] of paths, "" when none); damaged
 * entries are reported to log and left out (their runs are redone). */
static char (*journal_by_row(const char *journal, const store_layout *l, FILE *log,
                             icas_err *err))[4096]
{
    journal_item *items = NULL;
    int n = 0;
    if (journal_list(journal, &items, &n, err))
        return NULL;
    char (*by_row)[4096] = calloc((size_t)l->n_runs, sizeof *by_row);
    if (!by_row) {
        free(items);
        icas_fail(err, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        int row = items[i].row >= 0 ? layout_row(l, items[i].run_id) : -1;
        if (row < 0 || row != items[i].row) {
            if (log)
                fprintf(log, "icasweep: warning: %s: not a result of this grid's runs "
                             "(damaged or left from another sweep); ignored\n", items[i].path);
            continue;
        }
        snprintf(by_row[row], sizeof by_row[row], "%s", items[i].path);
    }
    free(items);
    return by_row;
}

/* Builds the result file anew under a temporary name from the layout, the
 * journal entries and the rows of the old file `im` that are sound (NULL
 * when it could not be read), then renames it over path. */
static int rebuild(const char *path, const store_layout *l, char (*by_row)[4096],
                   hid_t old_f, const file_image *im, FILE *log, int *n_from_journal,
                   icas_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.rebuild", path);
    if (store_create(tmp, l, 1, err))
        return -1;
    quiet_state q = hdf5_quiet();
    fault_hdf5_begin();
    hid_t f = open_file(tmp, H5F_ACC_RDWR, err);
    int rc = f < 0 ? -1 : 0;
    *n_from_journal = 0;
    for (int i = 0; rc == 0 && i < l->n_runs; i++) {
        run_result r;
        char finished_at[JOURNAL_FINISHED_AT_LEN];
        int row;
        if (by_row[i][0]) {
            icas_err jerr;
            if (journal_read(by_row[i], &l->runs[i], &r, &row, finished_at, &jerr) == 0) {
                errno = 0;
                if (write_result_into(f, i, &r, finished_at))
                    rc = icas_fail_errno(err, io_errno(), "%s: cannot write row %d: %s", tmp,
                                         i, errno ? strerror(errno) : "HDF5 error");
                run_result_free(&r);
                (*n_from_journal)++;
                continue;
            }
            if (log)
                fprintf(log, "icasweep: warning: %s; run %d is redone\n", jerr.msg, i);
        }
        /* no usable journal entry: keep the old file's row if it is sound */
        if (!im || i >= im->n)
            continue;
        int st = row_status(&im->rows[i]);
        if (st <= RUN_PENDING || !row_sound(im, i, l->runs[i].steps))
            continue;
        if (run_result_alloc(&r, &l->runs[i], 0, err)) {
            rc = -1;
            break;
        }
        const run_row *o = &im->rows[i];
        size_t PN = (size_t)(im->P * im->N);
        float *curves[RUN_RESULT_N_CURVES];
        run_result_curves(&r, curves);
        for (int k = 0; k < RUN_RESULT_N_CURVES; k++)
            memcpy(curves[k], im->curves[k] + i * PN, sizeof(float) * PN);
        memcpy(r.train_loss, im->loss + (size_t)i * im->S, sizeof(float) * (size_t)r.cfg.steps);
        r.status = (run_status)st;
        snprintf(r.reason, sizeof r.reason, "%.*s", (int)sizeof o->reason, o->reason);
        r.wall_seconds = o->wall_seconds;
        r.train_seconds = o->train_seconds;
        r.eval_seconds = o->eval_seconds;
        r.final_loss = o->final_loss;
        r.steps_done = o->steps_done;
        snprintf(r.host, sizeof r.host, "%.*s", (int)sizeof o->host - 1, o->host);
        r.rank = o->rank;
        r.threads = o->threads;
        snprintf(finished_at, sizeof finished_at, "%.*s", (int)sizeof o->finished_at - 1,
                 o->finished_at);
        errno = 0;
        if (read_selfcorrect_row(old_f, i, &r))
            rc = icas_fail(err, "%s: cannot read /selfcorrect of row %d", path, i);
        else if (write_result_into(f, i, &r, finished_at))
            rc = icas_fail_errno(err, io_errno(), "%s: cannot write row %d: %s", tmp, i,
                                 errno ? strerror(errno) : "HDF5 error");
        char name[64];
        snprintf(name, sizeof name, "models/%s", r.run_id);
        if (rc == 0 && st == RUN_DONE && H5Lexists(old_f, "models", H5P_DEFAULT) > 0 &&
            H5Lexists(old_f, name, H5P_DEFAULT) > 0 &&
            (fault_point("hdf5 copy model") ||
             H5Ocopy(old_f, name, f, name, H5P_DEFAULT, H5P_DEFAULT) < 0))
            rc = icas_fail_errno(err, io_errno(), "%s: cannot copy /%s", tmp, name);
        run_result_free(&r);
    }
    if (f >= 0 && (fault_point("hdf5 close") || H5Fclose(f) < 0) && rc == 0)
        rc = icas_fail_errno(err, io_errno(), "%s: cannot close: %s", tmp,
                             errno ? strerror(errno) : "HDF5 error");
    fault_hdf5_end();
    hdf5_restore(q);
    if (rc == 0) {
        int fd = open(tmp, O_RDONLY);
        if (fd < 0 || fault_fsync(fd, "fsync rebuilt file") != 0)
            rc = icas_fail_errno(err, errno, "%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (rc == 0 && !im) {
        /* the damaged file is kept beside the new one for inspection */
        char kept[4200];
        snprintf(kept, sizeof kept, "%s.damaged", path);
        if (fault_rename(path, kept) == 0 && log)
            fprintf(log, "icasweep: the damaged file is kept as %s\n", kept);
    }
    if (rc == 0 && (fault_rename(tmp, path) != 0 || fault_fsync_dir_of(path) != 0))
        rc = icas_fail_errno(err, errno, "%s: %s", path, strerror(errno));
    if (rc)
        unlink(tmp);
    return rc;
}

int store_recover(const char *path, const store_layout *layout, const char *journal,
                  FILE *log, store_recovery *out, icas_err *err)
{
    memset(out, 0, sizeof *out);
    if (layout_check(layout, err))
        return icas_wrap(err, "%s: ", path);
    char (*by_row)[4096] = journal_by_row(journal, layout, log, err);
    if (!by_row)
        return -1;
    int n_journal = 0;
    for (int i = 0; i < layout->n_runs; i++)
        n_journal += by_row[i][0] != 0;
    out->journal_entries = n_journal;
    struct stat st;
    int rc = 0;
    if (stat(path, &st) != 0) {
        if (n_journal == 0) {
            rc = store_create(path, layout, 0, err);
            out->created = rc == 0;
        } else {
            if (log)
                fprintf(log, "icasweep: %s is missing; rebuilding it from %d results in the "
                             "journal %s\n", path, n_journal, journal);
            rc = rebuild(path, layout, by_row, -1, NULL, log, &out->from_journal, err);
            out->rebuilt = rc == 0;
        }
        free(by_row);
        return rc;
    }

    quiet_state q = hdf5_quiet();
    icas_err why;
    file_image im;
    int readable = 0, n_stale = 0, n_hollow = 0;
    hid_t f = open_file(path, H5F_ACC_RDONLY, &why);
    if (f >= 0 && check_schema(f, path, err)) {
        H5Fclose(f);
        hdf5_restore(q);
        free(by_row);
        out->refused = 1;
        return -1;
    }
    if (f >= 0 && read_image(f, path, &im, &why) == 0) {
        readable = 1;
        /* same runs in the same rows and the same grid text, else refuse */
        char *grid_text = get_string_attr(f, "grid");
        const char *want = layout->grid_text ? layout->grid_text : "";
        int first_diff = -1;
        for (int i = 0; i < im.n && i < layout->n_runs; i++) {
            char id[ICAS_RUN_ID_LEN];
            config_run_id(&layout->runs[i], id);
            if (strncmp(id, im.rows[i].run_id, ICAS_RUN_ID_LEN) != 0) {
                first_diff = i;
                break;
            }
        }
        if (im.n != layout->n_runs || first_diff >= 0) {
            char where[256] = "";
            if (first_diff >= 0) {
                char id[ICAS_RUN_ID_LEN];
                config_run_id(&layout->runs[first_diff], id);
                snprintf(where, sizeof where, "; row %d is %.20s in the file but %s in the grid",
                         first_diff, im.rows[first_diff].run_id, id);
            }
            rc = icas_fail(err, "%s was made from a different grid: %d runs in the file, %d "
                                "in the grid%s", path, im.n, layout->n_runs, where);
        } else if (!grid_text || strcmp(grid_text, want) != 0) {
            rc = icas_fail(err, "%s was made from a different grid file: the same runs, but "
                                "the grid text stored in the file differs", path);
        }
        free(grid_text);
        if (rc) {
            image_free(&im);
            H5Fclose(f);
            hdf5_restore(q);
            free(by_row);
            out->refused = 1;
            return rc;
        }
        for (int i = 0; i < im.n; i++) {
            if (by_row[i][0]) {
                run_result r;
                char finished_at[JOURNAL_FINISHED_AT_LEN];
                int row;
                icas_err jerr;
                if (journal_read(by_row[i], &layout->runs[i], &r, &row, finished_at, &jerr)) {
                    if (log)
                        fprintf(log, "icasweep: warning: %s; ignored\n", jerr.msg);
                    by_row[i][0] = 0;
                } else {
                    if (!row_matches(f, &im, i, &r, finished_at))
                        n_stale++;
                    run_result_free(&r);
                    continue;
                }
            }
            if (row_status(&im.rows[i]) > RUN_PENDING && !row_sound(&im, i, layout->runs[i].steps))
                n_hollow++;
        }
    }
    hdf5_restore(q);
    if (!readable) {
        if (f >= 0)
            H5Fclose(f);
        if (n_journal == 0) {
            free(by_row);
            out->refused = 1;
            return icas_fail(err, "%s is damaged (%s) and there is no result journal %s to "
                                  "rebuild it from; move it aside to start over", path, why.msg,
                             journal);
        }
        if (log)
            fprintf(log, "icasweep: %s is damaged (%s); rebuilding it from %d results in the "
                         "journal %s\n", path, why.msg, n_journal, journal);
        rc = rebuild(path, layout, by_row, -1, NULL, log, &out->from_journal, err);
        out->rebuilt = rc == 0;
        out->damaged = 1;
    } else if (n_stale || n_hollow) {
        if (log)
            fprintf(log, "icasweep: %s: %d result%s in the journal not (wholly) in the file, "
                         "%d run%s marked done without %s numbers intact; rebuilding the "
                         "file\n",
                    path, n_stale, n_stale == 1 ? "" : "s", n_hollow, n_hollow == 1 ? "" : "s",
                    n_hollow == 1 ? "its" : "their");
        rc = rebuild(path, layout, by_row, f, &im, log, &out->from_journal, err);
        out->rebuilt = rc == 0;
        out->stale = n_stale;
        out->hollow = n_hollow;
        H5Fclose(f);
        image_free(&im);
    } else {
        H5Fclose(f);
        image_free(&im);
    }
    free(by_row);
    return rc;
}

int store_finish(const char *path, const char *journal, icas_err *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fault_fsync(fd, "fsync result file") != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return icas_fail_errno(err, e, "%s: %s", path, strerror(e));
    }
    close(fd);
    return journal_remove(journal, err);
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
    char journal[4200];
    journal_dir(path, journal, sizeof journal);
    journal_item *items = NULL;
    int n_items = 0;
    icas_err jerr;
    journal_list(journal, &items, &n_items, &jerr);
    quiet_state q = hdf5_quiet();
    icas_err why;
    file_image im;
    memset(&im, 0, sizeof im);
    hid_t f = -1;
    int rc = 0;
    char holder[256];
    /* a sweep writing the file now can be caught between two of its
     * writes: then try again a few times before calling the file damaged */
    for (int attempt = 0; attempt < 20; attempt++) {
        f = open_file(path, H5F_ACC_RDONLY, &why);
        rc = f < 0 ? -1 : check_schema(f, path, err);
        if (rc == 0 && read_image(f, path, &im, &why) != 0)
            rc = -2;
        if ((f >= 0 && rc != -2) || !lock_holder(path, holder, sizeof holder))
            break;
        if (f >= 0)
            H5Fclose(f);
        f = -1;
        usleep(100000);
    }
    if (f < 0 && access(path, F_OK) != 0) {
        hdf5_restore(q);
        free(items);
        return icas_fail(err, "%s", why.msg);
    }
    if (f < 0 || rc == -2) {
        if (f >= 0)
            H5Fclose(f);
        hdf5_restore(q);
        fprintf(out, "%s: DAMAGED: %s\n", path, why.msg);
        if (n_items > 0)
            fprintf(out, "the result journal %s holds %d recorded result%s: the same `icasweep "
                         "sweep` command rebuilds the file from them (keeping the damaged one "
                         "as %s.damaged) and reruns the rest\n",
                    journal, n_items, n_items == 1 ? "" : "s", path);
        else
            fprintf(out, "there is no result journal (%s) to rebuild it from: move it aside "
                         "and run the sweep again\n", journal);
        free(items);
        return icas_fail(err, "%s is damaged (details above)", path);
    }
    run_row *rows = im.rows;
    int n = im.n;
    char *version = rc == 0 ? get_string_attr(f, "program_version") : NULL;
    char *revision = rc == 0 ? get_string_attr(f, "git_revision") : NULL;
    H5Fclose(f);
    hdf5_restore(q);
    if (rc) {
        free(version);
        free(revision);
        free(items);
        image_free(&im);
        return rc;
    }
    /* what the file says, checked: a run marked done without its numbers
     * is counted pending (the next sweep reruns it) */
    int *status = malloc(sizeof(int) * (size_t)(n ? n : 1));
    int hollow = 0, unapplied = 0;
    for (int i = 0; status && i < n; i++) {
        int s = row_status(&rows[i]);
        status[i] = s < 0 ? RUN_PENDING : s;
        if (s > RUN_PENDING && !row_sound(&im, i, rows[i].steps)) {
            status[i] = RUN_PENDING;
            hollow++;
        }
    }
    for (int j = 0; status && j < n_items; j++) {
        int i = items[j].row;
        if (i >= 0 && i < n && strncmp(items[j].run_id, rows[i].run_id, ICAS_RUN_ID_LEN) == 0 &&
            items[j].status != status[i])
            unapplied++;
    }
    free(items);
    /* Unfinished runs with a checkpoint continue mid-training when the
     * sweep is run again; the others start from step 0. */
    char dir[4096], file[4096 + ICAS_RUN_ID_LEN + 8];
    store_checkpoint_dir(path, ckpt_dir, dir, sizeof dir);
    int count[RUN_INTERRUPTED + 1] = {0}, with_ckpt = 0;
    double wall = 0;
    for (int i = 0; status && i < n; i++) {
        int s = status[i];
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
    for (int i = 0; status && i < n; i++)
        if (status[i] != RUN_DONE && status[i] != RUN_PENDING)
            fprintf(out, "  row %d %.20s %.12s: %.128s\n", i, rows[i].run_id, rows[i].status,
                    rows[i].reason);
        else if (status[i] == RUN_PENDING && row_status(&rows[i]) > RUN_PENDING)
            fprintf(out, "  row %d %.20s: marked done without its numbers intact (missing: a "
                         "write was cut short; or not matching the row's checksum: damaged); "
                         "counted pending\n", i, rows[i].run_id);
    if (count[RUN_DONE])
        fprintf(out, "done runs: %.1f s of training and evaluation in all, %.1f s on average\n",
                wall, wall / count[RUN_DONE]);
    if (unfinished)
        fprintf(out, "unfinished runs: %d of %d have a checkpoint in %s and resume mid-training\n",
                with_ckpt, unfinished, dir);
    if (lock_holder(path, holder, sizeof holder))
        fprintf(out, "a sweep is writing this file now (%s)\n", holder[0] ? holder : "holder unknown");
    else if (unfinished)
        fprintf(out, "no sweep is writing this file: run the same sweep command to finish it\n");
    if (hollow)
        fprintf(out, "%d run%s marked done without %s numbers: the next sweep rebuilds the "
                     "file and reruns %s\n", hollow, hollow == 1 ? "" : "s",
                hollow == 1 ? "its" : "their", hollow == 1 ? "it" : "them");
    int writing = lock_holder(path, holder, sizeof holder);
    if (unapplied && !writing)
        fprintf(out, "%d recorded result%s in the journal %s %s not in the file yet (a write "
                     "was cut short): the next sweep puts %s in\n", unapplied,
                unapplied == 1 ? "" : "s", journal, unapplied == 1 ? "is" : "are",
                unapplied == 1 ? "it" : "them");
    fprintf(out, "written by icasweep %s (%s)\n", version ? version : "?",
            revision ? revision : "?");
    free(status);
    image_free(&im);
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
