/* Test-only fault injection on the write path (result journal, result file,
 * checkpoints), in the manner of SQLite's fault tests. Every write-class
 * step (create, write, fsync, rename, unlink, each HDF5 library call that
 * writes, and every pwrite() the HDF5 library makes while a store write is
 * in progress) calls fault_point() first, which counts it. With the
 * environment variable
 *
 *   ICAS_FAULT_KILL_AT=N          the process SIGKILLs itself at step N;
 *   ICAS_FAULT_ERRNO_AT=N:ENOSPC  step N (and every later one) fails with
 *                                 that errno (ENOSPC, EIO, EDQUOT, EROFS);
 *   ICAS_FAULT_TRACE=1            every step is printed to stderr;
 *
 * and nothing set, a step costs one branch. Steps are counted per process
 * from 1 in program order, so the same command reaches the same N at the
 * same step every time. Not for production use. */
#ifndef ICASWEEP_FAULT_H
#define ICASWEEP_FAULT_H

#include <stddef.h>
#include <sys/types.h>

/* Counts one step named `what` (for the trace). Returns 0 to go ahead, or
 * -1 with errno set when an error is injected. Never returns at the kill
 * step. */
int fault_point(const char *what);

/* HDF5 writes through pwrite(); between fault_hdf5_begin() and
 * fault_hdf5_end() each of its pwrite calls is a step. */
void fault_hdf5_begin(void);
void fault_hdf5_end(void);

/* write(2) of the whole buffer, each call a step; fsync, rename, unlink and
 * the directory fsync as steps. Return 0 or -1 with errno set. */
int fault_write_all(int fd, const void *buf, size_t n, const char *what);
int fault_fsync(int fd, const char *what);
int fault_rename(const char *from, const char *to);
int fault_unlink(const char *path);
/* fsync of the directory holding `path` (makes a rename in it durable). */
int fault_fsync_dir_of(const char *path);

#endif
