#!/usr/bin/env bash
# One hub node (embedded store) against the baseline, N phones (default 10,000), all on
# this machine over loopback: baseline broadcast, fan-out drill, reconnect storm.
# Usage: load-tests/bench-single.sh [N]
set -euo pipefail
N=${1:-10000}
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p gridcast-hub -p gridcast-load-tests
HUB=target/release/gridcast-hub
DRILL=target/release/gridcast-drill
SECRET=bench-secret-0123456789abcdef
WORK=$(mktemp -d)
HUB_PID=
cleanup() { [ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$DRILL" city --leads "$N" --out "$WORK/city.json"
GRIDCAST_LOG=warn "$HUB" --listen "127.0.0.1:$PORT" --jwt-secret "$SECRET" \
  --data-dir "$WORK/data" --registry "$WORK/city.json" >"$WORK/hub.log" 2>&1 &
HUB_PID=$!
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.1; done
ADMIN=$("$HUB" --jwt-secret "$SECRET" token --sub bench --role admin --ttl-hours 1)
echo "hub idle RSS: $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$HUB_PID/status)"

echo "== baseline: minimal broadcaster, $N clients"
"$DRILL" baseline --leads "$N"
echo "== baseline whose clients answer with a receipt as the phones do, $N clients"
"$DRILL" baseline --leads "$N" --receipts
echo "== gridcast: fan-out drill, $N phones"
"$DRILL" fanout --hub "http://127.0.0.1:$PORT" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
  --leads "$N" --hub-pid "$HUB_PID" --json "$WORK/fanout.json"
echo "== gridcast: reconnect storm, $N phones"
"$DRILL" storm --hub "http://127.0.0.1:$PORT" --admin-token "$ADMIN" --jwt-secret "$SECRET" --leads "$N"
