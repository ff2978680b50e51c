#define _DEFAULT_SOURCE /* flock */
#include "icasweep/sched.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mpi.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "icasweep/blasthreads.h"
#include "icasweep/grid.h"
#include "icasweep/growth.h"
#include "icasweep/journal.h"
#include "icasweep/matmul.h"
#include "icasweep/progress.h"
#include "icasweep/recovery.h"
#include "icasweep/store.h"
#include "icasweep/train.h"

enum {
    TAG_TASK = 1,    /* master -> worker: a task_msg */
    TAG_STOP,        /* master -> worker: stop the run in progress */
    TAG_RESULT,      /* worker -> master: result_msg, then its arrays */
    TAG_ARRAYS,
    TAG_RELEASE,     /* master -> worker: all done, finalize */
    TAG_ALIVE,       /* worker -> master: int[2] {row, step}, during a run */
    TAG_ACK,         /* master -> worker: int row: its result is durable */
};

/* Liveness: a worker sends TAG_ALIVE between training steps, at most every
 * task_msg.alive_every seconds; the master declares a worker lost once it
 * has heard nothing from it for lost_after seconds while it ran a run (a
 * node that died, or whose link is cut, sends nothing, not even a TCP
 * reset, and Open MPI itself notices only after its TCP keepalive, about 8
 * minutes). The message carries no numbers of the run: results do not
 * depend on it. */
#define LOST_AFTER_DEFAULT 30.0
#define LOST_AFTER_ENV "ICASWEEP_LOST_AFTER"
#define HOST_LEN 64

/* Runs are sent as raw bytes: every rank runs the same binary on the same
 * kind of machine (a homogeneous allocation), so layouts agree. */
typedef struct {
    int row; /* -1: no more work */
    run_config cfg;
    int save_model;
    int checkpoint_every;
    double alive_every; /* seconds between TAG_ALIVE messages; 0: none */
    char checkpoint_path[4096];
} task_msg;

/* A result: this header, then its arrays (run_result_parts order), each
 * one TAG_ARRAYS message. */
typedef struct {
    int row;
    int ok; /* 0: the run could not be carried out; outcome.reason says why */
    int has_model;
    int io_errno; /* !ok because a write failed (ENOSPC, EIO...): stop the sweep */
    run_outcome outcome;
} result_msg;

typedef struct {
    const char *grid_path, *output, *ckpt_dir;
    int force, quiet;
    double heartbeat;
    double lost_after; /* seconds of silence that make a running worker lost; 0: never */
} sweep_args;

/* Set by SIGTERM/SIGUSR1/SIGINT: a signal handler can only reach a static
 * flag, so this is the one piece of process-wide state. */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    (void)sig;
    stop_signal = 1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits for a message without spinning: Open MPI's blocking receives poll
 * a core at 100% while they wait, which would steal it from the training
 * threads of the same node. Returns 0 with *st set, or 1 if `stop` fired. */
static int wait_message(int source, int tag, MPI_Status *st, const volatile sig_atomic_t *stop)
{
    for (;;) {
        int flag = 0;
        MPI_Iprobe(source, tag, MPI_COMM_WORLD, &flag, st);
        if (flag)
            return 0;
        if (stop && *stop)
            return 1;
        sleep_ms(5);
    }
}

/* ---- checkpoints and the writer's lock: file names ---------------------- */

void sched_checkpoint_dir(const char *path, const char *ckpt_dir, char *out, size_t n)
{
    if (ckpt_dir)
        snprintf(out, n, "%s", ckpt_dir);
    else
        snprintf(out, n, "%s.ckpt", path);
}

void sched_checkpoint_file(const char *dir, const char *run_id, char *out, size_t n)
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

/* Takes the lock shared for an instant: that never blocks a writer. */
int sched_lock_holder(const char *path, char *holder, size_t n)
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

/* ---- the writer's lock ------------------------------------------------- */

int sched_lock(const char *path, int *fd, icas_err *err)
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

void sched_unlock(const char *path, int fd)
{
    char lock[4096];
    lock_file(path, lock, sizeof lock);
    unlink(lock);
    close(fd);
}

/* ---- the worker -------------------------------------------------------- */

typedef struct {
    volatile sig_atomic_t stop; /* signal or master's TAG_STOP */
    int row;
    double alive_every, last_alive;
} worker_state;

/* Between training steps: tell the master we are alive (at most every
 * alive_every seconds); has it asked us to stop? */
static void worker_progress(void *user, int step, int steps, float loss)
{
    (void)steps; (void)loss;
    worker_state *w = user;
    double now = omp_get_wtime();
    if (w->alive_every > 0 && now - w->last_alive >= w->alive_every) {
        int alive[2] = {w->row, step};
        MPI_Send(alive, 2, MPI_INT, 0, TAG_ALIVE, MPI_COMM_WORLD);
        w->last_alive = now;
    }
    int flag = 0;
    MPI_Iprobe(0, TAG_STOP, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
    if (flag) {
        MPI_Recv(NULL, 0, MPI_INT, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        w->stop = 1;
    }
    if (stop_signal)
        w->stop = 1;
}

static void send_result(int dest, const task_msg *task, const run_result *r, int ok,
                        const char *why, int io_errno, int rank)
{
    result_msg h;
    memset(&h, 0, sizeof h);
    h.row = task->row;
    h.ok = ok;
    h.io_errno = ok ? 0 : io_errno;
    if (ok) {
        run_result_get_outcome(r, &h.outcome);
        h.has_model = run_result_has_model(r);
    } else {
        h.outcome.status = RUN_FAILED;
        snprintf(h.outcome.reason, sizeof h.outcome.reason, "%.255s", why);
        gethostname(h.outcome.host, sizeof h.outcome.host - 1);
        h.outcome.threads = omp_get_max_threads();
        h.outcome.final_loss = NAN;
    }
    h.outcome.rank = rank;
    MPI_Send(&h, sizeof h, MPI_BYTE, dest, TAG_RESULT, MPI_COMM_WORLD);
    if (!ok)
        return;
    /* the parts are those the master knows from the task's configuration
     * and has_model */
    run_part parts[RUN_RESULT_MAX_PARTS];
    int n = run_result_parts(r, parts);
    for (int i = 0; i < n; i++)
        MPI_Send(parts[i].data, (int)parts[i].n, MPI_FLOAT, dest, TAG_ARRAYS, MPI_COMM_WORLD);
}

static void worker_loop(int rank)
{
    worker_state w = {0};
    /* the checkpoint of the last run whose result is not yet acknowledged
     * ("" when none or the run has to resume from it) */
    char unacked[4096] = "";
    int unacked_row = -1;
    for (;;) {
        MPI_Status st;
        task_msg task;
        /* a stop that arrives while idle is consumed here */
        int flag = 0;
        MPI_Iprobe(0, TAG_STOP, MPI_COMM_WORLD, &flag, &st);
        if (flag)
            MPI_Recv(NULL, 0, MPI_INT, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        wait_message(0, MPI_ANY_TAG, &st, NULL);
        if (st.MPI_TAG == TAG_STOP) {
            MPI_Recv(NULL, 0, MPI_INT, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            continue;
        }
        if (st.MPI_TAG == TAG_ACK) {
            /* the result is durable: its checkpoint is no longer needed */
            int row;
            MPI_Recv(&row, 1, MPI_INT, 0, TAG_ACK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (row == unacked_row && unacked[0])
                unlink(unacked);
            unacked[0] = 0;
            unacked_row = -1;
            continue;
        }
        if (st.MPI_TAG == TAG_RELEASE) {
            MPI_Recv(NULL, 0, MPI_INT, 0, TAG_RELEASE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            return;
        }
        MPI_Recv(&task, sizeof task, MPI_BYTE, 0, TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        w.stop = stop_signal;
        w.row = task.row;
        w.alive_every = task.alive_every;
        w.last_alive = omp_get_wtime();
        train_options opt = {
            .progress = worker_progress,
            .user = &w,
            .stop = &w.stop,
            .checkpoint_path = task.checkpoint_path[0] ? task.checkpoint_path : NULL,
            .checkpoint_every = task.checkpoint_every,
            .save_model = task.save_model,
            .keep_checkpoint = 1,
        };
        run_result r;
        icas_err err;
        int ok = train_and_evaluate(&task.cfg, &opt, &r, &err) == 0;
        r.rank = rank;
        send_result(0, &task, &r, ok, ok ? "" : err.msg, ok ? 0 : err.sys_errno, rank);
        /* an interrupted or failed run resumes from its checkpoint; a
         * finished one's goes once the master has its result durable */
        unacked_row = task.row;
        snprintf(unacked, sizeof unacked, "%s",
                 ok && (r.status == RUN_DONE || r.status == RUN_DIVERGED) ? task.checkpoint_path
                                                                          : "");
        run_result_free(&r);
    }
}

/* ---- the master --------------------------------------------------------- */

typedef struct {
    const sweep_args *args;
    grid g;
    int *todo;   /* rows to run, longest first */
    int n_todo, next;
    int n_total, n_finished_before;
    double *cost; /* [n_runs] estimated FLOPs */
    double cost_todo, cost_done;
    int done, diverged, failed, interrupted;
    double start;
    int io_error;
    icas_err io_err;
    char (*hosts)[HOST_LEN]; /* [size]: each rank's host name */
    int n_lost;              /* workers declared lost */
    char (*ids)[ICAS_RUN_ID_LEN]; /* [n_runs]: each run's config_run_id */
    char journal_path[4096]; /* journal.h */
    journal *jnl;            /* the result journal, open for appending */
    store_file *file;        /* the result file, open for writing */
    int merge_every;         /* results between cutting back the journal */
    /* the results received and journaled, not yet durable (group commit) */
    run_result *group;
    int *group_row, *group_rank;
    int n_group, cap_group;
} master_state;

/* Results the journal holds at most before the result file is made
 * durable and the journal cut back to its header: each cut costs an fsync
 * of the result file; between cuts, a restart rereads at most this many.
 * ICAS_JOURNAL_MERGE_EVERY sets it (the crash tests use 1). */
#define MERGE_EVERY_DEFAULT 256
#define MERGE_EVERY_ENV "ICAS_JOURNAL_MERGE_EVERY"
/* ... or this many bytes of records (results with saved models are big). */
#define MERGE_BYTES (64LL << 20)

/* What the master knows of one worker. */
typedef struct {
    int row;      /* the run it is running; -1: idle */
    double since; /* when that run was sent */
    double heard; /* its last message */
    int step;     /* the last step it reported */
    int lost;     /* silent past lost_after: nothing more is sent to it */
    /* A task is larger than Open MPI's eager limit (4 KiB for shared
     * memory), so a blocking send would wait, spinning a core, until the
     * worker's polling loop posts its receive: measured, that wait was 90%
     * of the master's CPU in a sweep of one-step runs. The send goes out
     * non-blocking instead, from a buffer that lives as long as it does. */
    task_msg task;
    MPI_Request task_req;
} worker_slot;

typedef struct {
    double cost;
    int row;
} costed_row;

/* longest first; ties in row order, so the order is reproducible */
static int by_cost_desc(const void *a, const void *b)
{
    const costed_row *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost > y->cost ? -1 : 1;
    return x->row - y->row;
}

static void make_task(const master_state *m, int row, task_msg *t)
{
    memset(t, 0, sizeof *t);
    t->row = row;
    t->cfg = m->g.runs[row];
    t->save_model = m->g.save_model;
    t->checkpoint_every = m->g.checkpoint_every;
    /* several messages per silence limit: a late one does not make a
     * worker lost, and at most 5 s between them */
    double lost_after = m->args->lost_after;
    t->alive_every = lost_after > 0 ? fmin(lost_after / 6, 5.0) : 0;
    sched_checkpoint_file(m->args->ckpt_dir, m->ids[row], t->checkpoint_path,
                          sizeof t->checkpoint_path);
}

/* A write failed: no more runs are handed out, the runs in flight are
 * asked to checkpoint, and the sweep ends with EXIT_IO. */
static void master_io_error(master_state *m, const icas_err *err)
{
    if (!m->io_error)
        fprintf(stderr, "icasweep sweep: %s; stopping the sweep\n", err->msg);
    m->io_error = 1;
    m->io_err = *err;
}

/* Counts one recorded result and prints its line. */
static void master_count(master_state *m, const run_result *r, int row)
{
    switch (r->status) {
    case RUN_DONE: m->done++; break;
    case RUN_DIVERGED: m->diverged++; break;
    case RUN_INTERRUPTED: m->interrupted++; break;
    default: m->failed++; break;
    }
    if (r->status != RUN_INTERRUPTED)
        m->cost_done += m->cost[row];
    if (r->status == RUN_DONE && m->args->quiet)
        return;
    double elapsed = omp_get_wtime() - m->start;
    char el[32], eta[32];
    progress_format_duration(elapsed, el, sizeof el);
    progress_format_duration(m->cost_done > 0 ? elapsed * (m->cost_todo - m->cost_done) / m->cost_done
                                         : NAN,
                        eta, sizeof eta);
    int finished = m->n_finished_before + m->done + m->diverged + m->failed;
    int last = r->N < 16 ? r->N - 1 : 15;
    if (r->status == RUN_DONE)
        fprintf(stderr,
                "[%d/%d] %s row %d done: err@%d(p=%g) %.4f (GD %.4f), loss %.4f, %.1f s on "
                "rank %d (%s); elapsed %s, ETA %s\n",
                finished, m->n_total, r->run_id, row, last, r->cfg.eval_noise[0],
                r->tf_err[last], r->gd_err[last], r->final_loss, r->wall_seconds, r->rank,
                r->host, el, eta);
    else
        fprintf(stderr, "[%d/%d] %s row %d %s: %s (rank %d); elapsed %s\n", finished,
                m->n_total, r->run_id, row, run_status_name(r->status), r->reason, r->rank, el);
}

/* Takes a received result (r is the master's to free from now) into the
 * group of results to commit: appended to the journal, not yet durable.
 * `rank` is the worker to acknowledge it to (0: none). */
static void master_stage(master_state *m, run_result *r, int row, int rank)
{
    icas_err err;
    if (m->io_error) {
        run_result_free(r);
        return;
    }
    if (m->n_group == m->cap_group) {
        int cap = m->cap_group ? 2 * m->cap_group : 16;
        run_result *g = realloc(m->group, sizeof *g * (size_t)cap);
        int *rows = g ? realloc(m->group_row, sizeof *rows * (size_t)cap) : NULL;
        if (g)
            m->group = g;
        int *ranks = rows ? realloc(m->group_rank, sizeof *ranks * (size_t)cap) : NULL;
        if (rows)
            m->group_row = rows;
        if (!ranks) {
            icas_fail(&err, "out of memory for the results to record");
            master_io_error(m, &err);
            run_result_free(r);
            return;
        }
        m->group_rank = ranks;
        m->cap_group = cap;
    }
    char finished_at[JOURNAL_FINISHED_AT_LEN];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(finished_at, sizeof finished_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (journal_append(m->jnl, row, r, finished_at, &err)) {
        master_io_error(m, &err);
        run_result_free(r);
        return;
    }
    m->group[m->n_group] = *r;
    m->group_row[m->n_group] = row;
    m->group_rank[m->n_group] = rank;
    m->n_group++;
}

/* Commits the group: one fsync makes every result in it durable in the
 * journal; then each worker is told so (and drops its checkpoint), and the
 * results go into the result file. Every merge_every results the file is
 * made durable and the journal cut back. A result whose journal write
 * failed is not counted and its worker not told: its run is redone. */
static void master_commit(master_state *m)
{
    if (m->n_group == 0)
        return;
    icas_err err;
    int durable = !m->io_error && journal_sync(m->jnl, &err) == 0;
    if (!durable && !m->io_error)
        master_io_error(m, &err);
    for (int i = 0; durable && i < m->n_group; i++)
        if (m->group_rank[i] > 0)
            MPI_Send(&m->group_row[i], 1, MPI_INT, m->group_rank[i], TAG_ACK, MPI_COMM_WORLD);
    char finished_at[JOURNAL_FINISHED_AT_LEN];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(finished_at, sizeof finished_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (int i = 0; i < m->n_group; i++) {
        run_result *r = &m->group[i];
        if (durable) {
            /* durable in the journal: recorded, whatever the file does */
            if (!m->io_error && store_write(m->file, m->group_row[i], r, finished_at, &err))
                master_io_error(m, &err);
            master_count(m, r, m->group_row[i]);
        }
        run_result_free(r);
    }
    m->n_group = 0;
    if (durable && !m->io_error &&
        (journal_records(m->jnl) >= m->merge_every || journal_bytes(m->jnl) >= MERGE_BYTES) &&
        (store_sync(m->file, &err) || journal_truncate(m->jnl, &err)))
        master_io_error(m, &err);
}

/* MPI_Recv that gives up after `limit` seconds (0: never): a worker that
 * dies in the middle of sending its result must not block the master.
 * Returns 0, or -1 when the limit passed. */
static int recv_within(void *buf, int count, MPI_Datatype type, int source, int tag,
                       double limit)
{
    MPI_Request req;
    MPI_Irecv(buf, count, type, source, tag, MPI_COMM_WORLD, &req);
    double t0 = omp_get_wtime();
    for (;;) {
        int done = 0;
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done)
            return 0;
        if (limit > 0 && omp_get_wtime() - t0 > limit) {
            /* the request stays pending: the process ends without MPI_Finalize */
            return -1;
        }
        sleep_ms(1);
    }
}

/* Receives one worker's result and stages it (master_stage). Returns 0; 1
 * if the worker went silent in the middle of it (nothing recorded); -1 on
 * an error (message printed). */
static int master_receive(master_state *m, int source)
{
    double limit = m->args->lost_after;
    result_msg h;
    if (recv_within(&h, sizeof h, MPI_BYTE, source, TAG_RESULT, limit))
        return 1;
    const run_config *c = &m->g.runs[h.row];
    run_result r;
    icas_err err;
    if (run_result_alloc(&r, c, h.has_model, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", err.msg);
        return -1;
    }
    run_result_set_outcome(&r, &h.outcome);
    if (!h.ok && h.io_errno) {
        icas_err e;
        icas_fail_errno(&e, h.io_errno, "rank %d: %s", h.outcome.rank, h.outcome.reason);
        master_io_error(m, &e);
        run_result_free(&r);
        return 0;
    }
    int silent = 0;
    if (h.ok) {
        run_part parts[RUN_RESULT_MAX_PARTS];
        int n = run_result_parts(&r, parts);
        for (int i = 0; !silent && i < n; i++)
            silent = recv_within(parts[i].data, (int)parts[i].n, MPI_FLOAT, source, TAG_ARRAYS,
                                 limit);
    }
    if (silent) {
        run_result_free(&r);
        return 1;
    }
    master_stage(m, &r, h.row, source);
    return 0;
}

static void print_heartbeat(const master_state *m, const worker_slot *slot, int size)
{
    double now = omp_get_wtime();
    fprintf(stderr, "icasweep sweep: in flight:");
    for (int w = 1; w < size; w++)
        if (slot[w].row >= 0) {
            char el[32];
            progress_format_duration(now - slot[w].since, el, sizeof el);
            fprintf(stderr, " row %d on rank %d (%s)", slot[w].row, w, el);
        }
    fprintf(stderr, "; %d of %d queued runs not started\n", m->n_todo - m->next, m->n_todo);
}

/* -np 1: the single rank runs everything itself. */
static void master_run_alone(master_state *m)
{
    while (m->next < m->n_todo && !stop_signal && !m->io_error) {
        task_msg t;
        make_task(m, m->todo[m->next++], &t);
        train_options opt = {
            .stop = &stop_signal,
            .checkpoint_path = t.checkpoint_path,
            .checkpoint_every = t.checkpoint_every,
            .save_model = t.save_model,
            .keep_checkpoint = 1,
        };
        run_result r;
        icas_err err;
        if (train_and_evaluate(&t.cfg, &opt, &r, &err)) {
            icas_err err2;
            if (err.sys_errno) {
                run_result_free(&r);
                master_io_error(m, &err);
                break;
            }
            run_result_free(&r);
            if (run_result_alloc(&r, &t.cfg, 0, &err2)) {
                fprintf(stderr, "icasweep sweep: %s\n", err2.msg);
                m->io_error = 1;
                break;
            }
            r.status = RUN_FAILED;
            snprintf(r.reason, sizeof r.reason, "%.255s", err.msg);
        }
        r.rank = 0;
        int finished = r.status == RUN_DONE || r.status == RUN_DIVERGED;
        master_stage(m, &r, t.row, 0);
        master_commit(m);
        /* durable: the checkpoint is no longer needed */
        if (finished && !m->io_error)
            unlink(t.checkpoint_path);
    }
}

/* Worker w has been silent past the limit: nothing more is sent to it, and
 * its run is recorded as interrupted (not done), so that the next sweep
 * runs it again from its last checkpoint. */
static void declare_lost(master_state *m, worker_slot *s, int w, double silent)
{
    s->lost = 1;
    m->n_lost++;
    const run_config *c = &m->g.runs[s->row];
    char id[ICAS_RUN_ID_LEN];
    config_run_id(c, id);
    fprintf(stderr,
            "icasweep sweep: rank %d on host %s lost: no message from it for %.1f s "
            "(--lost-after %g) while it ran row %d (%s), last heard at step %d of %d; the run "
            "will resume from its last checkpoint\n",
            w, m->hosts[w], silent, m->args->lost_after, s->row, id, s->step, c->steps);
    run_result r;
    icas_err err;
    if (run_result_alloc(&r, c, 0, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", err.msg);
        m->io_error = 1;
    } else {
        r.status = RUN_INTERRUPTED;
        snprintf(r.reason, sizeof r.reason, "rank %d on host %.64s lost after step %d", w,
                 m->hosts[w], s->step);
        snprintf(r.host, sizeof r.host, "%s", m->hosts[w]);
        r.rank = w;
        master_stage(m, &r, s->row, 0);
    }
    s->row = -1;
}

static void send_task(master_state *m, worker_slot *s, int w)
{
    /* the previous task was received: the worker answered it */
    if (s->task_req != MPI_REQUEST_NULL)
        MPI_Wait(&s->task_req, MPI_STATUS_IGNORE);
    make_task(m, m->todo[m->next++], &s->task);
    MPI_Isend(&s->task, sizeof s->task, MPI_BYTE, w, TAG_TASK, MPI_COMM_WORLD, &s->task_req);
    s->row = s->task.row;
    s->since = s->heard = omp_get_wtime();
    s->step = 0;
}

/* Hands out runs and collects results until no run is in flight. Stops
 * handing out runs on a signal, an I/O error or a lost worker, and then
 * asks the running workers to checkpoint and return. On return, lost[w] is
 * 1 for every worker declared lost. */
static void master_dispatch(master_state *m, int size, int *lost)
{
    worker_slot *slot = calloc((size_t)size, sizeof *slot);
    int in_flight = 0, stop_sent = 0;
    double last_beat = omp_get_wtime();
    for (int w = 0; w < size; w++) {
        slot[w].row = -1;
        slot[w].task_req = MPI_REQUEST_NULL;
    }
    for (int w = 1; w < size && m->next < m->n_todo; w++) {
        send_task(m, &slot[w], w);
        in_flight++;
    }
    while (in_flight > 0) {
        int stopping = stop_signal || m->io_error || m->n_lost;
        if (stopping && !stop_sent) {
            for (int w = 1; w < size; w++)
                if (slot[w].row >= 0)
                    MPI_Send(NULL, 0, MPI_INT, w, TAG_STOP, MPI_COMM_WORLD);
            stop_sent = 1;
            fprintf(stderr, "icasweep sweep: stopping: waiting for %d runs in flight to "
                            "checkpoint\n", in_flight);
        }
        int flag = 0;
        MPI_Status st;
        /* every alive message first: the master may have been busy writing */
        for (;;) {
            MPI_Iprobe(MPI_ANY_SOURCE, TAG_ALIVE, MPI_COMM_WORLD, &flag, &st);
            if (!flag)
                break;
            int alive[2];
            MPI_Recv(alive, 2, MPI_INT, st.MPI_SOURCE, TAG_ALIVE, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
            worker_slot *s = &slot[st.MPI_SOURCE];
            s->heard = omp_get_wtime();
            if (alive[0] == s->row)
                s->step = alive[1];
        }
        /* every result that has arrived, then one commit for them all */
        int received = 0;
        for (;;) {
            MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &flag, &st);
            if (!flag)
                break;
            received++;
            int w = st.MPI_SOURCE;
            worker_slot *s = &slot[w];
            if (s->lost) {
                /* a worker declared lost that answers after all: its result
                 * is recorded, but it gets nothing more */
                master_receive(m, w);
                continue;
            }
            s->heard = omp_get_wtime();
            if (master_receive(m, w) == 1) {
                declare_lost(m, s, w, omp_get_wtime() - s->heard);
                in_flight--;
                continue;
            }
            s->row = -1;
            in_flight--;
        }
        double now = omp_get_wtime();
        for (int w = 1; w < size && m->args->lost_after > 0; w++)
            if (slot[w].row >= 0 && !slot[w].lost && now - slot[w].heard > m->args->lost_after) {
                declare_lost(m, &slot[w], w, now - slot[w].heard);
                in_flight--;
            }
        master_commit(m);
        for (int w = 1; w < size; w++)
            if (slot[w].row < 0 && !slot[w].lost && !(stop_signal || m->io_error || m->n_lost) &&
                m->next < m->n_todo) {
                send_task(m, &slot[w], w);
                in_flight++;
            }
        if (m->args->heartbeat > 0 && !m->args->quiet &&
            omp_get_wtime() - last_beat >= m->args->heartbeat) {
            print_heartbeat(m, slot, size);
            last_beat = omp_get_wtime();
        }
        if (!received)
            sleep_ms(2);
    }
    int unmatched = 0;
    for (int w = 0; w < size; w++) {
        lost[w] = slot[w].lost;
        if (slot[w].task_req == MPI_REQUEST_NULL)
            continue;
        int done = 0;
        MPI_Test(&slot[w].task_req, &done, MPI_STATUS_IGNORE);
        if (!done) {
            /* a task a lost worker never took: MPI may still read its
             * buffer, so the slots stay allocated until the process ends */
            MPI_Request_free(&slot[w].task_req);
            unmatched = 1;
        }
    }
    if (!unmatched)
        free(slot);
}

static int parse_args(int argc, char **argv, sweep_args *a)
{
    memset(a, 0, sizeof *a);
    a->heartbeat = 60;
    a->lost_after = LOST_AFTER_DEFAULT;
    const char *env = getenv(LOST_AFTER_ENV);
    if (env && *env) {
        char *end;
        a->lost_after = strtod(env, &end);
        if (*end || !(a->lost_after >= 0)) {
            fprintf(stderr, "icasweep sweep: %s=%s: expected seconds\n", LOST_AFTER_ENV, env);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            printf("usage: mpirun -np N icasweep sweep GRID.yaml -o RESULTS.h5 [options]\n"
                   "Runs every run of a grid; rank 0 is the master and writes RESULTS.h5.\n"
                   "Re-running the same command resumes: only missing runs are run, and\n"
                   "interrupted runs continue from their checkpoints. A grid that keeps\n"
                   "every run of RESULTS.h5 and adds runs grows it: its rows are kept and\n"
                   "the added runs appended (/grid_history lists the grids applied).\n\n"
                   "  -o, --output PATH      the result file (required)\n"
                   "  --force                start over: replace a file made from another grid\n"
                   "  --checkpoint-dir DIR   checkpoints (default PATH.ckpt; must be on a file\n"
                   "                         system every rank sees)\n"
                   "  --heartbeat SEC        print the runs in flight every SEC s (default 60)\n"
                   "  --lost-after SEC       a worker running a run and silent for SEC s is\n"
                   "                         lost (its node died): the sweep records what it\n"
                   "                         has and exits 3 (default 30, or $%s; 0: never).\n"
                   "                         Must exceed one training step and one evaluation.\n"
                   "  -q, --quiet            only failures and the final summary\n\n"
                   "Signals: SIGTERM or SIGUSR1 checkpoint every run in flight and exit 3.\n"
                   "Exit status: 0 all done, 1 some run diverged or failed, 2 bad input,\n"
                   "3 interrupted (rerun to resume), 4 I/O error.\n",
                   LOST_AFTER_ENV);
            return 1;
        }
        if (!strcmp(s, "--force")) { a->force = 1; continue; }
        if (!strcmp(s, "-q") || !strcmp(s, "--quiet")) { a->quiet = 1; continue; }
        if ((!strcmp(s, "-o") || !strcmp(s, "--output")) && i + 1 < argc) { a->output = argv[++i]; continue; }
        if (!strcmp(s, "--checkpoint-dir") && i + 1 < argc) { a->ckpt_dir = argv[++i]; continue; }
        if (!strcmp(s, "--heartbeat") && i + 1 < argc) {
            char *end;
            a->heartbeat = strtod(argv[++i], &end);
            if (*end || a->heartbeat < 0) {
                fprintf(stderr, "icasweep sweep: --heartbeat %s: expected seconds\n", argv[i]);
                return -1;
            }
            continue;
        }
        if (!strcmp(s, "--lost-after") && i + 1 < argc) {
            char *end;
            a->lost_after = strtod(argv[++i], &end);
            if (*end || !(a->lost_after >= 0)) {
                fprintf(stderr, "icasweep sweep: --lost-after %s: expected seconds\n", argv[i]);
                return -1;
            }
            continue;
        }
        if (s[0] != '-' && !a->grid_path) { a->grid_path = s; continue; }
        fprintf(stderr, "icasweep sweep: %s: unknown or incomplete argument (see --help)\n", s);
        return -1;
    }
    if (!a->grid_path || !a->output) {
        fprintf(stderr, "icasweep sweep: usage: icasweep sweep GRID.yaml -o RESULTS.h5\n");
        return -1;
    }
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    return strncmp(a, b, ICAS_RUN_ID_LEN);
}

/* Removes the checkpoints in dir of runs the file holds as finished: a
 * master that died after a result was durable but before the worker heard
 * so leaves the run's checkpoint behind. */
static void remove_finished_checkpoints(const master_state *m, const int *status, const char *dir)
{
    int n = 0;
    char(*ids)[ICAS_RUN_ID_LEN] = malloc(sizeof *ids * (size_t)(m->g.n_runs ? m->g.n_runs : 1));
    DIR *d = ids ? opendir(dir) : NULL;
    if (!d) {
        free(ids);
        return;
    }
    for (int i = 0; i < m->g.n_runs; i++)
        if (status[i] == RUN_DONE || status[i] == RUN_DIVERGED)
            memcpy(ids[n++], m->ids[i], ICAS_RUN_ID_LEN);
    qsort(ids, (size_t)n, sizeof *ids, cmp_id);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char id[ICAS_RUN_ID_LEN] = {0};
        if (len < 6 || len - 5 >= ICAS_RUN_ID_LEN || strcmp(e->d_name + len - 5, ".ckpt") != 0)
            continue;
        memcpy(id, e->d_name, len - 5);
        if (bsearch(id, ids, (size_t)n, sizeof *ids, cmp_id)) {
            char file[4096 + ICAS_RUN_ID_LEN + 8];
            sched_checkpoint_file(dir, id, file, sizeof file);
            unlink(file);
        }
    }
    closedir(d);
    free(ids);
}

/* Puts the grid's runs in the rows of the existing result file when the
 * grid grows it (growth.h); a grid that drops or changes a run of the file
 * is refused, naming the first, unless --force (start over). Returns an
 * exit status; EXIT_ALL_DONE means "go on". */
static int match_file_rows(master_state *m)
{
    const sweep_args *a = m->args;
    if (a->force)
        return EXIT_ALL_DONE;
    grid_comparison cmp;
    int n_file;
    icas_err err;
    if (growth_match_rows(a->output, &m->g, m->ids, &cmp, &n_file, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (n_file >= 0 && cmp.relation == GRID_DIFFERS) {
        fprintf(stderr, "icasweep sweep: %s was made from a different grid: %s (a grid may "
                        "keep every run of the file and add runs; use --force to start over)\n",
                a->output, cmp.text);
        return EXIT_USAGE;
    }
    if (n_file >= 0 && cmp.n_added)
        fprintf(stderr, "icasweep sweep: %s: the grid keeps the file's %d runs in their rows "
                        "and adds %d, rows %d to %d\n", a->output, n_file, cmp.n_added, n_file,
                m->g.n_runs - 1);
    return EXIT_ALL_DONE;
}

/* Loads the grid, locks and prepares the file, and lists what remains.
 * Returns an exit status; EXIT_ALL_DONE means "go". */
static int master_prepare(master_state *m, char *ckpt_default, size_t n, int *lock_fd)
{
    const sweep_args *a = m->args;
    icas_err err;
    if (grid_load(a->grid_path, &m->g, stderr, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (sched_lock(a->output, lock_fd, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", err.msg);
        return EXIT_USAGE;
    }
    m->ids = malloc(sizeof *m->ids * (size_t)m->g.n_runs);
    if (!m->ids) {
        fprintf(stderr, "icasweep sweep: out of memory\n");
        return EXIT_IO;
    }
    /* tens of microseconds each (formatting every knob): on every core */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < m->g.n_runs; i++)
        config_run_id(&m->g.runs[i], m->ids[i]);
    int matched = match_file_rows(m);
    if (matched != EXIT_ALL_DONE)
        return matched;
    store_layout layout = {.n_runs = m->g.n_runs, .runs = m->g.runs, .grid_text = m->g.text,
                           .save_model = m->g.save_model,
                           .run_ids = (const char (*)[ICAS_RUN_ID_LEN])m->ids};
    journal_path(a->output, m->journal_path, sizeof m->journal_path);
    recovery_report rec = {0};
    int *status = NULL;
    if (a->force) {
        /* the old journal first, so that none of its records can go into
         * the new file; a new file replaces the old one only once it is
         * complete */
        if (journal_remove(m->journal_path, &err) || store_create(a->output, &layout, 1, &err)) {
            fprintf(stderr, "icasweep sweep: -o %s: %s\n", a->output, err.msg);
            return err.sys_errno ? EXIT_IO : EXIT_USAGE;
        }
        status = calloc((size_t)m->g.n_runs, sizeof *status); /* every row pending */
    } else if (recovery_prepare(a->output, &layout, m->journal_path, stderr, &rec, &status,
                                &err)) {
        fprintf(stderr, "icasweep sweep: %s%s\n", err.msg,
                rec.refused ? " (use --force to start over)" : "");
        return rec.refused ? EXIT_USAGE : EXIT_IO;
    }
    /* the file holds every earlier record, durably: a fresh journal */
    if (journal_create(m->journal_path, m->g.text, &m->jnl, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", err.msg);
        return EXIT_IO;
    }
    m->merge_every = MERGE_EVERY_DEFAULT;
    const char *env = getenv(MERGE_EVERY_ENV);
    if (env && atoi(env) > 0)
        m->merge_every = atoi(env);
    if (!a->ckpt_dir) {
        sched_checkpoint_dir(a->output, NULL, ckpt_default, n);
        m->args = a;
    }
    const char *dir = a->ckpt_dir ? a->ckpt_dir : ckpt_default;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "icasweep sweep: --checkpoint-dir %s: %s\n", dir, strerror(errno));
        return EXIT_USAGE;
    }
    if (!status || store_open(a->output, &m->file, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", status ? err.msg : "out of memory");
        free(status);
        return EXIT_IO;
    }
    m->n_total = m->g.n_runs;
    m->cost = malloc(sizeof(double) * (size_t)m->g.n_runs);
    m->todo = malloc(sizeof(int) * (size_t)m->g.n_runs);
    for (int i = 0; i < m->g.n_runs; i++) {
        m->cost[i] = config_run_flops(&m->g.runs[i]);
        /* a diverged run diverges again: its numbers depend only on its
         * configuration; only pending, interrupted and failed rows rerun */
        if (status[i] == RUN_DONE || status[i] == RUN_DIVERGED) {
            m->n_finished_before++;
        } else {
            m->todo[m->n_todo++] = i;
            m->cost_todo += m->cost[i];
        }
    }
    remove_finished_checkpoints(m, status, dir);
    free(status);
    costed_row *order = malloc(sizeof *order * (size_t)(m->n_todo ? m->n_todo : 1));
    for (int i = 0; i < m->n_todo; i++)
        order[i] = (costed_row){m->cost[m->todo[i]], m->todo[i]};
    qsort(order, (size_t)m->n_todo, sizeof *order, by_cost_desc);
    for (int i = 0; i < m->n_todo; i++)
        m->todo[i] = order[i].row;
    free(order);
    return EXIT_ALL_DONE;
}

typedef struct {
    char host[HOST_LEN];
    char blas[256]; /* blas_identity, then the products' kernel */
} rank_info;

/* Ranks that train with different BLAS or matrix-product kernels (nodes of
 * different CPU types, OPENBLAS_CORETYPE or DNNL_MAX_CPU_ISA set on some
 * nodes only, or different BLAS libraries on the nodes' library paths) give
 * results that
 * depend on which rank ran a run: say so before any work starts. */
static void warn_mixed_blas(const rank_info *info, int size)
{
    int first = size > 1 ? 1 : 0; /* the ranks that train */
    int mixed = 0;
    for (int r = first + 1; r < size; r++)
        mixed |= strcmp(info[r].blas, info[first].blas) != 0;
    if (!mixed)
        return;
    fprintf(stderr, "icasweep sweep: warning: the ranks compute with different BLAS kernels:");
    for (int r = first; r < size; r++)
        fprintf(stderr, " rank %d on %s: %s;", r, info[r].host, info[r].blas);
    fprintf(stderr, " a run's numbers will depend on the rank that ran it (one BLAS build on every "
                    "node, and one kernel: OPENBLAS_CORETYPE, BLIS_ARCH_TYPE or DNNL_MAX_CPU_ISA; mpirun passes "
                    "it on with -x)\n");
}

/* abandon_job's exit status, for its alarm handler */
static volatile sig_atomic_t abandon_status;

static void exit_abandoned(int sig)
{
    (void)sig;
    _exit(abandon_status);
}

/* Ends the job after a worker was lost, the file closed. MPI_Finalize
 * would wait for the lost ranks forever. First this rank waits `grace`
 * seconds for the launcher to end the job itself: mpirun notices a dead
 * node through its TCP keepalives (oob_tcp_keepalive_*), but not once an
 * MPI_Abort has queued a message to that node, after which it waits out
 * TCP's retransmissions (about 15 minutes). Then MPI_Abort asks the
 * launcher to end every rank with `status` (srun does so within its
 * KillWait); should that not end this process within 10 s, an alarm
 * does. A signal during the wait ends this process at once. */
static void abandon_job(int status, double grace)
{
    abandon_status = status;
    fflush(stdout);
    fflush(stderr);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = exit_abandoned;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (!stop_signal)
        sleep_ms((int)(fmin(grace, 3600) * 1000));
    fprintf(stderr, "icasweep sweep: calling MPI_Abort\n");
    alarm(10);
    MPI_Abort(MPI_COMM_WORLD, status);
    _exit(status);
}

int sched_main(int argc, char **argv)
{
    sweep_args args;
    int pa = parse_args(argc, argv, &args);
    if (pa != 0)
        return pa > 0 ? EXIT_ALL_DONE : EXIT_USAGE;

    int provided, rank, size;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* every rank's host (for messages about a lost one) and BLAS kernel */
    rank_info me;
    memset(&me, 0, sizeof me);
    gethostname(me.host, sizeof me.host - 1);
    blas_identity(me.blas, sizeof me.blas);
    size_t used = strlen(me.blas);
    snprintf(me.blas + used, sizeof me.blas - used, "; products ");
    used = strlen(me.blas);
    matmul_backend_kernel_name(MATMUL_AUTO, me.blas + used, sizeof me.blas - used);
    rank_info *info = rank == 0 ? calloc((size_t)size, sizeof *info) : NULL;
    MPI_Gather(&me, sizeof me, MPI_BYTE, info, sizeof me, MPI_BYTE, 0, MPI_COMM_WORLD);
    char(*hosts)[HOST_LEN] = NULL;
    if (rank == 0) {
        hosts = calloc((size_t)size, HOST_LEN);
        for (int r = 0; r < size; r++)
            memcpy(hosts[r], info[r].host, HOST_LEN);
        warn_mixed_blas(info, size);
        free(info);
    }

    int go = EXIT_ALL_DONE;
    if (rank != 0) {
        MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (go == EXIT_ALL_DONE) {
            worker_loop(rank);
            /* the master waits for every acknowledged checkpoint to go */
            MPI_Barrier(MPI_COMM_WORLD);
        }
        MPI_Finalize();
        return go;
    }

    master_state m;
    memset(&m, 0, sizeof m);
    char ckpt_default[4096];
    m.args = &args;
    m.hosts = hosts;
    int *lost = calloc((size_t)size, sizeof *lost);
    int lock_fd = -1;
    go = master_prepare(&m, ckpt_default, sizeof ckpt_default, &lock_fd);
    if (!args.ckpt_dir)
        args.ckpt_dir = ckpt_default;
    MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
    int status = go;
    if (go == EXIT_ALL_DONE) {
        fprintf(stderr,
                "icasweep sweep: %s: %d runs, %d already finished, %d to run on %d rank%s "
                "(%d thread%s each)\n",
                args.output, m.n_total, m.n_finished_before, m.n_todo, size > 1 ? size - 1 : 1,
                size > 2 ? "s" : "", omp_get_max_threads(), omp_get_max_threads() > 1 ? "s" : "");
        m.start = omp_get_wtime();
        if (size == 1)
            master_run_alone(&m);
        else
            master_dispatch(&m, size, lost);
        /* after a loss the workers left are ended by abandon_job */
        for (int w = 1; w < size && m.n_lost == 0; w++)
            MPI_Send(NULL, 0, MPI_INT, w, TAG_RELEASE, MPI_COMM_WORLD);
        if (size > 1 && m.n_lost == 0)
            MPI_Barrier(MPI_COMM_WORLD);
        /* the file durable; then the journal is cut back, or goes when the
         * sweep is over */
        icas_err ferr;
        if (!m.io_error && store_sync(m.file, &ferr))
            master_io_error(&m, &ferr);
        if (store_close(m.file, &ferr) && !m.io_error)
            master_io_error(&m, &ferr);
        m.file = NULL;

        int unfinished = m.n_todo - (m.done + m.diverged + m.failed);
        char el[32];
        progress_format_duration(omp_get_wtime() - m.start, el, sizeof el);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                     ru.ru_stime.tv_usec / 1e6;
        fprintf(stderr,
                "icasweep sweep: %s in %s: %d done, %d diverged, %d failed, %d not finished "
                "(%d already finished before); rank 0 used %.2f s of CPU%s\n",
                args.output, el, m.done, m.diverged, m.failed, unfinished, m.n_finished_before,
                cpu, size > 1 ? " as master" : "");
        if (m.io_error) {
            fprintf(stderr, "icasweep sweep: stopped: %s; every result recorded before is "
                            "kept; once the cause is fixed (free space), run the same command "
                            "to resume\n", m.io_err.msg);
            status = EXIT_IO;
        }
        else if (unfinished > 0) {
            fprintf(stderr, "icasweep sweep: interrupted; run the same command again to "
                            "resume\n");
            status = EXIT_INTERRUPTED;
        } else if (m.diverged + m.failed > 0)
            status = EXIT_RUN_FAILED;
        else
            status = EXIT_ALL_DONE;
        /* every run has ended, so no checkpoint is left: remove the empty
         * directory (rmdir leaves a directory that still holds anything) */
        if (unfinished == 0 && !m.io_error)
            rmdir(args.ckpt_dir);
        /* the journal goes when no run is left for a rerun (failed runs
         * are rerun, so their sweep is not over) */
        icas_err err;
        if (unfinished == 0 && m.failed == 0 && !m.io_error) {
            journal_close(m.jnl);
            m.jnl = NULL;
            if (journal_remove(m.journal_path, &err)) {
                fprintf(stderr, "icasweep sweep: %s\n", err.msg);
                status = EXIT_IO;
            }
        } else if (!m.io_error && journal_truncate(m.jnl, &err)) {
            fprintf(stderr, "icasweep sweep: %s\n", err.msg);
            status = EXIT_IO;
        }
    }
    if (m.file) {
        icas_err ignore;
        store_close(m.file, &ignore);
    }
    journal_close(m.jnl);
    free(m.group);
    free(m.ids);
    free(m.group_row);
    free(m.group_rank);
    if (lock_fd >= 0)
        sched_unlock(args.output, lock_fd);
    grid_free(&m.g);
    free(m.cost);
    free(m.todo);
    if (m.n_lost > 0) {
        fprintf(stderr, "icasweep sweep: lost");
        for (int w = 1; w < size; w++)
            if (lost[w])
                fprintf(stderr, " rank %d on host %s;", w, hosts[w]);
        fprintf(stderr,
                " %s is closed; ending every rank with exit status %d (waiting %g s for the "
                "launcher to do so first)\n",
                args.output, status, args.lost_after);
        abandon_job(status, args.lost_after);
    }
    free(lost);
    free(hosts);
    MPI_Finalize();
    return status;
}
