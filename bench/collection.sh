#!/usr/bin/env bash
# Collection benchmark (issue 13): 200 registered instances (pointing at the test servers: a third each
# MariaDB, PostgreSQL and Redis) scraped every 10 s by `sluice serve`. Prints Sluice's CPU share (of one
# core, over a measured stretch after a warm-up) and its RSS (the peak sampled, and the kernel's high-water
# mark). Targets: < 10% of one core, < 150 MiB. The issue names no peer for this figure.
# Checks that the scrapes really happen: every instance must report up == 1 in the store at the end.
# Usage: ./scripts/services.sh start && bench/collection.sh [MEASURE_SECONDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS=${SLUICE_PEERS:-$ROOT/../shared/peers}
# shellcheck disable=SC1091
source "$PEERS/lib.sh"
# shellcheck disable=SC1091
source "$ROOT/bench/lib.sh"
MEASURE=${1:-120}
[ -f "$ROOT/target/services/env" ] || { echo "the test services are not running: ./scripts/services.sh start" >&2; exit 1; }
# shellcheck disable=SC1091
source "$ROOT/target/services/env"
(cd "$ROOT" && cargo build --release -p sluice >&2)
SLUICE=$ROOT/target/release/sluice
PORT=7796
URL=http://127.0.0.1:$PORT
TOKEN=slc_bench_collection_token_0123456789abcdef
WORK=$(mktemp -d)
PID=""
cleanup() { [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# host_port URL -> "HOST PORT"
host_port() { sed -E 's#^[a-z]+://([^@/]*@)?([^:/]+):([0-9]+).*#\2 \3#' <<<"$1"; }
read -r MH MP < <(host_port "$SLUICE_TEST_MARIADB_URL")
read -r PH PP < <(host_port "$SLUICE_TEST_POSTGRES_URL")
read -r RH RP < <(host_port "$SLUICE_TEST_REDIS_URL")
for s in "$MH:$MP" "$PH:$PP" "$RH:$RP"; do
  timeout 2 bash -c "exec 3<>/dev/tcp/${s%:*}/${s#*:}" 2>/dev/null || { echo "test service $s is not answering: ./scripts/services.sh start" >&2; exit 1; }
done

printf '[monitor]\ncollect = true\ninterval = "10s"\n' >"$WORK/sluice.toml"
SLUICE_ADMIN_TOKEN=$TOKEN SLUICE_LOG=warn "$SLUICE" serve --config "$WORK/sluice.toml" --data-dir "$WORK/data" \
  --listen "127.0.0.1:$PORT" >"$WORK/server.out" 2>"$WORK/server.log" </dev/null &
PID=$!
for _ in $(seq 1 100); do curl -fsS "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

log "registering 200 instances"
register() {
  local i=$1 body
  case $((i % 3)) in
    0) body="{\"name\":\"maria-$i\",\"engine\":\"mariadb\",\"host\":\"$MH\",\"port\":$MP,\"username\":\"sluice\",\"password\":\"sluice\",\"environment\":\"test\"}" ;;
    1) body="{\"name\":\"pg-$i\",\"engine\":\"postgres\",\"host\":\"$PH\",\"port\":$PP,\"username\":\"sluice\",\"password\":\"sluice\",\"database\":\"sluice\",\"environment\":\"test\"}" ;;
    2) body="{\"name\":\"redis-$i\",\"engine\":\"redis\",\"host\":\"$RH\",\"port\":$RP,\"password\":\"sluice\",\"environment\":\"test\"}" ;;
  esac
  curl -fsS -o /dev/null -X POST "$URL/api/v1/instances" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$body"
}
export -f register
export MH MP PH PP RH RP URL TOKEN
seq 1 200 | xargs -P 4 -I{} bash -c 'register {}'

query() { curl -fsS -H "Authorization: Bearer $TOKEN" --data-urlencode "query=$1" "$URL/api/v1/query" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)'; }

# Warm-up: the registry is re-read every 10 s; wait until every instance has been scraped.
log "warming up until the 200 instances report up"
for _ in $(seq 1 30); do
  [ "$(query 'count(up == 1)')" = "200" ] && break
  sleep 2
done
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
HZ=$(getconf CLK_TCK)
log "measuring for $MEASURE s"
t0=$(now)
c0=$(cpu_ticks)
peak=0
end=$(( $(date +%s) + MEASURE ))
while [ "$(date +%s)" -lt "$end" ]; do
  r=$(rss_kib)
  [ "$r" -gt "$peak" ] && peak=$r
  sleep 1
done
c1=$(cpu_ticks)
secs=$(elapsed "$t0")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
up=$(query 'count(up == 1)')
scrapes=$(query 'count(count_over_time(up[1m]) >= 5)')
[ "$up" = "200" ] || { echo "only $up of 200 instances report up == 1; server log:" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }
[ "$scrapes" = "200" ] || { echo "only $scrapes of 200 instances were scraped at least 5 times in the last minute" >&2; exit 1; }
series=$(query 'count({__name__=~".+"})')
cpu=$(awk -v c="$((c1 - c0))" -v hz="$HZ" -v s="$secs" 'BEGIN{printf "%.1f", 100 * c / hz / s}')

result="== Collection: 200 instances (67 MariaDB, 67 PostgreSQL, 66 Redis on the test servers) every 10 s
  every instance up and scraped >= 5 times a minute; $series series in the store
  CPU:  $cpu% of one core over $secs s (target < 10%)
  RSS:  peak sampled $((peak / 1024)) MiB, high-water mark $((hwm / 1024)) MiB (target < 150 MiB)"
printf '\n%s\n' "$result"
record_results "bench/collection.sh" "$result"
