"""Load an icasweep result file into a table and its curves.

    from icaresults import load
    res = load("results.h5")
    res.runs                   # numpy structured array (strings decoded)
    res.tf_err[row, p, i]      # transformer error, eval noise p, i examples
    res.select(attention="softmax", status="done")   # row indices
    res.frame()                # a pandas DataFrame, when pandas is installed
"""
from dataclasses import dataclass, field

import h5py
import numpy as np

SCHEMA_VERSION = 1

# What identifies a configuration apart from its seed.
CONFIG_FIELDS = ("layers", "heads", "embd", "attention", "ffn", "loss", "train_noise",
                 "lr", "batch", "steps", "dims", "points", "eval_batch")


@dataclass
class Results:
    path: str
    runs: np.ndarray
    noise: np.ndarray
    tf_err: np.ndarray
    gd_err: np.ndarray
    train_step: np.ndarray
    train_loss: np.ndarray
    attrs: dict = field(default_factory=dict)

    def select(self, **conditions):
        """Row indices whose fields equal the given values (a list or tuple
        of values means any of them)."""
        mask = np.ones(len(self.runs), dtype=bool)
        for name, want in conditions.items():
            col = self.runs[name]
            if isinstance(want, (list, tuple, set)):
                mask &= np.isin(col, list(want))
            else:
                mask &= col == want
        return np.flatnonzero(mask)

    def groups(self, rows=None):
        """Rows grouped by configuration (every CONFIG_FIELDS value), seeds
        together: a list of (config dict, row indices), in row order."""
        rows = np.arange(len(self.runs)) if rows is None else np.asarray(rows)
        out = {}
        for r in rows:
            key = tuple(self.runs[f][r].item() for f in CONFIG_FIELDS)
            out.setdefault(key, []).append(int(r))
        return [(dict(zip(CONFIG_FIELDS, k)), np.array(v)) for k, v in out.items()]

    def frame(self):
        """The /runs table as a pandas DataFrame (needs pandas)."""
        import pandas as pd  # optional dependency
        return pd.DataFrame(self.runs)


def _decode(table):
    """Fixed-length byte strings become str columns."""
    dtype = []
    for name in table.dtype.names:
        kind = table.dtype[name].kind
        dtype.append((name, f"U{table.dtype[name].itemsize}" if kind == "S" else table.dtype[name]))
    out = np.empty(len(table), dtype=dtype)
    for name in table.dtype.names:
        col = table[name]
        out[name] = np.char.decode(col, "utf-8") if col.dtype.kind == "S" else col
    return out


def load(path):
    """Reads a result file; raises ValueError naming the file when it is not
    one this code understands."""
    with h5py.File(path, "r") as f:
        version = f.attrs.get("schema_version")
        if version is None or int(version) != SCHEMA_VERSION:
            raise ValueError(f"{path}: schema version {version}, this loader reads {SCHEMA_VERSION}")
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        return Results(
            path=path,
            runs=_decode(f["runs"][()]),
            noise=f["eval/noise"][()],
            tf_err=f["eval/tf_err"][()],
            gd_err=f["eval/gd_err"][()],
            train_step=f["train/step"][()],
            train_loss=f["train/loss"][()],
            attrs=attrs,
        )
