"""Two-stage seed planning: the plan computed by hand, the grown grid, the
plan carried in the grid text, and the report on the grown file."""
import math
import os
import re
import subprocess

import numpy as np
import pytest

import report
import seedplan
import synthetic
from conftest import _binary
from icaresults import load
from pairedstats import TwoStage, stein_total_to_decide

# A grid that expands to the synthetic file's rows: DEFAULTS, MLP on then off.
GRID = """# a test grid
settings:
  dims: 5
  points: 20
  layers: 4
  heads: 3
  embd: 96
  batch: 64
  lr: 1.0e-3
  steps: 200
  eval_batch: 64
eval_noise: [0, 0.5, 1]
seeds: [0, 1, 2, 3]
grids:
  - name: mlp
    ffn: [on, off]
checkpoint_every: 100
"""
MLP = [{}, dict(ffn=0)]
ONE_TFLOP = 1e12 / (40e9 * 3600)    # core-hours of a 1-TFLOP run at 40 GFLOP/s


def mlp_small(c, s, p, i):
    """The MLP adds 0.01 at p = 0 under a per-run scatter of ±0.03: four
    seeds cannot tell; reward use is the same in both arms."""
    return (synthetic.paper_like(dict(c, ffn=1), s, p, i) + 0.03 * synthetic.jitter(c, s)
            + (0.01 if c["ffn"] == 0 else 0.0))


def first_stage(tmp_path, seeds=(0, 1, 2, 3), grid=GRID):
    return load(synthetic.make(str(tmp_path / f"stage{len(seeds)}.h5"), MLP, mlp_small,
                               seeds=seeds, grid=grid))


def level_5(verdicts):
    v = next(v for v in verdicts if v.number == 5)
    return next(c for c in v.comparisons if c.role == "level")


def test_plan_by_hand(tmp_path):
    res = first_stage(tmp_path)
    vs = report.checklist(res)
    level = level_5(vs)
    assert level.status == "INCONCLUSIVE" and vs[4].status == "INCONCLUSIVE"
    d = np.array([level.a[s] - level.b[s] for s in range(4)])
    s0 = d.std(ddof=1)
    # Holm's families of findings 1, 2 and 5 (6 primary comparisons): every
    # test of no difference is rejected but 3 (finding 2's mechanism, both of
    # finding 5's), every equivalence test is open but finding 5 mechanism's
    # (reward use is the same in both arms here: NO EFFECT): levels 0.025 / 3
    # and 0.025 / 5
    a_d, a_e = seedplan.holm_levels(vs)
    assert (a_d, a_e) == (pytest.approx(0.025 / 3), pytest.approx(0.005))
    # Stein: n = max(4, ceil(((t_{1-a_d/2, 3} + t_{1-a_e, 3}) s0 / 0.02)^2)),
    # t_{0.99583, 3} = 6.2315, t_{0.995, 3} = 5.8409
    want = max(4, math.ceil(((6.2315 + 5.8409) * s0 / 0.02) ** 2))
    assert want == stein_total_to_decide(4, s0, 0.02, a_d, a_e) and want > 4
    out = str(tmp_path / "grown.yaml")
    plan = seedplan.plan_second_stage(res, vs, out, run_tflop=lambda c: 1.0)
    (cand,) = plan.candidates
    assert cand.comparison is level and cand.fits
    assert cand.plan == TwoStage((0, 1, 2, 3), s0, 0.02, a_d, a_e, want)
    assert cand.new_seeds == want - 4 and cand.runs == 2 * (want - 4)
    assert plan.runs_added == 2 * (want - 4)
    # priced at the file's own runs: 1 s x 1 thread each
    assert plan.core_hours == pytest.approx(2 * (want - 4) / 3600.0)
    text = plan.text()
    assert "costs from the file's own runs (mean wall seconds x threads" in text
    assert f"n0 = 4, s0 = {s0:.3g}, δ = 0.02 -> {want} seeds in all" in text
    assert f"planned: 1 comparison, {2 * (want - 4)} runs" in text

    grown = open(out).read()
    # the old grid is all there, in order; two sub-grids pin MLP on and off
    old = GRID.strip().split("\n")
    kept = [line for line in grown.split("\n") if line in old]
    assert kept == old
    seeds = "[" + ", ".join(str(s) for s in range(want)) + "]"
    assert grown.count(f"    seeds: {seeds}") == 2
    assert re.search(r"- name: second stage 1\n(    \w+: .*\n)*    ffn: on\n", grown)
    assert re.search(r"- name: second stage 2\n(    \w+: .*\n)*    ffn: off\n", grown)
    # the plan travels in the grid text
    plans = seedplan.plans_in_grid(grown)
    assert plans == {level.key: cand.plan}


def test_runs_are_priced_at_the_files_own_timings(tmp_path):
    res = first_stage(tmp_path)
    vs = report.checklist(res)
    off = res.select(ffn=0)
    on = res.select(ffn=1)
    res.runs["wall_seconds"][off] = [1200.0, 1800.0, 2400.0, 1800.0]   # mean 1800 s
    res.runs["threads"][off] = 2                                       # 1 core-hour a run
    out = str(tmp_path / "grown.yaml")
    (cand,) = seedplan.plan_second_stage(res, vs, out, run_tflop=lambda c: 1.0).candidates
    assert cand.cost == pytest.approx(cand.new_seeds * (1.0 + 1.0 / 3600.0))
    # a configuration without a timed run is priced at plan's FLOPs and rate
    res.runs["wall_seconds"][on] = 0.0
    plan = seedplan.plan_second_stage(res, vs, out, run_tflop=lambda c: 1.0)
    assert plan.candidates[0].cost == pytest.approx(plan.candidates[0].new_seeds
                                                    * (1.0 + ONE_TFLOP))
    assert ("costs from the file's own runs for 1 of 2 configurations, the others at 40 "
            "GFLOP/s per core (icasweep plan's rate)") in plan.text()
    # --gflops prices every run at plan's FLOPs and that rate
    plan = seedplan.plan_second_stage(res, vs, out, run_tflop=lambda c: 1.0, gflops=40.0)
    assert plan.candidates[0].cost == pytest.approx(2 * plan.candidates[0].new_seeds * ONE_TFLOP)
    assert "costs at 40 GFLOP/s per core (icasweep plan's rate)" in plan.text()


def test_budget_says_what_does_not_fit(tmp_path):
    res = first_stage(tmp_path)
    vs = report.checklist(res)
    out = str(tmp_path / "grown.yaml")
    plan = seedplan.plan_second_stage(res, vs, out, budget=0.01, run_tflop=lambda c: 1.0)
    (cand,) = plan.candidates
    assert not cand.fits and not plan.written and not os.path.exists(out)
    text = plan.text()
    assert (f"{cand.runs} runs, {cand.cost:.2f} core-hours: does not fit the budget of 0.01 "
            f"core-hours") in text
    assert f"not planned, over the budget: 1 comparison, {cand.cost:.2f} core-hours" in text
    assert "planned: 0 comparisons, 0 runs, 0.00 core-hours (budget 0.01)" in text
    # what the budget buys instead: 0.01 core-hours at 2 runs of 1 s per seed
    # is 18 more seeds, 22 in all, which settle the comparison at
    # δ = (t_{0.99583, 3} + t_{0.995, 3}) s0 / sqrt(22)
    s0 = cand.plan.sd
    margin = (6.2315 + 5.8409) * s0 / math.sqrt(22)
    n_aff, printed = cand.affordable
    assert n_aff == 22 and margin * 0.9999 <= printed < margin * 1.01   # 3 digits, up
    assert f"the budget on its own settles it at δ >= {printed:.3g} (22 seeds in all; --delta 5=" \
        in text
    # and that margin, given, plans no more than the budget
    assert stein_total_to_decide(4, s0, printed, *seedplan.holm_levels(vs)) <= 22


def test_grown_file_is_judged_in_two_stages(tmp_path):
    res = first_stage(tmp_path)
    out = str(tmp_path / "grown.yaml")
    plan = seedplan.plan_second_stage(res, report.checklist(res), out, run_tflop=lambda c: 1.0)
    n = plan.candidates[0].plan.total
    s0 = plan.candidates[0].plan.sd
    # the second stage run: the same curves for seeds 0-3, more seeds after
    grown = first_stage(tmp_path, seeds=tuple(range(n)), grid=open(out).read())
    vs = report.checklist(grown)
    level = level_5(vs)
    iv = level.result.interval
    assert level.result.plan == plan.candidates[0].plan
    assert iv.n == n and iv.sd == s0
    assert iv.half_width == pytest.approx(3.1824 * s0 / math.sqrt(n), rel=1e-4)
    assert 2 * iv.half_width < 0.02             # the final 95% interval is narrower than δ
    # decided after Holm's correction, whatever the second stage showed
    assert level.status in ("PASS", "FAIL", "NO EFFECT"), level.line()
    assert vs[4].status in ("PASS", "FAIL", "NO EFFECT")
    line = level.line()
    assert f"two-stage: 4 first-stage seeds, s0 = {s0:.3g}, t with 3 df; {n} of {n} planned" in line
    assert "1 judged with a two-stage (Stein) interval" in report.family_text(vs)
    # the same data judged as one stage has its own (different) interval
    d = np.array([level.a[s] - level.b[s] for s in range(n)])
    assert iv.half_width != pytest.approx(2.0 * d.std(ddof=1) / math.sqrt(n), rel=1e-3)
    assert report.unmatched_plans(grown, vs) == ""
    # a plan whose comparison is not in the report is named, not used
    lost = load(synthetic.make(str(tmp_path / "lost.h5"), MLP, mlp_small, seeds=tuple(range(n)),
                               grid=open(out).read().replace('"role": "level"', '"role": "guard"')))
    lost_vs = report.checklist(lost)
    assert level_5(lost_vs).result.plan is None
    assert report.unmatched_plans(lost, lost_vs).startswith(
        "note: two-stage plans in the grid that match no comparison (judged as one stage "
        "instead): finding 5 guard: MLP off")
    # planning again does not add a third stage
    again = seedplan.plan_second_stage(grown, vs, str(tmp_path / "again.yaml"),
                                       run_tflop=lambda c: 1.0)
    assert not again.candidates and not again.written


def test_a_damaged_plan_line_is_refused():
    with pytest.raises(ValueError, match="line is damaged"):
        seedplan.plans_in_grid('# two-stage plan: {"finding": 5}\n')
    assert seedplan.plans_in_grid("# two-stage planning is described in README\n") == {}


def run_plan_ids(exe, text, tmp_path, name):
    path = tmp_path / name
    path.write_text(text)
    p = subprocess.run([exe, "plan", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return re.findall(r"^\s*\d+\s+(r[0-9a-f]{16})\s", p.stdout, re.M)


def test_pinned_subgrids_reproduce_the_files_runs(binary_file, tmp_path):
    """A sub-grid written by the planner pins every knob of its
    configuration: without its seeds list it expands to runs the grid
    already has, so the grown grid keeps every run id (here the smoke grid,
    which has no `grids:`, so the planner adds one)."""
    exe = _binary()
    res = load(binary_file.path)
    grid = res.attrs["grid"]
    subs = [seedplan.subgrid_lines(i + 1, g.config, [0], "", "test")[:-1]   # no seeds line
            for i, g in enumerate(res.groups())]
    grown = seedplan.grow_grid(grid, subs, [])
    assert "grids:\n  - name: the grid's own runs\n" in grown
    before = run_plan_ids(exe, grid, tmp_path, "before.yaml")
    assert before == list(res.runs["run_id"])
    assert run_plan_ids(exe, grown, tmp_path, "after.yaml") == before


def test_command_line_plan(tmp_path, capsys):
    exe = _binary()
    path = synthetic.make(str(tmp_path / "f.h5"), MLP, mlp_small, seeds=(0, 1, 2, 3), grid=GRID)
    out = str(tmp_path / "grown.yaml")
    assert report.main([path, "--plan-seeds", out, "--budget", "100", "--icasweep", exe]) == 0
    stdout = capsys.readouterr().out
    assert "finding 5 level: MLP off − MLP on" in stdout and "planned: 1 comparison" in stdout
    assert f"wrote {out}" in stdout and os.path.exists(out)
    # priced by icasweep plan: this grid's runs are 200 steps of a 4-layer model
    assert re.search(r"planned: 1 comparison, \d+ runs, \d+\.\d\d core-hours \(budget 100\)",
                     stdout)
    with pytest.raises(SystemExit):
        report.main([path, "--budget", "1", "--out", str(tmp_path / "r")])


def test_pinned_subgrids_on_the_findings_grid(tmp_path):
    """The same on jobs/grids/findings.yaml, whose settings give E as
    embd_per_head: a pinned `embd` replaces it, and the grown grid (plan
    lines included) keeps every run and run id in order."""
    exe = _binary()
    grid_path = os.path.join(os.path.dirname(seedplan.HERE), "jobs", "grids", "findings.yaml")
    grid = open(grid_path).read()
    base = dict(dims=5, points=20, layers=2, heads=2, embd=32, attention="softmax", ffn=1,
                loss="pl", train_noise=0.0, lr=0.001, batch=64, steps=4000, eval_batch=256)
    configs = [base, dict(base, ffn=0), dict(base, heads=4, embd=64), dict(base, train_noise=0.5)]
    subs = [seedplan.subgrid_lines(i + 1, c, [0], "", "test")[:-1] for i, c in enumerate(configs)]
    plan = TwoStage((0, 1), 0.1, 0.02, 0.01, 0.01, 9)

    class C:
        finding, role, text = 5, "level", "MLP off − MLP on"
    grown = seedplan.grow_grid(grid, subs, [seedplan.plan_line(C, plan)])
    assert seedplan.plans_in_grid(grown) == {(5, "level", "MLP off − MLP on"): plan}
    before = run_plan_ids(exe, grid, tmp_path, "before.yaml")
    assert len(before) == 64
    assert run_plan_ids(exe, grown, tmp_path, "after.yaml") == before
