/* Counter-based random numbers (Philox4x32-10 from Random123), addressed by
 * (seed, stream, counter): any context of any run can be regenerated on its
 * own, in any order and on any thread, with the same numbers. */
#ifndef ICASWEEP_RNG_H
#define ICASWEEP_RNG_H

#include <stdint.h>

/* Streams are named by purpose and indices so that two purposes never share
 * numbers: rng_stream(RNG_TRAIN, step, context). */
typedef enum {
    RNG_INIT = 1,   /* model initialisation: (tensor index, 0) */
    RNG_TRAIN = 2,  /* training contexts: (step, context) */
    RNG_EVAL = 3,   /* evaluation contexts: (context, 0) */
    RNG_GD = 4,     /* GD-baseline initialisation: (context, k) */
    RNG_CRITIC = 5, /* closed-loop critic: (context, position of the judged
                       response); two draws, whether it errs and its guess */
} rng_purpose;

typedef struct {
    uint32_t key[2];    /* the seed */
    uint32_t ctr[4];    /* ctr[0..1]: 64-bit position; ctr[2..3]: stream */
    uint32_t out[4];    /* the current block */
    int used;           /* how many of out[] are consumed */
} rng_state;

uint64_t rng_stream(rng_purpose purpose, uint64_t i, uint64_t j);
void rng_init(rng_state *s, uint64_t seed, uint64_t stream);
uint32_t rng_u32(rng_state *s);
/* Uniform on the open interval (0, 1), 23 random bits. */
float rng_uniform(rng_state *s);
/* Standard normal (Box-Muller, in double, rounded to float). */
float rng_normal(rng_state *s);

#endif
