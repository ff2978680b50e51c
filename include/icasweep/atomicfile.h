/* Whole-file writes that a kill cannot leave half done: the bytes go to
 * PATH.tmp, which is fsync'd and renamed over PATH, then PATH's directory
 * is fsync'd (so the rename itself survives a power loss). After a kill at
 * any instant PATH holds either its previous content (or does not exist)
 * or the new content complete; at worst a PATH.tmp is left over, which the
 * next write of PATH replaces. Journal entries and checkpoints are written
 * this way. Every step goes through the fault hooks (fault.h), so the
 * crash and disk-full tests reach each one. */
#ifndef ICASWEEP_ATOMICFILE_H
#define ICASWEEP_ATOMICFILE_H

#include <stddef.h>

#include "icasweep/error.h"

/* One buffer of the file's content. */
typedef struct {
    const void *data;
    size_t n; /* bytes; 0 writes nothing (data may then be NULL) */
} atomicfile_part;

/* Writes parts[0..n_parts-1], in order, as the whole content of `path`,
 * replacing any earlier file atomically as described above. `what` names
 * the kind of file ("journal", "checkpoint") in the fault steps it counts
 * ("<what> create", "<what> write" per write call, "<what> fsync",
 * "rename", "fsync directory") and in error messages, which name the file
 * and the system's reason: "PATH: cannot write <what>: No space left on
 * device". On failure err->sys_errno holds the errno, PATH is as it was
 * (unless only the final directory fsync failed: the new file is then in
 * place but may not survive a power loss) and PATH.tmp is removed. */
int atomicfile_write(const char *path, const char *what, const atomicfile_part *parts,
                     int n_parts, icas_err *err);

#endif
