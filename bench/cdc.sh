#!/usr/bin/env bash
# CDC benchmark (issue: change capture). One run, same binlog, side by side:
#   - Sluice, like for like with mariadb-binlog -v: MariaDB binlog -> every full row (before and after
#     images) rendered as a JSON line by the file sink into a file on tmpfs  (sluice-bench binlog --jsonl)
#   - mariadb-binlog --read-from-remote-server --verbose --base64-output=decode-rows -> a file on tmpfs
#   - Sluice: MariaDB binlog -> shaping (3 metrics per row) -> blackhole sink   (sluice-bench binlog)
#   - python-mysql-replication (PyPI mysql-replication) counting rows
# and the commit-to-push latency at a steady 5,000 rows/s into the open-falcon stand-in, and the peak RSS
# through a single 1,000,000-row transaction.
# The workload and the peers' commands come from ../shared/peers (01-mariadb-binlog.sh): 1,000 INSERTs x
# 1,000 rows + 200 UPDATEs x 1,000 rows into bench.metrics on a MariaDB of its own (port 3407, /tmp).
# Usage: bench/cdc.sh [RUNS]
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

ensure_apt mariadb-server mariadb-client
ensure_venv mysql-replication
(cd "$ROOT" && cargo build --release -p sluice-bench >&2)
BENCH=$ROOT/target/release/sluice-bench
trap mdb_stop EXIT

log "fresh mariadbd on :$MDB_PORT, loading the workload"
mdb_fresh
mdb -e "FLUSH BINARY LOGS"
mdb_load 1000 1000 200 1000
mdb -e "FLUSH BINARY LOGS"
mapfile -t FILES < <(ls "$MDB_BASE"/binlog/mysql-bin.[0-9]* | sort | head -n -1)
FIRST=$(basename "${FILES[0]}")
out=$(mariadb-binlog --no-defaults --verbose --base64-output=decode-rows "${FILES[@]}")
ROWS=$(( $(grep -c '^### INSERT INTO' <<<"$out" || true) + $(grep -c '^### UPDATE' <<<"$out" || true) ))
unset out
log "workload: $ROWS row images from $FIRST"
URL="mysql://$MDB_USER:$MDB_PASS@127.0.0.1:$MDB_PORT/"

# Both renderers write real files on tmpfs: the same output work and the same durability (an fsync on
# tmpfs is free), and each file is checked afterwards.
OUT=$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp )/sluice-bench-cdc
rm -rf "$OUT"; mkdir -p "$OUT"
S=(); J=(); M=(); P=()
for ((r = 1; r <= RUNS; r++)); do
  rm -f "$OUT/sluice.jsonl"
  secs=$(timed "$OUT/sluice-jsonl.txt" 0 "$BENCH" binlog --url "$URL" --file "$FIRST" --rows "$ROWS" --jsonl "$OUT/sluice.jsonl")
  # Row changes only: the file also holds the DDL events of the workload's tables.
  lines=$(grep -c '"op":"\(insert\|update\)"' "$OUT/sluice.jsonl" || true)
  [ "$lines" -eq "$ROWS" ] || { echo "sluice wrote $lines row changes as JSON lines, expected $ROWS" >&2; exit 1; }
  J+=("$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$OUT/sluice-jsonl.txt")"); log "  sluice full rows as JSON lines, run $r: ${J[-1]} s ($secs s with start-up)"
  secs=$(timed "$OUT/mariadb-binlog.txt" 0 mariadb-binlog --no-defaults --read-from-remote-server --host=127.0.0.1 --port="$MDB_PORT" \
    --user="$MDB_USER" --password="$MDB_PASS" --to-last-log --verbose --base64-output=decode-rows "$FIRST")
  images=$(( $(grep -c '^### INSERT INTO' "$OUT/mariadb-binlog.txt" || true) + $(grep -c '^### UPDATE' "$OUT/mariadb-binlog.txt" || true) ))
  [ "$images" -ge "$ROWS" ] || { echo "mariadb-binlog rendered $images row images, expected $ROWS" >&2; exit 1; }
  M+=("$secs"); log "  mariadb-binlog run $r: ${M[-1]} s"
  timed "$OUT/sluice-shape.txt" 0 "$BENCH" binlog --url "$URL" --file "$FIRST" --rows "$ROWS" >/dev/null
  S+=("$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$OUT/sluice-shape.txt")"); log "  sluice shaped into blackhole, run $r: ${S[-1]} s"
  secs=$(timed "$OUT/pyrepl.txt" 0 "$VENV/bin/python" ./tools/pyrepl_count.py 127.0.0.1 "$MDB_PORT" "$MDB_USER" "$MDB_PASS" "$FIRST")
  P+=("$secs"); log "  python-mysql-replication run $r: ${P[-1]} s ($(cat "$OUT/pyrepl.txt"))"
done
rm -f "$OUT/sluice.jsonl" "$OUT/mariadb-binlog.txt"
s=$(median "${S[@]}"); j=$(median "${J[@]}"); m=$(median "${M[@]}"); p=$(median "${P[@]}")
srate=$(div "$ROWS" "$s"); jrate=$(div "$ROWS" "$j"); mrate=$(div "$ROWS" "$m"); prate=$(div "$ROWS" "$p")

log "commit-to-push latency at 5,000 rows/s for 20 s"
lat=$("$BENCH" latency --url "$URL" --rate 5000 --seconds 20 | tail -1)
log "a single 1,000,000-row transaction"
big=$("$BENCH" bigtx --url "$URL" --rows 1000000 | tail -1)

result=$(cat <<RESULT
== CDC benchmark ($(nproc) cores; $ROWS row images; median of $RUNS runs)
like for like (every full row rendered as text, into a file on tmpfs):
  sluice binlog -> file sink, JSON lines            ${j} s   ${jrate} rows/s
  mariadb-binlog --read-from-remote-server -v       ${m} s   ${mrate} rows/s   sluice/mariadb-binlog = $(awk -v a="$jrate" -v b="$mrate" 'BEGIN{printf "%.2f", a/b}')x (target >= 1.2x)
  each run (s): sluice ${J[*]}; mariadb-binlog ${M[*]}
shaping into metrics (no peer renders this):
  sluice binlog -> shape (3 metrics/row) -> blackhole ${s} s   ${srate} rows/s   ($(div "$srate" "$mrate")x mariadb-binlog -v)
python-mysql-replication (parses rows, renders nothing) ${p} s   ${prate} rows/s   sluice full-row JSON/python = $(div "$jrate" "$prate")x (target >= 8x)
${lat}   (target p99 < 100 ms)
${big}   (target RSS < 200 MiB)
RESULT
)
printf '\n%s\n' "$result"
record_results "bench/cdc.sh" "$result"
