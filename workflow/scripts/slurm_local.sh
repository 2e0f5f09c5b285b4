#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for running and testing the SLURM profile
# (workflow/profiles/slurm) for real: Debian's slurm-wlm daemons and munge, configured for this
# host's real CPUs and memory (`slurmd -C`), everything (config, state, logs, sockets) under one
# folder. One link outside it: /etc/slurm/slurm.conf -> that folder's slurm.conf, made by `up`
# and removed by `down`, because the commands a job runs must find the config where a real
# cluster keeps it: Snakemake's job step (snakemake-executor-plugin-slurm-jobstep 0.6.1) removes
# SLURM_CONF from the environment of the `srun` it starts inside each job. A slurm.conf there
# that this script did not make is never touched (`up` refuses: use that cluster).
#
#   workflow/scripts/slurm_local.sh up       # write the config, start munged, slurmctld, slurmd;
#                                            # wait until the node is idle; print `export SLURM_CONF=…`
#   workflow/scripts/slurm_local.sh status   # sinfo of the local cluster (exit 1 if it is not up)
#   workflow/scripts/slurm_local.sh down     # stop the three daemons it started
#   workflow/scripts/slurm_local.sh env      # print the `export SLURM_CONF=…` line only
#
# Then, in the same shell:  eval "$(workflow/scripts/slurm_local.sh env)"; sinfo; sbatch …
#
# Needs: root (slurmd starts jobs as their user), the Debian packages slurmctld slurmd
# slurm-client munge. Exit status 3: cannot run here (a missing package, not root): callers
# (tests/test_scaleout.py, `make slurm-check`) skip on it; 1: the daemons failed to start (logs
# printed).
#
# Settings (environment): FINENET_SLURM_DIR (default /tmp/finenet-slurm), FINENET_SLURM_PORT
# (slurmctld's port, default 16817; slurmd uses the next one), FINENET_SLURM_PARTITION (the one
# partition's name, default `cpu`: the name workflow/profiles/slurm/config.yaml asks for).
# The daemons inherit this script's scheduling priority (`nice`), and jobs inherit the daemons'
# (PropagatePrioProcess=0), so `nice -n 15 … up` keeps the cluster's jobs in the background.
set -euo pipefail

DIR=${FINENET_SLURM_DIR:-/tmp/finenet-slurm}
PORT=${FINENET_SLURM_PORT:-16817}
PARTITION=${FINENET_SLURM_PARTITION:-cpu}
CONF="$DIR/etc/slurm.conf"
SYSTEM_CONF=/etc/slurm/slurm.conf
SOCKET="$DIR/munge/munge.socket"
WAIT=${FINENET_SLURM_WAIT:-60}    # seconds to wait for the node to come up idle

say() { echo "slurm_local: $*" >&2; }
cannot() { say "cannot run here: $*"; exit 3; }

need() {
    [ "$(id -u)" = 0 ] || cannot "needs root (slurmd runs jobs as their user); run it as root"
    local missing=()
    for cmd in munged mungekey slurmctld slurmd sinfo sbatch squeue scontrol; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    [ ${#missing[@]} = 0 ] || cannot "not installed: ${missing[*]} (apt-get install slurmctld slurmd slurm-client munge)"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
    local host node
    host=$(hostname -s)
    # this host's real hardware as slurmd sees it: CPUs, sockets/cores/threads, RealMemory (MB)
    node=$(slurmd -C | head -1)
    case "$node" in NodeName=*) ;; *) say "slurmd -C printed no node line: $node"; exit 1 ;; esac
    mkdir -p "$DIR"/{etc,munge,state,spool,log}
    chmod 700 "$DIR/munge"
    cat >"$CONF" <<EOF
$HEADER: a one-node cluster on $host
ClusterName=finenet-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups (containers often have none writable): track job processes by their parent pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
# no accounting database: job states come from slurmctld (squeue), kept an hour after the end
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
ReturnToService=2
PropagatePrioProcess=0
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
Waittime=0
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    # the node line: this host's short name at the loopback address, without slurmd -C's
    # UpTime= field (not a slurm.conf key)
    sed -i -E "s/^NodeName=[^ ]+ /NodeName=$host NodeAddr=127.0.0.1 /; s/ UpTime=[^ ]*//" "$CONF"
}

dump_logs() {
    for log in "$DIR"/log/*.log; do
        [ -f "$log" ] || continue
        say "--- $log (last 20 lines)"
        tail -n 20 "$log" >&2
    done
}

start_munge() {
    if pid_alive "$DIR/munge/munged.pid"; then return; fi
    [ -f "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key"
    chmod 600 "$DIR/munge/munge.key"
    # --force: the state folder may sit under a world-writable /tmp (munged checks every parent)
    munged --force --socket="$SOCKET" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
    for _ in $(seq 50); do [ -S "$SOCKET" ] && return; sleep 0.1; done
    say "munged did not create its socket"; dump_logs; exit 1
}

HEADER="# written by workflow/scripts/slurm_local.sh"

ours() {   # a slurm.conf this script wrote (or a dangling link to one that is gone)
    [ ! -e "$1" ] || [ "$(head -c ${#HEADER} "$1")" = "$HEADER" ]
}

link_system_conf() {
    if [ -L "$SYSTEM_CONF" ]; then
        local other
        other=$(readlink "$SYSTEM_CONF")
        if [ "$other" != "$CONF" ]; then
            ours "$other" || cannot "$SYSTEM_CONF links to $other, not made by this script"
            if pid_alive "${other%/etc/slurm.conf}/slurmctld.pid"; then
                say "another local cluster is up (${other%/etc/slurm.conf}): take it down first"; exit 1
            fi
        fi
        rm -f "$SYSTEM_CONF"
    elif [ -e "$SYSTEM_CONF" ]; then
        cannot "this machine has its own $SYSTEM_CONF (a configured cluster): use that one"
    fi
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -s "$CONF" "$SYSTEM_CONF"
}

up() {
    need
    [ -L "$SYSTEM_CONF" ] || [ ! -e "$SYSTEM_CONF" ] || \
        cannot "this machine has its own $SYSTEM_CONF (a configured cluster): use that one"
    if pid_alive "$DIR/slurmctld.pid" && pid_alive "$DIR/slurmd.pid"; then
        say "already up ($CONF)"
    else
        write_config
        link_system_conf
        start_munge
        export SLURM_CONF="$CONF"
        pid_alive "$DIR/slurmctld.pid" || slurmctld -f "$CONF" -i   # -i: ignore stale state
        pid_alive "$DIR/slurmd.pid" || slurmd -f "$CONF" -N "$(hostname -s)"
    fi
    export SLURM_CONF="$CONF"
    local state=""
    for _ in $(seq $((WAIT * 2))); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
        case "$state" in
            idle|mix|alloc) echo "export SLURM_CONF=$CONF"; say "node is $state"; return 0 ;;
            drain*|down*|fail*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    say "the node did not come up idle within ${WAIT}s (last state: '${state:-no answer}')"
    dump_logs
    exit 1
}

stop_pid() {
    local file=$1 name=$2
    if pid_alive "$file"; then
        local pid
        pid=$(cat "$file")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
        say "stopped $name ($pid)"
    fi
    rm -f "$file"
}

down() {
    stop_pid "$DIR/slurmd.pid" slurmd
    stop_pid "$DIR/slurmctld.pid" slurmctld
    stop_pid "$DIR/munge/munged.pid" munged
    if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$CONF" ]; then
        rm -f "$SYSTEM_CONF"
    fi
}

status() {
    export SLURM_CONF="$CONF"
    pid_alive "$DIR/slurmctld.pid" || { say "not up ($DIR)"; exit 1; }
    sinfo
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
