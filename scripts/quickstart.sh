#!/usr/bin/env bash
# Quickstart: install what is missing, build Sluice, start a demo MariaDB and `sluice serve` on its embedded
# SQLite store, register and check the demo instance, and print the URL and the admin token.
# Running it again reuses what is already up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

QS=$ROOT/target/quickstart
DATA=$QS/data
LISTEN=${SLUICE_LISTEN:-127.0.0.1:7700}
URL=http://$LISTEN
BIN=$ROOT/target/release/sluice

say() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs) and run this again" >&2; exit 1; }
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

say "starting the demo MariaDB (scripts/services.sh)"
./scripts/services.sh start mariadb
# shellcheck disable=SC1091
. target/services/env

say "building sluice (release)"
cargo build --release -p sluice

mkdir -p "$QS"
chmod 700 "$QS"
TOKEN_FILE=$QS/admin-token
if [ ! -s "$TOKEN_FILE" ]; then
  (umask 077; printf 'slc_%s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$TOKEN_FILE")
fi
TOKEN=$(cat "$TOKEN_FILE")

if curl -fsS "$URL/readyz" >/dev/null 2>&1; then
  say "sluice is already running at $URL"
else
  say "starting sluice serve on $LISTEN (data in $DATA, log in $QS/sluice.log)"
  SLUICE_ADMIN_TOKEN=$TOKEN setsid "$BIN" serve --data-dir "$DATA" --listen "$LISTEN" \
    >>"$QS/sluice.out" 2>>"$QS/sluice.log" </dev/null &
  echo $! >"$QS/sluice.pid"
  for _ in $(seq 1 150); do
    curl -fsS "$URL/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "$URL/readyz" >/dev/null || { tail -20 "$QS/sluice.log" >&2; echo "sluice did not become ready" >&2; exit 1; }
fi

export SLUICE_SERVER=$URL SLUICE_TOKEN=$TOKEN
if ! "$BIN" instance show demo-mariadb >/dev/null 2>&1; then
  say "registering the demo MariaDB as instance demo-mariadb"
  DEMO_PASSWORD=sluice "$BIN" instance add demo-mariadb --engine mariadb --host 127.0.0.1 --port 3307 \
    --user sluice --password-env DEMO_PASSWORD --env dev --label demo=true --owner quickstart
fi

say "checking demo-mariadb"
"$BIN" instance check demo-mariadb

cat <<MSG

Sluice is running.
  URL:          $URL
  Admin token:  $TOKEN   (also in $TOKEN_FILE)
  Stop it:      kill \$(cat $QS/sluice.pid)

Try:
  export SLUICE_SERVER=$URL SLUICE_TOKEN=\$(cat $TOKEN_FILE)
  $BIN instance list
  curl -s -H "Authorization: Bearer \$SLUICE_TOKEN" $URL/api/v1/instances
MSG
