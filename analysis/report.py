#!/usr/bin/env python3
"""Write DIR/report.md for an icasweep result file: what the file holds,
the figures, and a checklist of SPEC.md's six findings.

usage: report.py RESULTS.h5 --out DIR [--band minmax|std] [--require 1,2,3]

Each finding is PASS, FAIL or NOT IN GRID (the file has no runs that test
it), with the numbers behind it. The checklist is also printed. Exit status
0, or 1 when a finding named by --require is not PASS (2: unreadable file).

How a finding is judged (CRITERIA below, repeated in the report): errors are
taken at the last plotted position, last = min(15, N-1), and at position 2,
at evaluation noise p = 0, per seed. "A beats B" means
    mean(B) - mean(A) > max(MARGIN, sd(A) + sd(B))
with sd the sample standard deviation across seeds (0 for one seed): the
gap must exceed both a fixed margin and the seeds' own scatter.
"""
import argparse
import os
import sys
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from figures import (BANDS, FACTORS, ablation, describe, draw_all, label,  # noqa: E402
                     positions, reference_group, reference_noise)
from icaresults import load, spread  # noqa: E402
from selfcorrect import report_section as selfcorrect_section  # noqa: E402

MARGIN = 0.01       # smallest error gap that counts as a difference
FLAT_MARGIN = 0.05  # largest fall from 2 to `last` examples of a "flat" curve
MIN_CORR = 0.8      # correlation of the TF and GD mean curves for "tracks"

CRITERIA = {
    1: (f"Reference model, p = 0. PASS if (a) its error falls from 2 to `last` examples: the "
        f"mean over seeds of each run's own fall exceeds the spread (std) of those falls and "
        f"{MARGIN}, and (b) it tracks the GD baseline: GD with 2 examples does not beat it "
        f"with `last` examples (it reaches GD's range), and the mean curves over 2..last "
        f"correlate (Pearson r >= {MIN_CORR})."),
    2: (f"Reference model, error at `last` examples for every evaluation noise level p. PASS if "
        f"(a) the lowest p beats the highest p, (b) no higher p beats a lower p (monotone within "
        f"the seed spread), and (c) when p = 1 was evaluated, its curve is flat: the mean error "
        f"falls by at most {FLAT_MARGIN} from 2 to `last` examples."),
    3: "Softmax vs linear attention, other knobs equal, p = 0, `last` examples. PASS if softmax "
       "beats linear.",
    4: "Heads ablation, other knobs equal (E may move with H), p = 0, `last` examples. PASS if "
       "every other H beats the fewest heads (H = 1 in the paper's grid). Whether the errors "
       "also fall monotonically with H is reported, not required.",
    5: "MLP on vs off, other knobs equal, p = 0, `last` examples. PASS if MLP on beats MLP off.",
    6: "Depth ablation, other knobs equal, p = 0, `last` examples. PASS if the deepest model "
       "beats the shallowest. Monotonicity is reported, not required.",
}

CLAIMS = {
    1: "Error falls as in-context examples grow and tracks the GD baseline",
    2: "Critic quality matters: error rises with reward noise p; nothing is learned at p = 1",
    3: "Softmax attention is far better than linear attention",
    4: "More heads help; one head is clearly worst",
    5: "The MLP block matters: removing it hurts",
    6: "Depth helps: more layers, lower error",
}


@dataclass
class Verdict:
    number: int
    claim: str
    status: str     # PASS | FAIL | NOT IN GRID
    evidence: str


def beats(a, b):
    """(A beats B, gap mean(B) - mean(A), the gap required)."""
    sa, sb = spread(a), spread(b)
    gap = float(sb.mean - sa.mean)
    need = max(MARGIN, float(sa.std + sb.std))
    return gap > need, gap, need


def _seeds_note(counts):
    counts = set(counts)
    if len(counts) == 1:
        n = counts.pop()
        return f"({n} seed{'s' if n != 1 else ''})"
    return "(seeds per arm differ: " + ", ".join(str(c) for c in sorted(counts)) + ")"


class Context:
    """What every finding needs: the reference model, p = 0, positions."""

    def __init__(self, res):
        self.res = res
        self.groups = res.groups()
        self.ref = reference_group(res, self.groups)
        self.p0 = reference_noise(res)
        self.xs = positions(res)
        self.first, self.last = int(self.xs[0]), int(self.xs[-1])

    def values(self, rows, i, p=None, which="tf"):
        """Per-seed errors at position i."""
        err = self.res.tf_err if which == "tf" else self.res.gd_err
        p = self.p0 if p is None else p
        return err[np.asarray(rows), self.res.noise_index(p), i].astype(float)

    def where(self):
        return f"p = {self.p0:g}" + ("" if self.p0 == 0 else " (the smallest level evaluated)")


def finding_1(ctx):
    rows = ctx.ref.rows
    tf2, tfl = ctx.values(rows, ctx.first), ctx.values(rows, ctx.last)
    gd2, gdl = ctx.values(rows, ctx.first, which="gd"), ctx.values(rows, ctx.last, which="gd")
    # Paired: each run's error at `last` against its own at 2 examples. Seeds
    # differ in level more than in slope, so the spread that matters is that
    # of the per-seed falls, not of the two positions' errors.
    fall = spread(tf2 - tfl)
    gap, need = float(fall.mean), max(MARGIN, float(fall.std))
    falls = gap > need
    tf_curve = ctx.res.stats(rows, ctx.p0).mean[ctx.xs]
    gd_curve = ctx.res.stats(rows, ctx.p0, "gd").mean[ctx.xs]
    corr = (float(np.corrcoef(tf_curve, gd_curve)[0, 1])
            if np.std(tf_curve) > 0 and np.std(gd_curve) > 0 else float("nan"))
    within = not beats(gd2, tfl)[0]
    ok = falls and within and corr >= MIN_CORR
    return ok, (f"reference model ({describe(ctx.ref.config)}), {ctx.where()}: transformer "
                f"{spread(tf2).text()} at {ctx.first} examples -> {spread(tfl).text()} at "
                f"{ctx.last} (fall {gap:.3f} ± {float(fall.std):.3f} per seed, needed > {need:.3f}: {'yes' if falls else 'no'}); "
                f"GD baseline {spread(gd2).text()} -> {spread(gdl).text()}; transformer at "
                f"{ctx.last} not beaten by GD at {ctx.first}: {'yes' if within else 'no'}; correlation of "
                f"the mean curves r = {corr:.2f} (needed >= {MIN_CORR}) {_seeds_note([len(rows)])}")


def finding_2(ctx):
    res, rows = ctx.res, ctx.ref.rows
    if len(res.noise) < 2:
        return None, f"one evaluation noise level ({res.noise[0]:g})"
    levels = sorted(float(p) for p in res.noise)
    at_last = [ctx.values(rows, ctx.last, p) for p in levels]
    rises, gap, need = beats(at_last[0], at_last[-1])
    reversals = [f"p={levels[k + 1]:g} below p={levels[k]:g}" for k in range(len(levels) - 1)
                 if beats(at_last[k + 1], at_last[k])[0]]
    parts = ", ".join(f"p={p:g} {spread(v).text()}" for p, v in zip(levels, at_last))
    text = (f"reference model, error at {ctx.last} examples: {parts} {_seeds_note([len(rows)])}; "
            f"rise from p={levels[0]:g} to p={levels[-1]:g}: {gap:.3f} (needed > {need:.3f}); "
            f"monotone: {'yes' if not reversals else 'no (' + '; '.join(reversals) + ')'}")
    ok = rises and not reversals
    if np.isclose(levels[-1], 1.0):
        s2, sl = spread(ctx.values(rows, ctx.first, 1.0)), spread(ctx.values(rows, ctx.last, 1.0))
        fall = float(s2.mean - sl.mean)
        flat = fall <= FLAT_MARGIN
        ok = ok and flat
        text += (f"; at p=1: {s2.text()} at {ctx.first} examples -> {sl.text()} at {ctx.last}, "
                 f"fall {fall:.3f} ({'flat' if flat else 'not flat'}: allowed <= {FLAT_MARGIN})")
    else:
        text += "; p=1 not evaluated, flatness not checked"
    abl, _ = ablation(res, "train_noise")
    if abl is not None:  # beyond the paper's test: reported, not judged
        trained = ", ".join(f"{label('train_noise', v)}: {spread(ctx.values(g.rows, ctx.last)).text()}"
                            for v, g in abl.arms)
        text += f". For reference, models trained with reward noise, at {ctx.where()}: {trained}"
    return ok, text


def _arms_text(ctx, abl):
    errs = [(v, g, ctx.values(g.rows, ctx.last)) for v, g in abl.arms]
    parts = " vs ".join(f"{label(abl.factor, v, g.config)} {spread(e).text()}" for v, g, e in errs)
    return errs, f"{ctx.where()}, {ctx.last} examples: {parts} {_seeds_note(len(e) for _, _, e in errs)}"


def _ablation_finding(ctx, factor, judge):
    abl, reason = ablation(ctx.res, factor)
    if abl is None:
        return None, reason
    errs, text = _arms_text(ctx, abl)
    ok, why = judge({v: e for v, _, e in errs})
    fac = FACTORS[factor]
    held = describe(abl.arms[0][1].config, omit=(fac.field, *fac.coupled))
    return ok, f"{text}; {why} [held: {held}]" + (
        f" [{abl.note}]" if abl.note else "")


def _pair(winner, loser, name_w, name_l):
    def judge(e):
        if winner not in e or loser not in e:
            return False, f"needs both {name_w} and {name_l}"
        ok, gap, need = beats(e[winner], e[loser])
        return ok, f"gap {gap:.3f} (needed > {need:.3f})"
    return judge


def _ordered(e, name, require):
    """Judge for heads and depth over values sorted ascending, the smallest
    the expected worst. require "all": every other value beats it; "ends":
    the largest beats it. Monotonicity is reported either way."""
    keys = sorted(e)
    worst = keys[0]
    reversals = [f"{name(b)} worse than {name(a)}" for a, b in zip(keys, keys[1:])
                 if beats(e[a], e[b])[0]]
    mono = "yes" if not reversals else "no (" + "; ".join(reversals) + ")"
    if require == "all":
        losers = [name(k) for k in keys[1:] if not beats(e[k], e[worst])[0]]
        ok = not losers
        why = (f"every larger value beats {name(worst)}: "
               f"{'yes' if ok else 'no (not: ' + ', '.join(losers) + ')'}")
    else:
        ok, gap, need = beats(e[keys[-1]], e[worst])
        why = f"{name(keys[-1])} vs {name(worst)}: gap {gap:.3f} (needed > {need:.3f})"
    return ok, f"{why}; monotone: {mono}"


def finding_3(ctx):
    return _ablation_finding(ctx, "attention", _pair("softmax", "linear", "softmax", "linear"))


def finding_4(ctx):
    def judge(e):
        ok, why = _ordered(e, lambda v: f"H = {v}", "all")
        if min(e) != 1:
            why += f"; note: the fewest heads in the grid is H = {min(e)}, not 1"
        return ok, why
    return _ablation_finding(ctx, "heads", judge)


def finding_5(ctx):
    return _ablation_finding(ctx, "ffn", _pair(1, 0, "MLP on", "MLP off"))


def finding_6(ctx):
    return _ablation_finding(ctx, "layers", lambda e: _ordered(e, lambda v: f"L = {v}", "ends"))


FINDINGS = {1: finding_1, 2: finding_2, 3: finding_3, 4: finding_4, 5: finding_5, 6: finding_6}


def checklist(res):
    """[Verdict] for SPEC's six findings, in order."""
    out = []
    ctx = Context(res) if res.groups() else None
    for n, fn in FINDINGS.items():
        if ctx is None:
            ok, text = None, "no finished runs in the file"
        elif len(ctx.xs) < 2:
            ok, text = None, f"N = {res.n_points} leaves fewer than two positions to compare"
        else:
            ok, text = fn(ctx)
        status = "NOT IN GRID" if ok is None else ("PASS" if ok else "FAIL")
        out.append(Verdict(n, CLAIMS[n], status, text))
    return out


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
    lines = ["| configuration | seeds | TF at %d | TF at %d | GD at %d |" % (ctx.first, ctx.last, ctx.last),
             "|---|---|---|---|---|"]
    for g in ctx.groups:
        cells = [spread(ctx.values(g.rows, i, which=w)).text()
                 for i, w in ((ctx.first, "tf"), (ctx.last, "tf"), (ctx.last, "gd"))]
        lines.append(f"| {describe(g.config)} | {len(g.rows)} | " + " | ".join(cells) + " |")
    return lines


def write_report(res, out_dir, band="minmax", log=print):
    """Draws the figures into out_dir and writes out_dir/report.md; returns
    (path of report.md, [Verdict])."""
    os.makedirs(out_dir, exist_ok=True)
    panels = draw_all(res, out_dir, band=band, log=log)
    verdicts = checklist(res)
    lines = _header(res) + ["", "## SPEC findings", ""]
    for v in verdicts:
        lines.append(f"- **{v.status}** — {v.number}. {v.claim}: {v.evidence}")
    lines += ["", "### How each finding is judged", "",
              f"Errors are `1 - cos(prediction, y*)` averaged over the evaluation contexts, "
              f"taken per seed at position 2 and at `last` = min(15, N-1) in-context examples, "
              f"at evaluation noise p = 0. \"A beats B\" means mean(B) - mean(A) > "
              f"max({MARGIN}, sd(A) + sd(B)), sd being the sample standard deviation across "
              f"seeds (0 with one seed), so a difference must exceed the seeds' scatter. "
              f"Values are written mean ± sd. The reference model is the finished "
              f"configuration closest to the file's most common value of every knob; an "
              f"ablation compares configurations that differ only in its factor. NOT IN GRID: "
              f"the file has no such comparison.", ""]
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
        print(f"{v.status:<11} {v.number}. {v.claim}\n            {v.evidence}", file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", help="an icasweep result file (HDF5)")
    ap.add_argument("--out", required=True, help="directory for report.md and the figures")
    ap.add_argument("--band", choices=sorted(BANDS), default="minmax",
                    help="figure bands across seeds: min-max (default) or mean ± 1 s.d.")
    ap.add_argument("--require", default="",
                    help="comma-separated findings that must PASS, e.g. 1,2,3 (exit 1 otherwise)")
    args = ap.parse_args(argv)
    try:
        required = {int(x) for x in args.require.split(",") if x.strip()}
    except ValueError:
        ap.error(f"--require {args.require!r}: expected finding numbers such as 1,2,3")
    if not required <= set(FINDINGS):
        ap.error(f"--require {args.require!r}: findings are numbered 1-6")
    try:
        res = load(args.results)
    except (OSError, ValueError) as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 2
    path, verdicts = write_report(res, args.out, band=args.band)
    print_checklist(verdicts)
    print(f"wrote {path}")
    missing = [v.number for v in verdicts if v.number in required and v.status != "PASS"]
    if missing:
        print(f"report.py: required findings not PASS: {', '.join(map(str, missing))}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
