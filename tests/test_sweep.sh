#!/usr/bin/env bash
# The MPI sweep end to end: identical numbers with 1, 2 and 3 ranks; kill -9
# mid-sweep then resume; SIGTERM checkpoints runs mid-training and the rerun
# resumes them to the same numbers; a worker that falls silent is declared
# lost and its run resumes; a finished file grown by a seed keeps its rows
# and appends the new runs; a second writer and a grid that drops a run of
# the file are refused; grid errors stop everything before work starts.
set -u
source "$(dirname "$0")/lib.sh" || exit 1
use_mpi
make_work
smoke=$SRC/jobs/grids/smoke.yaml

# -- 1. the same grid with 1, 2 and 3 ranks -----------------------------------
for np in 1 2 3; do
  quiet=(); [ $np -eq 3 ] && quiet=(-q)
  "${MPIRUN[@]}" -np $np "$BIN" sweep "$smoke" -o "$work/np$np.h5" --heartbeat 0 "${quiet[@]}" \
    2>"$work/np$np.log"
  rc=$?
  [ $rc -eq 0 ] && ok "sweep with $np ranks" || { bad "sweep with $np ranks: exit $rc"; cat "$work/np$np.log"; }
done
grep -q "^\[8/8\]" "$work/np1.log" && ! grep -q "^\[" "$work/np3.log" && grep -q " 8 done" "$work/np3.log" \
  && ok "a line per run, none with -q" || bad "progress lines: $(cat "$work/np1.log" "$work/np3.log")"
compare_results "$work/np1.h5" "$work/np2.h5" --require-done && ok "1 vs 2 ranks identical" || bad "1 vs 2 ranks differ"
compare_results "$work/np1.h5" "$work/np3.h5" --require-done && ok "1 vs 3 ranks identical" || bad "1 vs 3 ranks differ"
"$BIN" status "$work/np2.h5" >"$work/status" \
  && grep -qx "$work/np2.h5: 8 runs: 8 done, 0 diverged, 0 failed, 0 interrupted, 0 pending" "$work/status" \
  && ok "status counts 8 of 8 done" || bad "status: $(cat "$work/status")"

# rerunning a finished sweep runs nothing and changes nothing
cp "$work/np2.h5" "$work/again.h5"
"${MPIRUN[@]}" -np 2 "$BIN" sweep "$smoke" -o "$work/again.h5" 2>"$work/again.log"
grep -q ": 8 runs, 8 already finished, 0 to run on" "$work/again.log" && compare_results "$work/np2.h5" "$work/again.h5" >/dev/null \
  && ok "rerun of a finished sweep is a no-op" || bad "rerun of a finished sweep: $(cat "$work/again.log")"

# -- growing a finished file: one more seed -------------------------------------
sed 's/^seeds: \[0, 1\]$/seeds: [0, 1, 2]/' "$smoke" >"$work/smoke3.yaml"
sed 's/^seeds: \[0, 1\]$/seeds: [2]/' "$smoke" >"$work/seed2.yaml"
grep -q "^seeds: \[0, 1, 2\]$" "$work/smoke3.yaml" || bad "smoke.yaml's seeds line is not 'seeds: [0, 1]'"
cp "$work/np2.h5" "$work/grown.h5"
"$BIN" sweep "$work/smoke3.yaml" -o "$work/grown.h5" --heartbeat 0 2>"$work/grow.log"
rc=$?
[ $rc -eq 0 ] && grep -q "grown.h5: the grid keeps the file's 8 runs in their rows and adds 4, rows 8 to 11" "$work/grow.log" \
  && grep -q "growing .*grown.h5 from 8 to 12 rows (its grid history: 2 grids)" "$work/grow.log" \
  && grep -q ": 12 runs, 8 already finished, 4 to run on" "$work/grow.log" \
  && ok "grown by a seed: 8 runs kept, 4 added and run" || bad "grow: exit $rc, $(cat "$work/grow.log")"
"$BIN" sweep "$work/seed2.yaml" -o "$work/seed2.h5" -q --heartbeat 0 2>/dev/null || bad "sweep of seed 2 alone"
"$BIN" status "$work/grown.h5" >"$work/status_grown" \
  && grep -qx "$work/grown.h5: 12 runs: 12 done, 0 diverged, 0 failed, 0 interrupted, 0 pending" "$work/status_grown" \
  && ok "status of the grown file: 12 of 12 done" || bad "status of the grown file: $(cat "$work/status_grown")"
$PY - "$work/np2.h5" "$work/seed2.h5" "$work/grown.h5" "$smoke" "$work/smoke3.yaml" \
  >"$work/grown.out" 2>&1 <<'PYEOF'
import os, sys, warnings
sys.path.insert(0, os.environ["ICAS_SOURCE_DIR"] + "/analysis")
import h5py
import icaresults
old_path, added_path, grown_path, old_grid, new_grid = sys.argv[1:]
names = ["eval/tf_err", "eval/gd_err", "eval/blind_err", "eval/pick_err", "train/loss"]
problems = []
with h5py.File(old_path, "r") as old, h5py.File(added_path, "r") as added, \
        h5py.File(grown_path, "r") as grown:
    n = len(old["runs"])
    # the old rows, bit for bit: numbers, and every /runs field (ids, checksums, timings)
    for name in names + ["runs"]:
        if grown[name][:n].tobytes() != old[name][()].tobytes():
            problems.append(f"old rows of {name} changed")
    # the added rows: the new grid's added runs in its order, as a sweep of them alone
    m = len(added["runs"])
    if len(grown["runs"]) != n + m:
        problems.append(f"{len(grown['runs'])} rows, want {n + m}")
    for name in names:
        if grown[name][n:].tobytes() != added[name][()].tobytes():
            problems.append(f"added rows of {name} differ from a sweep of seed 2 alone")
    for field in ("run_id", "seed", "checksum"):
        if grown["runs"][field][n:].tobytes() != added["runs"][field].tobytes():
            problems.append(f"added rows' {field} differ from a sweep of seed 2 alone")
    if list(grown["runs"]["row"]) != list(range(n + m)):
        problems.append("row column is not 0..R-1")
    history = grown["grid_history"][()]
    texts = [h.decode() if isinstance(h, bytes) else h for h in history["grid"]]
    if len(history) != 2 or texts != [open(old_grid).read(), open(new_grid).read()] \
            or list(history["runs"]) != [n, n + m]:
        problems.append(f"grid history: {len(history)} entries, runs {list(history['runs'])}")
    stored = grown.attrs["grid"]
    stored = stored.decode() if isinstance(stored, bytes) else stored
    if stored != open(new_grid).read():
        problems.append("the grid attribute is not the new grid")
    print(f"history: {[(a.decode(), int(r)) for a, r in zip(history['applied_at'], history['runs'])]}")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    res = icaresults.load(grown_path)
if res.n_runs != 12:
    problems.append(f"the loader reads {res.n_runs} runs")
print("\n".join(problems) if problems else "old rows bit-identical, added rows as a sweep of them alone")
sys.exit(1 if problems else 0)
PYEOF
[ $? -eq 0 ] && ok "grown file: $(tail -1 "$work/grown.out"); $(head -1 "$work/grown.out")" \
  || bad "grown file: $(cat "$work/grown.out")"
# repair reads the grown file's rows in their order, not its grid's
cp "$work/grown.h5" "$work/grown.copy"
"$BIN" repair "$work/grown.h5" >"$work/repair_grown" 2>&1 && compare_results "$work/grown.copy" "$work/grown.h5" >/dev/null \
  && ok "repair of the grown file: nothing to do" || bad "repair of the grown file: $(cat "$work/repair_grown")"
# a grid that drops a run of the file: refused, naming it, the file untouched
cp "$work/grown.h5" "$work/grown.copy"
sed 's/^seeds: \[0, 1\]$/seeds: [1, 2]/' "$smoke" >"$work/drop0.yaml"
"$BIN" sweep "$work/drop0.yaml" -o "$work/grown.h5" --heartbeat 0 2>"$work/drop.log"
rc=$?
[ $rc -eq 2 ] && grep -q "grown.h5 was made from a different grid: row 0, r[0-9a-f]* (.*seed=0.*), is not in the new grid" "$work/drop.log" \
  && cmp -s "$work/grown.copy" "$work/grown.h5" \
  && ok "a grid dropping a run refused (exit 2), the run named, the file untouched" \
  || bad "dropping grid: exit $rc, $(cat "$work/drop.log")"
"$BIN" sweep "$work/drop0.yaml" -o "$work/grown.copy" --force -q --heartbeat 0 2>"$work/force.log"
rc=$?
"$BIN" status "$work/grown.copy" >"$work/status_force" 2>&1
[ $rc -eq 0 ] && grep -q ": 8 runs: 8 done," "$work/status_force" \
  && ok "--force starts over with the dropping grid" || bad "--force: exit $rc, $(cat "$work/force.log" "$work/status_force")"

# -- 2. a grid whose runs take a few seconds each ------------------------------
cat >"$work/slow.yaml" <<'YAML'
settings:
  dims: 5
  points: 10
  layers: 2
  heads: 2
  embd: 32
  batch: 32
  steps: 1200
  lr: 1.0e-3
  eval_batch: 32
eval_noise: [0, 1]
seeds: [0, 1]
checkpoint_every: 100
axes:
  attention: [softmax, linear]
YAML
"${MPIRUN[@]}" -np 3 "$BIN" sweep "$work/slow.yaml" -o "$work/slow_ref.h5" --heartbeat 0 2>"$work/slow_ref.log" \
  && ok "uninterrupted slow sweep" || { bad "uninterrupted slow sweep"; cat "$work/slow_ref.log"; }

# kill -9 of the whole mpirun mid-sweep, then the same command again
"${MPIRUN[@]}" -np 2 "$BIN" sweep "$work/slow.yaml" -o "$work/killed.h5" --heartbeat 0 2>"$work/killed1.log" &
pid=$!
POLL_EVERY=0.2 poll 120 "a first finished run before the kill" grep -q "^\[1/" "$work/killed1.log"
kill -9 $pid; pkill -9 -f "sweep $work/slow.yaml -o $work/killed.h5"; wait $pid 2>/dev/null
done_before=$("$BIN" status "$work/killed.h5" | head -1)
"${MPIRUN[@]}" -np 2 "$BIN" sweep "$work/slow.yaml" -o "$work/killed.h5" --heartbeat 0 2>"$work/killed2.log"
rc=$?
[ $rc -eq 0 ] && ok "resume after kill -9 (before: $done_before)" || { bad "resume after kill -9: exit $rc"; cat "$work/killed2.log"; }
# the runs finished before the kill (at least the one awaited, and every one
# status counted) are skipped, and only the others run
n_before=$(sed -n 's/^.*: [0-9]* runs: \([0-9]*\) done, .*$/\1/p' <<<"$done_before")
n_skipped=$(sed -n 's/^icasweep sweep: .*: 4 runs, \([0-9]*\) already finished, [0-9]* to run on .*$/\1/p' "$work/killed2.log")
[ "${n_skipped:-0}" -ge 1 ] && [ "$n_skipped" -ge "${n_before:-0}" ] \
  && grep -q ": 4 runs, $n_skipped already finished, $((4 - n_skipped)) to run on" "$work/killed2.log" \
  && grep -q ": $((4 - n_skipped)) done, 0 diverged, 0 failed, 0 not finished ($n_skipped already finished before)" "$work/killed2.log" \
  && ok "resume skipped the $n_skipped finished runs (status counted ${n_before:-none})" \
  || bad "resume log (status before: $done_before): $(cat "$work/killed2.log")"
compare_results "$work/slow_ref.h5" "$work/killed.h5" --require-done && ok "kill -9 + resume identical" || bad "kill -9 + resume differs"

# SIGTERM to the ranks, SIGUSR1 to mpirun: every rank checkpoints, exit 3,
# and the rerun resumes the runs mid-training
for sig in TERM USR1; do
  "${MPIRUN[@]}" -np 3 "$BIN" sweep "$work/slow.yaml" -o "$work/sig$sig.h5" --heartbeat 0 2>"$work/sig$sig.1.log" &
  pid=$!
  # signal once runs are mid-training, as their first periodic checkpoint
  # shows: a fixed delay can fall between runs, with nothing to checkpoint
  POLL_EVERY=0.05 poll 30 "a first checkpoint before SIG$sig" has_entries "$work/sig$sig.h5.ckpt" 1
  if [ $sig = TERM ]; then
    "$BIN" status "$work/sig$sig.h5" >"$work/status_live" 2>&1
    grep -q "a sweep is writing this file now (pid [0-9]* on host" "$work/status_live" \
      && ok "status names the live writer" || bad "status while writing: $(cat "$work/status_live")"
  fi
  if [ $sig = USR1 ]; then
    kill -USR1 $pid     # mpirun forwards SIGUSR1 to every rank
  else
    # SIGTERM to every rank, as srun delivers it (mpirun itself would
    # report a signal of its own as a failure, whatever the ranks return)
    pkill -TERM -f "^$BIN sweep $work/slow.yaml -o $work/sig$sig.h5"
  fi
  wait $pid
  rc=$?
  [ $rc -eq 3 ] && ok "SIG$sig: exit 3" || { bad "SIG$sig: exit $rc, want 3"; cat "$work/sig$sig.1.log"; }
  n_ckpt=$(ls "$work/sig$sig.h5.ckpt" 2>/dev/null | wc -l)
  [ "$n_ckpt" -ge 1 ] && grep -q "interrupted at step [0-9]" "$work/sig$sig.1.log" \
    && ok "SIG$sig: runs stopped mid-training, $n_ckpt checkpoints written" \
    || { bad "SIG$sig: $n_ckpt checkpoints"; cat "$work/sig$sig.1.log"; }
  "$BIN" status "$work/sig$sig.h5" >"$work/status_stopped" 2>&1
  grep -q "unfinished runs: $n_ckpt of [0-9]* have a checkpoint" "$work/status_stopped" \
    && grep -q "no sweep is writing this file" "$work/status_stopped" \
    && ok "SIG$sig: status counts the checkpoints" || bad "SIG$sig status: $(cat "$work/status_stopped")"
  "${MPIRUN[@]}" -np 3 "$BIN" sweep "$work/slow.yaml" -o "$work/sig$sig.h5" --heartbeat 0 2>"$work/sig$sig.2.log"
  rc=$?
  [ $rc -eq 0 ] && ok "SIG$sig: resumed" || { bad "SIG$sig resume: exit $rc"; cat "$work/sig$sig.2.log"; }
  compare_results "$work/slow_ref.h5" "$work/sig$sig.h5" --require-done && ok "SIG$sig + resume identical" || bad "SIG$sig + resume differs"
  [ ! -e "$work/sig$sig.h5.ckpt" ] && ok "SIG$sig: empty checkpoint directory removed" \
    || bad "SIG$sig: left $(ls -A "$work/sig$sig.h5.ckpt")"
done

# a worker that falls silent (SIGSTOP: alive, but sends nothing, as a rank
# on a dead node) is declared lost after --lost-after: its run is recorded
# as interrupted, the file closed, every rank ended with status 3; the
# rerun resumes it from its checkpoint to the same numbers
"${MPIRUN[@]}" -np 3 "$BIN" sweep "$work/slow.yaml" -o "$work/silent.h5" --heartbeat 0 --lost-after 2 \
  2>"$work/silent1.log" &
pid=$!
POLL_EVERY=0.05 poll 30 "two runs in flight before a worker falls silent" has_entries "$work/silent.h5.ckpt" 2
victim=
for p in $(pgrep -f "^$BIN sweep $work/slow.yaml -o $work/silent.h5"); do
  tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=2 && victim=$p
done
kill -STOP "$victim"
start=$SECONDS
wait $pid
rc=$?
kill -KILL "$victim" 2>/dev/null
[ $rc -eq 3 ] && grep -q "rank 2 on host $(hostname) lost: no message from it for" "$work/silent1.log" \
  && ok "silent worker declared lost: exit 3 after $((SECONDS - start)) s, rank and host named" \
  || { bad "silent worker: exit $rc, want 3"; cat "$work/silent1.log"; }
"$BIN" status "$work/silent.h5" >"$work/status_silent" 2>&1
grep -q "^$work/silent.h5: 4 runs: .*, [1-9][0-9]* interrupted, " "$work/status_silent" && ok "status shows the lost run as interrupted" \
  || bad "status after a lost worker: $(cat "$work/status_silent")"
"${MPIRUN[@]}" -np 3 "$BIN" sweep "$work/slow.yaml" -o "$work/silent.h5" --heartbeat 0 2>"$work/silent2.log"
rc=$?
[ $rc -eq 0 ] && compare_results "$work/slow_ref.h5" "$work/silent.h5" --require-done \
  && ok "lost worker + resume identical" || { bad "lost worker resume: exit $rc"; cat "$work/silent2.log"; }

# -- 3. refusals ------------------------------------------------------------------
"${MPIRUN[@]}" -np 2 "$BIN" sweep "$work/slow.yaml" -o "$work/busy.h5" --heartbeat 0 2>/dev/null &
pid=$!
poll 10 "the first writer to create busy.h5" test -e "$work/busy.h5"
"$BIN" sweep "$work/slow.yaml" -o "$work/busy.h5" 2>"$work/second.log"
rc=$?
[ $rc -eq 2 ] && grep -q "another sweep" "$work/second.log" && ok "second writer refused" \
  || bad "second writer: exit $rc, $(cat "$work/second.log")"
kill -TERM $pid; wait $pid

# refused, and the file is left as it was, byte for byte
cp "$work/slow_ref.h5" "$work/slow_ref.copy"
"$BIN" sweep "$smoke" -o "$work/slow_ref.h5" 2>"$work/other.log"
rc=$?
[ $rc -eq 2 ] && grep -q "slow_ref.h5 was made from a different grid: row 0, .* is not in the new grid" "$work/other.log" && cmp -s "$work/slow_ref.copy" "$work/slow_ref.h5" \
  && ok "file from another grid refused, left unchanged" || bad "another grid: exit $rc, $(cat "$work/other.log")"

printf 'settings:\n  layers: [2]\n  heads: 0\nbogus: 1\n' >"$work/broken.yaml"
"$BIN" sweep "$work/broken.yaml" -o "$work/never.h5" 2>"$work/broken.log"
rc=$?
[ $rc -eq 2 ] && [ ! -e "$work/never.h5" ] && grep -q "broken.yaml:[0-9]*:[0-9]*:" "$work/broken.log" \
  && ok "grid errors: $(grep -c 'broken.yaml:' "$work/broken.log") located problems" \
  || bad "broken grid: exit $rc, $(cat "$work/broken.log")"

# -- the closed loop's arrays travel from the workers: 1 and 3 ranks agree ----
printf 'settings: {layers: 1, heads: 2, embd: 8, points: 8, steps: 20, batch: 8, eval_batch: 16}\nseeds: [0, 1, 2]\nselfcorrect: {rounds: 3, k0: [1, 3], q: [0, 0.5, 1]}\n' >"$work/sc.yaml"
for np in 1 3; do
  "${MPIRUN[@]}" -np $np "$BIN" sweep "$work/sc.yaml" -o "$work/sc$np.h5" -q 2>"$work/sc$np.log" \
    || bad "closed-loop sweep with $np ranks: $(cat "$work/sc$np.log")"
done
$PY - "$work/sc1.h5" "$work/sc3.h5" <<'PYEOF' && ok "closed loop: 1 vs 3 ranks identical" || bad "closed loop: 1 vs 3 ranks differ"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
for k in ("err", "open_err", "critic_tau"):
    x, y = a["selfcorrect/" + k][()], b["selfcorrect/" + k][()]
    assert np.isfinite(x).all() and np.array_equal(x, y), k
PYEOF

finish
