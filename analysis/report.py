#!/usr/bin/env python3
"""Write DIR/report.md: the figures and a checklist of SPEC's six findings.

usage: report.py RESULTS.h5 --out DIR

Each finding is PASS, FAIL or NOT IN GRID, with the numbers behind it:
errors at the last plotted position (15 examples, or N-1) at evaluation
noise 0, mean ± standard deviation across seeds, per arm.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from figures import ablation, base_config, curve, done_rows, draw_all, label, noise_index, positions  # noqa: E402
from icaresults import CONFIG_FIELDS, load  # noqa: E402

# How much lower (in error) one arm must be to count as better; the seed
# spread is reported beside it so a reader can judge.
MARGIN = 0.01


def at_last(res, rows, p_index):
    """Error at the last plotted position for each row."""
    last = positions(res)[-1]
    return res.tf_err[np.asarray(rows), p_index, last]


def fmt(values):
    v = np.asarray(values, dtype=float)
    spread = f" ± {v.std():.3f}" if len(v) > 1 else ""
    return f"{v.mean():.3f}{spread} ({len(v)} seed{'s' * (len(v) > 1)})"


def finding_tracks_gd(res):
    rows = done_rows(res)
    base = base_config(res, rows)
    brows = [r for r in rows if all(res.runs[f][r] == base[f] for f in CONFIG_FIELDS)]
    p0, xs = noise_index(res, 0.0), positions(res)
    tf, _, _ = curve(res.tf_err, brows, p0, xs)
    gd, _, _ = curve(res.gd_err, brows, p0, xs)
    falls = tf[-1] < tf[0] - MARGIN
    corr = float(np.corrcoef(tf, gd)[0, 1]) if np.std(tf) > 0 and np.std(gd) > 0 else 0.0
    ok = falls and corr > 0.5
    return ok, (f"transformer error {tf[0]:.3f} at {xs[0]} examples -> {tf[-1]:.3f} at {xs[-1]}; "
                f"GD {gd[0]:.3f} -> {gd[-1]:.3f}; correlation of the curves {corr:.2f} "
                f"(PASS: falls by > {MARGIN} and correlation > 0.5)")


def finding_noise(res):
    if len(res.noise) < 2:
        return None, "one evaluation noise level"
    rows = done_rows(res)
    base = base_config(res, rows)
    brows = [r for r in rows if all(res.runs[f][r] == base[f] for f in CONFIG_FIELDS)]
    xs = positions(res)
    means = [float(at_last(res, brows, pi).mean()) for pi in range(len(res.noise))]
    rises = means[-1] > means[0] + MARGIN and all(b >= a - MARGIN for a, b in zip(means, means[1:]))
    parts = [f"p={p:g}: {fmt(at_last(res, brows, pi))}" for pi, p in enumerate(res.noise)]
    text = "error at %d examples: %s" % (xs[-1], "; ".join(parts))
    if res.noise.max() >= 1.0:
        pi = int(np.argmax(res.noise))
        tf, _, _ = curve(res.tf_err, brows, pi, xs)
        flat = tf[-1] > tf[0] - 0.05
        text += f"; at p=1 the curve goes {tf[0]:.3f} -> {tf[-1]:.3f} ({'flat' if flat else 'still falling'})"
        rises = rises and flat
    return rises, text + " (PASS: rises with p, and flat at p=1)"


def finding_ablation(res, factor, better, describe):
    """better(values) -> (winner, loser) values to compare."""
    groups = ablation(res, factor)
    if groups is None:
        return None, f"{factor} does not vary among comparable runs"
    p0 = noise_index(res, 0.0)
    errs = {v: at_last(res, rows, p0) for v, rows in groups.items()}
    parts = [f"{label(factor, v)}: {fmt(e)}" for v, e in errs.items()]
    ok = better(errs)
    return ok, f"error at {positions(res)[-1]} examples, p=0: " + "; ".join(parts) + f" (PASS: {describe})"


def mean(e):
    return float(np.mean(e))


FINDINGS = [
    ("1. Error falls with in-context examples and tracks the GD baseline", finding_tracks_gd),
    ("2. Critic quality matters: error rises with reward noise p; nothing learned at p = 1",
     finding_noise),
    ("3. Softmax attention beats linear attention",
     lambda r: finding_ablation(r, "attention",
                                lambda e: "softmax" in e and "linear" in e
                                and mean(e["softmax"]) < mean(e["linear"]) - MARGIN,
                                "softmax lower than linear")),
    ("4. More heads help; one head is worst",
     lambda r: finding_ablation(r, "heads",
                                lambda e: min(e) in e and all(mean(e[min(e)]) > mean(v) + MARGIN
                                                              for k, v in e.items() if k != min(e))
                                and mean(e[max(e)]) < mean(e[min(e)]),
                                "fewest heads worst")),
    ("5. The MLP block matters",
     lambda r: finding_ablation(r, "ffn",
                                lambda e: 0 in e and 1 in e and mean(e[1]) < mean(e[0]) - MARGIN,
                                "MLP on lower than off")),
    ("6. Depth helps",
     lambda r: finding_ablation(r, "layers",
                                lambda e: mean(e[max(e)]) < mean(e[min(e)]) - MARGIN,
                                "deepest lower than shallowest")),
]


def checklist(res):
    """[(title, 'PASS'|'FAIL'|'NOT IN GRID', evidence)]"""
    out = []
    for title, fn in FINDINGS:
        if len(done_rows(res)) == 0:
            out.append((title, "NOT IN GRID", "no finished runs"))
            continue
        ok, text = fn(res)
        out.append((title, "NOT IN GRID" if ok is None else ("PASS" if ok else "FAIL"), text))
    return out


def write_report(res, out_dir, log=print):
    figures = draw_all(res, out_dir, log=log)
    rows = res.runs
    counts = {s: int((rows["status"] == s).sum()) for s in
              ("done", "diverged", "failed", "interrupted", "pending")}
    items = checklist(res)
    lines = [f"# icasweep report: {os.path.basename(res.path)}", "",
             f"- file: `{res.path}`",
             f"- program version {res.attrs.get('program_version', '?')}, "
             f"git revision {res.attrs.get('git_revision', '?')}",
             "- runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
             f"- evaluation noise levels: {', '.join(f'{p:g}' for p in res.noise)}", "",
             "## SPEC findings", "",
             "| finding | result | evidence |", "|---|---|---|"]
    for title, verdict, text in items:
        lines.append(f"| {title} | **{verdict}** | {text} |")
    lines += ["", "Errors are `1 - cos(prediction, y*)` averaged over the evaluation contexts; "
              "`±` is the standard deviation across seeds; bands in the figures span the "
              "lowest to the highest seed.", "", "## Figures", ""]
    for path in figures:
        if path.endswith(".png"):
            name = os.path.basename(path)
            lines += [f"![{name}]({name})", ""]
    report = os.path.join(out_dir, "report.md")
    with open(report, "w") as f:
        f.write("\n".join(lines) + "\n")
    return report, items


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    res = load(args.results)
    report, items = write_report(res, args.out)
    for title, verdict, text in items:
        print(f"{verdict:11s} {title}\n            {text}")
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
