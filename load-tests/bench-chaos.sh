#!/usr/bin/env bash
# Chaos drill: three cluster nodes on one Redis (AOF, fsync always), N phones spread
# over them (default 3,000); one node is killed with SIGKILL once half the phones have
# the drill. Its phones move to the next node, find the drill in their sync and answer.
# Passes only if every phone's ack is recorded. Usage: load-tests/bench-chaos.sh [N]
set -euo pipefail
N=${1:-3000}
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p gridcast-hub -p gridcast-load-tests
HUB=target/release/gridcast-hub
DRILL=target/release/gridcast-drill
SECRET=bench-secret-0123456789abcdef
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(port)
redis-server --bind 127.0.0.1 --port "$RP" --dir "$WORK" --save "" --appendonly yes \
  --appendfsync always --loglevel warning >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
until redis-cli -p "$RP" ping >/dev/null 2>&1; do sleep 0.05; done
"$DRILL" city --leads "$N" --out "$WORK/city.json" >/dev/null
URLS=()
for n in n1 n2 n3; do
  P=$(port)
  GRIDCAST_LOG=warn "$HUB" --listen "127.0.0.1:$P" --jwt-secret "$SECRET" --node-id "$n" \
    --data-dir "$WORK/$n" --registry "$WORK/city.json" --redis "redis://127.0.0.1:$RP/" \
    >"$WORK/$n.log" 2>&1 &
  PIDS+=($!); LAST=$!
  until curl -sf "http://127.0.0.1:$P/readyz" >/dev/null; do sleep 0.1; done
  URLS+=("http://127.0.0.1:$P")
done
ADMIN=$("$HUB" --jwt-secret "$SECRET" token --sub bench --role admin --ttl-hours 1)
echo "== chaos: $N phones over 3 nodes; node n3 (pid $LAST) killed at half the deliveries"
"$DRILL" fanout --hub "$(IFS=,; echo "${URLS[*]}")" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
  --leads "$N" --kill-pid "$LAST" --kill-after 0.5 --ack-delay-ms 200,1500 2>&1 | grep -v "^connecting\|^drill:"
