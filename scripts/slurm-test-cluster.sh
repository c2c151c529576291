#!/usr/bin/env bash
# A private, real single-node Slurm cluster for the project's tests.
#
#   scripts/slurm-test-cluster.sh start|stop [--shared]|status|env
#   eval "$(scripts/slurm-test-cluster.sh start)"    # then sbatch/squeue/sacct talk to it
#
# Everything this cluster owns (config, state, spool, logs, pid files) lives in SLURM_TEST_DIR;
# /etc/slurm is never touched. munged and MariaDB are shared by every such cluster on the machine.
# Two clusters with different dirs, ports and names run side by side. Runs as root (SlurmUser=root);
# jobs run as whoever submits them. Diagnostics go to stderr, only `export SLURM_CONF=...` to stdout.
# See docs/slurm-notes.md for the facts this is built on.
#
# SLURM_TEST_POLICED=1 starts the *policed* cluster instead (default dir /tmp/experiments-slurm-policed,
# ports 16831-16833, name exptestpoliced), which behaves like a shared site cluster:
#   - AccountingStorageEnforce=associations,limits,qos; a job_submit.lua refuses jobs of non-root
#     users that name no account. Accounts `physics` (every user of SLURM_TEST_POLICED_USERS,
#     default "expuser1 expuser2", which must exist as Unix users) and `chemistry` (the first one,
#     whose association there has MaxSubmitJobs=50, MaxJobs=10, GrpTRES=gres/gpu=2).
#   - QOS `normal` (everyone's default): MaxSubmitJobsPerUser=100, MaxJobsPerUser=20,
#     GrpTRES=gres/gpu=4. QOS `high` preempts `normal` jobs by requeueing them (PreemptType=preempt/qos).
#   - partitions short (default, 1 h), medium (4 h), gpu (12 h, at most 16 CPUs per node), no
#     oversubscription, EnforcePartLimits=NO (too-long jobs are accepted and pend PartitionTimeLimit).
#   - gres/gpu is an accounted TRES (other clusters: only with SLURM_TEST_GPU_ACCOUNTING=1).
#   - reservation `maintenance` (MAINT, whole node, 2 h) kept 5 to 6 hours in the future: each
#     `start` moves it back if it has come closer. Jobs whose time limit reaches into it pend with
#     "ReqNodeNotAvail, Reserved for maintenance".
set -euo pipefail

POLICED=${SLURM_TEST_POLICED:-0}
if ((POLICED)); then d_dir=/tmp/experiments-slurm-policed d_port=16831 d_name=exptestpoliced
else d_dir=/tmp/experiments-slurm d_port=16817 d_name=exptest; fi
DIR=${SLURM_TEST_DIR:-$d_dir}
MAX_ARRAY_SIZE=${SLURM_TEST_MAX_ARRAY_SIZE:-1001}
# Every array *task* counts against MaxJobCount: an sbatch beyond it is answered "temporarily
# unable to accept job" and sbatch sleeps and retries (bench_planning's million-task launch
# raises it).
MAX_JOB_COUNT=${SLURM_TEST_MAX_JOB_COUNT:-100000}
CTLD_PORT=${SLURM_TEST_CTLD_PORT:-$d_port}
SLURMD_PORT=${SLURM_TEST_SLURMD_PORT:-$((d_port + 1))}
DBD_PORT=${SLURM_TEST_DBD_PORT:-$((d_port + 2))}
ACCOUNTING=${SLURM_TEST_ACCOUNTING:-1}
# gres/gpu as an accounted TRES (AccountingStorageTRES=gres/gpu). Off by default, as in Slurm:
# partitions' TRES then list no GPUs although the node has Gres=gpu:A100:8 (what most sites
# run, and what `drylaunch --validate` must read right). The policed cluster needs it on.
GPU_ACCOUNTING=${SLURM_TEST_GPU_ACCOUNTING:-$POLICED}
CLUSTER=${SLURM_TEST_CLUSTER_NAME:-$d_name}
# FirstJobId: a started cluster's next job id (restart its slurmctld with a fresh state to use
# it); the "second" test cluster sets it to collide with the default cluster's ids.
FIRST_JOB_ID=${SLURM_TEST_FIRST_JOB_ID:-}
read -r -a POLICED_USERS <<<"${SLURM_TEST_POLICED_USERS:-expuser1 expuser2}"
RESV_LEAD_H=6 RESV_MIN_LEAD_H=5   # the maintenance window starts 5-6 h ahead (policed cluster)
CLUSTER=${CLUSTER,,}                       # Slurm lower-cases cluster names anyway
HOST=$(hostname -s)
DB_NAME="slurm_acct_${CLUSTER}" DB_USER=slurmtest DB_PASS=slurmtest   # local, test-only credentials
WAIT_SECS=${SLURM_TEST_WAIT_SECS:-60}

export SLURM_CONF="$DIR/slurm.conf"       # daemons and clients read this (slurmdbd: its directory)
unset SLURM_CLUSTERS SLURM_PARTITION SBATCH_PARTITION   # don't let the caller's env redirect us

log() { echo "slurm-test-cluster[$CLUSTER]: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
((POLICED)) && ! ((ACCOUNTING)) && die "the policed cluster needs accounting (SLURM_TEST_ACCOUNTING=1)"
((POLICED)) && ! ((GPU_ACCOUNTING)) &&
  die "the policed cluster limits GPUs: it needs gres/gpu accounting (SLURM_TEST_GPU_ACCOUNTING=1)"

# Pid from a pid file if that process is alive and really is the daemon named $2.
live_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ -n $pid && "$(cat /proc/"$pid"/comm 2>/dev/null)" == "$2" ]] && echo "$pid"
}

# Poll a command every 0.1 s for at most $1 seconds.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# Start a daemon, its early output (before it opens its log) in log/NAME.out. It must not inherit our
# lock fds (8, 9) nor our stdout/stderr: it would hold the lock, or a caller's pipe, open forever.
daemon() { local name=$1; shift; "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 8>&- 9>&-; }

fail_with_logs() {
  log "ERROR: $*"
  local f
  for f in "$DIR"/log/*; do
    [[ -f $f ]] && { echo "----- tail of $f -----" >&2; tail -n 25 "$f" >&2; }
  done
  exit 1
}

install_packages() {
  local b missing=0
  for b in slurmctld slurmd slurmdbd sbatch sacctmgr munged mysqld_safe; do
    command -v "$b" >/dev/null || [[ -x /usr/sbin/$b ]] || missing=1
  done
  ((missing)) || return 0
  ((EUID == 0)) || die "Slurm is not installed and we are not root: cannot apt-get install it"
  log "installing slurm-wlm, munge, slurmdbd, mariadb-server (takes a minute or two)"
  # waits for another apt-get or dpkg holding apt's locks (scripts/apt-install.sh)
  bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" slurm-wlm munge slurmdbd mariadb-server ||
    die "could not install Slurm, munge and MariaDB (apt-get's messages are above)"
}

# munged and MariaDB are shared between clusters: start them once, under a machine-wide lock.
start_shared() {
  exec 8>/tmp/experiments-slurm-shared.lock
  flock 8
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    mkdir -p /run/munge && chown munge:munge /run/munge
    daemon munged su -s /bin/sh munge -c /usr/sbin/munged
    wait_for 10 sh -c 'munge -n | unmunge' || die "munged did not come up"
  fi
  if ((ACCOUNTING)); then
    if ! mysqladmin ping >/dev/null 2>&1; then
      log "starting MariaDB"
      mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
      daemon mysqld setsid -f mysqld_safe --user=mysql
      wait_for 60 mysqladmin ping || die "MariaDB did not come up (see /var/log/mysql or syslog)"
    fi
    mysql -u root <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost';
SQL
  fi
  flock -u 8
}

# Write slurm.conf, gres.conf (8 fake A100s backed by empty files) and slurmdbd.conf.
write_config() {
  local acct i
  for i in 0 1 2 3 4 5 6 7; do : >>"$DIR/fakegpu$i"; done
  if ((ACCOUNTING)); then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT"
  else
    acct="AccountingStorageType=accounting_storage/none"   # sacct: "accounting storage is disabled"
  fi
  policy_lines
  if [[ -n $FIRST_JOB_ID ]]; then acct+=$'\nFirstJobId='"$FIRST_JOB_ID"; fi
  # SchedulerParameters, measured on 2 cores: trivial array tasks complete at ~33/s with the defaults,
  # ~50-60/s with these (sched_interval=1 is what matters; the machine is then CPU bound). No
  # submit-time delay, backfill every second. jobacct_gather/none: sacct still has State/ExitCode.
  cat >"$DIR/slurm.conf.new" <<EOF
# Generated by scripts/slurm-test-cluster.sh; edits are overwritten.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,sched_min_interval=0,batch_sched_delay=0,bf_interval=1,default_queue_depth=1000,partition_job_depth=0
MaxArraySize=$MAX_ARRAY_SIZE
MaxJobCount=$MAX_JOB_COUNT
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
$acct
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=32 RealMemory=200000 Gres=gpu:A100:8 State=UNKNOWN
$PARTITIONS
EOF
  echo "NodeName=$HOST Name=gpu Type=A100 File=$DIR/fakegpu[0-7]" >"$DIR/gres.conf"
  (umask 077; cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
  )
  chmod 600 "$DIR/slurmdbd.conf"
  write_job_submit_lua
  # A running cluster with a different config (e.g. other MaxArraySize) is restarted.
  if { changed slurm.conf || changed job_submit.lua; } &&
     live_pid "$DIR/slurmctld.pid" slurmctld >/dev/null; then
    log "configuration changed: restarting the cluster"
    stop_daemons
  fi
  mv "$DIR/slurm.conf.new" "$DIR/slurm.conf"
  if [[ -f $DIR/job_submit.lua.new ]]; then mv "$DIR/job_submit.lua.new" "$DIR/job_submit.lua"
  else rm -f "$DIR/job_submit.lua"; fi
}

# Whether $DIR/$1.new differs from $DIR/$1 (one of them missing counts as a difference).
changed() { [[ -f $DIR/$1 || -f $DIR/$1.new ]] && ! cmp -s "$DIR/$1" "$DIR/$1.new"; }

# PARTITIONS, and the policed cluster's extra keys appended to write_config's $acct (the default
# cluster's slurm.conf stays byte for byte what it was, so a running one is not restarted).
policy_lines() {
  if ! ((POLICED)); then
    if ((GPU_ACCOUNTING && ACCOUNTING)); then acct+=$'\nAccountingStorageTRES=gres/gpu'; fi
    PARTITIONS="PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP OverSubscribe=FORCE:8"
    return
  fi
  # gres/gpu must be an accounted TRES, or GrpTRES=gres/gpu=4 would limit nothing.
  acct+="
AccountingStorageEnforce=associations,limits,qos
AccountingStorageTRES=gres/gpu
EnforcePartLimits=NO
JobSubmitPlugins=lua
PreemptType=preempt/qos
PreemptMode=REQUEUE"
  PARTITIONS="PartitionName=short Nodes=$HOST Default=YES DefaultTime=00:30:00 MaxTime=01:00:00 MaxNodes=1 State=UP
PartitionName=medium Nodes=$HOST DefaultTime=01:00:00 MaxTime=04:00:00 MaxNodes=1 State=UP
PartitionName=gpu Nodes=$HOST DefaultTime=01:00:00 MaxTime=12:00:00 MaxNodes=1 MaxCPUsPerNode=16 State=UP"
}

# job_submit.lua (policed cluster only; slurmctld reads it beside slurm.conf): non-root users must
# name an account, as on sites where one person works for several projects.
write_job_submit_lua() {
  ((POLICED)) || return 0
  cat >"$DIR/job_submit.lua.new" <<'EOF'
-- Generated by scripts/slurm-test-cluster.sh (policed cluster); edits are overwritten.
function slurm_job_submit(job_desc, part_list, submit_uid)
   if submit_uid ~= 0 and (job_desc.account == nil or job_desc.account == '') then
      slurm.log_user("this cluster requires an account: add --account=<name> " ..
                     "(`sacctmgr show assoc user=$USER format=account` lists yours)")
      return slurm.ESLURM_INVALID_ACCOUNT
   end
   return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
   return slurm.SUCCESS
end
EOF
}

# Accounts, associations and QOS of the policed cluster, idempotently (sacctmgr exits 1 with
# "Nothing new added" for what exists, so the end state is checked instead). Runs once slurmctld
# is up: the gres/gpu TRES is in the database only after slurmctld has registered it.
provision() {
  local u first=${POLICED_USERS[0]:-}
  ((POLICED)) || return 0
  for u in "${POLICED_USERS[@]}"; do
    id -u "$u" >/dev/null 2>&1 ||
      die "user $u does not exist: create it (useradd -m $u) or set SLURM_TEST_POLICED_USERS"
  done
  if [[ -f $DIR/provisioned ]] && [[ "$(accounting_state)" == "$(cat "$DIR/provisioned")" ]]; then
    return 0   # as left by the last start: skip the slow writes (~0.5 s each)
  fi
  sq add qos high
  sq modify qos where name=normal set MaxSubmitJobsPerUser=100 MaxJobsPerUser=20 GrpTRES=gres/gpu=4
  sq modify qos where name=high set Priority=100 Preempt=normal MaxSubmitJobsPerUser=20 MaxJobsPerUser=4
  sq add account physics,chemistry Cluster="$CLUSTER" Description=test Organization=test
  sq modify account where name=physics,chemistry cluster="$CLUSTER" set QOS=normal,high DefaultQOS=normal
  for u in "${POLICED_USERS[@]}"; do
    sq add user "$u" Account=physics DefaultAccount=physics Cluster="$CLUSTER"
  done
  if [[ -n $first ]]; then   # limits on an association too (sacctmgr show assoc must show some)
    sq add user "$first" Account=chemistry Cluster="$CLUSTER"
    sq modify user where name="$first" account=chemistry cluster="$CLUSTER" \
      set MaxSubmitJobs=50 MaxJobs=10 GrpTRES=gres/gpu=2
  fi
  [[ "$(sacctmgr -n -P show qos normal format=MaxSubmitPU,MaxJobsPU,GrpTRES)" == "100|20|gres/gpu=4" ]] ||
    fail_with_logs "QOS normal lacks its limits: $(sacctmgr -n -P show qos normal 2>&1)"
  for u in "${POLICED_USERS[@]}"; do
    [[ -n "$(sacctmgr -n -P show assoc cluster="$CLUSTER" user="$u" account=physics format=user)" ]] ||
      fail_with_logs "no association for $u in account physics"
  done
  accounting_state >"$DIR/provisioned"
}

accounting_state() {   # what provision() sets up, as sacctmgr shows it (fast reads)
  echo "users: ${POLICED_USERS[*]}; provision() $(declare -f provision | cksum)"   # edits count
  sacctmgr -n -P show qos format=name,priority,preempt,maxsubmitpu,maxjobspu,grptres
  sacctmgr -n -P show assoc cluster="$CLUSTER" format=account,user,qos,defaultqos,maxsubmit,maxjobs,grptres
}

sq() { sacctmgr -i "$@" >/dev/null 2>&1 || true; }   # see provision()

# The maintenance reservation, RESV_MIN_LEAD_H to RESV_LEAD_H hours ahead (see the header).
arm_reservation() {
  local start
  ((POLICED)) || return 0
  start=$(SLURM_TIME_FORMAT=%s scontrol show reservation maintenance -o 2>/dev/null |
          sed -n 's/.*StartTime=\([0-9]*\) .*/\1/p') || true   # none yet: scontrol fails
  if [[ -z $start ]]; then
    log "creating reservation maintenance in ${RESV_LEAD_H} h"
    scontrol create reservation ReservationName=maintenance StartTime="now+${RESV_LEAD_H}hours" \
      Duration=02:00:00 Nodes=ALL Users=root Flags=MAINT,IGNORE_JOBS >&2 ||
      fail_with_logs "creating the maintenance reservation failed"
  elif ((start < $(date +%s) + RESV_MIN_LEAD_H * 3600)); then
    log "moving reservation maintenance to ${RESV_LEAD_H} h from now"
    scontrol update ReservationName=maintenance StartTime="now+${RESV_LEAD_H}hours" \
      Duration=02:00:00 >&2 || fail_with_logs "moving the maintenance reservation failed"
  fi
}

node_up() {   # the node answers and is usable (idle, or busy with other jobs)
  [[ "$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n1)" =~ ^(idle|mixed|allocated)$ ]]
}

job_done() { [[ "$(squeue -h -t all -j "$1" -o %T 2>/dev/null)" == COMPLETED ]]; }

start() {
  local t0=$SECONDS fresh=0 jobid
  install_packages
  mkdir -p "$DIR"/{state,spool,log}
  start_shared
  exec 9>"$DIR.lock"; flock 9             # one `start` at a time per cluster
  write_config
  if ((ACCOUNTING)) && ! live_pid "$DIR/slurmdbd.pid" slurmdbd >/dev/null; then
    log "starting slurmdbd on port $DBD_PORT"
    daemon slurmdbd slurmdbd || fail_with_logs "slurmdbd failed to start"
    wait_for "$WAIT_SECS" sacctmgr -n list cluster || fail_with_logs "slurmdbd does not answer"
  fi
  if ((ACCOUNTING)) && [[ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster 2>/dev/null)" ]]; then
    sacctmgr -i add cluster "$CLUSTER" >&2 || fail_with_logs "sacctmgr add cluster failed"
  fi
  if ! live_pid "$DIR/slurmctld.pid" slurmctld >/dev/null; then
    log "starting slurmctld on port $CTLD_PORT"
    daemon slurmctld slurmctld -i || fail_with_logs "slurmctld failed to start"
    fresh=1
  fi
  if ! live_pid "$DIR/slurmd.pid" slurmd >/dev/null; then
    log "starting slurmd on port $SLURMD_PORT"
    daemon slurmd slurmd || fail_with_logs "slurmd failed to start"
    fresh=1
  fi
  wait_for "$WAIT_SECS" node_up ||
    fail_with_logs "node $HOST not idle after ${WAIT_SECS}s: $(sinfo -N -h -o '%T %E' 2>&1)"
  provision
  arm_reservation
  if ((fresh)); then   # prove that a job really runs (skipped when the cluster was already up)
    jobid=$(sbatch --parsable -J smoke -o /dev/null -e /dev/null --chdir=/ --wrap true </dev/null) ||
      fail_with_logs "sbatch of the smoke job failed"
    jobid=${jobid%%;*}
    wait_for "$WAIT_SECS" job_done "$jobid" ||
      fail_with_logs "smoke job $jobid did not complete: $(squeue -h -t all -j "$jobid" -o '%T %r' 2>&1)"
  fi
  log "cluster up in $((SECONDS - t0))s (ctld :$CTLD_PORT, slurmd :$SLURMD_PORT, dir $DIR)"
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop_daemons() {   # signal all of them at once, then wait (slurmctld takes ~2 s to save state)
  local d pid pids=()
  for d in slurmd slurmctld slurmdbd; do
    pid=$(live_pid "$DIR/$d.pid" "$d") || continue
    log "stopping $d (pid $pid)"
    kill "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    wait_for 15 sh -c "! kill -0 $pid" || { log "pid $pid did not exit: killing it"; kill -9 "$pid" || true; }
  done
  rm -f "$DIR"/{slurmd,slurmctld,slurmdbd}.pid
}

stop() {
  stop_daemons
  if [[ ${1:-} == --shared ]]; then   # also munged and MariaDB, which other clusters may use
    mysqladmin shutdown 2>/dev/null && log "stopped MariaDB" || true
    pid=$(live_pid /run/munge/munged.pid munged) && kill "$pid" && log "stopped munged" || true
  fi
}

status() { timeout 20 sinfo -h >/dev/null 2>&1; }

case ${1:-} in
  start) start ;;
  stop) stop "${2:-}" ;;
  status) status && log "cluster answers sinfo" || { log "cluster does not answer sinfo"; exit 1; } ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 start|stop [--shared]|status|env" >&2; exit 2 ;;
esac
