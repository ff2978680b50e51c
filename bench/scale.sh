#!/usr/bin/env bash
# The master's cost per result, end to end: a grid of N tiny runs (one
# training step of a 1-layer, 8-wide model) swept with 4, 16 and 64 worker
# ranks (Open MPI, oversubscribed on this machine's cores).
#
#   bench/scale.sh [BUILD_DIR]                     (default: build)
#
#   ICAS_SCALE_N=2000          runs in the grid (at most 100000)
#   ICAS_SCALE_WORKERS="4 16 64"   worker ranks of each sweep (master extra)
#   ICAS_SCALE_RESTART_WORKERS=4   workers of the restart measurement
#                                  (empty: skip it)
#   ICAS_SCALE_LOG=bench-scale.log every stamped line of every sweep
#   ICAS_SCALE_DIR                 scratch directory (default: a new one
#                                  under $TMPDIR, removed at the end)
#
# For each worker count it sweeps the grid into a new file and prints: the
# time from launch to the sweep's start line (MPI start and the file's
# creation: the baseline of the restart time below), results/s over the first and the last 10% of rows (from the times rank 0's
# progress lines "[k/N]" arrive, so the time to start is not in it), wall
# time, the master's CPU share (its user + system time over the sweep's
# wall time, as rank 0 prints it at the end, else sampled from /proc), its
# peak resident memory (VmHWM, sampled every 0.2 s), the workers' share
# (their training and evaluation seconds over workers x wall), the journal's
# file count (every file under RESULTS.h5.* but the lock and the checkpoint
# directory; highest seen while sweeping, and after the sweep), the time of
# `icasweep status` on the finished file and of the Python loader
# (analysis/icaresults.load, in-process, and the whole python3 command).
#
# Restart: one more sweep, SIGKILLed (every rank and mpirun) once half the
# rows are recorded, then started again with the same command: the time
# from that start to its first new result, and to its start line (recovery
# done). The journal's file count at the kill is printed too.
#
# One sweep at a time; the machine's other load counts against the master,
# so run it on a quiet machine, or `nice` it and say so.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[ -x "$build/icasweep" ] || { echo "scale: $build/icasweep not found; build first (cmake --build $build)" >&2; exit 2; }
bin=$(cd "$build" && pwd)/icasweep
command -v mpirun >/dev/null || { echo "scale: mpirun not found (Open MPI)" >&2; exit 2; }
py=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
exec "$py" - "$bin" "$here/../analysis" <<'EOF'
import os, re, signal, statistics, subprocess, sys, shutil, tempfile, threading, time

binary, analysis = sys.argv[1], os.path.abspath(sys.argv[2])
N = int(os.environ.get("ICAS_SCALE_N", "2000"))
workers = [int(w) for w in os.environ.get("ICAS_SCALE_WORKERS", "4 16 64").split()]
restart_w = os.environ.get("ICAS_SCALE_RESTART_WORKERS", "4").strip()
log = open(os.environ.get("ICAS_SCALE_LOG", "bench-scale.log"), "w")
own_dir = "ICAS_SCALE_DIR" not in os.environ
work = os.environ.get("ICAS_SCALE_DIR") or tempfile.mkdtemp(prefix="icas-scale.")
os.makedirs(work, exist_ok=True)
ompi_tmp = tempfile.mkdtemp(prefix="ompi.", dir=work)
env = dict(os.environ, OMPI_MCA_orte_tmpdir_base=ompi_tmp)
TICK = os.sysconf("SC_CLK_TCK")


def say(*a):
    print(*a, file=log, flush=True)


grid = os.path.join(work, "tiny.yaml")
with open(grid, "w") as g:
    g.write("# %d tiny runs: one training step each, differing by seed\n" % N)
    g.write("settings: {dims: 2, points: 4, layers: 1, heads: 1, embd: 8, steps: 1, batch: 4,"
            " eval_batch: 4}\n")
    g.write("eval_noise: [0]\n")
    g.write("seeds: [%s]\n" % ", ".join(map(str, range(N))))


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for kv in f.read().split(b"\0"):
                if kv.startswith(b"OMPI_COMM_WORLD_RANK="):
                    return int(kv.split(b"=", 1)[1])
    except OSError:
        pass
    return None


def journal_files(out):
    """Files of the result's journal, whatever its layout: every file under
    a path RESULTS.h5.* (a directory of entries, or log files) but the
    writer's lock and the checkpoint directory."""
    d, base = os.path.split(out)
    n = 0
    for e in os.scandir(d):
        if e.name.startswith(base + ".") and e.name not in (base + ".lock", base + ".ckpt"):
            if e.is_dir(follow_symlinks=False):
                n += sum(len(fs) for _, _, fs in os.walk(e.path))
            else:
                n += 1
    return n


class Sweep:
    """One `mpirun ... icasweep sweep` with rank 0's stderr stamped line by
    line and rank 0 sampled from /proc."""

    def __init__(self, w, out, tag):
        self.out, self.tag = out, tag
        cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader",
               "--mca", "pml", "ob1", "-np", str(w + 1), binary, "sweep", grid, "-o", out,
               "--heartbeat", "0", "--lost-after", "0"]
        say(f"== {tag}: {' '.join(cmd)}")
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  env=env, text=True, start_new_session=True)
        self.progress = {}      # k of "[k/N]" -> arrival time, s after t0
        self.lines = []
        self.master = None
        self.cpu = self.hwm = None
        self.jpeak = 0
        self.first_line_at = None
        self.done_event = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.reader.start()
        self.sampler.start()

    def _read(self):
        pat = re.compile(r"^\[(\d+)/(\d+)\]")
        for line in self.p.stderr:
            t = time.monotonic() - self.t0
            self.lines.append((t, line.rstrip("\n")))
            say(f"{t:10.3f} {line.rstrip()}")
            m = pat.match(line)
            if m:
                self.progress.setdefault(int(m.group(1)), t)
            elif line.startswith("icasweep sweep: ") and " to run on " in line:
                self.first_line_at = t

    def _sample(self):
        while self.p.poll() is None:
            if self.master is None:
                for c in children(self.p.pid):
                    if rank_of(c) == 0:
                        self.master = c
            if self.master is not None:
                try:
                    with open(f"/proc/{self.master}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    self.cpu = (int(fields[11]) + int(fields[12])) / TICK
                    with open(f"/proc/{self.master}/status") as f:
                        for l in f:
                            if l.startswith("VmHWM:"):
                                self.hwm = int(l.split()[1]) / 1024
                except (OSError, IndexError):
                    pass
            try:
                self.jpeak = max(self.jpeak, journal_files(self.out))
            except OSError:
                pass
            time.sleep(0.2)

    def kill(self):
        for c in children(self.p.pid):
            try:
                os.kill(c, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self):
        rc = self.p.wait()
        self.t_end = time.monotonic() - self.t0
        self.reader.join()
        self.sampler.join()
        say(f"== {self.tag}: exit {rc} after {self.t_end:.2f} s; master pid {self.master}, "
            f"sampled CPU {self.cpu} s, VmHWM {self.hwm} MB, journal peak {self.jpeak}")
        return rc


def rate(progress, lo, hi):
    ks = [k for k in progress if lo <= k <= hi]
    if len(ks) < 2:
        return float("nan")
    ks.sort()
    dt = progress[ks[-1]] - progress[ks[0]]
    return (len(ks) - 1) / dt if dt > 0 else float("inf")


def timed(cmd, reps=3):
    ts = []
    for _ in range(reps):
        t = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        ts.append(time.monotonic() - t)
        if r.returncode != 0:
            raise SystemExit(f"scale: {' '.join(cmd)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return statistics.median(ts), r.stdout


LOADER = ("import sys, time; sys.path.insert(0, sys.argv[1]); import icaresults, h5py;"
          " t = time.perf_counter(); r = icaresults.load(sys.argv[2]);"
          " print(time.perf_counter() - t, r.n_runs);"
          " print(float(h5py.File(sys.argv[2], 'r')['runs']['wall_seconds'].sum()))")

load0 = os.getloadavg()
say(f"load average at the start: {load0}")
rows = []
tenth = max(N // 10, 2)
for w in workers:
    out = os.path.join(work, f"w{w}.h5")
    s = Sweep(w, out, f"{w} workers, {N} runs")
    rc = s.wait()
    if rc != 0:
        raise SystemExit(f"scale: the sweep with {w} workers exited {rc}; see the log")
    cpu = s.cpu
    for _, l in s.lines:
        m = re.search(r"rank 0 used ([0-9.]+) s of CPU", l)
        if m:
            cpu = float(m.group(1))
    j_end = journal_files(out)
    st, st_out = timed([binary, "status", out])
    say(f"status: {st:.3f} s: {st_out.splitlines()[0] if st_out else ''}")
    lt, lo = timed(["/usr/bin/python3", "-c", LOADER, analysis, out])
    load_s, n_loaded = lo.split("\n")[0].split()
    busy = float(lo.split("\n")[1])
    say(f"loader: {float(load_s):.3f} s in load(), {lt:.3f} s the command; {n_loaded} runs; "
        f"workers' training+evaluation {busy:.1f} s")
    rows.append(dict(w=w, start=s.first_line_at if s.first_line_at is not None else float("nan"), first=rate(s.progress, 1, tenth), last=rate(s.progress, N - tenth + 1, N),
                     wall=s.t_end, cpu=cpu, share=cpu / s.t_end, hwm=s.hwm, jpeak=s.jpeak, jend=j_end,
                     status=st, load=float(load_s), loadcmd=lt, busy=busy / (w * s.t_end)))
    os.remove(out)

restart = None
if restart_w:
    w = int(restart_w)
    out = os.path.join(work, "restart.h5")
    s = Sweep(w, out, f"restart: {w} workers, {N} runs, killed at {N // 2}")
    while len(s.progress) < N // 2 and s.p.poll() is None:
        time.sleep(0.05)
    s.kill()
    s.wait()
    j_kill = journal_files(out)
    recorded = max(s.progress) if s.progress else 0
    r = Sweep(w, out, "restart: the same command again")
    while not r.progress and r.p.poll() is None:
        time.sleep(0.01)
    t_first = min(r.progress.values()) if r.progress else float("nan")
    t_start = r.first_line_at
    r.kill()
    r.wait()
    before = next((m.group(1) for _, l in r.lines
                   for m in [re.search(r"(\d+) already finished, \d+ to run", l)] if m), "?")
    restart = dict(w=w, recorded=recorded, before=before, j=j_kill, first=t_first, start=t_start)
    say(f"restart: {restart}")

head = subprocess.run(["git", "-C", os.path.dirname(analysis), "log", "-1", "--format=%h"],
                      capture_output=True, text=True).stdout.strip()
print(f"\nbench/scale.sh: {N} runs of 1 step, commit {head or '?'}, {os.cpu_count()} cores, "
      f"{time.strftime('%Y-%m-%d')}; load average {load0[0]:.1f} at the start, "
      f"{os.getloadavg()[0]:.1f} at the end\n")
print("| workers | start s | results/s, first 10% | results/s, last 10% | wall s | master CPU "
      "| master peak RSS | workers busy | journal files, peak / after | status s "
      "| loader s (load() / command) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['w']} | {r['start']:.2f} | {r['first']:.1f} | {r['last']:.1f} | {r['wall']:.0f} | "
          f"{100 * r['share']:.0f}% ({r['cpu']:.1f} s) | {r['hwm']:.0f} MB | {100 * r['busy']:.1f}% | "
          f"{r['jpeak']} / {r['jend']} | {r['status']:.2f} | {r['load']:.2f} / {r['loadcmd']:.2f} |")
if restart:
    print(f"\nrestart ({restart['w']} workers): killed with {restart['recorded']} of {N} results "
          f"recorded ({restart['j']} journal files); the same command again: "
          f"{restart['before']} already finished, start line after "
          f"{restart['start'] if restart['start'] is None else round(restart['start'], 2)} s, "
          f"first new result after {restart['first']:.2f} s")
log.close()
if own_dir:
    shutil.rmtree(work, ignore_errors=True)
EOF
