#!/usr/bin/env bash
# End-to-end test of `hypertape compare` on a real Slurm: a one-node cluster on this machine
# runs a small grid as a job array (`compare … --slurm`), one array task is killed between its
# two tasks and submitted again (it must resume after task 0), and the table gathered with
# `compare … --collect` must equal, byte for byte, the one a local `compare` of the same grid
# writes (table.md and compare.json).
#
# Needs root (it installs Debian's slurm-wlm and munge where missing, and runs munged,
# slurmctld and slurmd). Everything it starts runs from a throw-away directory under /tmp
# (its own munge key and socket, slurm.conf, state, logs, ports 16817/16818 unless
# HYPERTAPE_SLURM_PORT is set) and is stopped and removed at the end, however it ends
# (HYPERTAPE_SLURM_KEEP=1 keeps the directory).
#
# Environment: HYPERTAPE (the binary; default target/release/hypertape, built if missing),
# HYPERTAPE_SLURM_TIMEOUT (seconds to wait for a job array, default 600).
#
# Exit status 0 when every check passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HT=${HYPERTAPE:-$REPO/target/release/hypertape}
TIMEOUT=${HYPERTAPE_SLURM_TIMEOUT:-600}
PORT=${HYPERTAPE_SLURM_PORT:-16817}
START=$(date +%s)

say() { printf '\n=== %s (%ss)\n' "$*" "$(($(date +%s) - START))"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (installs packages, starts munged, slurmctld and slurmd)"
if [ ! -x "$HT" ]; then
    say "building hypertape"
    (cd "$REPO" && cargo build --release)
fi
HT=$(realpath "$HT")

# --- packages -------------------------------------------------------------------------------
missing=()
for cmd in munged slurmctld slurmd sbatch; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
echo "$(slurmctld -V), $(munged -V 2>&1 | head -1)"

# --- a throw-away cluster ---------------------------------------------------------------------
W=$(mktemp -d /tmp/hypertape-slurm-e2e.XXXXXX)
chmod 700 "$W"
export SLURM_CONF=$W/slurm.conf
# A copy of the binary, so that a build during the test changes nothing the jobs run.
cp "$HT" "$W/hypertape"
HT=$W/hypertape
MUNGE_SOCKET=$W/munge/munge.socket

stop_pidfile() { # the daemon whose pid file is $1, politely, then for sure
    local f=$1 pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
    local status=$?
    set +e
    say "stopping the cluster"
    if [ -s "$W/slurmctld.pid" ] && kill -0 "$(cat "$W/slurmctld.pid")" 2>/dev/null; then
        scancel --partition=e2e 2>/dev/null
        for _ in $(seq 30); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
    fi
    stop_pidfile "$W/slurmd.pid"
    stop_pidfile "$W/slurmctld.pid"
    stop_pidfile "$W/munge/munged.pid"
    if [ "${HYPERTAPE_SLURM_KEEP:-0}" = 1 ]; then
        echo "kept $W"
    else
        rm -rf "$W"
    fi
    echo "e2e: $([ $status = 0 ] && echo PASSED || echo "FAILED (status $status)") in $(($(date +%s) - START)) s"
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting munged, slurmctld and slurmd in $W"
mkdir -m 700 "$W/munge" "$W/state" "$W/spool"
head -c 1024 /dev/urandom >"$W/munge/munge.key"
chmod 400 "$W/munge/munge.key"
munged --force --socket="$MUNGE_SOCKET" --key-file="$W/munge/munge.key" \
    --pid-file="$W/munge/munged.pid" --log-file="$W/munge/munged.log" \
    --seed-file="$W/munge/munged.seed"
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
cat >"$SLURM_CONF" <<CONF
# A throw-away one-node cluster for scripts/slurm/e2e.sh.
ClusterName=hypertape-e2e
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$W/jobcomp.log
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=3600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=$mem State=UNKNOWN
PartitionName=e2e Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -c
slurmd -N localhost
for _ in $(seq 120); do
    state=$(sinfo -h -N -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.5
done
sinfo -N -o '%N %T %c %m' || true
[ "$state" = idle ] || { tail -20 "$W/slurmctld.log" "$W/slurmd.log"; fail "the node did not come up (state '$state')"; }

# --- the grid -------------------------------------------------------------------------------
GRID=(compare split-mnist --methods hnet,si --scenarios cl1,cl3 --seeds 2 --tasks 2
      --iterations 50 --data-dir "$REPO/data/mnist")
OUT=$W/out
VICTIM=3 # the array task killed after its first task and submitted again: hnet cl3 seed 43

say "local reference: hypertape ${GRID[*]} --out $W/local"
"$HT" "${GRID[@]}" --out "$W/local" 2>"$W/local.log"
"$HT" "${GRID[@]}" --out "$OUT" --list | tee "$W/cells"
VICTIM_DIR=$(awk -v k=$VICTIM '$1 == k {print $5}' "$W/cells")

say "the sbatch script"
"$HT" "${GRID[@]}" --out "$OUT" --slurm "$W/grid.sbatch"
echo "--- $W/grid.sbatch"
cat "$W/grid.sbatch"
echo "---"

wait_for() { # job $1 until nothing of it is pending or running, printing squeue now and then
    local job=$1 t0 last=-10 now
    t0=$(date +%s)
    while :; do
        now=$(($(date +%s) - t0))
        if [ $((now - last)) -ge 5 ]; then
            echo "squeue after ${now}s:"
            squeue -j "$job" -o '  %.14i %.9P %.22j %.2t %.8M %R' 2>/dev/null || true
            last=$now
        fi
        [ -z "$(squeue -h -j "$job" -t pending,running,configuring,completing,suspended 2>/dev/null)" ] && break
        [ "$now" -lt "$TIMEOUT" ] || fail "job $job still running after ${TIMEOUT}s"
        sleep 0.5
    done
    echo "final states (squeue -t all):"
    squeue -t all -j "$job" -o '  %.14i %.22j %.10T %.8M %.6c %.7m %R' 2>/dev/null || true
}

# The pids of array task $2 of job $1 on this node (the batch script execs hypertape).
task_pids() {
    local f pid
    for f in /proc/[0-9]*/environ; do
        pid=${f#/proc/}; pid=${pid%/environ}
        [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$HT" ] || continue
        tr '\0' '\n' <"$f" 2>/dev/null | grep -qx "SLURM_ARRAY_JOB_ID=$1" || continue
        tr '\0' '\n' <"$f" 2>/dev/null | grep -qx "SLURM_ARRAY_TASK_ID=$2" && echo "$pid"
    done
    return 0
}

# Stops array task $2 of job $1 between its first and second task: waits for its log to say
# "after task 0", stops its process at once (SIGSTOP), then cancels the task (scancel).
kill_after_first_task() {
    local job=$1 k=$2 log="$OUT/slurm-$1_$2.log" t0 pids
    t0=$(date +%s)
    until grep -q "after task 0," "$log" 2>/dev/null; do
        [ $(($(date +%s) - t0)) -lt "$TIMEOUT" ] || fail "task ${job}_$k never finished its first task"
        sleep 0.05
    done
    pids=$(task_pids "$job" "$k")
    if [ -n "$pids" ]; then
        kill -STOP $pids 2>/dev/null || true
    fi
    echo "task ${job}_$k logged its first task; stopped its process (pid ${pids:-none found}); scancel ${job}_$k"
    scancel "${job}_$k"
}

# Whether array task $2 of job $1 was stopped between its tasks: its log has task 0 only.
stopped_between_tasks() {
    local log="$OUT/slurm-$1_$2.log"
    grep -q "after task 0," "$log" && ! grep -q "after task 1," "$log"
}

say "submitting the array"
job=$(sbatch --parsable "$W/grid.sbatch" | cut -d';' -f1)
echo "job array $job"
kill_after_first_task "$job" "$VICTIM"
wait_for "$job"
attempt=1
until stopped_between_tasks "$job" "$VICTIM"; do
    # The task got through its second task before it was stopped: run the cell again from
    # the start and try once more.
    [ $attempt -lt 3 ] || fail "could not stop task $VICTIM between its tasks in 3 attempts"
    attempt=$((attempt + 1))
    say "cell $VICTIM finished before it was stopped: again from the start (attempt $attempt)"
    rm -rf "$VICTIM_DIR"
    job=$(sbatch --parsable --array="$VICTIM" "$W/grid.sbatch" | cut -d';' -f1)
    kill_after_first_task "$job" "$VICTIM"
    wait_for "$job"
done
echo "--- log of the killed task, $OUT/slurm-${job}_$VICTIM.log"
cat "$OUT/slurm-${job}_$VICTIM.log"
echo "---"

say "collect with cell $VICTIM missing (must exit 3 and name it)"
set +e
"$HT" "${GRID[@]}" --out "$OUT" --collect >"$W/collect1.out" 2>"$W/collect1.err"
status=$?
set -e
cat "$W/collect1.out" "$W/collect1.err"
[ $status = 3 ] || fail "collect with a missing cell exited $status, not 3"
grep -q "cell $VICTIM: hnet cl3 seed 43 .*stopped after task 0 of 2" "$W/collect1.err" ||
    fail "collect did not name cell $VICTIM as stopped after task 0"

say "resubmitting cell $VICTIM"
job2=$(sbatch --parsable --array="$VICTIM" "$W/grid.sbatch" | cut -d';' -f1)
echo "job $job2"
wait_for "$job2"
echo "--- $OUT/slurm-${job2}_$VICTIM.log"
cat "$OUT/slurm-${job2}_$VICTIM.log"
echo "---"
grep -q "resumed after task 0" "$OUT/slurm-${job2}_$VICTIM.log" || fail "the resubmitted cell did not resume after task 0"
grep -q "after task 0," "$OUT/slurm-${job2}_$VICTIM.log" && fail "the resubmitted cell learned task 0 again"

say "collect"
"$HT" "${GRID[@]}" --out "$OUT" --collect
echo "job completion records ($W/jobcomp.log):"
sed -e 's/^/  /' "$W/jobcomp.log" | cut -c1-220

say "Slurm's table against the local one"
echo "--- local $W/local/table.md"
cat "$W/local/table.md"
for f in table.md compare.json; do
    if cmp "$OUT/$f" "$W/local/$f"; then
        echo "$f: identical ($(wc -c <"$OUT/$f") bytes, sha256 $(sha256sum <"$OUT/$f" | cut -c1-16))"
    else
        diff "$W/local/$f" "$OUT/$f" | head -40
        fail "$f differs between Slurm and the local run"
    fi
done
for d in "$W"/local/*-seed*/; do
    cell=$(basename "$d")
    cmp -s <(grep -v wall_seconds "$d/accuracy_matrix.csv") <(grep -v wall_seconds "$OUT/$cell/accuracy_matrix.csv") ||
        fail "$cell: accuracy matrix differs"
done
echo "every cell's accuracy_matrix.csv identical too"
