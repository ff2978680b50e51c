#!/usr/bin/env bash
# icasweep against PyTorch on this machine, in one run: FP32 and bf16.
#
#   bench/compare.sh [BUILD_DIR] [ROUNDS]      (defaults: build, 3)
#
# For 1 and 2 threads, the "small" and "paper" configurations and the
# precisions fp32 and bf16 it runs icasweep-bench and bench/torch_baseline.py
# (bf16: torch.autocast("cpu", dtype=torch.bfloat16)) alternately, ROUNDS
# times each, every run in its own process, and prints a table: seconds per
# step (median over rounds of each run's median, and the best step seen),
# model GFLOP/s as a fraction of the FMA peak that icasweep-bench measured
# in the same process (FP32, or bf16 where the CPU has bf16 dot products),
# the speed-up over PyTorch in the same precision, bf16 over FP32, and 2
# threads over 1. Interleaving matters on a shared machine: a noisy
# neighbour slows both sides of a comparison, not one; the best step is the
# least disturbed one.
#
# Settings (environment): ICAS_BENCH_CONFIGS (default "small paper"),
# ICAS_BENCH_THREADS ("1 2"), ICAS_BENCH_PRECISIONS ("fp32 bf16"),
# ICAS_BENCH_PAPER_STEPS (3 timed steps after 1 warm-up), ICAS_BENCH_TORCH
# (1; 0 skips PyTorch), ICAS_BENCH_RATES (a rate file for `icasweep plan`,
# default bench-rates.txt). Needs python3-torch for the PyTorch side. All
# raw output goes to $ICAS_BENCH_LOG (default bench-compare.log), so every
# number in the table can be traced.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
rounds=${2:-3}
bench=$build/icasweep-bench
log=${ICAS_BENCH_LOG:-bench-compare.log}
rates=${ICAS_BENCH_RATES:-bench-rates.txt}
py=/usr/bin/python3
configs=${ICAS_BENCH_CONFIGS:-small paper}
threads_list=${ICAS_BENCH_THREADS:-1 2}
precisions=${ICAS_BENCH_PRECISIONS:-fp32 bf16}
paper_steps=${ICAS_BENCH_PAPER_STEPS:-3}
torch=${ICAS_BENCH_TORCH:-1}

[ -x "$bench" ] || { echo "compare: $bench not found; build first (cmake --build $build)" >&2; exit 2; }
if [ "$torch" = 1 ] && ! "$py" -c 'import torch' 2>/dev/null; then
  echo "compare: PyTorch missing for $py; apt-get install -y python3-torch (or ICAS_BENCH_TORCH=0)" >&2
  exit 2
fi

: > "$log"
: > "$rates"
"$bench" --config small --steps 1 --warmup 0 --no-eval | grep '^MACHINE' | tee -a "$log"
[ "$torch" = 1 ] &&
  "$py" "$here/torch_baseline.py" --config small --steps 1 --warmup 0 | grep '^MACHINE' | tee -a "$log"

for r in $(seq "$rounds"); do
  for t in $threads_list; do
    for c in $configs; do
      steps=()
      [ "$c" = paper ] && steps=(--steps "$paper_steps" --warmup 1)
      for p in $precisions; do
        echo "round $r/$rounds: $c, $t thread(s), $p" >&2
        OMP_NUM_THREADS=$t "$bench" --config "$c" --precision "$p" --no-machine --no-eval \
          --rate-file "$rates" "${steps[@]}" >> "$log"
        [ "$torch" = 1 ] && OMP_NUM_THREADS=$t "$py" "$here/torch_baseline.py" --config "$c" \
          --precision "$p" --no-machine "${steps[@]}" >> "$log"
      done
    done
  done
done

"$py" - "$log" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kind, _, rest = line.partition(" ")
    if kind != "RESULT":
        continue
    f = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
    key = (f["impl"], f["config"], int(f["threads"]), f.get("precision", "fp32"))
    rows.setdefault(key, []).append(f)

def med(impl, cfg, t, prec, field):
    rs = rows.get((impl, cfg, t, prec))
    return statistics.median(float(r[field]) for r in rs) if rs else float("nan")

def best(impl, cfg, t, prec, field):
    rs = rows.get((impl, cfg, t, prec))
    return min(float(r[field]) for r in rs) if rs else float("nan")

def spread(impl, cfg, t, prec):
    rs = rows.get((impl, cfg, t, prec))
    v = [float(r["s_per_step"]) for r in rs] if rs else []
    return (max(v) - min(v)) / min(v) if len(v) > 1 else float("nan")

print()
print("| config | threads | precision | icasweep s/step (median; best step) | spread over rounds "
      "| GFLOP/s | FMA peak GFLOP/s (same run) | of peak | PyTorch s/step | vs PyTorch |")
print("|---|---|---|---|---|---|---|---|---|---|")
keys = sorted({k[1:] for k in rows if k[0] == "icasweep"},
              key=lambda k: (k[0] != "paper", k[1], k[2]))
for cfg, t, prec in keys:
    i = med("icasweep", cfg, t, prec, "s_per_step")
    ib = best("icasweep", cfg, t, prec, "s_min")
    g = med("icasweep", cfg, t, prec, "gflops")
    peak_field = "peak_bf16" if prec == "bf16" else "peak_fp32"
    peak = med("icasweep", cfg, t, prec, peak_field)
    if not peak > 0:  # no bf16 instructions: the products ran at the FP32 rate
        peak = med("icasweep", cfg, t, prec, "peak_fp32")
        peak_note = " (FP32: no bf16 instructions)"
    else:
        peak_note = ""
    frac = med("icasweep", cfg, t, prec, "frac_peak")
    p = med("torch", cfg, t, prec, "s_per_step")
    print(f"| {cfg} | {t} | {prec} | {i:.4f}; {ib:.4f} | {100 * spread('icasweep', cfg, t, prec):.0f}% "
          f"| {g:.1f} | {peak:.1f}{peak_note} | {100 * frac:.0f}% | {p:.4f} | {p / i:.2f}x |")
print()
for cfg in sorted({k[0] for k in keys}):
    for prec in ("fp32", "bf16"):
        a, b = med("icasweep", cfg, 1, prec, "s_per_step"), med("icasweep", cfg, 2, prec, "s_per_step")
        if a == a and b == b:
            print(f"{cfg} {prec}: icasweep 2 threads vs 1: {a / b:.2f}x")
    for t in (1, 2):
        a, b = med("icasweep", cfg, t, "fp32", "s_per_step"), med("icasweep", cfg, t, "bf16", "s_per_step")
        if a == a and b == b:
            print(f"{cfg}, {t} thread(s): icasweep bf16 step vs fp32 step: {a / b:.2f}x")
n = max(len(v) for v in rows.values())
print(f"\n(medians of up to {n} interleaved rounds; raw lines in {sys.argv[1]})")
EOF
