#!/usr/bin/env bash
# Acks per second recorded durably: 10,000 phones each sending its receipt and its ack
# at once, on one hub with the embedded store, then on one hub with Redis (AOF,
# appendfsync always); RUNS times (default 3), the figures of every run at the end.
# Usage: load-tests/bench-acks.sh [RUNS]
set -euo pipefail
RUNS=${1:-3}
source "$(dirname "$0")/bench-common.sh"
ADMIN=$(admin_token)
"$DRILL" city --leads 10000 --out "$WORK/city10k.json"
start_redis always
for r in $(seq 1 "$RUNS"); do
  for store in embedded redis; do
    echo "== run $r: acks per second, $store store (10,000 phones, acks without delay)"
    FLAGS=(); [ "$store" = redis ] && FLAGS=(--redis "$R")
    redis-cli -p "$RP" flushall >/dev/null
    P=$(port); start_hub "$P" "$store-$r" --registry "$WORK/city10k.json" "${FLAGS[@]}"
    "$DRILL" fanout --hub "http://127.0.0.1:$P" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
      --leads 10000 --ack-delay-ms 0,0 --hub-pid "$LAST" --json "$WORK/$store-$r.json" 2>/dev/null
    kill "$LAST"; wait "$LAST" 2>/dev/null || true
  done
done
echo "== summary"
python3 - "$WORK" "$RUNS" <<'PY'
import json, sys
w, runs = sys.argv[1], int(sys.argv[2])
for store in ("embedded", "redis"):
    rs = [json.load(open(f"{w}/{store}-{r}.json")) for r in range(1, runs + 1)]
    print(f"{store}: acks answered ok " + ", ".join(f"{x['acks_per_s']:.0f}/s ({x['acked']}/{x['connected']})" for x in rs))
PY
