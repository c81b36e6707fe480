#!/usr/bin/env bash
# Backup benchmark (issue 12), one run, same data, side by side.
#
# PostgreSQL: the cluster of ../shared/peers/03-pg-backup.sh (PostgreSQL 15 of its own on 127.0.0.1:5437,
# data under /tmp, `pgbench -i -s 50`, WAL archived to pgBackRest by archive_command):
#   - full backup, MB/s of the cluster: Sluice (pg_basebackup -Ft -X fetch → zstd 3 → AES-256-GCM → a local
#     repository) beside pgBackRest full (zst, process-max=2, no encryption) and pg_basebackup -Ft -z;
#   - restore of that full into a new data directory: Sluice beside pgBackRest restore;
#   - point-in-time restore to the end of a pgbench run that writes about 1 GB of WAL after the full (Sluice's
#     WAL archiver and pgBackRest's archive-push both archiving it): Sluice (base + WAL copied next to it,
#     recovered, promoted, stopped) beside pgBackRest (restore --type=time, then PostgreSQL recovering to
#     promotion);
#   - verification of the full in a scratch server (recovered + amcheck on every database);
#   - incrementals after pgbench writes: Sluice (changed files by SHA-256, on an indexed full) beside
#     pgBackRest --type=incr, each run on the one before.
# MariaDB: the instance of ../shared/peers/lib-mariadb.sh (own mariadbd on :3407, 1,000,000 rows):
#   - Sluice's logical backup (mariadb-dump → zstd → AES) beside plain `mariadb-dump > file` (the same work
#     without sealing);
#   - Sluice's physical backup (mariadb-backup --stream → zstd 3 → AES-256-GCM → a local repository, synced)
#     beside plain `mariadb-backup --backup --target-dir` (no compression, no encryption; synced), the
#     peer the issue names;
#   - an incremental after 10,000 rows changed: Sluice beside `mariadb-backup --incremental-basedir`;
#   - restore of full + incremental into a new data directory: Sluice (extract the chain, prepare each
#     link) beside the peer's `--prepare` of a copy of its full, `--prepare --incremental-dir`, and
#     `--copy-back` into a new data directory (copies first: preparing in place spends the backup).
# Usage: bench/backup.sh [RUNS]
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

ensure_apt postgresql-15 postgresql-contrib pgbackrest mariadb-server mariadb-client mariadb-backup
ensure_venv
(cd "$ROOT" && cargo build --release -p sluice-bench >&2)
BENCH=$ROOT/target/release/sluice-bench

PGBIN=/usr/lib/postgresql/15/bin
PG=/tmp/anchors-pg
PGDATA=$PG/data
PGPORT=5437
BR=/tmp/anchors-pgbr
BRCONF=$BR/pgbackrest.conf
STANZA=anchors
WORK=/tmp/sluice-bench-backup
KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
as_pg() { runuser -u postgres -- "$@"; }
psql_() { as_pg "$PGBIN/psql" -X -q -h "$PG" -p "$PGPORT" -U postgres "$@"; }
pg_stop_dir() {
  local dir=$1 pid
  if [ -f "$dir/postmaster.pid" ]; then
    pid=$(head -1 "$dir/postmaster.pid")
    if kill -0 "$pid" 2>/dev/null; then kill -INT "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; fi
  fi
}
ARCHIVER=
cleanup() {
  [ -n "$ARCHIVER" ] && kill "$ARCHIVER" 2>/dev/null || true
  pg_stop_dir "$PGDATA"
  pg_stop_dir "$WORK/br-pitr"
  mdb_stop
}
trap cleanup EXIT

cleanup
rm -rf "$PG" "$BR" "$WORK"
mkdir -p "$PG" "$BR"/{repo,log,lock,spool} "$WORK"
chmod 755 "$WORK"
chown -R postgres:postgres "$PG" "$BR"
cat >"$BRCONF" <<CONF
[global]
repo1-path=$BR/repo
repo1-retention-full=100
compress-type=zst
process-max=2
start-fast=y
log-path=$BR/log
lock-path=$BR/lock
spool-path=$BR/spool
log-level-console=warn
log-level-file=info

[$STANZA]
pg1-path=$PGDATA
pg1-port=$PGPORT
pg1-socket-path=$PG
pg1-user=postgres
CONF
chown postgres:postgres "$BRCONF"
log "initdb + start on :$PGPORT"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$PG/initdb.log"
cat >>"$PGDATA/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG'
shared_buffers = 512MB
max_wal_size = 4GB
wal_level = replica
archive_mode = on
archive_command = 'pgbackrest --config=$BRCONF --stanza=$STANZA archive-push %p'
CONF
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PG/server.log" -w start >/dev/null
as_pg pgbackrest --config="$BRCONF" --stanza="$STANZA" stanza-create
psql_ -c "CREATE DATABASE bench"
log "pgbench -i -s 50"
as_pg "$PGBIN/pgbench" -i -s 50 -q -h "$PG" -p "$PGPORT" -U postgres bench 2>"$PG/pgbench-init.log"
psql_ -c "CHECKPOINT"
as_pg pgbackrest --config="$BRCONF" --stanza="$STANZA" check
CLUSTER_BYTES=$(psql_ -At -c "SELECT sum(pg_database_size(oid)) FROM pg_database")
CL_MB=$(awk -v b="$CLUSTER_BYTES" 'BEGIN{printf "%.3f", b/1e6}')
log "cluster: $CL_MB MB"

# --- full backups
REPO=$WORK/repo
mkdir -p "$REPO"
S=(); B=(); G=(); SBYTES=0; SID=
for ((r = 1; r <= RUNS; r++)); do
  rm -rf "$REPO"; mkdir -p "$REPO"
  S+=("$(timed "$WORK/sluice-base.txt" 0 "$BENCH" backup pg-base --host 127.0.0.1 --port "$PGPORT" --user postgres --repo "$REPO" --key "$KEY")")
  SID=$(sed -n 's/^id=\([^ ]*\).*/\1/p' "$WORK/sluice-base.txt")
  SBYTES=$(sed -n 's/.*stored_bytes=\([0-9]*\).*/\1/p' "$WORK/sluice-base.txt")
  log "  sluice base backup, run $r: ${S[-1]} s, $SBYTES bytes stored"
  B+=("$(timed "$WORK/br.txt" 0 bash -c "runuser -u postgres -- pgbackrest --config=$BRCONF --stanza=$STANZA backup --type=full && echo ok")")
  log "  pgbackrest full, run $r: ${B[-1]} s"
  rm -rf "$WORK/pgbb"; install -d -o postgres -g postgres "$WORK/pgbb"
  G+=("$(timed "$WORK/pgbb.txt" 0 bash -c "runuser -u postgres -- $PGBIN/pg_basebackup -h $PG -p $PGPORT -U postgres -D $WORK/pgbb -Ft -z -c fast && echo ok")")
  log "  pg_basebackup -Ft -z, run $r: ${G[-1]} s"
done
rm -rf "$WORK/pgbb"
s=$(median "${S[@]}"); b=$(median "${B[@]}"); g=$(median "${G[@]}")
BR_BYTES=$(as_pg pgbackrest --config="$BRCONF" --stanza="$STANZA" info --output=json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup"][-1]["info"]["repository"]["delta"])')

# --- restores of the full
R=(); BRR=()
for ((r = 1; r <= RUNS; r++)); do
  rm -rf "$WORK/sluice-restore"
  R+=("$(timed "$WORK/sr.txt" 0 "$BENCH" backup pg-restore --repo "$REPO" --key "$KEY" --id "$SID" --data "$WORK/sluice-restore")")
  log "  sluice restore, run $r: ${R[-1]} s"
  rm -rf "$WORK/sluice-restore"
  rm -rf "$WORK/br-restore"; install -d -o postgres -g postgres -m 700 "$WORK/br-restore"
  BRR+=("$(timed "$WORK/brr.txt" 0 bash -c "runuser -u postgres -- pgbackrest --config=$BRCONF --stanza=$STANZA restore --pg1-path=$WORK/br-restore && echo ok")")
  log "  pgbackrest restore, run $r: ${BRR[-1]} s"
  rm -rf "$WORK/br-restore"
done
rs=$(median "${R[@]}"); rb=$(median "${BRR[@]}")

# --- verification of the full
v=$(timed "$WORK/verify.txt" 0 "$BENCH" backup verify --repo "$REPO" --key "$KEY" --id "$SID" --scratch "$WORK/scratch")
log "  sluice verification: $v s"

# --- incrementals: after pgbench writes, Sluice's (files whose SHA-256 changed since its indexed full)
# beside pgBackRest's --type=incr (files changed since its full, by size and time), each on the one before.
IREPO=$WORK/irepo
rm -rf "$IREPO"; mkdir -p "$IREPO" "$WORK/ispool"
timed "$WORK/ibase.txt" 0 "$BENCH" backup pg-base --index --host 127.0.0.1 --port "$PGPORT" --user postgres --repo "$IREPO" --key "$KEY" >/dev/null
IPARENT=$(sed -n 's/^id=\([^ ]*\).*/\1/p' "$WORK/ibase.txt")
IFULL_STORED=$(sed -n 's/.*stored_bytes=\([0-9]*\).*/\1/p' "$WORK/ibase.txt")
as_pg pgbackrest --config="$BRCONF" --stanza="$STANZA" backup --type=full >/dev/null
SI=(); BI=(); SI_STORED=0; BI_BYTES=0
for ((r = 1; r <= RUNS; r++)); do
  as_pg "$PGBIN/pgbench" -h "$PG" -p "$PGPORT" -U postgres -c 4 -j 2 -t 2500 -n bench >/dev/null 2>&1
  as_pg "$PGBIN/psql" -X -q -h "$PG" -p "$PGPORT" -U postgres -c CHECKPOINT
  SI+=("$(timed "$WORK/si.txt" 0 "$BENCH" backup pg-incr --host 127.0.0.1 --port "$PGPORT" --user postgres --repo "$IREPO" --key "$KEY" --parent "$IPARENT" --spool "$WORK/ispool")")
  IPARENT=$(sed -n 's/^id=\([^ ]*\).*/\1/p' "$WORK/si.txt"); SI_STORED=$(sed -n 's/.*stored_bytes=\([0-9]*\).*/\1/p' "$WORK/si.txt")
  BI+=("$(timed "$WORK/bi.txt" 0 bash -c "runuser -u postgres -- pgbackrest --config=$BRCONF --stanza=$STANZA backup --type=incr && echo ok")")
  BI_BYTES=$(as_pg pgbackrest --config="$BRCONF" --stanza="$STANZA" info --output=json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup"][-1]["info"]["repository"]["delta"])')
  log "  incremental, run $r: sluice ${SI[-1]} s ($SI_STORED bytes stored), pgbackrest ${BI[-1]} s ($BI_BYTES bytes)"
done
si=$(median "${SI[@]}"); bi=$(median "${BI[@]}")
rm -rf "$IREPO" "$WORK/ispool"

# --- point in time: ~1 GB of WAL after a fresh full of each, archived by both
rm -rf "$REPO"; mkdir -p "$REPO"
# Archiving first (as a policy with log_archiving does): the base backup's WAL must reach the archive.
"$BENCH" backup wal-archive --host 127.0.0.1 --port "$PGPORT" --user postgres --repo "$REPO" --key "$KEY" --prefix wal/bench --spool "$WORK/spool" >"$WORK/archiver.txt" 2>&1 &
ARCHIVER=$!
for ((i = 0; i < 100; i++)); do grep -q archiving "$WORK/archiver.txt" && break; sleep 0.2; done
for ((i = 0; i < 100; i++)); do ls "$WORK/spool"/*.partial >/dev/null 2>&1 && break; sleep 0.2; done
timed "$WORK/sluice-base.txt" 0 "$BENCH" backup pg-base --host 127.0.0.1 --port "$PGPORT" --user postgres --repo "$REPO" --key "$KEY" >/dev/null
SID=$(sed -n 's/^id=\([^ ]*\).*/\1/p' "$WORK/sluice-base.txt")
as_pg pgbackrest --config="$BRCONF" --stanza="$STANZA" backup --type=full
LSN0=$(psql_ -At -c "SELECT pg_current_wal_lsn()")
log "pgbench until about 1 GB of WAL is written"
while :; do
  as_pg "$PGBIN/pgbench" -h "$PG" -p "$PGPORT" -U postgres -c 4 -j 2 -T 20 -n bench >/dev/null 2>&1
  WAL=$(psql_ -At -c "SELECT pg_current_wal_lsn() - '$LSN0'::pg_lsn")
  log "  WAL so far: $((WAL / 1048576)) MiB"
  [ "$WAL" -ge 1000000000 ] && break
done
HIST=$(psql_ -d bench -At -c "SELECT count(*) FROM pgbench_history")
TARGET_MS=$(( $(date +%s%3N) + 1000 ))
TARGET_PG=$(date -u -d "@$((TARGET_MS / 1000))" '+%Y-%m-%d %H:%M:%S+00')
sleep 2
# A commit after the target: recovery knows it passed the target only when it meets a later one.
psql_ -d bench -c "CREATE TABLE after_target (x int)" >/dev/null
# Close the segment holding that commit, and wait until both archives hold it.
SEG=$(psql_ -At -c "SELECT pg_walfile_name(pg_switch_wal())")
for ((i = 0; i < 600; i++)); do
  ls "$REPO/wal/bench/$SEG.sealed" >/dev/null 2>&1 && break
  sleep 0.5
done
[ -f "$REPO/wal/bench/$SEG.sealed" ] || { echo "Sluice's archive never held $SEG" >&2; exit 1; }
as_pg pgbackrest --config="$BRCONF" --stanza="$STANZA" check >/dev/null
kill "$ARCHIVER"; wait "$ARCHIVER" || true; ARCHIVER=
rm -rf "$WORK/sluice-pitr"
ps=$(timed "$WORK/sp.txt" 0 "$BENCH" backup pg-pitr --repo "$REPO" --key "$KEY" --id "$SID" --prefix wal/bench --at "$TARGET_MS" --data "$WORK/sluice-pitr")
shist=$(sed -n 's/.*history_rows=\([0-9]*\).*/\1/p' "$WORK/sp.txt")
[ "$shist" = "$HIST" ] || { echo "Sluice's PITR has $shist history rows, the source had $HIST at the target" >&2; exit 1; }
log "  sluice PITR: $ps s ($shist history rows, as at the target)"
rm -rf "$WORK/sluice-pitr" "$WORK/sluice-pitr.sock"
install -d -o postgres -g postgres -m 700 "$WORK/br-pitr"
t0=$(now)
as_pg pgbackrest --config="$BRCONF" --stanza="$STANZA" restore --pg1-path="$WORK/br-pitr" --type=time "--target=$TARGET_PG" --target-action=promote
install -d -o postgres -g postgres "$WORK/br-sock"
as_pg "$PGBIN/pg_ctl" -D "$WORK/br-pitr" -l "$WORK/br-sock/server.log" -o "-p 5438 -k $WORK/br-sock -c listen_addresses= -c archive_mode=off" -w start >/dev/null
until [ "$(as_pg "$PGBIN/psql" -X -h "$WORK/br-sock" -p 5438 -U postgres -At -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = "f" ]; do sleep 0.2; done
pb=$(elapsed "$t0")
bhist=$(as_pg "$PGBIN/psql" -X -h "$WORK/br-sock" -p 5438 -U postgres -d bench -At -c "SELECT count(*) FROM pgbench_history")
pg_stop_dir "$WORK/br-pitr"
log "  pgbackrest PITR (restore + recovery to promotion): $pb s ($bhist history rows)"
rm -rf "$WORK/br-pitr" "$WORK/br-sock"
WAL_MB=$((WAL / 1000000))
pg_stop_dir "$PGDATA"

# --- MariaDB
log "fresh mariadbd on :$MDB_PORT, loading 1,000,000 rows"
mdb_fresh
mdb_load 1000 1000 0 0
MY=(); MD=(); MYBYTES=0
for ((r = 1; r <= RUNS; r++)); do
  rm -rf "$WORK/myrepo"; mkdir -p "$WORK/myrepo"
  MY+=("$(timed "$WORK/my.txt" 0 "$BENCH" backup mdb-dump --host 127.0.0.1 --port "$MDB_PORT" --user "$MDB_USER" --password "$MDB_PASS" --db bench --repo "$WORK/myrepo" --key "$KEY")"); MYBYTES=$(sed -n 's/.*plain_bytes=\([0-9]*\).*/\1/p' "$WORK/my.txt")
  rows=$(sed -n 's/.*rows=\([0-9]*\).*/\1/p' "$WORK/my.txt"); [ "$rows" = 1000000 ] || { echo "sluice dumped $rows rows" >&2; exit 1; }
  MD+=("$(timed "$WORK/md.txt" 0 bash -c "mariadb-dump --no-defaults -h127.0.0.1 -P$MDB_PORT -u$MDB_USER -p$MDB_PASS --single-transaction --gtid --master-data=2 --routines --triggers --hex-blob --databases bench > $WORK/plain.sql && sync $WORK/plain.sql && echo ok")")
  log "  run $r: sluice ${MY[-1]} s, mariadb-dump > file ${MD[-1]} s"
done
my=$(median "${MY[@]}"); md=$(median "${MD[@]}")
rm -f "$WORK/plain.sql"

# Physical, like for like: each backup synced to disk before its time is taken.
mdb_checksum() { mdb -N -e "CHECKSUM TABLE bench.metrics" | awk '{print $2}'; }
start_on() {  # start_on DATADIR: a mariadbd on a restored data directory, prints the checksum, stops it
  local d=$1 sock=$1.sock
  mariadbd --no-defaults --datadir="$d" --user=root --skip-networking --socket="$sock" --skip-grant-tables \
    --pid-file="$d.pid" --log-error="$d.err" --skip-log-bin >/dev/null 2>&1 &
  local pid=$! i
  for i in $(seq 300); do mariadb --no-defaults -S "$sock" -e "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
  mariadb --no-defaults -S "$sock" -N -e "CHECKSUM TABLE bench.metrics" | awk '{print $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
PF=(); PP=(); PI=(); PPI=(); PR=(); PPR=(); PF_BYTES=0; PF_STORED=0; PI_STORED=0
for ((r = 1; r <= RUNS; r++)); do
  rm -rf "$WORK/prepo" "$WORK/pfull" "$WORK/pinc" "$WORK/pdata" "$WORK/ppdata" "$WORK/pprep"; mkdir -p "$WORK/prepo"
  PF+=("$(timed "$WORK/pf.txt" 0 "$BENCH" backup mdb-physical --socket "$MDB_SOCK" --user root --repo "$WORK/prepo" --key "$KEY")")
  FULL_ID=$(sed -n 's/.*id=\([^ ]*\).*/\1/p' "$WORK/pf.txt"); PF_BYTES=$(sed -n 's/.*plain_bytes=\([0-9]*\).*/\1/p' "$WORK/pf.txt"); PF_STORED=$(sed -n 's/.*stored_bytes=\([0-9]*\).*/\1/p' "$WORK/pf.txt")
  PP+=("$(timed "$WORK/pp.txt" 0 bash -c "mariadb-backup --no-defaults --backup --target-dir=$WORK/pfull --datadir=$MDB_BASE/data --user=root --socket=$MDB_SOCK >$WORK/pp.log 2>&1 && sync -f $WORK/pfull && echo ok")")
  mdb -e "UPDATE bench.metrics SET cpu = cpu + 1 WHERE id % 100 = 0"
  PI+=("$(timed "$WORK/pi.txt" 0 "$BENCH" backup mdb-physical --socket "$MDB_SOCK" --user root --repo "$WORK/prepo" --key "$KEY" --parent "$FULL_ID")")
  INC_ID=$(sed -n 's/.*id=\([^ ]*\).*/\1/p' "$WORK/pi.txt"); PI_STORED=$(sed -n 's/.*stored_bytes=\([0-9]*\).*/\1/p' "$WORK/pi.txt")
  PPI+=("$(timed "$WORK/ppi.txt" 0 bash -c "mariadb-backup --no-defaults --backup --target-dir=$WORK/pinc --incremental-basedir=$WORK/pfull --datadir=$MDB_BASE/data --user=root --socket=$MDB_SOCK >$WORK/ppi.log 2>&1 && sync -f $WORK/pinc && echo ok")")
  WANT=$(mdb_checksum)
  PR+=("$(timed "$WORK/pr.txt" 0 "$BENCH" backup mdb-physical-restore --repo "$WORK/prepo" --key "$KEY" --id "$INC_ID" --data "$WORK/pdata")")
  PPR+=("$(timed "$WORK/ppr.txt" 0 bash -c "cp -a $WORK/pfull $WORK/pprep && cp -a $WORK/pinc $WORK/pprep-inc && mariadb-backup --no-defaults --prepare --use-memory=256M --target-dir=$WORK/pprep >$WORK/ppr.log 2>&1 && mariadb-backup --no-defaults --prepare --use-memory=256M --target-dir=$WORK/pprep --incremental-dir=$WORK/pprep-inc >>$WORK/ppr.log 2>&1 && mariadb-backup --no-defaults --copy-back --target-dir=$WORK/pprep --datadir=$WORK/ppdata >>$WORK/ppr.log 2>&1 && sync -f $WORK/ppdata && echo ok")")
  got=$(start_on "$WORK/pdata"); peer=$(start_on "$WORK/ppdata")
  [ "$got" = "$WANT" ] && [ "$peer" = "$WANT" ] || { echo "restored checksums differ: sluice $got, mariadb-backup $peer, source $WANT" >&2; exit 1; }
  rm -rf "$WORK/pprep" "$WORK/pprep-inc"
  log "  run $r: physical full sluice ${PF[-1]} s / mariadb-backup ${PP[-1]} s; incremental ${PI[-1]} / ${PPI[-1]} s; restore ${PR[-1]} / ${PPR[-1]} s"
done
pf=$(median "${PF[@]}"); pp=$(median "${PP[@]}"); pi=$(median "${PI[@]}"); ppi=$(median "${PPI[@]}"); pr=$(median "${PR[@]}"); ppr=$(median "${PPR[@]}")
PP_BYTES=$(du -sb "$WORK/pfull" | cut -f1); PPI_BYTES=$(du -sb "$WORK/pinc" | cut -f1)
rm -rf "$WORK/prepo" "$WORK/pfull" "$WORK/pinc" "$WORK/pdata" "$WORK/ppdata"

mbps() { awk -v b="$1" -v s="$2" 'BEGIN{printf "%.1f", b/1e6/s}'; }
result=$(cat <<RESULT
== Backup benchmark ($(nproc) cores; PostgreSQL 15 pgbench -s 50, cluster $CL_MB MB; median of $RUNS runs)
  full backup  sluice (zstd 3 + AES-256-GCM, sealed to a local repository)   ${s} s   $(mbps "$CLUSTER_BYTES" "$s") MB/s of the cluster   $SBYTES bytes stored
               pgbackrest full (zst, process-max=2, no encryption)            ${b} s   $(mbps "$CLUSTER_BYTES" "$b") MB/s   $BR_BYTES bytes stored
               pg_basebackup -Ft -z                                           ${g} s   $(mbps "$CLUSTER_BYTES" "$g") MB/s
               sluice / pgbackrest = $(awk -v a="$b" -v c="$s" 'BEGIN{printf "%.2f", a/c}')x MB/s   (target >= 1x, pgBackRest without encryption)
  restore      sluice (into a new data directory)   ${rs} s;  pgbackrest restore   ${rb} s;  sluice time / pgbackrest time = $(awk -v a="$rs" -v c="$rb" 'BEGIN{printf "%.2f", a/c}')x   (target <= 1x)
  PITR         ${WAL_MB} MB of WAL after the full, to its end:  sluice ${ps} s;  pgbackrest restore + recovery ${pb} s;  ratio $(awk -v a="$ps" -v c="$pb" 'BEGIN{printf "%.2f", a/c}')x   (both with $HIST history rows)
  verification of the full (scratch server, recovery, amcheck on every database)   ${v} s   (target < 120 s)
  incremental after pgbench -t 2500 x 4 clients: sluice ${si} s ($SI_STORED bytes stored; its indexed full $IFULL_STORED);  pgbackrest --type=incr ${bi} s ($BI_BYTES bytes);  ratio $(awk -v a="$bi" -v c="$si" 'BEGIN{printf "%.2f", a/c}')x
  MariaDB, 1,000,000 rows: sluice logical (mariadb-dump sealed)   ${my} s   $(mbps "$MYBYTES" "$my") MB/s of dump;  mariadb-dump > file   ${md} s;  ratio $(awk -v a="$md" -v c="$my" 'BEGIN{printf "%.2f", a/c}')x
  MariaDB physical full: sluice (mariadb-backup stream, zstd 3 + AES-256-GCM)   ${pf} s   $(mbps "$PF_BYTES" "$pf") MB/s   $PF_STORED bytes stored;  mariadb-backup --backup   ${pp} s   $(mbps "$PP_BYTES" "$pp") MB/s   $PP_BYTES bytes;  ratio $(awk -v a="$pp" -v c="$pf" 'BEGIN{printf "%.2f", a/c}')x
           incremental after 10,000 rows changed: sluice ${pi} s ($PI_STORED bytes stored);  mariadb-backup ${ppi} s ($PPI_BYTES bytes);  ratio $(awk -v a="$ppi" -v c="$pi" 'BEGIN{printf "%.2f", a/c}')x
           restore full + incremental into a new data directory: sluice ${pr} s;  mariadb-backup copy + prepare + prepare incremental + copy-back ${ppr} s;  ratio $(awk -v a="$ppr" -v c="$pr" 'BEGIN{printf "%.2f", a/c}')x  (checksums equal to the source's)
  each run (s): sluice base ${S[*]}; pgbackrest ${B[*]}; pg_basebackup ${G[*]}; sluice restore ${R[*]}; pgbackrest restore ${BRR[*]}; mariadb ${MY[*]} / ${MD[*]}; physical ${PF[*]} / ${PP[*]}, incremental ${PI[*]} / ${PPI[*]}, restore ${PR[*]} / ${PPR[*]}
RESULT
)
printf '\n%s\n' "$result"
record_results "bench/backup.sh" "$result"
