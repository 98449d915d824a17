#!/usr/bin/env bash
# Fan-out benchmark: one drill of N phones (default 10,000) against
#   1. one node on the embedded store,
#   2. one node in cluster mode (Redis),
#   3. three nodes in cluster mode, phones spread over them.
# Everything runs on loopback with free ports and its own redis-server; it stops by
# itself and leaves nothing running. Usage: load-tests/bench-cluster.sh [N]
set -euo pipefail
N=${1:-10000}
source "$(dirname "$0")/bench-common.sh"
drill() { # hubs (comma-separated)
  "$DRILL" fanout --hub "$1" --admin-token "$(admin_token)" --jwt-secret "$SECRET" \
    --city "$N" --leads "$N" --prefix 330106 --timeout-s 120
}

echo "== 1 node, embedded store, $N phones"
P1=$(port)
start_hub "$P1" solo --node-id solo
drill "http://127.0.0.1:$P1"
stop_hubs

start_redis always

echo "== 1 node, cluster mode (Redis), $N phones"
P1=$(port)
start_hub "$P1" one --node-id one --redis "$R"
drill "http://127.0.0.1:$P1"
stop_hubs
redis-cli -p "$RP" flushall >/dev/null

echo "== 3 nodes, cluster mode (Redis), $N phones spread over them"
P1=$(port); P2=$(port); P3=$(port)
start_hub "$P1" n1 --node-id n1 --redis "$R"
start_hub "$P2" n2 --node-id n2 --redis "$R"
start_hub "$P3" n3 --node-id n3 --redis "$R"
drill "http://127.0.0.1:$P1,http://127.0.0.1:$P2,http://127.0.0.1:$P3"
stop_hubs
