#!/usr/bin/env bash
# Sync benchmark (issue 11), one run, same data, side by side:
#   - Sluice: MariaDB binlog -> database sink -> PostgreSQL table `metrics` (multi-row upserts and the sink's
#     checkpoint in one transaction per batch), timed from start until every row is acknowledged
#     (sluice-bench binlog --target), then counted at the target
#   - the plain bulk reference: `mariadb --batch -e "SELECT …"` piped into `psql -c "\copy metrics FROM STDIN"`
#     (one COPY, no keys checked, no checkpoint), into an identical table on the same server
# with the peak RSS of Sluice's run. The workload comes from ../shared/peers (lib-mariadb.sh): 1,000 INSERTs x
# 1,000 rows into bench.metrics on a MariaDB of its own (port 3407, /tmp). The target is the PostgreSQL of
# scripts/services.sh (port 5433; fsync off there, for both sides alike).
# Usage: bench/sync.sh [RUNS]   (SLUICE_BENCH_BATCH_MAX=N sets Sluice's [runtime] batch_max; default 1000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS=${SLUICE_PEERS:-$ROOT/../shared/peers}
[ -f "$PEERS/lib-mariadb.sh" ] || { echo "peer scripts not found at $PEERS (set SLUICE_PEERS)" >&2; exit 1; }
RUNS=${1:-3}
cd "$PEERS"
# shellcheck disable=SC1091
source ./lib.sh
# shellcheck disable=SC1091
source ./lib-mariadb.sh
# shellcheck disable=SC1091
source "$ROOT/bench/lib.sh"

ensure_apt mariadb-server mariadb-client postgresql-client time
ensure_venv
"$ROOT/scripts/services.sh" start postgres
# shellcheck disable=SC1091
. "$ROOT/target/services/env"
PG_ADMIN=$SLUICE_TEST_POSTGRES_URL
(cd "$ROOT" && cargo build --release -p sluice-bench >&2)
BENCH=$ROOT/target/release/sluice-bench
trap mdb_stop EXIT

ROWS=1000000
log "fresh mariadbd on :$MDB_PORT, loading $ROWS rows"
mdb_fresh
mdb -e "FLUSH BINARY LOGS"
mdb_load 1000 1000 0 0
mdb -e "FLUSH BINARY LOGS"
FIRST=$(basename "$(ls "$MDB_BASE"/binlog/mysql-bin.[0-9]* | sort | head -n -1 | head -1)")
URL="mysql://$MDB_USER:$MDB_PASS@127.0.0.1:$MDB_PORT/"
TABLE="CREATE TABLE metrics (id bigint PRIMARY KEY, host varchar(64), cpu double precision, mem double precision, disk double precision, ts timestamptz)"

# fresh_target NAME: an empty database with the metrics table; prints its URL.
fresh_target() {
  psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
  local url=${PG_ADMIN%/*}/$1
  psql -q "$url" -c "$TABLE" >/dev/null
  printf '%s\n' "$url"
}
count_rows() { psql -tA "$1" -c "SELECT count(*) FROM metrics"; }

OUT=$(mktemp -d)
S=(); R=(); RSS=()
for ((r = 1; r <= RUNS; r++)); do
  dst=$(fresh_target sluice_sync_bench)
  timed "$OUT/sluice.txt" 0 /usr/bin/time -f 'peak_rss_kib=%M cpu_s=%U+%S' -o "$OUT/rss.txt" "$BENCH" binlog --url "$URL" --file "$FIRST" --rows "$ROWS" --target "$dst" >/dev/null
  got=$(count_rows "$dst")
  [ "$got" -eq "$ROWS" ] || { echo "sluice left $got rows at the target, expected $ROWS" >&2; exit 1; }
  S+=("$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$OUT/sluice.txt")")
  RSS+=("$(sed -n 's/peak_rss_kib=\([0-9]*\).*/\1/p' "$OUT/rss.txt")")
  cpu=$(sed -n 's/.*cpu_s=\([0-9.]*\)+\([0-9.]*\).*/\1 \2/p' "$OUT/rss.txt" | awk '{printf "%.2f", $1 + $2}')
  log "  sluice MariaDB -> PostgreSQL, run $r: ${S[-1]} s, peak RSS $((RSS[-1] / 1024)) MiB, Sluice's own CPU $cpu s"

  ref=$(fresh_target sluice_sync_ref)
  secs=$(timed "$OUT/ref.txt" 0 bash -c "set -o pipefail; mariadb --no-defaults -h127.0.0.1 -P$MDB_PORT -u$MDB_USER -p$MDB_PASS --batch --raw -N \
      -e 'SELECT id, host, cpu, mem, disk, ts FROM bench.metrics' | psql -q '$ref' -c \"\\copy metrics FROM STDIN WITH (NULL 'NULL')\" && echo copied")
  got=$(count_rows "$ref")
  [ "$got" -eq "$ROWS" ] || { echo "the reference left $got rows at the target, expected $ROWS" >&2; exit 1; }
  R+=("$secs"); log "  mariadb | psql COPY, run $r: ${R[-1]} s"
done
psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS sluice_sync_bench" -c "DROP DATABASE IF EXISTS sluice_sync_ref" >/dev/null

# MariaDB -> NATS JetStream: every change as an envelope with its Nats-Msg-Id, each publish acknowledged.
"$ROOT/scripts/services.sh" start nats
N=()
for ((r = 1; r <= RUNS; r++)); do
  timed "$OUT/nats.txt" 0 "$BENCH" binlog --url "$URL" --file "$FIRST" --rows "$ROWS" --nats "$SLUICE_TEST_NATS_URL" --stream "SLUICE_BENCH_$r" >/dev/null
  stored=$(sed -n 's/^stream_messages=//p' "$OUT/nats.txt")
  # The workload's DDL events are published too.
  [ "${stored:-0}" -ge "$ROWS" ] || { echo "the stream holds ${stored:-0} messages, expected at least $ROWS" >&2; exit 1; }
  N+=("$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$OUT/nats.txt")"); log "  sluice MariaDB -> NATS JetStream, run $r: ${N[-1]} s ($stored messages stored)"
done
n=$(median "${N[@]}"); nrate=$(div "$ROWS" "$n")

# MariaDB -> hourly CSV files (file drop sink, no upload: each batch fsynced with its journal), beside the
# plain reference of a client dump of the same rows into one file (`mariadb --batch > file`, then sync).
F=(); FR=(); FB=()
for ((r = 1; r <= RUNS; r++)); do
  fdir="$OUT/files_$r"; rm -rf "$fdir"
  timed "$OUT/files.txt" 0 "$BENCH" binlog --url "$URL" --file "$FIRST" --rows "$ROWS" --files "$fdir" >/dev/null
  frows=$(sed -n 's/.*file_rows=\([0-9]*\).*/\1/p' "$OUT/files.txt")
  [ "${frows:-0}" -eq "$ROWS" ] || { echo "the files hold ${frows:-0} rows, expected $ROWS" >&2; exit 1; }
  F+=("$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$OUT/files.txt")"); FB+=("$(sed -n 's/.*file_bytes=\([0-9]*\).*/\1/p' "$OUT/files.txt")")
  log "  sluice MariaDB -> CSV files, run $r: ${F[-1]} s, ${FB[-1]} bytes"
  rm -rf "$fdir"
  secs=$(timed "$OUT/fref.txt" 0 bash -c "set -o pipefail; mariadb --no-defaults -h127.0.0.1 -P$MDB_PORT -u$MDB_USER -p$MDB_PASS --batch --raw -N \
      -e 'SELECT id, host, cpu, mem, disk, ts FROM bench.metrics' > '$OUT/ref.tsv' && sync '$OUT/ref.tsv' && echo dumped")
  got=$(wc -l <"$OUT/ref.tsv"); [ "$got" -eq "$ROWS" ] || { echo "the reference dump has $got rows, expected $ROWS" >&2; exit 1; }
  FR+=("$secs"); log "  mariadb --batch > file, run $r: ${FR[-1]} s"; rm -f "$OUT/ref.tsv"
done
f=$(median "${F[@]}"); frate=$(div "$ROWS" "$f"); fref=$(median "${FR[@]}")
fmb=$(awk -v b="${FB[0]}" -v s="$f" 'BEGIN{printf "%.1f", b/s/1048576}')

# End-to-end lag at a steady 5,000 rows/s, MariaDB commit to the row in PostgreSQL (stamped there).
lagdb=$(fresh_target sluice_sync_lag)
log "MariaDB -> PostgreSQL lag at 5,000 rows/s for 20 s"
lag=$("$BENCH" sync-latency --url "$URL" --target "$lagdb" --rate 5000 --seconds 20 | tail -1)
[ -n "$lag" ] || { echo "the lag run printed nothing" >&2; exit 1; }
psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS sluice_sync_lag" >/dev/null
s=$(median "${S[@]}"); ref=$(median "${R[@]}")
srate=$(div "$ROWS" "$s"); rrate=$(div "$ROWS" "$ref")
peak=$(printf '%s\n' "${RSS[@]}" | sort -n | tail -1)

result=$(cat <<RESULT
== Sync benchmark ($(nproc) cores; $ROWS rows MariaDB -> PostgreSQL; median of $RUNS runs; [runtime] batch_max = ${SLUICE_BENCH_BATCH_MAX:-1000})
  sluice binlog -> database sink (upserts + checkpoint per batch)   ${s} s   ${srate} rows/s   (target >= 100,000 rows/s)
  mariadb --batch | psql \\copy (bulk reference: one COPY, no upsert, no checkpoint)   ${ref} s   ${rrate} rows/s
  sluice / reference = $(awk -v a="$srate" -v b="$rrate" 'BEGIN{printf "%.2f", a/b}')x   (target >= 0.5x)
  sluice peak RSS $((peak / 1024)) MiB   (target < 200 MiB)
  sluice binlog -> file drop (hourly CSV, fsync + journal per batch)   ${f} s   ${frate} rows/s   ${fmb} MB/s   (target >= 300,000 rows/s)
  mariadb --batch > file (reference: one table scan into one file)   ${fref} s   $(div "$ROWS" "$fref") rows/s   sluice / reference = $(awk -v a="$fref" -v b="$f" 'BEGIN{printf "%.2f", a/b}')x
  sluice binlog -> NATS JetStream (acknowledged publishes, envelope + Nats-Msg-Id)   ${n} s   ${nrate} events/s   (target >= 150,000 events/s)
  ${lag}   (target p99 < 1000 ms, RSS < 200 MiB)
  each run (s): sluice ${S[*]}; reference ${R[*]}; nats ${N[*]}; files ${F[*]}; file reference ${FR[*]}
RESULT
)
printf '\n%s\n' "$result"
record_results "bench/sync.sh" "$result"
