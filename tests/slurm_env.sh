# Sourced by tests/test_slurm.sh: a private, one-host Slurm with no systemd.
# munged, slurmctld and slurmd are started by hand, with their key, socket,
# state, spool, pid and log files in $SLURM_TEST_DIR and on ports that no
# site Slurm uses, and stopped by PID.
#
#   slurm_install     install Debian's Slurm and munge if missing (as root)
#   slurm_start       start the daemons; exports SLURM_CONF, SLURM_TEST_DIR
#   slurm_stop        cancel our jobs, stop the daemons (idempotent)
#   slurm_logs        print the daemons' logs (for failures)
#   wait_for S CMD..  poll CMD until it succeeds, at most S seconds
#
# A watchdog in its own session stops the daemons if the test process dies
# without running its EXIT trap (SIGKILL from a harness timeout): daemons
# left behind would keep ports and a pending job queue forever.

SLURM_PACKAGES="slurmctld slurmd slurm-client munge"

# apt_get ARGS...: apt-get that waits for another apt/dpkg to finish rather
# than failing on its lock. DPkg::Lock::Timeout covers dpkg's locks; the
# retry loop covers the lists lock `apt-get update` takes.
apt_get() {
  local try out
  for try in $(seq 1 30); do
    if out=$(DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 "$@" 2>&1); then
      return 0
    fi
    if ! grep -qiE 'lock|resource temporarily unavailable' <<<"$out"; then
      printf '%s\n' "$out" | tail -20
      return 1
    fi
    echo "slurm_env: apt is busy (another process holds its lock); waiting (try $try)"
    sleep 10
  done
  printf '%s\n' "$out" | tail -20
  return 1
}

slurm_install() {
  local p missing=()
  for p in $SLURM_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm_env: ${missing[*]} missing, and installing needs root"
    return 1
  fi
  echo "slurm_env: installing ${missing[*]}"
  apt_get update && apt_get install -y --no-install-recommends "${missing[@]}"
}

wait_for() {
  local limit=$1
  shift
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.5
  done
}

# port_free PORT: nothing listens on PORT (TCP, v4 or v6)
port_free() {
  local hex
  hex=$(printf ':%04X ' "$1")
  ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" { print $2 " " }' |
    grep -q -- "$hex"
}

slurm_logs() {
  local f
  for f in munged.log slurmctld.log slurmd.log; do
    [ -f "$SLURM_TEST_DIR/$f" ] || continue
    echo "---- $SLURM_TEST_DIR/$f (last 40 lines)"
    tail -40 "$SLURM_TEST_DIR/$f"
  done
}

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
  local T=$SLURM_TEST_DIR host node port tries=0
  chmod 755 "$T"
  host=$(hostname -s)
  mkdir -p "$T/munge" "$T/state" "$T/spool"
  chmod 755 "$T/munge" # munged refuses a socket directory others may write
  head -c 1024 /dev/urandom >"$T/munge.key"
  chmod 600 "$T/munge.key"

  _slurm_watchdog $$
  if ! munged --force --key-file="$T/munge.key" --socket="$T/munge/munge.socket" \
    --pid-file="$T/munged.pid" --log-file="$T/munged.log" --seed-file="$T/munge.seed"; then
    echo "slurm_env: munged did not start"
    slurm_logs
    return 1
  fi

  # The node as slurmd sees it (sockets, cores, threads), with RealMemory a
  # little below the real size so that the node is not drained for it.
  node=$(slurmd -C | head -1)
  local mem
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  node=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/" <<<"$node")

  # Two free neighbouring ports in 17000-17999, away from Slurm's 6817/6818.
  while :; do
    port=$((17000 + RANDOM % 999))
    port_free "$port" && port_free $((port + 1)) && break
    tries=$((tries + 1))
    [ $tries -lt 50 ] || { echo "slurm_env: no free port pair in 17000-17999"; return 1; }
  done

  # cred_expire: Slurm holds a requeued job back for cred_expire + 1 seconds
  # (default 120) so that old credentials cannot start it twice; one host
  # needs no such margin. MinJobAge: a finished job's record stays this long
  # for `scontrol show job`.
  cat >"$T/slurm.conf" <<CONF
ClusterName=icastest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$T/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$T/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/builtin
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=120
InactiveLimit=0
OverTimeLimit=0
$node State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$T/slurm.conf
  if ! slurmctld -f "$SLURM_CONF"; then
    echo "slurm_env: slurmctld did not start"
    slurm_logs
    return 1
  fi
  if ! slurmd -f "$SLURM_CONF"; then
    echo "slurm_env: slurmd did not start"
    slurm_logs
    return 1
  fi
  if ! wait_for 60 bash -c "sinfo -h -N -o %t | grep -qE '^(idle|mix)'"; then
    echo "slurm_env: the node did not become idle within 60 s"
    sinfo -N -l
    slurm_logs
    return 1
  fi
  echo "slurm_env: Slurm up on $host (ports $port-$((port + 1)), files in $T)"
}
