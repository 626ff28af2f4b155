#!/usr/bin/env bash
# Start a throw-away, single-node SLURM cluster on this machine (for tests).
#
#   tests/slurm/start_cluster.sh      # install if needed, start, wait until idle
#
# What it does (idempotent: a second call with the cluster up only checks it):
#   * installs Debian 12's `munge slurm-wlm` (22.05) with apt-get if a daemon or
#     client command is missing;
#   * writes /etc/slurm/slurm.conf: one node named `hostname -s`, addresses pinned to
#     127.0.0.1, CPUs = nproc, RealMemory a bit below MemTotal, no cgroups
#     (proctrack/linuxproc, task/none, jobacct_gather/none), no accounting
#     database (so the snakemake plugin must use `--slurm-status-command squeue`,
#     and MinJobAge is large so that squeue still lists finished jobs);
#   * starts munged (unless a working one already answers on /run/munge),
#     slurmctld and slurmd directly (no systemd), records the PIDs it started in
#     $STATE/pids/, and waits until `sinfo` reports the node idle.
#
# The conf must be at the default path: the plugin's job step (inside each SLURM
# job) strips SLURM_* variables, SLURM_CONF included, before calling srun. A
# /etc/slurm/slurm.conf not written by this script is never overwritten (exit 77).
#
# Environment:
#   PGPROBE_SLURM_STATE      state dir            (default /tmp/pgprobe-slurm)
#   PGPROBE_SLURM_TIMEOUT    seconds per wait     (default 60)
#   PGPROBE_SLURM_APT_TIMEOUT seconds for apt-get (default 600)
#   PGPROBE_SLURM_CTLD_PORT / PGPROBE_SLURM_SLURMD_PORT  (default 16817 / 16818,
#                            off the standard ports so a real slurmd never clashes)
#   PGPROBE_SLURM_PARTITION  partition name       (default "local")
#
# Exit status: 0 cluster up; 77 cannot run here (not root, no apt-get, packages
# not installable) -- tests skip on 77; anything else is a real failure.
set -euo pipefail

STATE=${PGPROBE_SLURM_STATE:-/tmp/pgprobe-slurm}
TIMEOUT=${PGPROBE_SLURM_TIMEOUT:-60}
APT_TIMEOUT=${PGPROBE_SLURM_APT_TIMEOUT:-600}
CTLD_PORT=${PGPROBE_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${PGPROBE_SLURM_SLURMD_PORT:-16818}
PARTITION=${PGPROBE_SLURM_PARTITION:-local}
CLUSTER=pgprobe
NODE=$(hostname -s)
CONF=/etc/slurm/slurm.conf
MARKER="# Written by pgprobe tests/slurm/start_cluster.sh"
# Seconds slurmctld keeps a finished job (squeue and scontrol list it that long).  Above
# the longest test run (tests/test_slurm.py TINY_SLURM_TIMEOUT_S), so a test that checks
# every job's state at its end still finds its first job; a running cluster whose conf
# has another value is restarted.
MIN_JOB_AGE=7200
PIDS=$STATE/pids
LOGS=$STATE/log
MUNGE_SOCKET=/run/munge/munge.socket.2

log() { echo "[start_cluster] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
cannot_run() { log "CANNOT RUN: $*"; exit 77; }

# wait_for SECONDS DESCRIPTION CMD...: retry CMD every 0.5 s until it succeeds.
wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${secs}s waiting for: $what"
            return 1
        fi
        sleep 0.5
    done
}

# pid_alive NAME: true if $PIDS/NAME.pid names a live process whose command is NAME
# (guards against PID reuse).
pid_alive() {
    local name=$1 pid
    [[ -s $PIDS/$name.pid ]] || return 1
    pid=$(<"$PIDS/$name.pid")
    [[ -r /proc/$pid/comm ]] || return 1
    [[ $(<"/proc/$pid/comm") == "$name" ]]
}

node_idle() {
    local state
    state=$(timeout 10 sinfo --noheader --nodes="$NODE" --Format=StateLong 2>/dev/null | tr -d ' ')
    [[ $state == idle || $state == mixed ]]
}

munge_works() { timeout 10 munge -n -S "$MUNGE_SOCKET" </dev/null 2>/dev/null | timeout 10 unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }

# ---------------------------------------------------------------- preconditions
[[ $(id -u) -eq 0 ]] || cannot_run "must run as root (starts slurmctld/slurmd as root)"
if [[ -e $CONF ]] && [[ $(head -n1 "$CONF") != "$MARKER"* ]]; then
    cannot_run "$CONF exists and was not written by this script (a real SLURM setup?); not touching it"
fi
unset SLURM_CONF
mkdir -p "$STATE"

# ---------------------------------------------------------------- already up?
if pid_alive slurmctld && pid_alive slurmd && [[ -s $CONF ]] && grep -qx "MinJobAge=$MIN_JOB_AGE" "$CONF" \
        && munge_works && node_idle; then
    log "cluster already running (state $STATE)"
    exit 0
fi

# ---------------------------------------------------------------- install
need_install=0
for cmd in munged munge unmunge slurmctld slurmd sbatch squeue sinfo scontrol srun; do
    command -v "$cmd" >/dev/null 2>&1 || need_install=1
done
if ((need_install)); then
    command -v apt-get >/dev/null 2>&1 || cannot_run "SLURM is not installed and there is no apt-get"
    log "installing munge slurm-wlm with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() {
        timeout "$APT_TIMEOUT" apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=120 \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            munge slurm-wlm
    }
    if ! apt_install >"$STATE/apt.log" 2>&1; then
        log "apt-get install failed; running apt-get update and retrying"
        timeout "$APT_TIMEOUT" apt-get update -q -o DPkg::Lock::Timeout=120 >/dev/null 2>&1 || true
        apt_install >&2 || cannot_run "apt-get install munge slurm-wlm failed"
    fi
    for cmd in munged slurmctld slurmd sbatch squeue sinfo scontrol srun; do
        command -v "$cmd" >/dev/null 2>&1 || cannot_run "'$cmd' missing after installing munge slurm-wlm"
    done
fi

# ---------------------------------------------------------------- clean restart
# Anything of ours left from a half-started earlier run is stopped first.
if [[ -d $PIDS ]]; then
    log "stopping leftovers of an earlier start"
    bash "$(dirname "${BASH_SOURCE[0]}")/stop_cluster.sh" || true
fi

mkdir -p "$STATE" "$PIDS" "$LOGS" "$STATE/slurmctld" "$STATE/slurmd" /run/slurm /etc/slurm
chmod 755 "$STATE"

# ---------------------------------------------------------------- munge
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge /etc/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    (umask 077 && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none)
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if munge_works; then
    log "using the munged already answering on $MUNGE_SOCKET"
else
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    # setpriv execs (no fork), so $! is munged's own PID.
    setsid setpriv --reuid=munge --regid=munge --clear-groups \
        munged --foreground --socket="$MUNGE_SOCKET" \
        --log-file="/var/log/munge/munged.log" \
        </dev/null >>"$LOGS/munged.out" 2>&1 &
    echo $! >"$PIDS/munged.pid"
    wait_for "$TIMEOUT" "munged to answer" munge_works ||
        { tail -20 "$LOGS/munged.out" /var/log/munge/munged.log >&2 || true; die "munged did not start"; }
    log "munged running (pid $(<"$PIDS/munged.pid"))"
fi

# ---------------------------------------------------------------- slurm.conf
cpus=$(nproc)
mem_total_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
# a bit below the real amount (slurmd drains a node that has less than configured)
real_mem_mb=$((mem_total_mb * 9 / 10))

cat >"$CONF.tmp" <<EOF
$MARKER -- single-node test cluster, state in $STATE
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=/run/slurm/pgprobe-slurmctld.pid
SlurmdPidFile=/run/slurm/pgprobe-slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups (containers without systemd)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no accounting database: status comes from squeue, so keep finished jobs
# visible for MIN_JOB_AGE s (>= 3x the plugin's init-seconds-before-status-checks).
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=$MIN_JOB_AGE
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$real_mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
mv "$CONF.tmp" "$CONF"
log "wrote $CONF (node $NODE, CPUs=$cpus, RealMemory=${real_mem_mb}MB, partition $PARTITION)"

# ---------------------------------------------------------------- daemons
# fresh logs for a fresh cluster (job ids restart at 1 with slurmctld -c)
for f in slurmctld.log slurmd.log slurmctld.out slurmd.out; do
    if [[ -e $LOGS/$f ]]; then mv -f "$LOGS/$f" "$LOGS/$f.1"; fi
done
# -c: start from a clean job state (no jobs from an earlier test run)
setsid slurmctld -D -c -f "$CONF" </dev/null >>"$LOGS/slurmctld.out" 2>&1 &
echo $! >"$PIDS/slurmctld.pid"
if ! wait_for "$TIMEOUT" "slurmctld to answer" timeout 10 scontrol ping; then
    tail -30 "$LOGS/slurmctld.out" "$LOGS/slurmctld.log" >&2 || true
    die "slurmctld did not start"
fi
log "slurmctld running (pid $(<"$PIDS/slurmctld.pid"))"

setsid slurmd -D -f "$CONF" -N "$NODE" </dev/null >>"$LOGS/slurmd.out" 2>&1 &
echo $! >"$PIDS/slurmd.pid"
if ! wait_for "$TIMEOUT" "node $NODE to become idle" node_idle; then
    timeout 10 sinfo -N -l >&2 || true
    timeout 10 scontrol show node "$NODE" >&2 || true
    tail -30 "$LOGS/slurmd.out" "$LOGS/slurmd.log" >&2 || true
    die "slurmd did not register"
fi
for d in slurmctld slurmd; do
    pid_alive "$d" || die "$d exited right after start (see $LOGS)"
done
log "slurmd running (pid $(<"$PIDS/slurmd.pid")); node $NODE idle in partition $PARTITION"
