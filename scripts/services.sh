#!/usr/bin/env bash
# Real services for Sluice's tests and quickstart: dedicated instances on loopback, own ports, data under
# target/services/ (never the system's default instances).
#
#   scripts/services.sh start  [NAME…]   install missing Debian packages, start, wait until each accepts connections
#   scripts/services.sh stop   [NAME…]
#   scripts/services.sh status [NAME…]   exit 1 when any named service is down
#
# NAME is one of: mariadb mariadb-replica postgres redis prometheus alertmanager smtp nats rabbitmq mosquitto vsftpd sshd garage (default: all). `start` is idempotent: when everything is
# up it returns at once. It writes target/services/env, which exports the URLs the tests read:
#   SLUICE_TEST_MARIADB_URL  SLUICE_TEST_MARIADB_REPLICA_URL  SLUICE_TEST_POSTGRES_URL  SLUICE_TEST_REDIS_URL
#   SLUICE_TEST_PROMETHEUS_URL  SLUICE_TEST_NATS_URL  SLUICE_TEST_AMQP_URL  SLUICE_TEST_MQTT_URL  SLUICE_TEST_FTP_URL
#   SLUICE_TEST_SFTP_URL  SLUICE_TEST_SFTP_KEY (the private key the SFTP user logs in with)
#   SLUICE_TEST_S3_URL (http://KEY_ID:SECRET@host:port/BUCKET, region `garage`)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${SLUICE_SERVICES_DIR:-$ROOT/target/services}"
ALL=(mariadb mariadb-replica postgres redis prometheus alertmanager smtp nats rabbitmq mosquitto vsftpd sshd garage)

MARIADB_PORT=3307
MARIADB_REPLICA_PORT=3308
POSTGRES_PORT=5433
REDIS_PORT=6380
PROMETHEUS_PORT=9095
ALERTMANAGER_PORT=9096
SMTP_PORT=2525
# Where the Alertmanager's webhook receiver expects a Sluice server during the alert-intake test.
ALERTMANAGER_WEBHOOK_PORT=7798
NATS_PORT=4223
RABBITMQ_PORT=5673
RABBITMQ_DIST_PORT=25673
RABBITMQ_EPMD_PORT=4370
MOSQUITTO_PORT=1884
FTP_PORT=2121
FTP_PASV_MIN=30100
FTP_PASV_MAX=30199
SSHD_PORT=2222
GARAGE_S3_PORT=3990
GARAGE_RPC_PORT=3991
GARAGE_ADMIN_PORT=3993
GARAGE_VERSION=2.5.0
# Test-only S3 credentials in Garage's key format (GK + 24 hex, 64 hex), imported into the test instance.
GARAGE_KEY_ID=GK0123456789abcdef01234567
GARAGE_SECRET=5c1cec1ce5ed5ec1ce0123456789abcdef0123456789abcdef0123456789abcd
GARAGE_BUCKET=sluice-test
# The system user FTP and SFTP tests log in as (its home is the drop folder; test-only password).
DROP_USER=sluicedrop
# Test-only credentials of test-only instances bound to 127.0.0.1.
SVC_USER=sluice
SVC_PASS=sluice

PG_BIN=/usr/lib/postgresql/15/bin

log() { printf '[services %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

apt_updated=0
ensure_packages() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  if ((apt_updated == 0)); then
    log "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# wait_for NAME CHECK-COMMAND… : poll up to 60 s
wait_for() {
  local name=$1 i
  shift
  for ((i = 0; i < 300; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 1
}

# ---------------------------------------------------------------- MariaDB (binlog on, ROW, FULL, GTID)
MDB_DIR=$BASE/mariadb
mdb_cli() { mariadb --no-defaults -S "$MDB_DIR/mysqld.sock" -uroot "$@"; }
mariadb_up() { mariadb-admin --no-defaults -h127.0.0.1 -P"$MARIADB_PORT" -u"$SVC_USER" -p"$SVC_PASS" ping; }

mariadb_start() {
  # openssl makes the certificates of the TLS tests' private servers.
  # percona-toolkit: pt-online-schema-change, which online-DDL tickets drive.
  ensure_packages mariadb-server mariadb-client mariadb-backup openssl percona-toolkit
  if mariadb_up >/dev/null 2>&1; then
    # A server left running from a checkout that was since deleted answers pings but cannot create a
    # database: reuse a running server only while its data dir exists.
    local dd tries=0
    dd=$(mariadb --no-defaults -h127.0.0.1 -P"$MARIADB_PORT" -u"$SVC_USER" -p"$SVC_PASS" -N -e "SELECT @@datadir" 2>/dev/null || true)
    if [ -n "$dd" ] && [ -d "$dd/mysql" ]; then return 0; fi
    log "mariadb: the server on $MARIADB_PORT runs on a data dir that is gone (${dd:-unknown}); stopping it"
    pkill -f -- "--port=$MARIADB_PORT" || true
    while mariadb_up >/dev/null 2>&1; do
      tries=$((tries + 1)); [ "$tries" -lt 100 ] || die "mariadb: the stale server on $MARIADB_PORT does not stop"
      sleep 0.2
    done
  fi
  mkdir -p "$MDB_DIR/binlog"
  local fresh=0
  if [ ! -d "$MDB_DIR/data/mysql" ]; then
    log "mariadb: initialising $MDB_DIR/data"
    rm -rf "$MDB_DIR/data"
    mariadb-install-db --no-defaults --datadir="$MDB_DIR/data" --user=root \
      --auth-root-authentication-method=socket --skip-test-db >"$MDB_DIR/install.log" 2>&1 \
      || die "mariadb-install-db failed; see $MDB_DIR/install.log"
    fresh=1
  fi
  log "mariadb: starting on 127.0.0.1:$MARIADB_PORT"
  setsid mariadbd --no-defaults --datadir="$MDB_DIR/data" --user=root \
    --port="$MARIADB_PORT" --bind-address=127.0.0.1 --socket="$MDB_DIR/mysqld.sock" \
    --pid-file="$MDB_DIR/mariadbd.pid" --log-error="$MDB_DIR/error.log" --skip-name-resolve \
    --log-bin="$MDB_DIR/binlog/mysql-bin" --binlog-format=ROW --binlog-row-image=FULL \
    --binlog-row-metadata=FULL --server-id=1 --gtid-domain-id=0 --log-slave-updates=ON \
    --innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 \
    --max-allowed-packet=256M --max-connections=500 </dev/null >/dev/null 2>&1 &
  wait_for mariadb-socket mdb_cli -e "SELECT 1" \
    || { tail -20 "$MDB_DIR/error.log" >&2; die "mariadb did not start; see $MDB_DIR/error.log"; }
  if ((fresh)); then
    mdb_cli -e "CREATE USER '$SVC_USER'@'127.0.0.1' IDENTIFIED BY '$SVC_PASS';
                GRANT ALL PRIVILEGES ON *.* TO '$SVC_USER'@'127.0.0.1' WITH GRANT OPTION;
                CREATE DATABASE IF NOT EXISTS sluice_demo;"
  fi
  wait_for mariadb mariadb_up || die "mariadb does not accept TCP connections on $MARIADB_PORT"
}

# stop_pidfile NAME PIDFILE: stops the process the file names, waits until it is gone, removes the file.
stop_pidfile() {
  local name=$1 pidf=$2 pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: stopping pid $pid"
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
  rm -f "$pidf"
}

mariadb_stop() { stop_pidfile mariadb "$MDB_DIR/mariadbd.pid"; }

# ---------------------------------------------------------------- MariaDB replica of the above
# A GTID replica on its own port, for what watches replicas (batched tickets' lag throttle). It applies
# only databases named `lagtest_*` (tests create them): the rest of the primary's traffic passes by. It
# starts at the primary's current position, so statements the filter lets through that name objects made
# before (a routine in another database, say) cannot apply here: it skips failing events rather than stop,
# since a stopped replica holds back every batched ticket on the primary (which is what the throttle is for).
# `report_host`/`report_port` make the primary list it in SHOW SLAVE HOSTS. Re-pointed at the primary's
# current position whenever it is not replicating (a fresh primary, say).
MDBR_DIR=$BASE/mariadb-replica
mdbr_cli() { mariadb --no-defaults -S "$MDBR_DIR/mysqld.sock" -uroot "$@"; }
mariadb_replica_up() {
  [ "$(mariadb --no-defaults -h127.0.0.1 -P"$MARIADB_REPLICA_PORT" -u"$SVC_USER" -p"$SVC_PASS" -e "SHOW SLAVE STATUS\G" 2>/dev/null \
    | grep -cE '^ *Slave_(IO|SQL)_Running: Yes$')" = 2 ]
}

mariadb_replica_start() {
  mariadb_up >/dev/null 2>&1 || mariadb_start
  if ! mdbr_cli -e "SELECT 1" >/dev/null 2>&1; then
    mkdir -p "$MDBR_DIR"
    if [ ! -d "$MDBR_DIR/data/mysql" ]; then
      log "mariadb-replica: initialising $MDBR_DIR/data"
      rm -rf "$MDBR_DIR/data"
      mariadb-install-db --no-defaults --datadir="$MDBR_DIR/data" --user=root \
        --auth-root-authentication-method=socket >"$MDBR_DIR/install.log" 2>&1 \
        || die "mariadb-install-db (replica) failed; see $MDBR_DIR/install.log"
    fi
    log "mariadb-replica: starting on 127.0.0.1:$MARIADB_REPLICA_PORT"
    setsid mariadbd --no-defaults --datadir="$MDBR_DIR/data" --user=root \
      --port="$MARIADB_REPLICA_PORT" --bind-address=127.0.0.1 --socket="$MDBR_DIR/mysqld.sock" \
      --pid-file="$MDBR_DIR/mariadbd.pid" --log-error="$MDBR_DIR/error.log" --skip-name-resolve \
      --server-id=2 --report-host=127.0.0.1 --report-port="$MARIADB_REPLICA_PORT" \
      --replicate-wild-do-table='lagtest\_%.%' --slave-skip-errors=all --skip-log-bin --innodb-buffer-pool-size=64M \
      --innodb-flush-log-at-trx-commit=2 </dev/null >/dev/null 2>&1 &
    wait_for mariadb-replica-socket mdbr_cli -e "SELECT 1" \
      || { tail -20 "$MDBR_DIR/error.log" >&2; die "mariadb-replica did not start; see $MDBR_DIR/error.log"; }
    mdbr_cli -e "CREATE USER IF NOT EXISTS '$SVC_USER'@'127.0.0.1' IDENTIFIED BY '$SVC_PASS';
                 GRANT ALL PRIVILEGES ON *.* TO '$SVC_USER'@'127.0.0.1' WITH GRANT OPTION;"
  fi
  if ! mariadb_replica_up; then
    local pos
    pos=$(mdb_cli -N -e "SELECT @@gtid_current_pos")
    log "mariadb-replica: replicating from 127.0.0.1:$MARIADB_PORT at GTID '$pos'"
    mdbr_cli -e "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL gtid_slave_pos = '$pos';
                 CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$MARIADB_PORT, MASTER_USER='$SVC_USER',
                   MASTER_PASSWORD='$SVC_PASS', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
                 START SLAVE;"
    wait_for mariadb-replica mariadb_replica_up || { mdbr_cli -e "SHOW SLAVE STATUS\G" >&2 || true; die "mariadb-replica does not replicate"; }
  fi
}

mariadb-replica_start() { mariadb_replica_start; }
mariadb-replica_stop() { stop_pidfile mariadb-replica "$MDBR_DIR/mariadbd.pid"; }

# ---------------------------------------------------------------- PostgreSQL (wal_level=logical)
as_pg() { runuser -u postgres -- "$@"; }
# The server runs as the `postgres` user, who must be able to reach its data dir. A checkout in a home
# directory of mode 700 (root's, say) is not reachable: then the data lives under the postgres user's own
# home, in a folder named after this checkout so two checkouts never share one. SLUICE_PG_DIR overrides.
pg_dir() {
  if [ -n "${SLUICE_PG_DIR:-}" ]; then printf '%s\n' "$SLUICE_PG_DIR"; return; fi
  mkdir -p "$BASE"
  if id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$BASE" 2>/dev/null; then
    local home
    home=$(getent passwd postgres | cut -d: -f6)
    printf '%s/sluice-services-%s\n' "${home:-/var/lib/postgresql}" "$(printf '%s' "$BASE" | sha256sum | cut -c1-12)"
  else
    printf '%s/postgres\n' "$BASE"
  fi
}
postgres_up() { as_pg "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT"; }

postgres_start() {
  ensure_packages postgresql postgresql-client
  if postgres_up >/dev/null 2>&1; then return 0; fi
  PG_DIR=$(pg_dir)
  # The server refuses to run as root: its files belong to the postgres user, and every parent directory
  # must be traversable by it.
  mkdir -p "$PG_DIR"
  chown postgres:postgres "$PG_DIR"
  local fresh=0
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    log "postgres: initialising $PG_DIR/data"
    as_pg rm -rf "$PG_DIR/data"
    printf '%s\n' "$SVC_PASS" >"$PG_DIR/pwfile"
    chown postgres:postgres "$PG_DIR/pwfile"
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
      --pwfile="$PG_DIR/pwfile" -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
      || die "initdb failed; see $PG_DIR/initdb.log"
    rm -f "$PG_DIR/pwfile"
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $POSTGRES_PORT
unix_socket_directories = '$PG_DIR'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    cat >"$PG_DIR/data/pg_hba.conf" <<HBA
local   all          postgres                 peer
host    all          all        127.0.0.1/32  scram-sha-256
host    replication  all        127.0.0.1/32  scram-sha-256
HBA
    fresh=1
  fi
  log "postgres: starting on 127.0.0.1:$POSTGRES_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null \
    || { tail -20 "$PG_DIR/server.log" >&2; die "postgres did not start; see $PG_DIR/server.log"; }
  if ((fresh)); then
    as_pg psql -q -h "$PG_DIR" -p "$POSTGRES_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
      -c "CREATE ROLE $SVC_USER LOGIN SUPERUSER REPLICATION PASSWORD '$SVC_PASS';" \
      -c "CREATE DATABASE $SVC_USER OWNER $SVC_USER;" >/dev/null
  fi
  wait_for postgres postgres_up || die "postgres does not accept connections on $POSTGRES_PORT"
}

postgres_stop() {
  PG_DIR=$(pg_dir)
  [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
  log "postgres: stopping"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null || true
}

# ---------------------------------------------------------------- Redis
REDIS_DIR=$BASE/redis
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --no-auth-warning -a "$SVC_PASS" ping | grep -q PONG; }

redis_start() {
  ensure_packages redis-server redis-tools
  if redis_up >/dev/null 2>&1; then return 0; fi
  mkdir -p "$REDIS_DIR"
  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" --daemonize yes \
    --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" --requirepass "$SVC_PASS" \
    --save "" --appendonly no >/dev/null
  wait_for redis redis_up || { tail -20 "$REDIS_DIR/redis.log" >&2; die "redis did not start"; }
}

redis_stop() {
  local pidf=$REDIS_DIR/redis.pid pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    log "redis: stopping pid $pid"
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
  rm -f "$pidf"
}

# ---------------------------------------------------------------- Prometheus (remote-write receiver)
PROM_DIR=$BASE/prometheus
prometheus_up() { curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"; }

prometheus_start() {
  ensure_packages prometheus curl
  mkdir -p "$PROM_DIR/data"
  # No scrape jobs: this instance receives remote writes and answers queries; one always-firing rule
  # feeds the Alertmanager below, whose webhook the alert-intake test receives.
  cat >"$PROM_DIR/prometheus.yml" <<CONF
global:
  scrape_interval: 1h
  evaluation_interval: 2s
rule_files: ["$PROM_DIR/rules.yml"]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$ALERTMANAGER_PORT"]
CONF
  cat >"$PROM_DIR/rules.yml" <<'CONF'
groups:
  - name: sluice-test
    rules:
      - alert: SluiceTestAlwaysFiring
        expr: vector(1)
        labels: {severity: warning, instance: prometheus-test}
        annotations: {summary: "always firing: the source of Sluice's Alertmanager intake test"}
CONF
  if prometheus_up >/dev/null 2>&1; then
    curl -fsS -X POST "http://127.0.0.1:$PROMETHEUS_PORT/-/reload" >/dev/null 2>&1 || true
    return 0
  fi
  log "prometheus: starting on 127.0.0.1:$PROMETHEUS_PORT"
  setsid prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --web.enable-remote-write-receiver --web.enable-lifecycle \
    --rules.alert.resend-delay=2s --storage.tsdb.retention.time=2d </dev/null >"$PROM_DIR/prometheus.log" 2>&1 &
  echo $! >"$PROM_DIR/prometheus.pid"
  wait_for prometheus prometheus_up || { tail -20 "$PROM_DIR/prometheus.log" >&2; die "prometheus did not start"; }
}

prometheus_stop() { stop_pidfile prometheus "$PROM_DIR/prometheus.pid"; }

# ---------------------------------------------------------------- Alertmanager (Prometheus's alerts → webhook)
# Sends Prometheus's alerts, in its webhook format, to a Sluice server the intake test starts on
# 127.0.0.1:$ALERTMANAGER_WEBHOOK_PORT with a token it writes to $AM_DIR/sluice_token (read at each send).
AM_DIR=$BASE/alertmanager
alertmanager_up() { curl -fsS "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready"; }

alertmanager_start() {
  ensure_packages prometheus-alertmanager curl
  if alertmanager_up >/dev/null 2>&1; then return 0; fi
  mkdir -p "$AM_DIR/data"
  [ -f "$AM_DIR/sluice_token" ] || echo "not-yet-a-token" >"$AM_DIR/sluice_token"
  cat >"$AM_DIR/alertmanager.yml" <<CONF
route:
  receiver: sluice
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 5s
receivers:
  - name: sluice
    webhook_configs:
      - url: http://127.0.0.1:$ALERTMANAGER_WEBHOOK_PORT/api/v1/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials_file: $AM_DIR/sluice_token
CONF
  log "alertmanager: starting on 127.0.0.1:$ALERTMANAGER_PORT"
  setsid prometheus-alertmanager --config.file="$AM_DIR/alertmanager.yml" --storage.path="$AM_DIR/data" \
    --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address="" </dev/null >"$AM_DIR/alertmanager.log" 2>&1 &
  echo $! >"$AM_DIR/alertmanager.pid"
  wait_for alertmanager alertmanager_up || { tail -20 "$AM_DIR/alertmanager.log" >&2; die "alertmanager did not start"; }
}

alertmanager_stop() { stop_pidfile alertmanager "$AM_DIR/alertmanager.pid"; }

# ---------------------------------------------------------------- SMTP (e-mail notifications)
# Debian's aiosmtpd: a real SMTP server (RFC 5321) that delivers every message it accepts into a Maildir.
SMTP_DIR=$BASE/smtp
smtp_up() { /usr/bin/python3 -c "import smtplib; s = smtplib.SMTP('127.0.0.1', $SMTP_PORT, timeout=3); s.noop(); s.quit()"; }

smtp_start() {
  ensure_packages python3-aiosmtpd
  if smtp_up >/dev/null 2>&1; then return 0; fi
  mkdir -p "$SMTP_DIR/Maildir/tmp" "$SMTP_DIR/Maildir/new" "$SMTP_DIR/Maildir/cur"
  log "smtp: starting on 127.0.0.1:$SMTP_PORT (Maildir $SMTP_DIR/Maildir)"
  setsid /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$SMTP_DIR/Maildir" \
    </dev/null >"$SMTP_DIR/smtp.log" 2>&1 &
  echo $! >"$SMTP_DIR/smtp.pid"
  wait_for smtp smtp_up || { tail -20 "$SMTP_DIR/smtp.log" >&2; die "smtp did not start"; }
}

smtp_stop() { stop_pidfile smtp "$SMTP_DIR/smtp.pid"; }

# ---------------------------------------------------------------- NATS (JetStream on)
NATS_DIR=$BASE/nats
nats_up() { curl -fsS "http://127.0.0.1:$((NATS_PORT + 1000))/healthz?js-enabled-only=true" | grep -q ok; }

nats_start() {
  ensure_packages nats-server curl
  if nats_up >/dev/null 2>&1; then return 0; fi
  mkdir -p "$NATS_DIR/js"
  log "nats: starting on 127.0.0.1:$NATS_PORT (JetStream in $NATS_DIR/js)"
  setsid nats-server -a 127.0.0.1 -p "$NATS_PORT" -m "$((NATS_PORT + 1000))" -js -sd "$NATS_DIR/js" \
    --user "$SVC_USER" --pass "$SVC_PASS" -P "$NATS_DIR/nats.pid" -l "$NATS_DIR/nats.log" </dev/null >/dev/null 2>&1 &
  wait_for nats nats_up || { tail -20 "$NATS_DIR/nats.log" >&2; die "nats did not start"; }
}

nats_stop() { stop_pidfile nats "$NATS_DIR/nats.pid"; }

# ---------------------------------------------------------------- RabbitMQ
# Run through its own start script as root (the Debian wrapper would switch to the rabbitmq user, who may
# not reach this checkout), with its own node name, ports, epmd port, cookie and data dir.
RMQ_DIR=$BASE/rabbitmq
rmq_env() {
  env HOME="$RMQ_DIR" RABBITMQ_NODENAME="sluice@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$RABBITMQ_PORT" RABBITMQ_DIST_PORT="$RABBITMQ_DIST_PORT" ERL_EPMD_PORT="$RABBITMQ_EPMD_PORT" \
    ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia" RABBITMQ_LOG_BASE="$RMQ_DIR/log" \
    RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins" \
    RABBITMQ_PID_FILE="$RMQ_DIR/rabbitmq.pid" ERL_CRASH_DUMP="$RMQ_DIR/erl_crash.dump" "$@"
}
rabbitmq_up() { rmq_env /usr/lib/rabbitmq/bin/rabbitmq-diagnostics -q check_port_connectivity; }

rabbitmq_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$RABBITMQ_PORT") 2>/dev/null; }

rabbitmq_start() {
  ensure_packages rabbitmq-server
  if rabbitmq_up >/dev/null 2>&1; then return 0; fi
  # A node that answers on our port but not to this checkout's cookie was left by another checkout (its data
  # dir may be gone): stop it, as for MariaDB.
  if rabbitmq_listening; then
    log "rabbitmq: a node from another checkout holds 127.0.0.1:$RABBITMQ_PORT; stopping it"
    pkill -f -- "beam.smp.*-epmd_port $RABBITMQ_EPMD_PORT" || true
    local tries=0
    while rabbitmq_listening; do
      tries=$((tries + 1)); [ "$tries" -lt 150 ] || die "rabbitmq: the stale node on $RABBITMQ_PORT does not stop"
      sleep 0.2
    done
  fi
  mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  printf '[].\n' >"$RMQ_DIR/enabled_plugins"
  cat >"$RMQ_DIR/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$RABBITMQ_PORT
default_user = $SVC_USER
default_pass = $SVC_PASS
loopback_users = none
CONF
  if [ ! -f "$RMQ_DIR/.erlang.cookie" ]; then
    head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$RMQ_DIR/.erlang.cookie"
    chmod 400 "$RMQ_DIR/.erlang.cookie"
  fi
  log "rabbitmq: starting on 127.0.0.1:$RABBITMQ_PORT"
  rmq_env setsid /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >"$RMQ_DIR/server.out" 2>&1 &
  # The broker takes a while to boot on a small machine.
  local i
  for ((i = 0; i < 600; i++)); do
    if rabbitmq_up >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  tail -20 "$RMQ_DIR/server.out" >&2
  die "rabbitmq did not start; see $RMQ_DIR/log"
}

rabbitmq_stop() {
  [ -f "$RMQ_DIR/rabbitmq.pid" ] || return 0
  log "rabbitmq: stopping"
  rmq_env /usr/lib/rabbitmq/bin/rabbitmqctl -q stop >/dev/null 2>&1 || true
  stop_pidfile rabbitmq "$RMQ_DIR/rabbitmq.pid"
}

# ---------------------------------------------------------------- Mosquitto (MQTT)
MQ_DIR=$BASE/mosquitto
mosquitto_up() { mosquitto_pub -h 127.0.0.1 -p "$MOSQUITTO_PORT" -u "$SVC_USER" -P "$SVC_PASS" -t sluice/ping -m ping -q 1; }

mosquitto_start() {
  ensure_packages mosquitto mosquitto-clients
  if mosquitto_up >/dev/null 2>&1; then return 0; fi
  mkdir -p "$MQ_DIR/data"
  : >"$MQ_DIR/passwd"
  mosquitto_passwd -b "$MQ_DIR/passwd" "$SVC_USER" "$SVC_PASS"
  cat >"$MQ_DIR/mosquitto.conf" <<CONF
listener $MOSQUITTO_PORT 127.0.0.1
# Stay the user that started it: the data dir is in this checkout.
user root
allow_anonymous false
password_file $MQ_DIR/passwd
persistence true
persistence_location $MQ_DIR/data/
pid_file $MQ_DIR/mosquitto.pid
log_dest file $MQ_DIR/mosquitto.log
max_queued_messages 100000
CONF
  log "mosquitto: starting on 127.0.0.1:$MOSQUITTO_PORT"
  setsid mosquitto -c "$MQ_DIR/mosquitto.conf" </dev/null >/dev/null 2>&1 &
  wait_for mosquitto mosquitto_up || { tail -20 "$MQ_DIR/mosquitto.log" >&2; die "mosquitto did not start"; }
}

mosquitto_stop() { stop_pidfile mosquitto "$MQ_DIR/mosquitto.pid"; }

# ---------------------------------------------------------------- the drop user (FTP and SFTP)
# A system user whose home is the folder third parties fetch files from; FTP logs in with its password,
# SFTP with a key made here.
drop_user() {
  if ! id "$DROP_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$DROP_USER"
  fi
  echo "$DROP_USER:$SVC_PASS" | chpasswd
  local home
  home=$(getent passwd "$DROP_USER" | cut -d: -f6)
  mkdir -p "$home/drop"
  chown "$DROP_USER:$DROP_USER" "$home/drop"
}

# ---------------------------------------------------------------- vsftpd (FTP)
FTP_DIR=$BASE/vsftpd
vsftpd_up() { curl -fsS --max-time 5 "ftp://$DROP_USER:$SVC_PASS@127.0.0.1:$FTP_PORT/"; }

vsftpd_start() {
  ensure_packages vsftpd curl
  drop_user
  if vsftpd_up >/dev/null 2>&1; then return 0; fi
  mkdir -p "$FTP_DIR/empty"
  cat >"$FTP_DIR/vsftpd.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=$FTP_PORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$FTP_PASV_MIN
pasv_max_port=$FTP_PASV_MAX
secure_chroot_dir=$FTP_DIR/empty
pam_service_name=vsftpd
userlist_enable=NO
seccomp_sandbox=NO
xferlog_enable=YES
# 40 MB/s: uploads take long enough for the tests to cut a connection in the middle of a file.
local_max_rate=40000000
xferlog_file=$FTP_DIR/xfer.log
vsftpd_log_file=$FTP_DIR/vsftpd.log
CONF
  log "vsftpd: starting on 127.0.0.1:$FTP_PORT"
  setsid /usr/sbin/vsftpd "$FTP_DIR/vsftpd.conf" </dev/null >"$FTP_DIR/server.out" 2>&1 &
  echo $! >"$FTP_DIR/vsftpd.pid"
  wait_for vsftpd vsftpd_up || { tail -20 "$FTP_DIR/server.out" >&2; die "vsftpd did not start"; }
}

vsftpd_stop() { stop_pidfile vsftpd "$FTP_DIR/vsftpd.pid"; }

# ---------------------------------------------------------------- OpenSSH (SFTP, key authentication)
SSHD_DIR=$BASE/sshd
sshd_up() {
  sftp -q -b - -i "$SSHD_DIR/client_key" -P "$SSHD_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o BatchMode=yes "$DROP_USER@127.0.0.1" <<<"ls drop"
}

sshd_start() {
  ensure_packages openssh-server openssh-sftp-server openssh-client
  drop_user
  mkdir -p "$SSHD_DIR"
  [ -f "$SSHD_DIR/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_key"
  [ -f "$SSHD_DIR/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/client_key" -C sluice-test
  local home
  home=$(getent passwd "$DROP_USER" | cut -d: -f6)
  mkdir -p "$home/.ssh"
  cp "$SSHD_DIR/client_key.pub" "$home/.ssh/authorized_keys"
  chown -R "$DROP_USER:$DROP_USER" "$home/.ssh"
  chmod 700 "$home/.ssh"
  chmod 600 "$home/.ssh/authorized_keys"
  if sshd_up >/dev/null 2>&1; then return 0; fi
  mkdir -p /run/sshd
  cat >"$SSHD_DIR/sshd_config" <<CONF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $SSHD_DIR/host_key
PidFile $SSHD_DIR/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers $DROP_USER
UsePAM no
Subsystem sftp internal-sftp
CONF
  log "sshd: starting on 127.0.0.1:$SSHD_PORT (SFTP, key authentication)"
  /usr/sbin/sshd -f "$SSHD_DIR/sshd_config" -E "$SSHD_DIR/sshd.log"
  wait_for sshd sshd_up || { tail -20 "$SSHD_DIR/sshd.log" >&2; die "sshd did not start"; }
}

sshd_stop() { stop_pidfile sshd "$SSHD_DIR/sshd.pid"; }

# ---------------------------------------------------------------- Garage (S3), built from crates.io
# No registry here packages an S3 server; Garage is published on crates.io, so it is built once (release,
# SQLite metadata, about 10 minutes on 2 cores) into target/services/garage/bin and reused while that exists.
GARAGE_DIR=$BASE/garage
GARAGE_BIN=$GARAGE_DIR/bin/garage
garage_cli() { "$GARAGE_BIN" -c "$GARAGE_DIR/garage.toml" "$@"; }
garage_up() { garage_cli bucket info "$GARAGE_BUCKET" >/dev/null 2>&1 && curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$GARAGE_S3_PORT/"; }

garage_start() {
  mkdir -p "$GARAGE_DIR"
  if [ ! -x "$GARAGE_BIN" ]; then
    ensure_packages curl
    log "garage: building $GARAGE_VERSION from crates.io (cargo install; once per machine)"
    CARGO_TARGET_DIR="$GARAGE_DIR/build" cargo install garage --version "$GARAGE_VERSION" --locked --quiet \
      --no-default-features --features bundled-libs,sqlite --root "$GARAGE_DIR" \
      || die "garage: cargo install failed"
    rm -rf "$GARAGE_DIR/build"
  fi
  if garage_up; then return 0; fi
  cat >"$GARAGE_DIR/garage.toml" <<CONF
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$GARAGE_RPC_PORT"
rpc_public_addr = "127.0.0.1:$GARAGE_RPC_PORT"
rpc_secret = "$(printf '%s' "$GARAGE_SECRET")"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$GARAGE_S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$GARAGE_ADMIN_PORT"
CONF
  chmod 600 "$GARAGE_DIR/garage.toml"
  log "garage: starting on 127.0.0.1:$GARAGE_S3_PORT"
  setsid "$GARAGE_BIN" -c "$GARAGE_DIR/garage.toml" server </dev/null >"$GARAGE_DIR/server.out" 2>&1 &
  echo $! >"$GARAGE_DIR/garage.pid"
  wait_for garage garage_cli status || { tail -20 "$GARAGE_DIR/server.out" >&2; die "garage did not start"; }
  # A one-node layout (idempotent: only when the node has no role yet), the bucket and the key.
  if ! garage_cli layout show 2>/dev/null | grep -q 'dc1'; then
    local node
    node=$(garage_cli node id -q | cut -d@ -f1)
    garage_cli layout assign -z dc1 -c 1G "$node" >/dev/null
    garage_cli layout apply --version 1 >/dev/null
  fi
  garage_cli key info "$GARAGE_KEY_ID" >/dev/null 2>&1 || garage_cli key import --yes -n sluice-test "$GARAGE_KEY_ID" "$GARAGE_SECRET" >/dev/null
  garage_cli bucket info "$GARAGE_BUCKET" >/dev/null 2>&1 || garage_cli bucket create "$GARAGE_BUCKET" >/dev/null
  garage_cli bucket allow --read --write --owner "$GARAGE_BUCKET" --key "$GARAGE_KEY_ID" >/dev/null
  wait_for garage garage_up || { tail -20 "$GARAGE_DIR/server.out" >&2; die "garage did not serve S3"; }
}

garage_stop() { stop_pidfile garage "$GARAGE_DIR/garage.pid"; }

# ---------------------------------------------------------------- env file
write_env() {
  mkdir -p "$BASE"
  cat >"$BASE/env.tmp" <<ENV
# Written by scripts/services.sh; source it to reach the test services.
export SLUICE_TEST_MARIADB_URL=mysql://$SVC_USER:$SVC_PASS@127.0.0.1:$MARIADB_PORT/
export SLUICE_TEST_MARIADB_REPLICA_URL=mysql://$SVC_USER:$SVC_PASS@127.0.0.1:$MARIADB_REPLICA_PORT/
export SLUICE_TEST_POSTGRES_URL=postgres://$SVC_USER:$SVC_PASS@127.0.0.1:$POSTGRES_PORT/$SVC_USER
export SLUICE_TEST_REDIS_URL=redis://:$SVC_PASS@127.0.0.1:$REDIS_PORT/
export SLUICE_TEST_PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT
export SLUICE_TEST_SMTP_URL=smtp://127.0.0.1:$SMTP_PORT
export SLUICE_TEST_SMTP_MAILDIR=$SMTP_DIR/Maildir
export SLUICE_TEST_ALERTMANAGER_TOKEN_FILE=$AM_DIR/sluice_token
export SLUICE_TEST_ALERTMANAGER_WEBHOOK_PORT=$ALERTMANAGER_WEBHOOK_PORT
export SLUICE_TEST_NATS_URL=nats://$SVC_USER:$SVC_PASS@127.0.0.1:$NATS_PORT
export SLUICE_TEST_AMQP_URL=amqp://$SVC_USER:$SVC_PASS@127.0.0.1:$RABBITMQ_PORT/%2f
export SLUICE_TEST_MQTT_URL=mqtt://$SVC_USER:$SVC_PASS@127.0.0.1:$MOSQUITTO_PORT
export SLUICE_TEST_FTP_URL=ftp://$DROP_USER:$SVC_PASS@127.0.0.1:$FTP_PORT/drop
export SLUICE_TEST_SFTP_URL=sftp://$DROP_USER@127.0.0.1:$SSHD_PORT/drop
export SLUICE_TEST_SFTP_KEY=$SSHD_DIR/client_key
export SLUICE_TEST_SFTP_HOST_KEY=$(ssh-keygen -lf "$SSHD_DIR/host_key.pub" 2>/dev/null | awk '{print $2}')
export SLUICE_TEST_DROP_DIR=$(getent passwd "$DROP_USER" | cut -d: -f6)/drop
export SLUICE_TEST_DROP_USER=$DROP_USER
export SLUICE_TEST_S3_URL=http://$GARAGE_KEY_ID:$GARAGE_SECRET@127.0.0.1:$GARAGE_S3_PORT/$GARAGE_BUCKET
ENV
  mv "$BASE/env.tmp" "$BASE/env"
}

status_of() {
  case $1 in
    mariadb) mariadb_up ;;
    mariadb-replica) mariadb_replica_up ;;
    postgres) postgres_up ;;
    redis) redis_up ;;
    prometheus) prometheus_up ;;
    alertmanager) alertmanager_up ;;
    smtp) smtp_up ;;
    nats) nats_up ;;
    rabbitmq) rabbitmq_up ;;
    mosquitto) mosquitto_up ;;
    vsftpd) vsftpd_up ;;
    sshd) sshd_up ;;
    garage) garage_up ;;
  esac
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  local names=("$@")
  ((${#names[@]})) || names=("${ALL[@]}")
  local n
  for n in "${names[@]}"; do
    case " ${ALL[*]} " in *" $n "*) ;; *) die "unknown service '$n' (known: ${ALL[*]})" ;; esac
  done
  case $cmd in
    start)
      [ "$(id -u)" = 0 ] || die "run as root: it installs Debian packages and starts PostgreSQL as the postgres user"
      mkdir -p "$BASE"
      for n in "${names[@]}"; do "${n}_start"; done
      write_env
      log "up: ${names[*]} (env: $BASE/env)"
      ;;
    stop)
      for n in "${names[@]}"; do "${n}_stop"; done
      ;;
    status)
      local down=0
      for n in "${names[@]}"; do
        if status_of "$n" >/dev/null 2>&1; then echo "$n: up"; else echo "$n: down"; down=1; fi
      done
      return $down
      ;;
    *) echo "usage: $0 start|stop|status [${ALL[*]}]" >&2; exit 3 ;;
  esac
}

main "$@"
