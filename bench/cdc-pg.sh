#!/usr/bin/env bash
# PostgreSQL CDC benchmark (issue: change capture; TLS from the trust issue). One run, same WAL, side by side,
# in plaintext and over TLS (sslmode=require on both sides):
#   - pg_recvlogical (pgoutput, proto 1) from a slot into a file on tmpfs, up to the load's end LSN
#   - Sluice: pg_logical source -> shaping (3 metrics per row) -> blackhole sink   (sluice-bench pg)
# Sluice decodes every change and shapes it; pg_recvlogical writes the raw messages. Over TLS Sluice's
# replication stream goes through its Unix-socket relay (crates/sluice-connectors/src/sources/pg_logical/
# tls_relay.rs), so the TLS pair shows what the relay costs.
# Workload: ROWS rows inserted in 1,000-row transactions into metrics(id, host, cpu, mem, disk, ts), on a
# PostgreSQL of its own (port 5533, data under /tmp, ssl on, plaintext allowed); every slot is created
# before the load. Every timed run must succeed and produce output; Sluice must report every row.
# Usage: bench/cdc-pg.sh [RUNS] [ROWS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS=${SLUICE_PEERS:-$ROOT/../shared/peers}
[ -f "$PEERS/lib.sh" ] || { echo "peer scripts not found at $PEERS (set SLUICE_PEERS)" >&2; exit 1; }
RUNS=${1:-3}
ROWS=${2:-1000000}
# shellcheck disable=SC1091
source "$PEERS/lib.sh"
# shellcheck disable=SC1091
source "$ROOT/bench/lib.sh"
cd "$ROOT"

ensure_apt postgresql postgresql-client openssl
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PORT=5533
DIR=/tmp/sluice-bench-pg
as_pg() { runuser -u postgres -- "$@"; }
stop_pg() { [ -f "$DIR/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true; }
trap stop_pg EXIT
stop_pg
rm -rf "$DIR"
mkdir -p "$DIR"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -keyout "$DIR/server.key" -out "$DIR/server.crt" 2>/dev/null
printf 'sluice\n' >"$DIR/pwfile"
chown -R postgres:postgres "$DIR"
chmod 600 "$DIR/server.key"
as_pg "$PG_BIN/initdb" -D "$DIR/data" -U postgres --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
wal_level = logical
max_replication_slots = 40
max_wal_senders = 10
fsync = off
synchronous_commit = off
ssl = on
ssl_cert_file = '$DIR/server.crt'
ssl_key_file = '$DIR/server.key'
CONF
printf 'local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n' >"$DIR/data/pg_hba.conf"
as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null
as_pg psql -q -h "$DIR" -p $PORT -d postgres -c "CREATE ROLE sluice LOGIN SUPERUSER REPLICATION PASSWORD 'sluice'" -c "CREATE DATABASE bench OWNER sluice"
(cargo build --release -p sluice-bench >&2)
BENCH=$ROOT/target/release/sluice-bench
export PGPASSWORD=sluice
PSQL=(psql -q -h 127.0.0.1 -p $PORT -U sluice -d bench -v ON_ERROR_STOP=1)
"${PSQL[@]}" -c "CREATE TABLE metrics (id bigserial PRIMARY KEY, host varchar(64), cpu double precision, mem double precision, disk double precision, ts timestamptz)" \
  -c "CREATE PUBLICATION bench_pub FOR TABLE metrics"
for ((r = 1; r <= RUNS; r++)); do
  for s in recv_plain recv_tls sluice_plain sluice_tls; do
    "${PSQL[@]}" -c "SELECT pg_create_logical_replication_slot('${s}_$r', 'pgoutput')" >/dev/null
  done
done
log "loading $ROWS rows"
"${PSQL[@]}" -c "DO \$\$ BEGIN FOR i IN 1..$((ROWS / 1000)) LOOP
  INSERT INTO metrics (host, cpu, mem, disk, ts)
  SELECT 'host-' || (g % 5000), random() * 100, random() * 100, random() * 100, now() FROM generate_series(1, 1000) g;
  COMMIT; END LOOP; END \$\$;"
END=$("${PSQL[@]}" -Atc "SELECT pg_current_wal_lsn()")
OUT=$([ -d /dev/shm ] && echo /dev/shm || echo /tmp)/sluice-bench-cdc-pg
mkdir -p "$OUT"

# One run of each of the four, RUNS times; prints the median seconds of each.
declare -A T
for ((r = 1; r <= RUNS; r++)); do
  for mode in plain tls; do
    ssl=disable
    [ $mode = tls ] && ssl=require
    rm -f "$OUT/recv.out"
    t=$(timed "$OUT/recv.log" 0 sh -c "PGSSLMODE=$ssl pg_recvlogical -h 127.0.0.1 -p $PORT -U sluice -d bench --slot recv_${mode}_$r --start \
      --endpos $END -o proto_version=1 -o publication_names=bench_pub --no-loop -f $OUT/recv.out && stat -c %s $OUT/recv.out")
    [ "$(cat "$OUT/recv.log")" -gt 0 ] || { echo "pg_recvlogical wrote nothing" >&2; exit 1; }
    T[recv_$mode]+="$t "
    url="postgres://sluice:sluice@127.0.0.1:$PORT/bench?sslmode=$ssl"
    timed "$OUT/sluice.out" 0 "$BENCH" pg --url "$url" --slot "sluice_${mode}_$r" --publication bench_pub --rows "$ROWS" >/dev/null
    got=$(sed -n 's/.*rows=\([0-9]*\) .*/\1/p' "$OUT/sluice.out")
    [ "${got:-0}" -ge "$ROWS" ] || { echo "sluice ($mode) reported ${got:-no} rows, expected $ROWS" >&2; exit 1; }
    # Sluice times from its first connect to the last record, the figure it prints.
    T[sluice_$mode]+="$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$OUT/sluice.out") "
  done
done
rate() { awk -v n="$ROWS" -v t="$1" 'BEGIN{printf "%.0f", n/t}'; }
declare -A M R
for k in recv_plain recv_tls sluice_plain sluice_tls; do
  # shellcheck disable=SC2086
  M[$k]=$(median ${T[$k]})
  R[$k]=$(rate "${M[$k]}")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
result=$(cat <<RESULT
== PostgreSQL CDC benchmark ($(nproc) cores; $ROWS inserted rows; median of $RUNS; the server's pgoutput decoding runs on the same cores)
runs (s): recv plain ${T[recv_plain]}| sluice plain ${T[sluice_plain]}| recv tls ${T[recv_tls]}| sluice tls ${T[sluice_tls]}
pg_recvlogical (pgoutput) -> file, plaintext            ${M[recv_plain]} s   ${R[recv_plain]} rows/s
sluice pg_logical -> shape -> blackhole, plaintext      ${M[sluice_plain]} s   ${R[sluice_plain]} rows/s   ratio $(ratio "${R[sluice_plain]}" "${R[recv_plain]}")x (target >= 1x)
pg_recvlogical (pgoutput) -> file, TLS                  ${M[recv_tls]} s   ${R[recv_tls]} rows/s
sluice pg_logical -> shape -> blackhole, TLS (relay)    ${M[sluice_tls]} s   ${R[sluice_tls]} rows/s   ratio $(ratio "${R[sluice_tls]}" "${R[recv_tls]}")x
sluice TLS / plaintext                                                      $(ratio "${R[sluice_tls]}" "${R[sluice_plain]}")x
RESULT
)
printf '\n%s\n' "$result"
record_results "bench/cdc-pg.sh" "$result"
