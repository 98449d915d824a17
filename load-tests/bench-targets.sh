#!/usr/bin/env bash
# The remaining targets of BENCHMARKS.md on one machine: 19,000 phones on one hub
# process (memory per idle phone, fan-out beside the baseline of the same size), and
# acks per second recorded durably on the embedded store and on Redis.
# Usage: load-tests/bench-targets.sh
set -euo pipefail
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
hub() { # port name registry [flags]
  local p=$1 n=$2 r=$3; shift 3
  GRIDCAST_LOG=warn "$HUB" --listen "127.0.0.1:$p" --jwt-secret "$SECRET" --data-dir "$WORK/$n" \
    --registry "$r" "$@" >"$WORK/$n.log" 2>&1 &
  PIDS+=($!); LAST=$!
  until curl -sf "http://127.0.0.1:$p/readyz" >/dev/null; do sleep 0.1; done
}
ADMIN=$("$HUB" --jwt-secret "$SECRET" token --sub bench --role admin --ttl-hours 1)

"$DRILL" city --leads 19000 --out "$WORK/city19k.json"
echo "== baseline, 19,000 clients"
"$DRILL" baseline --leads 19000
echo "== one hub process, 19,000 phones (embedded store; acks after 1-3 s, after the fan-out)"
P=$(port); hub "$P" e19 "$WORK/city19k.json"
"$DRILL" fanout --hub "http://127.0.0.1:$P" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
  --leads 19000 --ack-delay-ms 1000,3000 --hub-pid "$LAST" --timeout-s 300 2>/dev/null
kill "$LAST"; wait "$LAST" 2>/dev/null || true

"$DRILL" city --leads 10000 --out "$WORK/city10k.json"
echo "== acks per second on the embedded store (10,000 phones, acks without delay)"
P=$(port); hub "$P" e10 "$WORK/city10k.json"
"$DRILL" fanout --hub "http://127.0.0.1:$P" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
  --leads 10000 --ack-delay-ms 0,0 --hub-pid "$LAST" 2>/dev/null
kill "$LAST"; wait "$LAST" 2>/dev/null || true

echo "== acks per second on Redis (10,000 phones, acks without delay)"
RP=$(port)
redis-server --bind 127.0.0.1 --port "$RP" --dir "$WORK" --save "" --appendonly yes \
  --appendfsync always --loglevel warning >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
until redis-cli -p "$RP" ping >/dev/null 2>&1; do sleep 0.05; done
P=$(port); hub "$P" r10 "$WORK/city10k.json" --redis "redis://127.0.0.1:$RP/"
"$DRILL" fanout --hub "http://127.0.0.1:$P" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
  --leads 10000 --ack-delay-ms 0,0 --hub-pid "$LAST" 2>/dev/null
