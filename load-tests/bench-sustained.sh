#!/usr/bin/env bash
# Sustained load on one hub node (embedded store): RATE drill activations a second for
# SECONDS seconds, each to all N phones (default 5,000, 5/s, 10 s), every phone sending
# a receipt for each; prints the delivery latencies and the hub's CPU for the run.
# Usage: load-tests/bench-sustained.sh [N] [RATE] [SECONDS]
set -euo pipefail
N=${1:-5000}
RATE=${2:-5}
SECONDS_=${3:-10}
source "$(dirname "$0")/bench-common.sh"
one_hub "$N"
cpu() { awk '{print $14 + $15}' "/proc/$HUB_PID/stat"; }
TICKS=$(getconf CLK_TCK)
before=$(cpu)
"$DRILL" sustained --hub "http://127.0.0.1:$PORT" --admin-token "$ADMIN" --jwt-secret "$SECRET" \
  --leads "$N" --rate "$RATE" --seconds "$SECONDS_"
after=$(cpu)
echo "hub CPU for the run: $(awk -v a="$after" -v b="$before" -v t="$TICKS" 'BEGIN {printf "%.2f s", (a - b) / t}')"
