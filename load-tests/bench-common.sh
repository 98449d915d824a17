# Sourced by the bench-*.sh scripts: the release build, a scratch dir and every process
# they start, killed and removed on exit; free loopback ports; a Redis of their own;
# hubs started and waited for. Nothing here touches the machine's shared services.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p gridcast-hub -p gridcast-load-tests
# GRIDCAST_BENCH_HUB: another hub binary (an A/B against an older build).
HUB=${GRIDCAST_BENCH_HUB:-target/release/gridcast-hub}
DRILL=target/release/gridcast-drill
SECRET=bench-secret-0123456789abcdef
WORK=$(mktemp -d)
PIDS=()
# GRIDCAST_BENCH_KEEP=1 keeps the scratch dir (hub logs, Redis log, JSON reports).
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  if [ -n "${GRIDCAST_BENCH_KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_redis always|everysec: a redis-server with AOF on a free port; sets RP and R.
start_redis() {
  RP=$(port)
  redis-server --bind 127.0.0.1 --port "$RP" --dir "$WORK" --save "" --appendonly yes \
    --appendfsync "$1" --loglevel warning >"$WORK/redis.log" 2>&1 &
  PIDS+=($!); REDIS_PID=$!
  until redis-cli -p "$RP" ping >/dev/null 2>&1; do sleep 0.05; done
  R="redis://127.0.0.1:$RP/"
}

# start_hub PORT NAME [flags…]: a release hub in $WORK/NAME, once ready; sets LAST (pid).
start_hub() {
  local p=$1 n=$2; shift 2
  GRIDCAST_LOG=${GRIDCAST_BENCH_LOG:-warn} "$HUB" --listen "127.0.0.1:$p" --jwt-secret "$SECRET" \
    --data-dir "$WORK/$n" "$@" >"$WORK/$n.log" 2>&1 &
  PIDS+=($!); LAST=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$p/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "hub $n on port $p never became ready (log: $WORK/$n.log)" >&2
  exit 1
}

# stop_hubs: kills every process started so far except Redis.
stop_hubs() {
  local keep=()
  for p in "${PIDS[@]}"; do
    if [ "$p" = "${REDIS_PID:-}" ]; then keep+=("$p"); else kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  PIDS=("${keep[@]}")
}

# cpu_s PID…: the CPU seconds (user + system) the processes have used so far, summed.
cpu_s() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t $(getconf CLK_TCK)" | awk '{printf "%.2f", $1 / $2}'
}

# one_hub N [flags…]: a city of N staff and one release hub on it (embedded store unless
# the flags say otherwise); sets PORT, HUB_PID and ADMIN.
one_hub() {
  local n=$1; shift
  PORT=$(port)
  "$DRILL" city --leads "$n" --out "$WORK/city.json"
  start_hub "$PORT" hub --registry "$WORK/city.json" "$@"
  HUB_PID=$LAST
  ADMIN=$(admin_token)
}

admin_token() { "$HUB" --jwt-secret "$SECRET" token --sub bench --role admin --ttl-hours 2; }
