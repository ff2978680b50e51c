# Sourced by tests/slurm_env.sh (a one-host Slurm) and tests/cluster_env.sh
# (Slurm across the namespace cluster's hosts): what a private test Slurm
# needs wherever it runs. A RUNNER is a command prefix that runs a command
# on the host meant (empty: this one; `cluster_on NAME`: a cluster host).
#
#   apt_get ARGS..              apt-get that waits for another apt/dpkg
#   slurm_install               install Debian's Slurm and munge if missing
#   slurm_show_logs DIR         the last lines of DIR's *.log (for failures)
#   slurm_daemon DIR WHAT CMD.. start a daemon; on failure say so, show logs
#   slurm_munged DIR [RUNNER..] a munged with its own key and socket in DIR
#   slurm_node_hw               this machine's NodeName parameters, no name
#   slurm_conf_common DIR       the slurm.conf lines every test Slurm shares
#   slurm_wait_idle DIR N [RUNNER..]  wait until N nodes are idle

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
    echo "apt_get: apt is busy (another process holds its lock); waiting (try $try)"
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
    echo "slurm_install: ${missing[*]} missing, and installing needs root"
    return 1
  fi
  echo "slurm_install: installing ${missing[*]}"
  apt_get update && apt_get install -y --no-install-recommends "${missing[@]}"
}

slurm_show_logs() {
  local f
  for f in "$1"/*.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 40 lines)"
    tail -40 "$f"
  done
}

# slurm_daemon DIR WHAT CMD..: CMD starts a daemon that forks into the
# background; when CMD fails, name WHAT and show the logs in DIR.
slurm_daemon() {
  local dir=$1 what=$2
  shift 2
  "$@" && return 0
  echo "slurm: $what did not start"
  slurm_show_logs "$dir"
  return 1
}

# slurm_munged DIR [RUNNER..]: a new key, the socket in DIR/munge. Slurm's
# daemons and clients find this munged through AuthInfo (slurm_conf_common).
slurm_munged() {
  local d=$1
  shift
  mkdir -p "$d/munge"
  chmod 755 "$d" "$d/munge" # munged refuses a socket directory others may write
  head -c 1024 /dev/urandom >"$d/munge.key"
  chmod 600 "$d/munge.key"
  slurm_daemon "$d" munged "$@" munged --force --key-file="$d/munge.key" \
    --socket="$d/munge/munge.socket" --pid-file="$d/munged.pid" --log-file="$d/munged.log" \
    --seed-file="$d/munge.seed"
}

# slurm_node_hw: this machine as slurmd sees it (sockets, cores, threads)
# for a NodeName line, with RealMemory a little below the real size so that
# no node is drained for it. Every test node shares the machine's cores.
slurm_node_hw() {
  local node mem
  node=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //; s/ UpTime=.*//')
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/" <<<"$node"
}

# slurm_conf_common DIR: the slurm.conf lines that do not depend on the
# hosts, for a Slurm whose munged, state, controller pid and log are in DIR.
# The caller adds the cluster's name, hosts, ports, slurmd's files,
# MinJobAge, its nodes and partition.
# cred_expire: Slurm holds a requeued job back for up to cred_expire + 1
# seconds (default 120) so that old credentials cannot start it twice;
# 10 s is margin enough here.
slurm_conf_common() {
  cat <<CONF
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$1/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$1/state
SlurmctldPidFile=$1/slurmctld.pid
SlurmctldLogFile=$1/slurmctld.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$1/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/builtin
ReturnToService=2
JobRequeue=1
KillWait=5
InactiveLimit=0
OverTimeLimit=0
CONF
}

# slurm_wait_idle DIR N [RUNNER..]: within 60 s, N nodes idle (or mixed)
# as sinfo run through RUNNER reports; else sinfo's node list and DIR's
# logs, and status 1.
slurm_wait_idle() {
  local dir=$1 want=$2 idle end=$((SECONDS + 60))
  shift 2
  while :; do
    idle=$("$@" sinfo -h -N -o '%N %t' 2>/dev/null | grep -cE ' (idle|mix)$' || true)
    [ "${idle:-0}" -eq "$want" ] && return 0
    if [ $SECONDS -ge $end ]; then
      echo "slurm: $want node(s) did not all become idle within 60 s:"
      "$@" sinfo -N -l
      slurm_show_logs "$dir"
      return 1
    fi
    sleep 0.5
  done
}
