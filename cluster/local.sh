#!/usr/bin/env bash
# A Ray cluster on this machine: a head and one worker, for trying `ray job submit` locally.
#   cluster/local.sh start [WORKER_CPUS]   then: ray job submit --address http://127.0.0.1:8265 ...
#   cluster/local.sh stop
set -euo pipefail
cmd=${1:-start}
case "$cmd" in
  start)
    cpus=${2:-1}
    ray start --head --node-ip-address=127.0.0.1 --port=6380 --dashboard-host=127.0.0.1 \
      --num-cpus=1 --memory=$((2 << 30)) --object-store-memory=$((256 << 20)) --disable-usage-stats
    # The worker gets a temp dir of its own, as a node on another machine would have: sharing the
    # head's, it re-extracts a job's working directory over the one the job's driver runs in.
    ray start --address=127.0.0.1:6380 --node-ip-address=127.0.0.1 --num-cpus="$cpus" \
      --memory=$((4 << 30)) --object-store-memory=$((256 << 20)) --temp-dir="${TMPDIR:-/tmp}/raynas-ray-worker"
    echo "dashboard and job server: http://127.0.0.1:8265"
    ;;
  stop)
    ray stop --force
    ;;
  *)
    echo "usage: $0 start [WORKER_CPUS] | stop" >&2
    exit 2
    ;;
esac
