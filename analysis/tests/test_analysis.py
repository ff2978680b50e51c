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
from icaresults import MissingDataError, SchemaError, load
from pairedstats import seeds_to_decide

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SCHEMA_1_BLIND = ("file has schema version 1: no /eval/blind_err (reference strategies); "
                  "re-run with icasweep >= schema version 2 to get it")
HAS_XARRAY = importlib.util.find_spec("xarray") is not None and \
    importlib.util.find_spec("pandas") is not None


def verdicts(res):
    return {v.number: v.status for v in report.checklist(res)}


def verdict(res, n):
    return next(v for v in report.checklist(res) if v.number == n)


def evidence(res, n):
    return verdict(res, n).evidence


def comparison(res, n, role, contains=""):
    """The one comparison of finding n with this role whose text contains `contains`."""
    found = [c for c in verdict(res, n).comparisons if c.role == role and contains in c.text]
    assert len(found) == 1, [c.line() for c in verdict(res, n).comparisons]
    return found[0]


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


def attention_blind(c, s, p, i):
    """paper_like as if every run were softmax: the two arms differ only by
    what a test adds."""
    return synthetic.paper_like(dict(c, attention="softmax"), s, p, i)


SOFTMAX_LINEAR = [{}, dict(attention="linear")]


# ---- loader -------------------------------------------------------------

def test_loader_decodes_selects_and_groups(tmp_path):
    status = lambda c, s: {(1, 2): "failed", (0, 2): "pending"}.get((c["ffn"], s), "done")
    res = make(tmp_path, "l.h5", [{}, dict(attention="linear"), dict(ffn=0)], status=status)
    assert res.runs["attention"].dtype.kind == "U" and res.runs["attention"][3] == "linear"
    assert res.attrs["schema_version"] == 2 and res.attrs["program_version"] == "synthetic"
    assert res.schema_version == 2
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


def test_loader_reads_the_reference_strategies(tmp_path):
    res = make(tmp_path, "ref.h5", [{}], noise=(0.0, 0.5, 1.0))
    assert res.has("blind") and res.has("pick") and res.curves_present() == ["tf", "gd", "blind", "pick"]
    assert res.blind_err.shape == res.pick_err.shape == (3, 3, 20)
    assert np.isnan(res.blind_err[:, :, 0]).all() and np.isnan(res.pick_err[:, :, 0]).all()
    assert res.blind_err[1, 2, 15] == pytest.approx(synthetic.blind_like(1, 15), abs=1e-6)
    assert res.pick_err[2, 1, 7] == pytest.approx(synthetic.pick_like(2, 0.5, 7), abs=1e-6)
    assert res.curve("pick") is res.pick_err
    s = res.stats(res.select(status="done"), p=1.0, which="pick")
    assert np.isnan(s.mean[0]) and s.mean[15] == pytest.approx(
        np.mean([synthetic.pick_like(seed, 1.0, 15) for seed in (0, 1, 2)]), abs=1e-6)
    assert res.missing_text("blind") == ""
    with pytest.raises(KeyError, match="no curve 'best'"):
        res.has("best")


def test_schema_1_file_loads_and_says_what_it_lacks(tmp_path):
    res = make(tmp_path, "v1.h5", [{}], schema=1)
    assert res.schema_version == 1 and res.tf_err.shape == (3, 3, 20)
    assert not res.has("blind") and not res.has("pick") and res.curves_present() == ["tf", "gd"]
    assert res.missing_text("blind") == SCHEMA_1_BLIND
    with pytest.raises(MissingDataError) as e:
        res.blind_err
    assert str(e.value) == f"{res.path}: {SCHEMA_1_BLIND}"
    with pytest.raises(MissingDataError, match="no /eval/pick_err"):
        res.stats([0, 1], p=0.0, which="pick")
    assert isinstance(e.value, SchemaError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.attrs.__setitem__("schema_version", np.int32(3)),
     r"schema version 3 is newer than this loader reads \(versions 1, 2\): update analysis/"),
    (lambda f: f.attrs.__setitem__("schema_version", np.int32(0)),
     r"schema version 0 is not supported: this loader reads versions 1, 2"),
    (lambda f: f.attrs.__delitem__("schema_version"), "no schema_version attribute"),
    (lambda f: f.__delitem__("eval/gd_err"), "lacks eval/gd_err"),
    (lambda f: f.__delitem__("eval/blind_err"), "schema 2 file lacks eval/blind_err"),
    (lambda f: (f.__delitem__("eval/pick_err"), f.create_dataset("eval/pick_err", data=np.zeros((3, 3, 4)))),
     r"/eval/pick_err has shape \(3, 3, 4\), /eval/tf_err \(3, 3, 20\)"),
    (lambda f: (f.__delitem__("train/loss"), f.create_dataset("train/loss", data=np.zeros((2, 5)))),
     r"/train/loss has shape \(2, 5\)"),
])
def test_loader_refuses_what_it_cannot_read(tmp_path, damage, message):
    path = synthetic.make(str(tmp_path / "bad.h5"), [{}], synthetic.paper_like)
    with h5py.File(path, "a") as f:
        damage(f)
    with pytest.raises(SchemaError, match=message):
        load(path)


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


# ---- tidy table and xarray Dataset ------------------------------------------

needs_xarray = pytest.mark.skipif(not HAS_XARRAY, reason="pandas/xarray not installed "
                                  "(apt-get install python3-pandas python3-xarray)")


@needs_xarray
def test_tidy_table(tmp_path):
    status = lambda c, s: "failed" if c["layers"] == 8 and s == 2 else "done"
    res = make(tmp_path, "t.h5", [dict(layers=L) for L in (2, 8)], status=status)
    df = res.tidy()
    R, P, N = res.tf_err.shape
    assert len(df) == R * P * N
    assert list(df.columns) == ["row", "run_id", "seed", "status", "dims", "points", "layers",
                                "heads", "embd", "attention", "ffn", "loss", "train_noise",
                                "lr", "batch", "steps", "eval_batch", "noise", "position",
                                "tf_err", "gd_err", "blind_err", "pick_err"]
    # one cell against the arrays: row 4, p = 0.5, position 11
    cell = df[(df.row == 4) & (df.noise == 0.5) & (df.position == 11)]
    assert len(cell) == 1
    cell = cell.iloc[0]
    assert cell.run_id == res.runs["run_id"][4] and cell.seed == 1 and cell.layers == 8
    for which in ("tf", "gd", "blind", "pick"):
        assert cell[f"{which}_err"] == pytest.approx(float(res.curve(which)[4, 1, 11]))
    # the failed run is there with NaN errors, and pandas' means skip it
    failed = df[df.status == "failed"]
    assert failed.row.unique().tolist() == [5] and failed.tf_err.isna().all()
    means = df[(df.noise == 0) & (df.position == 15)].groupby("layers").tf_err.mean()
    assert means[8] == pytest.approx(res.tf_err[[3, 4], 0, 15].mean())
    assert means[2] == pytest.approx(res.tf_err[[0, 1, 2], 0, 15].mean())
    done = res.tidy(status="done", fields=("final_loss",))
    assert len(done) == 5 * P * N and set(done.status) == {"done"}
    assert done[done.row == 0].final_loss.iloc[0] == pytest.approx(float(res.runs["final_loss"][0]))
    # a schema-1 file: no reference columns
    old = make(tmp_path, "t1.h5", [{}], schema=1).tidy()
    assert "blind_err" not in old.columns and "pick_err" not in old.columns
    assert old.tf_err.notna().all()


@needs_xarray
def test_xarray_dataset(tmp_path):
    status = lambda c, s: "diverged" if c["layers"] == 2 and s == 0 else "done"
    res = make(tmp_path, "x.h5", [dict(layers=L) for L in (2, 4, 8)], status=status,
               noise=(0.0, 0.25, 1.0))
    ds = res.to_xarray()
    assert dict(ds.tf_err.sizes) == {"run": 9, "noise": 3, "position": 20}
    assert set(ds.data_vars) == {"tf_err", "gd_err", "blind_err", "pick_err", "train_loss"}
    assert list(ds.run.values) == list(res.runs["run_id"])
    assert list(ds.layers.values) == [2, 2, 2, 4, 4, 4, 8, 8, 8]
    assert list(ds.noise.values) == [0.0, 0.25, 1.0] and ds.position.values[-1] == 19
    assert ds.attrs["schema_version"] == 2 and "missing" not in ds.attrs
    # the researcher's question, against numpy
    by_layers = ds.tf_err.sel(noise=0, position=15).groupby("layers").mean()
    assert list(by_layers.layers.values) == [2, 4, 8]
    assert float(by_layers.sel(layers=2)) == pytest.approx(res.tf_err[[1, 2], 0, 15].mean())
    assert float(by_layers.sel(layers=8)) == pytest.approx(res.tf_err[[6, 7, 8], 0, 15].mean())
    one = ds.sel(run=res.runs["run_id"][4])
    assert int(one.seed) == 1 and str(one.status.values) == "done"
    assert float(one.pick_err.sel(noise=0.25, position=9)) == pytest.approx(float(res.pick_err[4, 1, 9]))
    reward_use = (ds.tf_err.sel(noise=1) - ds.tf_err.sel(noise=0)).sel(position=15)
    assert float(reward_use.isel(run=3)) == pytest.approx(
        float(res.tf_err[3, 2, 15]) - float(res.tf_err[3, 0, 15]))
    assert "description" in ds.blind_err.attrs
    done = res.to_xarray(status="done")
    assert done.sizes["run"] == 8 and set(done.status.values) == {"done"}
    old = make(tmp_path, "x1.h5", [{}], schema=1).to_xarray()
    assert "blind_err" not in old and old.attrs["missing"].startswith(
        "file has schema version 1: no /eval/blind_err")


# ---- verdicts on synthetic files ------------------------------------------

LINE = (r"mean (?P<mean>[+-]\d\.\d{3,4}), 95% CI \[(?P<lo>[+-]\d\.\d{3,4}), "
        r"(?P<hi>[+-]\d\.\d{3,4})\], (?P<n>\d+) seeds: (?P<status>[A-Z/]+)")


def parse(line):
    import re
    m = re.search(LINE, line)
    assert m, line
    return {k: (v if k == "status" else float(v)) for k, v in m.groupdict().items()}


def per_seed(res, rows, p, i):
    return res.tf_err[rows, res.noise_index(p), i].astype(float)


def test_all_six_pass_on_paper_like_data(tmp_path):
    res = make(tmp_path, "good.h5", synthetic.PAPER_CONFIGS, noise=(0, 0.25, 0.5, 0.75, 1))
    assert verdicts(res) == {n: "PASS" for n in range(1, 7)}, report.checklist(res)
    text = evidence(res, 3)
    assert "softmax 0.330 ± 0.001 vs linear 0.445 ± 0.004 (3 seeds)" in text, text
    for v in report.checklist(res):
        assert v.combined.endswith("-> PASS") and v.comparisons
        assert all(c.status == "PASS" for c in v.comparisons), v.detail_lines()
    assert "linear 3 of 3, softmax 0 of 3" in " ".join(verdict(res, 3).notes)


def test_verdict_line_by_hand(tmp_path):
    # linear worse by 0.02 at p = 0 only, with a per-run scatter of up to
    # ±0.05 that pairing cannot remove: 3 seeds cannot tell
    def err(c, s, p, i):
        extra = 0.05 * synthetic.jitter(c, s) + (0.02 if c["attention"] == "linear" else 0.0)
        return attention_blind(c, s, p, i) + (1 - p) * extra
    res = make(tmp_path, "hand.h5", SOFTMAX_LINEAR, err)
    level = comparison(res, 3, "level")
    got = parse(level.line())
    soft, lin = res.select(attention="softmax"), res.select(attention="linear")
    d = per_seed(res, lin, 0.0, 15) - per_seed(res, soft, 0.0, 15)   # seeds 0, 1, 2 in both
    mean, sd = d.mean(), d.std(ddof=1)
    half = 4.303 * sd / np.sqrt(3)                                  # t_{0.975, 2} = 4.303
    assert got["n"] == 3 and got["status"] == "INCONCLUSIVE"
    assert got["mean"] == pytest.approx(mean, abs=6e-4)
    assert got["lo"] == pytest.approx(mean - half, abs=1e-3)
    assert got["hi"] == pytest.approx(mean + half, abs=1e-3)
    assert f"about {seeds_to_decide(mean, sd)} seeds would settle it at this spread" in level.line()
    assert level.line().startswith("level: linear − softmax, error at 15 examples, p = 0 (paper: > 0): ")
    assert verdict(res, 3).status == "INCONCLUSIVE"
    assert verdict(res, 3).combined == "level INCONCLUSIVE, mechanism INCONCLUSIVE -> INCONCLUSIVE"


def test_fail_when_linear_wins_even_though_its_reward_use_is_lower(tmp_path):
    linear_wins = shift(synthetic.paper_like, lambda c: c["attention"] == "linear", -0.3)
    res = make(tmp_path, "bad.h5", SOFTMAX_LINEAR, linear_wins)
    v = verdicts(res)
    assert v[3] == "FAIL" and v[4] == v[5] == v[6] == "NOT IN GRID"
    assert comparison(res, 3, "level").status == "FAIL"
    assert comparison(res, 3, "mechanism").status == "PASS"   # the shift cancels in U
    assert verdict(res, 3).combined == "level FAIL, mechanism PASS -> FAIL"
    assert "heads is 3 in every finished run" in evidence(res, 4)


def test_mechanism_decides_when_the_level_cannot(tmp_path):
    # the levels at p = 0 scatter by up to ±0.08 per run, but linear uses the
    # rewards less in every seed (it is 0.1 better off at p = 1)
    def err(c, s, p, i):
        return (attention_blind(c, s, p, i) + 0.08 * synthetic.jitter(c, s)
                - (0.1 * p if c["attention"] == "linear" else 0.0))
    res = make(tmp_path, "mech.h5", SOFTMAX_LINEAR, err)
    assert comparison(res, 3, "level").status == "INCONCLUSIVE"
    assert parse(comparison(res, 3, "mechanism").line())["mean"] == pytest.approx(0.1, abs=1e-3)
    assert verdict(res, 3).status == "PASS"
    assert verdict(res, 3).combined == "level INCONCLUSIVE, mechanism PASS -> PASS"


def test_pairing_removes_what_seeds_share(tmp_path):
    # every seed sits at its own level (±0.05, the same in both arms) and
    # softmax is 0.03 lower: unpaired the gap would drown, paired it does not
    def noisy(c, s, p, i):
        e = attention_blind(c, s, p, i) + 0.05 * (s - 1)
        return e + (0.03 if c["attention"] == "linear" else 0.0)
    res = make(tmp_path, "noisy.h5", SOFTMAX_LINEAR, noisy)
    level = comparison(res, 3, "level")
    assert level.status == "PASS" and parse(level.line())["mean"] == pytest.approx(0.03, abs=1e-3)
    assert level.result.seeds == (0, 1, 2)


def test_arms_without_common_seeds_or_with_one_seed(tmp_path):
    status = lambda c, s: "done" if (c["attention"] == "linear") == (s == 2) else "pending"
    res = make(tmp_path, "apart.h5", SOFTMAX_LINEAR, status=status)
    level = comparison(res, 3, "level")
    assert level.status == "N/A" and "N/A (no seed in common)" in level.line()
    assert verdict(res, 3).status == "INCONCLUSIVE"
    res = make(tmp_path, "one.h5", SOFTMAX_LINEAR, seeds=(0,))
    line = comparison(res, 3, "level").line()
    assert "no interval from 1 seed: INCONCLUSIVE (needs at least 2 seeds for an interval)" in line
    assert verdicts(res)[3] == "INCONCLUSIVE"


def test_reward_use_without_p_1_and_with_one_level(tmp_path):
    res = make(tmp_path, "half.h5", SOFTMAX_LINEAR, noise=(0.0, 0.5))
    mech = comparison(res, 3, "mechanism")
    assert mech.text == "reward use U(p = 0.5), softmax − linear" and mech.status == "PASS"
    assert any("p = 1 not evaluated: reward use taken as error(p = 0.5)" in n
               for n in verdict(res, 3).notes)
    res = make(tmp_path, "single.h5", SOFTMAX_LINEAR, noise=(0.0,))
    mech = comparison(res, 3, "mechanism")
    assert mech.status == "N/A" and "one evaluation noise level" in mech.line()
    assert verdict(res, 3).status == "PASS" and verdict(res, 3).combined == "level PASS, mechanism N/A -> PASS"
    assert verdicts(res)[2] == "NOT IN GRID"


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
    # the error does not move with p at all: the rise is exactly zero
    level = comparison(res, 2, "level")
    assert level.status == "NO EFFECT" and "90% CI [+0.0000, +0.0000] inside ±0.02" in level.line()
    # it still learns from the context at p = 1, beyond what averaging gives
    assert comparison(res, 2, "guard", "at p = 1").status == "FAIL"


def test_finding_2_needs_nothing_learned_at_p_1(tmp_path):
    # a useless critic cannot help: a model below the blind average at p = 1
    # contradicts the finding
    beats_blind = lambda c, s, p, i: (synthetic.paper_like(c, s, p, i) if p < 1
                                      else 0.2 + 0.001 * s)
    res = make(tmp_path, "beats.h5", [{}], beats_blind)
    assert verdicts(res)[2] == "FAIL"
    assert comparison(res, 2, "guard", "at p = 1").status == "FAIL"
    # a model that still improves with examples at p = 1 but stays above the
    # blind average does not contradict it
    learns = lambda c, s, p, i: synthetic.paper_like(c, s, min(p, 0.6), i)
    res = make(tmp_path, "learns.h5", [{}], learns)
    assert comparison(res, 2, "level").status == "PASS"
    assert comparison(res, 2, "guard", "at p = 1").status != "FAIL"
    # without p = 1 among the levels the same curves pass (the guard is not asked)
    res = make(tmp_path, "nop1.h5", [{}], learns, noise=(0.0, 0.5))
    assert verdicts(res)[2] == "PASS" and "p=1 not evaluated" in evidence(res, 2)
    assert not [c for c in verdict(res, 2).comparisons if c.role == "guard"]


def test_finding_2_mechanism_the_model_must_beat_the_blind_average(tmp_path):
    above = lambda c, s, p, i: synthetic.paper_like(c, s, p, i) + 0.1
    res = make(tmp_path, "above.h5", [{}], above)
    assert comparison(res, 2, "level").status == "PASS"
    mech = comparison(res, 2, "mechanism")
    assert mech.status == "FAIL" and mech.text.startswith("reward-blind average − transformer")
    assert verdicts(res)[2] == "FAIL"


def test_finding_2_reversal_between_levels_fails(tmp_path):
    # error at p = 0.5 below p = 0.25: not monotone
    dip = lambda c, s, p, i: synthetic.paper_like(c, s, 0.1 if p == 0.5 else p, i)
    res = make(tmp_path, "dip.h5", [{}], dip, noise=(0.0, 0.25, 0.5, 1.0))
    assert comparison(res, 2, "guard", "p = 0.5 − p = 0.25").status == "FAIL"
    assert comparison(res, 2, "guard", "p = 0.25 − p = 0").status == "PASS"
    assert verdicts(res)[2] == "FAIL"


def test_finding_2_not_in_grid_with_one_noise_level(tmp_path):
    res = make(tmp_path, "one.h5", [{}], noise=(0.0,))
    assert verdicts(res)[2] == "NOT IN GRID"


def test_schema_1_file_is_judged_without_the_reference_strategies(tmp_path):
    res = make(tmp_path, "v1.h5", synthetic.PAPER_CONFIGS, schema=1)
    vs = report.checklist(res)
    assert {v.number: v.status for v in vs} == {n: "PASS" for n in range(1, 7)}
    for n in (1, 2):
        mech = comparison(res, n, "mechanism")
        assert mech.status == "N/A" and mech.line().endswith(f"N/A ({SCHEMA_1_BLIND})")
    assert verdict(res, 1).combined.startswith("level PASS, mechanism N/A")
    # without blind, "nothing learned at p = 1" cannot be asked
    assert comparison(res, 2, "guard", "at p = 1").status == "N/A"
    assert f"not counted: {SCHEMA_1_BLIND}" in " ".join(verdict(res, 3).notes)
    path, _ = report.write_report(res, str(tmp_path / "rep"), log=lambda s: None)
    text = open(path).read()
    assert f"- reference strategies: none: {SCHEMA_1_BLIND}" in text
    assert "blind at 15" not in text   # no reference columns in the configuration table


def test_finding_1_fails_when_the_transformer_ignores_the_context(tmp_path):
    flat = lambda c, s, p, i: 0.8 + 0.001 * s
    res = make(tmp_path, "flat.h5", [{}], flat)
    assert verdicts(res)[1] == "FAIL"
    assert comparison(res, 1, "level").status == "NO EFFECT"      # no fall at all
    assert comparison(res, 1, "mechanism").status == "FAIL"   # the blind average falls more


def test_finding_1_fall_is_paired_across_seeds(tmp_path):
    # seeds sit at very different levels but every one falls by about 0.1:
    # an unpaired comparison of the two positions would drown the fall
    level = lambda c, s, p, i: 0.3 + 0.3 * (s % 2) + 0.1 * (1 - np.exp(-(15 - i) / 4.0)) + 0.001 * s
    res = make(tmp_path, "levels.h5", [{}], level)
    assert comparison(res, 1, "level").status == "PASS"
    # and when one seed falls while another rises, 3 seeds cannot tell
    mixed = lambda c, s, p, i: 0.5 + (0.01 * i if s % 2 else -0.01 * i) + 0.001 * s
    res = make(tmp_path, "mixed.h5", [{}], mixed)
    level = comparison(res, 1, "level")
    assert level.status == "INCONCLUSIVE" and verdicts(res)[1] == "INCONCLUSIVE"
    d = per_seed(res, [0, 1, 2], 0.0, 2) - per_seed(res, [0, 1, 2], 0.0, 15)
    assert f"about {seeds_to_decide(d.mean(), d.std(ddof=1))} seeds" in level.line()


def test_finding_1_fails_when_the_transformer_stays_far_above_gd(tmp_path):
    # falls from 0.95 to about 0.80 while GD with 2 examples is at 0.63
    slow = lambda c, s, p, i: 0.95 - 0.15 * (1 - np.exp(-i / 4.0)) * (1 - p) + 0.001 * s
    res = make(tmp_path, "slow.h5", [{}], slow)
    assert verdicts(res)[1] == "FAIL"
    assert comparison(res, 1, "level").status == "PASS"
    assert comparison(res, 1, "guard").status == "FAIL"


def test_finding_4_fails_when_the_most_heads_are_not_better(tmp_path):
    h4_bad = shift(synthetic.paper_like, lambda c: c["heads"] == 4, 0.1)
    res = make(tmp_path, "h.h5", [dict(heads=h, embd=32 * h) for h in (1, 3, 4)], h4_bad)
    assert verdicts(res)[4] == "FAIL"
    assert comparison(res, 4, "level", "fewest vs most").status == "FAIL"
    best = comparison(res, 4, "level", "the best other")
    assert best.text.startswith("H = 1 − H = 3 (fewest vs the best other)")
    # 3 seeds: significant alone, not after Holm's correction across the findings
    assert best.uncorrected == "PASS" and best.status == "INCONCLUSIVE"
    assert "uncorrected PASS" in best.line()
    assert "falls with every step up in heads: no (H = 4 above H = 3)" in " ".join(verdict(res, 4).notes)


def test_finding_4_guard_catches_a_head_count_worse_than_one(tmp_path):
    h3_bad = shift(synthetic.paper_like, lambda c: c["heads"] == 3, 0.1)
    res = make(tmp_path, "h3.h5", [dict(heads=h, embd=32 * h) for h in (1, 3, 4, 6)], h3_bad)
    assert comparison(res, 4, "level").status == "PASS"       # H = 6 is the best other too
    assert comparison(res, 4, "guard", "H = 1 − H = 3").status == "FAIL"
    assert comparison(res, 4, "guard", "H = 1 − H = 4").status == "PASS"
    assert verdict(res, 4).combined == "level PASS, mechanism PASS, guards: 1 of 2 contradicted -> FAIL"


def test_findings_5_and_6_fail_when_reversed(tmp_path):
    reversed_ = shift(shift(synthetic.paper_like, lambda c: c["ffn"] == 1, 0.2),
                      lambda c: c["layers"] == 8, 0.2)
    res = make(tmp_path, "rev.h5", [{}, dict(ffn=0), dict(layers=2), dict(layers=8)], reversed_)
    v = verdicts(res)
    assert v[5] == "FAIL" and v[6] == "FAIL" and v[3] == v[4] == "NOT IN GRID"
    assert comparison(res, 6, "level").text.startswith("L = 2 − L = 8")
    assert "the shallowest and the deepest are compared" in " ".join(verdict(res, 6).notes)


def test_unfinished_runs_are_left_out_and_listed(tmp_path):
    status = lambda c, s: "diverged" if c["attention"] == "linear" and s == 0 else "done"
    res = make(tmp_path, "div.h5", SOFTMAX_LINEAR, status=status)
    path, vs = report.write_report(res, str(tmp_path / "rep"), log=lambda s: None)
    text = open(path).read()
    assert "5 done, 1 diverged (of 6)" in text
    assert "**diverged**: synthetic diverged run" in text
    assert "(seeds per arm differ: 2, 3)" in text
    line = comparison(res, 3, "level").line()
    assert "2 seeds (seeds not in both: 0): INCONCLUSIVE" in line and "uncorrected PASS" in line


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


def drawn_lines(monkeypatch):
    """Records, per panel, the (legend label, line style) of every line
    drawn on its axes, before the figure is saved and closed."""
    seen = {}
    save = figures._save

    def recording_save(fig, out_dir, panel):
        seen[panel.name] = [(line.get_label(), line.get_linestyle())
                            for ax in fig.axes for line in ax.get_lines()]
        return save(fig, out_dir, panel)
    monkeypatch.setattr(figures, "_save", recording_save)
    return seen


def test_reference_strategies_are_drawn(tmp_path, monkeypatch):
    seen = drawn_lines(monkeypatch)
    res = make(tmp_path, "r.h5", SOFTMAX_LINEAR, noise=(0.0, 0.5, 1.0))
    panels = {p.name: p for p in figures.draw_all(res, str(tmp_path / "f"), log=lambda s: None)}
    assert (figures.BLIND_NAME, ":") in seen["tf_vs_gd"]
    assert (figures.PICK_NAME, "-.") in seen["tf_vs_gd"]
    # blind once (it does not depend on p), pick at every p
    noise_lines = seen["reward_noise"]
    assert noise_lines.count((figures.BLIND_NAME, ":")) == 1
    assert [l for l, s in noise_lines if s == "-."] == ["pick, p = 0", "pick, p = 0.5", "pick, p = 1"]
    assert (figures.BLIND_NAME, ":") in seen["attention"]
    assert "highest seen reward (dash-dot)" in panels["tf_vs_gd"].caption
    assert "at each p (dash-dot" in panels["reward_noise"].caption
    # the lines are the means of the file's curves
    rows = res.select(attention="softmax")
    xs = figures.positions(res)
    fig_data = {}
    orig_plot = figures.plt.Axes.plot

    def plot(ax, *args, **kw):
        fig_data.setdefault(kw.get("label"), args[1])
        return orig_plot(ax, *args, **kw)
    monkeypatch.setattr(figures.plt.Axes, "plot", plot)
    figures.draw_all(res, str(tmp_path / "g"), log=lambda s: None)
    np.testing.assert_allclose(fig_data[figures.BLIND_NAME], res.blind_err[rows][:, 0, xs].mean(axis=0),
                               rtol=1e-6)
    np.testing.assert_allclose(fig_data["pick, p = 0.5"], res.pick_err[rows][:, 1, xs].mean(axis=0),
                               rtol=1e-6)


def test_schema_1_figures_have_no_reference_lines(tmp_path, monkeypatch):
    seen = drawn_lines(monkeypatch)
    res = make(tmp_path, "v1.h5", SOFTMAX_LINEAR, schema=1)
    panels = {p.name: p for p in figures.draw_all(res, str(tmp_path / "f"), log=lambda s: None)}
    assert not [l for lines in seen.values() for l, s in lines if s in (":", "-.")]
    assert f"Reference strategies not drawn: {SCHEMA_1_BLIND}." in panels["tf_vs_gd"].caption
    check_files(panel_files(panels.values()))


def test_train_noise_panel_and_std_band(tmp_path):
    res = make(tmp_path, "tn.h5", [dict(train_noise=t) for t in (0.0, 0.5, 1.0)])
    panels = figures.draw_all(res, str(tmp_path / "f"), band="std", log=lambda s: None)
    tn = next(p for p in panels if p.name == "train_noise")
    assert "p = 0 and p = the training p" in tn.caption and "mean ± 1 s.d." in tn.caption
    check_files(panel_files(panels))
    assert "trained at p = 0.5" in evidence(res, 2)


def test_report_command_line_and_require(tmp_path, capsys):
    linear_wins = shift(synthetic.paper_like, lambda c: c["attention"] == "linear", -0.3)
    path = synthetic.make(str(tmp_path / "r.h5"), SOFTMAX_LINEAR, linear_wins)
    out = str(tmp_path / "rep")
    assert report.main([path, "--out", out, "--require", "1,2"]) == 0
    assert report.main([path, "--out", out, "--require", "1,2,3"]) == 1
    stdout = capsys.readouterr().out
    assert "FAIL         3. Softmax attention is far better than linear attention" in stdout
    assert "- level: linear − softmax, error at 15 examples, p = 0 (paper: > 0): mean -0." in stdout
    text = open(os.path.join(out, "report.md")).read()
    for line in ("- **PASS** — 1. Error falls", "- **PASS** — 2. Critic quality",
                 "- **FAIL** — 3. Softmax", "- **NOT IN GRID** — 4. More heads",
                 "- **NOT IN GRID** — 5. The MLP", "- **NOT IN GRID** — 6. Depth",
                 "  - verdict: level FAIL, mechanism PASS -> FAIL",
                 "![Transformer vs GD baseline](tf_vs_gd.png)",
                 "**A finding is FAIL if any of its comparisons is FAIL; PASS if none is FAIL",
                 "| blind at 15 | pick at 15 | reward use U |"):
        assert line in text, line
    assert report.main([str(tmp_path / "missing.h5"), "--out", out]) == 2
    # INCONCLUSIVE is not PASS either
    one_seed = synthetic.make(str(tmp_path / "one.h5"), SOFTMAX_LINEAR, synthetic.paper_like,
                              seeds=(0,))
    assert report.main([one_seed, "--out", out, "--require", "3"]) == 1
    assert "INCONCLUSIVE 3. Softmax" in capsys.readouterr().out


# ---- files made by the binary ---------------------------------------------

VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")


def check_reference_curves(res):
    """What the binary's reference strategies must satisfy, if it wrote them."""
    assert res.schema_version in (1, 2)
    if res.schema_version == 1:
        assert not res.has("blind")
        return
    blind, pick = res.blind_err, res.pick_err
    done = res.select(status="done")
    assert np.isnan(blind[done, :, 0]).all() and np.isnan(pick[done, :, 0]).all()
    assert np.isfinite(blind[done, :, 1:]).all() and np.isfinite(pick[done, :, 1:]).all()
    # blind ignores the rewards: the same at every p; with one response
    # both strategies return it
    for p in range(1, len(res.noise)):
        np.testing.assert_array_equal(blind[done, p], blind[done, 0])
    np.testing.assert_allclose(pick[done, :, 1], blind[done, :, 1], rtol=1e-6)
    # with a perfect critic the best response beats the average of them all
    last = min(15, res.n_points - 1)
    assert (pick[done, res.noise_index(0.0), last] < blind[done, res.noise_index(0.0), last]).all()


def test_binary_sweep_file_has_the_smoke_grid(binary_file):
    res = load(binary_file.path)
    assert res.attrs["schema_version"] in (1, 2) and res.attrs["program_version"]
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
    check_reference_curves(res)
    if res.has("blind"):
        np.testing.assert_array_equal(res.blind_err[0], res.blind_err[2])
        np.testing.assert_array_equal(res.pick_err[1], res.pick_err[3])


def test_binary_sweep_figures_and_report(binary_file, tmp_path):
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
    assert all(v[n] in VERDICTS for n in (1, 2, 3, 6)), v
    assert "(2 seeds)" in evidence(res, 3) and "7 examples" in evidence(res, 3)
    assert "error at 7 examples" in comparison(res, 3, "level").text
    assert comparison(res, 3, "level").result.seeds == (0, 1)
    if res.has("blind"):
        assert comparison(res, 2, "mechanism").status in VERDICTS
    else:
        assert comparison(res, 2, "mechanism").status == "N/A"


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
        assert any(line.split()[0] in (*VERDICTS, "NOT") and f" {n}. " in line
                   for line in rep.stdout.splitlines() if line.strip()), n
    assert "git revision: " + str(load(binary_file.path).attrs["git_revision"]) in text
    check_files([str(tmp_path / "r" / f) for f in os.listdir(tmp_path / "r")
                 if f.endswith((".png", ".pdf"))])


def test_binary_train_file(train_file, tmp_path):
    res = load(train_file.path)
    assert res.n_runs == 1 and res.runs["status"][0] == "done"
    assert res.runs["layers"][0] == 1 and res.runs["embd"][0] == 16
    assert res.tf_err.shape == (1, 3, 8) and np.isfinite(res.tf_err).all()
    check_reference_curves(res)
    path, vs = report.write_report(res, str(tmp_path / "r"), log=lambda s: None)
    v = {x.number: x.status for x in vs}
    assert v[3] == v[4] == v[5] == v[6] == "NOT IN GRID"
    # one seed: no interval, so nothing can pass or fail on the statistics
    assert v[1] in VERDICTS and v[2] in VERDICTS
    assert "(1 seed)" in evidence(res, 1)
    assert "no interval from 1 seed" in comparison(res, 1, "level").line()
    check_files([os.path.join(tmp_path / "r", f) for f in os.listdir(tmp_path / "r")
                 if f.endswith((".png", ".pdf"))])
    if HAS_XARRAY:
        ds = res.to_xarray()
        assert ds.sizes["run"] == 1 and ds.sizes["position"] == 8
        assert len(res.tidy()) == 3 * 8


def test_binary_file_names_its_knobs(binary_file):
    """The knob attributes the binary writes are what the loader takes its
    configuration fields from: every /runs column they name exists."""
    res = load(binary_file.path)
    with h5py.File(binary_file.path, "r") as f:
        names = [v.decode() for v in f["runs"].attrs["knobs"]]
        sections = {v.decode() for v in f["runs"].attrs["knob_sections"]}
        assert names[:2] == ["dims", "points"] and "seed" in names
        assert set(names) <= set(f["runs"].dtype.names)
        assert sections <= {"task", "model", "training", "evaluation"}
    assert res.config_fields == tuple(n for n in names if n != "seed")
    assert res.knob("layers").label == "L" and res.knob("layers").section == "model"
    assert res.knob("train_noise").meaning.startswith("reward noise")


def test_file_without_knob_attributes_has_the_first_knobs(tmp_path):
    res = make(tmp_path, "old.h5", [{}], knob_attrs=False)
    assert res.config_fields == ("dims", "points", "layers", "heads", "embd", "attention",
                                 "ffn", "loss", "train_noise", "lr", "batch", "steps",
                                 "eval_batch")
    assert res.knob("heads").label == "H"


def test_a_knob_added_to_icasweep_reaches_the_analysis(tmp_path):
    """A knob the analysis was never told about (here "warmup", as a new
    line of knobs.def would add it) becomes a configuration field, splits
    the groups, gets its ablation panel, a label and its place in
    descriptions, from the file alone."""
    warmup = ("warmup", "wu", "training", "linear learning-rate warm-up steps", "<i4", 0)
    better = lambda c, s, p, i: synthetic.paper_like(c, s, p, i) - 0.05 * (c["warmup"] > 0)
    res = make(tmp_path, "w.h5", [dict(warmup=0), dict(warmup=100)], better,
               new_knobs=[warmup])
    assert res.config_fields[-1] == "warmup"
    assert res.knob("warmup").meaning == "linear learning-rate warm-up steps"
    assert len(res.groups()) == 2 and {g.config["warmup"] for g in res.groups()} == {0, 100}
    assert "warmup" in figures.ablation_factors(res)
    abl, reason = figures.ablation(res, "warmup")
    assert abl is not None, reason
    assert [v for v, _ in abl.arms] == [0, 100]
    assert figures.label("warmup", 100) == "warmup = 100"
    assert "warmup=100" in figures.describe(abl.arms[1][1].config)
    lines = []
    panels = figures.draw_all(res, str(tmp_path / "f"), log=lines.append)
    assert "warmup" in {p.name for p in panels}, lines
    if HAS_XARRAY:
        assert "warmup" in res.tidy().columns


# ---- equivalence, many comparisons ------------------------------------------

def mlp_blind(c, s, p, i):
    """paper_like as if every run had the MLP, plus a per-run scatter of
    ±0.004 that pairing cannot remove: the MLP changes nothing."""
    return synthetic.paper_like(dict(c, ffn=1), s, p, i) + 0.004 * synthetic.jitter(c, s)


def test_no_effect_when_the_interval_sits_inside_the_margin(tmp_path):
    res = make(tmp_path, "mlp.h5", [{}, dict(ffn=0)], mlp_blind, seeds=tuple(range(8)))
    v = verdict(res, 5)
    level, mech = comparison(res, 5, "level"), comparison(res, 5, "mechanism")
    assert level.status == mech.status == "NO EFFECT", v.detail_lines()
    assert v.status == "NO EFFECT" and v.combined == "level NO EFFECT, mechanism NO EFFECT -> NO EFFECT"
    # by hand: the 90% interval of the differences lies inside ±0.02
    d = np.array([level.a[s] - level.b[s] for s in range(8)])
    half90 = 1.895 * d.std(ddof=1) / np.sqrt(8)          # t_{0.95, 7} = 1.895
    assert -0.02 < d.mean() - half90 and d.mean() + half90 < 0.02
    assert (f"90% CI [{d.mean() - half90:+.4f}, {d.mean() + half90:+.4f}] inside ±0.02"
            in level.line()), level.line()
    # a margin below the spread cannot rule anything out: per finding, or for all
    tight = {x.number: x for x in report.checklist(res, per_finding={5: 0.001})}
    assert tight[5].status == "INCONCLUSIVE" and tight[5].delta == 0.001
    assert "δ = 0.001" in tight[5].comparisons[0].line()
    assert {x.number: x.status for x in report.checklist(res, delta=0.001)}[5] == "INCONCLUSIVE"


def test_report_states_its_comparisons_and_holm(tmp_path, capsys):
    path = synthetic.make(str(tmp_path / "m.h5"), [{}, dict(ffn=0)], mlp_blind,
                          seeds=tuple(range(8)))
    out = str(tmp_path / "rep")
    assert report.main([path, "--out", out, "--delta", "0.03", "--delta", "5=0.025"]) == 0
    stdout = capsys.readouterr().out
    assert "NO EFFECT    5. The MLP block matters" in stdout
    text = open(os.path.join(out, "report.md")).read()
    # findings 1, 2 (reference model) and 5: 6 primary comparisons; guards:
    # finding 1's GD one, finding 2's 2 steps of p and p = 1 vs blind
    want = ("10 comparisons, 10 with an interval: 6 primary (level and mechanism) comparisons "
            "of 3 findings, judged as one family (family-wise 5%: Holm's correction across "
            "their 6 tests of no difference and across their 6 equivalence tests, each at "
            "2.5%), and 4 guards, judged uncorrected")
    assert want in text and want in stdout
    assert "margin δ = 0.025 (finding 5), 0.03 (findings 1, 2, 3, 4, 6)" in text
    assert "- **NO EFFECT** — 5. The MLP" in text
    with pytest.raises(SystemExit):
        report.main([path, "--out", out, "--delta", "7=0.1"])
    with pytest.raises(SystemExit):
        report.main([path, "--out", out, "--delta", "-1"])
    assert "findings are numbered 1-6" in capsys.readouterr().err


def test_holm_is_what_the_verdicts_use(tmp_path):
    # the same file judged by hand: uncorrected p-values of the primary
    # comparisons, Holm-adjusted in two families at 2.5%, decide the verdicts
    from pairedstats import holm
    res = make(tmp_path, "h.h5", [dict(heads=h, embd=32 * h) for h in (1, 3, 4)],
               shift(synthetic.paper_like, lambda c: c["heads"] == 4, 0.1))
    vs = report.checklist(res)
    family = [c for v in vs for c in v.comparisons if c.primary and c.result.interval.n >= 2]
    adj = holm([c.result.p_diff for c in family])
    for c, a in zip(family, adj):
        assert c.p_holm[0] == pytest.approx(min(1.0, 2 * a))
        if c.status in ("PASS", "FAIL"):
            assert 2 * a < 0.05 and c.result.p_diff < 0.05
    assert any(c.uncorrected != c.status for c in family)   # the correction bites here
