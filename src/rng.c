#include "icasweep/rng.h"

#include <math.h>
#include <Random123/philox.h>

/* Purpose in the top byte, then two indices of 28 bits each: 268 million
 * steps or contexts are far beyond any run, and streams never overlap. */
uint64_t rng_stream(rng_purpose purpose, uint64_t i, uint64_t j)
{
    return ((uint64_t)purpose << 56) | ((i & 0xFFFFFFFULL) << 28) |
           (j & 0xFFFFFFFULL);
}

void rng_init(rng_state *s, uint64_t seed, uint64_t stream)
{
    s->key[0] = (uint32_t)seed;
    s->key[1] = (uint32_t)(seed >> 32);
    s->ctr[0] = 0;
    s->ctr[1] = 0;
    s->ctr[2] = (uint32_t)stream;
    s->ctr[3] = (uint32_t)(stream >> 32);
    s->used = 4;
}

uint32_t rng_u32(rng_state *s)
{
    if (s->used == 4) {
        philox4x32_ctr_t c = {{s->ctr[0], s->ctr[1], s->ctr[2], s->ctr[3]}};
        philox4x32_key_t k = {{s->key[0], s->key[1]}};
        philox4x32_ctr_t r = philox4x32(c, k);
        for (int i = 0; i < 4; i++)
            s->out[i] = r.v[i];
        if (++s->ctr[0] == 0)
            ++s->ctr[1];
        s->used = 0;
    }
    return s->out[s->used++];
}

float rng_uniform(rng_state *s)
{
    /* 23 bits and a half-step offset, so that the largest value, 1 - 2^-24,
     * is still a float below 1 (with 24 bits it would round up to 1). */
    return ((float)(rng_u32(s) >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

float rng_normal(rng_state *s)
{
    double u1 = ((double)rng_u32(s) + 0.5) / 4294967296.0;
    double u2 = ((double)rng_u32(s) + 0.5) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
