#include "icasweep/atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "icasweep/fault.h"

int atomicfile_write(const char *path, const char *what, const atomicfile_part *parts,
                     int n_parts, icas_err *err)
{
    char tmp[PATH_MAX], step_create[64], step_write[64], step_fsync[64];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return icas_fail(err, "%s: cannot write %s: path too long", path, what);
    snprintf(step_create, sizeof step_create, "%s create", what);
    snprintf(step_write, sizeof step_write, "%s write", what);
    snprintf(step_fsync, sizeof step_fsync, "%s fsync", what);

    if (fault_point(step_create))
        return icas_fail_errno(err, errno, "%s: cannot write %s: %s", tmp, what,
                               strerror(errno));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return icas_fail_errno(err, errno, "%s: cannot write %s: %s", tmp, what,
                               strerror(errno));
    int ok = 1;
    for (int i = 0; ok && i < n_parts; i++)
        ok = fault_write_all(fd, parts[i].data, parts[i].n, step_write) == 0;
    ok = ok && fault_fsync(fd, step_fsync) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && fault_rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        return icas_fail_errno(err, e, "%s: cannot write %s: %s", path, what, strerror(e));
    }
    if (fault_fsync_dir_of(path) != 0)
        return icas_fail_errno(err, errno, "%s: cannot write %s: fsync of its directory: %s",
                               path, what, strerror(errno));
    return 0;
}
