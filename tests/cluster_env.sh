# Sourced by tests/test_multinode.sh: a small cluster of hosts inside this
# machine, for as long as the test runs.
#
# A host is a network namespace, a UTS namespace (its own hostname) and a
# mount namespace in which /tmp is its own (node-local, as on a real node:
# Open MPI and Slurm's PMIx keep per-node files there under names that
# would collide), held open by an anchor process. Hosts are joined
# by veth pairs to a bridge that lives in a namespace of its own (the
# switch), so the machine's own network namespace gains no interface, no
# address and no route: all test traffic stays between these namespaces and
# their loopbacks. Apart from /tmp, every host shares the file system (as
# an NFS home would) and the PID space; DIR, and each path given to
# cluster_start, stay visible under /tmp too. The
# caller runs in a private mount namespace in which /etc/hosts is a bind
# mount of the cluster's own hosts file (cluster_start makes it), which
# every host inherits: host names resolve everywhere as on a real cluster.
#
#   cluster_missing        print what this machine lacks to build a cluster (empty: nothing)
#   cluster_start DIR [PATH..]  the switch and its bridge, /etc/hosts; state files
#                          in DIR; PATHs (the build, the sources) seen by every host
#   cluster_add_host NAME N   a host NAME with address $CLUSTER_NET.N, linked to the switch
#   cluster_on NAME CMD..  run CMD on host NAME (its network, hostname and /tmp)
#   cluster_host_pids NAME every process on host NAME
#   cluster_kill_host NAME cut the host's link, then SIGKILL every process on it
#   cluster_stop           kill every process in every namespace made, remove them
#
# A watchdog in its own session runs cluster_stop if the test process dies
# without running its EXIT trap (SIGKILL from a harness timeout).

# apt_get, slurm_install and the Slurm pieces it shares with the one-host
# Slurm of tests/slurm_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/slurm_common.sh" || return 1

CLUSTER_NET=${CLUSTER_NET:-10.213.7}   # the private test subnet, /24
CLUSTER_DIR=${CLUSTER_DIR:-}

cluster_missing() {
  local c missing=()
  for c in unshare nsenter ip sleep; do
    command -v "$c" >/dev/null 2>&1 || missing+=("command $c")
  done
  if [ "$(id -u)" -ne 0 ]; then
    missing+=("root (namespaces and veth pairs need CAP_SYS_ADMIN and CAP_NET_ADMIN)")
  elif command -v unshare >/dev/null 2>&1; then
    unshare -n -u -m true 2>/dev/null \
      || missing+=("network, UTS and mount namespaces (unshare -n -u -m fails)")
    unshare -n ip link add icas-probe0 type veth peer name icas-probe1 2>/dev/null \
      || missing+=("veth pairs (ip link add type veth fails in a new namespace)")
    unshare -n ip link add icas-probebr type bridge 2>/dev/null \
      || missing+=("bridges (ip link add type bridge fails in a new namespace)")
  fi
  [ ${#missing[@]} -eq 0 ] || printf '%s\n' "${missing[@]}"
}

# _cluster_netns PID: the identity of PID's network namespace, "net:[inode]"
_cluster_netns() { readlink "/proc/$1/ns/net" 2>/dev/null; }

# _cluster_pids_in NETNS: every process whose network namespace is NETNS
_cluster_pids_in() {
  local want=$1 p ns
  for p in /proc/[0-9]*; do
    ns=$(readlink "$p/ns/net" 2>/dev/null) || continue
    [ "$ns" = "$want" ] && echo "${p#/proc/}"
  done
}

# _cluster_kill_netns NETNS: SIGKILL every process in NETNS until none is
# left (processes may fork while we look); gives up after 10 s.
_cluster_kill_netns() {
  local want=$1 pids end=$((SECONDS + 10))
  while :; do
    pids=$(_cluster_pids_in "$want")
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null
    [ $SECONDS -ge $end ] && { echo "cluster_env: processes left in $want: $pids"; return 1; }
    sleep 0.1
  done
}

_cluster_anchor() {  # NAME: the pid holding host NAME's namespaces
  cat "$CLUSTER_DIR/ns/$1.pid" 2>/dev/null
}

cluster_on() {
  local name=$1 pid
  shift
  pid=$(_cluster_anchor "$name")
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "cluster_env: no host $name" >&2
    return 1
  fi
  nsenter --target "$pid" --net --uts --mount -- "$@"
}

cluster_host_pids() {
  local ns
  ns=$(cat "$CLUSTER_DIR/ns/$1.netns" 2>/dev/null) || return 0
  _cluster_pids_in "$ns"
}

# _cluster_new_ns NAME: an anchor process with new network, UTS and mount
# namespaces; records its pid and its namespace's identity.
_cluster_new_ns() {
  local name=$1 pid ns tries=0
  unshare --net --uts --mount --propagation private sleep infinity </dev/null >/dev/null 2>&1 &
  pid=$!
  disown "$pid"
  # unshare execs sleep in the new namespaces: wait until it has
  while :; do
    ns=$(_cluster_netns "$pid")
    [ -n "$ns" ] && [ "$ns" != "$(_cluster_netns $$)" ] && break
    tries=$((tries + 1))
    [ $tries -lt 100 ] || { echo "cluster_env: namespace for $name did not appear"; return 1; }
    sleep 0.02
  done
  echo "$pid" >"$CLUSTER_DIR/ns/$name.pid"
  echo "$ns" >"$CLUSTER_DIR/ns/$name.netns"
  echo "$ns" >>"$CLUSTER_DIR/ns/all"
}

cluster_start() {
  CLUSTER_DIR=$1
  shift
  export CLUSTER_DIR
  CLUSTER_SHARED=("$CLUSTER_DIR" "$@")
  mkdir -p "$CLUSTER_DIR/ns" "$CLUSTER_DIR/local"
  : >"$CLUSTER_DIR/hosts"
  # hosts added later append to this file, which stays the mounted one
  mount --bind "$CLUSTER_DIR/hosts" /etc/hosts || { echo "cluster_env: cannot mount /etc/hosts"; return 1; }
  _cluster_watchdog $$
  _cluster_new_ns switch || return 1
  cluster_on switch ip link add br0 type bridge &&
    cluster_on switch ip link set br0 up &&
    cluster_on switch ip link set lo up || { echo "cluster_env: cannot make the bridge"; return 1; }
}

# cluster_add_host NAME N: a host (again, after cluster_kill_host) with
# address $CLUSTER_NET.N on its eth0, the switch's port v-NAME.
cluster_add_host() {
  local name=$1 n=$2 pid
  _cluster_new_ns "$name" || return 1
  pid=$(_cluster_anchor "$name")
  cluster_on "$name" hostname "$name" || return 1
  # a host starts with empty local disks, as a stateless node boots
  local tmp=$CLUSTER_DIR/local/$name/tmp p
  rm -rf "${CLUSTER_DIR:?}/local/$name"
  mkdir -p "$tmp"
  chmod 1777 "$tmp"
  # shared paths under /tmp are mounted into the host's own /tmp first
  for p in "${CLUSTER_SHARED[@]}"; do
    p=$(realpath -m "$p")
    case $p in
      /tmp/*)
        mkdir -p "$tmp/${p#/tmp/}"
        cluster_on "$name" mount --bind "$p" "$tmp/${p#/tmp/}" || return 1 ;;
    esac
  done
  cluster_on "$name" mount --rbind "$tmp" /tmp || return 1
  cluster_on switch ip link add "v-$name" type veth peer name eth0 netns "$pid" &&
    cluster_on switch ip link set "v-$name" master br0 up &&
    cluster_on "$name" ip link set lo up &&
    cluster_on "$name" ip addr add "$CLUSTER_NET.$n/24" dev eth0 &&
    cluster_on "$name" ip link set eth0 up || { echo "cluster_env: cannot link $name"; return 1; }
  grep -q " $name\$" "$CLUSTER_DIR/hosts" || echo "$CLUSTER_NET.$n $name" >>"$CLUSTER_DIR/hosts"
}

# cluster_kill_host NAME: what a node that loses power looks like to the
# others: its link goes first, so not even a TCP reset leaves it, then every
# process on it is killed.
cluster_kill_host() {
  local name=$1 ns
  ns=$(cat "$CLUSTER_DIR/ns/$name.netns" 2>/dev/null) || { echo "cluster_env: no host $name"; return 1; }
  cluster_on switch ip link del "v-$name" 2>/dev/null
  _cluster_kill_netns "$ns"
}

cluster_stop() {
  [ -n "${CLUSTER_DIR:-}" ] && [ -f "$CLUSTER_DIR/ns/all" ] || return 0
  local ns
  while read -r ns; do
    _cluster_kill_netns "$ns"
  done <"$CLUSTER_DIR/ns/all"
  local w
  w=$(cat "$CLUSTER_DIR/watchdog.pid" 2>/dev/null) && [ -n "$w" ] && kill "$w" 2>/dev/null
  rm -f "$CLUSTER_DIR/ns/all"
  return 0
}

# _cluster_watchdog OWNER_PID: in its own session, outside every namespace
# made here; once OWNER_PID has gone, kill what is left in them.
_cluster_watchdog() {
  setsid bash -c '
    owner=$1 dir=$2
    source "$3"
    CLUSTER_DIR=$dir
    trap "exit 0" TERM
    while kill -0 "$owner" 2>/dev/null; do sleep 2; done
    cluster_stop
    rm -rf "$dir"
  ' icas-cluster-watchdog "$1" "$CLUSTER_DIR" "${BASH_SOURCE[0]}" </dev/null >/dev/null 2>&1 &
  echo $! >"$CLUSTER_DIR/watchdog.pid"
}

# ---- ssh: how clusters launch remote ranks --------------------------------
# One key pair and one host key, made for the test; sshd on every host on
# port $CLUSTER_SSH_PORT, accepting only that key; a client config that
# trusts only that host key. Open MPI uses it through plm_rsh_agent.

CLUSTER_SSH_PORT=${CLUSTER_SSH_PORT:-2213}

cluster_ssh_setup() {
  local d=$CLUSTER_DIR/ssh
  mkdir -p "$d"
  chmod 700 "$d"
  ssh-keygen -q -t ed25519 -N '' -C icas-test-user -f "$d/id_ed25519" || return 1
  ssh-keygen -q -t ed25519 -N '' -C icas-test-host -f "$d/host_ed25519" || return 1
  cp "$d/id_ed25519.pub" "$d/authorized_keys"
  echo "[icas-*]:$CLUSTER_SSH_PORT $(cut -d' ' -f1,2 "$d/host_ed25519.pub")" >"$d/known_hosts"
  cat >"$d/config" <<CONF
Host *
  User root
  Port $CLUSTER_SSH_PORT
  IdentityFile $d/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $d/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
CONF
  # sshd's privilege-separation directory (the package creates it when its
  # service starts, which never happens here)
  mkdir -p /run/sshd && chmod 755 /run/sshd
}

# cluster_sshd NAME: start sshd on host NAME
cluster_sshd() {
  local name=$1 d=$CLUSTER_DIR/ssh
  cat >"$d/sshd_$name.conf" <<CONF
Port $CLUSTER_SSH_PORT
ListenAddress 0.0.0.0
HostKey $d/host_ed25519
AuthorizedKeysFile $d/authorized_keys
PidFile $d/sshd_$name.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
CONF
  # -D: stays a child of the test, which reaps it
  cluster_on "$name" /usr/sbin/sshd -D -f "$d/sshd_$name.conf" -E "$d/sshd_$name.log" \
    </dev/null >/dev/null 2>&1 &
  disown $!
  local end=$((SECONDS + 10))
  until [ -s "$d/sshd_$name.pid" ]; do
    if [ $SECONDS -ge $end ]; then
      echo "cluster_env: sshd did not start on $name within 10 s:"
      cat "$d/sshd_$name.log"
      return 1
    fi
    sleep 0.05
  done
}

# cluster_ssh FROM TO CMD..: run CMD on host TO through ssh from host FROM
cluster_ssh() {
  local from=$1 to=$2
  shift 2
  cluster_on "$from" ssh -F "$CLUSTER_DIR/ssh/config" "$to" "$@"
}

# ---- Slurm: a controller and one slurmd per compute host -------------------
# munged with the test's own key and socket (a path on the shared file
# system, which every host reaches as each real node reaches its own
# munged); slurmctld on the head host; slurmd on each compute host, named
# by its hostname, with its own pid and log file (%n) and a spool directory
# on the host's local disk: Slurm 22.05's PMIx plugin leaves its socket
# there when a node dies, and a node that comes back with it cannot start
# that job step again (bind: Address already in use). Ports are not
# Slurm's defaults. Clients (sbatch, squeue, scontrol) run on the head
# host with SLURM_CONF exported.
#
#   cluster_slurm_start HEAD NODE...   write slurm.conf, start the daemons
#   cluster_slurmd NODE                start (or restart) NODE's slurmd
#   cluster_slurm_logs                 the daemons' logs, for failures

CLUSTER_SLURMCTLD_PORT=${CLUSTER_SLURMCTLD_PORT:-16817}
CLUSTER_SLURMD_PORT=${CLUSTER_SLURMD_PORT:-16818}

cluster_slurm_logs() { slurm_show_logs "$CLUSTER_DIR/slurm"; }

# _cluster_addr NAME: NAME's address from the cluster's hosts file
_cluster_addr() { awk -v h="$1" '$2 == h { print $1 }' "$CLUSTER_DIR/hosts"; }

cluster_slurm_start() {
  local head=$1 n
  shift
  local S=$CLUSTER_DIR/slurm
  mkdir -p "$S/state"
  slurm_munged "$S" cluster_on "$head" || return 1
  # Every compute host is this machine as slurmd sees it: the hosts share
  # its cores (a test's jobs are small).
  local node
  node=$(slurm_node_hw)
  # SlurmdTimeout: a node silent this long is DOWN, and its jobs end (and
  # are requeued when they asked for it); Slurm's default is 300 s.
  {
    cat <<CONF
ClusterName=icasmn
SlurmctldHost=$head($(_cluster_addr "$head"))
SlurmctldPort=$CLUSTER_SLURMCTLD_PORT
SlurmdPort=$CLUSTER_SLURMD_PORT
SlurmdSpoolDir=$CLUSTER_DIR/local/%n/spool
SlurmdPidFile=$S/slurmd-%n.pid
SlurmdLogFile=$S/slurmd-%n.log
MinJobAge=300
SlurmdTimeout=10
MessageTimeout=5
CONF
    slurm_conf_common "$S"
    for n in "$@"; do
      echo "NodeName=$n NodeAddr=$(_cluster_addr "$n") $node State=UNKNOWN"
    done
    echo "PartitionName=test Nodes=$(IFS=,; echo "$*") Default=YES MaxTime=INFINITE State=UP"
  } >"$S/slurm.conf"
  export SLURM_CONF=$S/slurm.conf
  slurm_daemon "$S" "slurmctld on $head" cluster_on "$head" slurmctld -f "$SLURM_CONF" || return 1
  for n in "$@"; do
    cluster_slurmd "$n" || return 1
  done
  slurm_wait_idle "$S" $# cluster_on "$head" || return 1
  echo "cluster_env: Slurm up: slurmctld on $head, slurmd on $* (ports $CLUSTER_SLURMCTLD_PORT," \
    "$CLUSTER_SLURMD_PORT)"
}

cluster_slurmd() {
  mkdir -p "$CLUSTER_DIR/local/$1/spool"
  slurm_daemon "$CLUSTER_DIR/slurm" "slurmd on $1" cluster_on "$1" slurmd -f "$SLURM_CONF"
}
