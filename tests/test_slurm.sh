#!/usr/bin/env bash
# jobs/sweep.sbatch under a real (private, one-host) Slurm: a sweep job runs
# to completion; a job that hits its time-limit warning checkpoints, requeues
# itself and completes with every run present once.
set -u
source "$(dirname "$0")/lib.sh" || exit 1
source "$SRC/tests/slurm_env.sh" || exit 1

if ! slurm_install; then
  bad "cannot install Slurm (apt-get failed)"; finish
fi
at_exit 'slurm_stop; rm -rf "${SLURM_TEST_DIR:-}"'
slurm_start || { bad "Slurm did not start"; finish; }
work=$SLURM_TEST_DIR/work
mkdir -p "$work"
cd "$work"
export ICASWEEP=$BIN
# the tests' Open MPI needs these for oversubscription inside the job
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1

# -- 1. a whole sweep -----------------------------------------------------------
# three tasks (master + 2 workers) on a 2-CPU test node: --overcommit
start=$SECONDS
sbatch --wait --ntasks=3 --overcommit --cpus-per-task=1 --time=5 --output="$work/smoke-%j.log" \
  "$SRC/jobs/sweep.sbatch" "$SRC/jobs/grids/smoke.yaml" "$work/smoke.h5" >"$work/sbatch1.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && all_done_once "$work/smoke.h5" 8; then ok "smoke sweep under sbatch ($((SECONDS - start)) s)"
else bad "smoke sweep: sbatch exit $rc"; cat "$work"/sbatch1.out "$work"/smoke-*.log; slurm_logs; fi

# -- 2. the time-limit warning: checkpoint, requeue, complete ---------------------
cat >"$work/long.yaml" <<'YAML'
settings:
  dims: 5
  points: 10
  layers: 2
  heads: 2
  embd: 32
  batch: 64
  steps: 12000
  lr: 1.0e-3
  eval_batch: 32
eval_noise: [0, 1]
seeds: [0, 1]
checkpoint_every: 1000
YAML
start=$SECONDS
# a 1-minute limit with the warning 45 s before it: each allocation trains
# for 15 to 45 s (slurmctld checks limits every 30 s or so). Each run needs
# over a minute of training here (about 6 ms a step), so the first
# allocation cannot finish it and the warning must come.
timeout 600 sbatch --wait --ntasks=3 --overcommit --cpus-per-task=1 --time=1 --signal=B:USR1@45 \
  --output="$work/long-%j.log" "$SRC/jobs/sweep.sbatch" "$work/long.yaml" "$work/long.h5" \
  >"$work/sbatch2.out" 2>&1
rc=$?
log=$(ls "$work"/long-*.log 2>/dev/null | head -1)
starts=$(grep -c "start (restart" "$log" 2>/dev/null || true)
requeues=$(grep -c "requeueing" "$log" 2>/dev/null || true)
starts=${starts:-0} requeues=${requeues:-0}
echo "time-limit case: sbatch exit $rc after $((SECONDS - start)) s, $starts starts, $requeues requeues"
[ "$requeues" -ge 1 ] && [ "$starts" -ge 2 ] && ok "job requeued itself after the warning signal" \
  || { bad "no requeue seen"; cat "$work/sbatch2.out" "$log"; slurm_logs; }
if [ $rc -eq 0 ] && all_done_once "$work/long.h5" 2; then ok "requeued job completed with every run once"
else bad "requeued job: exit $rc"; cat "$log"; fi
grep -E "sweep.sbatch|interrupted|already finished" "$log" | head -20

finish
