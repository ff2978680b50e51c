"""analysis/selfcorrect.py on synthetic files whose answers are known: the
Fisher interval against a hand value, the correlation of a gain built to
follow the critic's accuracy, unfinished runs left out, the figures, the
report's "Beyond the paper" section, and its absence without /selfcorrect."""
import math
import os

import h5py
import numpy as np
import pytest

import report
import selfcorrect as scm
import synthetic
from icaresults import load

Q = (0.0, 0.5, 1.0)
K0 = (1, 4)
R = 6


def add_selfcorrect(path, gain_of_tau, tau_of_q=lambda q: 1 - q, noise=0.0, seed=0):
    """Adds /selfcorrect in the C program's layout (store.c) to a synthetic
    file: err falls linearly over R rounds by gain_of_tau(tau); the open loop
    is flat at err_1. Rows not "done" keep NaN, as the program leaves them."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "r+") as f:
        runs = f["runs"][()]
        n = len(runs)
        err = np.full((n, len(Q), len(K0), R), np.nan, dtype="f4")
        open_err = np.full_like(err, np.nan)
        tau = np.full((n, len(Q), len(K0)), np.nan, dtype="f4")
        for r in range(n):
            if runs["status"][r] != b"done":
                continue
            for qi, q in enumerate(Q):
                for ki in range(len(K0)):
                    t = tau_of_q(q) + noise * rng.standard_normal()
                    g = gain_of_tau(t) + noise * rng.standard_normal()
                    err[r, qi, ki] = 0.6 - g * np.arange(R) / (R - 1)
                    open_err[r, qi, ki] = 0.6
                    tau[r, qi, ki] = t
        g = f.create_group("selfcorrect")
        for name, data in (("q", np.asarray(Q)), ("k0", np.asarray(K0, dtype="i4")),
                           ("round", np.arange(1, R + 1, dtype="i4")), ("err", err),
                           ("open_err", open_err), ("critic_tau", tau)):
            g[name] = data
            g[name].attrs["description"] = np.bytes_(name.encode())
    return path


def make(tmp_path, name="sc.h5", status=None, **kw):
    path = synthetic.make(str(tmp_path / name), [{}, dict(layers=2)], synthetic.paper_like,
                          status=status)
    return add_selfcorrect(path, **kw)


def test_fisher_interval_by_hand():
    # r = 0.5, n = 28: atanh(0.5) = 0.549306, se = 1/5, z_0.975 = 1.959964
    lo, hi = scm.fisher_ci(0.5, 28)
    assert lo == pytest.approx(math.tanh(0.549306 - 0.391993), abs=1e-5)
    assert hi == pytest.approx(math.tanh(0.549306 + 0.391993), abs=1e-5)
    assert all(math.isnan(v) for v in scm.fisher_ci(0.5, 3))
    assert scm.fisher_ci(1.0, 10) == (1.0, 1.0)
    c = scm.correlation([1, 2, 3], [1, 1, 1])
    assert math.isnan(c.r) and "undefined" in c.text()


def test_gain_that_follows_the_critic_correlates(tmp_path):
    path = make(tmp_path, gain_of_tau=lambda t: 0.2 * t, noise=0.02)
    sc = scm.load_selfcorrect(path)
    pts = scm.gain_points(sc)
    assert len(pts.tau) == 2 * 3 * len(Q) * len(K0)  # runs x q x k0
    c = scm.correlation(pts.tau, pts.gain)
    assert c.r > 0.9 and c.lo < c.r < c.hi <= 1 and c.n == len(pts.tau)
    # gain = err_1 - err_R, which the synthetic file sets to 0.2 tau (+ noise)
    assert np.allclose(pts.gain, 0.2 * pts.tau, atol=0.1)


def test_gain_that_ignores_the_critic_does_not(tmp_path):
    path = make(tmp_path, gain_of_tau=lambda t: 0.05, noise=0.02, seed=3)
    pts = scm.gain_points(scm.load_selfcorrect(path))
    c = scm.correlation(pts.tau, pts.gain)
    assert c.lo < 0 < c.hi, c.text()


def test_unfinished_runs_are_left_out(tmp_path):
    path = make(tmp_path, status=lambda c, s: "failed" if s == 1 else "done",
                gain_of_tau=lambda t: 0.1 * t)
    sc = scm.load_selfcorrect(path)
    assert sc.n_done == 4 and not sc.done[1] and not sc.done[4]
    assert set(scm.gain_points(sc).run) == {0, 2, 3, 5}


def test_figures_and_report_section(tmp_path):
    path = make(tmp_path, gain_of_tau=lambda t: 0.2 * t, noise=0.01)
    out = str(tmp_path / "fig")
    lines = scm.report_section(path, out, log=lambda s: None)
    text = "\n".join(lines)
    assert "## Beyond the paper" in text and "Fisher z" in text and "95% CI [" in text
    for k in K0:
        assert f"- k0 = {k}: r = " in text
    for name in ("selfcorrect_rounds", "selfcorrect_gain"):
        for ext in ("png", "pdf"):
            assert os.path.getsize(os.path.join(out, f"{name}.{ext}")) > 1000
    # the table: one row per (k0, q), the gain err_1 - err_R at q = 0 is 0.2
    rows = [ln for ln in lines if ln.startswith("| 1 | 0 |")]
    assert len(rows) == 1, rows
    assert float(rows[0].split("|")[8]) == pytest.approx(0.2, abs=0.03), rows


def test_report_appends_the_section_only_with_a_closed_loop(tmp_path):
    with_loop = make(tmp_path, gain_of_tau=lambda t: 0.2 * t, noise=0.01)
    path, _ = report.write_report(load(with_loop), str(tmp_path / "a"), log=lambda s: None)
    assert "## Beyond the paper" in open(path).read()
    assert os.path.exists(tmp_path / "a" / "selfcorrect_gain.png")
    plain = synthetic.make(str(tmp_path / "plain.h5"), [{}], synthetic.paper_like)
    path, _ = report.write_report(load(plain), str(tmp_path / "b"), log=lambda s: None)
    assert "Beyond the paper" not in open(path).read()
    assert scm.load_selfcorrect(plain) is None


def test_command_line(tmp_path, capsys):
    path = make(tmp_path, gain_of_tau=lambda t: 0.2 * t)
    assert scm.main([path, "--out", str(tmp_path / "c")]) == 0
    assert "Beyond the paper" in capsys.readouterr().out
    plain = synthetic.make(str(tmp_path / "plain.h5"), [{}], synthetic.paper_like)
    assert scm.main([plain, "--out", str(tmp_path / "d")]) == 2
    assert "no /selfcorrect" in capsys.readouterr().err


def test_incomplete_group_is_named(tmp_path):
    path = make(tmp_path, gain_of_tau=lambda t: 0.1)
    with h5py.File(path, "r+") as f:
        del f["selfcorrect/critic_tau"]
    with pytest.raises(ValueError, match="critic_tau"):
        scm.load_selfcorrect(path)


def test_run_labels_name_a_knob_added_later(tmp_path):
    """A knob the module has no format for still tells the runs apart."""
    warmup = ("warmup", "wu", "training", "linear learning-rate warm-up steps", "<i4", 0)
    path = synthetic.make(str(tmp_path / "w.h5"), [dict(warmup=0), dict(warmup=100)],
                          synthetic.paper_like, seeds=(0,), new_knobs=[warmup])
    sc = scm.load_selfcorrect(add_selfcorrect(path, gain_of_tau=lambda t: 0.1 * t))
    assert sc.labels[0].endswith("seed=0 warmup=0") and sc.labels[1].endswith("warmup=100")
    assert sc.labels[0].startswith("L=4 H=3 E=96 softmax ffn=on")
