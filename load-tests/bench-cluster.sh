#!/usr/bin/env bash
# Fan-out benchmark: one drill of N phones (default 10,000) against
#   1. one node on the embedded store,
#   2. one node in cluster mode (Redis),
#   3. three nodes in cluster mode, phones spread over them.
# Everything runs on loopback with free ports and its own redis-server; it stops by
# itself and leaves nothing running. Usage: load-tests/bench-cluster.sh [N]
set -euo pipefail
N=${1:-10000}
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p gridcast-hub -p gridcast-load-tests
HUB=target/release/gridcast-hub
DRILL=target/release/gridcast-drill
SECRET=bench-secret-0123456789abcdef
WORK=$(mktemp -d)
PIDS=()
REDIS_PID=
cleanup() {
  for p in "${PIDS[@]}" $REDIS_PID; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "hub on port $1 never became ready" >&2
  exit 1
}
start_hub() { # port node-id [extra flags...]
  local port=$1 node=$2; shift 2
  GRIDCAST_LOG=warn "$HUB" --listen "127.0.0.1:$port" --jwt-secret "$SECRET" \
    --node-id "$node" --data-dir "$WORK/data-$node" "$@" >"$WORK/$node.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$port"
}
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
admin() { "$HUB" --jwt-secret "$SECRET" token --sub bench-admin --role admin --ttl-hours 1; }
drill() { # hubs (comma-separated)
  "$DRILL" fanout --hub "$1" --admin-token "$(admin)" --jwt-secret "$SECRET" \
    --city "$N" --leads "$N" --prefix 330106 --timeout-s 120
}

echo "== 1 node, embedded store, $N phones"
P1=$(free_port)
start_hub "$P1" solo
drill "http://127.0.0.1:$P1"
stop_all

REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK" --save "" \
  --appendonly yes --appendfsync always --loglevel warning >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done
R="redis://127.0.0.1:$REDIS_PORT/"

echo "== 1 node, cluster mode (Redis), $N phones"
P1=$(free_port)
start_hub "$P1" one --redis "$R"
drill "http://127.0.0.1:$P1"
stop_all
redis-cli -p "$REDIS_PORT" flushall >/dev/null

echo "== 3 nodes, cluster mode (Redis), $N phones spread over them"
P1=$(free_port); P2=$(free_port); P3=$(free_port)
start_hub "$P1" n1 --redis "$R"
start_hub "$P2" n2 --redis "$R"
start_hub "$P3" n3 --redis "$R"
drill "http://127.0.0.1:$P1,http://127.0.0.1:$P2,http://127.0.0.1:$P3"
stop_all
kill "$REDIS_PID"
