#!/usr/bin/env bash
# Start a single-node SLURM on this machine from Debian's packages, for the slurm-marked tests.
#
# Idempotent and non-interactive: installs munge/slurmctld/slurmd/slurm-client if missing (needs
# root and apt), writes /etc/slurm/{slurm,gres}.conf for this host (partitions `cpu` and `gpu`,
# one fake GPU so that `--gpus=1` can be scheduled), starts munged, slurmctld and slurmd directly
# (no systemd; tracked by pid file), and waits until the node is idle. Exits 0 when SLURM answers.
#
#   tests/slurm/start-local-slurm.sh          # start (or confirm running)
#   tests/slurm/start-local-slurm.sh stop     # stop the daemons
set -euo pipefail

HOST=$(hostname -s)
CONF=/etc/slurm
RUN=/run/jetimage-slurm
log() { echo "start-local-slurm: $*" >&2; }

stop() {
    for name in slurmd slurmctld munged; do
        if [[ -f $RUN/$name.pid ]] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
            kill "$(cat "$RUN/$name.pid")" && log "stopped $name"
        fi
        rm -f "$RUN/$name.pid"
    done
    for _ in $(seq 50); do  # let them go before anything restarts on their sockets and ports
        pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || break
        sleep 0.1
    done
}

running() {
    timeout 10 sinfo -h -n "$HOST" -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

if [[ ${1:-start} == stop ]]; then
    stop
    exit 0
fi

if command -v sinfo >/dev/null && running; then
    log "SLURM is up on $HOST"
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        log "SLURM is not installed and this is not root: cannot install it"
        exit 1
    fi
    log "installing munge slurmctld slurmd slurm-client"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq munge slurmctld slurmd slurm-client </dev/null >/dev/null
fi

mkdir -p "$RUN" "$CONF" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge \
    /var/lib/munge /var/log/munge /etc/munge
stop  # stale daemons from an earlier, half-finished start

# munge: a key readable by user munge only, the daemon running as munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
if ! pgrep -u munge -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged --force   # writes /run/munge/munged.pid itself
fi
for _ in $(seq 50); do
    [[ -s /run/munge/munged.pid ]] && break
    sleep 0.1
done
cp /run/munge/munged.pid "$RUN/munged.pid" 2>/dev/null || pgrep -n -u munge -x munged >"$RUN/munged.pid"

# slurm.conf: this host, all its cores, memory a little below what slurmd measures
CPUS=$(nproc)
MEMORY=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
MEMORY=$((MEMORY * 9 / 10))
cat >"$CONF/slurm.conf" <<EOF
# Written by tests/slurm/start-local-slurm.sh: a single-node SLURM for jetimage's tests.
ClusterName=jetimage-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
# finished jobs stay visible to squeue for 5 min: snakemake's slurm plugin polls with squeue
MinJobAge=300
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY Gres=gpu:fake:1 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
EOF
cat >"$CONF/gres.conf" <<EOF
# One fake GPU (no device): lets jobs ask for --gpus=1 on a machine without one.
AutoDetect=off
NodeName=$HOST Name=gpu Type=fake File=/dev/null
EOF

/usr/sbin/slurmctld -c    # -c: start clean, without state from an earlier run
/usr/sbin/slurmd
for _ in $(seq 60); do
    if running; then
        log "SLURM is up on $HOST ($CPUS CPUs, ${MEMORY} MB, partitions cpu and gpu, 1 fake GPU)"
        exit 0
    fi
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    sleep 1
done
log "SLURM did not come up; logs follow"
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
