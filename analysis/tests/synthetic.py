"""Result files in icasweep's layout with made-up curves, to test the
analysis logic on cases whose verdicts are known."""
import h5py
import numpy as np

FIELDS = [("run_id", "S20"), ("row", "<i4"), ("layers", "<i4"), ("heads", "<i4"),
          ("embd", "<i4"), ("attention", "S8"), ("ffn", "i1"), ("loss", "S4"),
          ("train_noise", "<f8"), ("lr", "<f8"), ("batch", "<i4"), ("steps", "<i4"),
          ("seed", "<u8"), ("dims", "<i4"), ("points", "<i4"), ("eval_batch", "<i4"),
          ("status", "S12"), ("reason", "S128"), ("wall_seconds", "<f8"),
          ("train_seconds", "<f8"), ("eval_seconds", "<f8"), ("final_loss", "<f4"),
          ("steps_done", "<i4"), ("host", "S64"), ("rank", "<i4"), ("threads", "<i4"),
          ("finished_at", "S32")]


def make(path, configs, err_fn, noise=(0.0, 0.5, 1.0), N=20, seeds=(0, 1)):
    """configs: list of dicts of config fields; err_fn(config, seed, p, i) ->
    transformer error. GD error is a fixed falling curve."""
    rows = []
    for c in configs:
        for s in seeds:
            rows.append((c, s))
    R, P = len(rows), len(noise)
    runs = np.zeros(R, dtype=FIELDS)
    tf = np.zeros((R, P, N), dtype="f4")
    gd = np.zeros((R, P, N), dtype="f4")
    for r, (c, s) in enumerate(rows):
        base = dict(layers=2, heads=2, embd=32, attention=b"softmax", ffn=1, loss=b"pl",
                    train_noise=0.0, lr=1e-3, batch=64, steps=100, dims=5, points=N,
                    eval_batch=64)
        base.update(c)
        for k, v in base.items():
            runs[k][r] = v.encode() if isinstance(v, str) else v
        runs["run_id"][r] = f"r{r:016x}".encode()
        runs["row"][r] = r
        runs["seed"][r] = s
        runs["status"][r] = b"done"
        for pi, p in enumerate(noise):
            for i in range(N):
                tf[r, pi, i] = err_fn(base, s, p, i)
                gd[r, pi, i] = 0.3 + (1 - p) * 0.7 / (1 + i) + p * 0.7
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = np.int32(1)
        f.attrs["program_version"] = "synthetic"
        f.attrs["git_revision"] = "none"
        f.attrs["grid"] = ""
        f["runs"] = runs
        f["eval/noise"] = np.asarray(noise, dtype="f8")
        f["eval/tf_err"] = tf
        f["eval/gd_err"] = gd
        f["train/step"] = np.arange(1, 101, dtype="i4")
        f["train/loss"] = np.ones((R, 100), dtype="f4")
    return path


def paper_like(config, seed, p, i):
    """Falls with i, rises with p, flat at p = 1; softmax, more heads, MLP
    and depth all help."""
    quality = 0.0
    quality += 0.2 if config["attention"] in (b"softmax", "softmax") else 0.0
    quality += 0.05 * config["heads"] + 0.02 * config["layers"] + 0.1 * config["ffn"]
    learned = (1 - p) * quality * (1 - 1 / (1 + 0.3 * i))
    return 0.9 - learned + 0.001 * seed
