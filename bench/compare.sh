#!/usr/bin/env bash
# icasweep against PyTorch on this machine, in one run.
#
#   bench/compare.sh [BUILD_DIR] [ROUNDS]      (defaults: build, 3)
#
# For 1 and 2 threads and the "small" and "paper" configurations it runs
# icasweep-bench and bench/torch_baseline.py alternately, ROUNDS times each,
# every run in its own process (so peak memory is that configuration's), and
# prints a table of medians over rounds: seconds per step, speed-up over
# PyTorch, model GFLOP/s and its fraction of the sgemm ceiling measured in
# the same icasweep process, peak resident memory, and the 2-thread over
# 1-thread speed-up. Interleaving matters on a shared machine: a noisy
# neighbour slows both sides of a comparison, not one.
#
# Needs python3-torch (apt-get install -y python3-torch; not part of the
# test dependencies, it is large). All raw output goes to $ICAS_BENCH_LOG
# (default bench-compare.log) so every number in the table can be traced.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
rounds=${2:-3}
bench=$build/icasweep-bench
log=${ICAS_BENCH_LOG:-bench-compare.log}
py=/usr/bin/python3
configs=${ICAS_BENCH_CONFIGS:-small paper}
threads_list=${ICAS_BENCH_THREADS:-1 2}

[ -x "$bench" ] || { echo "compare: $bench not found; build first (cmake --build $build)" >&2; exit 2; }
"$py" -c 'import torch' 2>/dev/null || {
  echo "compare: PyTorch missing for $py; apt-get install -y python3-torch" >&2; exit 2; }

: > "$log"
"$bench" --config small --steps 1 --warmup 0 --no-eval | grep '^MACHINE' | tee -a "$log"
"$py" "$here/torch_baseline.py" --config small --steps 1 --warmup 0 | grep '^MACHINE' | tee -a "$log"

for r in $(seq "$rounds"); do
  for t in $threads_list; do
    for c in $configs; do
      echo "round $r/$rounds: $c, $t thread(s)" >&2
      OMP_NUM_THREADS=$t "$bench" --config "$c" --no-machine --no-eval >> "$log"
      OMP_NUM_THREADS=$t "$py" "$here/torch_baseline.py" --config "$c" --no-machine >> "$log"
    done
  done
done
# Evaluation + GD baseline relative to a 3000-step run, once per thread count.
for t in $threads_list; do
  OMP_NUM_THREADS=$t "$bench" --config paper --no-machine --eval --steps 2 --warmup 1 \
    | sed 's/^RESULT /EVAL /' >> "$log"
done

"$py" - "$log" <<'EOF'
import statistics, sys
rows = {}
evals = {}
for line in open(sys.argv[1]):
    kind, _, rest = line.partition(" ")
    if kind not in ("RESULT", "EVAL"):
        continue
    f = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
    key = (f["config"], int(f["threads"]))
    if kind == "EVAL":
        evals[key] = float(f["eval_pct"])
        continue
    rows.setdefault((f["impl"],) + key, []).append(f)

def med(impl, cfg, t, field):
    rs = rows.get((impl, cfg, t))
    return statistics.median(float(r[field]) for r in rs) if rs else float("nan")

print()
print("| config | threads | icasweep s/step | PyTorch s/step | speed-up | icasweep GFLOP/s "
      "| sgemm GFLOP/s | of ceiling | icasweep RSS MB | PyTorch RSS MB | PyTorch GFLOP/s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
keys = sorted({k[1:] for k in rows}, key=lambda k: (k[0] != "paper", k[1]))
for cfg, t in keys:
    i, p = med("icasweep", cfg, t, "s_per_step"), med("torch", cfg, t, "s_per_step")
    g, s = med("icasweep", cfg, t, "gflops"), med("icasweep", cfg, t, "sgemm_gflops")
    print(f"| {cfg} | {t} | {i:.4f} | {p:.4f} | {p / i:.2f}x | {g:.1f} | {s:.1f} | "
          f"{100 * g / s:.0f}% | {med('icasweep', cfg, t, 'rss_mb'):.0f} | "
          f"{med('torch', cfg, t, 'rss_mb'):.0f} | {med('torch', cfg, t, 'gflops'):.1f} |")
print()
for cfg in sorted({k[0] for k in keys}):
    a, b = med("icasweep", cfg, 1, "s_per_step"), med("icasweep", cfg, 2, "s_per_step")
    if a == a and b == b:
        print(f"{cfg}: icasweep 2 threads vs 1: {a / b:.2f}x")
for (cfg, t), pct in sorted(evals.items()):
    print(f"{cfg}, {t} thread(s): evaluation + GD baseline = {pct:.2f}% of a 3000-step training run")
n = len(next(iter(rows.values())))
print(f"\n(medians of {n} interleaved rounds; raw lines in {sys.argv[1]})")
EOF
