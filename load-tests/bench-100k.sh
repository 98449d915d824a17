#!/usr/bin/env bash
# 100,000 phones on one machine: a cluster of NODES hub processes (default 6) on one
# Redis (AOF, fsync every second), beside NODES baseline broadcaster processes, with
# the phones spread over the drill's own worker processes (one process may hold at
# most ~19,000 connections here). Runs the baseline, a fan-out drill and a reconnect
# storm of all the phones. Stops by itself and leaves nothing running.
# Usage: load-tests/bench-100k.sh [N] [NODES]
set -euo pipefail
N=${1:-100000}
NODES=${2:-6}
source "$(dirname "$0")/bench-common.sh"

"$DRILL" city --leads "$N" --out "$WORK/city.json"
echo "== baseline: $NODES broadcaster processes, $N clients"
"$DRILL" baseline --leads "$N" --servers "$NODES" --timeout-s 600 --json "$WORK/baseline.json" 2>&1 \
  | grep -v '^connecting'
echo "== baseline: $NODES broadcaster processes, $N clients that answer with a receipt"
"$DRILL" baseline --leads "$N" --servers "$NODES" --timeout-s 600 --receipts \
  --json "$WORK/baseline-receipts.json" 2>&1 | grep -v '^connecting'
echo "== baseline: $NODES broadcaster processes, $N clients that answer with a receipt and an ack"
"$DRILL" baseline --leads "$N" --servers "$NODES" --timeout-s 600 --acks \
  --json "$WORK/baseline-acks.json" 2>&1 | grep -v '^connecting'

start_redis everysec
HUBS=(); HUB_PIDS=()
for i in $(seq 1 "$NODES"); do
  P=$(port)
  start_hub "$P" "n$i" --node-id "n$i" --registry "$WORK/city.json" --redis "$R"
  HUB_PIDS+=("$LAST"); HUBS+=("http://127.0.0.1:$P")
done
HUB_LIST=$(IFS=,; echo "${HUBS[*]}")
PID_LIST=$(IFS=,; echo "${HUB_PIDS[*]}")
ADMIN=$(admin_token)

echo "== gridcast: $NODES-node cluster, fan-out drill, $N phones"
H0=$(cpu_s "${HUB_PIDS[@]}"); R0=$(cpu_s "$REDIS_PID"); T0=$(date +%s.%N)
TIMEFORMAT="drill (its workers included): %U s user + %S s system"
time ("$DRILL" fanout --hub "$HUB_LIST" --admin-token "$ADMIN" --jwt-secret "$SECRET" --leads "$N" \
  --hub-pid "$PID_LIST" --timeout-s 600 --json "$WORK/fanout.json" 2>&1 | grep -v '^connecting\|^drill:')
awk -v w="$(date +%s.%N)" -v w0="$T0" -v h="$(cpu_s "${HUB_PIDS[@]}")" -v h0="$H0" \
  -v r="$(cpu_s "$REDIS_PID")" -v r0="$R0" 'BEGIN { printf "CPU over the whole drill (connects included), %.1f s of wall time: hubs %.2f s, Redis %.2f s\n", w - w0, h - h0, r - r0 }'
echo "== gridcast: $NODES-node cluster, reconnect storm, $N phones"
"$DRILL" storm --hub "$HUB_LIST" --admin-token "$ADMIN" --jwt-secret "$SECRET" --leads "$N" \
  --timeout-s 600 --json "$WORK/storm.json" 2>&1 | grep -v '^connecting\|^storm:' \
  || echo "the storm drill reported phones that did not sync again (see above)"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
f = json.load(open(f"{w}/fanout.json"))
for name in ("baseline", "baseline-receipts"):
    b = json.load(open(f"{w}/{name}.json"))
    print(f"vs {name}: last delivery {f['last_delivery_ms']:.0f} / {b['last_delivery_ms']:.0f} ms = "
          f"{f['last_delivery_ms'] / b['last_delivery_ms']:.2f}x; "
          f"CPU {f['hub_cpu_fanout_s']:.2f} / {b['server_cpu_s']:.2f} s = "
          f"{f['hub_cpu_fanout_s'] / max(b['server_cpu_s'], 1e-9):.2f}x")
a = json.load(open(f"{w}/baseline-acks.json"))
print(f"vs baseline-acks: last delivery {f['last_delivery_ms']:.0f} / {a['last_delivery_ms']:.0f} ms = "
      f"{f['last_delivery_ms'] / a['last_delivery_ms']:.2f}x (target <= 2x); last ack {f['last_ack_ms']:.0f} / "
      f"{a['last_ack_ms']:.0f} ms = {f['last_ack_ms'] / max(a['last_ack_ms'], 1e-9):.2f}x; acks {f['acks_per_s']:.0f}/s")
s = json.load(open(f"{w}/storm.json"))
b = json.load(open(f"{w}/baseline.json"))
rate = s['synced'] / max(s['seconds'], 1e-9)
print(f"storm: {s['synced']}/{s['phones']} synced again in {s['seconds']:.1f} s = {rate:.0f}/s; "
      f"baseline connects {b['connect_per_s']:.0f}/s; ratio {rate / max(b['connect_per_s'], 1e-9):.2f}x")
PY
