#!/usr/bin/env python3
"""Redraw the paper's panels from any icasweep result file.

usage: figures.py RESULTS.h5 --out DIR [--band minmax|std]

Every panel plots the error 1 - cos(prediction, y*) against the number of
in-context examples, 2..15 (or 2..N-1 when N <= 16): a line for the mean
over seeds and a band across seeds (min-max by default, or mean ± one
sample standard deviation), legend and caption saying which. Only finished
("done") runs are drawn. When the file has them (schema version 2), the
reference strategies are drawn as mean lines without bands: the reward-blind
average (dotted) and the highest-seen-reward pick (dash-dot).

  tf_vs_gd        transformer vs GD baseline at eval noise 0, reference model
  tf_vs_gd_all    the same for every configuration (small multiples)
  reward_noise    the reference model at every evaluation noise level p
  train_noise     models trained at different reward noise
  layers, heads, attention, ffn, loss
                  one-factor ablations at eval noise 0
  train_loss      training loss against step

The reference model is the configuration closest to the file's most common
value of every knob. An ablation compares configurations that differ only in
its factor (the heads panel lets E move with H), the other knobs held at the
reference's values when the reference belongs to such a set. A panel whose
factor does not vary that way is skipped with a "skipped: ..." line. Each
panel is written as PNG and PDF; the paths are printed.
"""
import argparse
import os
import sys
from dataclasses import dataclass, field

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from icaresults import (ablation, ablation_factors, describe, factor_of, label,  # noqa: E402
                        load, positions, reference_group, reference_noise)

BANDS = {"minmax": "min-max over seeds", "std": "mean ± 1 s.d. over seeds"}
MAX_SMALL_MULTIPLES = 24


@dataclass
class Panel:
    name: str
    title: str
    caption: str
    files: list = field(default_factory=list)


def _seeds(n):
    return f"{n} seed{'s' if n != 1 else ''}"


def _axes(title, ncols=1, nrows=1, size=(5.6, 4.0)):
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                             dpi=120, squeeze=False)
    fig.suptitle(title, fontsize=11)
    return fig, axes.ravel()


def _style(ax, xs, title=None):
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xlabel("in-context examples")
    ax.set_ylabel("error 1 - cos(prediction, y*)")
    ax.set_xticks(xs if len(xs) <= 16 else xs[::2])
    ax.grid(alpha=0.3)


def _curve(ax, res, rows, p, xs, name, band, which="tf", shade=True, **kw):
    s = res.stats(rows, p, which)
    mean = s.mean[xs]
    (line,) = ax.plot(xs, mean, marker="o" if which == "tf" else None, ms=3,
                      label=f"{name} ({_seeds(s.n)})", **kw)
    if shade and s.n > 1:
        lo, hi = (s.lo[xs], s.hi[xs]) if band == "minmax" else (mean - s.std[xs], mean + s.std[xs])
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return line


BLIND_STYLE = dict(ls=":", lw=1.4)
PICK_STYLE = dict(ls="-.", lw=1.0)
BLIND_NAME = "blind: reward-blind average"
PICK_NAME = "pick: highest seen reward"


def _reference_lines(ax, res, rows, p, xs, blind=True, pick=True, pick_name=PICK_NAME,
                     pick_color="0.35"):
    """The reference strategies (mean over seeds); nothing for a file that
    does not have them. blind is the same at every p, pick depends on p."""
    if not res.has("blind"):
        return False
    if blind:
        ax.plot(xs, res.stats(rows, p, "blind").mean[xs], color="k", label=BLIND_NAME,
                **BLIND_STYLE)
    if pick:
        ax.plot(xs, res.stats(rows, p, "pick").mean[xs], color=pick_color, label=pick_name,
                **PICK_STYLE)
    return True


def _reference_caption(res, pick=True):
    if not res.has("blind"):
        return " Reference strategies not drawn: " + res.missing_text("blind") + "."
    return (" Reference strategies, mean over seeds: the reward-blind average of the k "
            "responses (dotted)" + (" and the response with the highest seen reward "
                                    "(dash-dot)" if pick else "") + ".")


def _legend(ax, band):
    """Inside the axes for a few lines; beside them for more, where it
    cannot hide a curve."""
    n = len(ax.get_legend_handles_labels()[0])
    where = {} if n <= 4 else dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    ax.legend(fontsize=7, title=f"line: mean; band: {BANDS[band]}", title_fontsize=7, **where)


def _save(fig, out_dir, panel):
    fig.tight_layout()
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{panel.name}.{ext}")
        fig.savefig(path)
        panel.files.append(path)
    plt.close(fig)
    return panel


def panel_tf_vs_gd(res, out_dir, band, ref):
    xs, p = positions(res), reference_noise(res)
    fig, (ax,) = _axes(f"Transformer vs GD baseline (eval noise p = {p:g})")
    _curve(ax, res, ref.rows, p, xs, "transformer", band)
    _curve(ax, res, ref.rows, p, xs, "GD baseline", band, which="gd", ls="--", color="k")
    _reference_lines(ax, res, ref.rows, p, xs)
    _style(ax, xs, describe(ref.config))
    _legend(ax, band)
    return _save(fig, out_dir, Panel(
        "tf_vs_gd", "Transformer vs GD baseline",
        f"Error against in-context examples at evaluation noise p = {p:g} for the reference "
        f"model ({describe(ref.config)}; {_seeds(len(ref.rows))}): transformer (solid) and "
        f"GD baseline with the same number of examples (dashed). Lines: mean over seeds; "
        f"bands: {BANDS[band]}." + _reference_caption(res)))


def panel_tf_vs_gd_all(res, out_dir, band, groups, log):
    xs, p = positions(res), reference_noise(res)
    if len(groups) > MAX_SMALL_MULTIPLES:
        log(f"note: tf_vs_gd_all shows the first {MAX_SMALL_MULTIPLES} of {len(groups)} configurations")
        groups = groups[:MAX_SMALL_MULTIPLES]
    ncols = min(4, len(groups))
    nrows = -(-len(groups) // ncols)
    fig, axes = _axes(f"Transformer (solid) vs GD baseline (dashed), every configuration, "
                      f"p = {p:g}; band: {BANDS[band]}", ncols, nrows, size=(4.0, 3.2))
    top = max(np.nanmax(res.stats(g.rows, p, w).hi[xs]) for g in groups for w in ("tf", "gd"))
    for ax, g in zip(axes, groups):
        _curve(ax, res, g.rows, p, xs, "TF", band)
        _curve(ax, res, g.rows, p, xs, "GD", band, which="gd", ls="--", color="k")
        _reference_lines(ax, res, g.rows, p, xs, pick=False)
        _style(ax, xs)
        ax.set_title(describe(g.config, sep="\n"), fontsize=6)
        ax.set_ylim(0, top * 1.05)
        ax.legend(fontsize=6)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    return _save(fig, out_dir, Panel(
        "tf_vs_gd_all", "Transformer vs GD baseline, every configuration",
        f"As above for every finished configuration (one panel each, shared y axis), "
        f"p = {p:g}. Bands: {BANDS[band]}." + _reference_caption(res, pick=False)))


def panel_reward_noise(res, out_dir, band, ref):
    xs = positions(res)
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(res.noise)))
    fig, (ax,) = _axes("Critic (reward) noise p at evaluation", size=(7.6, 4.0))
    for p, color in zip(sorted(res.noise), colors):
        _curve(ax, res, ref.rows, p, xs, f"p = {p:g}", band, color=color)
        _curve(ax, res, ref.rows, p, xs, f"GD, p = {p:g}", band, which="gd", shade=False,
               color=color, ls="--", lw=0.8)
        _reference_lines(ax, res, ref.rows, p, xs, blind=False, pick_name=f"pick, p = {p:g}",
                         pick_color=color)
    _reference_lines(ax, res, ref.rows, reference_noise(res), xs, pick=False)
    _style(ax, xs, describe(ref.config))
    _legend(ax, band)
    refs = (" The reward-blind average (dotted black, the same at every p) and the "
            "response with the highest seen reward at each p (dash-dot, the colour of its p): "
            "means over seeds." if res.has("blind") else _reference_caption(res))
    return _save(fig, out_dir, Panel(
        "reward_noise", "Reward noise p at evaluation",
        f"The reference model ({describe(ref.config)}) evaluated with reward noise "
        f"p = {', '.join(f'{p:g}' for p in sorted(res.noise))}: transformer (solid, with bands: "
        f"{BANDS[band]}) and GD baseline at the same p (dashed, mean only)." + refs))


def panel_ablation(res, out_dir, band, abl, log):
    fac = factor_of(res, abl.factor)
    xs, p = positions(res), reference_noise(res)
    evals = [("p = %g" % p, lambda value: p)]
    if abl.factor == "train_noise" and all(np.isclose(res.noise, v).any() for v, _ in abl.arms):
        evals.append(("p = the training p", lambda value: value))
    wide = len(abl.arms) + (len(evals) == 1) > 4
    held = describe(abl.arms[0][1].config, omit=(fac.field, *fac.coupled))
    fig, axes = _axes(fac.title, ncols=len(evals), size=(7.4 if wide else 5.6, 4.2))
    for ax, (what, eval_p) in zip(axes, evals):
        for value, g in abl.arms:
            _curve(ax, res, g.rows, eval_p(value), xs, label(abl.factor, value, g.config), band)
        if len(evals) == 1:  # GD and blind are the same for every arm at one p
            _curve(ax, res, abl.arms[0][1].rows, p, xs, "GD baseline", band, which="gd",
                   shade=False, ls="--", color="0.5", lw=1)
            _reference_lines(ax, res, abl.arms[0][1].rows, p, xs, pick=False)
        _style(ax, xs, f"{held}\neval noise {what}")
        _legend(ax, band)
    if abl.note:
        log(f"note: {abl.factor}: {abl.note}")
    return _save(fig, out_dir, Panel(
        abl.factor, fac.title,
        f"{fac.title}: configurations differing only in {abl.factor}"
        f"{' (and ' + ', '.join(fac.coupled) + ')' if fac.coupled else ''}; held: {held}. "
        f"Evaluation noise {' and '.join(w for w, _ in evals)}"
        f"{'; GD baseline dashed grey' if len(evals) == 1 else ''}. "
        f"Lines: mean over seeds; bands: {BANDS[band]}."
        + (_reference_caption(res, pick=False) if len(evals) == 1 else "")
        + (f" Note: {abl.note}." if abl.note else "")))


def panel_train_loss(res, out_dir, groups):
    shown = groups[:12]
    fig, (ax,) = _axes("Training loss")
    for g in shown:
        loss = res.train_loss[g.rows]
        if np.isnan(loss).all():
            continue
        with np.errstate(all="ignore"):
            mean = np.nanmean(loss, axis=0)
        ax.plot(res.train_step, mean, lw=1, label=describe(g.config, sep="\n").split("\n")[0])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return _save(fig, out_dir, Panel(
        "train_loss", "Training loss",
        f"Mean training loss over seeds against step, "
        f"{'the first 12 of ' if len(groups) > 12 else ''}{len(groups)} configurations."))


def draw_all(res, out_dir, band="minmax", log=print):
    """Draws every panel the file supports into out_dir; returns the Panels
    written and reports skipped ones through log("skipped: ...")."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {', '.join(BANDS)}, not {band!r}")
    os.makedirs(out_dir, exist_ok=True)
    groups = res.groups()
    if not groups:
        log("skipped: every panel: no finished runs in the file")
        return []
    if len(positions(res)) < 2:
        log(f"skipped: every panel: N = {res.n_points} leaves fewer than two positions to plot")
        return []
    ref = reference_group(res, groups)
    panels = [panel_tf_vs_gd(res, out_dir, band, ref)]
    if len(groups) > 1:
        panels.append(panel_tf_vs_gd_all(res, out_dir, band, groups, log))
    else:
        log("skipped: tf_vs_gd_all: one configuration (see tf_vs_gd)")
    if len(res.noise) > 1:
        panels.append(panel_reward_noise(res, out_dir, band, ref))
    else:
        log(f"skipped: reward_noise: one evaluation noise level ({res.noise[0]:g})")
    for factor in ablation_factors(res):
        abl, reason = ablation(res, factor)
        if abl is None:
            log(f"skipped: {factor}: {reason}")
        else:
            panels.append(panel_ablation(res, out_dir, band, abl, log))
    if np.isfinite(res.train_loss).any():
        panels.append(panel_train_loss(res, out_dir, groups))
    else:
        log("skipped: train_loss: no finite training loss in the file")
    return panels


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("results", help="an icasweep result file (HDF5)")
    ap.add_argument("--out", required=True, help="directory for the PNG and PDF files")
    ap.add_argument("--band", choices=sorted(BANDS), default="minmax",
                    help="band across seeds: min-max (default) or mean ± 1 s.d.")
    args = ap.parse_args(argv)
    try:
        res = load(args.results)
    except (OSError, ValueError) as e:
        print(f"figures.py: {e}", file=sys.stderr)
        return 1
    for panel in draw_all(res, args.out, band=args.band):
        for path in panel.files:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
