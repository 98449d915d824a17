#!/usr/bin/env bash
# The remaining targets of BENCHMARKS.md on one machine: 19,000 phones on one hub
# process (memory per idle phone, fan-out beside the baseline of the same size), and
# acks per second recorded durably on the embedded store and on Redis.
# Usage: load-tests/bench-targets.sh
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
ADMIN=$(admin_token)

"$DRILL" city --leads 19000 --out "$WORK/city19k.json"
echo "== baseline, 19,000 clients"
"$DRILL" baseline --leads 19000
echo "== one hub process, 19,000 phones (embedded store; acks after 1-3 s, after the fan-out)"
P=$(port); start_hub "$P" e19 --registry "$WORK/city19k.json"
"$DRILL" fanout --hub "http://127.0.0.1:$P" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
  --leads 19000 --ack-delay-ms 1000,3000 --hub-pid "$LAST" --timeout-s 300 2>/dev/null
kill "$LAST"; wait "$LAST" 2>/dev/null || true

# Acks per second, embedded store and Redis: one run (bench-acks.sh RUNS for more).
load-tests/bench-acks.sh 1
