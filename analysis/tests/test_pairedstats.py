"""The statistics behind the verdicts, against cases worked by hand:
intervals, the four verdicts, pairing by seed, Holm's correction, Stein's
two-stage size and interval."""
import math

import numpy as np
import pytest

from pairedstats import (FAIL, INCONCLUSIVE, NO_EFFECT, NOT_AVAILABLE, PASS, TwoStage, holm,
                         mean_interval, paired, seeds_to_decide, stein_total,
                         stein_total_to_decide, t_critical,
                         p_values, verdict)

# printed tables of Student's t: t_{0.975, df} and t_{0.95, df}
T975 = {3: 3.182, 4: 2.776, 7: 2.365, 10: 2.228, 30: 2.042}
T95 = {3: 2.353, 7: 1.895}


def test_t_quantiles_match_the_printed_table():
    for df, table in T975.items():
        assert t_critical(df + 1) == pytest.approx(table, abs=5e-4), df
    for df, table in T95.items():
        assert t_critical(df + 1, confidence=0.90) == pytest.approx(table, abs=5e-4), df


def test_interval_by_hand():
    # 1, 2, 3, 4: mean 2.5, s = sqrt(5/3) = 1.2910, s/sqrt(4) = 0.6455,
    # t_{0.975,3} = 3.182: 2.5 -/+ 2.054 = [0.446, 4.554]
    iv = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert (iv.mean, iv.n) == (2.5, 4)
    assert iv.sd == pytest.approx(1.2910, abs=1e-4)
    assert iv.t == pytest.approx(3.182, abs=1e-3)
    assert iv.lo == pytest.approx(0.446, abs=1e-3) and iv.hi == pytest.approx(4.554, abs=1e-3)
    iv = mean_interval([0.3])
    assert iv.n == 1 and math.isnan(iv.lo) and math.isnan(iv.sd)
    with pytest.raises(ValueError):
        mean_interval([])


def arms(diffs):
    """{seed: value} maps whose paired differences are `diffs` (arm b holds
    values that differ from seed to seed, so only pairing gives diffs)."""
    b = {s: 0.3 + 0.05 * s for s in range(len(diffs))}
    return {s: b[s] + d for s, d in enumerate(diffs)}, b


# Each verdict from a known pair of samples (delta = 0.02), worked by hand:
#   d       mean    s        s/sqrt(4)  95%: t=3.182          90%: t=2.353
#   PASS    0.100   0.01633  0.008165   [+0.074, +0.126]
#   FAIL   -0.100   0.01633  0.008165   [-0.126, -0.074]
#   NO EFF  0.000   0.009129 0.004564   [-0.0145, +0.0145]    [-0.0107, +0.0107] inside ±0.02
#   INCON   0.010   0.01826  0.009129   [-0.0190, +0.0390]    [-0.0115, +0.0315] not inside
HAND = [
    ([0.10, 0.12, 0.08, 0.10], PASS, (0.074, 0.126), None),
    ([-0.10, -0.12, -0.08, -0.10], FAIL, (-0.126, -0.074), None),
    ([0.01, -0.01, 0.005, -0.005], NO_EFFECT, (-0.0145, 0.0145), (-0.0107, 0.0107)),
    ([0.03, -0.01, 0.02, 0.0], INCONCLUSIVE, (-0.0190, 0.0390), (-0.0115, 0.0315)),
]


@pytest.mark.parametrize("diffs, want, ci95, ci90", HAND)
def test_four_verdicts_by_hand(diffs, want, ci95, ci90):
    a, b = arms(diffs)
    r = paired(a, b, delta=0.02)
    assert r.status == want
    assert r.interval.lo == pytest.approx(ci95[0], abs=2e-4)
    assert r.interval.hi == pytest.approx(ci95[1], abs=2e-4)
    if ci90:
        assert r.interval90.lo == pytest.approx(ci90[0], abs=2e-4)
        assert r.interval90.hi == pytest.approx(ci90[1], abs=2e-4)
    # the tests agree with the intervals: p_diff < 0.05 iff the 95% interval
    # excludes 0; p_equiv < 0.05 iff the 90% interval lies inside ±delta
    assert (r.p_diff < 0.05) == (r.interval.lo > 0 or r.interval.hi < 0)
    assert (r.p_equiv < 0.05) == (-0.02 < r.interval90.lo and r.interval90.hi < 0.02)


def test_equivalence_p_value_by_hand():
    # NO EFFECT case: the binding one-sided test is t = (0.02 - 0) / 0.004564
    # = 4.382 with 3 df; P(T_3 > 4.382) = 0.0110 (tables: t_{0.99,3} = 4.541,
    # t_{0.98,3} = 3.482, so 0.01 < p < 0.02)
    p_diff, p_equiv = p_values([0.01, -0.01, 0.005, -0.005], 0.02)
    assert p_diff == pytest.approx(1.0)
    assert 0.01 < p_equiv < 0.02 and p_equiv == pytest.approx(0.0110, abs=3e-4)
    # a wider margin makes it easier, a narrower one harder
    assert p_values([0.01, -0.01, 0.005, -0.005], 0.01)[1] > 0.05
    # finding 5 at depth 4 in the README: mean -0.002, 95% CI [-0.014, +0.010]
    # at 8 seeds: s/sqrt(8) = 0.012 / 2.365 = 0.00507; 90%: -0.002 -/+ 1.895 *
    # 0.00507 = [-0.0116, +0.0076], inside ±0.02: NO EFFECT
    se = 0.012 / 2.365
    assert verdict(-0.002, *_from_summary(-0.002, se, 8, 0.02)) == NO_EFFECT
    assert verdict(-0.002, *_from_summary(-0.002, se, 8, 0.01)) == INCONCLUSIVE


def _from_summary(mean, se, n, delta):
    """p-values of a mean with standard error se over n seeds, through the
    two-stage path (same formulas, sd = se sqrt(n), df = n - 1)."""
    from pairedstats import _tests
    return _tests(mean, se * math.sqrt(n), n, n - 1, delta)


def test_significant_and_inside_the_margin_is_pass():
    # a small effect measured precisely: both tests reject; the direction wins
    r = paired(*arms([0.005, 0.006, 0.004, 0.005]), delta=0.02)
    assert r.p_diff < 0.05 and r.p_equiv < 0.05 and r.status == PASS


def test_one_value_and_no_spread():
    r = paired({0: 0.3}, {0: 0.1})
    assert r.status == INCONCLUSIVE and math.isnan(r.interval.lo) and math.isnan(r.p_diff)
    r = paired(*arms([0.1, 0.1, 0.1]))        # no spread: the interval is the point
    assert r.interval.lo == pytest.approx(0.1) and r.status == PASS
    assert paired(*arms([0.0, 0.0])).status == NO_EFFECT     # exactly no difference
    assert paired(*arms([0.05, 0.05]), delta=0.02).status == PASS


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
    r = paired({0: 1.0}, {1: 1.0})
    assert r.status == NOT_AVAILABLE and r.reason == "no seed in common" and r.interval is None


def test_seeds_to_decide():
    # mean 0.1, s = 0.2: smallest n with t_{n-1} * 0.2 / sqrt(n) < 0.1 is 18
    # (n = 18: 2.110 * 0.2 / 4.243 = 0.0995; n = 17: 2.120 * 0.2 / 4.123 = 0.1028)
    assert seeds_to_decide(0.1, 0.2, delta=0.02) == 18
    assert seeds_to_decide(-0.1, 0.2, delta=0.02) == 18
    # mean 0, s = 0.03, delta 0.02: NO EFFECT once t'_{n-1} 0.03 / sqrt(n) < 0.02
    # (90%): n = 9: 1.860 * 0.01 = 0.0186 < 0.02; n = 8: 1.895 * 0.0106 = 0.0201
    assert seeds_to_decide(0.0, 0.03, delta=0.02) == 9
    # the mean sits on the margin: only a zero-excluding interval decides
    n = seeds_to_decide(0.02, 0.03, delta=0.02)
    assert t_critical(n) * 0.03 / math.sqrt(n) < 0.02 <= t_critical(n - 1) * 0.03 / math.sqrt(n - 1)


def test_holm_by_hand():
    # p = 0.01, 0.04, 0.03, 0.005: sorted 0.005 x 4 = 0.02, 0.01 x 3 = 0.03,
    # 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> running maximum 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    got = holm([0.01, float("nan"), 0.2])
    assert math.isnan(got[1]) and got[0] == pytest.approx(0.02) and got[2] == pytest.approx(0.2)


def test_stein_second_stage_size_by_hand():
    # n0 = 8 seeds, s = 0.03, final 95% interval at most delta = 0.02 wide
    # (half-width h = 0.01): t_{0.975,7} = 2.3646, (2.3646 * 0.03 / 0.01)^2 =
    # 7.094^2 = 50.32 -> n = 51 seeds in all, 43 in the second stage
    assert stein_total(8, 0.03, 0.01) == 51
    # n0 = 4, s = 0.0125: (3.1824 * 1.25)^2 = 3.978^2 = 15.82 -> 16
    assert stein_total(4, 0.0125, 0.01) == 16
    # already narrow enough: no second stage
    assert stein_total(8, 0.005, 0.01) == 8
    with pytest.raises(ValueError):
        stein_total(1, 0.03, 0.01)


def test_stein_size_that_forces_a_verdict_by_hand():
    # n0 = 8, s = 0.03, delta = 0.02, tests at 5%: t_{0.975,7} + t_{0.95,7} =
    # 2.3646 + 1.8946 = 4.2592; (4.2592 * 0.03 / 0.02)^2 = 6.3888^2 = 40.82 -> 41
    assert stein_total_to_decide(8, 0.03, 0.02) == 41
    # at Holm-like levels 0.005 and 0.0025: t_{0.9975,7} = 4.0293, t_{0.9975,7}
    # again: (8.0586 * 1.5)^2 = 146.1 -> 147
    assert stein_total_to_decide(8, 0.03, 0.02, 0.005, 0.0025) == 147
    # whatever the mean, n seeds decide: at the worst mean (on the
    # no-difference threshold) the equivalence interval still fits in ±delta
    n, s0 = 41, 0.03
    se = s0 / math.sqrt(n)
    t_d, t_e = 2.3646, 1.8946
    assert t_d * se + t_e * se <= 0.02


def test_two_stage_interval_by_hand():
    # the n0 = 4 plan above: 16 seeds in all; the interval uses the first
    # stage's s = 0.0125 and t_{0.975,3} = 3.1824: half-width 3.1824 *
    # 0.0125 / 4 = 0.00995 <= 0.01, whatever the 16 values' own spread
    rng = np.random.default_rng(7)
    diffs = 0.004 + 0.02 * rng.standard_normal(16)      # the second stage scatters more
    plan = TwoStage(stage_one=(0, 1, 2, 3), sd=0.0125, delta=0.02, alpha_diff=0.05,
                    alpha_equiv=0.05, total=16)
    a, b = arms(list(diffs))
    r = paired(a, b, delta=0.02, plan=plan)
    assert r.interval.n == 16 and r.interval.sd == 0.0125
    assert r.interval.half_width == pytest.approx(3.1824 * 0.0125 / 4, abs=1e-5)
    assert r.interval.mean == pytest.approx(diffs.mean())
    assert r.interval90.half_width == pytest.approx(2.3534 * 0.0125 / 4, abs=1e-5)
    # a width below delta decides: PASS, FAIL or NO EFFECT, never INCONCLUSIVE
    assert r.status in (PASS, FAIL, NO_EFFECT)


def test_two_stage_interval_has_its_coverage():
    # Monte Carlo: first stage of 5 from N(mu, 1), total from Stein's rule
    # for h = 0.5, interval with the first stage's s. Coverage 0.95 exactly;
    # 4000 repetitions put the estimate within ±0.011 (3 standard errors)
    rng = np.random.default_rng(20)
    mu, hits, reps = 0.3, 0, 4000
    t = t_critical(5)
    for _ in range(reps):
        first = mu + rng.standard_normal(5)
        s0 = first.std(ddof=1)
        n = stein_total(5, s0, 0.5)
        values = np.concatenate([first, mu + rng.standard_normal(n - 5)])
        hits += abs(values.mean() - mu) <= t * s0 / math.sqrt(n)
    assert abs(hits / reps - 0.95) < 0.011, hits / reps
