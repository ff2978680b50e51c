/* The MPI sweep: rank 0 is the master, hands grid runs to ranks as they
 * become free (longest first), receives results and records each in the
 * result journal and the one result file as it arrives; resumable,
 * interruptible, lock-protected. Also the names of the files a sweep keeps
 * beside its result file (checkpoints, the writer's lock), which `icasweep
 * status` looks at. */
#ifndef ICASWEEP_SCHED_H
#define ICASWEEP_SCHED_H

#include <stddef.h>

#include "icasweep/error.h"

/* `icasweep sweep GRID.yaml -o RESULTS.h5 [...]`; returns an exit status
 * (cli.h). Calls MPI_Init and MPI_Finalize itself. */
int sched_main(int argc, char **argv);

/* Where a sweep writing `path` keeps its checkpoints: ckpt_dir when given,
 * else "<path>.ckpt"; and the checkpoint file of one run in that directory. */
void sched_checkpoint_dir(const char *path, const char *ckpt_dir, char *out, size_t n);
void sched_checkpoint_file(const char *dir, const char *run_id, char *out, size_t n);

/* Takes an exclusive advisory lock (flock on "<path>.lock", created if
 * missing) so that a second writer of the same file is refused with a
 * message naming the holder (pid, host from the lock file). */
int sched_lock(const char *path, int *fd, icas_err *err);
void sched_unlock(const char *path, int fd);

/* 1 when a writer holds the lock of `path` (its note, "pid P on host H", in
 * holder), 0 when none does. Never blocks a writer, never creates the lock
 * file. */
int sched_lock_holder(const char *path, char *holder, size_t n);

#endif
