#!/usr/bin/env bash
# A real, tiny Slurm cluster on this machine, for the integration tests and .ci/run.
#
#   tests/cluster/local-slurm.sh up|down|status
#
# up:     installs what is missing (slurmctld slurmd slurm-client munge), starts munged,
#         writes /etc/slurm/{slurm,cgroup,gres}.conf, starts slurmctld and 4 slurmd
#         (n1..n4 on 127.0.0.1:17001-17004, 2 CPUs, 1000 MB, 2 fake GPUs each), waits
#         until every node is idle, runs a warm-up job and prints one summary line.
#         Idempotent: when the cluster is already up it returns at once.
# down:   cancels every job, then stops the daemons it started, by recorded PID.
# status: prints daemons, proctrack plugin and node states; exit 0 if up, 3 if not.
#
# All state (spool, logs, pid files, fake GPU devices) lives under one directory,
# $SMLPLAY_SLURM_DIR (default /tmp/smlplay-slurm). Clients (sbatch, squeue, ...) read
# /etc/slurm/slurm.conf and need no environment. Everything listens on loopback only.
set -euo pipefail

DIR="${SMLPLAY_SLURM_DIR:-/tmp/smlplay-slurm}"
NODES=(n1 n2 n3 n4)
NODE_PORT_BASE=17000
CTLD_PORT=6817
CONF_DIR=/etc/slurm
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SSHD_SCRIPT="$HERE/sshd.sh"
UP_TIMEOUT="${SMLPLAY_SLURM_UP_TIMEOUT:-30}"
PACKAGES=(slurmctld slurmd slurm-client munge)

log() { printf 'local-slurm: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

pid_alive() {  # pid_alive FILE: the PID recorded in FILE is a live process
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(tr -dc '0-9' <"$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# --------------------------------------------------------------------------- install
missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      printf '%s\n' "$p"
    fi
  done
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) && return 0
  [[ "$(id -u)" == 0 ]] || die "packages missing (${missing[*]}) and not root: cannot apt-get install"
  command -v apt-get >/dev/null || die "packages missing (${missing[*]}) and apt-get is not available"
  log "installing ${missing[*]}"
  # Maintainer scripts must not start system services (no systemd here, and a started
  # service would listen on all interfaces): guard with policy-rc.d unless one exists.
  local guard=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$guard"
    chmod 0755 "$guard"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  } >"$DIR/apt.log" 2>&1 || rc=$?
  if [[ -n "$guard" ]]; then
    rm -f "$guard"
    trap - EXIT
  fi
  if ((rc != 0)); then
    tail -n 20 "$DIR/apt.log" >&2 || true
    die "apt-get install ${missing[*]} failed (rc=$rc); full log in $DIR/apt.log"
  fi
}

# --------------------------------------------------------------------------- munge
start_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
      mungekey --create --force --keyfile=/etc/munge/munge.key
    else
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  rm -f /run/munge/munged.pid  # stale: nothing answers on the socket
  runuser -u munge -- /usr/sbin/munged --force
  # Only a munged that this script started is stopped by `down`.
  local i
  for i in $(seq 1 50); do
    if [[ -s /run/munge/munged.pid ]]; then
      cp /run/munge/munged.pid "$DIR/run/munged.pid"
      break
    fi
    sleep 0.05
  done
  for i in $(seq 1 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged does not answer (munge -n | unmunge fails); see /var/log/munge/munged.log"
}

# --------------------------------------------------------------------------- config
choose_proctrack() {
  # proctrack/cgroup kills processes that daemonize away from a step; it needs the
  # cgroup v1 freezer hierarchy. Fall back to proctrack/linuxproc without it, or when it
  # failed here before (recorded by cmd_up, so a later `up` does not retry every time).
  if [[ -n "${SMLPLAY_SLURM_PROCTRACK:-}" ]]; then
    printf '%s\n' "$SMLPLAY_SLURM_PROCTRACK"
  elif [[ -f "$DIR/proctrack.cgroup-failed" ]]; then
    printf 'proctrack/linuxproc\n'
  elif [[ -d /sys/fs/cgroup/freezer ]] && grep -q ' /sys/fs/cgroup/freezer cgroup ' /proc/mounts; then
    printf 'proctrack/cgroup\n'
  else
    printf 'proctrack/linuxproc\n'
  fi
}

render_config() {  # render_config PROCTRACK OUTDIR: write the three config files
  local proctrack="$1" out="$2" host i
  host="$(hostname -s)"
  mkdir -p "$out"
  {
    echo "# Written by smlplay tests/cluster/local-slurm.sh; state in $DIR"
    echo "ClusterName=smlplay"
    echo "SlurmctldHost=localhost(127.0.0.1)"
    echo "SlurmctldPort=$CTLD_PORT"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    echo "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny"
    echo "StateSaveLocation=$DIR/state"
    echo "SlurmdSpoolDir=$DIR/spool/%n"
    echo "SlurmctldPidFile=$DIR/run/slurmctld.pid"
    echo "SlurmdPidFile=$DIR/run/slurmd-%n.pid"
    echo "SlurmctldLogFile=$DIR/log/slurmctld.log"
    echo "SlurmdLogFile=$DIR/log/slurmd-%n.log"
    echo "ProctrackType=$proctrack"
    echo "TaskPlugin=task/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "AccountingStorageType=accounting_storage/none"
    echo "JobCompType=jobcomp/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_Core"
    echo "SchedulerType=sched/backfill"
    echo "SchedulerParameters=batch_sched_delay=0"
    echo "MpiDefault=none"
    echo "SwitchType=switch/none"
    echo "MailProg=/bin/true"
    echo "ReturnToService=2"
    echo "SlurmdParameters=config_overrides"
    echo "KillWait=5"
    echo "MinJobAge=300"
    echo "EnforcePartLimits=ALL"
    echo "InactiveLimit=0"
    echo "SlurmdTimeout=60"
    echo "GresTypes=gpu"
    i=0
    for n in "${NODES[@]}"; do
      i=$((i + 1))
      echo "NodeName=$n NodeHostname=$host NodeAddr=127.0.0.1 Port=$((NODE_PORT_BASE + i))" \
        "CPUs=2 RealMemory=1000 Gres=gpu:2 State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } >"$out/slurm.conf"
  {
    echo "CgroupPlugin=cgroup/v1"
    echo "CgroupAutomount=no"
    echo "ConstrainCores=no"
    echo "ConstrainRAMSpace=no"
    echo "ConstrainSwapSpace=no"
    echo "ConstrainDevices=no"
  } >"$out/cgroup.conf"
  {
    echo "AutoDetect=off"
    echo "NodeName=n[1-${#NODES[@]}] Name=gpu File=$DIR/dev/gpu[0-1]"
  } >"$out/gres.conf"
}

config_current() {  # the config in /etc/slurm is what this script would write now
  local proctrack f rc=0
  proctrack="$(choose_proctrack)"
  render_config "$proctrack" "$DIR/conf.check"
  for f in slurm.conf cgroup.conf gres.conf; do
    cmp -s "$DIR/conf.check/$f" "$CONF_DIR/$f" || rc=1
  done
  rm -rf "$DIR/conf.check"
  return "$rc"
}

write_config() {
  local proctrack="$1" i f
  mkdir -p "$CONF_DIR" "$DIR"/{state,spool,run,log,dev}
  for i in 0 1; do
    if [[ ! -c "$DIR/dev/gpu$i" ]]; then
      rm -f "$DIR/dev/gpu$i"
      mknod "$DIR/dev/gpu$i" c 1 3  # a copy of /dev/null: Slurm only needs a char device
    fi
  done
  render_config "$proctrack" "$DIR/conf.new"
  for f in slurm.conf cgroup.conf gres.conf; do
    mv "$DIR/conf.new/$f" "$CONF_DIR/$f"
  done
  rmdir "$DIR/conf.new"
  printf '%s\n' "$proctrack" >"$DIR/proctrack"
}

# --------------------------------------------------------------------------- daemons
daemons_alive() {
  local n
  pid_alive "$DIR/run/slurmctld.pid" || return 1
  for n in "${NODES[@]}"; do
    pid_alive "$DIR/run/slurmd-$n.pid" || return 1
  done
}

node_states() { sinfo -h -N -o '%N %t' 2>/dev/null | sort -u; }

nodes_ready() {  # every node idle (or already running jobs)
  local states
  states="$(node_states)" || return 1
  [[ "$(grep -cE ' (idle|mix|alloc)$' <<<"$states")" == "${#NODES[@]}" ]]
}

log_tail() {  # log_tail [FILE...]: the last lines of the given (default: all) daemon logs
  local f files=("$@")
  ((${#files[@]})) || files=("$DIR/log/slurmctld.log" "$DIR"/log/slurmd-*.log)
  for f in "${files[@]}"; do
    [[ -f "$f" ]] || continue
    printf '==> %s <==\n' "$f" >&2
    grep -v -e 'pmix' -e 'MPI: Cannot create context' "$f" | tail -n 8 >&2
  done
}

start_daemons() {  # start what is not running; report a daemon that will not start
  local n out
  if ! pid_alive "$DIR/run/slurmctld.pid"; then
    # -c: start from a clean state (no jobs or node reasons from an earlier run).
    if ! out="$(slurmctld -c 2>&1)"; then
      log "slurmctld failed to start: $out"
      log_tail "$DIR/log/slurmctld.log"
      return 1
    fi
  fi
  for n in "${NODES[@]}"; do
    if ! pid_alive "$DIR/run/slurmd-$n.pid"; then
      if ! out="$(slurmd -N "$n" 2>&1)"; then
        log "slurmd -N $n failed to start: $out"
        log_tail "$DIR/log/slurmd-$n.log"
        return 1
      fi
    fi
  done
}

wait_ready() {
  local deadline
  deadline=$(($(date +%s) + UP_TIMEOUT))
  while ! nodes_ready; do
    if (($(date +%s) >= deadline)); then
      log "nodes not idle after ${UP_TIMEOUT}s:"
      node_states >&2 || true
      sinfo -h -R >&2 2>/dev/null || true
      log_tail
      return 1
    fi
    sleep 0.1
  done
}

stop_pidfiles() {  # stop_pidfiles GRACE FILE...: SIGTERM all at once, SIGKILL after GRACE s
  local grace="$1" f pid i pids=()
  shift
  for f in "$@"; do
    if pid_alive "$f"; then
      pid="$(tr -dc '0-9' <"$f")"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for i in $(seq 1 $((grace * 20))); do
    for pid in "${pids[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then
        sleep 0.05
        continue 2
      fi
    done
    break
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid still running ${grace}s after SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$@"
}

cancel_all_jobs() {
  local jobs i
  pid_alive "$DIR/run/slurmctld.pid" || return 0
  jobs="$(squeue -h -o '%A' 2>/dev/null | tr '\n' ' ')" || return 0
  [[ -z "${jobs// /}" ]] && return 0
  # shellcheck disable=SC2086
  scancel $jobs 2>/dev/null || true
  for i in $(seq 1 100); do
    [[ -z "$(squeue -h -o '%A' 2>/dev/null)" ]] && return 0
    sleep 0.1
  done
  log "jobs still listed after scancel: $(squeue -h -o '%A %T' | tr '\n' ' ')"
}

warm_up() {
  # One step on every node proves munge, slurmd and the proctrack plugin all work.
  local out
  out="$(timeout 30 srun -N "${#NODES[@]}" --ntasks-per-node=1 -t 1 -J smlplay-warmup \
    bash -c 'echo "$SLURMD_NODENAME"' 2>&1)" || {
    log "warm-up job failed: $out"
    return 1
  }
  [[ "$(grep -c '^n[0-9]' <<<"$out")" == "${#NODES[@]}" ]] || {
    log "warm-up job printed: $out"
    return 1
  }
}

sshd_do() {
  if [[ -f "$SSHD_SCRIPT" ]]; then
    bash "$SSHD_SCRIPT" "$1"
  fi
}

# --------------------------------------------------------------------------- commands
summary() {
  local secs="$1" version
  version="$(sinfo -V 2>/dev/null | awk '{print $2}')"
  printf 'local-slurm: up in %ss: %s nodes (%s) idle, slurm %s, %s, state in %s\n' \
    "$secs" "${#NODES[@]}" "$(sinfo -h -o '%N' | head -n1)" "$version" \
    "$(cat "$DIR/proctrack")" "$DIR"
}

cmd_up() {
  local t0 proctrack
  t0="$(now)"
  if daemons_alive && config_current && nodes_ready; then
    sshd_do up
    summary "$(elapsed "$t0")"
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "must run as root (starts munged, slurmctld and slurmd)"
  mkdir -p "$DIR"/{state,spool,run,log,dev}
  install_packages
  start_munge
  proctrack="$(choose_proctrack)"
  # Daemons left from an earlier, half-finished `up` read a config we are about to rewrite.
  cmd_stop_daemons
  write_config "$proctrack"
  if ! start_daemons || ! wait_ready || ! warm_up; then
    if [[ "$proctrack" == proctrack/cgroup && -z "${SMLPLAY_SLURM_PROCTRACK:-}" ]]; then
      log "proctrack/cgroup does not work here; retrying with proctrack/linuxproc"
      log_tail
      date >"$DIR/proctrack.cgroup-failed"
      cmd_stop_daemons
      write_config proctrack/linuxproc
      start_daemons || die "cluster did not come up (logs in $DIR/log)"
      wait_ready || die "cluster did not come up (logs in $DIR/log)"
      warm_up || die "warm-up job failed (logs in $DIR/log)"
    else
      die "cluster did not come up (logs in $DIR/log)"
    fi
  fi
  sshd_do up
  summary "$(elapsed "$t0")"
}

cmd_stop_daemons() {
  local n files=("$DIR/run/slurmctld.pid")
  cancel_all_jobs
  for n in "${NODES[@]}"; do
    files+=("$DIR/run/slurmd-$n.pid")
  done
  # Each daemon takes 1-2 s to shut down, so all go at once. The controller starts from a
  # clean state (-c) and no job is left, so nothing is lost if one has to be killed.
  stop_pidfiles 5 "${files[@]}"
}

cmd_down() {
  local t0 sshd_pid=""
  t0="$(now)"
  if [[ -f "$SSHD_SCRIPT" ]]; then
    bash "$SSHD_SCRIPT" down &
    sshd_pid=$!
  fi
  cmd_stop_daemons
  if [[ -f "$DIR/run/munged.pid" ]]; then
    stop_pidfiles 5 "$DIR/run/munged.pid"
  fi
  if [[ -n "$sshd_pid" ]]; then
    wait "$sshd_pid" || log "sshd.sh down failed"
  fi
  printf 'local-slurm: down in %ss\n' "$(elapsed "$t0")"
}

cmd_status() {
  local n up=1 state
  printf 'dir:        %s\n' "$DIR"
  printf 'proctrack:  %s\n' "$(cat "$DIR/proctrack" 2>/dev/null || echo unknown)"
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then state=running; else state=down; up=0; fi
  printf 'munged:     %s\n' "$state"
  if pid_alive "$DIR/run/slurmctld.pid"; then
    state="running pid $(cat "$DIR/run/slurmctld.pid")"
  else
    state=down
    up=0
  fi
  printf 'slurmctld:  %s\n' "$state"
  for n in "${NODES[@]}"; do
    if pid_alive "$DIR/run/slurmd-$n.pid"; then
      state="running pid $(cat "$DIR/run/slurmd-$n.pid")"
    else
      state=down
      up=0
    fi
    printf 'slurmd %s:  %s\n' "$n" "$state"
  done
  if ((up)); then
    printf 'nodes:      %s\n' "$(node_states | tr '\n' ',' | sed 's/,$//')"
    nodes_ready || up=0
  fi
  if ((up)); then echo "status:     up"; return 0; fi
  echo "status:     down"
  return 3
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
