#define _GNU_SOURCE /* RTLD_NEXT */
#include "icasweep/fault.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The one piece of process-wide state besides the signal flags: the step
 * counter and the configuration read from the environment. Test-only; with
 * no ICAS_FAULT_* variable set it only counts. */
static struct {
    int configured;
    long kill_at, errno_at;
    int err_no, trace;
    long step;
    int in_hdf5;
} fault;

static void fault_configure(void)
{
    fault.configured = 1;
    const char *k = getenv("ICAS_FAULT_KILL_AT");
    const char *e = getenv("ICAS_FAULT_ERRNO_AT");
    const char *t = getenv("ICAS_FAULT_TRACE");
    fault.kill_at = k ? atol(k) : 0;
    fault.trace = t && *t && strcmp(t, "0") != 0;
    if (e) {
        char *colon;
        fault.errno_at = strtol(e, &colon, 10);
        const char *name = *colon == ':' ? colon + 1 : "ENOSPC";
        fault.err_no = !strcmp(name, "EIO")      ? EIO
                       : !strcmp(name, "EDQUOT") ? EDQUOT
                       : !strcmp(name, "EROFS")  ? EROFS
                                                 : ENOSPC;
    }
}

int fault_point(const char *what)
{
    if (!fault.configured)
        fault_configure();
    fault.step++;
    if (fault.trace)
        fprintf(stderr, "fault step %ld: %s\n", fault.step, what);
    if (fault.kill_at > 0 && fault.step == fault.kill_at) {
        if (fault.trace)
            fprintf(stderr, "fault: SIGKILL at step %ld (%s)\n", fault.step, what);
        kill(getpid(), SIGKILL);
        pause();
    }
    if (fault.errno_at > 0 && fault.step >= fault.errno_at) {
        errno = fault.err_no;
        return -1;
    }
    return 0;
}

void fault_hdf5_begin(void) { fault.in_hdf5++; }
void fault_hdf5_end(void) { fault.in_hdf5--; }

/* HDF5's sec2 driver writes with pwrite(); this definition in the program
 * takes precedence over the C library's for the HDF5 shared library, and
 * passes every call on to the next definition (libc's, or a sanitizer's). */
ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset)
{
    static ssize_t (*next)(int, const void *, size_t, off_t);
    if (!next)
        next = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    if (fault.in_hdf5 > 0 && fault_point("hdf5 pwrite") != 0)
        return -1;
    return next(fd, buf, n, offset);
}

int fault_write_all(int fd, const void *buf, size_t n, const char *what)
{
    const char *p = buf;
    while (n > 0) {
        if (fault_point(what))
            return -1;
        size_t chunk = n < (1u << 20) ? n : (1u << 20);
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int fault_fsync(int fd, const char *what)
{
    if (fault_point(what))
        return -1;
    return fsync(fd);
}

int fault_rename(const char *from, const char *to)
{
    if (fault_point("rename"))
        return -1;
    return rename(from, to);
}

int fault_unlink(const char *path)
{
    if (fault_point("unlink"))
        return -1;
    return unlink(path);
}

int fault_fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    if (fault_point("fsync directory"))
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}
