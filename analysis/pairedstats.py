"""Paired comparisons across seeds: the mean difference with a Student-t
confidence interval, and the verdict it supports.

    d = paired(a, b)          # a, b: {seed: value}; d.diffs = a - b per common seed
    d.interval                # Interval: mean, sd, n, t, lo, hi (95%)
    d.status                  # PASS | FAIL | INCONCLUSIVE | N/A
    seeds_needed(mean, sd)    # seeds whose interval would exclude zero

Orientation: a comparison is set up so that the paper's claim predicts a
positive difference. PASS: the interval lies above zero; FAIL: below zero;
INCONCLUSIVE: it contains zero (or there is one seed, so no interval).

The t quantile is computed here (regularized incomplete beta by its
continued fraction, inverted by bisection) so that the analysis needs only
numpy; with scipy installed the tests check it against scipy.stats.t.
"""
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

CONFIDENCE = 0.95
PASS, FAIL, INCONCLUSIVE, NOT_AVAILABLE = "PASS", "FAIL", "INCONCLUSIVE", "N/A"
MAX_SEEDS_ESTIMATE = 100_000   # beyond this many seeds, the normal approximation


def _beta_continued_fraction(a, b, x):
    """Lentz's evaluation of the continued fraction of I_x(a, b)
    (Numerical Recipes, betacf); converges fast for x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def betainc(a, b, x):
    """Regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc needs a, b > 0, not a={a}, b={b}")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with df > 0 degrees of freedom."""
    if df <= 0:
        raise ValueError(f"t distribution needs df > 0, not {df}")
    if t == 0:
        return 0.5
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))   # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_quantile(q, df):
    """The t with P(T <= t) = q, Student's t with df > 0 degrees of freedom;
    bisection on t_cdf to a relative 1e-12."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile needs 0 < q < 1, not {q}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    while hi - lo > 1e-12 * hi:
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def t_critical(n, confidence=CONFIDENCE):
    """Two-sided critical value of a mean over n values (df = n - 1)."""
    return t_quantile(0.5 + confidence / 2.0, n - 1)


@dataclass
class Interval:
    """Mean of n values with its two-sided Student-t confidence interval;
    lo, hi and t are NaN for one value (no spread to go by)."""
    mean: float
    sd: float          # sample standard deviation (ddof 1); NaN for n = 1
    n: int
    t: float           # critical value t_{(1+confidence)/2, n-1}
    lo: float
    hi: float
    confidence: float = CONFIDENCE

    @property
    def half_width(self):
        return self.hi - self.mean


def mean_interval(values, confidence=CONFIDENCE):
    """Interval of the mean of `values` (at least one finite value)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError("mean_interval needs a non-empty 1-d sequence")
    n, mean = len(v), float(v.mean())
    if n == 1:
        nan = float("nan")
        return Interval(mean, nan, 1, nan, nan, nan, confidence)
    sd = float(v.std(ddof=1))
    t = t_critical(n, confidence)
    half = t * sd / math.sqrt(n)
    return Interval(mean, sd, n, t, mean - half, mean + half, confidence)


def judge(interval):
    """PASS if the interval lies above zero (the predicted direction), FAIL
    if below, INCONCLUSIVE if it contains zero or there is no interval."""
    if interval is None or interval.n < 2:
        return INCONCLUSIVE
    if interval.lo > 0:
        return PASS
    if interval.hi < 0:
        return FAIL
    return INCONCLUSIVE


def seeds_needed(mean, sd, confidence=CONFIDENCE, cap=MAX_SEEDS_ESTIMATE):
    """Smallest n >= 2 whose interval, at this mean and spread, would exclude
    zero: t_{n-1} * sd / sqrt(n) < |mean|, i.e. n > (t sd / mean)^2 with t
    taken at n - 1 degrees of freedom. None when mean is 0 (no n does).
    Above `cap` seeds the normal approximation (z for t) is returned."""
    mean, sd = abs(float(mean)), float(sd)
    if not math.isfinite(mean) or not math.isfinite(sd) or mean == 0.0:
        return None
    if sd == 0.0:
        return 2
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)   # bounds t from below
    n = max(2, math.ceil((z * sd / mean) ** 2))
    while n < cap and t_critical(n, confidence) * sd / math.sqrt(n) >= mean:
        n += 1
    return n


@dataclass
class Paired:
    """a - b over the seeds both have (NaN values left out)."""
    seeds: tuple
    diffs: np.ndarray
    interval: object          # Interval, or None when no seed is shared
    status: str               # PASS | FAIL | INCONCLUSIVE | N/A
    reason: str = ""          # why N/A
    left_out: tuple = ()      # seeds in either arm but not usable in both

    @property
    def n(self):
        return len(self.seeds)

    def seeds_needed(self):
        """Seeds that would settle an INCONCLUSIVE comparison at the
        observed mean and spread (None if not estimable)."""
        iv = self.interval
        if iv is None or iv.n < 2:
            return None
        return seeds_needed(iv.mean, iv.sd, iv.confidence)


def paired(a, b, confidence=CONFIDENCE):
    """Pairs {seed: value} maps by seed and judges a - b (the paper's
    direction positive)."""
    both = sorted(s for s in set(a) & set(b)
                  if np.isfinite(a[s]) and np.isfinite(b[s]))
    left_out = tuple(sorted((set(a) | set(b)) - set(both)))
    if not both:
        why = ("no seed in common" if not set(a) & set(b)
               else "no seed with a finite value in both")
        return Paired((), np.array([]), None, NOT_AVAILABLE, why, left_out)
    diffs = np.array([float(a[s]) - float(b[s]) for s in both])
    iv = mean_interval(diffs, confidence)
    return Paired(tuple(both), diffs, iv, judge(iv), "", left_out)
