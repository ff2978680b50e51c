#!/usr/bin/env bash
# Damaged inputs: a clear error or a documented recovery, never a crash and
# never a silently wrong number.
#  1. checkpoints: garbled, truncated, another run's, another program
#     version's, not a checkpoint at all: a warning line, the run restarts
#     from step 0 and ends with the numbers of an uninterrupted run; a sound
#     checkpoint still resumes.
#  2. result files (a grid with saved models and a closed loop): truncated
#     or overwritten with garbage, with a journal (rebuilt from it, the
#     damaged file kept) and without (refused with exit 2, the file
#     untouched); a bit flipped in a curve, in /selfcorrect and in a saved
#     model (the row's checksum fails: status and the Python loader count it
#     pending, `icasweep repair` makes it pending, the next sweep reruns it);
#     `icasweep repair` putting the journal's results in without running
#     anything; a journal record that is garbled (ignored with a warning,
#     its run redone).
#  3. grid files: binary garbage, NUL bytes, deep nesting, a huge file,
#     aliases: exit 2 with file:line:column, nothing created.
set -u
source "$(dirname "$0")/lib.sh" || exit 1
use_mpi
use_mpi_singletons
make_work
# exit statuses 0..4 are the program's; anything else (a signal, a
# sanitizer's abort) is a crash
crashed() { [ "$1" -gt 4 ]; }

# -- 1. checkpoints ---------------------------------------------------------------
tiny=(--layers 1 --heads 2 --embd 8 --points 5 --steps 20 --batch 4 --eval-batch 4 -q)
"$BIN" train "${tiny[@]}" -o "$work/ref.h5" 2>/dev/null || bad "reference run"
"$BIN" train "${tiny[@]}" --seed 1 -o "$work/ref1.h5" 2>/dev/null || bad "reference run, seed 1"
# a checkpoint left at step 10: kill the run at its second checkpoint
make_ckpt() {  # make_ckpt PATH [extra flags]: a checkpoint at step 10 in PATH
  local path=$1; shift
  local at
  rm -f "$path"
  at=$(ICAS_FAULT_TRACE=1 "$BIN" train "${tiny[@]}" "$@" --checkpoint "$path" --checkpoint-every 5 \
       -o "$work/ctrace.h5" --force 2>&1 | grep "checkpoint create" | sed -n 3p | sed 's/fault step \([0-9]*\):.*/\1/')
  rm -f "$path" "$work/ctrace.h5"
  [ -n "$at" ] || { bad "no third checkpoint in the trace"; return; }
  ICAS_FAULT_KILL_AT=$at "$BIN" train "${tiny[@]}" "$@" --checkpoint "$path" --checkpoint-every 5 \
    -o "$work/killed.h5" 2>/dev/null
  rm -f "$work"/killed.h5*
  [ -s "$path" ] || bad "no checkpoint made at step $at"
}
make_ckpt "$work/good.ckpt"
make_ckpt "$work/other.ckpt" --seed 1
"$BIN" train "${tiny[@]}" --checkpoint "$work/good.ckpt" -o "$work/resumed.h5" 2>"$work/log"
rc=$?
[ $rc -eq 0 ] && ! grep -q warning "$work/log" && compare_results "$work/ref.h5" "$work/resumed.h5" --require-done >/dev/null \
  && ok "a sound checkpoint resumes to the uninterrupted numbers" || bad "sound checkpoint: exit $rc, $(cat "$work/log")"

size=$(stat -c %s "$work/other.ckpt")
for kind in garbled truncated other_run other_version garbage empty; do
  make_ckpt "$work/c.ckpt"
  case $kind in
    garbled) printf 'XXXXXXXXXXXXXXXX' | dd of="$work/c.ckpt" bs=1 seek=$((size / 2)) conv=notrunc status=none; want="checksum" ;;
    truncated) truncate -s $((size / 2)) "$work/c.ckpt"; want="truncated" ;;
    other_run) cp "$work/other.ckpt" "$work/c.ckpt"; want="holds run" ;;
    other_version) printf '0.0.0-other\0' | dd of="$work/c.ckpt" bs=1 seek=28 conv=notrunc status=none; want="written by icasweep 0.0.0-other" ;;
    garbage) head -c 5000 /dev/urandom >"$work/c.ckpt"; want="not a checkpoint" ;;
    empty) : >"$work/c.ckpt"; want="not a checkpoint" ;;
  esac
  "$BIN" train "${tiny[@]}" --checkpoint "$work/c.ckpt" -o "$work/$kind.h5" 2>"$work/log"
  rc=$?
  if [ $rc -eq 0 ] && grep -q "warning: .*$want.*restarts from step 0" "$work/log" \
     && [ "$(grep -c warning "$work/log")" -eq 1 ] \
     && compare_results "$work/ref.h5" "$work/$kind.h5" --require-done >/dev/null; then
    ok "checkpoint $kind: one warning line, restarted from step 0, uninterrupted numbers"
  else
    bad "checkpoint $kind: exit $rc, $(cat "$work/log")"
  fi
done

# -- 2. result files ----------------------------------------------------------------
cat >"$work/grid.yaml" <<'YAML'
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
seeds: [0, 1]
checkpoint_every: 3
save_model: true
selfcorrect:
  rounds: 2
  k0: [1]
  q: [0, 1]
axes:
  attention: [softmax, linear]
YAML
sweep() { "$BIN" sweep "$work/grid.yaml" -o "$1" -q --heartbeat 0; }
sweep "$work/sref.h5" 2>/dev/null || bad "reference sweep"
# a sweep stopped with 2 results in file and journal: kill at its 3rd
# journal write (one rank: one result per write)
at=$(ICAS_FAULT_TRACE=1 sweep "$work/strace.h5" 2>&1 | grep "journal write" | sed -n 3p | sed 's/fault step \([0-9]*\):.*/\1/')
[ -n "$at" ] || bad "no third journal write in the trace"
for kind in truncated garbage zeroed; do
  f=$work/result_$kind.h5
  ICAS_FAULT_KILL_AT=$at sweep "$f" 2>/dev/null
  [ "$(ls -d "$f".journal* | wc -l)" -eq 1 ] || bad "$kind: the killed sweep left $(ls -d "$f".journal*), want one journal file"
  fsize=$(stat -c %s "$f")
  case $kind in
    truncated) truncate -s $((fsize / 3)) "$f" ;;
    garbage) head -c "$fsize" /dev/urandom >"$f" ;;
    zeroed) dd if=/dev/zero of="$f" bs=1 seek=0 count=512 conv=notrunc status=none ;;
  esac
  "$BIN" status "$f" >"$work/st" 2>&1
  rc=$?
  [ $rc -eq 4 ] && grep -q "DAMAGED" "$work/st" && grep -q "holds 2 recorded results" "$work/st" \
    && ok "status of a $kind file with a journal: damaged, rebuilt from 2 results next time" \
    || bad "status of a $kind file: exit $rc, $(cat "$work/st")"
  sweep "$f" 2>"$work/log"
  rc=$?
  [ $rc -eq 0 ] && grep -q "is damaged.*rebuilding it from 2 results" "$work/log" && [ -e "$f.damaged" ] \
    && compare_results "$work/sref.h5" "$f" --require-done >/dev/null \
    && ok "$kind result file: rebuilt from the journal, damaged copy kept, identical numbers" \
    || bad "$kind result file with journal: exit $rc, $(cat "$work/log")"
done

# without a journal (a finished sweep removes it): refused, untouched
cp "$work/sref.h5" "$work/done.h5"
truncate -s 5000 "$work/done.h5"
cp "$work/done.h5" "$work/done.copy"
sweep "$work/done.h5" 2>"$work/log"
rc=$?
[ $rc -eq 2 ] && grep -q "is damaged.*no result journal" "$work/log" && cmp -s "$work/done.h5" "$work/done.copy" \
  && ok "damaged file without a journal: exit 2, named, untouched" || bad "damaged, no journal: exit $rc, $(cat "$work/log")"
"$BIN" status "$work/done.h5" >"$work/st" 2>&1
rc=$?
[ $rc -eq 4 ] && grep -q "DAMAGED" "$work/st" && ok "status names it damaged" || bad "status: exit $rc, $(cat "$work/st")"

# numbers changed in place (a bit flip) in a curve, in /selfcorrect, in a
# saved model: caught by the row checksum, counted pending by status and by
# the Python loader, made pending by repair, rerun by the next sweep
loader_pending() {  # loader_pending FILE ROW: the loader warns and loads ROW as pending
  $PY - "$1" "$2" <<'PYEOF'
import os, sys, warnings
sys.path.insert(0, os.environ["ICAS_SOURCE_DIR"] + "/analysis")
import icaresults
path, row = sys.argv[1], int(sys.argv[2])
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    res = icaresults.load(path)
said = [str(x.message) for x in w if f"row {row} " in str(x.message) and "checksum" in str(x.message)]
ok = res.unsound_rows == (row,) and res.runs["status"][row] == "pending" and said
print(said[0] if said else f"no warning; unsound rows {res.unsound_rows}")
sys.exit(0 if ok else 1)
PYEOF
}
for part in eval/gd_err selfcorrect/err model; do
  f=$work/flip_${part//\//_}.h5
  cp "$work/sref.h5" "$f"
  $PY - "$f" "$part" <<'PYEOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    if sys.argv[2] == "model":
        d = f["models"][f["runs"]["run_id"][1].decode()]["read_in.weight"]
    else:
        d = f[sys.argv[2]]
    a = d[()]
    flat = (a[1] if sys.argv[2] != "model" else a).reshape(-1)
    flat[0] = np.nextafter(flat[0], np.float32(2), dtype=np.float32)
    d[...] = a
PYEOF
  "$BIN" status "$f" >"$work/st" 2>&1
  if grep -q "3 done" "$work/st" && grep -q "row 1 .*checksum" "$work/st"; then
    ok "a bit flipped in $part of row 1 fails the row checksum in status"
  else
    bad "status of a bit flipped in $part: $(cat "$work/st")"
  fi
  # the loader reads no models; the row's checksum covers its model_checksum
  if [ $part != model ]; then
    loader_pending "$f" 1 >"$work/lp" && ok "the loader says so and loads the row as pending: $(head -c 150 "$work/lp")" \
      || bad "loader after a bit flipped in $part: $(cat "$work/lp")"
  fi
  "$BIN" repair "$f" >"$work/rep" 2>&1
  rc=$?
  "$BIN" status "$f" >"$work/st" 2>&1
  [ $rc -eq 0 ] && grep -q "3 done.*1 pending" "$work/st" && ! grep -q "without its numbers" "$work/st" \
    && ok "repair made the damaged row pending without running anything" \
    || bad "repair after a bit flipped in $part: exit $rc, $(cat "$work/rep" "$work/st")"
  sweep "$f" 2>"$work/log"
  [ $? -eq 0 ] && compare_results "$work/sref.h5" "$f" --require-done >/dev/null \
    && ok "the damaged row is rerun to the right numbers" || bad "flip resume: $(cat "$work/log")"
done

# repair: the journal's results put in without running anything
f=$work/rep.h5
ICAS_FAULT_KILL_AT=$at sweep "$f" 2>/dev/null
truncate -s 4000 "$f"
"$BIN" repair "$f" >"$work/rep" 2>&1
rc=$?
"$BIN" status "$f" >"$work/st" 2>&1
[ $rc -eq 0 ] && grep -q "rebuilt from the journal" "$work/rep" && grep -q "2 done.*2 pending" "$work/st" \
  && [ -e "$f.damaged" ] && ok "repair rebuilt a truncated file from its journal: $(head -1 "$work/st")" \
  || bad "repair of a truncated file: exit $rc, $(cat "$work/rep" "$work/st")"
sweep "$f" 2>"$work/log"
[ $? -eq 0 ] && compare_results "$work/sref.h5" "$f" --require-done >/dev/null \
  && ok "the sweep after the repair finished to identical numbers" || bad "after repair: $(cat "$work/log")"

# a garbled journal record: ignored with a warning, its run redone
ICAS_FAULT_KILL_AT=$at sweep "$work/j.h5" 2>/dev/null
jsize=$(stat -c %s "$work/j.h5.journal")
printf 'garbage' | dd of="$work/j.h5.journal" bs=1 seek=$((jsize - 60)) conv=notrunc status=none
rm -f "$work/j.h5"   # force the rebuild to use the journal
sweep "$work/j.h5" 2>"$work/log"
rc=$?
[ $rc -eq 0 ] && grep -q "warning: .*damaged journal record" "$work/log" \
  && grep -q "rebuilding it from 1 result in" "$work/log" \
  && compare_results "$work/sref.h5" "$work/j.h5" --require-done >/dev/null \
  && ok "a garbled journal record is ignored with a warning and its run redone" \
  || bad "garbled journal record: exit $rc, $(cat "$work/log")"

# -- 3. grid files --------------------------------------------------------------------
grid_refused() {  # grid_refused NAME WANT: exit 2, located message, nothing created
  local name=$1 want=$2
  for cmd in plan sweep; do
    if [ $cmd = plan ]; then "$BIN" plan "$work/$name" >/dev/null 2>"$work/log"
    else "$BIN" sweep "$work/$name" -o "$work/never.h5" 2>"$work/log"; fi
    local rc=$?
    if crashed $rc || [ $rc -ne 2 ] || ! grep -q "$want" "$work/log" || [ -e "$work/never.h5" ]; then
      bad "grid $name ($cmd): exit $rc, $(head -c 600 "$work/log")"; return
    fi
  done
  ok "grid $name: exit 2, $(grep -m1 -o "$want.*" "$work/log" | head -c 100)"
}
head -c 4096 /dev/urandom >"$work/random.yaml"; printf '\x89PNG\r\n\x1a\n\x00\x00' >>"$work/random.yaml"
grid_refused random.yaml "random.yaml:[0-9]*:[0-9]*:"
printf 'settings:\n  layers: 2\x00\x01\x02\n' >"$work/nul.yaml"
grid_refused nul.yaml "nul.yaml:2:12: a NUL byte"
printf '\xff\xfe\xfd not utf-8\n' >"$work/utf.yaml"
grid_refused utf.yaml "utf.yaml:1:1:"
$PY -c "print('settings: ' + '[' * 100000 + ']' * 100000)" >"$work/deep.yaml"
grid_refused deep.yaml "deep.yaml:[0-9]*:[0-9]*:"
$PY -c "print('axes:\n  layers: ' + '{a: ' * 20000 + '1' + '}' * 20000)" >"$work/deepmap.yaml"
grid_refused deepmap.yaml "deepmap.yaml:[0-9]*:[0-9]*:"
printf 'a: &a [*a]\nsettings: *a\n' >"$work/alias.yaml"
grid_refused alias.yaml "alias.yaml:[0-9]*:[0-9]*:"
$PY -c "print('# ' + 'x' * (17 << 20))" >"$work/huge.yaml"
grid_refused huge.yaml "huge.yaml: cannot open: File too large"
printf 'settings:\n  dims: 65\n  layers: 2\n' >"$work/dims.yaml"
grid_refused dims.yaml "dims.yaml:2:9: .*dims"
printf 'settings:\n  points: 10000\n' >"$work/points.yaml"
grid_refused points.yaml "points.yaml:[0-9]*:[0-9]*: .*exceeds 2147483647"

finish
