#!/usr/bin/env bash
# MQTT phones beside WebSocket ones on one hub node (embedded store), through a
# Mosquitto of its own (the shipped deploy/compose settings for queues and in-flight
# windows): the fan-out drill with every phone on WebSocket, then with SHARE of them on
# MQTT (default 5,000 phones, a third), RUNS times (default 1); then the broker alone
# delivering one QoS 1 message to N subscribers, and the drill with every phone on MQTT.
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
PORT=$(port)
"$DRILL" city --leads "$N" --out "$WORK/city.json"
start_hub "$PORT" hub --registry "$WORK/city.json" --mqtt "mqtt://127.0.0.1:$MP"
HUB_PID=$LAST
ADMIN=$(admin_token)
for r in $(seq 1 "$RUNS"); do
  echo "== run $r: fan-out drill, $N phones on WebSocket"
  "$DRILL" fanout --hub "http://127.0.0.1:$PORT" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
    --leads "$N" --hub-pid "$HUB_PID"
  echo "== run $r: fan-out drill, $N phones, $SHARE of them on MQTT"
  "$DRILL" fanout --hub "http://127.0.0.1:$PORT" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
    --leads "$N" --hub-pid "$HUB_PID" --mqtt "127.0.0.1:$MP" --mqtt-share "$SHARE"
done
echo "== the broker alone: $N MQTT clients read one topic, one QoS 1 message"
"$DRILL" baseline --mqtt "127.0.0.1:$MP" --broker-pid "$BROKER_PID" --leads "$N"
echo "== fan-out drill, $N phones, all on MQTT"
"$DRILL" fanout --hub "http://127.0.0.1:$PORT" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
  --leads "$N" --hub-pid "$HUB_PID" --mqtt "127.0.0.1:$MP" --mqtt-share 1
if grep -q "dropped" "$WORK/mosquitto.log"; then
  echo "the broker dropped messages:"; grep "dropped" "$WORK/mosquitto.log" | head -5
fi
