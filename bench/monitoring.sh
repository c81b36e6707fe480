#!/usr/bin/env bash
# Monitoring benchmark (issue 13). So far: anomaly detection on NAB (../shared/datasets/nab), scored by its
# own scorer (score.py: NAB's rules, standard profile, no threshold search). `sluice detect` runs online
# over each of the 35 series with its default parameters (the same for every series, as live alerts use).
# The 23 held-out series (../shared/datasets/nab-heldout) are scored only with --heldout: a final figure,
# never a tuning target.
# Usage: bench/monitoring.sh [--heldout]
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
trap 'rm -rf "$WORK"' EXIT

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

t0=$(now)
dev=$(nab "$DATASETS/nab")
secs=$(elapsed "$t0")
result="== Monitoring benchmark: anomaly detection on NAB (standard profile; target >= 60; naive rolling z-score 32.5 here)
  the 35 series:       $dev   ($secs s for all, online)"
if [ "${1:-}" = "--heldout" ]; then
  held=$(nab "$DATASETS/nab-heldout")
  result="$result
  the 23 held out:     $held   (naive rolling z-score 44.3)"
fi
printf '\n%s\n' "$result"
record_results "bench/monitoring.sh" "$result"
