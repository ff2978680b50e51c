"""Exit 0 when two result files hold identical numbers for every run.

Compares /eval/*, /train/* and /selfcorrect/* (when present) bit for bit and every /runs field that depends
only on the configuration and seed (not host, rank, threads, timings).
usage: compare_results.py A.h5 B.h5 [--require-done]
"""
import sys

import h5py
import numpy as np

VOLATILE = {"host", "rank", "threads", "wall_seconds", "train_seconds",
            "eval_seconds", "finished_at"}


def main(a_path, b_path, require_done):
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        problems = []
        names = ["eval/noise", "eval/tf_err", "eval/gd_err", "eval/blind_err",
                 "eval/pick_err", "train/step", "train/loss"]
        if "selfcorrect" in a or "selfcorrect" in b:
            names += [f"selfcorrect/{k}" for k in ("q", "k0", "round", "err", "open_err",
                                                    "critic_tau")]
        for name in names:
            if name not in a or name not in b:
                problems.append(f"{name} is in one file only")
                continue
            x, y = a[name][()], b[name][()]
            if x.shape != y.shape or x.tobytes() != y.tobytes():
                diff = np.nanmax(np.abs(x - y)) if x.shape == y.shape else "shape"
                problems.append(f"{name} differs (max |diff| {diff})")
        ra, rb = a["runs"][()], b["runs"][()]
        for field in ra.dtype.names:
            if field in VOLATILE:
                continue
            if ra[field].tobytes() != rb[field].tobytes():
                problems.append(f"runs.{field} differs")
        if require_done:
            for f, r in ((a_path, ra), (b_path, rb)):
                bad = [s.decode() for s in r["status"] if s != b"done"]
                if bad:
                    problems.append(f"{f}: {len(bad)} runs not done: {sorted(set(bad))}")
        print(f"compared {len(ra)} runs: " + ("identical" if not problems else "; ".join(problems)))
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], "--require-done" in sys.argv))
