#!/usr/bin/env bash
# Short fuzzing runs of the grid-file parser and the `train` argument parser
# (libFuzzer with ASan and UBSan, clang), about 25 s each from the seed
# corpus in fuzz/corpus; then every input in fuzz/regress (inputs that once
# crashed a target, kept as regression tests) must run clean. Builds the
# targets itself in build-fuzz (CC=clang -DICAS_FUZZ=ON). Long runs: see
# the README ("Fuzzing").
set -u
source "$(dirname "$0")/lib.sh" --no-binary || exit 1
SECONDS_EACH=${ICAS_FUZZ_SECONDS:-25}
if ! command -v clang >/dev/null; then
  bad "clang is not installed (apt-get install -y clang libclang-rt-14-dev)"; finish
fi
build=$SRC/build-fuzz
mkdir -p "$build"
log=$build/test_fuzz_build.log
CC=clang cmake -S "$SRC" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DICAS_FUZZ=ON >"$log" 2>&1 \
  && cmake --build "$build" -j2 --target fuzz_grid fuzz_cli >>"$log" 2>&1 \
  || { bad "building the fuzz targets:"; tail -30 "$log"; finish; }
make_work
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in grid cli; do
  mkdir -p "$work/$t"
  "$build/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$work/crash-$t-" "$work/$t" "$SRC/fuzz/corpus/$t" >"$work/$t.log" 2>&1
  rc=$?
  runs=$(grep -o "stat::number_of_executed_units: [0-9]*" "$work/$t.log" | grep -o "[0-9]*$")
  if [ $rc -eq 0 ] && ! ls "$work"/crash-$t-* >/dev/null 2>&1; then
    ok "fuzz_$t: ${runs:-?} executions in ${SECONDS_EACH} s, no crash"
  else
    bad "fuzz_$t: exit $rc; the input is in fuzz/regress/$t after you copy it there:"
    grep -A25 "ERROR\|runtime error" "$work/$t.log" | head -40
    cp "$work"/crash-$t-* "$SRC/fuzz/regress/$t/" 2>/dev/null
  fi
  n=$(ls "$SRC/fuzz/regress/$t" | wc -l)
  if [ "$n" -gt 0 ]; then
    "$build/fuzz_$t" -runs=1 "$SRC"/fuzz/regress/$t/* >"$work/$t.regress.log" 2>&1 \
      && ok "fuzz_$t: $n regression inputs run clean" \
      || { bad "fuzz_$t: a regression input fails"; tail -30 "$work/$t.regress.log"; }
  fi
done
finish
