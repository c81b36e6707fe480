#!/usr/bin/env bash
# PostgreSQL CDC benchmark (issue: change capture). One run, same WAL, side by side:
#   - pg_recvlogical (pgoutput, proto 1) from a slot to /dev/null up to the load's end LSN
#   - Sluice: pg_logical source -> shaping (3 metrics per row) -> blackhole sink   (sluice-bench pg)
# Workload: 1,000,000 rows inserted in 1,000-row statements into metrics(id, host, cpu, mem, disk, ts), on the
# test PostgreSQL of scripts/services.sh (a fresh database; both slots created before the load).
# Usage: bench/cdc-pg.sh [ROWS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROWS=${1:-1000000}
./scripts/services.sh start postgres >&2
# shellcheck disable=SC1091
. target/services/env
cargo build --release -p sluice-bench >&2
BASE=${SLUICE_TEST_POSTGRES_URL%/*}
DB=bench_pg_$(date +%s)
URL=$BASE/$DB
export PGPASSWORD=sluice
PSQL=(psql -q -h 127.0.0.1 -p 5433 -U sluice -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d sluice -c "CREATE DATABASE $DB" >&2
cleanup() {
  "${PSQL[@]}" -d "$DB" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()" >/dev/null 2>&1 || true
  "${PSQL[@]}" -d sluice -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"${PSQL[@]}" -d "$DB" <<SQL >&2
CREATE TABLE metrics (id bigserial PRIMARY KEY, host varchar(64), cpu double precision, mem double precision, disk double precision, ts timestamptz);
CREATE PUBLICATION bench_pub FOR TABLE metrics;
SELECT pg_create_logical_replication_slot('bench_recv', 'pgoutput');
SELECT pg_create_logical_replication_slot('bench_sluice', 'pgoutput');
SQL
echo "loading $ROWS rows" >&2
"${PSQL[@]}" -d "$DB" -c "DO \$\$ BEGIN FOR i IN 1..$((ROWS / 1000)) LOOP
  INSERT INTO metrics (host, cpu, mem, disk, ts)
  SELECT 'host-' || (g % 5000), random() * 100, random() * 100, random() * 100, now() FROM generate_series(1, 1000) g;
  COMMIT; END LOOP; END \$\$;" >&2
END=$("${PSQL[@]}" -d "$DB" -Atc "SELECT pg_current_wal_lsn()")

t0=$(date +%s.%N)
pg_recvlogical -h 127.0.0.1 -p 5433 -U sluice -d "$DB" --slot bench_recv --start --endpos "$END" \
  -o proto_version=1 -o publication_names=bench_pub --no-loop -f /dev/null
t_recv=$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN{printf "%.3f", e-s}')
res=$(target/release/sluice-bench pg --url "$URL" --slot bench_sluice --publication bench_pub --rows "$ROWS")
t_sluice=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$res")
r_recv=$(awk -v n="$ROWS" -v t="$t_recv" 'BEGIN{printf "%.0f", n/t}')
r_sluice=$(awk -v n="$ROWS" -v t="$t_sluice" 'BEGIN{printf "%.0f", n/t}')
cat <<RESULT

== PostgreSQL CDC benchmark ($(nproc) cores; $ROWS inserted rows; the server's pgoutput decoding runs on the same cores)
pg_recvlogical (pgoutput) -> /dev/null                ${t_recv} s   ${r_recv} rows/s
sluice pg_logical -> shape (3 metrics/row) -> blackhole ${t_sluice} s   ${r_sluice} rows/s   ratio $(awk -v a="$r_sluice" -v b="$r_recv" 'BEGIN{printf "%.2f", a/b}')x (target >= 1x)
RESULT
