"""Paired comparisons across seeds: the mean difference with its Student-t
intervals, the tests behind the four verdicts, Holm's correction across a
family of comparisons, and Stein's two-stage seed planning.

    d = paired(a, b, delta=0.02)   # a, b: {seed: value}; d.diffs = a - b per common seed
    d.interval                     # Interval (95%): mean, sd, n, t, lo, hi
    d.interval90                   # the 90% interval of the equivalence test
    d.p_diff, d.p_equiv            # two-sided t test of 0; two one-sided tests of |mean| >= delta
    d.status                       # PASS | FAIL | NO EFFECT | INCONCLUSIVE | N/A (uncorrected)
    holm([p, ...])                 # Holm-adjusted p-values (statsmodels)
    stein_total(n0, sd, h)         # seeds in all so that the final interval's half-width is <= h
    stein_total_to_decide(n0, sd, delta, a_diff, a_equiv)   # seeds in all that force a verdict
    paired(a, b, plan=TwoStage(...))   # the two-stage interval of a planned comparison

Orientation: a comparison is set up so that the paper's claim predicts a
positive difference. PASS: the 95% interval lies above zero; FAIL: below
zero; NO EFFECT: the 90% interval lies inside (-delta, +delta) (two one-sided
tests at 5%, Schuirmann's TOST): an effect as large as delta either way is
ruled out; INCONCLUSIVE: none of these (or one seed, so no interval). A
comparison that is both significant and inside the margin is PASS or FAIL.

The t quantiles and tests are scipy.stats's and statsmodels' (Debian's
python3-scipy and python3-statsmodels).
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE
DELTA = 0.02        # default equivalence margin, in error units (1 - cos)
PASS, FAIL, NO_EFFECT, INCONCLUSIVE, NOT_AVAILABLE = (
    "PASS", "FAIL", "NO EFFECT", "INCONCLUSIVE", "N/A")
MAX_SEEDS_ESTIMATE = 100_000   # "would settle it" estimates stop here


def t_critical(n, confidence=CONFIDENCE, df=None):
    """Two-sided critical value of a mean over n values: the (1 + confidence)/2
    quantile of Student's t with df degrees of freedom (default n - 1)."""
    return float(stats.t.ppf(0.5 + confidence / 2.0, n - 1 if df is None else df))


@dataclass
class Interval:
    """Mean of n values with its two-sided Student-t confidence interval;
    lo, hi and t are NaN for one value (no spread to go by). For a two-stage
    interval sd is the first stage's and df = n0 - 1."""
    mean: float
    sd: float          # sample standard deviation (ddof 1); NaN for n = 1
    n: int
    t: float           # critical value t_{(1+confidence)/2, df}
    lo: float
    hi: float
    confidence: float = CONFIDENCE

    @property
    def half_width(self):
        return self.hi - self.mean


def _interval(mean, sd, n, df, confidence):
    if n < 2 or df < 1:
        nan = float("nan")
        return Interval(mean, nan if n < 2 else sd, n, nan, nan, nan, confidence)
    t = t_critical(n, confidence, df)
    half = t * sd / math.sqrt(n)
    return Interval(mean, sd, n, t, mean - half, mean + half, confidence)


def mean_interval(values, confidence=CONFIDENCE):
    """Interval of the mean of `values` (at least one finite value)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError("mean_interval needs a non-empty 1-d sequence")
    n, mean = len(v), float(v.mean())
    sd = float(v.std(ddof=1)) if n > 1 else float("nan")
    return _interval(mean, sd, n, n - 1, confidence)


def verdict(mean, p_diff, p_equiv, alpha=ALPHA):
    """The verdict of p-values at level alpha: PASS or FAIL (by the sign of
    the mean) when the two-sided test rejects a zero difference, else NO
    EFFECT when the equivalence test rejects |difference| >= delta, else
    INCONCLUSIVE. NaN p-values (no interval) reject nothing."""
    if p_diff < alpha:
        return PASS if mean > 0 else FAIL
    if p_equiv < alpha:
        return NO_EFFECT
    return INCONCLUSIVE


def _tests(mean, sd, n, df, delta):
    """(p_diff, p_equiv) of a mean whose standard error is sd / sqrt(n) with
    df degrees of freedom, from scipy's t distribution (the two-stage case;
    the one-stage case goes through scipy's and statsmodels' own tests)."""
    if n < 2 or not np.isfinite(sd):
        return float("nan"), float("nan")
    if sd == 0.0:
        return (0.0 if mean != 0 else 1.0), (0.0 if abs(mean) < delta else 1.0)
    se = sd / math.sqrt(n)
    p_diff = float(2.0 * stats.t.sf(abs(mean) / se, df))
    p_equiv = float(max(stats.t.sf((mean + delta) / se, df),     # H0: mean <= -delta
                        stats.t.cdf((mean - delta) / se, df)))   # H0: mean >= +delta
    return p_diff, p_equiv


def p_values(diffs, delta):
    """(p_diff, p_equiv) of the paired differences: scipy's one-sample t
    test of a zero mean (two-sided) and statsmodels' paired two one-sided
    tests of |mean| >= delta. Zero spread: exact 0 or 1."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        return float("nan"), float("nan")
    sd = float(d.std(ddof=1))
    if sd <= 1e-12 * float(np.max(np.abs(d))):   # equal up to rounding: no spread
        return _tests(float(d.mean()), 0.0, n, n - 1, delta)
    p_diff = float(stats.ttest_1samp(d, 0.0).pvalue)
    p_equiv = float(ttost_paired(d, np.zeros(n), -delta, delta)[0])
    return p_diff, p_equiv


def holm(pvalues, alpha=ALPHA):
    """Holm-adjusted p-values (statsmodels' multipletests, method "holm"):
    rejecting where adjusted < alpha keeps the chance of any false rejection
    in the family at most alpha. NaN entries (no test) stay NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=alpha, method="holm")[1]
    return out


def seeds_to_decide(mean, sd, delta=DELTA, confidence=CONFIDENCE, cap=MAX_SEEDS_ESTIMATE):
    """Smallest n >= 2 whose intervals, at this mean and spread, would give a
    verdict: the 95% interval excluding zero (t_{n-1} sd / sqrt(n) < |mean|)
    or the 90% interval inside (-delta, delta) (t'_{n-1} sd / sqrt(n) <
    delta - |mean|). An estimate if the mean and spread held, not a plan
    (stein_total_to_decide is the plan); None when neither can happen below cap."""
    mean, sd = abs(float(mean)), float(sd)
    if not math.isfinite(mean) or not math.isfinite(sd):
        return None
    if sd == 0.0:
        return 2 if (mean > 0 or mean < delta) else None
    z = stats.norm.ppf(0.5 + confidence / 2.0)     # t > z: bounds from below
    z_eq = stats.norm.ppf(0.5 + (1.0 - 2.0 * (1.0 - confidence)) / 2.0)
    guesses = [((z * sd / mean) ** 2) if mean > 0 else math.inf,
               ((z_eq * sd / (delta - mean)) ** 2) if mean < delta else math.inf]
    n = max(2, math.ceil(min(guesses)))
    if n >= cap:
        return None
    while n < cap:                                   # t > z: the answer is at or above n
        ns = np.arange(n, min(cap, 10 * n + 100))
        t_diff = stats.t.ppf(0.5 + confidence / 2.0, ns - 1)
        t_eq = stats.t.ppf(1.0 - (1.0 - confidence), ns - 1)
        ok = (t_diff * sd / np.sqrt(ns) < mean) | (t_eq * sd / np.sqrt(ns) < delta - mean)
        if ok.any():
            return int(ns[np.argmax(ok)])
        n = int(ns[-1]) + 1
    return None


def stein_total(n0, sd, half_width, confidence=CONFIDENCE):
    """Stein's two-stage procedure: with n0 first-stage values of sample
    standard deviation sd, the total number of values n = max(n0,
    ceil((t_{(1+confidence)/2, n0-1} sd / half_width)^2)) makes the final
    interval mean_n +- t_{n0-1} sd / sqrt(n) at most half_width wide on each
    side, and it covers the true mean with exactly this confidence (the
    mean of all n values is independent of sd, which alone fixes n)."""
    if n0 < 2:
        raise ValueError(f"a first stage needs at least 2 values, not {n0}")
    if not half_width > 0:
        raise ValueError(f"the half-width must be > 0, not {half_width}")
    t = t_critical(n0, confidence)
    return max(int(n0), math.ceil((t * float(sd) / half_width) ** 2))


def stein_total_to_decide(n0, sd, delta, alpha_diff=ALPHA, alpha_equiv=ALPHA):
    """Stein's total for a verdict rather than a width: the n (>= n0) whose
    final two-stage tests, with the first stage's sd and n0 - 1 degrees of
    freedom, must decide at levels alpha_diff (two-sided, no difference) and
    alpha_equiv (two one-sided, margin delta): either |mean| exceeds
    t_{1-alpha_diff/2} sd/sqrt(n), or it does not and then |mean| +
    t_{1-alpha_equiv} sd/sqrt(n) < delta. Both hold when (t_{1-alpha_diff/2}
    + t_{1-alpha_equiv}) sd/sqrt(n) <= delta:
    n = max(n0, ceil(((t_{1-alpha_diff/2} + t_{1-alpha_equiv}) sd / delta)^2))."""
    if n0 < 2:
        raise ValueError(f"a first stage needs at least 2 values, not {n0}")
    if not delta > 0:
        raise ValueError(f"the margin must be > 0, not {delta}")
    t = _stein_t(n0, alpha_diff, alpha_equiv)
    return max(int(n0), math.ceil((t * float(sd) / delta) ** 2))


def _stein_t(n0, alpha_diff, alpha_equiv):
    """t_{1-alpha_diff/2} + t_{1-alpha_equiv}, t with n0 - 1 degrees of freedom."""
    return (float(stats.t.ppf(1.0 - alpha_diff / 2.0, n0 - 1))
            + float(stats.t.ppf(1.0 - alpha_equiv, n0 - 1)))


def stein_margin_settled_by(n0, sd, n, alpha_diff=ALPHA, alpha_equiv=ALPHA):
    """The smallest margin delta that a total of n seeds settles in
    stein_total_to_decide's sense: (t_{1-alpha_diff/2} + t_{1-alpha_equiv})
    sd / sqrt(n), t with n0 - 1 degrees of freedom. It depends on the first
    stage's sd alone, not on its mean, so a margin chosen this way (from a
    budget) keeps the two-stage interval's exact coverage."""
    if n0 < 2 or n < n0:
        raise ValueError(f"need n >= n0 >= 2, not n0 = {n0}, n = {n}")
    return _stein_t(n0, alpha_diff, alpha_equiv) * float(sd) / math.sqrt(n)


@dataclass(frozen=True)
class TwoStage:
    """A comparison planned in two stages: its first stage's seeds and sample
    standard deviation, the margin and the test levels planned for, and the
    total number of seeds the plan asked for."""
    stage_one: tuple   # seeds of the first stage
    sd: float          # sample sd of the first stage's differences
    delta: float
    alpha_diff: float  # level the test of no difference was planned to decide at
    alpha_equiv: float  # level the equivalence test was planned to decide at
    total: int         # n: seeds the plan asked for in all

    @property
    def n0(self):
        return len(self.stage_one)


@dataclass
class Paired:
    """a - b over the seeds both have (NaN values left out)."""
    seeds: tuple
    diffs: np.ndarray
    interval: object          # Interval (95%), or None when no seed is shared
    status: str               # PASS | FAIL | NO EFFECT | INCONCLUSIVE | N/A, uncorrected
    reason: str = ""          # why N/A
    left_out: tuple = ()      # seeds in either arm but not usable in both
    delta: float = DELTA
    interval90: object = None  # the 90% interval of the equivalence test
    p_diff: float = float("nan")
    p_equiv: float = float("nan")
    plan: object = None       # TwoStage when the comparison was planned in two stages

    @property
    def n(self):
        return len(self.seeds)

    def seeds_to_decide(self):
        """Seeds that would decide an INCONCLUSIVE comparison at the observed
        mean and spread (None if not estimable)."""
        iv = self.interval
        if iv is None or iv.n < 2:
            return None
        return seeds_to_decide(iv.mean, iv.sd, self.delta, iv.confidence)


def paired(a, b, confidence=CONFIDENCE, delta=DELTA, plan=None):
    """Pairs {seed: value} maps by seed and judges a - b (the paper's
    direction positive) with equivalence margin delta. With plan (a
    TwoStage), the interval and tests are Stein's: the mean over every
    common seed, the first stage's sd, n0 - 1 degrees of freedom."""
    both = sorted(s for s in set(a) & set(b)
                  if np.isfinite(a[s]) and np.isfinite(b[s]))
    left_out = tuple(sorted((set(a) | set(b)) - set(both)))
    if not both:
        why = ("no seed in common" if not set(a) & set(b)
               else "no seed with a finite value in both")
        return Paired((), np.array([]), None, NOT_AVAILABLE, why, left_out, delta)
    diffs = np.array([float(a[s]) - float(b[s]) for s in both])
    n, mean = len(diffs), float(diffs.mean())
    if plan is None:
        iv = mean_interval(diffs, confidence)
        iv90 = mean_interval(diffs, 1.0 - 2.0 * (1.0 - confidence))
        p_diff, p_equiv = p_values(diffs, delta)
    else:
        df = plan.n0 - 1
        iv = _interval(mean, plan.sd, n, df, confidence)
        iv90 = _interval(mean, plan.sd, n, df, 1.0 - 2.0 * (1.0 - confidence))
        p_diff, p_equiv = _tests(mean, plan.sd, n, df, delta)
    status = verdict(mean, p_diff, p_equiv, 1.0 - confidence)
    return Paired(tuple(both), diffs, iv, status, "", left_out, delta, iv90, p_diff, p_equiv,
                  plan)
