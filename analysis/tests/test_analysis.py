"""The analysis package on synthetic files with known verdicts and on files
made by the real binary (fixtures in conftest.py)."""
import importlib.util
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import figures
import report
import synthetic
from conftest import ANALYSIS, SMOKE_GRID
from icaresults import SchemaError, load

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def verdicts(res):
    return {v.number: v.status for v in report.checklist(res)}


def evidence(res, n):
    return next(v.evidence for v in report.checklist(res) if v.number == n)


def check_files(paths):
    """Every PNG is a non-trivial PNG, every PDF a PDF."""
    pngs = [p for p in paths if p.endswith(".png")]
    assert pngs and len(pngs) == len([p for p in paths if p.endswith(".pdf")])
    for p in paths:
        with open(p, "rb") as f:
            head = f.read(8)
        assert head == PNG_MAGIC if p.endswith(".png") else head.startswith(b"%PDF"), p
        assert os.path.getsize(p) > 5000, p


def panel_files(panels):
    return [f for p in panels for f in p.files]


def make(tmp_path, name, configs, err_fn=synthetic.paper_like, **kw):
    return load(synthetic.make(str(tmp_path / name), configs, err_fn, **kw))


def shift(fn, when, by):
    """err_fn that adds `by` to the error of configurations where when(c)."""
    return lambda c, s, p, i: fn(c, s, p, i) + (by if when(c) else 0.0)


# ---- loader -------------------------------------------------------------

def test_loader_decodes_selects_and_groups(tmp_path):
    status = lambda c, s: {(1, 2): "failed", (0, 2): "pending"}.get((c["ffn"], s), "done")
    res = make(tmp_path, "l.h5", [{}, dict(attention="linear"), dict(ffn=0)], status=status)
    assert res.runs["attention"].dtype.kind == "U" and res.runs["attention"][3] == "linear"
    assert res.attrs["schema_version"] == 1 and res.attrs["program_version"] == "synthetic"
    assert res.tf_err.shape == (9, 3, 20) and res.n_points == 20
    assert list(res.select(attention="linear")) == [3, 4, 5]
    assert list(res.select(attention="softmax", ffn=1, status="done")) == [0, 1]
    assert list(res.select(status=["failed", "pending"])) == [2, 5, 8]
    assert res.status_counts() == dict(pending=1, done=6, diverged=0, failed=2, interrupted=0)
    assert np.isnan(res.tf_err[2]).all() and np.isfinite(res.tf_err[0]).all()

    groups = res.groups()  # done rows only, seeds together
    assert [list(g.rows) for g in groups] == [[0, 1], [3, 4], [6, 7]]
    assert groups[1].config["attention"] == "linear" and groups[1].seeds == (0, 1)
    assert len(res.groups(status=None)) == 3 and len(res.groups(status=None)[0].rows) == 3

    s = res.stats([3, 4], p=0.5)
    vals = res.tf_err[[3, 4], 1, :].astype(float)
    np.testing.assert_allclose(s.mean, vals.mean(axis=0))
    np.testing.assert_allclose(s.std, vals.std(axis=0, ddof=1))
    np.testing.assert_allclose(s.lo, vals.min(axis=0))
    assert s.n == 2
    rows = res.summary(p=0.0)
    assert len(rows) == 3 and rows[1]["position"] == 15 and rows[1]["seeds"] == (0, 1)
    assert rows[1]["mean"] == pytest.approx(res.tf_err[[3, 4], 0, 15].mean())
    assert rows[1]["min"] <= rows[1]["mean"] <= rows[1]["max"]

    with pytest.raises(ValueError, match="no evaluation at noise p=0.3"):
        res.noise_index(0.3)
    with pytest.raises(KeyError, match="no field 'colour'"):
        res.select(colour="red")


def test_loader_dataframe_when_pandas_is_there(tmp_path):
    path = synthetic.make(str(tmp_path / "f.h5"), [{}, dict(attention="linear")],
                          synthetic.paper_like)
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="pandas"):
            load(path, as_frame=True)
        return
    res = load(path, as_frame=True)
    assert list(res.runs["attention"]) == ["softmax"] * 3 + ["linear"] * 3
    assert list(res.select(attention="linear", seed=1)) == [4]
    assert len(res.groups()) == 2


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.attrs.__setitem__("schema_version", np.int32(9)),
     "schema version 9 is not supported: this loader reads schema version 1"),
    (lambda f: f.attrs.__delitem__("schema_version"), "no schema_version attribute"),
    (lambda f: f.__delitem__("eval/gd_err"), "lacks eval/gd_err"),
    (lambda f: (f.__delitem__("train/loss"), f.create_dataset("train/loss", data=np.zeros((2, 5)))),
     r"/train/loss has shape \(2, 5\)"),
])
def test_loader_refuses_what_it_cannot_read(tmp_path, damage, message):
    path = synthetic.make(str(tmp_path / "bad.h5"), [{}], synthetic.paper_like)
    with h5py.File(path, "a") as f:
        damage(f)
    with pytest.raises(SchemaError, match=message):
        load(path)


# ---- checklist logic on synthetic files -----------------------------------

def test_all_six_pass_on_paper_like_data(tmp_path):
    res = make(tmp_path, "good.h5", synthetic.PAPER_CONFIGS, noise=(0, 0.25, 0.5, 0.75, 1))
    assert verdicts(res) == {n: "PASS" for n in range(1, 7)}, report.checklist(res)
    text = evidence(res, 3)
    assert "softmax 0.329 ± 0.003 vs linear 0.446 ± 0.003 (3 seeds)" in text, text


def test_finding_3_fails_when_linear_wins_and_absent_factors_are_not_in_grid(tmp_path):
    linear_wins = shift(synthetic.paper_like, lambda c: c["attention"] == "linear", -0.3)
    res = make(tmp_path, "bad.h5", [{}, dict(attention="linear")], linear_wins)
    v = verdicts(res)
    assert v[3] == "FAIL"
    assert v[4] == v[5] == v[6] == "NOT IN GRID"
    assert "heads is 3 in every finished run" in evidence(res, 4)


def test_finding_3_fails_when_the_gap_is_within_the_seed_spread(tmp_path):
    # softmax is lower on average by 0.03, but the seeds scatter by ±0.05
    def noisy(c, s, p, i):
        e = synthetic.paper_like(dict(c, attention="softmax"), 1, p, i) + 0.05 * (s - 1)
        return e + (0.03 if c["attention"] == "linear" else 0.0)
    res = make(tmp_path, "noisy.h5", [{}, dict(attention="linear")], noisy)
    assert verdicts(res)[3] == "FAIL"
    assert "gap 0.030 (needed > 0.100)" in evidence(res, 3)


def test_ablation_needs_runs_that_differ_only_in_the_factor(tmp_path):
    # linear attention exists only at another depth: no clean comparison
    res = make(tmp_path, "conf.h5", [{}, dict(attention="linear", layers=8)])
    v = verdicts(res)
    assert v[3] == "NOT IN GRID" and v[6] == "NOT IN GRID"
    assert "never alone" in evidence(res, 3)
    lines = []
    figures.draw_all(res, str(tmp_path / "figs"), log=lines.append)
    assert any(line.startswith("skipped: attention: attention takes the values") for line in lines)


def test_finding_2_fails_when_noise_does_not_matter(tmp_path):
    deaf = lambda c, s, p, i: synthetic.paper_like(c, s, 0.0, i)
    res = make(tmp_path, "deaf.h5", [{}], deaf)
    assert verdicts(res)[2] == "FAIL"
    assert "not flat" in evidence(res, 2)


def test_finding_2_needs_a_flat_curve_at_p_1(tmp_path):
    # error rises with p, but the model still learns from a useless critic
    learns = lambda c, s, p, i: synthetic.paper_like(c, s, min(p, 0.6), i)
    res = make(tmp_path, "learns.h5", [{}], learns)
    assert verdicts(res)[2] == "FAIL"
    assert "not flat" in evidence(res, 2) and "monotone: yes" in evidence(res, 2)
    # without p = 1 among the levels the same curves pass (flatness unchecked)
    res = make(tmp_path, "nop1.h5", [{}], learns, noise=(0.0, 0.5))
    assert verdicts(res)[2] == "PASS" and "p=1 not evaluated" in evidence(res, 2)


def test_finding_2_not_in_grid_with_one_noise_level(tmp_path):
    res = make(tmp_path, "one.h5", [{}], noise=(0.0,))
    assert verdicts(res)[2] == "NOT IN GRID"


def test_finding_1_fails_when_the_transformer_ignores_the_context(tmp_path):
    flat = lambda c, s, p, i: 0.8 + 0.001 * s
    res = make(tmp_path, "flat.h5", [{}], flat)
    assert verdicts(res)[1] == "FAIL"
    assert "fall 0.000 ± 0.000 per seed, needed > 0.010: no" in evidence(res, 1)


def test_finding_1_fall_is_paired_across_seeds(tmp_path):
    # seeds sit at very different levels but every one falls by about 0.1:
    # an unpaired comparison of the two positions would drown the fall
    level = lambda c, s, p, i: 0.3 + 0.3 * (s % 2) + 0.1 * (1 - np.exp(-(15 - i) / 4.0)) + 0.001 * s
    res = make(tmp_path, "levels.h5", [{}], level)
    assert "per seed, needed > 0.010: yes" in evidence(res, 1)
    # and when one seed falls while another rises, the spread of falls wins
    mixed = lambda c, s, p, i: 0.5 + (0.01 * i if s % 2 else -0.01 * i) + 0.001 * s
    res = make(tmp_path, "mixed.h5", [{}], mixed)
    assert verdicts(res)[1] == "FAIL" and ": no);" in evidence(res, 1)


def test_finding_1_fails_when_the_transformer_stays_far_above_gd(tmp_path):
    # falls from 0.95 to about 0.80 while GD with 2 examples is at 0.63
    slow = lambda c, s, p, i: 0.95 - 0.15 * (1 - np.exp(-i / 4.0)) * (1 - p) + 0.001 * s
    res = make(tmp_path, "slow.h5", [{}], slow)
    assert verdicts(res)[1] == "FAIL"
    text = evidence(res, 1)
    assert "needed > 0.010: yes" in text and "not beaten by GD at 2: no" in text


def test_finding_4_fails_when_one_head_is_not_worst(tmp_path):
    h4_bad = shift(synthetic.paper_like, lambda c: c["heads"] == 4, 0.1)
    res = make(tmp_path, "h.h5", [dict(heads=h, embd=32 * h) for h in (1, 3, 4)], h4_bad)
    assert verdicts(res)[4] == "FAIL"
    assert "not: H = 4" in evidence(res, 4) and "monotone: no" in evidence(res, 4)


def test_findings_5_and_6_fail_when_reversed(tmp_path):
    reversed_ = shift(shift(synthetic.paper_like, lambda c: c["ffn"] == 1, 0.2),
                      lambda c: c["layers"] == 8, 0.2)
    res = make(tmp_path, "rev.h5", [{}, dict(ffn=0), dict(layers=2), dict(layers=8)], reversed_)
    v = verdicts(res)
    assert v[5] == "FAIL" and v[6] == "FAIL" and v[3] == v[4] == "NOT IN GRID"


def test_unfinished_runs_are_left_out_and_listed(tmp_path):
    status = lambda c, s: "diverged" if c["attention"] == "linear" and s == 0 else "done"
    res = make(tmp_path, "div.h5", [{}, dict(attention="linear")], status=status)
    path, vs = report.write_report(res, str(tmp_path / "rep"), log=lambda s: None)
    text = open(path).read()
    assert "5 done, 1 diverged (of 6)" in text
    assert "**diverged**: synthetic diverged run" in text
    assert "linear 0.446 (1 seed)" not in text  # seed counts differ per arm
    assert "(seeds per arm differ: 2, 3)" in text


def test_no_finished_runs(tmp_path):
    res = make(tmp_path, "pend.h5", [{}], status=lambda c, s: "pending")
    lines = []
    path, vs = report.write_report(res, str(tmp_path / "rep"), log=lines.append)
    assert {v.status for v in vs} == {"NOT IN GRID"}
    assert lines == ["skipped: every panel: no finished runs in the file"]
    assert "No figures" in open(path).read()


# ---- figures and report on synthetic files ----------------------------------

def test_figures_command_line_on_synthetic(tmp_path, capsys):
    path = synthetic.make(str(tmp_path / "s.h5"), synthetic.PAPER_CONFIGS, synthetic.paper_like)
    assert figures.main([path, "--out", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out.split("\n")
    written = [line for line in out if line.endswith((".png", ".pdf"))]
    names = {os.path.basename(p) for p in written}
    assert names == {f"{n}.{e}" for e in ("png", "pdf") for n in (
        "tf_vs_gd", "tf_vs_gd_all", "reward_noise", "layers", "heads", "attention", "ffn",
        "train_loss")}
    assert "skipped: train_noise: train_noise is 0.0 in every finished run" in out
    assert "skipped: loss: loss is 'pl' in every finished run" in out
    check_files(written)


def test_train_noise_panel_and_std_band(tmp_path):
    res = make(tmp_path, "tn.h5", [dict(train_noise=t) for t in (0.0, 0.5, 1.0)])
    panels = figures.draw_all(res, str(tmp_path / "f"), band="std", log=lambda s: None)
    tn = next(p for p in panels if p.name == "train_noise")
    assert "p = 0 and p = the training p" in tn.caption and "mean ± 1 s.d." in tn.caption
    check_files(panel_files(panels))
    assert "trained at p = 0.5" in evidence(res, 2)


def test_report_command_line_and_require(tmp_path, capsys):
    linear_wins = shift(synthetic.paper_like, lambda c: c["attention"] == "linear", -0.3)
    path = synthetic.make(str(tmp_path / "r.h5"), [{}, dict(attention="linear")], linear_wins)
    out = str(tmp_path / "rep")
    assert report.main([path, "--out", out, "--require", "1,2"]) == 0
    assert report.main([path, "--out", out, "--require", "1,2,3"]) == 1
    stdout = capsys.readouterr().out
    assert "FAIL        3. Softmax attention is far better than linear attention" in stdout
    text = open(os.path.join(out, "report.md")).read()
    for line in ("- **PASS** — 1. Error falls", "- **PASS** — 2. Critic quality",
                 "- **FAIL** — 3. Softmax", "- **NOT IN GRID** — 4. More heads",
                 "- **NOT IN GRID** — 5. The MLP", "- **NOT IN GRID** — 6. Depth",
                 "![Transformer vs GD baseline](tf_vs_gd.png)", "mean(B) - mean(A) > max(0.01"):
        assert line in text, line
    assert report.main([str(tmp_path / "missing.h5"), "--out", out]) == 2


# ---- files made by the binary ---------------------------------------------

def need_sweep(made):
    if made.how != "sweep":
        pytest.skip("`icasweep sweep` failed, so the smoke-grid file is missing:\n" + made.log)


def test_binary_sweep_file_has_the_smoke_grid(binary_file):
    need_sweep(binary_file)
    res = load(binary_file.path)
    assert res.attrs["schema_version"] == 1 and res.attrs["program_version"]
    assert res.attrs["grid"] == open(SMOKE_GRID).read()
    assert res.status_counts()["done"] == 8 and res.n_runs == 8
    assert res.tf_err.shape == (8, 3, 8) and res.gd_err.shape == (8, 3, 8)
    assert np.allclose(res.noise, [0, 0.5, 1])
    assert np.isfinite(res.tf_err).all() and np.isfinite(res.gd_err).all()
    assert ((res.tf_err >= 0) & (res.tf_err <= 2)).all()   # 1 - cos lies in [0, 2]
    assert res.train_loss.shape == (8, 20) and np.isfinite(res.train_loss).all()
    # plan order: layers, then attention, seeds innermost
    assert list(res.select(layers=1, attention="linear")) == [2, 3]
    assert list(res.runs["seed"]) == [0, 1] * 4
    groups = res.groups()
    assert len(groups) == 4 and all(g.seeds == (0, 1) for g in groups)
    # the GD baseline depends on the seed's contexts, not on the model
    np.testing.assert_array_equal(res.gd_err[0], res.gd_err[2])


def test_binary_sweep_figures_and_report(binary_file, tmp_path):
    need_sweep(binary_file)
    res = load(binary_file.path)
    lines = []
    panels = figures.draw_all(res, str(tmp_path / "f"), log=lines.append)
    assert {p.name for p in panels} >= {"tf_vs_gd", "tf_vs_gd_all", "reward_noise", "layers",
                                        "attention", "train_loss"}
    assert "skipped: heads: heads is 2 in every finished run" in lines
    assert "skipped: ffn: ffn is 1 in every finished run" in lines
    check_files(panel_files(panels))
    v = verdicts(res)
    assert v[4] == v[5] == "NOT IN GRID"   # the smoke grid varies neither
    assert v[1] in ("PASS", "FAIL") and v[2] in ("PASS", "FAIL")
    assert v[3] in ("PASS", "FAIL") and v[6] in ("PASS", "FAIL")
    assert "(2 seeds)" in evidence(res, 3) and "7 examples" in evidence(res, 3)


def test_binary_file_through_the_command_lines(binary_file, tmp_path):
    """The scripts as a user runs them, in a fresh interpreter."""
    env = dict(os.environ, MPLBACKEND="Agg")
    figs = subprocess.run([PYTHON, os.path.join(ANALYSIS, "figures.py"), binary_file.path,
                           "--out", str(tmp_path / "f")], capture_output=True, text=True, env=env)
    assert figs.returncode == 0, figs.stderr
    written = [l for l in figs.stdout.splitlines() if l.endswith((".png", ".pdf"))]
    assert any(p.endswith("tf_vs_gd.png") for p in written)
    check_files(written)
    rep = subprocess.run([PYTHON, os.path.join(ANALYSIS, "report.py"), binary_file.path,
                          "--out", str(tmp_path / "r")], capture_output=True, text=True, env=env)
    assert rep.returncode == 0, rep.stderr
    text = open(tmp_path / "r" / "report.md").read()
    for n in range(1, 7):
        assert any(line.startswith("- **") and f"** — {n}. " in line
                   for line in text.splitlines()), n
        assert any(line.split()[0] in ("PASS", "FAIL", "NOT") and f" {n}. " in line
                   for line in rep.stdout.splitlines() if line.strip()), n
    assert "git revision: " + str(load(binary_file.path).attrs["git_revision"]) in text
    check_files([str(tmp_path / "r" / f) for f in os.listdir(tmp_path / "r")
                 if f.endswith((".png", ".pdf"))])


def test_binary_train_file(train_file, tmp_path):
    res = load(train_file.path)
    assert res.n_runs == 1 and res.runs["status"][0] == "done"
    assert res.runs["layers"][0] == 1 and res.runs["embd"][0] == 16
    assert res.tf_err.shape == (1, 3, 8) and np.isfinite(res.tf_err).all()
    path, vs = report.write_report(res, str(tmp_path / "r"), log=lambda s: None)
    v = {x.number: x.status for x in vs}
    assert v[3] == v[4] == v[5] == v[6] == "NOT IN GRID"
    assert v[1] in ("PASS", "FAIL") and v[2] in ("PASS", "FAIL")
    assert "(1 seed)" in evidence(res, 1)
    check_files([os.path.join(tmp_path / "r", f) for f in os.listdir(tmp_path / "r")
                 if f.endswith((".png", ".pdf"))])
