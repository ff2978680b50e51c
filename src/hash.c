#include "icasweep/hash.h"

/* FNV's 64-bit prime, 2^40 + 2^8 + 0xb3 */
#define FNV1A64_PRIME 1099511628211ULL

uint64_t hash_fnv1a64(const void *data, size_t n, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV1A64_PRIME;
    }
    return h;
}
