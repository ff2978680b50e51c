# Sourced by the tests/test_*.sh scripts for what they share; each script
# keeps its own checks. Safe under `set -u` and under `set -euo pipefail`.
#
#   source "$(dirname "$0")/lib.sh" [--no-binary] || exit 1
#
#   BIN SRC PY            the binary under test ($ICASWEEP; not needed with
#                         --no-binary), the source tree ($ICAS_SOURCE_DIR),
#                         the Python that has h5py
#   ok [TEXT]             count a passed check (and print "ok: TEXT" if given)
#   bad TEXT              count a failed check and print "FAIL: TEXT"
#   finish                print the counts and exit: 0 only if nothing failed
#   at_exit CMD           eval CMD when the script exits, the last added first
#   make_work             $work: a new scratch directory, removed on exit
#   use_mpi               local MPI runs: root allowed, one OpenMP thread a
#                         rank, $MPIRUN (shared memory, oversubscribed)
#   use_mpi_singletons    one-rank runs without mpirun start as isolated
#                         MPI singletons
#   compare_results A B [--require-done]   tests/compare_results.py: exit 0
#                         when both files hold the same numbers
#   all_done_once FILE ROWS   FILE has ROWS rows, every one done, once, with
#                         finite errors
#   has_entries DIR N     DIR exists and holds at least N entries
#   poll LIMIT WHAT CMD.. run CMD (its output discarded) until it
#                         succeeds, every $POLL_EVERY seconds (0.1); after
#                         LIMIT whole seconds it counts a failure, "timed
#                         out after LIMIT s waiting for WHAT", and returns 1

TEST_NAME=$(basename "$0" .sh)
SRC=${ICAS_SOURCE_DIR:?ICAS_SOURCE_DIR must point to the source tree}
PY=/usr/bin/python3
if [ "${1:-}" != --no-binary ]; then
  BIN=${ICASWEEP:?ICASWEEP must point to the binary}
fi
# poll measures its deadline with EPOCHREALTIME; without it (bash < 5) a
# deadline could never pass
if [ -z "${EPOCHREALTIME:-}" ]; then
  echo "FAIL: $TEST_NAME needs bash 5 or later (for EPOCHREALTIME)"
  exit 1
fi

pass=0
fail=0
ok() {
  pass=$((pass + 1))
  [ $# -eq 0 ] || echo "ok: $*"
}
bad() {
  echo "FAIL: $*"
  fail=$((fail + 1))
}
finish() {
  echo "$TEST_NAME: $pass passed, $fail failed in $SECONDS s"
  [ "$fail" -eq 0 ]
  exit
}

# Every hook runs even when one fails; the script's exit status is kept
# (bash restores it after an EXIT trap that does not call exit).
_lib_exit_hooks=()
at_exit() { _lib_exit_hooks=("$1" "${_lib_exit_hooks[@]}"); }
_lib_run_exit_hooks() {
  local hook
  for hook in "${_lib_exit_hooks[@]}"; do
    eval "$hook" || true
  done
}
trap _lib_run_exit_hooks EXIT

make_work() {
  work=$(mktemp -d) || { echo "FAIL: $TEST_NAME: mktemp -d failed"; exit 1; }
  at_exit 'rm -rf "$work"'
}

# Many ranks share this machine's few cores: oversubscribed, unbound, one
# thread each, talking through shared memory only.
# Open MPI's session directory goes under a directory of this test's own:
# the shared default (/tmp/ompi.HOST.UID) was seen removed by one test's
# cleanup while another test's mpirun was creating its files in it.
use_mpi() {
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
  if [ -z "${_lib_ompi_tmp:-}" ]; then
    _lib_ompi_tmp=$(mktemp -d "${TMPDIR:-/tmp}/icas-ompi.XXXXXX") \
      || { echo "FAIL: $TEST_NAME: mktemp -d failed"; exit 1; }
    at_exit 'rm -rf "$_lib_ompi_tmp"'
    export OMPI_MCA_orte_tmpdir_base=$_lib_ompi_tmp
  fi
  MPIRUN=(mpirun --oversubscribe --bind-to none --mca btl self,vader --mca pml ob1)
}

# A one-rank sweep started without mpirun initialises MPI as an isolated
# singleton: 0.2 s instead of 0.8 s a start, which tests that start the
# binary hundreds of times add up.
use_mpi_singletons() {
  export OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1
}

compare_results() { "$PY" "$SRC/tests/compare_results.py" "$@"; }

all_done_once() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
runs = f["runs"][:]
assert len(runs) == int(sys.argv[2]), len(runs)
assert (runs["status"] == b"done").all(), runs["status"]
assert len(set(runs["run_id"])) == len(runs)
assert np.isfinite(f["eval/tf_err"][()]).all() and np.isfinite(f["eval/gd_err"][()]).all()
PYEOF
}

has_entries() {
  local n
  [ -d "$1" ] || return 1
  n=$(ls -A "$1" | wc -l)
  [ "$n" -ge "$2" ]
}

poll() {
  local limit=$1 what=$2 now end
  shift 2
  # microseconds since the epoch: EPOCHREALTIME without its decimal
  # separator (which the locale picks)
  end=${EPOCHREALTIME//[!0-9]/}
  end=$((end + limit * 1000000))
  until "$@" >/dev/null 2>&1; do
    now=${EPOCHREALTIME//[!0-9]/}
    if [ "$now" -ge "$end" ]; then
      bad "timed out after $limit s waiting for $what"
      return 1
    fi
    sleep "${POLL_EVERY:-0.1}"
  done
}
