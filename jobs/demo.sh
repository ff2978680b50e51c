#!/usr/bin/env bash
# The demo, from a fresh machine: installs what is missing, builds, sweeps
# jobs/grids/quick.yaml under mpirun on this machine, then writes the
# figures and the report of the paper's findings (docs/science.md).
# usage: jobs/demo.sh [OUTDIR]   (default: out/)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

out=${1:-out}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One worker rank per core, one thread each (small models train best
# side by side); rank 0 is the master and sleeps while it waits.
workers=$(nproc)
export OMP_NUM_THREADS=1
build/icasweep plan jobs/grids/quick.yaml | tail -1
start=$(date +%s)
mpirun --oversubscribe --bind-to none --mca btl self,vader --mca pml ob1 \
  -np $((workers + 1)) build/icasweep sweep jobs/grids/quick.yaml -o "$out/quick.h5"
echo "demo: sweep took $(( $(date +%s) - start )) s"
build/icasweep status "$out/quick.h5"
MPLBACKEND=Agg /usr/bin/python3 analysis/report.py "$out/quick.h5" --out "$out/report"
echo "demo: results in $out/quick.h5, report in $out/report/report.md, figures in $out/report/"
