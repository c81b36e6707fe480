#!/usr/bin/env bash
# Ticket benchmarks (issue: change tickets). Prints and records:
#   - one ticket of N single-row UPDATE statements (default 400,000) on MariaDB: the review (what submit runs)
#     and a dry run (every statement inside a transaction that is rolled back), timed apart
#     (sluice-bench ticket-dry-run). goInception's users report about 5,000 statements/s checked and about
#     50/s executed; no goInception build is available here, so those are quoted, not run.
#   - GET /api/v1/tickets?limit=50 under wrk with 10,000 tickets, on the SQLite store and on the PostgreSQL store.
#   - batched UPDATE of ROWS rows (default 1,000,000) in 1,000-row chunks, each committed with its checkpoint,
#     throttling off, on MariaDB and on PostgreSQL (sluice-bench batched); every row checked updated once.
#   - backup mode over the same ROWS rows in one transaction and the rollback script made from them: on
#     MariaDB the rows are read back from the binlog (sluice-bench rollback-gen); on PostgreSQL they come
#     back through RETURNING in the same transaction. No peer runs here (binlog2sql / goInception are not
#     installable from the registries here).
# Targets: batched >= 50,000 rows/s; rollback generation >= 200,000 rows/s; review + dry run of 400,000
# statements < 60 s; list p99 < 20 ms and >= 10,000 req/s on both stores.
# Usage: bench/exec.sh [STATEMENTS] [DURATION_SECONDS] [ROWS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS=${SLUICE_PEERS:-$ROOT/../shared/peers}
# shellcheck disable=SC1091
source "$PEERS/lib.sh"
# shellcheck disable=SC1091
source "$ROOT/bench/lib.sh"
cd "$ROOT"
STATEMENTS=${1:-400000}
DURATION=${2:-15}
ROWS=${3:-1000000}
./scripts/services.sh start mariadb postgres >&2
# shellcheck disable=SC1091
. target/services/env
command -v wrk >/dev/null || ensure_apt wrk
cargo build --release -p sluice -p sluice-bench >&2
OUT=target/bench/exec
rm -rf "$OUT"; mkdir -p "$OUT"

# --- review + dry run of one big ticket
DB=bench_exec_$(date +%s)
mariadb --no-defaults -h127.0.0.1 -P3307 -usluice -psluice -e "CREATE DATABASE $DB"
mariadb --no-defaults -h127.0.0.1 -P3307 -usluice -psluice "$DB" -e "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO t SELECT seq, 0 FROM seq_1_to_1000;"
before=$(mariadb --no-defaults -h127.0.0.1 -P3307 -usluice -psluice -N -e "CHECKSUM TABLE $DB.t" | awk '{print $2}')
t=$(timed "$OUT/dry.out" 0 target/release/sluice-bench ticket-dry-run --url "${SLUICE_TEST_MARIADB_URL}$DB" --statements "$STATEMENTS")
after=$(mariadb --no-defaults -h127.0.0.1 -P3307 -usluice -psluice -N -e "CHECKSUM TABLE $DB.t" | awk '{print $2}')
[ "$before" = "$after" ] || { echo "the dry run changed the table ($before -> $after)" >&2; exit 1; }
mariadb --no-defaults -h127.0.0.1 -P3307 -usluice -psluice -e "DROP DATABASE $DB"
dry=$(cat "$OUT/dry.out")
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$dry"; }

# --- batched update and rollback generation on both engines
mdb() { mariadb --no-defaults -h127.0.0.1 -P3307 -usluice -psluice "$@"; }
pg() { PGPASSWORD=sluice psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5433 -U sluice "$@"; }
val() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" "$OUT/$1.out"; }
DB=bench_batch_$(date +%s)
mdb -e "CREATE DATABASE $DB; CREATE TABLE $DB.t (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO $DB.t SELECT seq, 0 FROM $DB.seq_1_to_$ROWS;"
target/release/sluice-bench batched --url "${SLUICE_TEST_MARIADB_URL}$DB" >"$OUT/batched-mariadb.out"
[ "$(mdb -N -e "SELECT COUNT(*) FROM $DB.t WHERE v <> 1")" = 0 ] || { echo "batched (MariaDB): not every row updated once" >&2; exit 1; }
target/release/sluice-bench rollback-gen --url "${SLUICE_TEST_MARIADB_URL}$DB" >"$OUT/rbgen-mariadb.out"
[ "$(mdb -N -e "SELECT COUNT(*) FROM $DB.t WHERE v <> 2")" = 0 ] || { echo "backup run (MariaDB): not every row updated" >&2; exit 1; }
mdb -e "DROP DATABASE $DB"
pg -d sluice -c "CREATE DATABASE $DB"
pg -d "$DB" -c "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL); INSERT INTO t SELECT g, 0 FROM generate_series(1, $ROWS) g;"
target/release/sluice-bench batched --url "postgres://sluice:sluice@127.0.0.1:5433/$DB" >"$OUT/batched-postgres.out"
[ "$(pg -d "$DB" -At -c "SELECT count(*) FROM t WHERE v <> 1")" = 0 ] || { echo "batched (PostgreSQL): not every row updated once" >&2; exit 1; }
target/release/sluice-bench rollback-gen --url "postgres://sluice:sluice@127.0.0.1:5433/$DB" >"$OUT/rbgen-postgres.out"
[ "$(pg -d "$DB" -At -c "SELECT count(*) FROM t WHERE v <> 2")" = 0 ] || { echo "backup run (PostgreSQL): not every row updated" >&2; exit 1; }
pg -d sluice -c "DROP DATABASE $DB"

# --- the ticket list on both stores
PORT=7791
URL=http://127.0.0.1:$PORT
TOKEN=slc_bench_admin_token_0123456789abcdef0123
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null || true' EXIT
list_bench() { # NAME STORE-ARGS…
  local name=$1; shift
  rm -rf "$OUT/data-$name"
  SLUICE_ADMIN_TOKEN=$TOKEN SLUICE_LOG=warn target/release/sluice serve --data-dir "$OUT/data-$name" --listen "127.0.0.1:$PORT" "$@" \
    >"$OUT/server-$name.out" 2>"$OUT/server-$name.log" </dev/null &
  PID=$!
  until curl -fsS "$URL/readyz" >/dev/null 2>&1; do sleep 0.05; done
  local api=(-fsS -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json')
  curl "${api[@]}" -o /dev/null -X POST "$URL/api/v1/instances" -d '{"name":"db","engine":"mariadb","host":"10.1.0.1","username":"app","environment":"prod"}'
  curl "${api[@]}" -o /dev/null -X POST "$URL/api/v1/projects" -d '{"name":"bench"}'
  curl "${api[@]}" -o /dev/null -X POST "$URL/api/v1/projects/bench/instances" -d '{"instance":"db"}'
  log "$name: creating 10,000 tickets"
  seq 1 10000 | xargs -P 8 -I{} curl "${api[@]}" -o /dev/null -X POST "$URL/api/v1/tickets" \
    -d '{"project":"bench","kind":"dml","title":"t{}","statements":"UPDATE t SET v = {} WHERE id = {};","targets":[{"instance":"db","database":"shop"}]}'
  local n
  n=$(curl "${api[@]}" "$URL/api/v1/tickets?limit=200" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
  [ "$n" = 200 ] || { echo "$name: expected a full page of 200 tickets, got $n" >&2; exit 1; }
  wrk -t2 -c16 -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$URL/api/v1/tickets?limit=50" >"$OUT/wrk-$name.txt"
  local non2xx; non2xx=$(awk '/Non-2xx/ {print $NF}' "$OUT/wrk-$name.txt" | grep . || echo 0)
  [ "$non2xx" = 0 ] || { echo "$name: $non2xx non-2xx answers" >&2; exit 1; }
  printf 'GET /api/v1/tickets?limit=50, 10,000 tickets, %-8s c=16  %s req/s   p50 %s   p99 %s\n' "$name" \
    "$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-$name.txt")" "$(awk '$1=="50%" {print $2}' "$OUT/wrk-$name.txt")" "$(awk '$1=="99%" {print $2}' "$OUT/wrk-$name.txt")"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}
line_sqlite=$(list_bench sqlite)
PGDB=bench_exec_store_$(date +%s)
PGPASSWORD=sluice psql -q -h 127.0.0.1 -p 5433 -U sluice -d sluice -c "CREATE DATABASE $PGDB"
line_pg=$(list_bench postgres --store "postgres://sluice:sluice@127.0.0.1:5433/$PGDB")
PGPASSWORD=sluice psql -q -h 127.0.0.1 -p 5433 -U sluice -d sluice -c "DROP DATABASE $PGDB" || true

result=$(cat <<RESULT
== Ticket benchmarks ($(nproc) cores)
one ticket of $STATEMENTS single-row UPDATEs (MariaDB): review $(field review_s) s ($(field review_per_s)/s), dry run $(field dry_run_s) s ($(field dry_run_per_s)/s), total $(field total_s) s (target < 60 s; wall with start-up $t s); the table's checksum unchanged
  goInception, as its users report it (not run here): ~5,000 statements/s checked, ~50/s executed
batched UPDATE of $ROWS rows in 1,000-row chunks (checkpoint per chunk, throttling off): MariaDB $(val batched-mariadb rows_per_s) rows/s ($(val batched-mariadb seconds) s), PostgreSQL $(val batched-postgres rows_per_s) rows/s ($(val batched-postgres seconds) s) (target >= 50,000)
backup mode, $ROWS rows in one UPDATE: MariaDB run $(val rbgen-mariadb run_s) s, rows read back from the binlog $(val rbgen-mariadb capture_s) s, script $(val rbgen-mariadb script_s) s: rollback generation $(val rbgen-mariadb generation_rows_per_s) rows/s; PostgreSQL run with RETURNING capture $(val rbgen-postgres run_s) s, script $(val rbgen-postgres script_s) s: generation $(val rbgen-postgres generation_rows_per_s) rows/s (target >= 200,000)
$line_sqlite
$line_pg
(targets: p99 < 20 ms, >= 10,000 req/s)
RESULT
)
printf '\n%s\n' "$result"
record_results "bench/exec.sh" "$result"
