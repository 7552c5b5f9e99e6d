#!/usr/bin/env bash
# A Ray cluster on this machine: a head and one worker, for trying `ray job submit` locally.
#   cluster/local.sh start [WORKER_CPUS]   then: RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 ...
#   cluster/local.sh status
#   cluster/local.sh stop                  stops this cluster only; other Ray instances here keep running
#
# Everything of this cluster lives under one temp dir of its own (RAYNAS_LOCAL_RAY_DIR), so a plain
# `ray.init()` elsewhere on the machine neither finds nor joins it. Each `ray start` runs in a
# process group of its own, which the node's daemons and workers inherit; `stop` ends those two
# groups and nothing else (`ray stop` has no address: it would end every Ray on the machine).
#
# The node's agents listen on free ports, not Ray's fixed defaults: another Ray on this machine (a
# plain `ray.init()`) holds those, and a job server whose agent cannot bind accepts no job. The
# dashboard and job server keep port 8265: a Ray elsewhere here with its dashboard on takes that.
#
# Token auth is on (RAY_AUTH_MODE=token unless you set it otherwise): `start` makes ~/.ray/auth_token
# if there is none, and every client of this cluster (ray job submit, ray status, JobSubmissionClient,
# ray.init(address=...)) needs RAY_AUTH_MODE=token in its environment to send that token.
set -euo pipefail
cmd=${1:-start}
dir=${RAYNAS_LOCAL_RAY_DIR:-${TMPDIR:-/tmp}/raynas-local-ray}
port=6380
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}

ours() {  # the process group $1 is a node of this cluster: one of its processes runs from our temp dir
  local pid
  for pid in $(pgrep -g "$1" 2>/dev/null); do
    # a group id can be reused once its processes are gone: the temp dir tells ours from others
    ps -ww -o args= -p "$pid" 2>/dev/null | grep -qF -- "$dir" && return 0
  done
  return 1
}

start_node() {  # NAME ray-start-args...: start one node in a new process group, record the group
  local name=$1
  shift
  set -m  # job control: the background job below gets a process group of its own
  ray start "$@" &
  local pgid=$!
  set +m
  echo "$pgid" >"$dir/$name.pgid"
  wait "$pgid"
}

tree() {  # the processes of group $1 and all their descendants, whatever group they moved to
  ps -A -o pid= -o ppid= -o pgid= | awk -v g="$1" '
    { parent[$1] = $2; if ($3 == g) keep[$1] = 1 }
    END {
      do {
        more = 0
        for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; more = 1 }
      } while (more)
      for (p in keep) print p
    }'
}

free_port() {  # a TCP port no process listens on now (Ray's fixed defaults clash with another Ray here)
  "${PYTHON:-python3}" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

any_alive() {
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}

stop_node() {  # NAME: end the process group recorded for that node, and what its processes started
  local file="$dir/$1.pgid" pgid pids
  [ -f "$file" ] || return 0
  pgid=$(cat "$file")
  if ours "$pgid"; then
    # Ray's workers and job drivers run in groups of their own, below the node's daemons: the whole
    # tree is taken now, before the daemons exit and their children lose their parent.
    pids=$(tree "$pgid")
    # SIGTERM first, as `ray stop` does; the GCS may ignore it, so SIGKILL what is left after a while.
    # shellcheck disable=SC2086  # one word per PID
    kill -TERM -- "-$pgid" $pids 2>/dev/null || true
    for _ in $(seq 1 20); do
      # shellcheck disable=SC2086
      kill -0 -- "-$pgid" 2>/dev/null || any_alive $pids || break
      sleep 0.25
    done
    # shellcheck disable=SC2086
    kill -KILL -- "-$pgid" $pids 2>/dev/null || true
  fi
  rm -f "$file"
}

case "$cmd" in
  start)
    cpus=${2:-1}
    mkdir -p "$dir"
    for node in head worker; do
      if [ -f "$dir/$node.pgid" ] && ours "$(cat "$dir/$node.pgid")"; then
        echo "already running (from $dir); run: $0 stop" >&2
        exit 1
      fi
    done
    if [ "$RAY_AUTH_MODE" = token ]; then ray get-auth-token --generate >/dev/null; fi
    start_node head --head --node-ip-address=127.0.0.1 --port=$port --dashboard-host=127.0.0.1 \
      --num-cpus=1 --memory=$((2 << 30)) --object-store-memory=$((256 << 20)) --disable-usage-stats \
      --temp-dir="$dir/head" --ray-client-server-port="$(free_port)" --dashboard-agent-listen-port="$(free_port)"
    # The worker gets a temp dir of its own, as a node on another machine would have: sharing the
    # head's, it re-extracts a job's working directory over the one the job's driver runs in.
    start_node worker --address=127.0.0.1:$port --node-ip-address=127.0.0.1 --num-cpus="$cpus" \
      --memory=$((4 << 30)) --object-store-memory=$((256 << 20)) --temp-dir="$dir/worker" \
      --dashboard-agent-listen-port="$(free_port)"
    echo "GCS: 127.0.0.1:$port  dashboard and job server: http://127.0.0.1:8265"
    if [ "$RAY_AUTH_MODE" = token ]; then echo "clients need: export RAY_AUTH_MODE=token"; fi
    ;;
  status)
    ray status --address=127.0.0.1:$port
    ;;
  stop)
    # the worker node first, then the head (the order `ray stop` keeps: raylets before the GCS)
    stop_node worker
    stop_node head
    ;;
  *)
    echo "usage: $0 start [WORKER_CPUS] | status | stop" >&2
    exit 2
    ;;
esac
