#!/usr/bin/env bash
# MQTT phones beside WebSocket ones on one hub node (embedded store), through a
# Mosquitto of its own (the shipped deploy/compose settings for queues and in-flight
# windows): the fan-out drill with every phone on WebSocket, then with SHARE of them on
# MQTT (default 5,000 phones, a third; skipped when SHARE is 1); the broker alone
# delivering one QoS 1 message to N subscribers (silent, then answering with a
# receipt); and the drill with every phone on MQTT; RUNS times (default 1), each run's
# ratios printed at its end and all of them at the end.
# Usage: load-tests/bench-mqtt.sh [N] [SHARE] [RUNS]
set -euo pipefail
N=${1:-5000}
SHARE=${2:-0.33}
RUNS=${3:-1}
source "$(dirname "$0")/bench-common.sh"
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { echo "needs mosquitto" >&2; exit 1; }
MB=$(command -v mosquitto || echo /usr/sbin/mosquitto)
MP=$(port)
cat >"$WORK/mosquitto.conf" <<CONF
listener $MP 127.0.0.1
allow_anonymous true
persistence false
log_type error
$(grep -E '^(max_queued_messages|max_inflight_messages|max_queued_bytes)' deploy/compose/mosquitto.conf)
CONF
"$MB" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!); BROKER_PID=$!
until (echo >"/dev/tcp/127.0.0.1/$MP") 2>/dev/null; do sleep 0.05; done
one_hub "$N" --mqtt "mqtt://127.0.0.1:$MP"
summary() {
  python3 - "$WORK" "$1" "$SHARE" <<'PY'
import json, sys
w, r, share = sys.argv[1], sys.argv[2], float(sys.argv[3])
j = lambda n: json.load(open(f"{w}/{n}-{r}.json"))
m, b, br = j("mqtt-only"), j("broker"), j("broker-receipts")
if share < 1:
    ws, mix = j("ws"), j("mixed")
    by = mix.get("delivery_by_channel") or {}
    print(f"run {r}: a third on MQTT: connects {mix['connect_per_s']:.0f}/s vs {ws['connect_per_s']:.0f}/s = "
          f"{mix['connect_per_s'] / ws['connect_per_s']:.2f}x (>= 0.5x); p99 {mix['delivery_ms']['p99']:.1f} vs "
          f"{ws['delivery_ms']['p99']:.1f} ms = {mix['delivery_ms']['p99'] / ws['delivery_ms']['p99']:.2f}x (<= 1.5x); "
          f"acks ok {mix['acked']}/{mix['connected']}; p99 ws {by.get('ws', {}).get('p99', 0):.1f} mqtt {by.get('mqtt', {}).get('p99', 0):.1f} ms")
print(f"run {r}: all on MQTT: last delivery {m['last_delivery_ms']:.1f} ms; broker alone {b['last_delivery_ms']:.1f} ms = "
      f"{m['last_delivery_ms'] / b['last_delivery_ms']:.2f}x (<= 1.5x); broker whose clients answer with a receipt "
      f"{br['last_delivery_ms']:.1f} ms = {m['last_delivery_ms'] / br['last_delivery_ms']:.2f}x; acks ok {m['acked']}/{m['connected']}")
PY
}
FAN=(--hub "http://127.0.0.1:$PORT" --admin-token "$ADMIN" --jwt-secret "$SECRET" --leads "$N" --hub-pid "$HUB_PID")
for r in $(seq 1 "$RUNS"); do
  if python3 -c "import sys; sys.exit(0 if float('$SHARE') < 1 else 1)"; then
    echo "== run $r: fan-out drill, $N phones on WebSocket"
    "$DRILL" fanout "${FAN[@]}" --json "$WORK/ws-$r.json"
    echo "== run $r: fan-out drill, $N phones, $SHARE of them on MQTT"
    "$DRILL" fanout "${FAN[@]}" --mqtt "127.0.0.1:$MP" --mqtt-share "$SHARE" --json "$WORK/mixed-$r.json"
  fi
  echo "== run $r: the broker alone: $N MQTT clients read one topic, one QoS 1 message"
  "$DRILL" baseline --mqtt "127.0.0.1:$MP" --broker-pid "$BROKER_PID" --leads "$N" --json "$WORK/broker-$r.json"
  echo "== run $r: the broker alone, its clients answering with a receipt (QoS 1) that one reader takes"
  "$DRILL" baseline --mqtt "127.0.0.1:$MP" --broker-pid "$BROKER_PID" --leads "$N" --receipts \
    --json "$WORK/broker-receipts-$r.json"
  echo "== run $r: fan-out drill, $N phones, all on MQTT"
  B0=$(cpu_s "$BROKER_PID")
  "$DRILL" fanout "${FAN[@]}" --mqtt "127.0.0.1:$MP" --mqtt-share 1 --json "$WORK/mqtt-only-$r.json"
  echo "broker CPU over that drill (connects included): $(awk -v a="$(cpu_s "$BROKER_PID")" -v b="$B0" 'BEGIN { printf "%.2f", a - b }') s"
  summary "$r" | tee -a "$WORK/summary.txt"
done
echo "== summary"
cat "$WORK/summary.txt"
if grep -q "dropped" "$WORK/mosquitto.log"; then
  echo "the broker dropped messages:"; grep "dropped" "$WORK/mosquitto.log" | head -5
fi
