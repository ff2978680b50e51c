"""Two-stage seed planning (Stein's procedure) for the report's undecided
comparisons, and the plan's record in the grid's text.

    plan = plan_second_stage(res, checklist(res), "grown.yaml", budget=2.0)
    print(plan.text())          # per comparison: seeds, runs, core-hours, fits or not
    plans_in_grid(res.attrs["grid"])   # {(finding, role, text): TwoStage}

The file's seeds are the first stage. For every primary comparison of an
undecided (INCONCLUSIVE) finding that is itself INCONCLUSIVE, the first
stage's n0 seeds and standard deviation s0 of the paired differences fix the
total (pairedstats.stein_total_to_decide)

    n = max(n0, ceil(((t_{1 - a_diff/2, n0-1} + t_{1 - a_equiv, n0-1}) s0 / delta)^2))

with a_diff, a_equiv the levels at which Holm's correction is sure to let
the comparison decide (holm_levels: ALPHA/2 over the hypotheses of each
family still open). The final two-stage tests, mean over all n seeds with
s0 and n0 - 1 degrees of freedom, then give PASS, FAIL or NO EFFECT whatever
the second stage shows, and the interval covers with exactly its stated
confidence (its 95% interval is then narrower than delta). Only the
configurations a comparison compares get the n - n0 new seeds; both arms
get the same ones, so they stay paired. The comparisons are taken cheapest
first while they fit in the budget.

A run is priced at what the file's own finished runs of its configuration
cost: the mean of wall_seconds x threads. `icasweep plan`'s rate is a
fraction of a second of products measured on the node that runs the
report, noisy on a shared machine (the same grid measured 18.6 and 33.7
GFLOP/s for one shape a minute apart), while the file's runs are the very
configurations the second stage repeats. A configuration without a
finished, timed run, and every run when --gflops is given, is priced at
plan's FLOPs and rate.

The grown grid is the file's own grid text with, appended to `grids:`, one
sub-grid per configuration that needs more seeds, pinning every knob and
listing that configuration's seeds (the old ones, then the new): the runs
already in the file keep their configurations, seeds and run ids. The plan
itself is written into the same text as comment lines

    # two-stage plan: {"finding": 5, "role": "mechanism", "text": ..., "stage_one": [...],
    #                  "sd": ..., "delta": ..., "alpha_diff": ..., "alpha_equiv": ...,
    #                  "total": ...}

so that the result file, which keeps its grid text, carries its plan: the
report finds it there and judges those comparisons with the two-stage
interval. Runs are priced with `icasweep plan` on the file's grid: each
configuration's FLOPs per run at plan's rate (--gflops).
"""
import json
import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field

from pairedstats import (ALPHA, INCONCLUSIVE, TwoStage, stein_margin_settled_by,
                         stein_total_to_decide)

PLAN_TAG = "two-stage plan:"
_PLAN_LINE = re.compile(r"^\s*#\s*" + re.escape(PLAN_TAG) + r"\s*(\{.*\})\s*$")
_TOTAL = re.compile(r"^total: (\d+) runs, ([\d.]+) TFLOP")
# plan prints the core-hours of each precision on a line of its own; the
# runs the planner adds are FP32 unless their configuration says otherwise
_FP32_HOURS = re.compile(r"^fp32: ([\d.]+) core-hours")
_ROW = re.compile(r"^\s*(\d+)\s+(r[0-9a-f]{16})\s+([\d.]+)\s+([\d.]+)\s")
HERE = os.path.dirname(os.path.abspath(__file__))


class PlanError(Exception):
    """The plan cannot be made or written; the message says why."""


def plans_in_grid(grid_text):
    """{(finding, role, text): TwoStage} from the plan comments of a grid's
    text (lines "# two-stage plan: {json}"); {} when there are none."""
    plans = {}
    for line in (grid_text or "").splitlines():
        m = _PLAN_LINE.match(line)
        if not m:
            continue
        try:
            p = json.loads(m.group(1))
            key = (int(p["finding"]), str(p["role"]), str(p["text"]))
            plans[key] = TwoStage(tuple(int(s) for s in p["stage_one"]), float(p["sd"]),
                                  float(p["delta"]), float(p["alpha_diff"]),
                                  float(p["alpha_equiv"]), int(p["total"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"grid text: a {PLAN_TAG!r} line is damaged ({e}): {line.strip()}")
    return plans


def plan_line(comparison, plan):
    """The comment line that records a comparison's plan."""
    record = {"finding": comparison.finding, "role": comparison.role, "text": comparison.text,
              "stage_one": list(plan.stage_one), "sd": plan.sd, "delta": plan.delta,
              "alpha_diff": plan.alpha_diff, "alpha_equiv": plan.alpha_equiv,
              "total": plan.total}
    return f"# {PLAN_TAG} " + json.dumps(record)    # ASCII: non-ASCII text is escaped


# ---- pricing: icasweep plan --------------------------------------------------

def find_binary(binary=None):
    """The icasweep binary: binary, else $ICASWEEP, else build/icasweep beside
    analysis/."""
    exe = binary or os.environ.get("ICASWEEP") or os.path.join(os.path.dirname(HERE), "build",
                                                                 "icasweep")
    if not os.access(exe, os.X_OK):
        raise PlanError(f"pricing runs needs the icasweep binary: {exe} is not an executable "
                        f"(give --icasweep BINARY or set ICASWEEP)")
    return exe


def run_plan(exe, grid_text, gflops=None):
    """`icasweep plan` of a grid text: ({run_id: TFLOP}, total line's
    (runs, TFLOP, core-hours, GFLOP/s per core)). PlanError with plan's
    message when it refuses the grid."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(grid_text)
        path = f.name
    try:
        cmd = [exe, "plan", path] + (["--gflops", f"{gflops:g}"] if gflops else [])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(path)
    if p.returncode != 0:
        raise PlanError(f"icasweep plan refused the grid: {p.stderr.strip() or p.stdout.strip()}")
    rows, counts, hours = {}, None, None
    for line in p.stdout.splitlines():
        m = _ROW.match(line)
        if m:
            rows[m.group(2)] = float(m.group(3))
        m = _TOTAL.match(line)
        if m:
            counts = (int(m.group(1)), float(m.group(2)))
        m = _FP32_HOURS.match(line)
        if m:
            hours = float(m.group(1))
    if counts is None or hours is None:
        raise PlanError(f"icasweep plan printed no total and fp32 lines:\n{p.stdout}")
    runs, tflop = counts
    rate = tflop * 1e12 / (hours * 3600.0 * 1e9) if hours > 0 else (gflops or 40.0)
    return rows, (runs, tflop, hours, rate)


def core_hours(tflop, gflops):
    return tflop * 1e12 / (gflops * 1e9) / 3600.0


# ---- the grown grid ------------------------------------------------------------

def _yaml_value(name, value):
    if name == "ffn":
        return "on" if value else "off"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".e") else text + ".0"
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", text):
        raise PlanError(f"knob {name}: value {text!r} cannot be written into a grid")
    return text


def subgrid_lines(number, config, seeds, indent, label):
    """One sub-grid pinning every knob of config, with its seeds."""
    inner = indent + "  "
    lines = [f"{indent}# second stage: {label}",
             f"{indent}- name: second stage {number}"]
    lines += [f"{inner}{k}: {_yaml_value(k, v)}" for k, v in config.items()]
    lines.append(f"{inner}seeds: [{', '.join(str(s) for s in seeds)}]")
    return lines


def grow_grid(text, subgrids, plan_lines):
    """The grid text with the sub-grids (lists of lines at indent "") added at
    the end of its `grids:` list, and the plan lines at the end. A grid
    without `grids:` gets one, whose first sub-grid is the old grid's runs
    (an empty sub-grid: the axes alone)."""
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    key = [i for i, l in enumerate(lines) if re.match(r"^grids\s*:", l)]
    if key and not re.match(r"^grids\s*:\s*(#.*)?$", lines[key[0]]):
        raise PlanError("the grid's `grids:` is written in flow style ([...]); write it as a "
                        "block list (- items) to grow it")
    header = ["", "# The second stage of a two-stage seed plan (analysis/report.py --plan-seeds):",
              "# each sub-grid below gives one configuration more seeds; the runs already",
              "# in the file keep their seeds and run ids."]
    if not key:
        indent = "  "
        block = ["grids:", f"{indent}- name: the grid's own runs"]
        for sub in subgrids:
            block += [indent + s for s in sub]
        out = lines + header + block
    else:
        start, last, indent = key[0], key[0], None
        for j in range(start + 1, len(lines)):
            line = lines[j]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line[0].isspace() and not line.startswith("-"):
                break                       # the next top-level key
            last = j
            if indent is None:
                m = re.match(r"^(\s*)-(\s|$)", line)
                indent = m.group(1) if m else "  "
        indent = "  " if indent is None else indent
        block = [s for h in header[1:] for s in [indent + h]]
        for sub in subgrids:
            block += [indent + s for s in sub]
        out = lines[:last + 1] + block + lines[last + 1:]
    return "\n".join(out + [""] + plan_lines) + "\n"


# ---- the plan ------------------------------------------------------------------

@dataclass
class Candidate:
    """One undecided comparison and the second stage that would settle it."""
    comparison: object
    plan: TwoStage
    groups: tuple                   # the configurations it compares
    new_seeds: int                  # n - n0
    cost: float = 0.0               # core-hours on its own
    runs: int = 0                   # runs on its own
    marginal: float = 0.0           # core-hours beside the comparisons chosen before it
    fits: bool = False
    affordable: tuple = ()          # (total seeds, margin) the budget alone buys, if it does not fit

    def name(self):
        c = self.comparison
        return f"finding {c.finding} {c.role}: {c.text}"


@dataclass
class SeedPlan:
    out_path: str
    candidates: list = field(default_factory=list)
    skipped: list = field(default_factory=list)     # (comparison name, why not planned)
    runs_added: int = 0
    core_hours: float = 0.0
    gflops: float = 40.0
    budget: object = None
    levels: tuple = (ALPHA, ALPHA)  # (alpha_diff, alpha_equiv) planned for
    naive: tuple = (0, 0, 0.0)      # (seeds each, runs, core-hours) of "more seeds for all"
    timed: int = 0                  # configurations priced from the file's own runs
    configs: int = 0                # configurations in the file
    written: bool = False
    checked: str = ""               # what `icasweep plan` said of the grown grid

    def text(self):
        a_d, a_e = self.levels
        out = [f"two-stage seed plan (Stein): the file's seeds are the first stage; each "
               f"undecided comparison gets the seeds that force a verdict after Holm's "
               f"correction: tests at p < {a_d:.2g} (no difference) and p < {a_e:.2g} "
               f"(equivalence), n = max(n0, ceil(((t(1 - {a_d:.2g}/2) + t({1 - a_e:.4g})) "
               f"s0 / δ)^2)), t with n0 - 1 df; {self.pricing()}"]
        for c in self.candidates:
            p = c.plan
            verdict = ("planned" if c.fits else
                       f"does not fit the budget of {self.budget:g} core-hours")
            if c.affordable:
                n_aff, margin = c.affordable
                verdict += (f"; the budget on its own settles it at δ >= {margin:.3g} "
                            f"({n_aff} seeds in all; --delta {c.comparison.finding}={margin:.3g})"
                            if n_aff > p.n0 else "; the budget on its own buys no seed of it")
            out.append(f"  {c.name()}: n0 = {p.n0}, s0 = {p.sd:.3g}, δ = {p.delta:g} -> "
                       f"{p.total} seeds in all, {c.new_seeds} more for {len(c.groups)} "
                       f"configuration{'s' if len(c.groups) != 1 else ''}: {c.runs} runs, "
                       f"{c.cost:.2f} core-hours"
                       + (f" ({c.marginal:.2f} beside those planned before it)"
                          if abs(c.marginal - c.cost) > 5e-3 else "") + f": {verdict}")
        for name, why in self.skipped:
            out.append(f"  {name}: not planned: {why}")
        if not self.candidates and not self.skipped:
            out.append("  nothing to plan: no finding is INCONCLUSIVE")
        fit = [c for c in self.candidates if c.fits]
        miss = [c for c in self.candidates if not c.fits]
        out.append(f"planned: {len(fit)} comparison{'s' if len(fit) != 1 else ''}, "
                   f"{self.runs_added} runs, {self.core_hours:.2f} core-hours"
                   + (f" (budget {self.budget:g})" if self.budget is not None else ""))
        if miss:
            out.append(f"not planned, over the budget: {len(miss)} comparison"
                       f"{'s' if len(miss) != 1 else ''}, "
                       f"{sum(c.cost for c in miss):.2f} core-hours on their own")
        seeds, runs, hours = self.naive
        if seeds:
            out.append(f"instead, more seeds for every configuration until every undecided "
                       f"comparison settles: {seeds} seeds each, {runs} more runs, "
                       f"{hours:.2f} core-hours")
        if self.checked:
            out.append(self.checked)
        if self.written:
            out.append(f"wrote {self.out_path}: grow the file with it (icasweep sweep "
                       f"{os.path.basename(self.out_path)} -o FILE); the report on the grown "
                       f"file judges the planned comparisons with their two-stage intervals")
        else:
            out.append(f"{self.out_path} not written: nothing planned")
        return "\n".join(out)

    def pricing(self):
        plan_rate = f"{self.gflops:.3g} GFLOP/s per core (icasweep plan's rate)"
        if self.timed == 0:
            return f"costs at {plan_rate}"
        if self.timed == self.configs:
            return ("costs from the file's own runs (mean wall seconds x threads of each "
                    "configuration)")
        return (f"costs from the file's own runs for {self.timed} of {self.configs} "
                f"configurations, the others at {plan_rate}")


def own_core_hours(res, groups):
    """{config key: core-hours of one run}, the mean of wall_seconds x threads
    over the configuration's finished runs, for the configurations that have
    one with a positive time."""
    try:
        wall, threads = res.column("wall_seconds"), res.column("threads")
    except KeyError:
        return {}
    done = set(res.select(status="done").tolist())
    out = {}
    for g in groups:
        cost = [float(wall[r]) * max(1, int(threads[r])) for r in g.rows
                if r in done and math.isfinite(float(wall[r])) and wall[r] > 0]
        if cost:
            out[_config_key(g.config)] = sum(cost) / len(cost) / 3600.0
    return out


def _config_key(config):
    return tuple(sorted(config.items()))


def holm_levels(verdicts):
    """(alpha_diff, alpha_equiv): the raw p-value levels at which a primary
    comparison still undecided is sure to be decided by Holm's correction
    (two families at ALPHA / 2, report.checklist) if the comparisons decided
    now stay decided: ALPHA / 2 over the number of hypotheses of each family
    not rejected now (Holm's threshold at its last steps is no smaller)."""
    family = [c for v in verdicts for c in v.comparisons
              if c.primary and c.result is not None and c.result.interval is not None
              and c.result.interval.n >= 2]
    open_diff = sum(1 for c in family if not c.p_holm[0] < ALPHA)
    open_equiv = sum(1 for c in family if not c.p_holm[1] < ALPHA)
    return ALPHA / 2.0 / max(1, open_diff), ALPHA / 2.0 / max(1, open_equiv)


def candidates_of(verdicts):
    """([Candidate], [(name, why not)]) of every primary INCONCLUSIVE
    comparison of an INCONCLUSIVE finding."""
    found, skipped = [], []
    alpha_diff, alpha_equiv = holm_levels(verdicts)
    for v in verdicts:
        if v.status != INCONCLUSIVE:
            continue
        for c in v.comparisons:
            if not c.primary or c.status != INCONCLUSIVE or c.result is None:
                continue
            name = f"finding {c.finding} {c.role}: {c.text}"
            r = c.result
            if r.plan is not None:
                skipped.append((name, f"already in a two-stage plan ({r.n} of {r.plan.total} "
                                      f"seeds): a third stage would lose the exact coverage"))
                continue
            if r.interval is None or r.n < 2 or not math.isfinite(r.interval.sd):
                skipped.append((name, "a first stage needs at least 2 seeds in common"))
                continue
            total = stein_total_to_decide(r.n, r.interval.sd, r.delta, alpha_diff, alpha_equiv)
            if total <= r.n:
                skipped.append((name, "no more seeds needed by the plan's rule"))
                continue
            plan = TwoStage(tuple(r.seeds), float(r.interval.sd), float(r.delta), alpha_diff,
                            alpha_equiv, int(total))
            found.append(Candidate(c, plan, tuple(c.groups), total - r.n))
    return found, skipped, (alpha_diff, alpha_equiv)


def plan_second_stage(res, verdicts, out_path, budget=None, binary=None, gflops=None,
                      run_tflop=None):
    """Plans, prices and (when anything is planned) writes the grown grid to
    out_path. run_tflop(config) -> TFLOP of one run; default: icasweep plan
    on the file's grid. Returns a SeedPlan."""
    grid = res.attrs.get("grid", "")
    if not grid.strip():
        raise PlanError(f"{res.path}: the file keeps no grid text to grow")
    cands, skipped, levels = candidates_of(verdicts)
    every = res.groups(status=None)
    seeds_of = {_config_key(g.config): sorted(set(g.seeds)) for g in every}
    rate = gflops or 40.0
    if run_tflop is None and (cands or every):
        exe = find_binary(binary)
        rows, total = run_plan(exe, grid, gflops)
        rate = total[3]
        ids = list(res.column("run_id"))
        by_id = {i: t for i, t in rows.items()}
        if not any(i in by_id for i in ids):
            # a file whose run ids are not icasweep's (made by a test): the
            # grid's expansion order is the file's row order
            if total[0] != len(ids):
                raise PlanError(f"icasweep plan of the file's grid has {total[0]} runs, the "
                                f"file {len(ids)}: the grid text and the file disagree")
            by_id = dict(zip(ids, rows.values()))
        by_config = {}
        for g in every:
            hits = [by_id[ids[r]] for r in g.rows if ids[r] in by_id]
            if not hits:
                raise PlanError(f"icasweep plan of the file's grid has none of the runs of "
                                f"configuration {dict(g.config)}: the grid text and the "
                                f"file disagree")
            by_config[_config_key(g.config)] = hits[0]
        run_tflop = lambda config: by_config[_config_key(config)]  # noqa: E731
    hours = {_config_key(g.config): core_hours(run_tflop(g.config), rate) for g in every}
    own = {} if gflops else own_core_hours(res, every)
    hours.update(own)

    for c in cands:
        c.runs = c.new_seeds * len(c.groups)
        c.cost = sum(c.new_seeds * hours[_config_key(g.config)] for g in c.groups)
        per_seed = sum(hours[_config_key(g.config)] for g in c.groups)
        if budget is not None and c.cost > budget + 1e-12 and per_seed > 0:
            # the margin the budget would settle: a function of s0 and the
            # budget, never of the first stage's mean, so choosing it keeps
            # the two-stage interval exact; rounded up to 3 digits, so that
            # --delta with the printed figure plans no more seeds
            n_aff = c.plan.n0 + int(math.floor(budget / per_seed + 1e-9))
            margin = stein_margin_settled_by(c.plan.n0, c.plan.sd, n_aff, *levels)
            digits = 2 - int(math.floor(math.log10(margin)))
            c.affordable = (n_aff, math.ceil(margin * 10 ** digits) / 10 ** digits)
    cands.sort(key=lambda c: (c.cost, c.comparison.finding))
    more = {}                                  # config key -> new seeds chosen
    spent = 0.0
    for c in cands:
        c.marginal = sum(max(0, c.new_seeds - more.get(_config_key(g.config), 0))
                         * hours[_config_key(g.config)] for g in c.groups)
        c.fits = budget is None or spent + c.marginal <= budget + 1e-12
        if c.fits:
            spent += c.marginal
            for g in c.groups:
                k = _config_key(g.config)
                more[k] = max(more.get(k, 0), c.new_seeds)
    out = SeedPlan(out_path, cands, skipped, sum(more.values()), spent, rate, budget, levels,
                   timed=len(own), configs=len(hours))
    if cands:
        n_all = max(c.plan.total for c in cands)
        runs = sum(max(0, n_all - len(s)) for s in seeds_of.values())
        cost = sum(max(0, n_all - len(seeds_of[k])) * hours[k] for k in seeds_of)
        out.naive = (n_all, runs, cost)
    if not more:
        return out

    first_new = max(s for seeds in seeds_of.values() for s in seeds) + 1
    groups = {_config_key(g.config): g for g in every}
    subgrids = []
    for k in (_config_key(g.config) for g in every):
        if k not in more:
            continue
        g, extra = groups[k], more[k]
        seeds = seeds_of[k] + list(range(first_new, first_new + extra))
        users = [c.name() for c in cands
                 if c.fits and k in {_config_key(x.config) for x in c.groups}]
        subgrids.append(subgrid_lines(len(subgrids) + 1, g.config, seeds, "",
                                      f"{extra} more seeds for " + "; ".join(users)))
    lines = [plan_line(c.comparison, c.plan) for c in cands if c.fits]
    text = grow_grid(grid, subgrids, lines)
    try:
        _, grown = run_plan(find_binary(binary), text, gflops)
        before = len(res.runs)
        out.checked = (f"icasweep plan of the grown grid: {grown[0]} runs ({grown[0] - before} "
                       f"more than the file's {before}), {grown[2]:.2f} core-hours in all")
    except PlanError as e:
        first = re.sub(r"\S*/tmp\w*\.yaml", os.path.basename(out_path), str(e).split("\n")[0])
        out.checked = (f"note: this icasweep cannot check the grown grid ({first}); the sweep "
                       f"that grows the file needs one that reads a sub-grid's seeds")
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out_path)
    out.written = True
    return out
