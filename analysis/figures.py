#!/usr/bin/env python3
"""Redraw the paper's panels from any icasweep result file.

usage: figures.py RESULTS.h5 --out DIR

Panels (each as PNG and PDF): TF vs GD, reward noise p, depth, heads,
softmax vs linear, MLP on/off, training reward noise. Each plots the error
1 - cos(prediction, y*) against the number of in-context examples (2..15),
the mean across seeds with a band from the lowest to the highest seed. An
ablation panel compares runs that differ only in that factor, the other
knobs held at the file's most common values; a panel whose factor does not
vary in the file is skipped with a message.
"""
import argparse
import os
import sys
from collections import Counter

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from icaresults import CONFIG_FIELDS, load  # noqa: E402

# factor -> (title, fields that change along with it)
FACTORS = {
    "layers": ("Depth (layers L)", ()),
    "heads": ("Heads H (E = 32 H)", ("embd",)),
    "attention": ("Softmax vs linear attention", ()),
    "ffn": ("MLP block on / off", ()),
    "train_noise": ("Reward noise in training", ()),
}


def positions(res):
    """The plotted range of in-context examples: 2..15 (or N-1)."""
    n = res.tf_err.shape[2]
    return np.arange(2, min(15, n - 1) + 1)


def noise_index(res, p=0.0):
    i = int(np.argmin(np.abs(res.noise - p)))
    return i


def done_rows(res):
    return res.select(status="done")


def base_config(res, rows):
    """The most common value of every configuration field among rows."""
    return {f: Counter(res.runs[f][rows].tolist()).most_common(1)[0][0] for f in CONFIG_FIELDS}


def ablation(res, factor):
    """{factor value: rows} for runs that differ from the base configuration
    only in `factor` (and the fields that move with it); None if the factor
    does not vary there."""
    rows = done_rows(res)
    if len(rows) == 0:
        return None
    base = base_config(res, rows)
    free = {factor, *FACTORS.get(factor, ("", ()))[1]}
    keep = [r for r in rows if all(res.runs[f][r] == base[f] for f in CONFIG_FIELDS if f not in free)]
    by_value = {}
    for r in keep:
        by_value.setdefault(res.runs[factor][r].item(), []).append(r)
    if len(by_value) < 2:
        return None
    return dict(sorted(by_value.items()))


def curve(err, rows, p_index, xs):
    """Mean, min and max across rows (seeds) of err[rows, p, xs]."""
    y = err[np.asarray(rows)][:, p_index, :][:, xs]
    return y.mean(axis=0), y.min(axis=0), y.max(axis=0)


def label(factor, value):
    if factor == "ffn":
        return "MLP on" if value else "MLP off"
    if factor == "train_noise":
        return f"train p = {value:g}"
    if factor in ("layers", "heads"):
        return f"{'L' if factor == 'layers' else 'H'} = {value}"
    return str(value)


def _axes(title):
    fig, ax = plt.subplots(figsize=(5.2, 3.8), dpi=120)
    ax.set_title(title)
    ax.set_xlabel("in-context examples")
    ax.set_ylabel("error 1 - cos(prediction, y*)")
    ax.grid(alpha=0.3)
    return fig, ax


def _band(ax, xs, mean, lo, hi, name, n, **kw):
    (line,) = ax.plot(xs, mean, marker="o", ms=3, label=f"{name} ({n} seed{'s' * (n > 1)})", **kw)
    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)


def _save(fig, out_dir, name, written):
    fig.tight_layout()
    for ext in ("png", "pdf"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path)
        written.append(path)
    plt.close(fig)


def draw_all(res, out_dir, log=print):
    """Draws every panel the file supports; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    xs = positions(res)
    rows = done_rows(res)
    if len(rows) == 0:
        log("skipped all panels: no finished runs in the file")
        return written
    p0 = noise_index(res, 0.0)
    base = base_config(res, rows)
    base_rows = [r for r in rows if all(res.runs[f][r] == base[f] for f in CONFIG_FIELDS)]

    fig, ax = _axes(f"Transformer vs GD baseline (p = {res.noise[p0]:g})")
    _band(ax, xs, *curve(res.tf_err, base_rows, p0, xs), "transformer", len(base_rows))
    _band(ax, xs, *curve(res.gd_err, base_rows, p0, xs), "GD baseline", len(base_rows), ls="--")
    ax.legend(fontsize=8)
    _save(fig, out_dir, "tf_vs_gd", written)

    if len(res.noise) > 1:
        fig, ax = _axes("Critic (reward) noise p at evaluation")
        for pi, p in enumerate(res.noise):
            _band(ax, xs, *curve(res.tf_err, base_rows, pi, xs), f"p = {p:g}", len(base_rows))
        ax.legend(fontsize=8)
        _save(fig, out_dir, "reward_noise", written)
    else:
        log("skipped reward_noise: one evaluation noise level")

    for factor, (title, _) in FACTORS.items():
        groups = ablation(res, factor)
        if groups is None:
            log(f"skipped {factor}: it does not vary among comparable runs")
            continue
        fig, ax = _axes(f"{title} (p = {res.noise[p0]:g})")
        for value, grows in groups.items():
            _band(ax, xs, *curve(res.tf_err, grows, p0, xs), label(factor, value), len(grows))
        ax.legend(fontsize=8)
        _save(fig, out_dir, factor, written)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("--out", required=True, help="directory for the figures")
    args = ap.parse_args(argv)
    res = load(args.results)
    for path in draw_all(res, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
