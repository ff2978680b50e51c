/* The hand-written tanh and exp of vmath.h against libm (in double, so
 * the reference's own rounding does not count): tanh within VMATH_TANH_ABS
 * (absolute) over [-12, 12], exp within VMATH_EXP_REL (relative) over the
 * softmax's range [-87, 0]; exp of NaN is NaN, and below -87 exp stays at
 * exp(-87) instead of going denormal. */
#include <math.h>
#include <stdio.h>

#include "icasweep/vmath.h"
#include "testutil.h"

/* the accuracy the comments of vmath.h state; measured 3.95e-7 and 1.02e-7 */
#define VMATH_TANH_ABS 4e-7
#define VMATH_EXP_REL 2e-7

int main(void)
{
    double worst_tanh = 0, at_tanh = 0;
    for (int i = -1200000; i <= 1200000; i++) {
        float x = (float)i * 1e-5f;
        double e = fabs((double)vmath_tanh(x) - tanh((double)x));
        if (e > worst_tanh) {
            worst_tanh = e;
            at_tanh = x;
        }
    }
    CHECK(worst_tanh <= VMATH_TANH_ABS, "tanh: error %.3g at x = %.6g", worst_tanh, at_tanh);
    CHECK(vmath_tanh(0.0f) == 0.0f && vmath_tanh(40.0f) <= 1.0f && vmath_tanh(-40.0f) >= -1.0f,
          "tanh(0) = %g, tanh(+-40) = %g, %g", (double)vmath_tanh(0.0f),
          (double)vmath_tanh(40.0f), (double)vmath_tanh(-40.0f));

    double worst_exp = 0, at_exp = 0;
    for (int i = -8700000; i <= 0; i++) {
        float x = (float)i * 1e-5f;
        double ref = exp((double)x);
        double e = fabs((double)vmath_exp(x) - ref) / ref;
        if (e > worst_exp) {
            worst_exp = e;
            at_exp = x;
        }
    }
    CHECK(worst_exp <= VMATH_EXP_REL, "exp: relative error %.3g at x = %.6g", worst_exp, at_exp);
    CHECK(vmath_exp(0.0f) == 1.0f, "exp(0) = %.9g", (double)vmath_exp(0.0f));
    CHECK(isnan(vmath_exp(NAN)), "exp(NaN) = %g", (double)vmath_exp(NAN));
    CHECK(vmath_exp(-1000.0f) == vmath_exp(-87.0f) && vmath_exp(-87.0f) > 0 &&
              isnormal(vmath_exp(-1000.0f)),
          "exp(-1000) = %g, exp(-87) = %g", (double)vmath_exp(-1000.0f),
          (double)vmath_exp(-87.0f));
    printf("tanh: worst absolute error %.2e (x = %.5f) over [-12, 12]; exp: worst relative "
           "error %.2e (x = %.5f) over [-87, 0]\n",
           worst_tanh, at_tanh, worst_exp, at_exp);
    return test_finish("test_vmath");
}
