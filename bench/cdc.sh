#!/usr/bin/env bash
# CDC benchmark (issue: change capture). One run, same binlog, side by side:
#   - Sluice: MariaDB binlog -> shaping (3 metrics per row) -> blackhole sink   (sluice-bench binlog)
#   - mariadb-binlog --read-from-remote-server --verbose --base64-output=decode-rows -> /dev/null
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

S=(); M=(); P=()
for ((r = 1; r <= RUNS; r++)); do
  res=$("$BENCH" binlog --url "$URL" --file "$FIRST" --rows "$ROWS")
  S+=("$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$res")"); log "  sluice run $r: $res"
  t0=$(now)
  mariadb-binlog --no-defaults --read-from-remote-server --host=127.0.0.1 --port="$MDB_PORT" \
    --user="$MDB_USER" --password="$MDB_PASS" --to-last-log --verbose --base64-output=decode-rows "$FIRST" >/dev/null
  M+=("$(elapsed "$t0")"); log "  mariadb-binlog run $r: ${M[-1]} s"
  t0=$(now)
  res=$("$VENV/bin/python" ./tools/pyrepl_count.py 127.0.0.1 "$MDB_PORT" "$MDB_USER" "$MDB_PASS" "$FIRST")
  P+=("$(elapsed "$t0")"); log "  python-mysql-replication run $r: ${P[-1]} s ($res)"
done
s=$(median "${S[@]}"); m=$(median "${M[@]}"); p=$(median "${P[@]}")
srate=$(div "$ROWS" "$s"); mrate=$(div "$ROWS" "$m"); prate=$(div "$ROWS" "$p")

log "commit-to-push latency at 5,000 rows/s for 20 s"
lat=$("$BENCH" latency --url "$URL" --rate 5000 --seconds 20 | tail -1)
log "a single 1,000,000-row transaction"
big=$("$BENCH" bigtx --url "$URL" --rows 1000000 | tail -1)

cat <<RESULT

== CDC benchmark ($(nproc) cores; $ROWS row images; median of $RUNS runs)
sluice binlog -> shape (3 metrics/row) -> blackhole   ${s} s   ${srate} rows/s
mariadb-binlog --read-from-remote-server -v          ${m} s   ${mrate} rows/s   sluice/mariadb-binlog = $(div "$srate" "$mrate")x (target >= 0.8x)
python-mysql-replication                             ${p} s   ${prate} rows/s   sluice/python = $(div "$srate" "$prate")x (target >= 8x)
${lat}   (target p99 < 100 ms)
${big}   (target RSS < 200 MiB)
RESULT
