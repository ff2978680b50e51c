#!/usr/bin/env python3
"""Result files in icasweep's exact layout (include/icasweep/store.h,
schema 2, or schema 1 with schema=1) with made-up but plausible curves, so
that the analysis can be tested on cases whose verdicts are known, without
the binary.

    make(path, configs, err_fn)    one row per configuration and seed
    paper_like(config, seed, p, i) curves showing all six findings (docs/science.md)
    blind_like, pick_like          the reference strategies near docs/science.md's values

usage: synthetic.py OUT.h5   writes a paper-like file (for trying the tools)
"""
import sys
import zlib

import h5py
import numpy as np

# /runs as the C program writes it (field order and types of store.c: the
# knobs in include/icasweep/knobs.def order, then the run's record).
KNOB_DTYPE = [
    ("dims", "<i4"), ("points", "<i4"), ("layers", "<i4"), ("heads", "<i4"), ("embd", "<i4"),
    ("attention", "S8"), ("ffn", "i1"), ("loss", "S8"), ("train_noise", "<f8"), ("lr", "<f8"),
    ("batch", "<i4"), ("steps", "<i4"), ("seed", "<u8"), ("eval_batch", "<i4")]
RECORD_DTYPE = [
    ("status", "S12"), ("reason", "S128"), ("wall_seconds", "<f8"),
    ("train_seconds", "<f8"), ("eval_seconds", "<f8"), ("final_loss", "<f4"),
    ("steps_done", "<i4"), ("host", "S64"), ("rank", "<i4"), ("threads", "<i4"),
    ("finished_at", "S32")]
RUN_DTYPE = np.dtype([("run_id", "S20"), ("row", "<i4"), *KNOB_DTYPE, *RECORD_DTYPE])

# The /runs knob attributes (store.c set_knob_attrs): name, label, section, meaning.
KNOB_ATTRS = (
    ("dims", "d", "task"), ("points", "N", "task"), ("layers", "L", "model"),
    ("heads", "H", "model"), ("embd", "E", "model"), ("attention", "attn", "model"),
    ("ffn", "ffn", "model"), ("loss", "loss", "training"), ("train_noise", "p", "training"),
    ("lr", "lr", "training"), ("batch", "batch", "training"), ("steps", "steps", "training"),
    ("seed", "seed", "training"), ("eval_batch", "eb", "evaluation"))

DEFAULTS = dict(layers=4, heads=3, embd=96, attention="softmax", ffn=1, loss="pl",
                train_noise=0.0, lr=1e-3, batch=64, steps=200, dims=5, points=20, eval_batch=64)


def gd_like(seed, p, k):
    """GD baseline: falls with k examples while the critic is informative,
    flat at p = 1."""
    return 0.3 + 0.55 * np.exp(-k / 4.0) * (1 - p) + 0.55 * p + 0.002 * seed


def blind_like(seed, k):
    """Reward-blind average: docs/science.md's Monte Carlo 0.402, 0.372,
    0.353, 0.345, 0.342 at k = 1, 2, 5, 10, 15 within about 0.01; the same
    at every p."""
    return 0.34 + 0.065 * np.exp(-(k - 1) / 2.2) + 0.002 * seed


def pick_like(seed, p, k):
    """Highest-seen-reward response: towards 0.007 at p = 0, about 0.2 at
    p = 0.5 and 0.4 at p = 1 (docs/science.md's values at k = 15)."""
    follows = 0.40 * np.exp(-(k - 1) / 3.0) + 0.007
    return p * 0.40 + (1 - p) * follows + 0.002 * seed


def jitter(config, seed):
    """A fixed pseudo-random number in [-1, 1] per configuration and seed,
    so that seeds scatter differently in every configuration (paired
    differences have a spread)."""
    key = repr(sorted(config.items())) + f"/{seed}"
    return zlib.crc32(key.encode()) / 0x7FFFFFFF - 1.0


def make(path, configs, err_fn, noise=(0.0, 0.5, 1.0), N=20, seeds=(0, 1, 2),
         status=None, gd_fn=gd_like, blind_fn=blind_like, pick_fn=pick_like, schema=2,
         knob_attrs=True, new_knobs=(), grid=None):
    """Writes a result file with one row per (configuration, seed), seeds
    innermost like the plan order. configs: dicts overriding DEFAULTS;
    err_fn(config, seed, p, i) -> transformer error; status(config, seed) ->
    a status string (default "done"); rows not "done" get NaN curves.
    schema=2 adds /eval/blind_err (blind_fn(seed, k)) and /eval/pick_err
    (pick_fn(seed, p, k)), NaN at k = 0; schema=1 leaves them out.
    knob_attrs=False leaves out the /runs knob attributes, as files written
    before them; new_knobs: (name, label, section, meaning, numpy type,
    default) of knobs added after those, each a column after eval_batch.
    grid: the grid text the file keeps (default: a comment line)."""
    defaults = dict(DEFAULTS, **{k[0]: k[5] for k in new_knobs})
    plan = [(dict(defaults, **c), s) for c in configs for s in seeds]
    R, P, S = len(plan), len(noise), max(c["steps"] for c, _ in plan)
    dtype = np.dtype([("run_id", "S20"), ("row", "<i4"), *KNOB_DTYPE,
                      *((k[0], k[4]) for k in new_knobs), *RECORD_DTYPE])
    runs = np.zeros(R, dtype=dtype)
    tf = np.full((R, P, N), np.nan, dtype="f4")
    gd = np.full((R, P, N), np.nan, dtype="f4")
    blind = np.full((R, P, N), np.nan, dtype="f4")
    pick = np.full((R, P, N), np.nan, dtype="f4")
    loss = np.full((R, S), np.nan, dtype="f4")
    for r, (c, s) in enumerate(plan):
        st = status(c, s) if status else "done"
        for k, v in c.items():
            runs[k][r] = v.encode() if isinstance(v, str) else v
        runs["run_id"][r] = f"r{r:016x}".encode()
        runs["row"][r], runs["seed"][r], runs["status"][r] = r, s, st.encode()
        runs["host"][r], runs["threads"][r] = b"synthetic", 1
        if st != "done":
            runs["reason"][r] = f"synthetic {st} run".encode()
            continue
        runs["steps_done"][r] = c["steps"]
        runs["wall_seconds"][r] = runs["train_seconds"][r] = 1.0
        runs["finished_at"][r] = b"2026-01-01T00:00:00Z"
        for pi, p in enumerate(noise):
            for i in range(N):
                tf[r, pi, i] = err_fn(c, s, p, i)
                gd[r, pi, i] = gd_fn(s, p, i)
                if i > 0:
                    blind[r, pi, i] = blind_fn(s, i)
                    pick[r, pi, i] = pick_fn(s, p, i)
        loss[r, :c["steps"]] = 20.0 * np.exp(-np.arange(c["steps"]) / 50.0) + 10.0
        runs["final_loss"][r] = loss[r, c["steps"] - 1]
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = np.int32(schema)
        f.attrs["program_version"] = np.bytes_(b"synthetic")
        f.attrs["git_revision"] = np.bytes_(b"none")
        f.attrs["grid"] = np.bytes_((grid or "# synthetic file made by analysis/tests/"
                                     "synthetic.py\n").encode())
        f.attrs["created"] = np.bytes_(b"2026-01-01T00:00:00Z")
        for name, data, text in (
                ("runs", runs, "one row per run"),
                ("eval/noise", np.asarray(noise, dtype="f8"), "evaluation noise levels"),
                ("eval/tf_err", tf, "transformer error [run, eval noise, i]"),
                ("eval/gd_err", gd, "GD baseline error [run, eval noise, k]"),
                ("eval/blind_err", blind, "reward-blind average [run, eval noise, k]"),
                ("eval/pick_err", pick, "critic-following pick [run, eval noise, k]"),
                ("train/step", np.arange(1, S + 1, dtype="i4"), "training steps"),
                ("train/loss", loss, "training loss [run, step]")):
            if schema < 2 and name in ("eval/blind_err", "eval/pick_err"):
                continue
            f[name] = data
            f[name].attrs["description"] = np.bytes_(text.encode())
        if knob_attrs:
            knobs = [(n, lab, sec, f"meaning of {n}") for n, lab, sec in KNOB_ATTRS]
            knobs += [k[:4] for k in new_knobs]
            for i, attr in enumerate(("knobs", "knob_labels", "knob_sections", "knob_meanings")):
                f["runs"].attrs[attr] = np.array([k[i].encode() for k in knobs])
    return path


def quality(config):
    """How much a configuration learns from the context: softmax, heads,
    the MLP and depth all help (findings 3-6)."""
    q = 0.25 if config["attention"] == "softmax" else 0.05
    q += 0.05 * np.log2(config["heads"] + 1) + 0.015 * config["layers"] + 0.1 * config["ffn"]
    return q


def paper_like(config, seed, p, i):
    """Transformer error: falls with i like the GD baseline, less the noisier
    the critic, not at all at p = 1; seeds scatter by a few thousandths, a
    shared level per seed plus a part of their own per configuration in
    both the level and how much the run learns."""
    own = jitter(config, seed)
    learned = (1 - p) * (0.55 + quality(config)) * (1 + 0.01 * own) * (1 - np.exp(-i / 4.0))
    return 0.95 - 0.6 * learned + 0.003 * (seed - 1) + 0.002 * own


PAPER_CONFIGS = ([dict(layers=L) for L in (2, 4, 8)]
                 + [dict(heads=H, embd=32 * H) for H in (1, 4, 6)]
                 + [dict(attention="linear"), dict(ffn=0)])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(make(sys.argv[1], PAPER_CONFIGS, paper_like, noise=(0, 0.25, 0.5, 0.75, 1)))
