#include "icasweep/vmath.h"

/* The external definitions of the inline functions, for calls the compiler
 * does not inline (an unoptimised build). */
extern inline float vmath_tanh(float x);
extern inline float vmath_exp(float x);
