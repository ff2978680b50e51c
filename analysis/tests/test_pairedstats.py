"""The statistics behind the verdicts: incomplete beta, Student-t quantile,
confidence intervals, verdicts, pairing by seed, seeds needed."""
import importlib.util
import math

import numpy as np
import pytest

from pairedstats import (FAIL, INCONCLUSIVE, NOT_AVAILABLE, PASS, betainc, judge,
                         mean_interval, paired, seeds_needed, t_cdf, t_critical, t_quantile)


@pytest.mark.parametrize("a, b, x, want", [
    (1, 1, 0.3, 0.3),                        # uniform
    (2.5, 1, 0.4, 0.4 ** 2.5),               # I_x(a, 1) = x^a
    (1, 3.5, 0.2, 1 - 0.8 ** 3.5),           # I_x(1, b) = 1 - (1-x)^b
    (0.5, 0.5, 0.25, 2 / math.pi * math.asin(0.5)),   # arcsine law
    (3, 4, 0.0, 0.0), (3, 4, 1.0, 1.0),
])
def test_betainc_closed_forms(a, b, x, want):
    assert betainc(a, b, x) == pytest.approx(want, abs=1e-13)


def test_t_quantile_closed_forms_and_table():
    # df = 1 is the Cauchy distribution, df = 2 has a closed form too
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-10)
    q = 0.975
    assert t_quantile(q, 2) == pytest.approx((2 * q - 1) / math.sqrt(2 * q * (1 - q)), rel=1e-10)
    # printed tables of t_{0.975, df}
    for df, table in ((3, 3.182), (4, 2.776), (5, 2.571), (10, 2.228), (30, 2.042), (100, 1.984)):
        assert t_quantile(0.975, df) == pytest.approx(table, abs=5e-4), df
    assert t_quantile(0.995, 3) == pytest.approx(5.841, abs=5e-4)
    assert t_quantile(0.025, 3) == pytest.approx(-t_quantile(0.975, 3), rel=1e-12)
    assert t_quantile(0.5, 7) == 0.0
    assert t_critical(4) == t_quantile(0.975, 3)
    for df in (1, 2.5, 9, 60):
        for q in (0.6, 0.9, 0.975, 0.999):
            assert t_cdf(t_quantile(q, df), df) == pytest.approx(q, abs=1e-12)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError):
        t_cdf(1.0, 0)


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="scipy not installed")
def test_t_agrees_with_scipy():
    from scipy import stats
    for df in (1, 2, 3, 4, 7, 19, 99, 1000):
        for q in (0.55, 0.9, 0.975, 0.995, 0.9995):
            t = t_quantile(q, df)
            # scipy's own ppf is accurate to about 1e-8 relative in the tails;
            # compare in probability, where both are exact to rounding
            assert stats.t.cdf(t, df) == pytest.approx(q, abs=1e-12), (df, q)
            assert t == pytest.approx(stats.t.ppf(q, df), rel=1e-7), (df, q)
            assert t_cdf(1.3, df) == pytest.approx(stats.t.cdf(1.3, df), abs=1e-13)


def test_interval_by_hand():
    # 1, 2, 3, 4: mean 2.5, s = sqrt(5/3) = 1.2910, s/sqrt(4) = 0.6455,
    # t_{0.975,3} = 3.182: 2.5 -/+ 2.054 = [0.446, 4.554]
    iv = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert (iv.mean, iv.n) == (2.5, 4)
    assert iv.sd == pytest.approx(1.2910, abs=1e-4)
    assert iv.t == pytest.approx(3.182, abs=1e-3)
    assert iv.lo == pytest.approx(0.446, abs=1e-3) and iv.hi == pytest.approx(4.554, abs=1e-3)
    assert judge(iv) == PASS
    # mirrored: below zero
    assert judge(mean_interval([-1.0, -2.0, -3.0, -4.0])) == FAIL
    # 0.2, -0.1, 0.5: mean 0.2, s = 0.3, t_{0.975,2} = 4.303:
    # 0.2 -/+ 4.303 * 0.3 / sqrt(3) = 0.2 -/+ 0.745
    iv = mean_interval([0.2, -0.1, 0.5])
    assert iv.lo == pytest.approx(-0.545, abs=1e-3) and iv.hi == pytest.approx(0.945, abs=1e-3)
    assert judge(iv) == INCONCLUSIVE


def test_one_value_and_no_spread():
    iv = mean_interval([0.3])
    assert iv.n == 1 and math.isnan(iv.lo) and judge(iv) == INCONCLUSIVE
    iv = mean_interval([0.1, 0.1, 0.1])   # no spread: the interval is the point
    assert iv.lo == pytest.approx(0.1) and iv.hi == pytest.approx(0.1) and judge(iv) == PASS
    assert judge(mean_interval([0.0, 0.0])) == INCONCLUSIVE
    assert judge(None) == INCONCLUSIVE
    with pytest.raises(ValueError):
        mean_interval([])


def test_seeds_needed_by_hand():
    # mean 0.1, s = 0.2: smallest n with t_{n-1} * 0.2 / sqrt(n) < 0.1.
    # n = 18: 2.110 * 0.2 / 4.243 = 0.0995 < 0.1; n = 17: 2.120 * 0.2 / 4.123 = 0.1028
    assert seeds_needed(0.1, 0.2) == 18
    assert seeds_needed(-0.1, 0.2) == 18          # the sign does not matter
    # (t s / mean)^2 rounded up, with t at the answer's degrees of freedom
    n = seeds_needed(0.02, 0.03)
    assert n == 12
    assert math.ceil((t_critical(n) * 0.03 / 0.02) ** 2) in (n - 1, n)
    assert seeds_needed(0.0, 0.2) is None         # no number of seeds separates 0 from 0
    assert seeds_needed(0.05, 0.0) == 2
    # the definition: n seeds would exclude zero, n - 1 would not
    for mean, sd in ((0.02, 0.03), (0.1, 0.2), (0.5, 0.1), (0.01, 0.05)):
        n = seeds_needed(mean, sd)
        assert t_critical(n) * sd / math.sqrt(n) < mean, (mean, sd, n)
        assert n == 2 or t_critical(n - 1) * sd / math.sqrt(n - 1) >= mean, (mean, sd, n)


def test_paired_by_seed():
    a = {2: 0.50, 0: 0.40, 1: 0.45, 7: 0.9}
    b = {0: 0.30, 1: 0.36, 2: 0.41, 3: 0.2}
    r = paired(a, b)
    assert r.seeds == (0, 1, 2) and r.left_out == (3, 7)
    np.testing.assert_allclose(r.diffs, [0.10, 0.09, 0.09])
    assert r.status == PASS and r.interval.n == 3
    # NaN in one arm drops that seed only
    r = paired({0: 1.0, 1: float("nan"), 2: 2.0}, {0: 0.0, 1: 0.0, 2: 3.0})
    assert r.seeds == (0, 2) and r.left_out == (1,) and r.status == INCONCLUSIVE
    # an INCONCLUSIVE pair says how many seeds would settle it
    r = paired({0: 0.2, 1: -0.1, 2: 0.5}, {0: 0.0, 1: 0.0, 2: 0.0})
    assert r.seeds_needed() == seeds_needed(0.2, 0.3) == 12
    r = paired({0: 1.0}, {1: 1.0})
    assert r.status == NOT_AVAILABLE and r.reason == "no seed in common" and r.interval is None
