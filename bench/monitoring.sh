#!/usr/bin/env bash
# Monitoring benchmark (issue 13), three parts in one run:
# 1. Anomaly detection on NAB (../shared/datasets/nab), scored by its own scorer (score.py: NAB's rules,
#    standard profile, no threshold search). `sluice detect` runs online over each of the 35 series with its
#    default parameters (the same for every series, as live alerts use). The 23 held-out series
#    (../shared/datasets/nab-heldout) are scored only with --heldout: a final figure, never a tuning target.
# 2. Storage: the same samples (1,000 series, one day at 15 s: counters, gauges, near-constant values) in
#    Sluice's store and in Prometheus's TSDB (`promtool tsdb create-blocks-from openmetrics`, then compacted
#    by a Prometheus started on them); bytes per sample of each.
# 3. Query: a 7-day range at a 1-minute step over 1,000 series (7 days at 60 s), the same PromQL over HTTP to
#    `sluice serve` and to that Prometheus, median of 5 runs each; both answers are checked.
# Usage: bench/monitoring.sh [--heldout] [--skip-nab]   (env NAB_ONLY=1: NAB alone; SKIP_STORAGE=1: no storage part)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATASETS=${SLUICE_DATASETS:-$ROOT/../shared/datasets}
PEERS=${SLUICE_PEERS:-$ROOT/../shared/peers}
[ -f "$DATASETS/nab/score.py" ] || { echo "NAB not found at $DATASETS/nab (set SLUICE_DATASETS)" >&2; exit 1; }
# shellcheck disable=SC1091
source "$PEERS/lib.sh"
# shellcheck disable=SC1091
source "$ROOT/bench/lib.sh"
(cd "$ROOT" && cargo build --release -p sluice >&2)
SLUICE=$ROOT/target/release/sluice
WORK=$(mktemp -d)

# nab CORPUS: runs the detector over every series of CORPUS and prints the scorer's last line.
nab() {
  local corpus=$1 out=$WORK/$(basename "$1") f rel
  while IFS= read -r f; do
    rel=${f#"$corpus/data/"}
    mkdir -p "$out/$(dirname "$rel")"
    "$SLUICE" detect "$f" >"$out/$rel"
    [ -s "$out/$rel" ] || { echo "sluice detect wrote nothing for $f" >&2; exit 1; }
  done < <(find "$corpus/data" -name '*.csv' | sort)
  python3 "$DATASETS/nab/score.py" "$corpus" "$out" | tail -1
}

BENCH=$ROOT/target/release/sluice-bench
(cd "$ROOT" && cargo build --release -p sluice-bench >&2)
PROM_PORT=9097
SLUICE_PORT=7797
TOKEN=slc_bench_monitoring_token_0123456789abcdef
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

field() { tr ' ' '\n' <<<"$1" | awk -v k="$2" 'prev == k {print; exit} {prev = $0}'; }

# prometheus_on DIR : a Prometheus on DIR's blocks (no scrapes), waiting until its compaction has settled.
prometheus_on() {
  printf 'global:\n  scrape_interval: 1h\n' >"$WORK/prom.yml"
  prometheus --config.file="$WORK/prom.yml" --storage.tsdb.path="$1" --web.listen-address="127.0.0.1:$PROM_PORT" \
    --storage.tsdb.retention.time=60d >"$WORK/prom.log" 2>&1 &
  PIDS+=($!)
  local i last=-1 same=0 n
  for i in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1 && break
    sleep 1
  done
  # Compaction runs in the background: measure only once the block count has been stable for 60 s.
  for i in $(seq 1 600); do
    n=$(find "$1" -maxdepth 2 -name meta.json | wc -l)
    if [ "$n" = "$last" ]; then same=$((same + 1)); else same=0; last=$n; fi
    [ "$same" -ge 60 ] && break
    sleep 1
  done
}

stop_prometheus() {
  kill "${PIDS[-1]}" 2>/dev/null || true
  wait "${PIDS[-1]}" 2>/dev/null || true
  unset 'PIDS[-1]'
}

storage() {
  log "storage: loading 1,000 series x 1 day at 15 s into Sluice and writing the OpenMetrics file"
  local out
  out=$("$BENCH" tsdb-load --dir "$WORK/s1" --openmetrics "$WORK/s1.om" --series 1000 --days 1 --interval 15)
  local samples sluice_bytes live_bytes raw_bytes
  samples=$(field "$out" samples)
  # The whole file, after the loader gave free pages back (live_bytes: the pages in use, for comparison).
  sluice_bytes=$(field "$out" file_bytes)
  live_bytes=$(field "$out" live_bytes)
  raw_bytes=$(field "$out" raw_chunk_bytes)
  [ "${samples:-0}" -gt 0 ] || { echo "the loader wrote no samples" >&2; exit 1; }
  log "storage: promtool create-blocks-from openmetrics"
  promtool tsdb create-blocks-from openmetrics -q "$WORK/s1.om" "$WORK/p1" >&2
  local blocks_bytes
  blocks_bytes=$(du -sb "$WORK/p1" | cut -f1)
  prometheus_on "$WORK/p1"
  stop_prometheus
  local compacted
  compacted=$(find "$WORK/p1" -mindepth 1 -maxdepth 1 -type d -name '01*' -exec du -sb {} + | awk '{s += $1} END {print s}')
  [ "${compacted:-0}" -gt 0 ] || { echo "Prometheus left no blocks" >&2; exit 1; }
  STORAGE="  storage, $samples samples (1,000 series, 1 day at 15 s):
    Sluice store (whole file):   $(awk -v b="$sluice_bytes" -v n="$samples" 'BEGIN{printf "%.2f", b/n}') bytes/sample ($sluice_bytes bytes; live pages $live_bytes; chunk data $(awk -v b="$raw_bytes" -v n="$samples" 'BEGIN{printf "%.2f", b/n}'))
    Prometheus TSDB, compacted:  $(awk -v b="$compacted" -v n="$samples" 'BEGIN{printf "%.2f", b/n}') bytes/sample ($compacted bytes; as promtool wrote it, 2 h blocks: $(awk -v b="$blocks_bytes" -v n="$samples" 'BEGIN{printf "%.2f", b/n}'))
    ratio Sluice / Prometheus:   $(awk -v a="$sluice_bytes" -v b="$compacted" 'BEGIN{printf "%.2f", a/b}')x (target <= 1x)"
}

query() {
  log "query: loading 1,000 series x 7 days at 60 s into both"
  local out start end
  out=$("$BENCH" tsdb-load --dir "$WORK/s7" --openmetrics "$WORK/s7.om" --series 1000 --days 7 --interval 60)
  start=$(field "$out" start)
  end=$(field "$out" end)
  promtool tsdb create-blocks-from openmetrics -q "$WORK/s7.om" "$WORK/p7" >&2
  rm -f "$WORK/s7.om"
  prometheus_on "$WORK/p7"
  printf '[monitor]\ncollect = false\n' >"$WORK/sluice.toml"
  SLUICE_ADMIN_TOKEN=$TOKEN "$SLUICE" serve --config "$WORK/sluice.toml" --data-dir "$WORK/s7" --listen "127.0.0.1:$SLUICE_PORT" >"$WORK/sluice.out" 2>"$WORK/sluice.log" &
  PIDS+=($!)
  local i
  for i in $(seq 1 60); do curl -fsS "http://127.0.0.1:$SLUICE_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
  local q='sum by (kind) (avg_over_time(bench_metric[5m]))'
  # Steps fall between samples (on the half minute): Prometheus 2 (Debian's) counts a sample on a window's
  # left edge, Prometheus 3 and Sluice do not; off the edges the answers must be identical.
  local args=(--data-urlencode "query=$q" --data-urlencode "start=$((start + 30))" --data-urlencode "end=$end" --data-urlencode "step=60")
  local ts tp
  ts=$(timed_median "$WORK/q_sluice.json" 0 5 curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$SLUICE_PORT/api/v1/query_range" "${args[@]}")
  tp=$(timed_median "$WORK/q_prom.json" 0 5 curl -fsS "http://127.0.0.1:$PROM_PORT/api/v1/query_range" "${args[@]}")
  # Both answered the same: three series, 10,080 points each, and the same first values.
  local check
  check=$(/usr/bin/python3 - "$WORK/q_sluice.json" "$WORK/q_prom.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
def norm(d):
    return {json.dumps(r["metric"], sort_keys=True): [(p[0], float(p[1])) for p in r["values"]] for r in d["data"]["result"]}
x, y = norm(a), norm(b)
assert a["status"] == b["status"] == "success", "a query failed"
assert set(x) == set(y) and len(x) == 3, f"series differ: {list(x)} vs {list(y)}"
pts = sum(len(v) for v in x.values())
for k in x:
    assert len(x[k]) == len(y[k]), f"{k}: {len(x[k])} vs {len(y[k])} points"
    for (t1, v1), (t2, v2) in zip(x[k], y[k]):
        assert abs(t1 - t2) < 1e-6 and abs(v1 - v2) <= 1e-9 * max(1, abs(v1), abs(v2)), f"{k} at {t1}: {v1} vs {v2}"
print(f"{len(x)} series, {pts} points, identical")
PY
)
  QUERY="  query, 7-day range at a 1-minute step over 1,000 series ($q; $check):
    Sluice:      $ts s (median of 5)
    Prometheus:  $tp s (median of 5)
    ratio:       $(awk -v a="$ts" -v b="$tp" 'BEGIN{printf "%.2f", a/b}')x (target <= 1x)"
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'
  stop_prometheus
}

result="== Monitoring benchmark"
if [ "${1:-}" != "--skip-nab" ] && [ "${2:-}" != "--skip-nab" ]; then
  t0=$(now)
  dev=$(nab "$DATASETS/nab")
  secs=$(elapsed "$t0")
  result="$result
  anomaly detection on NAB (standard profile; target >= 60; naive rolling z-score 32.5 here)
    the 35 series:       $dev   ($secs s for all, online)"
  if [ "${1:-}" = "--heldout" ]; then
    held=$(nab "$DATASETS/nab-heldout")
    result="$result
    the 23 held out:     $held   (naive rolling z-score 44.3)"
  fi
fi
STORAGE=""
QUERY=""
# SKIP_STORAGE=1: only the query part (a re-measure after a query change); NAB_ONLY=1: the detector alone.
if [ -z "${NAB_ONLY:-}" ]; then
  [ -n "${SKIP_STORAGE:-}" ] || storage
  query
fi
result="$result${STORAGE:+
$STORAGE}${QUERY:+
$QUERY}"
printf '\n%s\n' "$result"
record_results "bench/monitoring.sh" "$result"
