#!/usr/bin/env python3
"""Write DIR/report.md for an icasweep result file: what the file holds,
the figures, and the paper's six findings judged with statistics
(docs/science.md, "How the report judges a finding"); or, with
--plan-seeds, the grown grid of a second stage that settles the undecided
comparisons (seedplan.py).

usage: report.py RESULTS.h5 --out DIR [--band minmax|std] [--require 1,2,3]
                 [--delta 0.02] [--delta 5=0.03 ...]
       report.py RESULTS.h5 --plan-seeds GRID_OUT.yaml [--budget CORE_HOURS] [--gflops G]
                 [--icasweep BINARY] [--out DIR]

Each finding is PASS, FAIL, NO EFFECT, INCONCLUSIVE or NOT IN GRID (the file
has no runs that test it), with the comparisons behind it. The checklist is
also printed. Exit status 0, or 1 when a finding named by --require is not
PASS (2: unreadable file or a plan that cannot be written).

How a finding is judged (JUDGING and CRITERIA below, repeated in the
report): every comparison is paired by seed and set up so that the paper
predicts a positive difference. PASS: its 95% Student-t interval lies above
zero; FAIL: below zero; NO EFFECT: its 90% interval lies inside (-delta,
+delta) (two one-sided tests); INCONCLUSIVE: neither. A finding has *level*
comparisons (the paper's: errors at p = 0) and *mechanism* comparisons
(reward use and the reference strategies), together its primary
comparisons, whose verdicts use Holm's correction across every finding; and
*guards* (comparisons that can only contradict it), judged uncorrected. It
is FAIL if any comparison fails, PASS if none fails and every available
level or every available mechanism comparison passes, NO EFFECT if every
available primary comparison is NO EFFECT, INCONCLUSIVE otherwise.
"""
import argparse
import os
import sys
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from figures import BANDS, draw_all  # noqa: E402
from icaresults import (FACTORS, FIRST_EXAMPLES, LAST_EXAMPLES, ablation, describe,  # noqa: E402
                        label, load, positions, reference_group, reference_noise, spread)
from pairedstats import (ALPHA, CONFIDENCE, DELTA, FAIL, INCONCLUSIVE, NO_EFFECT,  # noqa: E402
                         NOT_AVAILABLE, PASS, holm, paired, verdict)
from seedplan import plans_in_grid  # noqa: E402
from selfcorrect import report_section as selfcorrect_section  # noqa: E402

NOT_IN_GRID = "NOT IN GRID"
LEVEL, MECHANISM, GUARD = "level", "mechanism", "guard"
MIN_CORR = 0.8   # correlation of the TF and GD mean curves called "tracks" (reported, not judged)

JUDGING = (
    f"Every comparison pairs runs by seed: runs with the same seed saw the same evaluation "
    f"contexts, and an ablation's arms differ only in its factor (E may move with H). It is "
    f"written as a difference A − B that the paper predicts to be positive, and judged on "
    f"the mean difference over the seeds with Student-t intervals (t with n − 1 degrees of "
    f"freedom): **PASS** when the {CONFIDENCE:.0%} interval lies above zero (two-sided t test "
    f"of no difference at {ALPHA:.0%}), **FAIL** when it lies below zero, **NO EFFECT** when "
    f"the {1 - 2 * ALPHA:.0%} interval lies inside (−δ, +δ) (two one-sided tests at "
    f"{ALPHA:.0%}: a difference as large as the margin δ either way is ruled out; a "
    f"difference both significant and inside the margin is PASS or FAIL), **INCONCLUSIVE** "
    f"otherwise (then \"about n seeds\" is the smallest n whose intervals would give a "
    f"verdict if the mean and standard deviation of the differences held; `--plan-seeds` "
    f"plans a second stage that settles it). One seed gives no interval: INCONCLUSIVE. "
    f"N/A: the file cannot give that comparison (the reason is stated). The margin δ is "
    f"{DELTA:g} in error units (1 − cos) unless `--delta` says otherwise, for all findings "
    f"or one (`--delta 5=0.03`); every line prints the δ it used.\n\n"
    f"Many comparisons: each finding's *level* and *mechanism* comparisons are its primary "
    f"comparisons, and the primary comparisons of all findings are one family. Their tests "
    f"of no difference are adjusted with Holm's step-down correction at {ALPHA / 2:.1%}, "
    f"and so are their equivalence tests (a difference of at least δ), so that the chance "
    f"of any false PASS, FAIL or NO EFFECT among them is at most {ALPHA:.0%}; their "
    f"verdicts use the adjusted p-values (printed as \"Holm\", doubled so that they "
    f"compare with {ALPHA:g}). The "
    f"intervals printed are the uncorrected ones; a line whose uncorrected verdict differs "
    f"says so. *Guards* are judged uncorrected: a guard can only contradict a finding, so "
    f"judging it at the uncorrected level makes a false PASS less likely, not more.\n\n"
    f"Two stages: a comparison planned by `--plan-seeds` (the plan is written into the grid "
    f"as comments, and the file keeps its grid) is judged with Stein's two-stage interval: "
    f"the mean over every common seed, the first stage's standard deviation s0 and n0 − 1 "
    f"degrees of freedom, mean ± t(n0−1)·s0/√n, whose coverage is exact although the "
    f"number of seeds was chosen after looking at the first stage.\n\n"
    f"Errors are `1 - cos(prediction, y*)` averaged over the evaluation contexts, at `last` "
    f"= min({LAST_EXAMPLES}, N-1) in-context examples (and at {FIRST_EXAMPLES}) and "
    f"evaluation noise p = 0. The "
    f"*reward use* of a run is U = error(p = 1, last) − error(p = 0, last): how much worse "
    f"the model gets when the critic is useless, i.e. how much it relies on the rewards "
    f"(with p = 1 not evaluated, the highest level evaluated stands in, and the report says "
    f"so). The reference strategies (schema version 2 files) are `blind`, the reward-blind "
    f"average of the k responses, and `pick`, the response with the highest seen reward.\n\n"
    f"A finding's comparisons have roles. *Level*: the paper's own comparison of error "
    f"levels. *Mechanism*: the same question asked of reward use or against the reference "
    f"strategies, which separates models that use the rewards from models that do not "
    f"more clearly than the level at p = 0 (docs/science.md, \"Reference strategies\"). "
    f"*Guard*: a comparison that can only contradict the finding (its PASS is not needed). "
    f"**A finding is FAIL if any of its comparisons is FAIL; PASS if none is FAIL and all "
    f"its available level comparisons, or all its available mechanism comparisons, PASS; "
    f"NO EFFECT if none is FAIL and all its available primary comparisons are NO EFFECT; "
    f"INCONCLUSIVE otherwise.** With more than two levels of a factor (heads, depth) the "
    f"extreme levels are compared, and for heads also one head against the best other "
    f"count (the lowest mean), each paired by seed.")

CRITERIA = {
    1: ("Reference model, p = 0. Level: its error at 2 − its error at `last` examples "
        "(the fall, per seed). Guard: the GD baseline with 2 examples − the transformer "
        "with `last` (FAIL if the transformer stays above GD's starting error: it does "
        "not reach GD's range). Mechanism: the transformer's fall − the reward-blind "
        "average's fall over the same examples (more than averaging more responses gives). "
        f"Reported: the correlation of the mean TF and GD curves (r >= {MIN_CORR} reads as "
        "tracking)."),
    2: ("Reference model, error at `last` examples. Level: error at the highest p − at the "
        "lowest p (= U when they are 1 and 0). Guards: each step between adjacent levels "
        "(FAIL on a significant fall with more noise); with p = 1 evaluated, nothing is "
        "learned from the context at p = 1: the blind average's fall from 2 to `last` − the "
        "transformer's fall at p = 1 (without blind in the file: error at `last` − at 2, at "
        "p = 1). Mechanism: blind − transformer at p = 0 (the model with a perfect critic "
        "beats ignoring the rewards)."),
    3: ("Softmax vs linear attention, other knobs equal. Level: linear − softmax error at "
        "`last`, p = 0. Mechanism: U(softmax) − U(linear). Reported: how many runs of each "
        "arm stay on the plateau (error above blind at p = 0)."),
    4: ("Heads ablation, other knobs equal (E may move with H). Level: fewest heads − most "
        "heads error at `last`, p = 0, and fewest − the best other H when that is not the "
        "most. Guards: fewest − each remaining H (FAIL if some H is significantly worse "
        "than the fewest). Mechanism: U(most) − U(fewest), and U(best other) − U(fewest). "
        "Monotonicity in H is reported, not judged."),
    5: "MLP on vs off, other knobs equal. Level: off − on error at `last`, p = 0. "
       "Mechanism: U(on) − U(off).",
    6: ("Depth ablation, other knobs equal. Level: shallowest − deepest error at `last`, "
        "p = 0. Mechanism: U(deepest) − U(shallowest). Monotonicity is reported, not "
        "judged."),
}

CLAIMS = {
    1: "Error falls as in-context examples grow and tracks the GD baseline",
    2: "Critic quality matters: error rises with reward noise p; nothing is learned at p = 1",
    3: "Softmax attention is far better than linear attention",
    4: "More heads help; one head is clearly worst",
    5: "The MLP block matters: removing it hurts",
    6: "Depth helps: more layers, lower error",
}


def _num(x, digits=3):
    return f"{x:+.{digits}f}"


class BySeed(dict):
    """{seed: value} of one or two configurations, with the Groups the
    values came from (what a second stage gives more seeds)."""

    def __init__(self, values=(), groups=()):
        super().__init__(values)
        self.groups = tuple(groups)


def _groups_of(*maps):
    seen, out = set(), []
    for m in maps:
        for g in getattr(m, "groups", ()):
            key = tuple(sorted(g.config.items()))
            if key not in seen:
                seen.add(key)
                out.append(g)
    return tuple(out)


def _p(x):
    return f"= {x:.2g}" if x >= 1e-4 else "< 1e-4"


@dataclass
class Comparison:
    """One paired comparison of a finding: A − B, predicted positive. Made
    by compare(); judged by checklist() with its finding's margin and, when
    it was planned in two stages, its plan."""
    role: str                 # LEVEL | MECHANISM | GUARD
    text: str                 # what A − B is, in words
    a: dict = field(default_factory=dict)   # {seed: value} of A
    b: dict = field(default_factory=dict)   # {seed: value} of B
    result: object = None     # pairedstats.Paired, None when N/A
    status: str = NOT_AVAILABLE   # the verdict (Holm-corrected for primary comparisons)
    reason: str = ""          # why N/A
    groups: tuple = ()        # the configurations whose runs it compares
    finding: int = 0
    uncorrected: str = NOT_AVAILABLE
    p_holm: tuple = (float("nan"), float("nan"))   # adjusted (p_diff, p_equiv)

    @property
    def primary(self):
        return self.role in (LEVEL, MECHANISM)

    @property
    def key(self):
        """What names the comparison in a two-stage plan."""
        return (self.finding, self.role, self.text)

    def judge(self, delta, plan=None):
        """Sets result, uncorrected and status (before any correction)."""
        if self.reason:
            return
        self.result = paired(self.a, self.b, delta=delta, plan=plan)
        self.status = self.uncorrected = self.result.status
        self.reason = self.result.reason

    def correct(self, p_diff, p_equiv):
        """The verdict at Holm-adjusted p-values."""
        self.p_holm = (p_diff, p_equiv)
        self.status = verdict(self.result.interval.mean, p_diff, p_equiv, ALPHA)

    def line(self):
        head = f"{self.role}{' (only a contradiction counts)' if self.role == GUARD else ''}: {self.text}"
        if self.result is None or self.result.interval is None:
            return f"{head}: N/A ({self.reason})"
        r, iv = self.result, self.result.interval
        digits = 3 if max(abs(iv.mean), abs(iv.lo) if iv.n > 1 else 0) >= 0.01 else 4
        seeds = f"{iv.n} seed{'s' if iv.n != 1 else ''}"
        if iv.n < 2:
            stats = f"mean {_num(iv.mean, digits)}, no interval from {seeds}"
        else:
            stats = (f"mean {_num(iv.mean, digits)}, {iv.confidence:.0%} CI "
                     f"[{_num(iv.lo, digits)}, {_num(iv.hi, digits)}], {seeds}")
        if r.left_out:
            stats += f" (seeds not in both: {', '.join(map(str, r.left_out))})"
        why = []
        if iv.n >= 2:
            holm_ok = self.primary and np.isfinite(self.p_holm[0])
            tests = []
            for name, p, adj, shown in (
                    ("p", r.p_diff, self.p_holm[0], self.status != NO_EFFECT),
                    ("equivalence p", r.p_equiv, self.p_holm[1],
                     self.status in (NO_EFFECT, INCONCLUSIVE) or self.uncorrected == NO_EFFECT)):
                if shown:
                    tests.append(f"{name} {_p(p)}" + (f", Holm {_p(adj)}" if holm_ok else ""))
            if NO_EFFECT in (self.status, self.uncorrected):
                i90 = r.interval90
                why.append(f"{i90.confidence:.0%} CI [{_num(i90.lo, digits)}, "
                           f"{_num(i90.hi, digits)}] inside ±{r.delta:g}")
            why.append("; ".join(tests) + f"; δ = {r.delta:g}")
            if self.primary and self.uncorrected != self.status:
                why.append(f"uncorrected {self.uncorrected}")
        if r.plan is not None:
            pl = r.plan
            why.append(f"two-stage: {pl.n0} first-stage seeds, s0 = {pl.sd:.3g}, t with "
                       f"{pl.n0 - 1} df; {iv.n} of {pl.total} planned seeds"
                       + ("" if iv.n >= pl.total else ", second stage incomplete"))
        if self.status == INCONCLUSIVE and self.role != GUARD:
            need = r.seeds_to_decide()
            if iv.n < 2:
                why.append("needs at least 2 seeds for an interval")
            elif need is None:
                why.append("no number of seeds would settle it at this mean and spread")
            elif r.plan is None and self.uncorrected == INCONCLUSIVE:
                why.append(f"about {need} seeds would settle it at this spread")
        tail = self.status + (f" ({'; '.join(why)})" if why else "")
        return f"{head} (paper: > 0): {stats}: {tail}"


@dataclass
class Verdict:
    number: int
    claim: str
    status: str     # PASS | FAIL | NO EFFECT | INCONCLUSIVE | NOT IN GRID
    evidence: str   # the values behind the comparisons, or why NOT IN GRID
    comparisons: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    combined: str = ""  # how the comparisons gave the status
    delta: float = DELTA

    def detail_lines(self):
        return ([c.line() for c in self.comparisons] + [f"note: {n}" for n in self.notes]
                + ([f"verdict: {self.combined}"] if self.combined else []))


def compare(role, text, a, b, unavailable=""):
    """Comparison of a − b, {seed: value} maps (judged later, by
    checklist()), or N/A for `unavailable`."""
    return Comparison(role, text, a, b, reason=unavailable, groups=_groups_of(a, b))


def combine(comparisons):
    """(status, how): FAIL if any comparison fails; PASS if none fails and
    the available level comparisons all pass, or the available mechanism
    comparisons all pass; NO EFFECT if none fails and every available
    level and mechanism comparison is NO EFFECT; INCONCLUSIVE otherwise."""
    parts = {}
    for role in (LEVEL, MECHANISM):
        got = [c.status for c in comparisons if c.role == role and c.status != NOT_AVAILABLE]
        if got:
            parts[role] = (PASS if all(s == PASS for s in got)
                           else FAIL if FAIL in got
                           else NO_EFFECT if all(s == NO_EFFECT for s in got) else INCONCLUSIVE)
    guards = [c for c in comparisons if c.role == GUARD]
    failed_guards = [c for c in guards if c.status == FAIL]
    how = [f"{role} {parts.get(role, 'N/A')}" for role in (LEVEL, MECHANISM)]
    if guards:
        how.append(f"guards: {len(failed_guards)} of {len(guards)} contradicted"
                   if failed_guards else "guards: no contradiction")
    if any(c.status == FAIL for c in comparisons):
        status = FAIL
    elif PASS in parts.values():
        status = PASS
    elif parts and all(v == NO_EFFECT for v in parts.values()):
        status = NO_EFFECT
    else:
        status = INCONCLUSIVE
    return status, ", ".join(how) + f" -> {status}"


def _seeds_note(counts):
    counts = set(counts)
    if len(counts) == 1:
        n = counts.pop()
        return f"({n} seed{'s' if n != 1 else ''})"
    return "(seeds per arm differ: " + ", ".join(str(c) for c in sorted(counts)) + ")"


class Context:
    """What every finding needs: the reference model, the noise levels, the
    positions, and per-seed values of a configuration."""

    def __init__(self, res):
        self.res = res
        self.groups = res.groups()
        self.ref = reference_group(res, self.groups)
        self.p0 = reference_noise(res)
        self.xs = positions(res)
        self.first, self.last = int(self.xs[0]), int(self.xs[-1])
        above = [float(p) for p in res.noise if p > self.p0 + 1e-9]
        one = [p for p in above if np.isclose(p, 1.0)]
        self.p_use = (one or [max(above)])[0] if above else None

    def values(self, rows, i, p=None, which="tf"):
        """Per-row errors at position i (rows in the given order)."""
        p = self.p0 if p is None else p
        return self.res.curve(which)[np.asarray(rows), self.res.noise_index(p), i].astype(float)

    def by_seed(self, group, values):
        """{seed: value} for a group's rows (values in group.rows order)."""
        return BySeed(((int(s), float(v)) for s, v in zip(group.seeds, values)), (group,))

    def err(self, group, i=None, p=None, which="tf"):
        return self.by_seed(group, self.values(group.rows, self.last if i is None else i, p, which))

    def fall(self, group, p=None, which="tf"):
        """Error at 2 − error at last, per seed."""
        return self.by_seed(group, self.values(group.rows, self.first, p, which)
                            - self.values(group.rows, self.last, p, which))

    def use(self, group):
        """Reward use U per seed, {} when only one noise level."""
        if self.p_use is None:
            return {}
        return self.by_seed(group, self.values(group.rows, self.last, self.p_use)
                            - self.values(group.rows, self.last))

    def use_name(self):
        if self.p_use is None or np.isclose(self.p_use, 1.0):
            return "U"
        return f"U(p = {self.p_use:g})"

    def use_unavailable(self):
        if self.p_use is None:
            return "one evaluation noise level: reward use needs p = 1 (or any level above p = 0)"
        return ""

    def use_note(self):
        if self.p_use is not None and not np.isclose(self.p_use, 1.0):
            return (f"p = 1 not evaluated: reward use taken as error(p = {self.p_use:g}) − "
                    f"error(p = {self.p0:g}) at {self.last} examples")
        return ""

    def lacks(self, which):
        return self.res.missing_text(which)

    def where(self):
        return f"p = {self.p0:g}" + ("" if self.p0 == 0 else " (the smallest level evaluated)")


def _text(values):
    return spread(list(values.values())).text() if values else "n/a"


def finding_1(ctx):
    g, first, last, p = ctx.ref, ctx.first, ctx.last, ctx.p0
    comps = [
        compare(LEVEL, f"transformer's error at {first} − at {last} examples, p = {p:g}",
                ctx.err(g, first), ctx.err(g, last)),
        compare(GUARD, f"GD baseline with {first} examples − transformer with {last}, p = {p:g}",
                ctx.err(g, first, which="gd"), ctx.err(g, last)),
    ]
    no_blind = ctx.lacks("blind")
    comps.append(compare(
        MECHANISM, f"transformer's fall from {first} to {last} examples − the reward-blind "
        f"average's fall, p = {p:g}",
        ctx.fall(g), {} if no_blind else ctx.fall(g, which="blind"), no_blind))
    tf_curve = ctx.res.stats(g.rows, p).mean[ctx.xs]
    gd_curve = ctx.res.stats(g.rows, p, "gd").mean[ctx.xs]
    corr = (float(np.corrcoef(tf_curve, gd_curve)[0, 1])
            if np.std(tf_curve) > 0 and np.std(gd_curve) > 0 else float("nan"))
    text = (f"reference model ({describe(g.config)}), {ctx.where()}: transformer "
            f"{_text(ctx.err(g, first))} at {first} examples -> {_text(ctx.err(g, last))} at "
            f"{last}; GD baseline {_text(ctx.err(g, first, which='gd'))} -> "
            f"{_text(ctx.err(g, last, which='gd'))}")
    if not no_blind:
        text += (f"; blind average {_text(ctx.err(g, first, which='blind'))} -> "
                 f"{_text(ctx.err(g, last, which='blind'))}; pick "
                 f"{_text(ctx.err(g, first, which='pick'))} -> {_text(ctx.err(g, last, which='pick'))}")
    text += (f"; correlation of the mean TF and GD curves r = {corr:.2f} "
             f"({'tracks' if corr >= MIN_CORR else 'does not track'}: r >= {MIN_CORR}) "
             f"{_seeds_note([len(g.rows)])}")
    return comps, text, []


def finding_2(ctx):
    res, g, first, last = ctx.res, ctx.ref, ctx.first, ctx.last
    if len(res.noise) < 2:
        return None, f"one evaluation noise level ({res.noise[0]:g})", []
    levels = sorted(float(p) for p in res.noise)
    lo, hi = levels[0], levels[-1]
    at = {p: ctx.err(g, last, p) for p in levels}
    comps = [compare(LEVEL, f"error at {last} examples, p = {hi:g} − p = {lo:g}"
                     + (" (reward use U)" if np.isclose(lo, 0) and np.isclose(hi, 1) else ""),
                     at[hi], at[lo])]
    if len(levels) > 2:
        comps += [compare(GUARD, f"error at {last} examples, p = {b:g} − p = {a:g}", at[b], at[a])
                  for a, b in zip(levels, levels[1:])]
    no_blind = ctx.lacks("blind")
    if np.isclose(hi, 1.0):
        if no_blind:
            comps.append(compare(GUARD, f"at p = 1, transformer − reward-blind average at {last} "
                                 f"examples (nothing learned beyond ignoring the rewards)",
                                 {}, {}, ctx.lacks("blind")))
        else:
            # With a useless critic no use of the rewards can beat ignoring
            # them (docs/science.md: pick at p = 1 is 0.399, blind 0.342), so a model
            # below the blind average at p = 1 learned something the
            # paper says cannot be learned there.
            comps.append(compare(GUARD, f"at p = 1, transformer − reward-blind average at {last} "
                                 f"examples (nothing learned beyond ignoring the rewards)",
                                 ctx.err(g, last, 1.0), ctx.err(g, last, 1.0, "blind")))
    comps.append(compare(MECHANISM, f"reward-blind average − transformer at {last} examples, "
                         f"p = {lo:g} (the model beats ignoring the rewards)",
                         {} if no_blind else ctx.err(g, last, lo, "blind"), at[lo], no_blind))
    parts = ", ".join(f"p={p:g} {_text(v)}" for p, v in at.items())
    text = f"reference model, error at {last} examples: {parts} {_seeds_note([len(g.rows)])}"
    if np.isclose(hi, 1.0):
        text += f"; at p=1: {_text(ctx.err(g, first, 1.0))} at {first} examples -> {_text(at[hi])} at {last}"
    else:
        text += "; p=1 not evaluated, 'nothing learned at p = 1' not checked"
    if not no_blind:
        text += (f"; blind average {_text(ctx.err(g, last, lo, 'blind'))}, pick "
                 + ", ".join(f"p={p:g} {_text(ctx.err(g, last, p, 'pick'))}" for p in levels))
    abl, _ = ablation(res, "train_noise")
    if abl is not None:  # beyond the paper's test: reported, not judged
        trained = ", ".join(f"{label('train_noise', v)}: {_text(ctx.err(gr, last))}"
                            for v, gr in abl.arms)
        text += f". For reference, models trained with reward noise, at {ctx.where()}: {trained}"
    return comps, text, []


def _arms_text(ctx, abl):
    err = [(v, g, ctx.err(g)) for v, g in abl.arms]
    parts = " vs ".join(f"{label(abl.factor, v, g.config)} {_text(e)}" for v, g, e in err)
    text = f"{ctx.where()}, {ctx.last} examples: {parts} {_seeds_note(len(e) for _, _, e in err)}"
    if ctx.p_use is not None:
        text += f"; reward use {ctx.use_name()}: " + " vs ".join(
            f"{label(abl.factor, v, g.config)} {_text(ctx.use(g))}" for v, g, _ in err)
    return text


def _held(abl):
    fac = FACTORS[abl.factor]
    return describe(abl.arms[0][1].config, omit=(fac.field, *fac.coupled))


def _pair_comparisons(ctx, better, worse, name_b, name_w):
    """Level: worse − better error; mechanism: U(better) − U(worse)."""
    return [
        compare(LEVEL, f"{name_w} − {name_b}, error at {ctx.last} examples, p = {ctx.p0:g}",
                ctx.err(worse), ctx.err(better)),
        compare(MECHANISM, f"reward use {ctx.use_name()}, {name_b} − {name_w}",
                ctx.use(better), ctx.use(worse), ctx.use_unavailable()),
    ]


def _ablation_finding(ctx, factor, build):
    abl, reason = ablation(ctx.res, factor)
    if abl is None:
        return None, reason, []
    comps, notes = build(abl)
    text = f"{_arms_text(ctx, abl)} [held: {_held(abl)}]" + (f" [{abl.note}]" if abl.note else "")
    note = ctx.use_note()
    return comps, text, notes + ([note] if note else [])


def _plateau_note(ctx, arms):
    """How many runs of each arm stay above the blind average at p = 0."""
    if ctx.lacks("blind"):
        return f"runs on the plateau (above blind at p = 0) not counted: {ctx.lacks('blind')}"
    parts = []
    for name, g in arms:
        tf, blind = ctx.err(g), ctx.err(g, which="blind")
        above = sum(tf[s] > blind[s] for s in tf)
        parts.append(f"{name} {above} of {len(tf)}")
    return (f"runs that never leave the plateau (error above the reward-blind average at "
            f"{ctx.last} examples, p = {ctx.p0:g}): " + ", ".join(parts))


def finding_3(ctx):
    def build(abl):
        arms = dict(abl.arms)
        if "softmax" not in arms or "linear" not in arms:
            return [compare(LEVEL, "softmax vs linear", {}, {}, "needs both softmax and linear")], []
        comps = _pair_comparisons(ctx, arms["softmax"], arms["linear"], "softmax", "linear")
        return comps, [_plateau_note(ctx, [("linear", arms["linear"]), ("softmax", arms["softmax"])])]
    return _ablation_finding(ctx, "attention", build)


def _monotone(ctx, abl, name, factor_word):
    """Whether the mean error at `last` falls with every step up in the
    factor (reported, not judged)."""
    means = sorted((v, float(np.mean(list(ctx.err(g).values())))) for v, g in abl.arms)
    reversals = [f"{name(b)} above {name(a)}" for (a, ea), (b, eb) in zip(means, means[1:])
                 if eb > ea]
    return (f"mean error at {ctx.last} examples falls with every step up in {factor_word}: "
            + ("yes" if not reversals else "no (" + "; ".join(reversals) + ")"))


def _best(ctx, arms, metric, lowest):
    """The arm with the lowest (or highest) mean of metric(group)."""
    def mean(g):
        vals = list(metric(g).values())
        return float(np.mean(vals)) if vals else np.nan
    scored = [(mean(g), v, g) for v, g in arms if np.isfinite(mean(g))]
    if not scored:
        return None
    return (min if lowest else max)(scored, key=lambda t: t[0])[1:]


def finding_4(ctx):
    name = lambda v: f"H = {v}"  # noqa: E731

    def build(abl):
        arms = sorted(abl.arms, key=lambda a: a[0])
        (few, gf), (most, gm) = arms[0], arms[-1]
        others = arms[1:]
        comps = [compare(LEVEL, f"{name(few)} − {name(most)} (fewest vs most heads), error at "
                         f"{ctx.last} examples, p = {ctx.p0:g}", ctx.err(gf), ctx.err(gm))]
        best = _best(ctx, others, ctx.err, lowest=True)
        compared = {most}
        if best and best[0] != most:
            compared.add(best[0])
            comps.append(compare(LEVEL, f"{name(few)} − {name(best[0])} (fewest vs the best other), "
                                 f"error at {ctx.last} examples, p = {ctx.p0:g}",
                                 ctx.err(gf), ctx.err(best[1])))
        comps += [compare(GUARD, f"{name(few)} − {name(v)}, error at {ctx.last} examples, "
                          f"p = {ctx.p0:g}", ctx.err(gf), ctx.err(g))
                  for v, g in others if v not in compared]
        unavailable = ctx.use_unavailable()
        comps.append(compare(MECHANISM, f"reward use {ctx.use_name()}, {name(most)} − {name(few)} "
                             f"(most vs fewest heads)", ctx.use(gm), ctx.use(gf), unavailable))
        best_u = None if unavailable else _best(ctx, others, ctx.use, lowest=False)
        if best_u and best_u[0] != most:
            comps.append(compare(MECHANISM, f"reward use {ctx.use_name()}, {name(best_u[0])} − "
                                 f"{name(few)} (the best other vs fewest)",
                                 ctx.use(best_u[1]), ctx.use(gf)))
        notes = [_monotone(ctx, abl, name, "heads")]
        if few != 1:
            notes.append(f"the fewest heads in the grid is H = {few}, not 1")
        if len(arms) > 2:
            best_text = (f"the best other is {name(best[0])}" if best and best[0] != most
                         else f"the best other is the most, {name(most)}")
            notes.append(f"more than two head counts: the extremes are compared, and the "
                         f"fewest against the best other by mean error ({best_text})")
        return comps, notes
    return _ablation_finding(ctx, "heads", build)


def finding_5(ctx):
    def build(abl):
        arms = dict(abl.arms)
        if 1 not in arms or 0 not in arms:
            return [compare(LEVEL, "MLP on vs off", {}, {}, "needs both MLP on and off")], []
        return _pair_comparisons(ctx, arms[1], arms[0], "MLP on", "MLP off"), []
    return _ablation_finding(ctx, "ffn", build)


def finding_6(ctx):
    name = lambda v: f"L = {v}"  # noqa: E731

    def build(abl):
        arms = sorted(abl.arms, key=lambda a: a[0])
        (shallow, gs), (deep, gd) = arms[0], arms[-1]
        comps = _pair_comparisons(ctx, gd, gs, name(deep), name(shallow))
        notes = [_monotone(ctx, abl, name, "depth")]
        if len(arms) > 2:
            notes.append("more than two depths: the shallowest and the deepest are compared")
        return comps, notes
    return _ablation_finding(ctx, "layers", build)


FINDINGS = {1: finding_1, 2: finding_2, 3: finding_3, 4: finding_4, 5: finding_5, 6: finding_6}


def margins(delta=DELTA, per_finding=None):
    """{finding: delta}: `delta` for every finding, overridden per finding."""
    out = {n: float(delta) for n in FINDINGS}
    out.update({int(n): float(d) for n, d in (per_finding or {}).items()})
    return out


def checklist(res, delta=DELTA, per_finding=None):
    """[Verdict] for the paper's six findings, in order. delta: the
    equivalence margin of every finding, per_finding {finding: delta}
    overriding it. Comparisons planned in two stages (plans in the file's
    grid text) are judged with their plan (and its margin); the primary
    comparisons of all findings get Holm's correction together."""
    deltas = margins(delta, per_finding)
    plans = plans_in_grid(res.attrs.get("grid", ""))
    out = []
    ctx = Context(res) if res.groups() else None
    for n, fn in FINDINGS.items():
        if ctx is None:
            comps, text, notes = None, "no finished runs in the file", []
        elif len(ctx.xs) < 2:
            comps, text, notes = None, (f"N = {res.n_points} leaves fewer than two positions "
                                        f"to compare"), []
        else:
            comps, text, notes = fn(ctx)
        if comps is None:
            out.append(Verdict(n, CLAIMS[n], NOT_IN_GRID, text, delta=deltas[n]))
            continue
        for c in comps:
            c.finding = n
            plan = plans.get(c.key)
            c.judge(plan.delta if plan else deltas[n], plan)
        out.append(Verdict(n, CLAIMS[n], None, text, comps, notes, delta=deltas[n]))
    family = [c for v in out for c in v.comparisons
              if c.primary and c.result is not None and c.result.interval is not None
              and c.result.interval.n >= 2]
    # Two Holm families, the tests of no difference and the equivalence
    # tests, each at ALPHA / 2 (Bonferroni between them): the chance of any
    # false verdict among the primary comparisons stays below ALPHA, and a
    # difference test does not wait behind the equivalence tests of large
    # effects, as it would in one family of both.
    p_diff = holm([c.result.p_diff for c in family])
    p_equiv = holm([c.result.p_equiv for c in family])
    for c, d, e in zip(family, p_diff, p_equiv):
        c.correct(min(1.0, 2.0 * d), min(1.0, 2.0 * e))
    for v in out:
        if v.status is None:
            v.status, v.combined = combine(v.comparisons)
    return out


def _findings_text(numbers):
    return f" (finding{'s' if len(numbers) != 1 else ''} {', '.join(map(str, numbers))})"


def family_text(verdicts):
    """How many comparisons the report makes, and how they are corrected."""
    comps = [c for v in verdicts for c in v.comparisons]
    judged = [c for c in comps if c.result is not None and c.result.interval is not None
              and c.result.interval.n >= 2]
    primary = [c for c in judged if c.primary]
    guards = [c for c in judged if not c.primary]
    planned = [c for c in judged if c.result.plan is not None]
    findings = sorted({c.finding for c in primary})
    text = (f"{len(comps)} comparisons, {len(judged)} with an interval: {len(primary)} primary "
            f"(level and mechanism) comparisons of {len(findings)} findings, judged as one "
            f"family (family-wise {ALPHA:.0%}: Holm's correction across their {len(primary)} "
            f"tests of no difference and across their {len(primary)} equivalence tests, "
            f"each at {ALPHA / 2:.1%}), and {len(guards)} guards, judged uncorrected")
    changed = [c for c in primary if c.status != c.uncorrected]
    if changed:
        text += (f"; the correction changes {len(changed)} verdict"
                 f"{'s' if len(changed) != 1 else ''} ("
                 + "; ".join(f"{c.finding}. {c.role}: {c.uncorrected} -> {c.status}"
                             for c in changed) + ")")
    if planned:
        text += f"; {len(planned)} judged with a two-stage (Stein) interval"
    deltas = sorted({v.delta for v in verdicts})
    text += "; margin δ = " + ", ".join(
        f"{d:g}" + ("" if len(deltas) == 1 else _findings_text([v.number for v in verdicts
                                                               if v.delta == d]))
        for d in deltas)
    return text


def unmatched_plans(res, verdicts):
    """A note naming the two-stage plans in the file's grid text that match
    no comparison of this report (its text changed, e.g. another "best
    other" head count), or ""."""
    planned = {c.key for v in verdicts for c in v.comparisons if c.result is not None
               and c.result.plan is not None}
    lost = [k for k in plans_in_grid(res.attrs.get("grid", "")) if k not in planned]
    if not lost:
        return ""
    return ("note: two-stage plans in the grid that match no comparison (judged as one stage "
            "instead): " + "; ".join(f"finding {f} {role}: {text}" for f, role, text in lost))


def _header(res):
    a = res.attrs
    counts = res.status_counts()
    lines = [f"# icasweep report: {os.path.basename(res.path)}", "",
             f"- file: `{os.path.abspath(res.path)}`",
             f"- program version: {a.get('program_version', '?')}, git revision: "
             f"{a.get('git_revision', '?')}, schema version: {a.get('schema_version', '?')}, "
             f"created: {a.get('created', '?')}",
             "- runs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n or s == "done")
             + f" (of {res.n_runs})",
             f"- evaluation noise levels p: {', '.join(f'{p:g}' for p in res.noise)}; "
             f"N = {res.n_points} positions; training steps stored: {len(res.train_step)}"]
    if not res.has("blind"):
        lines.append(f"- reference strategies: none: {res.missing_text('blind')}; the "
                     f"comparisons that need them are N/A")
    bad = [r for r in range(res.n_runs) if res.column("status")[r] not in ("done", "pending")]
    if bad:
        lines += ["", "Runs that did not finish normally:", ""]
        for r in bad[:20]:
            lines.append(f"- row {r} `{res.column('run_id')[r]}` ({describe(res.config(r))}, seed "
                         f"{res.column('seed')[r]}): **{res.column('status')[r]}**: "
                         f"{res.column('reason')[r] or 'no reason given'}")
        if len(bad) > 20:
            lines.append(f"- ... and {len(bad) - 20} more")
    return lines


def _config_table(res):
    ctx = Context(res)
    cols = [("TF at %d" % ctx.first, ctx.first, "tf"), ("TF at %d" % ctx.last, ctx.last, "tf"),
            ("GD at %d" % ctx.last, ctx.last, "gd")]
    if res.has("blind"):
        cols += [("blind at %d" % ctx.last, ctx.last, "blind"), ("pick at %d" % ctx.last, ctx.last, "pick")]
    use = ctx.p_use is not None
    head = [c[0] for c in cols] + ([f"reward use {ctx.use_name()}"] if use else [])
    lines = ["| configuration | seeds | " + " | ".join(head) + " |",
             "|---|---|" + "---|" * len(head)]
    for g in ctx.groups:
        cells = [_text(ctx.err(g, i, which=w)) for _, i, w in cols]
        if use:
            cells.append(_text(ctx.use(g)))
        lines.append(f"| {describe(g.config)} | {len(g.rows)} | " + " | ".join(cells) + " |")
    return lines


def write_report(res, out_dir, band="minmax", log=print, delta=DELTA, per_finding=None):
    """Draws the figures into out_dir and writes out_dir/report.md; returns
    (path of report.md, [Verdict]). delta, per_finding: as checklist()."""
    os.makedirs(out_dir, exist_ok=True)
    panels = draw_all(res, out_dir, band=band, log=log)
    verdicts = checklist(res, delta, per_finding)
    lines = _header(res) + ["", "## The paper's findings", "", family_text(verdicts) + "."]
    lost = unmatched_plans(res, verdicts)
    lines += (["", lost] if lost else []) + [""]
    for v in verdicts:
        lines.append(f"- **{v.status}** — {v.number}. {v.claim}: {v.evidence}")
        lines += [f"  - {d}" for d in v.detail_lines()]
    lines += ["", "### How each finding is judged", "", JUDGING, ""]
    lines += [f"{n}. {text}" for n, text in CRITERIA.items()]
    if res.groups():
        lines += ["", f"## Configurations (p = {reference_noise(res):g}, mean ± sd over seeds)", ""]
        lines += _config_table(res)
    lines += ["", "## Figures", ""]
    if not panels:
        lines.append("No figures: no finished runs.")
    for panel in panels:
        png = next(os.path.basename(f) for f in panel.files if f.endswith(".png"))
        pdf = next(os.path.basename(f) for f in panel.files if f.endswith(".pdf"))
        lines += [f"### {panel.title}", "", f"![{panel.title}]({png})", "",
                  f"{panel.caption} ([PDF]({pdf}))", ""]
    lines += selfcorrect_section(res.path, out_dir, log=log)
    grid = res.attrs.get("grid")
    if grid:
        lines += ["## Grid file", "", "```yaml", grid.rstrip(), "```"]
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, verdicts


def print_checklist(verdicts, out=None):
    out = out or sys.stdout
    for v in verdicts:
        print(f"{v.status:<12} {v.number}. {v.claim}\n             {v.evidence}", file=out)
        for d in v.detail_lines():
            print(f"             - {d}", file=out)


def parse_delta(values):
    """(delta, {finding: delta}) from --delta values "0.02" and "5=0.03"."""
    delta, per = DELTA, {}
    for value in values or ():
        for part in value.split(","):
            name, eq, number = part.strip().rpartition("=")
            try:
                d = float(number)
            except ValueError:
                raise ValueError(f"--delta {value!r}: expected a margin such as 0.02 or "
                                 f"finding=margin such as 5=0.03") from None
            if not (d > 0 and np.isfinite(d)):
                raise ValueError(f"--delta {value!r}: the margin must be a number > 0")
            if not eq:
                delta = d
                continue
            try:
                n = int(name)
            except ValueError:
                n = None
            if n not in FINDINGS:
                raise ValueError(f"--delta {value!r}: findings are numbered 1-6")
            per[n] = d
    return delta, per


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", help="an icasweep result file (HDF5)")
    ap.add_argument("--out", help="directory for report.md and the figures (needed unless "
                    "--plan-seeds is given)")
    ap.add_argument("--band", choices=sorted(BANDS), default="minmax",
                    help="figure bands across seeds: min-max (default) or mean ± 1 s.d.")
    ap.add_argument("--require", default="",
                    help="comma-separated findings that must PASS, e.g. 1,2,3 (exit 1 otherwise)")
    ap.add_argument("--delta", action="append", metavar="[FINDING=]MARGIN",
                    help=f"equivalence margin in error units (default {DELTA:g}); FINDING=MARGIN "
                    f"sets one finding's, e.g. --delta 5=0.03; repeatable")
    ap.add_argument("--plan-seeds", metavar="GRID_OUT.yaml",
                    help="write the grown grid of a second stage (Stein's procedure) that "
                    "settles every undecided primary comparison, and print its cost")
    ap.add_argument("--budget", type=float, metavar="CORE_HOURS",
                    help="with --plan-seeds: plan only the comparisons that fit in this many "
                    "core-hours (cheapest first) and list the others with their cost")
    ap.add_argument("--icasweep", metavar="BINARY",
                    help="with --plan-seeds: the icasweep binary whose `plan` prices the runs "
                    "(default $ICASWEEP, else build/icasweep beside analysis/)")
    ap.add_argument("--gflops", type=float, metavar="G",
                    help="with --plan-seeds: price every run at its FLOPs (icasweep plan) and G "
                    "GFLOP/s per core; default: what the file's own finished runs of its "
                    "configuration cost (wall seconds x threads), else plan's measured rate")
    args = ap.parse_args(argv)
    try:
        required = {int(x) for x in args.require.split(",") if x.strip()}
    except ValueError:
        ap.error(f"--require {args.require!r}: expected finding numbers such as 1,2,3")
    if not required <= set(FINDINGS):
        ap.error(f"--require {args.require!r}: findings are numbered 1-6")
    try:
        delta, per_finding = parse_delta(args.delta)
    except ValueError as e:
        ap.error(str(e))
    if not args.out and not args.plan_seeds:
        ap.error("--out DIR is needed (or --plan-seeds GRID_OUT.yaml)")
    if args.budget is not None and not args.plan_seeds:
        ap.error("--budget goes with --plan-seeds")
    if args.gflops is not None and not args.gflops > 0:
        ap.error(f"--gflops {args.gflops}: expected a number > 0")
    if args.budget is not None and not args.budget >= 0:
        ap.error(f"--budget {args.budget}: core-hours must be >= 0")
    try:
        res = load(args.results)
    except (OSError, ValueError) as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 2
    if args.out:
        path, verdicts = write_report(res, args.out, band=args.band, delta=delta,
                                      per_finding=per_finding)
        print_checklist(verdicts)
        print(f"wrote {path}")
    else:
        verdicts = checklist(res, delta, per_finding)
        print_checklist(verdicts)
    print(family_text(verdicts))
    if unmatched_plans(res, verdicts):
        print(unmatched_plans(res, verdicts))
    if args.plan_seeds:
        from seedplan import PlanError, plan_second_stage
        try:
            plan = plan_second_stage(res, verdicts, args.plan_seeds, budget=args.budget,
                                     binary=args.icasweep, gflops=args.gflops)
        except PlanError as e:
            print(f"report.py: {e}", file=sys.stderr)
            return 2
        print(plan.text())
    missing = [v.number for v in verdicts if v.number in required and v.status != PASS]
    if missing:
        print(f"report.py: required findings not PASS: {', '.join(map(str, missing))}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
