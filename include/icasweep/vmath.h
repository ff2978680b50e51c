/* tanh and exp as plain arithmetic, for the model's element-wise loops:
 * unlike libm's tanhf and expf they vectorise. The same arithmetic runs in
 * a loop's vector body and its scalar remainder (no FMA contraction in ISO
 * C mode), so results never depend on how OpenMP splits a loop.
 * tests/test_vmath.c holds them to their stated accuracy against libm. */
#ifndef ICASWEEP_VMATH_H
#define ICASWEEP_VMATH_H

#include <stdint.h>
#include <string.h>

/* tanh as a rational function (the form Eigen uses for float): within
 * 4e-7 (absolute) of tanh everywhere. */
inline float vmath_tanh(float x)
{
    const float clamp = 7.90531110763549805f;
    x = x > clamp ? clamp : (x < -clamp ? -clamp : x);
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q;
}

/* exp for the attention softmax: Cody-Waite reduction x = n ln2 + r and a
 * degree-7 Taylor polynomial for exp(r), |r| <= ln2/2: within 2e-7
 * (relative) of exp for x in [-87, 0], the only range softmax feeds it
 * (below -87 it returns exp(-87) ~ 2e-38 instead of a denormal or 0, which
 * no sum notices). NaN (a diverging run) comes back as NaN, so divergence
 * still shows in the loss. */
inline float vmath_exp(float x)
{
    /* NaN fails both comparisons and becomes -87, so the integer
     * conversion below stays defined; it is handed back at the end */
    float xc = x > -87.0f ? x : -87.0f;
    xc = xc < 88.0f ? xc : 88.0f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (xc * 1.44269504088896341f + shifter) - shifter;
    float r = xc - n * 0.693145751953125f; /* ln2 split in two for an exact n * hi */
    r = r - n * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23; /* n in [-126, 127] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x == x ? p * scale : x;
}

#endif
