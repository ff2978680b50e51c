"""Load an icasweep result file (include/icasweep/store.h) for analysis.

    from icaresults import load
    res = load("results.h5")                 # schema version 1 or 2
    res.runs                                 # /runs, strings decoded to str
    res.tf_err[row, p, i]                    # error with i examples at res.noise[p]
    res.gd_err, res.blind_err, res.pick_err  # GD baseline, reference strategies
    res.has("blind")                         # False for a schema-1 file
    rows = res.select(attention="softmax", ffn=1, status="done")
    for g in res.groups():                   # configurations, seeds together
        s = res.stats(g.rows, p=0.0)         # mean/std/min/max over seeds, per i
    res.summary(p=0.0, position=15)          # one dict per configuration
    res.tidy()                               # long pandas table: run x noise x position
    res.to_xarray()                          # xarray Dataset (run, noise, position)

Schema version 2 adds the reference strategies /eval/blind_err and
/eval/pick_err. A version-1 file loads; asking it for those raises
MissingDataError saying what the file lacks.

`load(path, as_frame=True)` makes `.runs` a pandas DataFrame instead (pandas
is needed only for that, tidy() and to_xarray(), which also needs xarray).

Every row is checked against its checksum (the /runs column `checksum`:
FNV-1a 64 of the parts the /runs attribute `checksum_covers` names, as
icasweep computes it in src/store.c): a row marked done whose numbers fail
it (a write cut short by a crash, or damage) is loaded as "pending", with a
warning naming the row, and listed in `res.unsound_rows`, as `icasweep
status` counts it; `icasweep repair FILE` or the next sweep mends it.
"""
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field

import h5py
import numpy as np

SCHEMA_VERSION = 2  # STORE_SCHEMA_VERSION in include/icasweep/store.h
KNOWN_SCHEMAS = (1, 2)

STATUSES = ("done", "pending", "diverged", "failed", "interrupted")

# A configuration is every knob of a run except its seed; runs that share
# these values are repeats with different seeds. The file names its knobs in
# the /runs attributes knobs, knob_labels, knob_sections and knob_meanings
# (written from include/icasweep/knobs.def); files written before those
# attributes existed have exactly these knobs:
LEGACY_KNOBS = (
    ("dims", "d", "task", "token width d"),
    ("points", "N", "task", "responses per context N (3N tokens)"),
    ("layers", "L", "model", "transformer blocks"),
    ("heads", "H", "model", "attention heads"),
    ("embd", "E", "model", "width of the residual stream"),
    ("attention", "attn", "model", "softmax, or linear with a causal mask"),
    ("ffn", "ffn", "model", "the MLP block in every layer"),
    ("loss", "loss", "training", "pl (Plackett-Luce) or bt (Bradley-Terry)"),
    ("train_noise", "p", "training", "reward noise p in training"),
    ("lr", "lr", "training", "Adam learning rate"),
    ("batch", "batch", "training", "contexts per step"),
    ("steps", "steps", "training", "Adam steps"),
    ("seed", "seed", "training", "seed of initialisation, data and evaluation"),
    ("eval_batch", "eb", "evaluation", "evaluation contexts"),
)


@dataclass(frozen=True)
class Knob:
    """One knob of the file's configuration: its /runs column, short label,
    section (task, model, training, evaluation) and meaning."""
    name: str
    label: str
    section: str
    meaning: str


def knobs_of(runs_dataset):
    """The file's knobs, in the order icasweep lists them."""
    attrs = runs_dataset.attrs
    if "knobs" not in attrs:
        return tuple(Knob(*k) for k in LEGACY_KNOBS)
    columns = [[_attr_value(v) for v in attrs[a]]
               for a in ("knobs", "knob_labels", "knob_sections", "knob_meanings")]
    if len({len(c) for c in columns}) != 1:
        raise SchemaError("/runs attributes knobs, knob_labels, knob_sections and "
                          "knob_meanings differ in length")
    return tuple(Knob(*k) for k in zip(*columns))

# The [R, P, N] error curves: short name -> dataset, and the schema version
# that introduced each.
CURVES = {"tf": "eval/tf_err", "gd": "eval/gd_err",
          "blind": "eval/blind_err", "pick": "eval/pick_err"}
CURVE_SINCE = {"tf": 1, "gd": 1, "blind": 2, "pick": 2}
CURVE_MEANING = {"tf": "the transformer", "gd": "the GD baseline",
                 "blind": "reference strategies", "pick": "reference strategies"}

DATASETS = ("runs", "eval/noise", "eval/tf_err", "eval/gd_err", "train/step", "train/loss")


def datasets(version):
    """The datasets a file of this schema version must have."""
    return DATASETS + tuple(CURVES[c] for c, v in CURVE_SINCE.items() if 1 < v <= version)


class SchemaError(ValueError):
    """The file is not a result file this loader understands."""


class MissingDataError(SchemaError):
    """The file is readable but was written before a dataset existed."""


@dataclass
class Spread:
    """Values across seeds: mean, sample standard deviation (0 for one
    seed), minimum, maximum, and how many seeds. Scalars or arrays."""
    mean: object
    std: object
    lo: object
    hi: object
    n: int

    def text(self, digits=3):
        """'0.120 ± 0.010' (the ± part only with more than one seed)."""
        m = f"{float(self.mean):.{digits}f}"
        return m if self.n < 2 else f"{m} ± {float(self.std):.{digits}f}"


def spread(values, axis=0):
    """Spread of `values` along `axis` (the seeds)."""
    v = np.asarray(values, dtype=float)
    n = v.shape[axis]
    if n == 0:
        raise ValueError("no values to summarise")
    std = v.std(axis=axis, ddof=1) if n > 1 else np.zeros_like(v.mean(axis=axis))
    return Spread(v.mean(axis=axis), std, v.min(axis=axis), v.max(axis=axis), n)


@dataclass
class Group:
    """One configuration and the rows of its seeds."""
    config: dict
    rows: np.ndarray
    seeds: tuple


@dataclass
class Results:
    path: str
    runs: object             # numpy structured array, or DataFrame with as_frame
    noise: np.ndarray        # [P]
    tf_err: np.ndarray       # [R, P, N]
    gd_err: np.ndarray       # [R, P, N]
    train_step: np.ndarray   # [S]
    train_loss: np.ndarray   # [R, S]
    attrs: dict = field(default_factory=dict)
    descriptions: dict = field(default_factory=dict)  # dataset -> description
    reference: dict = field(default_factory=dict)     # "blind"/"pick" -> [R, P, N], if stored
    knobs: tuple = tuple(Knob(*k) for k in LEGACY_KNOBS)  # Knob per configuration column
    unsound_rows: tuple = ()  # rows marked done whose numbers failed their checksum

    @property
    def config_fields(self):
        """The /runs columns that make a configuration: every knob but the
        seed, in the file's order."""
        return tuple(k.name for k in self.knobs if k.name != "seed")

    def knob(self, name):
        """The Knob called name; KeyError listing the file's knobs."""
        for k in self.knobs:
            if k.name == name:
                return k
        raise KeyError(f"{self.path}: no knob {name!r}; knobs: "
                       f"{', '.join(k.name for k in self.knobs)}")

    @property
    def schema_version(self):
        return int(self.attrs.get("schema_version", 1))

    def has(self, which):
        """Whether the file holds curve `which` (tf, gd, blind, pick)."""
        if which not in CURVES:
            raise KeyError(f"no curve {which!r}; curves: {', '.join(CURVES)}")
        return which in ("tf", "gd") or which in self.reference

    def missing_text(self, which):
        """What the file lacks, in words, or "" when it has curve `which`."""
        if self.has(which):
            return ""
        return (f"file has schema version {self.schema_version}: no /{CURVES[which]} "
                f"({CURVE_MEANING[which]}); re-run with icasweep >= schema version "
                f"{CURVE_SINCE[which]} to get it")

    def curve(self, which):
        """The [R, P, N] array of curve `which`: "tf", "gd", "blind" or
        "pick". MissingDataError (naming the file's schema version) when the
        file predates it."""
        if which == "tf":
            return self.tf_err
        if which == "gd":
            return self.gd_err
        if not self.has(which):
            raise MissingDataError(f"{self.path}: {self.missing_text(which)}")
        return self.reference[which]

    @property
    def blind_err(self):
        """[R, P, N] reward-blind average 1 - cos(mean(y_0..y_{k-1}), y*); NaN at k = 0."""
        return self.curve("blind")

    @property
    def pick_err(self):
        """[R, P, N] 1 - cos(y_j, y*), j the highest seen reward of the first k; NaN at k = 0."""
        return self.curve("pick")

    def curves_present(self):
        """Short names of the curves the file holds, in CURVES order."""
        return [c for c in CURVES if self.has(c)]

    @property
    def n_runs(self):
        return self.tf_err.shape[0]

    @property
    def n_points(self):
        """N: positions 0..N-1 of the error curves."""
        return self.tf_err.shape[2]

    def column(self, name):
        """One field of /runs as a numpy array, whatever form .runs has."""
        names = self.runs.dtype.names if isinstance(self.runs, np.ndarray) else tuple(self.runs.columns)
        if name not in names:
            raise KeyError(f"{self.path}: /runs has no field {name!r}; fields: {', '.join(names)}")
        return np.asarray(self.runs[name])

    def select(self, **conditions):
        """Row indices (ascending) whose fields equal the given values; a
        list, tuple or set of values means any of them. Strings compare with
        the decoded text: select(attention="softmax", ffn=1, status="done")."""
        mask = np.ones(self.n_runs, dtype=bool)
        for name, want in conditions.items():
            col = self.column(name)
            if isinstance(want, (list, tuple, set, frozenset)):
                mask &= np.isin(col, list(want))
            else:
                mask &= col == want
        return np.flatnonzero(mask)

    def config(self, row):
        """The configuration of one row as {field: python value}."""
        return {f: _py(self.column(f)[row]) for f in self.config_fields}

    def status_counts(self):
        """{status: number of rows}, every known status listed (0 if none)."""
        counts = Counter(self.column("status").tolist())
        out = {s: counts.pop(s, 0) for s in STATUSES}
        out.update(counts)  # a status this loader does not know, kept visible
        return out

    def groups(self, rows=None, status="done"):
        """Rows grouped by configuration (config_fields), the seeds of one
        configuration together, in order of first row. By default only rows
        whose status is "done"; status=None keeps every row."""
        if rows is None:
            rows = self.select(status=status) if status else np.arange(self.n_runs)
        elif status:
            rows = np.intersect1d(rows, self.select(status=status))
        seeds = self.column("seed")
        fields = self.config_fields
        cols = {f: self.column(f) for f in fields}
        by_key = {}
        for r in np.asarray(rows, dtype=int):
            key = tuple(_py(cols[f][r]) for f in fields)
            by_key.setdefault(key, []).append(int(r))
        return [Group(dict(zip(fields, key)), np.array(rs),
                      tuple(int(seeds[r]) for r in rs))
                for key, rs in by_key.items()]

    def noise_index(self, p):
        """Index of evaluation noise level p; ValueError listing the levels
        if the file was not evaluated at p."""
        hits = np.flatnonzero(np.isclose(self.noise, p, rtol=0, atol=1e-9))
        if len(hits) == 0:
            levels = ", ".join(f"{x:g}" for x in self.noise)
            raise ValueError(f"{self.path}: no evaluation at noise p={p:g} (levels: {levels})")
        return int(hits[0])

    def stats(self, rows, p=0.0, which="tf"):
        """Spread across the given rows (seeds) of the error curve at
        evaluation noise p: arrays over positions 0..N-1. which: "tf" for
        the transformer, "gd" for the GD baseline, "blind" or "pick" for the
        reference strategies (NaN at position 0)."""
        err = self.curve(which)
        rows = np.asarray(rows, dtype=int)
        return spread(err[rows, self.noise_index(p), :], axis=0)

    def summary(self, p=0.0, position=None, which="tf", status="done"):
        """One dict per configuration: its fields, seeds, and mean, std, min,
        max across seeds of the error at `position` (default: the last one
        the paper plots, last_position(N)) at evaluation noise p."""
        if position is None:
            position = last_position(self.n_points)
        out = []
        for g in self.groups(status=status):
            s = self.stats(g.rows, p, which)
            out.append(dict(g.config, seeds=g.seeds, n=s.n, position=position,
                            mean=float(s.mean[position]), std=float(s.std[position]),
                            min=float(s.lo[position]), max=float(s.hi[position])))
        return out

    def frame(self):
        """The /runs table as a pandas DataFrame (needs pandas)."""
        return _as_frame(self.runs) if isinstance(self.runs, np.ndarray) else self.runs

    def _run_rows(self, status):
        if status is None:
            return np.arange(self.n_runs)
        return self.select(status=status)

    def tidy(self, status=None, fields=()):
        """A long pandas DataFrame, one row per run x evaluation noise x
        position: columns row, run_id, seed, status, every knob
        (config_fields), any extra /runs `fields` (e.g. "final_loss"), noise,
        position (= in-context examples), then tf_err, gd_err and, when the
        file has them, blind_err and pick_err. status: keep only runs with
        this status (or any of a list); None keeps every run (unfinished
        runs have NaN errors, which pandas' means skip)."""
        pd = _require("pandas", "tidy()")
        rows = self._run_rows(status)
        P, N = len(self.noise), self.n_points
        per_run = P * N
        columns = {}
        for name in ("row", "run_id", "seed", "status", *self.config_fields, *fields):
            columns[name] = np.repeat(self.column(name)[rows], per_run)
        columns["noise"] = np.tile(np.repeat(self.noise.astype(float), N), len(rows))
        columns["position"] = np.tile(np.arange(N), len(rows) * P)
        for which in self.curves_present():
            columns[f"{which}_err"] = self.curve(which)[rows].astype(float).ravel()
        return pd.DataFrame(columns)

    def to_xarray(self, status=None):
        """An xarray Dataset with dimensions run (labelled by run_id), noise
        (the evaluation levels), position (0..N-1 in-context examples) and
        step; data variables tf_err, gd_err, blind_err and pick_err (those
        the file has) over (run, noise, position) and train_loss over (run,
        step); coordinates along run: row, seed, status and every knob, so
        ds.tf_err.sel(noise=0, position=15).groupby("layers").mean() works.
        status as in tidy()."""
        xr = _require("xarray", "to_xarray()")
        rows = self._run_rows(status)
        coords = {"run": self.column("run_id")[rows], "noise": self.noise.astype(float),
                  "position": np.arange(self.n_points), "step": self.train_step}
        for name in ("row", "seed", "status", *self.config_fields):
            coords[name] = ("run", self.column(name)[rows])
        data = {}
        for which in self.curves_present():
            ds_name = CURVES[which]
            data[f"{which}_err"] = (("run", "noise", "position"),
                                    self.curve(which)[rows].astype(float),
                                    {"description": self.descriptions.get(ds_name, "")})
        data["train_loss"] = (("run", "step"), self.train_loss[rows].astype(float),
                              {"description": self.descriptions.get("train/loss", "")})
        attrs = {k: v for k, v in self.attrs.items() if k != "grid"}
        attrs["source"] = self.path
        missing = [self.missing_text(c) for c in CURVES if not self.has(c)]
        if missing:
            attrs["missing"] = "; ".join(dict.fromkeys(missing))
        return xr.Dataset(data, coords=coords, attrs=attrs)


def _py(x):
    """A numpy scalar as the python value (DataFrame columns give both)."""
    return x.item() if isinstance(x, np.generic) else x


def _require(module, what):
    """Imports an optional module or says which Debian package has it."""
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(f"{what} needs {module} (apt-get install python3-{module}); "
                          f"without it use the numpy arrays") from e


def _as_frame(table):
    pd = _require("pandas", "as_frame=True / frame()")
    return pd.DataFrame({name: table[name] for name in table.dtype.names})


def _decode_table(table):
    """Fixed-length byte-string fields become str fields."""
    dtype = [(name, f"U{table.dtype[name].itemsize}" if table.dtype[name].kind == "S"
              else table.dtype[name]) for name in table.dtype.names]
    out = np.empty(len(table), dtype=dtype)
    for name in table.dtype.names:
        col = table[name]
        out[name] = np.char.decode(col, "utf-8", "replace") if col.dtype.kind == "S" else col
    return out


def _attr_value(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        v = v.item()
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return v


# FNV-1a 64 (include/icasweep/hash.h): icasweep's start value, FNV's prime.
HASH_ICASWEEP_INIT = np.uint64(1469598103934665603)
FNV_PRIME = np.uint64(0x100000001b3)
# What the checksum of a file without the checksum_covers attribute covers.
CHECKSUM_LEGACY = ("eval/tf_err", "eval/gd_err", "eval/blind_err", "eval/pick_err",
                   "train/loss")


def fnv1a64_rows(data):
    """FNV-1a 64 of each row of a [R, L] uint8 array, from icasweep's start
    value (the same number as hash_fnv1a64 over the row's L bytes), one
    vectorised step per byte column."""
    h = np.full(data.shape[0], HASH_ICASWEEP_INIT, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(data.shape[1]):
            h ^= data[:, j].astype(np.uint64)
            h *= FNV_PRIME
    return h


def row_checksums(f, raw):
    """The checksum each row's numbers have now, as icasweep computes it
    (0 is stored as 1); None when the file has no checksum column."""
    if "checksum" not in raw.dtype.names:
        return None
    covers = f["runs"].attrs.get("checksum_covers")
    covers = [_attr_value(c) for c in covers] if covers is not None else list(CHECKSUM_LEGACY)
    R = len(raw)
    parts = []
    for name in covers:
        if name == "model_checksum":
            col = np.ascontiguousarray(raw["model_checksum"].astype("<u8"))
            parts.append(col.view(np.uint8).reshape(R, 8))
        else:
            a = np.ascontiguousarray(f[name][()].astype("<f4").reshape(R, -1))
            parts.append(a.view(np.uint8).reshape(R, -1))
    sums = fnv1a64_rows(np.concatenate(parts, axis=1))
    sums[sums == 0] = 1
    return sums


def _unsound_rows(f, raw):
    """Rows marked done whose numbers fail their checksum, or without one
    in a file whose every written row has one (a row cut short)."""
    sums = row_checksums(f, raw)
    if sums is None:
        return []
    done = raw["status"] == b"done"
    stored = raw["checksum"].astype(np.uint64)
    bad = done & (stored != 0) & (stored != sums)
    if "checksum_covers" in f["runs"].attrs:
        bad |= done & (stored == 0)
    return [int(i) for i in np.flatnonzero(bad)]


def _open(path, attempts=10):
    """Opens for reading. A sweep keeps the file open without HDF5's lock,
    but a file written by an earlier icasweep may be locked for an
    instant: wait and retry."""
    for i in range(attempts):
        try:
            return h5py.File(path, "r")
        except OSError as e:
            if "lock" not in str(e).lower() or i == attempts - 1:
                raise
            time.sleep(0.2)


def load(path, as_frame=False):
    """Reads a whole result file. Raises SchemaError (a ValueError) naming
    the file and what is wrong when it is not an icasweep file of schema
    version 1 or 2."""
    with _open(path) as f:
        version = f.attrs.get("schema_version")
        if version is None:
            raise SchemaError(f"{path}: no schema_version attribute: not an icasweep result file")
        version = int(version)
        if version > SCHEMA_VERSION:
            raise SchemaError(f"{path}: schema version {version} is newer than this loader "
                              f"reads (versions {', '.join(map(str, KNOWN_SCHEMAS))}): update "
                              f"analysis/ to the icasweep that wrote the file")
        if version not in KNOWN_SCHEMAS:
            raise SchemaError(f"{path}: schema version {version} is not supported: this "
                              f"loader reads versions {', '.join(map(str, KNOWN_SCHEMAS))}")
        missing = [d for d in datasets(version) if d not in f]
        if missing:
            raise SchemaError(f"{path}: schema {version} file lacks {', '.join(missing)}")
        raw = f["runs"][()]
        unsound = _unsound_rows(f, raw)
        for i in unsound:
            warnings.warn(f"{path}: row {i} ({raw['run_id'][i].decode(errors='replace')}) is "
                          f"marked done but its numbers fail the row checksum (a write cut "
                          f"short, or damage): loaded as pending; `icasweep repair {path}` "
                          f"or the next sweep mends it", stacklevel=2)
            raw["status"][i] = b"pending"
        try:
            knobs = knobs_of(f["runs"])
        except SchemaError as e:
            raise SchemaError(f"{path}: {e}") from None
        absent = [n for n in (*(k.name for k in knobs), "run_id", "seed", "status")
                  if n not in raw.dtype.names]
        if absent:
            raise SchemaError(f"{path}: /runs lacks the fields {', '.join(absent)}")
        res = Results(
            path=str(path),
            runs=_decode_table(raw),
            noise=f["eval/noise"][()],
            tf_err=f["eval/tf_err"][()],
            gd_err=f["eval/gd_err"][()],
            train_step=f["train/step"][()],
            train_loss=f["train/loss"][()],
            attrs={k: _attr_value(v) for k, v in f.attrs.items()},
            descriptions={d: _attr_value(f[d].attrs["description"])
                          for d in datasets(version) if "description" in f[d].attrs},
            reference={c: f[CURVES[c]][()] for c, v in CURVE_SINCE.items()
                       if 1 < v <= version},
            knobs=knobs,
            unsound_rows=tuple(unsound),
        )
    R, P = len(res.runs), len(res.noise)
    expect = {"eval/tf_err": (res.tf_err, 3, (R, P)), "eval/gd_err": (res.gd_err, 3, (R, P)),
              "train/loss": (res.train_loss, 2, (R, len(res.train_step)))}
    for name, (data, ndim, lead) in expect.items():
        if data.ndim != ndim or data.shape[:len(lead)] != lead:
            raise SchemaError(f"{path}: /{name} has shape {data.shape}, expected {lead} "
                              f"leading (R runs = {R}, P noise levels = {P})")
    for which in res.curves_present()[1:]:
        if res.curve(which).shape != res.tf_err.shape:
            raise SchemaError(f"{path}: /{CURVES[which]} has shape {res.curve(which).shape}, "
                              f"/eval/tf_err {res.tf_err.shape}: they must agree")
    if as_frame:
        res.runs = _as_frame(res.runs)
    return res

# ---- what an analysis compares: the reference model, ablations, labels ----
# (used by figures.py, report.py and seedplan.py)

# The in-context example counts the paper plots, 2..15: the report judges
# errors at the last of them (at N - 1 when N <= 16).
FIRST_EXAMPLES, LAST_EXAMPLES = 2, 15


def last_position(n_points):
    """The last position plotted and judged: min(LAST_EXAMPLES, N - 1)."""
    return min(LAST_EXAMPLES, n_points - 1)


@dataclass
class Factor:
    field: str
    title: str
    coupled: tuple = ()            # knobs allowed to change with it (E = 32 H)
    order: object = None           # sort key of its values (None: natural order)


FACTORS = {
    "layers": Factor("layers", "Depth (layers L)"),
    "heads": Factor("heads", "Attention heads H", ("embd",)),
    "attention": Factor("attention", "Softmax vs linear attention",
                        order=lambda v: (v != "softmax", v)),
    "ffn": Factor("ffn", "MLP block on / off", order=lambda v: -v),
    "loss": Factor("loss", "Training loss: Plackett-Luce vs Bradley-Terry",
                   order=lambda v: (v != "pl", v)),
    "train_noise": Factor("train_noise", "Reward noise p in training"),
}


# Knobs that get no ablation panel of their own: sizes of the task and of
# the evaluation, and training knobs the paper does not ablate. A knob added
# to icasweep after these (not in LEGACY_KNOBS) gets a panel whenever the
# file varies it alone.
NOT_ABLATED = ("dims", "points", "embd", "lr", "batch", "steps", "seed", "eval_batch")


def factor_of(res, name):
    """The Factor of knob name: FACTORS' own, or one titled by the knob's
    meaning as the file states it."""
    if name in FACTORS:
        return FACTORS[name]
    meaning = res.knob(name).meaning
    return Factor(name, meaning[:1].upper() + meaning[1:])


def ablation_factors(res):
    """The knobs to draw ablation panels for, in the file's knob order after
    the paper's own."""
    legacy = {k[0] for k in LEGACY_KNOBS}
    extra = [f for f in res.config_fields if f not in legacy and f not in NOT_ABLATED]
    return ["train_noise", "layers", "heads", "attention", "ffn", "loss", *extra]


@dataclass
class Ablation:
    factor: str
    arms: list          # [(value, Group)] sorted by value
    fixed: dict         # the knobs held constant
    note: str = ""


def positions(res):
    """In-context example counts that the panels plot and the report judges:
    FIRST_EXAMPLES..min(LAST_EXAMPLES, N-1)."""
    return np.arange(FIRST_EXAMPLES, last_position(res.n_points) + 1)


def reference_noise(res):
    """Evaluation noise of the ablation panels: 0, or the smallest level
    when the file was not evaluated at 0."""
    return 0.0 if np.isclose(res.noise, 0.0).any() else float(np.min(res.noise))


def _modes(res, groups):
    counts = {f: Counter() for f in res.config_fields}
    for g in groups:
        for f in res.config_fields:
            counts[f][g.config[f]] += len(g.rows)
    return {f: c.most_common(1)[0][0] for f, c in counts.items()}


def reference_group(res, groups=None):
    """The finished configuration matching the most of the file's most
    common knob values (ties: more seeds, then earlier row); None if no run
    finished."""
    groups = res.groups() if groups is None else groups
    if not groups:
        return None
    modes = _modes(res, groups)
    score = [sum(g.config[f] == modes[f] for f in res.config_fields) for g in groups]
    best = max(range(len(groups)), key=lambda i: (score[i], len(groups[i].rows), -i))
    return groups[best]


def ablation(res, factor):
    """(Ablation, "") for the configurations differing only in `factor`, or
    (None, reason) when the file has no such pair."""
    fac = factor_of(res, factor)
    groups = res.groups()
    if not groups:
        return None, "no finished runs"
    free = {fac.field, *fac.coupled}
    held = [f for f in res.config_fields if f not in free]
    slices = {}
    for g in groups:
        slices.setdefault(tuple(g.config[f] for f in held), []).append(g)

    def n_values(gs):
        return len({g.config[fac.field] for g in gs})

    usable = {k: gs for k, gs in slices.items() if n_values(gs) >= 2}
    if not usable:
        values = sorted({g.config[fac.field] for g in groups})
        if len(values) < 2:
            return None, f"{fac.field} is {values[0]!r} in every finished run"
        return None, (f"{fac.field} takes the values {values} but never alone: "
                      f"the other knobs change with it")
    ref = reference_group(res, groups)
    modes = _modes(res, groups)
    ref_key = tuple(ref.config[f] for f in held)
    if ref_key in usable:
        key, note = ref_key, ""
    else:
        key = max(usable, key=lambda k: (n_values(usable[k]), sum(len(g.rows) for g in usable[k]),
                                         sum(v == modes[f] for f, v in zip(held, k))))
        note = "the reference model has no variant in this factor; another setting is used"
    arms = []
    for value in sorted({g.config[fac.field] for g in usable[key]}, key=fac.order or (lambda v: v)):
        same = [g for g in usable[key] if g.config[fac.field] == value]
        # Several configurations per value only when a coupled knob differs
        # (E at one H): keep the reference's, else the one with most seeds.
        same.sort(key=lambda g: (not all(g.config[c] == ref.config[c] for c in fac.coupled),
                                 -len(g.rows)))
        arms.append((value, same[0]))
    return Ablation(factor, arms, dict(zip(held, key)), note), ""


def label(factor, value, config=None):
    if factor == "ffn":
        return "MLP on" if value else "MLP off"
    if factor == "layers":
        return f"L = {value}"
    if factor == "heads":
        return f"H = {value}" + (f" (E = {config['embd']})" if config else "")
    if factor == "train_noise":
        return f"trained at p = {value:g}"
    if factor == "loss":
        return {"pl": "Plackett-Luce", "bt": "Bradley-Terry"}.get(value, str(value))
    if factor in FACTORS:
        return str(value)
    return f"{factor} = {value:g}" if isinstance(value, (int, float)) else f"{factor} = {value}"


MODEL_KNOBS = (("layers", lambda v: f"L={v}"), ("heads", lambda v: f"H={v}"),
               ("embd", lambda v: f"E={v}"), ("attention", str),
               ("ffn", lambda v: f"MLP {'on' if v else 'off'}"))
TRAINING_KNOBS = (("loss", lambda v: v.upper()), ("train_noise", lambda v: f"train p={v:g}"),
                  ("steps", lambda v: f"{v} steps"), ("batch", lambda v: f"batch {v}"),
                  ("lr", lambda v: f"lr {v:g}"))


def describe(config, sep=", ", omit=()):
    """A short text of a configuration's model knobs, then (after sep) its
    training knobs, leaving out the fields in omit."""
    def part(knobs):
        return ", ".join(fmt(config[f]) for f, fmt in knobs if f in config and f not in omit)
    # knobs this module has no format for (added to icasweep after it): name=value
    known = {f for f, _ in MODEL_KNOBS + TRAINING_KNOBS} | set(NOT_ABLATED)
    other = ", ".join(f"{f}={v:g}" if isinstance(v, (int, float)) else f"{f}={v}"
                      for f, v in config.items() if f not in known and f not in omit)
    return sep.join(p for p in (part(MODEL_KNOBS), part(TRAINING_KNOBS), other) if p)
