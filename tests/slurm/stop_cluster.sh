#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/start_cluster.sh.
#
# Kills exactly the processes whose PIDs start_cluster.sh recorded in
# $PGPROBE_SLURM_STATE/pids/ (default /tmp/pgprobe-slurm/pids), after checking that
# each PID still belongs to the daemon it was recorded for. A munged that was
# already running before start_cluster.sh is left alone (it was never recorded).
# Jobs still in the queue are cancelled first (scancel, best effort).
# Safe to call twice, or when nothing runs.
set -euo pipefail

STATE=${PGPROBE_SLURM_STATE:-/tmp/pgprobe-slurm}
TIMEOUT=${PGPROBE_SLURM_TIMEOUT:-60}
PIDS=$STATE/pids
unset SLURM_CONF  # the cluster's conf is /etc/slurm/slurm.conf

log() { echo "[stop_cluster] $*" >&2; }

[[ -d $PIDS ]] || { log "nothing to stop ($PIDS does not exist)"; exit 0; }

# recorded_pid NAME: print the PID recorded for NAME if that process is alive and
# still runs NAME (no PID reuse); fail otherwise.
recorded_pid() {
    local name=$1 pid
    [[ -s $PIDS/$name.pid ]] || return 1
    pid=$(<"$PIDS/$name.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm && $(<"/proc/$pid/comm") == "$name" ]] || return 1
    echo "$pid"
}

# Cancel leftover jobs while slurmctld still answers, so that no job step keeps
# running after the daemons are gone.
if recorded_pid slurmctld >/dev/null; then
    timeout 10 scancel --quiet --user="$(id -un)" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)) &&
        [[ -n $(timeout 10 squeue --noheader --states=RUNNING,COMPLETING,PENDING -o %i 2>/dev/null || true) ]]; do
        sleep 0.5
    done
fi

status=0
# slurmd before slurmctld before munged (munged is used by both to shut down).
for name in slurmd slurmctld munged; do
    if pid=$(recorded_pid "$name"); then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + TIMEOUT))
        while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do
            # a zombie of ours counts as gone
            if [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]]; then break; fi
            sleep 0.2
        done
        if [[ -e /proc/$pid && $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
            log "$name (pid $pid) ignored SIGTERM for ${TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            if [[ -e /proc/$pid ]]; then log "could not kill $name (pid $pid)"; status=1; fi
        fi
    fi
    rm -f "$PIDS/$name.pid"
done
rmdir "$PIDS" 2>/dev/null || true
log "stopped"
exit "$status"
