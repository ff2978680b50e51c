#include "icasweep/sched.h"

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "icasweep/grid.h"
#include "icasweep/journal.h"
#include "icasweep/progress.h"
#include "icasweep/store.h"
#include "icasweep/train.h"

enum {
    TAG_TASK = 1,    /* master -> worker: a task_msg */
    TAG_STOP,        /* master -> worker: stop the run in progress */
    TAG_RESULT,      /* worker -> master: result_msg, then its arrays */
    TAG_ARRAYS,
    TAG_RELEASE,     /* master -> worker: all done, finalize */
};

/* Runs are sent as raw bytes: every rank runs the same binary on the same
 * kind of machine (a homogeneous allocation), so layouts agree. */
typedef struct {
    int row; /* -1: no more work */
    run_config cfg;
    int save_model;
    int checkpoint_every;
    char checkpoint_path[4096];
} task_msg;

typedef struct {
    int row;
    int ok; /* 0: the run could not be carried out; reason says why */
    run_status status;
    char reason[256];
    double wall_seconds, train_seconds, eval_seconds;
    float final_loss;
    int steps_done;
    char host[64];
    int rank, threads;
    int has_model;
    int io_errno; /* !ok because a write failed (ENOSPC, EIO...): stop the sweep */
} result_msg;

typedef struct {
    const char *grid_path, *output, *ckpt_dir;
    int force, quiet;
    double heartbeat;
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

/* ---- the worker -------------------------------------------------------- */

typedef struct {
    volatile sig_atomic_t stop; /* signal or master's TAG_STOP */
} worker_state;

/* Between training steps: has the master asked us to stop? */
static void worker_progress(void *user, int step, int steps, float loss)
{
    (void)step; (void)steps; (void)loss;
    worker_state *w = user;
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
    h.status = ok ? r->status : RUN_FAILED;
    h.io_errno = ok ? 0 : io_errno;
    snprintf(h.reason, sizeof h.reason, "%.255s", ok ? r->reason : why);
    if (ok) {
        h.wall_seconds = r->wall_seconds;
        h.train_seconds = r->train_seconds;
        h.eval_seconds = r->eval_seconds;
        h.final_loss = r->final_loss;
        h.steps_done = r->steps_done;
        memcpy(h.host, r->host, sizeof h.host);
        h.threads = r->threads;
        h.has_model = r->params != NULL && r->status == RUN_DONE;
    } else {
        gethostname(h.host, sizeof h.host - 1);
        h.threads = omp_get_max_threads();
        h.final_loss = NAN;
    }
    h.rank = rank;
    MPI_Send(&h, sizeof h, MPI_BYTE, dest, TAG_RESULT, MPI_COMM_WORLD);
    if (!ok)
        return;
    const run_config *c = &task->cfg;
    MPI_Send(r->train_loss, c->steps, MPI_FLOAT, dest, TAG_ARRAYS, MPI_COMM_WORLD);
    float *curves[RUN_RESULT_N_CURVES];
    run_result_curves((run_result *)r, curves);
    for (int i = 0; i < RUN_RESULT_N_CURVES; i++)
        MPI_Send(curves[i], r->P * r->N, MPI_FLOAT, dest, TAG_ARRAYS, MPI_COMM_WORLD);
    if (h.has_model) {
        int T = 3 * c->points;
        MPI_Send(r->params, (int)r->n_params, MPI_FLOAT, dest, TAG_ARRAYS, MPI_COMM_WORLD);
        MPI_Send(r->eval_tokens, c->eval_batch * T * c->dims, MPI_FLOAT, dest, TAG_ARRAYS,
                 MPI_COMM_WORLD);
        MPI_Send(r->eval_pred, c->eval_batch * c->points * c->dims, MPI_FLOAT, dest,
                 TAG_ARRAYS, MPI_COMM_WORLD);
        MPI_Send(r->eval_target, c->eval_batch * c->dims, MPI_FLOAT, dest, TAG_ARRAYS,
                 MPI_COMM_WORLD);
    }
}

static void worker_loop(int rank)
{
    worker_state w = {0};
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
        if (st.MPI_TAG == TAG_RELEASE) {
            MPI_Recv(NULL, 0, MPI_INT, 0, TAG_RELEASE, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            return;
        }
        MPI_Recv(&task, sizeof task, MPI_BYTE, 0, TAG_TASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        w.stop = stop_signal;
        train_options opt = {
            .progress = worker_progress,
            .user = &w,
            .stop = &w.stop,
            .checkpoint_path = task.checkpoint_path[0] ? task.checkpoint_path : NULL,
            .checkpoint_every = task.checkpoint_every,
            .save_model = task.save_model,
        };
        run_result r;
        icas_err err;
        int ok = train_and_evaluate(&task.cfg, &opt, &r, &err) == 0;
        r.rank = rank;
        send_result(0, &task, &r, ok, ok ? "" : err.msg, ok ? 0 : err.sys_errno, rank);
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
    char journal[4096]; /* journal.h */
} master_state;

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
    char id[ICAS_RUN_ID_LEN];
    config_run_id(&t->cfg, id);
    store_checkpoint_file(m->args->ckpt_dir, id, t->checkpoint_path, sizeof t->checkpoint_path);
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

/* Records one result (journal, then file) and prints its line. A result
 * that could not be recorded is not counted: its run is redone. */
static void master_record(master_state *m, run_result *r, int row)
{
    icas_err err;
    if (m->io_error)
        return;
    if (store_record(m->args->output, m->journal, row, r, &err)) {
        master_io_error(m, &err);
        return;
    }

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

static int master_receive(master_state *m, int source)
{
    result_msg h;
    MPI_Recv(&h, sizeof h, MPI_BYTE, source, TAG_RESULT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    const run_config *c = &m->g.runs[h.row];
    run_result r;
    icas_err err;
    if (run_result_alloc(&r, c, h.has_model, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", err.msg);
        return -1;
    }
    r.status = h.status;
    snprintf(r.reason, sizeof r.reason, "%s", h.reason);
    r.wall_seconds = h.wall_seconds;
    r.train_seconds = h.train_seconds;
    r.eval_seconds = h.eval_seconds;
    r.final_loss = h.final_loss;
    r.steps_done = h.steps_done;
    memcpy(r.host, h.host, sizeof r.host);
    r.rank = h.rank;
    r.threads = h.threads;
    if (!h.ok && h.io_errno) {
        icas_err e;
        icas_fail_errno(&e, h.io_errno, "rank %d: %s", h.rank, h.reason);
        master_io_error(m, &e);
        run_result_free(&r);
        return 0;
    }
    if (h.ok) {
        MPI_Recv(r.train_loss, c->steps, MPI_FLOAT, source, TAG_ARRAYS, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        float *curves[RUN_RESULT_N_CURVES];
        run_result_curves(&r, curves);
        for (int i = 0; i < RUN_RESULT_N_CURVES; i++)
            MPI_Recv(curves[i], r.P * r.N, MPI_FLOAT, source, TAG_ARRAYS, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        if (h.has_model) {
            int T = 3 * c->points;
            MPI_Recv(r.params, (int)r.n_params, MPI_FLOAT, source, TAG_ARRAYS, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
            MPI_Recv(r.eval_tokens, c->eval_batch * T * c->dims, MPI_FLOAT, source, TAG_ARRAYS,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Recv(r.eval_pred, c->eval_batch * c->points * c->dims, MPI_FLOAT, source,
                     TAG_ARRAYS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Recv(r.eval_target, c->eval_batch * c->dims, MPI_FLOAT, source, TAG_ARRAYS,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        }
    }
    master_record(m, &r, h.row);
    run_result_free(&r);
    return 0;
}

static void print_heartbeat(const master_state *m, const int *running, const double *since,
                            int size)
{
    double now = omp_get_wtime();
    fprintf(stderr, "icasweep sweep: in flight:");
    for (int w = 1; w < size; w++)
        if (running[w] >= 0) {
            char el[32];
            progress_format_duration(now - since[w], el, sizeof el);
            fprintf(stderr, " row %d on rank %d (%s)", running[w], w, el);
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
        master_record(m, &r, t.row);
        run_result_free(&r);
    }
}

static void master_dispatch(master_state *m, int size)
{
    int *running = malloc(sizeof(int) * (size_t)size);
    double *since = malloc(sizeof(double) * (size_t)size);
    int in_flight = 0, stop_sent = 0;
    double last_beat = omp_get_wtime();
    for (int w = 0; w < size; w++)
        running[w] = -1;
    for (int w = 1; w < size && m->next < m->n_todo; w++) {
        task_msg t;
        make_task(m, m->todo[m->next++], &t);
        MPI_Send(&t, sizeof t, MPI_BYTE, w, TAG_TASK, MPI_COMM_WORLD);
        running[w] = t.row;
        since[w] = omp_get_wtime();
        in_flight++;
    }
    while (in_flight > 0) {
        int stopping = stop_signal || m->io_error;
        if (stopping && !stop_sent) {
            for (int w = 1; w < size; w++)
                if (running[w] >= 0)
                    MPI_Send(NULL, 0, MPI_INT, w, TAG_STOP, MPI_COMM_WORLD);
            stop_sent = 1;
            fprintf(stderr, "icasweep sweep: stopping: waiting for %d runs in flight to "
                            "checkpoint\n", in_flight);
        }
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &flag, &st);
        if (!flag) {
            sleep_ms(20);
            if (m->args->heartbeat > 0 && !m->args->quiet &&
                omp_get_wtime() - last_beat >= m->args->heartbeat) {
                print_heartbeat(m, running, since, size);
                last_beat = omp_get_wtime();
            }
            continue;
        }
        int w = st.MPI_SOURCE;
        master_receive(m, w);
        running[w] = -1;
        in_flight--;
        if (!(stop_signal || m->io_error) && m->next < m->n_todo) {
            task_msg t;
            make_task(m, m->todo[m->next++], &t);
            MPI_Send(&t, sizeof t, MPI_BYTE, w, TAG_TASK, MPI_COMM_WORLD);
            running[w] = t.row;
            since[w] = omp_get_wtime();
            in_flight++;
        }
    }
    free(running);
    free(since);
}

static int parse_args(int argc, char **argv, sweep_args *a)
{
    memset(a, 0, sizeof *a);
    a->heartbeat = 60;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            printf("usage: mpirun -np N icasweep sweep GRID.yaml -o RESULTS.h5 [options]\n"
                   "Runs every run of a grid; rank 0 is the master and writes RESULTS.h5.\n"
                   "Re-running the same command resumes: only missing runs are run, and\n"
                   "interrupted runs continue from their checkpoints.\n\n"
                   "  -o, --output PATH      the result file (required)\n"
                   "  --force                start over: replace a file made from another grid\n"
                   "  --checkpoint-dir DIR   checkpoints (default PATH.ckpt; must be on a file\n"
                   "                         system every rank sees)\n"
                   "  --heartbeat SEC        print the runs in flight every SEC s (default 60)\n"
                   "  -q, --quiet            only failures and the final summary\n\n"
                   "Signals: SIGTERM or SIGUSR1 checkpoint every run in flight and exit 3.\n"
                   "Exit status: 0 all done, 1 some run diverged or failed, 2 bad input,\n"
                   "3 interrupted (rerun to resume), 4 I/O error.\n");
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
    if (store_lock(a->output, lock_fd, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", err.msg);
        return EXIT_USAGE;
    }
    store_layout layout = {.n_runs = m->g.n_runs, .runs = m->g.runs, .grid_text = m->g.text};
    journal_dir(a->output, m->journal, sizeof m->journal);
    store_recovery rec = {0};
    if (a->force) {
        /* a new file replaces the old one only once it is complete */
        if (journal_remove(m->journal, &err) ||
            store_create(a->output, &layout, 1, &err)) {
            fprintf(stderr, "icasweep sweep: -o %s: %s\n", a->output, err.msg);
            return err.sys_errno ? EXIT_IO : EXIT_USAGE;
        }
    } else if (store_recover(a->output, &layout, m->journal, stderr, &rec, &err)) {
        fprintf(stderr, "icasweep sweep: %s%s\n", err.msg,
                rec.refused ? " (use --force to start over)" : "");
        return rec.refused ? EXIT_USAGE : EXIT_IO;
    }
    if (journal_make_dir(m->journal, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", err.msg);
        return EXIT_IO;
    }
    if (!a->ckpt_dir) {
        store_checkpoint_dir(a->output, NULL, ckpt_default, n);
        m->args = a;
    }
    const char *dir = a->ckpt_dir ? a->ckpt_dir : ckpt_default;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "icasweep sweep: --checkpoint-dir %s: %s\n", dir, strerror(errno));
        return EXIT_USAGE;
    }
    int n_rows, *status;
    if (store_read_status(a->output, &n_rows, &status, &err)) {
        fprintf(stderr, "icasweep sweep: %s\n", err.msg);
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

    int go = EXIT_ALL_DONE;
    if (rank != 0) {
        MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (go == EXIT_ALL_DONE)
            worker_loop(rank);
        MPI_Finalize();
        return go;
    }

    master_state m;
    memset(&m, 0, sizeof m);
    char ckpt_default[4096];
    m.args = &args;
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
            master_dispatch(&m, size);
        for (int w = 1; w < size; w++)
            MPI_Send(NULL, 0, MPI_INT, w, TAG_RELEASE, MPI_COMM_WORLD);

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
        if (unfinished == 0 && m.failed == 0 && !m.io_error) {
            icas_err err;
            if (store_finish(args.output, m.journal, &err)) {
                fprintf(stderr, "icasweep sweep: %s\n", err.msg);
                status = EXIT_IO;
            }
        }
    }
    if (lock_fd >= 0)
        store_unlock(args.output, lock_fd);
    grid_free(&m.g);
    free(m.cost);
    free(m.todo);
    MPI_Finalize();
    return status;
}
