#!/usr/bin/env bash
# Disk full and I/O errors (a grid with saved models and a closed loop):
# the sweep stops at once with exit 4 and a
# message naming the file and the error, loses no run recorded before,
# leaks no HDF5 handle (HDF5 would print "infinite loop closing library"),
# and the same command finishes once the cause is gone.
#  1. injected: ENOSPC or EIO at many write steps (fault.h), one rank;
#  2. real: a 2 MiB tmpfs in a private mount namespace fills up under a
#     2-rank and a 1-rank sweep; then it is grown and the sweep resumed.
set -u
source "$(dirname "$0")/lib.sh" || exit 1
use_mpi
use_mpi_singletons
make_work
at_exit 'umount "$work/small" 2>/dev/null'

cat >"$work/grid.yaml" <<'YAML'
settings:
  dims: 5
  points: 8
  layers: 2
  heads: 2
  embd: 64
  steps: 20
  batch: 8
  lr: 1.0e-3
  eval_batch: 8
eval_noise: [0, 1]
seeds: [0, 1, 2, 3]
checkpoint_every: 10
save_model: true
selfcorrect:
  rounds: 2
  k0: [1]
  q: [0, 1]
YAML
"$BIN" sweep "$work/grid.yaml" -o "$work/ref.h5" -q --heartbeat 0 2>/dev/null || { bad "reference sweep"; finish; }
ICAS_FAULT_TRACE=1 "$BIN" sweep "$work/grid.yaml" -o "$work/count.h5" -q --heartbeat 0 \
  2>"$work/trace.log"
total=$(grep -c "^fault step" "$work/trace.log")
# Every 13th step, and every reopening of the result file after a journal
# entry (its first HDF5 write follows the journal's directory fsync), where
# a full disk once read as "not a readable HDF5 file".
steps=$( { seq 1 13 "$total"
           awk '/^fault step/ { if (prev ~ /fsync directory/ && $0 ~ /hdf5/) { sub(":", "", $3); print $3 } prev = $0 }' \
             "$work/trace.log"; } | sort -n | uniq)

# -- 1. injected errors -----------------------------------------------------------
n=0; wrong=0
for N in $steps; do
  for e in ENOSPC EIO; do
    f=$work/inj_${N}_$e.h5
    ICAS_FAULT_ERRNO_AT=$N:$e "$BIN" sweep "$work/grid.yaml" -o "$f" -q --heartbeat 0 2>"$work/inj.log"
    rc=$?
    want="No space left on device"; [ $e = EIO ] && want="Input/output error"
    if [ $rc -ne 4 ] || ! grep -q "$(basename "$f").*: $want" "$work/inj.log"; then
      wrong=$((wrong + 1)); bad "$e at step $N: exit $rc: $(cat "$work/inj.log")"
    elif grep -q "infinite loop\|HDF5-DIAG" "$work/inj.log"; then
      wrong=$((wrong + 1)); bad "$e at step $N: HDF5 complained: $(cat "$work/inj.log")"
    elif grep -q "row [0-9]* failed" "$work/inj.log"; then
      wrong=$((wrong + 1)); bad "$e at step $N: a run was marked failed: $(cat "$work/inj.log")"
    fi
    "$BIN" sweep "$work/grid.yaml" -o "$f" -q --heartbeat 0 2>"$work/inj2.log"
    rc=$?
    if [ $rc -ne 0 ] || ! compare_results "$work/ref.h5" "$f" --require-done >/dev/null; then
      wrong=$((wrong + 1)); bad "$e at step $N, then resume: exit $rc: $(cat "$work/inj2.log")"
    fi
    n=$((n + 1))
  done
done
[ $wrong -eq 0 ] && ok "$n injected ENOSPC/EIO errors across $total write steps: exit 4 naming file and error, no HDF5 leak, resumed to identical numbers"

# -- 2. a real full file system ------------------------------------------------------
if ! unshare -m --propagation private true 2>/dev/null; then
  echo "skip: no mount namespaces here (needs root); the injected errors above still ran"
else
  for np in 2 1; do
    cat >"$work/full.sh" <<EOF
set -u
mkdir -p "$work/small"
mount -t tmpfs -o size=2m tmpfs "$work/small" || exit 90
run() { if [ $np -gt 1 ]; then $(printf '%q ' "${MPIRUN[@]}")-np $np "$BIN" "\$@"; else "$BIN" "\$@"; fi; }
run sweep "$work/grid.yaml" -o "$work/small/r.h5" --heartbeat 0 2>"$work/full1.log"
echo \$? >"$work/full1.rc"
"$BIN" status "$work/small/r.h5" >"$work/full.status" 2>&1
mount -o remount,size=64m "$work/small"
run sweep "$work/grid.yaml" -o "$work/small/r.h5" --heartbeat 0 2>"$work/full2.log"
echo \$? >"$work/full2.rc"
cp "$work/small/r.h5" "$work/full.h5"
ls -A "$work/small" >"$work/full.ls"
umount "$work/small"
EOF
    unshare -m --propagation private bash "$work/full.sh"
    rc1=$(cat "$work/full1.rc" 2>/dev/null); rc2=$(cat "$work/full2.rc" 2>/dev/null)
    if [ "$rc1" = 4 ] && grep -q "r.h5[^ ]*: .*No space left on device" "$work/full1.log" \
       && ! grep -q "infinite loop\|HDF5-DIAG\| failed:" "$work/full1.log"; then
      ok "$np rank(s), file system full: exit 4, $(grep -o '[^ ]*: [^:]*No space left on device' "$work/full1.log" | head -1)"
    else
      bad "$np rank(s), file system full: exit $rc1: $(cat "$work/full1.log")"
    fi
    grep -q "done" "$work/full.status" && ok "$np rank(s): status reads the file left by the full disk: $(head -1 "$work/full.status")" \
      || bad "$np rank(s): status after ENOSPC: $(cat "$work/full.status")"
    [ "$rc2" = 0 ] && compare_results "$work/ref.h5" "$work/full.h5" --require-done >/dev/null \
      && [ "$(cat "$work/full.ls")" = "r.h5" ] \
      && ok "$np rank(s): with space back the same command finished, identical numbers, journal removed" \
      || bad "$np rank(s): resume with space: exit $rc2: $(cat "$work/full2.log"); left: $(cat "$work/full.ls")"
  done
fi

finish
