#!/usr/bin/env bash
# Forecast benchmark (issue 13): the error of the disk-full forecast on held-out data of generated growth
# series (noise, a daily swing, growth on weekdays only), four weeks of history, 30 held-out days. Sluice's
# forecast (what `forecast` alert rules evaluate) beside a least-squares line as Prometheus's
# `predict_linear` draws it over 6 hours and over 7 days, on the same series in the same run.
# Usage: bench/forecast.sh [SERIES]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS=${SLUICE_PEERS:-$ROOT/../shared/peers}
# shellcheck disable=SC1091
source "$PEERS/lib.sh"
# shellcheck disable=SC1091
source "$ROOT/bench/lib.sh"
(cd "$ROOT" && cargo build --release -p sluice-bench >&2)
out=$("$ROOT/target/release/sluice-bench" forecast --series "${1:-200}")
grep -q '^sluice' <<<"$out" || { echo "the forecast benchmark printed no figure" >&2; exit 1; }
result="== Forecast: time until a limit is reached, on held-out data
$out"
printf '\n%s\n' "$result"
record_results "bench/forecast.sh" "$result"
