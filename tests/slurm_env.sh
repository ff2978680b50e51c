# Sourced by tests/test_slurm.sh: a private, one-host Slurm with no systemd.
# munged, slurmctld and slurmd are started by hand, with their key, socket,
# state, spool, pid and log files in $SLURM_TEST_DIR and on ports that no
# site Slurm uses, and stopped by PID. What it shares with the cluster's
# Slurm (tests/cluster_env.sh) is in tests/slurm_common.sh.
#
#   slurm_install     install Debian's Slurm and munge if missing (as root;
#                     from tests/slurm_common.sh)
#   slurm_start       start the daemons; exports SLURM_CONF, SLURM_TEST_DIR
#   slurm_stop        cancel our jobs, stop the daemons (idempotent)
#   slurm_logs        print the daemons' logs (for failures)
#
# A watchdog in its own session stops the daemons if the test process dies
# without running its EXIT trap (SIGKILL from a harness timeout): daemons
# left behind would keep ports and a pending job queue forever.

source "$(dirname "${BASH_SOURCE[0]}")/slurm_common.sh" || return 1

# port_free PORT: nothing listens on PORT (TCP, v4 or v6)
port_free() {
  local hex
  hex=$(printf ':%04X ' "$1")
  ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" { print $2 " " }' |
    grep -q -- "$hex"
}

slurm_logs() { slurm_show_logs "$SLURM_TEST_DIR"; }

# _slurm_kill_daemons DIR: stop the daemons whose pid files are in DIR, by
# PID: TERM, then KILL whatever is still there after 10 s.
_slurm_kill_daemons() {
  local dir=$1 d pid pids=()
  for d in slurmd slurmctld munged; do
    pid=$(cat "$dir/$d.pid" 2>/dev/null) || continue
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && pids+=("$pid")
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  kill "${pids[@]}" 2>/dev/null
  local end=$((SECONDS + 10)) alive
  while [ $SECONDS -lt $end ]; do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return 0
    sleep 0.2
  done
  kill -9 "${pids[@]}" 2>/dev/null
  return 0
}

# _slurm_cancel_all: cancel every job of this private Slurm and give their
# processes (slurmstepd, launchers, ranks) a bounded time to go: with
# proctrack/linuxproc they outlive a stopped slurmd.
_slurm_cancel_all() {
  [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ] || return 0
  timeout 10 scancel --full --quiet -u "$(id -un)" 2>/dev/null
  local end=$((SECONDS + 30))
  while [ $SECONDS -lt $end ]; do
    [ -z "$(timeout 10 squeue -h -t running,completing,configuring -o %i 2>/dev/null)" ] && break
    sleep 1
  done
  return 0
}

slurm_stop() {
  [ -n "${SLURM_TEST_DIR:-}" ] && [ -d "$SLURM_TEST_DIR" ] || return 0
  _slurm_cancel_all
  _slurm_kill_daemons "$SLURM_TEST_DIR"
  local w
  w=$(cat "$SLURM_TEST_DIR/watchdog.pid" 2>/dev/null) && [ -n "$w" ] && kill "$w" 2>/dev/null
  return 0
}

# _slurm_watchdog OWNER_PID: in its own session; once OWNER_PID has gone,
# cancel the jobs and stop the daemons.
_slurm_watchdog() {
  local owner=$1 dir=$SLURM_TEST_DIR
  setsid bash -c '
    owner=$1 dir=$2
    source "$3"
    export SLURM_CONF=$dir/slurm.conf SLURM_TEST_DIR=$dir
    trap "exit 0" TERM
    while kill -0 "$owner" 2>/dev/null; do sleep 2; done
    [ -d "$dir" ] || exit 0
    _slurm_cancel_all
    _slurm_kill_daemons "$dir"
  ' icas-slurm-watchdog "$owner" "$dir" "${BASH_SOURCE[0]}" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/watchdog.pid"
}

slurm_start() {
  SLURM_TEST_DIR=$(mktemp -d /tmp/icas-slurm.XXXXXX) || return 1
  export SLURM_TEST_DIR
  local T=$SLURM_TEST_DIR host port tries=0
  chmod 755 "$T"
  host=$(hostname -s)
  mkdir -p "$T/state" "$T/spool"

  _slurm_watchdog $$
  slurm_munged "$T" || return 1

  # Two free neighbouring ports in 17000-17999, away from Slurm's 6817/6818.
  while :; do
    port=$((17000 + RANDOM % 999))
    port_free "$port" && port_free $((port + 1)) && break
    tries=$((tries + 1))
    [ $tries -lt 50 ] || { echo "slurm_env: no free port pair in 17000-17999"; return 1; }
  done

  # MinJobAge: a finished job's record stays this long for `scontrol show
  # job`.
  {
    cat <<CONF
ClusterName=icastest
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmdSpoolDir=$T/spool
SlurmdPidFile=$T/slurmd.pid
SlurmdLogFile=$T/slurmd.log
MinJobAge=120
CONF
    slurm_conf_common "$T"
    echo "NodeName=$host $(slurm_node_hw) State=UNKNOWN"
    echo "PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP"
  } >"$T/slurm.conf"
  export SLURM_CONF=$T/slurm.conf
  slurm_daemon "$T" slurmctld slurmctld -f "$SLURM_CONF" || return 1
  slurm_daemon "$T" slurmd slurmd -f "$SLURM_CONF" || return 1
  slurm_wait_idle "$T" 1 || return 1
  echo "slurm_env: Slurm up on $host (ports $port-$((port + 1)), files in $T)"
}
