#!/usr/bin/env bash
# Crash consistency, proved by fault injection (fault.h):
#  1. every kill point: for N = 1, 2, ... the sweep of a small grid (saved
#     models, a closed self-correction loop, the journal cut back after
#     every result) SIGKILLs itself at its N-th write-class step (journal,
#     HDF5 pwrites, fsyncs, renames, checkpoints); the killed file must be
#     readable by `icasweep status` and by the Python loader, every row the
#     loader calls done must hold the uninterrupted sweep's numbers; the
#     same command then resumes; every resumed file must equal an
#     uninterrupted sweep bit for bit, with nothing left behind. N runs
#     until the sweep gets through without reaching it. The same for a
#     finished file grown by one run: a kill at each step of the growth
#     leaves the old file or the grown one, and the rerun completes it to
#     the uninterrupted growth's numbers.
#  2. torture: at least 100 random kills of a 3-rank sweep (a rank killing
#     itself at a random step, or SIGKILL to the whole job after a random
#     delay), several kills in a row between clean resumes; after each kill
#     `icasweep status` must read the file; each finished file must equal
#     the uninterrupted one.
#  3. a hollow row (marked done, no numbers, no journal entry: what a kill
#     did to files of earlier versions) is reported by `status` and rerun.
set -u
source "$(dirname "$0")/lib.sh" || exit 1
use_mpi
use_mpi_singletons
make_work

cat >"$work/tiny.yaml" <<'YAML'
settings:
  dims: 3
  points: 4
  layers: 1
  heads: 1
  embd: 4
  steps: 6
  batch: 4
  lr: 1.0e-3
  eval_batch: 4
eval_noise: [0, 1]
seeds: [0]
checkpoint_every: 3
save_model: true
selfcorrect:
  rounds: 2
  k0: [1]
  q: [0, 1]
axes:
  attention: [softmax, linear]
YAML
# the journal is cut back after every result, so that those steps are killed too
export ICAS_JOURNAL_MERGE_EVERY=1
"$BIN" sweep "$work/tiny.yaml" -o "$work/ref.h5" -q --heartbeat 0 2>"$work/ref.log" \
  || { bad "reference sweep"; cat "$work/ref.log"; finish; }
total=$(ICAS_FAULT_TRACE=1 "$BIN" sweep "$work/tiny.yaml" -o "$work/count.h5" -q --heartbeat 0 2>&1 \
  | grep -c "^fault step")
[ "$total" -gt 40 ] && ok "a sweep of 2 runs takes $total write-class steps" \
  || { bad "only $total steps counted"; finish; }

# -- 1. a kill at every step ----------------------------------------------------
mkdir "$work/every" "$work/killed"
killed=0; leftovers=0; resume_fail=0; status_bad=0
for N in $(seq 1 $((total + 1))); do
  f=$work/every/k$N.h5
  ICAS_FAULT_KILL_AT=$N "$BIN" sweep "$work/tiny.yaml" -o "$f" -q --heartbeat 0 2>/dev/null
  rc=$?
  if [ $N -le "$total" ]; then
    [ $rc -eq 137 ] && killed=$((killed + 1)) || bad "kill at step $N: exit $rc, want 137 (SIGKILL)"
  else
    [ $rc -eq 0 ] || bad "step $N is past the last one, yet exit $rc"
  fi
  # a kill never leaves a file that cannot be read (at most none yet)
  if [ -e "$f" ]; then
    cp "$f" "$work/killed/k$N.h5"
    "$BIN" status "$f" >"$work/status.out" 2>&1
    rc=$?
    [ $rc -eq 0 ] || { status_bad=$((status_bad + 1)); bad "status after a kill at step $N: exit $rc: $(cat "$work/status.out")"; }
  fi
  "$BIN" sweep "$work/tiny.yaml" -o "$f" -q --heartbeat 0 2>"$work/resume.log"
  rc=$?
  [ $rc -eq 0 ] || { resume_fail=$((resume_fail + 1)); bad "resume after a kill at step $N: exit $rc: $(cat "$work/resume.log")"; }
  # nothing but the result file (and a kept damaged copy) may remain
  extra=$(ls -A "$work/every" | grep "^k$N\.h5\." | grep -v "\.damaged$" | grep -v "\.lock$")
  [ -z "$extra" ] || { leftovers=$((leftovers + 1)); bad "kill at step $N left $extra"; }
done
[ $resume_fail -eq 0 ] && ok "killed at each of $killed steps, every resume exit 0"
[ $status_bad -eq 0 ] && ok "status read the file after every kill (exit 0)"
# what a reader sees between the kill and the next sweep
$PY - "$work/ref.h5" "$work"/killed/k*.h5 >"$work/readers.out" 2>&1 <<'PYEOF'
import os, sys, warnings
import numpy as np
sys.path.insert(0, os.environ["ICAS_SOURCE_DIR"] + "/analysis")
import h5py
import icaresults
ref_path, files = sys.argv[1], sys.argv[2:]
names = ["eval/tf_err", "eval/gd_err", "eval/blind_err", "eval/pick_err", "train/loss",
         "selfcorrect/err", "selfcorrect/open_err", "selfcorrect/critic_tau"]
with h5py.File(ref_path, "r") as f:
    ref = {n: f[n][()] for n in names}
wrong, done_rows = [], 0
for path in files:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = icaresults.load(path)
    with h5py.File(path, "r") as f:
        got = {n: f[n][()] for n in names}
    for i in np.flatnonzero(res.runs["status"] == "done"):
        done_rows += 1
        for n in names:
            if got[n][i].tobytes() != ref[n][i].tobytes():
                wrong.append(f"{path} row {i} {n}")
print(f"{len(files)} killed files loaded; {done_rows} rows loaded as done, "
      f"{len(wrong)} of them with numbers other than the uninterrupted sweep's")
print("\n".join(wrong[:10]))
sys.exit(1 if wrong else 0)
PYEOF
[ $? -eq 0 ] && ok "readers after each kill: $(head -1 "$work/readers.out")" \
  || bad "a reader was misled after a kill: $(cat "$work/readers.out")"
[ $leftovers -eq 0 ] && ok "no journal, checkpoint or temporary file left after any resume"
$PY - "$work/ref.h5" "$work"/every/k*.h5 >"$work/every.cmp" <<'PYEOF'
import os, sys
sys.path.insert(0, os.environ["ICAS_SOURCE_DIR"] + "/tests")
import compare_results
ref, files = sys.argv[1], sys.argv[2:]
bad = [f for f in files if compare_results.main(ref, f, True) != 0]
print(f"bit-for-bit: {len(files) - len(bad)} of {len(files)} resumed files identical")
sys.exit(1 if bad else 0)
PYEOF
[ $? -eq 0 ] && ok "all $((total + 1)) resumed files identical to the uninterrupted sweep" \
  || bad "some resumed file differs: $(grep -v identical "$work/every.cmp")"

# -- 1b. a kill at every step of a growth ------------------------------------------
# the finished file grown by a sub-grid of one run (one more seed of softmax)
sed '/^axes:/,$d' "$work/tiny.yaml" >"$work/grown.yaml"
cat >>"$work/grown.yaml" <<'YAML'
grids:
  - attention: [softmax, linear]
  - attention: softmax
    seeds: [1]
YAML
cp "$work/ref.h5" "$work/grow_ref.h5"
"$BIN" sweep "$work/grown.yaml" -o "$work/grow_ref.h5" -q --heartbeat 0 2>"$work/grow_ref.log" \
  || { bad "uninterrupted growth: $(cat "$work/grow_ref.log")"; finish; }
cp "$work/ref.h5" "$work/grow_count.h5"
ICAS_FAULT_TRACE=1 "$BIN" sweep "$work/grown.yaml" -o "$work/grow_count.h5" -q --heartbeat 0 2>&1 \
  | grep "^fault step" >"$work/grow.trace"
# the growth is every step before the journal is made anew; a kill in a run of
# pwrites building the new file is tried at the run's first and last pwrite
end=$(grep -m1 "journal" "$work/grow.trace" | sed 's/fault step \([0-9]*\):.*/\1/')
steps=$(awk -v end="$end" '{n = $3 + 0; w = ($4 == "hdf5" && $5 == "pwrite")
  if (n > end + 6) exit
  if (!w || !pw || n >= end) print n; else last = n
  if (!w && pw && last) print last
  pw = w; if (!w) last = 0 }' "$work/grow.trace" | sort -n | uniq)
n_steps=$(echo "$steps" | wc -l)
[ -n "$end" ] && [ "$n_steps" -gt 10 ] && ok "a growth by one run takes $((end - 1)) write-class steps; killing at $n_steps of them and the journal's renewal" \
  || { bad "growth steps not found in the trace: $(head -3 "$work/grow.trace")"; finish; }
mkdir "$work/grow"
gkilled=0; gbad=0
for N in $steps; do
  f=$work/grow/g$N.h5
  cp "$work/ref.h5" "$f"
  ICAS_FAULT_KILL_AT=$N "$BIN" sweep "$work/grown.yaml" -o "$f" -q --heartbeat 0 2>/dev/null
  rc=$?
  [ $rc -eq 137 ] && gkilled=$((gkilled + 1)) || { gbad=$((gbad + 1)); bad "growth killed at step $N: exit $rc, want 137"; }
  # the old file or the grown one, never anything between
  "$BIN" status "$f" >"$work/gstatus" 2>&1 && grep -Eq "^$f: (2 runs: 2 done|3 runs: 2 done, 0 diverged, 0 failed, 0 interrupted, 1 pending)" "$work/gstatus" \
    || { gbad=$((gbad + 1)); bad "status after a growth killed at step $N: $(cat "$work/gstatus")"; }
  "$BIN" sweep "$work/grown.yaml" -o "$f" -q --heartbeat 0 2>"$work/gresume.log" \
    || { gbad=$((gbad + 1)); bad "rerun after a growth killed at step $N: $(cat "$work/gresume.log")"; }
  extra=$(ls -A "$work/grow" | grep "^g$N\.h5\." | grep -v "\.lock$")
  [ -z "$extra" ] || { gbad=$((gbad + 1)); bad "growth killed at step $N left $extra"; }
done
$PY - "$work/ref.h5" "$work/grow_ref.h5" "$work"/grow/g*.h5 >"$work/grow.cmp" <<'PYEOF'
import os, sys
sys.path.insert(0, os.environ["ICAS_SOURCE_DIR"] + "/tests")
import h5py
import compare_results
old, ref, files = sys.argv[1], sys.argv[2], sys.argv[3:]
names = ["eval/tf_err", "eval/gd_err", "eval/blind_err", "eval/pick_err", "train/loss",
         "selfcorrect/err", "selfcorrect/open_err", "selfcorrect/critic_tau", "runs"]
bad = []
with h5py.File(old, "r") as a, h5py.File(ref, "r") as b:
    n = len(a["runs"])
    if any(b[k][:n].tobytes() != a[k][()].tobytes() for k in names) or \
            any(b[f"models/{i.decode()}/{p}"][()].tobytes() != a[f"models/{i.decode()}/{p}"][()].tobytes()
                for i in a["runs"]["run_id"] for p in a[f"models/{i.decode()}"]):
        bad.append("the uninterrupted growth changed an old row")
for f in files:
    if compare_results.main(ref, f, True) != 0:
        bad.append(f)
    with h5py.File(f, "r") as g:
        if list(g["grid_history"]["runs"]) != [2, 3]:
            bad.append(f"{f}: grid history {list(g['grid_history']['runs'])}")
print(f"bit-for-bit: {len(files) - len(bad)} of {len(files)} grown files identical to the uninterrupted growth")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
[ $? -eq 0 ] && [ $gbad -eq 0 ] && ok "growth killed at each of $gkilled steps: $(grep "^bit-for-bit" "$work/grow.cmp"), each the old or the grown file after the kill" \
  || bad "growth after a kill: $(cat "$work/grow.cmp")"

unset ICAS_JOURNAL_MERGE_EVERY

# -- 2. torture: random kills of a 3-rank sweep ------------------------------------
cat >"$work/six.yaml" <<'YAML'
settings:
  dims: 3
  points: 4
  layers: 1
  heads: 1
  embd: 4
  steps: 40
  batch: 4
  lr: 1.0e-3
  eval_batch: 4
eval_noise: [0, 1]
seeds: [0, 1, 2]
checkpoint_every: 5
axes:
  attention: [softmax, linear]
YAML
"$BIN" sweep "$work/six.yaml" -o "$work/six_ref.h5" -q --heartbeat 0 2>/dev/null || bad "torture reference"
RANDOM=20261126   # reproducible kill positions
kills=0; episodes=0; torture_bad=0
t=$work/tort.h5
no_rank_left() { ! pgrep -f "^$BIN sweep $work/six.yaml -o $t" >/dev/null; }
stop_job() {  # SIGKILL the job (mpirun pid $1, if any) and wait until no rank is left
  [ -n "${1:-}" ] && kill -9 "$1" 2>/dev/null
  pkill -9 -f "^$BIN sweep $work/six.yaml -o $t" 2>/dev/null
  [ -n "${1:-}" ] && wait "$1" 2>/dev/null
  POLL_EVERY=0.05 poll 5 "the ranks of a killed job to end" no_rank_left
}
while [ $kills -lt 100 ]; do
  rm -rf "$t" "$t".*
  episodes=$((episodes + 1))
  for _ in 1 2 3 4 5 6 7 8; do
    if [ $((RANDOM % 2)) -eq 0 ]; then
      # a rank (master or worker) kills itself at a random write step
      ICAS_FAULT_KILL_AT=$((1 + RANDOM % 120)) "${MPIRUN[@]}" -np 3 -x ICAS_FAULT_KILL_AT \
        "$BIN" sweep "$work/six.yaml" -o "$t" -q --heartbeat 0 >/dev/null 2>&1
      rc=$?
      stop_job
    else
      # SIGKILL to the whole job at a random instant
      "${MPIRUN[@]}" -np 3 "$BIN" sweep "$work/six.yaml" -o "$t" -q --heartbeat 0 >/dev/null 2>&1 &
      pid=$!
      sleep "0.$((RANDOM % 9))$((RANDOM % 10))"
      if kill -0 $pid 2>/dev/null; then stop_job $pid; rc=137; else wait $pid; rc=$?; fi
    fi
    [ $rc -eq 0 ] && break   # got through without a kill
    kills=$((kills + 1))
    "$BIN" status "$t" >"$work/tstatus" 2>&1
    src=$?
    # a file that does not exist yet is the only excuse
    { [ $src -eq 0 ] || [ ! -e "$t" ]; } \
      || { torture_bad=$((torture_bad + 1)); bad "status after kill $kills: exit $src: $(cat "$work/tstatus")"; }
  done
  "${MPIRUN[@]}" -np 3 "$BIN" sweep "$work/six.yaml" -o "$t" -q --heartbeat 0 2>"$work/tres.log"
  rc=$?
  if [ $rc -ne 0 ]; then
    torture_bad=$((torture_bad + 1)); bad "torture episode $episodes: resume exit $rc: $(cat "$work/tres.log")"
  elif ! compare_results "$work/six_ref.h5" "$t" --require-done >"$work/tcmp"; then
    torture_bad=$((torture_bad + 1)); bad "torture episode $episodes differs: $(cat "$work/tcmp")"
  fi
done
[ $torture_bad -eq 0 ] && ok "torture: $kills random kills of a 3-rank sweep in $episodes episodes, each resumed to identical numbers"

# -- 3. a hollow row from an earlier version's kill ---------------------------------
cp "$work/ref.h5" "$work/hollow.h5"
$PY - "$work/hollow.h5" <<'PYEOF' || bad "could not hollow out row 1"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    runs = f["runs"][()]
    runs["checksum"][1] = 0   # as written by an icasweep without checksums
    f["runs"][...] = runs
    f["eval/tf_err"][1] = np.nan
    f["train/loss"][1] = np.nan
PYEOF
"$BIN" status "$work/hollow.h5" >"$work/hstatus" 2>&1
grep -q "1 done" "$work/hstatus" && grep -q "without its numbers" "$work/hstatus" \
  && ok "status: a done row without its numbers is not counted done" \
  || bad "status of a hollow file: $(cat "$work/hstatus")"
"$BIN" sweep "$work/tiny.yaml" -o "$work/hollow.h5" -q --heartbeat 0 2>"$work/hollow.log"
rc=$?
[ $rc -eq 0 ] && grep -q "1 run marked done without its numbers intact" "$work/hollow.log" \
  && compare_results "$work/ref.h5" "$work/hollow.h5" --require-done >/dev/null \
  && ok "the hollow run is rerun to the same numbers" \
  || bad "hollow resume: exit $rc, $(cat "$work/hollow.log")"

finish
