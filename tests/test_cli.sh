#!/usr/bin/env bash
# `icasweep train`: bad input gives one line naming the flag and value, exit
# status 2 and no file (and a bad silence limit for `icasweep sweep`); a diverging run is recorded and exits 1; a good run
# writes a file h5py reads; --help documents every flag.
set -u
source "$(dirname "$0")/lib.sh" || exit 1
make_work

tiny=(--layers 1 --heads 2 --embd 8 --points 5 --steps 3 --batch 4 --eval-batch 4 -q)

# expect_usage "expected text" args...: exit 2, one line, naming the text, no file
expect_usage() {
  local want=$1; shift
  rm -f "$work/out.h5"
  "$BIN" train "$@" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  local lines; lines=$(wc -l <"$work/stderr")
  if [ $rc -ne 2 ]; then bad "train $*: exit $rc, want 2"; return; fi
  if [ "$lines" -ne 1 ]; then bad "train $*: $lines lines of error, want 1: $(cat "$work/stderr")"; return; fi
  if ! grep -qF -- "$want" "$work/stderr"; then bad "train $*: message lacks '$want': $(cat "$work/stderr")"; return; fi
  if ls "$work"/out.h5* >/dev/null 2>&1; then bad "train $*: left a file behind"; return; fi
  ok
}

expect_usage "--heads 5" "${tiny[@]}" --heads 5 --embd 96 -o "$work/out.h5"
expect_usage "--layers 0" "${tiny[@]}" --layers 0 -o "$work/out.h5"
expect_usage "--embd -8" "${tiny[@]}" --embd -8 -o "$work/out.h5"
expect_usage "--steps 0" "${tiny[@]}" --steps 0 -o "$work/out.h5"
expect_usage "--steps -5" "${tiny[@]}" --steps -5 -o "$work/out.h5"
expect_usage "--batch 0" "${tiny[@]}" --batch 0 -o "$work/out.h5"
expect_usage "--dims 0" "${tiny[@]}" --dims 0 -o "$work/out.h5"
expect_usage "--points 2" "${tiny[@]}" --points 2 -o "$work/out.h5"
expect_usage "--eval-batch 0" "${tiny[@]}" --eval-batch 0 -o "$work/out.h5"
expect_usage "--attention sigmoid" "${tiny[@]}" --attention sigmoid -o "$work/out.h5"
expect_usage "--loss mse" "${tiny[@]}" --loss mse -o "$work/out.h5"
expect_usage "--ffn maybe" "${tiny[@]}" --ffn maybe -o "$work/out.h5"
expect_usage "--train-noise 1.5" "${tiny[@]}" --train-noise 1.5 -o "$work/out.h5"
expect_usage "--train-noise -0.1" "${tiny[@]}" --train-noise -0.1 -o "$work/out.h5"
expect_usage "--eval-noise 2" "${tiny[@]}" --eval-noise 0,2 -o "$work/out.h5"
expect_usage "--eval-noise 0.5: listed twice" "${tiny[@]}" --eval-noise 0,0.5,0.50 -o "$work/out.h5"
expect_usage "--lr abc" "${tiny[@]}" --lr abc -o "$work/out.h5"
expect_usage "--layers 2x" "${tiny[@]}" --layers 2x -o "$work/out.h5"
expect_usage "--bogus" "${tiny[@]}" --bogus 3 -o "$work/out.h5"
expect_usage "-o PATH is required" "${tiny[@]}"
# sizes whose products the engine keeps in an int or on the stack (README "Limits")
expect_usage "--dims 65: must be between 1 and 64" "${tiny[@]}" --dims 65 -o "$work/out.h5"
expect_usage "attention scores of one layer" "${tiny[@]}" --points 10000 -o "$work/out.h5"
expect_usage "parameters (sent as one MPI message)" "${tiny[@]}" --embd 65536 --heads 1 -o "$work/out.h5"
expect_usage "evaluation tokens" "${tiny[@]}" --eval-batch 1000000 --points 1000 -o "$work/out.h5"
expect_usage "activations of one layer's MLP" "${tiny[@]}" --embd 4096 --heads 1 --layers 1 --points 6000 -o "$work/out.h5"
expect_usage "--layers 1025" "${tiny[@]}" --layers 1025 -o "$work/out.h5"
# deep models run (the table of tensor views is sized by the model)
"$BIN" train --layers 50 --heads 2 --embd 8 --points 3 --steps 2 --batch 2 --eval-batch 2 -q \
  -o "$work/deep.h5" 2>"$work/stderr"
if [ $? -eq 0 ]; then ok; else bad "--layers 50: $(cat "$work/stderr")"; fi
expect_usage "$work/nodir/out.h5" "${tiny[@]}" -o "$work/nodir/out.h5"
if [ -e "$work/nodir" ]; then bad "created a directory"; else ok; fi

# the closed loop's flags (SPEC "Self-correction in a closed loop")
expect_usage "--sc-rounds -1" "${tiny[@]}" --sc-rounds -1 -o "$work/out.h5"
expect_usage "--sc-rounds x" "${tiny[@]}" --sc-rounds x -o "$work/out.h5"
expect_usage "--sc-k0 a" "${tiny[@]}" --sc-rounds 2 --sc-k0 a --sc-q 0 -o "$work/out.h5"
expect_usage "--sc-k0 -2" "${tiny[@]}" --sc-rounds 2 --sc-k0 -2 --sc-q 0 -o "$work/out.h5"
expect_usage "--sc-k0: expected an integer, got nothing" "${tiny[@]}" --sc-rounds 2 --sc-k0 , --sc-q 0 -o "$work/out.h5"
expect_usage "--eval-noise: an empty list" "${tiny[@]}" --eval-noise '' -o "$work/out.h5"
expect_usage "--sc-k0: at most 8 values, got 9" "${tiny[@]}" --sc-rounds 2 --sc-k0 1,1,1,1,1,1,1,1,1 --sc-q 0 -o "$work/out.h5"
expect_usage "--sc-k0 1: listed twice" "${tiny[@]}" --sc-rounds 2 --sc-k0 1,1 --sc-q 0 -o "$work/out.h5"
expect_usage "--sc-k0 2: with --sc-rounds 3, needs --points 6 or more, got 5" "${tiny[@]}" --sc-rounds 3 --sc-k0 2 --sc-q 0 -o "$work/out.h5"
expect_usage "--sc-q 1.5" "${tiny[@]}" --sc-rounds 2 --sc-k0 1 --sc-q 0,1.5 -o "$work/out.h5"
expect_usage "--sc-q nan" "${tiny[@]}" --sc-rounds 2 --sc-k0 1 --sc-q nan -o "$work/out.h5"
expect_usage "--sc-q 0: listed twice" "${tiny[@]}" --sc-rounds 2 --sc-k0 1 --sc-q 0,0 -o "$work/out.h5"
expect_usage "--sc-k0 given without --sc-rounds" "${tiny[@]}" --sc-k0 1 -o "$work/out.h5"
expect_usage "--sc-q given without --sc-rounds" "${tiny[@]}" --sc-q 0 -o "$work/out.h5"
expect_usage "--sc-rounds 2: needs --sc-k0" "${tiny[@]}" --sc-rounds 2 --sc-q 0 -o "$work/out.h5"
expect_usage "--sc-rounds 2: needs --sc-q" "${tiny[@]}" --sc-rounds 2 --sc-k0 1 -o "$work/out.h5"
expect_usage "--sc-bogus" "${tiny[@]}" --sc-bogus 1 -o "$work/out.h5"

# the grid's selfcorrect block: exit 2, the key named, FILE:LINE:COLUMN
expect_grid() {
  local want=$1 block=$2
  printf 'settings: {layers: 1, heads: 2, embd: 8, points: 8, steps: 2, batch: 4, eval_batch: 4}\n%s\n' \
    "$block" >"$work/g.yaml"
  "$BIN" plan "$work/g.yaml" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [ $rc -ne 2 ]; then bad "grid '$block': exit $rc, want 2"; return; fi
  if ! grep -qF -- "$want" "$work/stderr" || ! grep -q "g.yaml:[0-9]*:[0-9]*:" "$work/stderr"; then
    bad "grid '$block': message lacks '$want' or its place: $(cat "$work/stderr")"; return; fi
  ok
}
expect_grid "selfcorrect: expected a mapping" "selfcorrect: 5"
expect_grid "selfcorrect.rounds 0: must be at least 1" "selfcorrect: {rounds: 0, k0: [1], q: [0]}"
expect_grid "selfcorrect.rounds two: expected an integer" "selfcorrect: {rounds: two, k0: [1], q: [0]}"
expect_grid "selfcorrect.k0 -1: must be 0 or more" "selfcorrect: {rounds: 2, k0: [-1], q: [0]}"
expect_grid "selfcorrect.k0 1.5: expected an integer" "selfcorrect: {rounds: 2, k0: [1.5], q: [0]}"
expect_grid "selfcorrect.k0 2: listed twice" "selfcorrect: {rounds: 2, k0: [2, 2], q: [0]}"
expect_grid "selfcorrect.k0: at most 8 values, got 9" "selfcorrect: {rounds: 2, k0: [0,1,2,3,4,5,6,7,8], q: [0]}"
expect_grid "selfcorrect.k0: an empty list; give 1 to 8 values" "selfcorrect: {rounds: 2, k0: [], q: [0]}"
expect_grid "selfcorrect.q 1.5: must be in [0,1]" "selfcorrect: {rounds: 2, k0: [1], q: [0, 1.5]}"
expect_grid "selfcorrect.q high: expected a number" "selfcorrect: {rounds: 2, k0: [1], q: [high]}"
expect_grid "selfcorrect.q 0.5: listed twice" "selfcorrect: {rounds: 2, k0: [1], q: [0.5, 0.5]}"
expect_grid "selfcorrect: missing q" "selfcorrect: {rounds: 2, k0: [1]}"
expect_grid "selfcorrect: missing rounds" "selfcorrect: {k0: [1], q: [0]}"
expect_grid "unknown key 'qq' in selfcorrect" "selfcorrect: {rounds: 2, k0: [1], q: [0], qq: 1}"
expect_grid "selfcorrect.k0 5: with selfcorrect.rounds 3, needs points 9 or more, got 8" "selfcorrect: {rounds: 3, k0: [1, 5], q: [0]}"

# the same bad value as a flag and in a grid: one parser and one check, so
# one problem text, naming the flag on the command line and the key, at its
# FILE:LINE:COLUMN, in the grid. @name@ in the text stands for the field's
# name: --name (--sc-name for the closed loop's) or name (selfcorrect.name).
agree() {
  local problem=$1 flags=$2 block=$3 place=$4 f
  local as_flag=$problem as_key=$problem
  for f in eval_noise layers heads embd points train_noise attention; do
    as_flag=${as_flag//@$f@/--${f//_/-}}; as_key=${as_key//@$f@/$f}
  done
  for f in rounds k0 q; do
    as_flag=${as_flag//@$f@/--sc-$f}; as_key=${as_key//@$f@/selfcorrect.$f}
  done
  rm -f "$work/out.h5"
  # shellcheck disable=SC2086 # $flags is a list of words
  "$BIN" train "${tiny[@]}" $flags -o "$work/out.h5" 2>"$work/stderr"
  local rc=$?
  printf 'settings: {layers: 1, heads: 2, embd: 8, points: 5, steps: 3, batch: 4, eval_batch: 4}\n%s\n' \
    "$block" >"$work/agree.yaml"
  "$BIN" plan "$work/agree.yaml" >/dev/null 2>"$work/gstderr"
  local grc=$?
  local got_flag got_key; got_flag=$(head -1 "$work/stderr"); got_key=$(head -1 "$work/gstderr")
  if [ $rc -ne 2 ] || [ "$got_flag" != "icasweep train: $as_flag" ]; then
    bad "train $flags: exit $rc, '$got_flag', want 'icasweep train: $as_flag'"; return; fi
  if [ $grc -ne 2 ] || [ "$got_key" != "$work/agree.yaml:$place: $as_key" ]; then
    bad "grid '$block': exit $grc, '$got_key', want 'agree.yaml:$place: $as_key'"; return; fi
  ok
}
agree "@eval_noise@ 0: listed twice" "--eval-noise 0,0" "eval_noise: [0, 0]" 2:17
agree "@eval_noise@ 2: must be in [0,1]" "--eval-noise 0,2" "eval_noise: [0, 2]" 2:17
agree "@eval_noise@ x: expected a number" "--eval-noise 0.5,x" "eval_noise: [0.5, x]" 2:19
agree "@eval_noise@: at most 16 values, got 17" \
  "--eval-noise 0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.91,0.92,0.93,0.94,0.95,0.96,1" \
  "eval_noise: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 1]" 2:13
agree "@q@ 0.5: listed twice" "--sc-rounds 2 --sc-k0 1 --sc-q 0.5,0.5" \
  "selfcorrect: {rounds: 2, k0: [1], q: [0.5, 0.5]}" 2:44
agree "@k0@ -1: must be 0 or more" "--sc-rounds 2 --sc-k0 -1 --sc-q 0" \
  "selfcorrect: {rounds: 2, k0: [-1], q: [0]}" 2:31
agree "@k0@ 2: with @rounds@ 3, needs @points@ 6 or more, got 5 (k0 + rounds at most points - 1)" \
  "--sc-rounds 3 --sc-k0 2 --sc-q 0" "selfcorrect: {rounds: 3, k0: [2], q: [0]}" 2:31
agree "@rounds@ 20000: must be between 0 (no closed loop) and 10000" \
  "--sc-rounds 20000 --sc-k0 1 --sc-q 0" "selfcorrect: {rounds: 20000, k0: [1], q: [0]}" 2:23
agree "@layers@ 0: must be between 1 and 1024" "--layers 0" "axes: {layers: [1, 0]}" 2:20
agree "@heads@ 3 does not divide @embd@ 8" "--heads 3" "axes: {heads: [2, 3]}" 2:19
agree "@train_noise@ 1.5: must be in [0,1]" "--train-noise 1.5" "axes: {train_noise: [0, 1.5]}" 2:25
agree "@attention@ relu: expected softmax or linear" "--attention relu" \
  "axes: {attention: [softmax, relu]}" 2:29

# an existing file is neither clobbered nor touched without --force
echo "precious" >"$work/exists.h5"
"$BIN" train "${tiny[@]}" -o "$work/exists.h5" 2>"$work/stderr"
rc=$?
if [ $rc -eq 2 ] && grep -q "exists.h5" "$work/stderr" && grep -qx precious "$work/exists.h5"; then ok
else bad "existing output: exit $rc, $(cat "$work/stderr")"; fi
"$BIN" train "${tiny[@]}" -o "$work/exists.h5" --force 2>"$work/stderr"
if [ $? -eq 0 ] && ! grep -q precious "$work/exists.h5"; then ok; else bad "--force did not replace: $(cat "$work/stderr")"; fi

# a good run: progress on stderr, a file h5py reads into a structured array
"$BIN" train --layers 1 --heads 2 --embd 8 --points 5 --steps 4 --batch 4 --eval-batch 4 \
  --save-model -o "$work/run.h5" 2>"$work/stderr"
rc=$?
if [ $rc -eq 0 ] && grep -q "step 4/4" "$work/stderr"; then ok; else bad "good run: exit $rc, $(cat "$work/stderr")"; fi
$PY - "$work/run.h5" <<'PYEOF' || bad "result file layout"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
runs = f["runs"][:]
assert isinstance(runs, np.ndarray) and runs.dtype.names, "runs is not a structured array"
for field in ["run_id", "layers", "heads", "embd", "attention", "ffn", "loss", "train_noise",
              "lr", "batch", "steps", "seed", "status", "wall_seconds", "final_loss"]:
    assert field in runs.dtype.names, field
assert runs["status"][0] == b"done", runs["status"]
for name in ("tf_err", "gd_err", "blind_err", "pick_err"):
    assert f["eval/" + name].shape == (1, 5, 5), name
assert np.isnan(f["eval/blind_err"][0, :, 0]).all() and np.isfinite(f["eval/blind_err"][0, :, 1:]).all()
assert int(f.attrs["schema_version"]) == 2
assert f["train/loss"].shape == (1, 4) and np.isfinite(f["train/loss"][()]).all()
assert list(f["eval/noise"][()]) == [0, 0.25, 0.5, 0.75, 1]
rid = runs["run_id"][0].decode()
g = f["models"][rid]
assert g["h.0.attn.c_attn.weight"].shape == (8, 24)
assert g["read_in.weight"].shape == (5, 8) and g["wpe"].shape == (15, 8)
assert g["eval_tokens"].shape == (4, 15, 5) and g["eval_pred"].shape == (4, 5, 5)
assert g["eval_target"].shape == (4, 5)
for k in ("schema_version", "program_version", "git_revision"):
    assert k in f.attrs, k
def walk(name, obj):
    if isinstance(obj, h5py.Dataset):
        assert "description" in obj.attrs, name
f.visititems(walk)
PYEOF
[ $? -eq 0 ] && ok

# a run with a closed loop: /selfcorrect with its axes, arrays and descriptions
"$BIN" train "${tiny[@]}" --sc-rounds 3 --sc-k0 0,1 --sc-q 0,1 -o "$work/sc.h5" 2>"$work/stderr"
rc=$?
if [ $rc -eq 0 ]; then ok; else bad "closed-loop run: exit $rc, $(cat "$work/stderr")"; fi
$PY - "$work/sc.h5" <<'PYEOF' || bad "closed-loop result file layout"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
g = f["selfcorrect"]
assert list(g["q"][()]) == [0, 1] and list(g["k0"][()]) == [0, 1] and list(g["round"][()]) == [1, 2, 3]
assert g["err"].shape == (1, 2, 2, 3) and g["open_err"].shape == (1, 2, 2, 3)
assert g["critic_tau"].shape == (1, 2, 2)
assert np.isfinite(g["err"][()]).all() and np.isfinite(g["open_err"][()]).all()
for name in g:
    assert "description" in g[name].attrs, name
PYEOF
[ $? -eq 0 ] && ok
"$BIN" train "${tiny[@]}" -o "$work/nosc.h5" 2>"$work/stderr"
if $PY -c "import h5py,sys; sys.exit('selfcorrect' in h5py.File(sys.argv[1]))" "$work/nosc.h5"; then ok
else bad "a run without a closed loop has /selfcorrect"; fi

# a diverging run is recorded as such and exits 1
"$BIN" train "${tiny[@]}" --steps 20 --lr 1e30 -o "$work/div.h5" 2>"$work/stderr"
rc=$?
if [ $rc -eq 1 ] && $PY -c "import h5py,sys; r=h5py.File(sys.argv[1])['runs'][0]; sys.exit(r['status']!=b'diverged')" "$work/div.h5"
then ok; else bad "diverged run: exit $rc, $(cat "$work/stderr")"; fi

# sweep: a bad silence limit, as a flag or in the environment, is refused
# before anything starts
"$BIN" sweep "$ICAS_SOURCE_DIR/jobs/grids/smoke.yaml" -o "$work/sw.h5" --lost-after soon \
  >/dev/null 2>"$work/stderr"
rc=$?
[ $rc -eq 2 ] && grep -qF -- "--lost-after soon: expected seconds" "$work/stderr" && [ ! -e "$work/sw.h5" ] \
  && ok || bad "sweep --lost-after soon: exit $rc, $(cat "$work/stderr")"
ICASWEEP_LOST_AFTER=-1 "$BIN" sweep "$ICAS_SOURCE_DIR/jobs/grids/smoke.yaml" -o "$work/sw.h5" \
  >/dev/null 2>"$work/stderr"
rc=$?
[ $rc -eq 2 ] && grep -qF "ICASWEEP_LOST_AFTER=-1: expected seconds" "$work/stderr" && [ ! -e "$work/sw.h5" ] \
  && ok || bad "ICASWEEP_LOST_AFTER=-1: exit $rc, $(cat "$work/stderr")"
"$BIN" sweep --help | grep -q -- "--lost-after SEC" && ok || bad "sweep --help lacks --lost-after"

# --help documents every flag
"$BIN" train --help >"$work/help"
for flag in --layers --heads --embd --attention --ffn --loss --steps --batch --lr --seed \
            --train-noise --eval-noise --dims --points --eval-batch --output --force --save-model \
            --sc-rounds --sc-k0 --sc-q; do
  grep -q -- "$flag" "$work/help" || bad "--help lacks $flag"
done
ok

# `icasweep knobs`: one table row per knob, each row's flag in train --help
"$BIN" knobs >"$work/knobs"
rows=$(grep -c '^| `' "$work/knobs")
want=$(grep -c '^KNOB(' "$SRC/include/icasweep/knobs.def")
[ "$rows" -eq "$want" ] && [ "$want" -ge 14 ] && ok \
  || bad "icasweep knobs: $rows knob rows, knobs.def has $want: $(cat "$work/knobs")"
for flag in $(grep -o '^| `[a-z_]*` | `--[a-z-]*`' "$work/knobs" | grep -o -- '--[a-z-]*'); do
  grep -q -- "$flag " "$work/help" && ok || bad "train --help lacks $flag from icasweep knobs"
done
"$BIN" knobs extra >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && ok || bad "icasweep knobs extra: exit $rc, want 2"

finish
