/* FNV-1a, 64-bit (Fowler, Noll, Vo): the one hash of the program, behind
 * run ids (config_run_id), the checksums that end journal entries and
 * checkpoints, and the checksum column of /runs. Not cryptographic: it
 * tells a damaged or foreign file from a sound one, not a forged one. */
#ifndef ICASWEEP_HASH_H
#define ICASWEEP_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV's 64-bit offset basis, 14695981039346656037: the start value of the
 * standard FNV-1a 64, the one its published test vectors use. */
#define HASH_FNV1A64_INIT 0xcbf29ce484222325ULL

/* The start value of every hash icasweep stores: run ids, journal entries,
 * checkpoints, the /runs checksum. It is not HASH_FNV1A64_INIT (it is that
 * number without its last decimal digit); any start value hashes equally
 * well, and this one is part of every run id and checksum in existing
 * result files, journals and checkpoints, which a different start would
 * make unreadable. A reader checking a stored checksum must start here. */
#define HASH_ICASWEEP_INIT 1469598103934665603ULL

/* FNV-1a 64 of the n bytes at data, continuing from h: pass a start value
 * (HASH_ICASWEEP_INIT, or HASH_FNV1A64_INIT for the standard hash) for the
 * first buffer and the previous result for each further one, so that
 * hashing a then b equals hashing their concatenation. n may be 0 (data is
 * then not read and h is returned). */
uint64_t hash_fnv1a64(const void *data, size_t n, uint64_t h);

#endif
