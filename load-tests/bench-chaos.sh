#!/usr/bin/env bash
# Chaos drill: three cluster nodes on one Redis (AOF, fsync always), N phones spread
# over them (default 3,000); one node is killed with SIGKILL once half the phones have
# the drill. Its phones move to the next node, find the drill in their sync and answer.
# Passes only if every phone's ack is recorded. Usage: load-tests/bench-chaos.sh [N]
set -euo pipefail
N=${1:-3000}
source "$(dirname "$0")/bench-common.sh"
start_redis always
"$DRILL" city --leads "$N" --out "$WORK/city.json" >/dev/null
URLS=()
for n in n1 n2 n3; do
  P=$(port)
  start_hub "$P" "$n" --node-id "$n" --registry "$WORK/city.json" --redis "$R"
  URLS+=("http://127.0.0.1:$P")
done
ADMIN=$(admin_token)
echo "== chaos: $N phones over 3 nodes; node n3 (pid $LAST) killed at half the deliveries"
"$DRILL" fanout --hub "$(IFS=,; echo "${URLS[*]}")" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
  --leads "$N" --kill-pid "$LAST" --kill-after 0.5 --ack-delay-ms 200,1500 2>&1 | grep -v "^connecting\|^drill:"
