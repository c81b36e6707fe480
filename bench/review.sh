#!/usr/bin/env bash
# SQL review benchmark (issue: SQL review). One run, the same generated files (../shared/peers):
#   - 10,000-statement PostgreSQL migration: sluice review (json, text) vs squawk (--reporter json, text)
#   - 10,000-statement MySQL file: sluice review vs sqlfluff on a 1,000-statement slice
#   - a 2 MB file of 10,000 INSERTs, and memory on a 20 MB file
# Usage: bench/review.sh [RUNS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS=${SLUICE_PEERS:-$ROOT/../shared/peers}
RUNS=${1:-3}
cd "$PEERS"
# shellcheck disable=SC1091
source ./lib.sh
# shellcheck disable=SC1091
source "$ROOT/bench/lib.sh"
ensure_apt time
ensure_venv squawk-cli sqlfluff
(cd "$ROOT" && cargo build --release -p sluice >&2)
S=$ROOT/target/release/sluice
W=$ROOT/target/bench/review
rm -rf "$W"; mkdir -p "$W"
python3 ./tools/gen_migration.py postgres 10000 >"$W/pg.sql"
python3 ./tools/gen_migration.py mysql 10000 >"$W/my.sql"
head -n 1000 "$W/my.sql" >"$W/my1000.sql"
printf '[sqlfluff]\ndialect = mysql\nlarge_file_skip_byte_limit = 0\n' >"$W/.sqlfluff"
python3 - "$W" <<'PY'
import sys, random
w = sys.argv[1]
r = random.Random(7)
rows = lambda n: ",".join("(%d,'user-%06d','%s',%d.%02d,NOW())" % (i, i, "x" * r.randint(90, 150), r.randint(1, 999), r.randint(0, 99)) for i in range(n))
with open(w + "/inserts.sql", "w") as f:
    for i in range(10000):
        f.write("INSERT INTO events (id, name, payload, amount, created_at) VALUES %s;\n" % rows(1))
with open(w + "/big.sql", "w") as f:
    while f.tell() < 20_000_000:
        f.write("INSERT INTO events (id, name, payload, amount, created_at) VALUES %s;\n" % rows(5))
PY

# Exit codes that mean "ran and reported": sluice review 0/1/2 (clean, warnings, errors), squawk 0/1,
# sqlfluff 0/1; anything else (3: usage or I/O error, a crash) stops the benchmark.
O=$W/out
sj=$(timed_median "$O.sj" 0,1,2 "$RUNS" "$S" review "$W/pg.sql" --engine postgres --format json)
grep -q '"findings"' "$O.sj" || { echo "sluice review json: no findings document" >&2; exit 1; }
st=$(timed_median "$O.st" 0,1,2 "$RUNS" "$S" review "$W/pg.sql" --engine postgres)
qj=$(timed_median "$O.qj" 0,1 "$RUNS" "$VENV/bin/squawk" --reporter json "$W/pg.sql")
qt=$(timed "$O.qt" 0,1 "$VENV/bin/squawk" "$W/pg.sql")
sm=$(timed_median "$O.sm" 0,1,2 "$RUNS" "$S" review "$W/my.sql" --engine mysql --format json)
cd "$W"
ff=$(timed "$O.ff" 0,1 "$VENV/bin/sqlfluff" lint --dialect mysql my1000.sql)
cd - >/dev/null
si=$(timed_median "$O.si" 0,1,2 "$RUNS" "$S" review "$W/inserts.sql" --engine mysql --format json)
/usr/bin/time -f "%e %M" -o "$O.time" "$S" review "$W/big.sql" --engine mysql --format json >"$O.big" || [ $? -le 2 ] || { echo "sluice review of the 20 MB file failed" >&2; exit 1; }
[ -s "$O.big" ] || { echo "sluice review of the 20 MB file wrote nothing" >&2; exit 1; }
big=$(tail -1 "$O.time")
rate() { awk -v n="$1" -v t="$2" 'BEGIN{ if (t == 0) print "inf"; else printf "%.0f", n/t }'; }

result=$(cat <<RESULT
== SQL review benchmark ($(nproc) cores, median of $RUNS)
PostgreSQL 10,000 statements: sluice json ${sj} s ($(rate 10000 "$sj")/s), text ${st} s ($(rate 10000 "$st")/s)
                              squawk json ${qj} s ($(rate 10000 "$qj")/s), text ${qt} s ($(rate 10000 "$qt")/s)
                              sluice json / squawk json = $(div "$(rate 10000 "$sj")" "$(rate 10000 "$qj")")x (target >= 2x); sluice text/json time = $(div "$st" "$sj")x (target <= 2x)
MySQL 10,000 statements:      sluice ${sm} s ($(rate 10000 "$sm")/s); sqlfluff 1,000-statement slice ${ff} s ($(rate 1000 "$ff")/s); ratio $(div "$(rate 10000 "$sm")" "$(rate 1000 "$ff")")x (target >= 100x)
2 MB, 10,000 INSERTs:         $(wc -c <"$W/inserts.sql") bytes in ${si} s (target < 1 s)
20 MB file:                   $(wc -c <"$W/big.sql") bytes: $(awk '{print $1}' <<<"$big") s, max RSS $(awk '{printf "%.0f", $2/1024}' <<<"$big") MiB (target < 100 MiB)
RESULT
)
printf '\n%s\n' "$result"
record_results "bench/review.sh" "$result"
