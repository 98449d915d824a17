#!/usr/bin/env bash
# One hub node (embedded store) against the baseline, N phones (default 10,000), all on
# this machine over loopback: baseline broadcast (silent, receipts, receipts + acks),
# fan-out drill, reconnect storm.
# Usage: load-tests/bench-single.sh [N]
set -euo pipefail
N=${1:-10000}
source "$(dirname "$0")/bench-common.sh"
one_hub "$N"
echo "hub idle RSS: $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$HUB_PID/status)"

echo "== baseline: minimal broadcaster, $N clients"
"$DRILL" baseline --leads "$N" --json "$WORK/baseline.json"
echo "== baseline whose clients answer with a receipt as the phones do, $N clients"
"$DRILL" baseline --leads "$N" --receipts
echo "== baseline whose clients also ack after the drill's delay, answered ok, $N clients"
"$DRILL" baseline --leads "$N" --acks
echo "== gridcast: fan-out drill, $N phones"
"$DRILL" fanout --hub "http://127.0.0.1:$PORT" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
  --leads "$N" --hub-pid "$HUB_PID" --json "$WORK/fanout.json"
echo "== gridcast: reconnect storm, $N phones"
"$DRILL" storm --hub "http://127.0.0.1:$PORT" --admin-token "$ADMIN" --jwt-secret "$SECRET" --leads "$N" \
  --json "$WORK/storm.json"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
s = json.load(open(f"{w}/storm.json"))
b = json.load(open(f"{w}/baseline.json"))
rate = s['synced'] / max(s['seconds'], 1e-9)
print(f"storm: {s['synced']}/{s['phones']} synced again in {s['seconds']:.2f} s = {rate:.0f}/s; "
      f"baseline connects {b['connect_per_s']:.0f}/s; ratio {rate / max(b['connect_per_s'], 1e-9):.2f}x")
PY
