#!/usr/bin/env bash
# Across nodes, on one machine: three hosts (icas-head, icas-n1, icas-n2)
# as network, UTS and mount namespaces on a bridge (tests/cluster_env.sh),
# sharing the file system as an NFS home would.
#   1. mpirun --hostfile, ranks on both compute hosts launched through sshd,
#      TCP between them: the file equals a single-host sweep bit for bit,
#      and its host column names both hosts.
#   2. A node lost under mpirun: icas-n2's link is cut and every process on
#      it killed while runs are in flight. The master names the lost ranks,
#      records, closes the file and the job ends within a measured bound;
#      the same command on the host left completes it, equal to an
#      uninterrupted sweep.
#   3. Slurm with two compute nodes: sbatch --nodes=2 jobs/sweep.sbatch, srun
#      across both, the same numbers.
#   4. A node lost under Slurm: the job requeues itself; once the node is
#      back the requeued job completes, every run once, the same numbers.
#   5. The master's node lost under Slurm (rank 0, the writer, and the batch
#      script with it): the job's processes on the other node end, Slurm
#      requeues the job; once the node is back the requeued job resumes
#      from the file, journal and checkpoints on the shared directory,
#      every run once, the same numbers.
# Exit 77 (a skip for ctest) with what is missing when the machine cannot
# host such a cluster.
set -u
source "$(dirname "$0")/lib.sh" || exit 1
SKIP=77
BIN=$(realpath "$BIN")
SRC=$(realpath "$SRC")
source "$SRC/tests/cluster_env.sh" || exit 1   # with apt_get and slurm_install

# The whole test runs in a private mount namespace (for /etc/hosts and the
# hosts' /tmp); prerequisites are checked and installed before entering it.
if [ -z "${ICAS_MULTINODE_INSIDE:-}" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test_multinode: SKIP: needs root (namespaces, veth pairs, sshd, Slurm daemons)"
    exit $SKIP
  fi
  missing=()
  for p in openssh-server openssh-client iproute2 util-linux; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test_multinode: installing ${missing[*]}"
    # no system sshd on port 22: service starts are denied while installing
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
    fi
    apt_get update && apt_get install -y --no-install-recommends "${missing[@]}"
    rc=$?
    [ $made_policy -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || { echo "test_multinode: SKIP: cannot install ${missing[*]} (apt-get failed)"; exit $SKIP; }
  fi
  slurm_install || { echo "test_multinode: SKIP: cannot install $SLURM_PACKAGES (apt-get failed)"; exit $SKIP; }
  lacking=$(cluster_missing)
  for c in /usr/sbin/sshd ssh ssh-keygen mpirun slurmctld slurmd munged sbatch; do
    command -v "$c" >/dev/null 2>&1 || lacking+=$'\n'"command $c"
  done
  lacking=$(sed '/^$/d' <<<"$lacking")
  if [ -n "$lacking" ]; then
    echo "test_multinode: SKIP: this machine cannot host the test cluster; missing:"
    sed 's/^/  - /' <<<"$lacking"
    exit $SKIP
  fi
  exec unshare --mount --propagation private env ICAS_MULTINODE_INSIDE=1 bash "$0" "$@"
fi

T=$(mktemp -d /var/tmp/icas-multinode.XXXXXX)
chmod 755 "$T"
at_exit 'cluster_stop; rm -rf "$T"'
trap 'exit 130' INT TERM
now() { date +%s.%N; }
# stamp LOG OUT: copy each line of LOG to OUT as it is written, after the
# time it arrived (seconds since the epoch); until unstamp, or this test ends
stamp() {
  tail -n +1 -F --pid=$$ "$1" 2>/dev/null | while IFS= read -r line; do
    printf '%s %s\n' "$(date +%s.%N)" "$line"
  done >"$2"
}
unstamp() { pkill -P "$1" 2>/dev/null; kill "$1" 2>/dev/null; }
# stamped_at OUT PATTERN T0: seconds from T0 to the first line of OUT matching PATTERN
stamped_at() {
  awk -v t0="$3" -v pat="$2" '$0 ~ pat { printf "%.1f", $1 - t0; exit }' "$1"
}
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
use_mpi
# mpirun forwards this to the daemons it starts on the other hosts, whose
# /tmp need not hold the directory: they keep Open MPI's default
unset OMPI_MCA_orte_tmpdir_base
NET=$CLUSTER_NET.0/24

# hosts_of FILE: "rank@host" of every run, sorted and unique
hosts_of() {
  $PY - "$1" <<'PYEOF'
import sys, h5py
r = h5py.File(sys.argv[1], "r")["runs"][:]
print(" ".join(sorted({f"{int(k)}@{h.decode()}" for k, h in zip(r["rank"], r["host"])})))
PYEOF
}

# rows_of FILE: "row status reason" lines
rows_of() {
  $PY - "$1" <<'PYEOF'
import sys, h5py
for r in h5py.File(sys.argv[1], "r")["runs"][:]:
    print(f"  row {r['row']} {r['status'].decode()}: {r['reason'].decode()}")
PYEOF
}

# ---- the cluster -----------------------------------------------------------
cluster_start "$T" "$(dirname "$BIN")" "$SRC" || { bad "cannot build the cluster"; finish; }
cluster_add_host icas-head 10 && cluster_add_host icas-n1 11 && cluster_add_host icas-n2 12 \
  || { bad "cannot add the hosts"; finish; }
cluster_ssh_setup && cluster_sshd icas-n1 && cluster_sshd icas-n2 || { bad "cannot start sshd"; finish; }
echo "cluster: $(tr '\n' ' ' <"$T/hosts")on a bridge in its own namespace; sshd on port" \
  "$CLUSTER_SSH_PORT of each compute host"
if [ "$(cluster_ssh icas-n1 icas-n2 hostname 2>&1)" = icas-n2 ] &&
  [ "$(cluster_ssh icas-n2 icas-n1 hostname 2>&1)" = icas-n1 ]; then
  ok "hosts reach each other by name over ssh with the test's key"
else
  bad "ssh between the hosts: $(cluster_ssh icas-n1 icas-n2 hostname 2>&1)"
  finish
fi
mkdir -p "$T/work"
cd "$T/work"

# Grids: the smoke grid, and runs of a second or two that checkpoint every
# 25 steps, so that a node can be lost mid-run.
smoke=$SRC/jobs/grids/smoke.yaml
cat >"$T/work/slow.yaml" <<'YAML'
settings:
  dims: 5
  points: 10
  layers: 2
  heads: 2
  embd: 32
  batch: 32
  steps: 400
  lr: 1.0e-3
  eval_batch: 32
eval_noise: [0, 1]
seeds: [0, 1]
checkpoint_every: 25
axes:
  attention: [softmax, linear]
YAML
slow=$T/work/slow.yaml

# The references: single-host sweeps (this machine, shared memory)
for g in smoke slow; do
  "${MPIRUN[@]}" -np 3 "$BIN" sweep "${!g}" -o "$T/work/ref_$g.h5" --heartbeat 0 -q 2>"$T/work/ref_$g.log" \
    || { bad "single-host $g sweep"; cat "$T/work/ref_$g.log"; finish; }
done
ok "single-host reference sweeps"

# ---- 1. mpirun across two hosts ----------------------------------------------
printf 'icas-n1 slots=2\nicas-n2 slots=2\n' >"$T/work/hostfile"
# Ranks that ssh starts see sshd's environment, not this one: mpirun passes
# on only what -x names. OPENBLAS_CORETYPE picks the BLAS kernel, and with
# it the last bits of every result.
MPIRUN=(mpirun --bind-to none
        --mca plm_rsh_agent "ssh -F $T/ssh/config"
        --mca btl tcp,self --mca btl_tcp_if_include "$NET" --mca oob_tcp_if_include "$NET"
        -x OMP_NUM_THREADS)
for v in $(compgen -e | grep '^OPENBLAS_'); do MPIRUN+=(-x "$v"); done
start=$(now)
cluster_on icas-n1 "${MPIRUN[@]}" --hostfile "$T/work/hostfile" -np 4 "$BIN" sweep "$smoke" -o "$T/work/mpi2.h5" --heartbeat 0 \
  2>"$T/work/mpi2.log"
rc=$?
echo "mpirun -np 4 on icas-n1 and icas-n2: exit $rc in $(since "$start") s; ranks ran on: $(hosts_of "$T/work/mpi2.h5" 2>/dev/null)"
[ $rc -eq 0 ] && ok "mpirun --hostfile across two hosts" || { bad "mpirun across hosts: exit $rc"; cat "$T/work/mpi2.log"; }
grep -q "Accepted publickey for root" "$T/ssh/sshd_icas-n2.log" \
  && ok "remote ranks started through sshd on icas-n2" || bad "no ssh login on icas-n2: $(cat "$T/ssh/sshd_icas-n2.log")"
hosts=$(hosts_of "$T/work/mpi2.h5" 2>/dev/null)
[[ $hosts == *@icas-n1* && $hosts == *@icas-n2* ]] && ok "the host column names both hosts" \
  || bad "host column: $hosts"
! grep -q "different BLAS kernels" "$T/work/mpi2.log" && ok "every rank computes with the same BLAS kernel" \
  || bad "$(grep "different BLAS kernels" "$T/work/mpi2.log")"
compare_results "$T/work/ref_smoke.h5" "$T/work/mpi2.h5" --require-done \
  && ok "two hosts over TCP equal one host, bit for bit" || bad "two hosts differ from one"

# ---- 2. a node lost under mpirun ---------------------------------------------
# Open MPI's TCP keepalives tuned so that mpirun notices a dead node within
# about 5 s (its defaults: 300 + 9 x 20 s); the master's own limit is 3 s.
KEEPALIVE=(--mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 1
           --mca oob_tcp_keepalive_probes 3)
cluster_on icas-n1 "${MPIRUN[@]}" "${KEEPALIVE[@]}" --hostfile "$T/work/hostfile" -np 4 "$BIN" sweep "$slow" -o "$T/work/lost.h5" \
  --heartbeat 0 --lost-after 3 2>"$T/work/lost1.log" &
pid=$!
stamp "$T/work/lost1.log" "$T/work/lost1.stamped" &
stamper=$!
# lose icas-n2 once every worker is mid-run: one checkpoint per run in flight
poll 120 "three runs in flight" has_entries "$T/work/lost.h5.ckpt" 3
t0=$(now)
cluster_kill_host icas-n2
echo "icas-n2 lost (link cut, every process on it killed) at $(date +%T.%N | cut -c1-12)"
poll 120 "mpirun to end after the node loss" bash -c "! kill -0 $pid"
t_end=$(since "$t0")
wait $pid
rc=$?
sleep 0.5
unstamp $stamper
t_lost=$(stamped_at "$T/work/lost1.stamped" "lost: no message" "$t0")
echo "node loss under mpirun: master reported it after ${t_lost:-?} s, mpirun ended after $t_end s (exit $rc)"
grep -E "lost|MPI_Abort|ORTE has lost" "$T/work/lost1.log" | sed 's/^/  | /'
grep -qE "rank [23] on host icas-n2 lost: no message from it for" "$T/work/lost1.log" \
  && ok "the master names the lost ranks and their host" || { bad "no loss message"; cat "$T/work/lost1.log"; }
awk -v t="$t_end" 'BEGIN { exit !(t < 30) }' && ok "mpirun ended $t_end s after the loss (bound 30 s)" \
  || bad "mpirun took $t_end s to end"
echo "  rows after the loss:"; rows_of "$T/work/lost.h5" 2>&1
rows_of "$T/work/lost.h5" 2>/dev/null | grep -q "interrupted: rank [23] on host icas-n2 lost after step" \
  && ok "lost runs recorded as interrupted, naming rank and host" || bad "lost runs not recorded"
# the same command on the host that is left
printf 'icas-n1 slots=3\n' >"$T/work/hostfile1"
cluster_on icas-n1 "${MPIRUN[@]}" --hostfile "$T/work/hostfile1" -np 3 "$BIN" \
  sweep "$slow" -o "$T/work/lost.h5" --heartbeat 0 2>"$T/work/lost2.log"
rc=$?
grep -E "already finished|runs," "$T/work/lost2.log" | head -2 | sed 's/^/  | /'
[ $rc -eq 0 ] && all_done_once "$T/work/lost.h5" 4 && ok "resumed on icas-n1 alone: every run once" \
  || { bad "resume after the loss: exit $rc"; cat "$T/work/lost2.log"; }
compare_results "$T/work/ref_slow.h5" "$T/work/lost.h5" --require-done \
  && ok "node loss + resume equals an uninterrupted sweep, bit for bit" || bad "node loss + resume differs"

# ---- 3. Slurm with two compute nodes -------------------------------------------
cluster_add_host icas-n2 12 || { bad "cannot bring icas-n2 back"; finish; }
cluster_slurm_start icas-head icas-n1 icas-n2 || { bad "Slurm did not start"; finish; }
export ICASWEEP=$BIN
# the site's Open MPI settings: TCP on the cluster network
export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=$NET OMPI_MCA_oob_tcp_if_include=$NET
unset OMPI_MCA_pml
SBATCH=(sbatch --nodes=2 --ntasks-per-node=2 --cpus-per-task=1 --time=10)
job_ended() {  # JOB: no longer pending or running (MinJobAge keeps it listed)
  cluster_on icas-head squeue -h -j "$1" -t all -o %T 2>/dev/null | grep -qvE 'PENDING|RUNNING|REQUEUE|COMPLETING|CONFIGURING'
}
# job_rc JOB: its exit status, as slurmctld recorded it
job_rc() { cluster_on icas-head scontrol show job "$1" | sed -n 's/.* ExitCode=\([0-9]*\):.*/\1/p'; }
start=$(now)
# sbatch --wait polls every few seconds; squeue here every 0.1 s
cluster_on icas-head "${SBATCH[@]}" --output="$T/work/slurm-smoke-%j.log" \
  "$SRC/jobs/sweep.sbatch" "$smoke" "$T/work/slurm-smoke.h5" >"$T/work/sbatch1.out" 2>&1
job=$(grep -o '[0-9]*$' "$T/work/sbatch1.out")
poll 120 "the two-node job $job to end" job_ended "$job"
rc=$(job_rc "$job")
log=$T/work/slurm-smoke-$job.log
echo "sbatch --nodes=2: job $job exit ${rc:-?} in $(since "$start") s; $(grep -o 'start (restart 0) on .*' "$log" 2>/dev/null)"
echo "  ranks ran on: $(hosts_of "$T/work/slurm-smoke.h5" 2>/dev/null)"
if [ "${rc:-1}" -eq 0 ] && grep -q "on icas-n\[1-2\]" "$log" && grep -q "launcher srun" "$log"; then
  ok "sbatch --nodes=2 jobs/sweep.sbatch: srun on icas-n[1-2]"
else
  bad "Slurm two-node sweep: exit $rc"; cat "$T/work/sbatch1.out" "$log"; cluster_slurm_logs
fi
hosts=$(hosts_of "$T/work/slurm-smoke.h5" 2>/dev/null)
[[ $hosts == *@icas-n1* && $hosts == *@icas-n2* ]] && ok "Slurm: the host column names both nodes" \
  || bad "Slurm host column: $hosts"
compare_results "$T/work/ref_smoke.h5" "$T/work/slurm-smoke.h5" --require-done \
  && ok "Slurm across two nodes equals one host, bit for bit" || bad "Slurm two-node sweep differs"

# ---- 4. a node lost under Slurm ------------------------------------------------
export ICASWEEP_LOST_AFTER=3
cluster_on icas-head "${SBATCH[@]}" --output="$T/work/slurm-lost-%j.log" \
  "$SRC/jobs/sweep.sbatch" "$slow" "$T/work/slurm-lost.h5" >"$T/work/sbatch2.out" 2>&1
job=$(grep -o '[0-9]*$' "$T/work/sbatch2.out")
log=$T/work/slurm-lost-$job.log
stamp "$log" "$T/work/slurm-lost.stamped" &
stamper=$!
poll 120 "three runs in flight under Slurm" has_entries "$T/work/slurm-lost.h5.ckpt" 3
t0=$(now)
cluster_kill_host icas-n2
echo "icas-n2 lost under Slurm job $job at $(date +%T.%N | cut -c1-12)"
t_down=
end=$(( $(date +%s) + 120 ))
until [ -n "$t_down" ] && grep -q "requeueing" "$log"; do
  [ -z "$t_down" ] && cluster_on icas-head sinfo -h -n icas-n2 -o %t | grep -q down && t_down=$(since "$t0")
  if [ "$(date +%s)" -ge $end ]; then
    bad "timed out after 120 s waiting for the requeue and icas-n2 DOWN"; break
  fi
  sleep 0.2
done
t_lost=$(stamped_at "$T/work/slurm-lost.stamped" "lost: no message" "$t0")
t_requeue=$(stamped_at "$T/work/slurm-lost.stamped" "requeueing" "$t0")
echo "node loss under Slurm: master reported it after ${t_lost:-?} s, job requeued after" \
  "${t_requeue:-?} s, slurmctld marked icas-n2 DOWN after ${t_down:-?} s"
grep -E "lost|requeue|srun: error|MPI_ABORT" "$log" | sed 's/^/  | /'
grep -qE "rank [23] on host icas-n2 lost" "$log" && ok "Slurm: the master names the lost ranks and host" \
  || bad "Slurm: no loss message"
[ -n "$t_requeue" ] && ok "Slurm: the job requeued itself $t_requeue s after the loss" || bad "Slurm: no requeue"
# the node comes back (ReturnToService=2); the requeued job runs on both
cluster_add_host icas-n2 12 && cluster_slurmd icas-n2 || bad "cannot bring icas-n2 back"
poll 180 "the requeued job to finish" job_ended "$job"
echo "requeued job done $(since "$t0") s after the loss:"
grep -E "start \(restart|already finished|sweep complete" "$log" | sed 's/^/  | /'
grep -q "start (restart 1)" "$log" && all_done_once "$T/work/slurm-lost.h5" 4 \
  && ok "Slurm: the requeued job completed every run once" \
  || { bad "Slurm: requeued job"; cat "$log"; cluster_slurm_logs; }
unstamp $stamper
compare_results "$T/work/ref_slow.h5" "$T/work/slurm-lost.h5" --require-done \
  && ok "Slurm node loss + requeue equals an uninterrupted sweep, bit for bit" \
  || bad "Slurm node loss + requeue differs"

# ---- 5. the master's node lost under Slurm ---------------------------------------
# Nothing inside the job is left to record the loss or to requeue: the batch
# script runs on the first node, with rank 0. slurmctld marks the node DOWN
# after SlurmdTimeout, ends the job (NODE_FAIL) and requeues it, as the job
# asked (--requeue); the requeued job finds what the dead master had
# recorded in the file and its journal.
job_restarts() { cluster_on icas-head scontrol show job "$1" 2>/dev/null | sed -n 's/.* Restarts=\([0-9]*\).*/\1/p'; }
out=$T/work/slurm-master.h5
cluster_on icas-head "${SBATCH[@]}" --output="$T/work/slurm-master-%j.log" \
  "$SRC/jobs/sweep.sbatch" "$slow" "$out" >"$T/work/sbatch3.out" 2>&1
job=$(grep -o '[0-9]*$' "$T/work/sbatch3.out")
log=$T/work/slurm-master-$job.log
# once a first result is recorded, with the other runs in flight
POLL_EVERY=0.05 poll 120 "a first recorded result under Slurm" grep -q '^\[1/4\]' "$log"
# rank 0's host, as its lock note says; else the job's first node (where
# the batch script runs, and task 0 with srun's block distribution)
master_host=$(sed -n 's/^pid [0-9]* on host \(icas-n[12]\)$/\1/p' "$out.lock" 2>/dev/null)
[ -n "$master_host" ] || master_host=$(cluster_on icas-head scontrol show job "$job" | sed -n 's/.* BatchHost=\(icas-n[12]\).*/\1/p')
case $master_host in
  icas-n1) other=icas-n2 addr=11 ;;
  icas-n2) other=icas-n1 addr=12 ;;
  *) bad "no master host: lock $(cat "$out.lock" 2>&1)"; finish ;;
esac
t0=$(now)
cluster_kill_host "$master_host"
echo "$master_host (rank 0 and the batch script) lost under Slurm job $job at $(date +%T.%N | cut -c1-12)"
# every process of the job on the node left ends, and Slurm requeues the job
t_gone= t_down= t_requeue=
end=$(( $(date +%s) + 120 ))
until [ -n "$t_gone" ] && [ -n "$t_requeue" ]; do
  [ -z "$t_gone" ] && ! pgrep -f "sweep $slow -o $out" >/dev/null && t_gone=$(since "$t0")
  [ -z "$t_down" ] && cluster_on icas-head sinfo -h -n "$master_host" -o %t | grep -q down && t_down=$(since "$t0")
  [ -z "$t_requeue" ] && [ "$(job_restarts "$job")" = 1 ] && t_requeue=$(since "$t0")
  if [ "$(date +%s)" -ge $end ]; then
    bad "timed out after 120 s waiting for the job's processes to end and the requeue"; break
  fi
  sleep 0.2
done
echo "master's node lost under Slurm: slurmctld marked $master_host DOWN after ${t_down:-?} s," \
  "requeued the job after ${t_requeue:-?} s; the sweep's processes on $other ended after ${t_gone:-?} s"
[ -n "$t_gone" ] && ok "Slurm, master's node lost: no process of the job left on $other after $t_gone s" \
  || { bad "Slurm, master's node lost: processes left on $other"; pgrep -af "sweep $slow -o $out"; }
[ -n "$t_requeue" ] && ok "Slurm, master's node lost: the job requeued after $t_requeue s" \
  || { bad "Slurm, master's node lost: no requeue"; cluster_slurm_logs; }
cluster_add_host "$master_host" "$addr" && cluster_slurmd "$master_host" || bad "cannot bring $master_host back"
poll 180 "the requeued job to finish" job_ended "$job"
echo "requeued job done $(since "$t0") s after the loss:"
grep -E "start \(restart|already finished|sweep complete" "$log" | sed 's/^/  | /'
n_kept=$(sed -n 's/^icasweep sweep: .*: 4 runs, \([0-9]*\) already finished, .*$/\1/p' "$log" | tail -1)
grep -q "start (restart 1)" "$log" && [ "$(job_rc "$job")" = 0 ] && [ "${n_kept:-0}" -ge 1 ] \
  && all_done_once "$out" 4 \
  && ok "Slurm, master's node lost: the requeued job kept the $n_kept result(s) recorded before and completed every run once" \
  || { bad "Slurm, master's node lost: requeued job (kept ${n_kept:-?})"; cat "$log"; cluster_slurm_logs; }
compare_results "$T/work/ref_slow.h5" "$out" --require-done \
  && ok "Slurm, master's node lost + requeue equals an uninterrupted sweep, bit for bit" \
  || bad "Slurm, master's node lost + requeue differs"

finish
