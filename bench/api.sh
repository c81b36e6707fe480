#!/usr/bin/env bash
# API benchmark (issue: foundation). Prints, for `sluice serve` on its SQLite store:
#   - cold start to /readyz (new store, and restart on an existing one)
#   - idle RSS (just started, and after 1,000 instances are registered)
#   - GET /api/v1/instances?limit=50 under wrk from loopback with 1,000 instances: requests/s and p99
# wrk runs on the same 2 cores as the server, so it is run twice: 16 connections (the server has CPU headroom
# for its tail) and 64 (both saturate the cores; the tail then measures CPU contention with wrk itself).
# Usage: bench/api.sh [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION=${1:-20}
OUT=target/bench/api
PORT=7790
URL=http://127.0.0.1:$PORT
TOKEN=slc_bench_admin_token_0123456789abcdef0123
BIN=target/release/sluice

command -v wrk >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p sluice >&2

rm -rf "$OUT"; mkdir -p "$OUT"
now_ms() { date +%s%3N; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

start_server() {
  SLUICE_ADMIN_TOKEN=$TOKEN SLUICE_LOG=warn "$BIN" serve --data-dir "$OUT/data" --listen "127.0.0.1:$PORT" \
    >"$OUT/server.out" 2>"$OUT/server.log" </dev/null &
  PID=$!
  local t0; t0=$(now_ms)
  until curl -fsS "$URL/readyz" >/dev/null 2>&1; do sleep 0.005; done
  COLD=$(( $(now_ms) - t0 ))
}
stop_server() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

trap 'kill $PID 2>/dev/null || true' EXIT
start_server; cold_new=$COLD
sleep 1
rss_start=$(rss_kib "$PID")

echo "registering 1,000 instances..." >&2
seq 1 1000 | xargs -P 8 -I{} curl -fsS -o /dev/null -X POST "$URL/api/v1/instances" \
  -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"name":"bench-{}","engine":"mariadb","host":"10.1.0.{}","port":3306,"username":"app","password":"bench-secret","environment":"prod","labels":{"team":"bench","tier":"gold"}}'
count=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$URL/api/v1/instances?limit=500" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
[ "$count" = 500 ] || { echo "expected a full page of 500, got $count" >&2; exit 1; }

stop_server
start_server; cold_restart=$COLD
sleep 2
rss_idle=$(rss_kib "$PID")

run_wrk() {
  wrk -t2 -c"$1" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$URL/api/v1/instances?limit=50" | tee "$OUT/wrk-$1.txt" >&2
  printf 'GET /api/v1/instances?limit=50   c=%-3s %s req/s   p50 %s   p99 %s   non-2xx %s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-$1.txt")" "$(awk '$1=="50%" {print $2}' "$OUT/wrk-$1.txt")" \
    "$(awk '$1=="99%" {print $2}' "$OUT/wrk-$1.txt")" "$(awk '/Non-2xx/ {print $NF}' "$OUT/wrk-$1.txt" | grep . || echo 0)"
}
line16=$(run_wrk 16)
line64=$(run_wrk 64)
rss_after=$(rss_kib "$PID")
stop_server

cat <<RESULT

== sluice API benchmark ($(nproc) cores, wrk -t2 -d${DURATION}s on the same cores, 1,000 instances, SQLite store)
$line16
$line64
  (target >= 10,000 req/s, p99 < 20 ms)
cold start to /readyz            new store ${cold_new} ms, existing store ${cold_restart} ms   (target < 1 s)
RSS                              idle after start $((rss_start / 1024)) MiB, idle with 1,000 instances $((rss_idle / 1024)) MiB, after load $((rss_after / 1024)) MiB   (target idle < 40 MiB)
RESULT
