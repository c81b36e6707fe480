# Shared by the bench/*.sh scripts (after ../shared/peers/lib.sh, which gives now, elapsed, median, div, log).
# Every timed run must succeed and produce output; figures are appended to bench/RESULTS.md.

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A failure inside $(…) must stop the benchmark too, not only the subshell.
shopt -s inherit_errexit

# timed OUT ALLOWED_CODES CMD… : runs CMD with stdout to OUT and prints its wall time in seconds. Stops the
# benchmark when CMD exits with a code not in ALLOWED_CODES (comma-separated; a linter that found problems
# exits 1 by design) or wrote nothing.
timed() {
  local out=$1 allowed=$2 t0 rc
  shift 2
  t0=$(now)
  set +e
  "$@" >"$out" 2>"$out.err"
  rc=$?
  set -e
  local secs
  secs=$(elapsed "$t0")
  if [[ ",$allowed," != *",$rc,"* ]]; then
    echo "benchmark run failed (exit $rc, expected one of $allowed): $*" >&2
    tail -5 "$out.err" >&2
    exit 1
  fi
  if [ ! -s "$out" ]; then
    echo "benchmark run produced no output: $*" >&2
    exit 1
  fi
  printf '%s\n' "$secs"
}

# timed_median OUT ALLOWED RUNS CMD… : median wall time of RUNS checked runs.
timed_median() {
  local out=$1 allowed=$2 runs=$3 r
  shift 3
  local -a T=()
  local one
  for ((r = 1; r <= runs; r++)); do
    one=$(timed "$out" "$allowed" "$@") || exit 1
    T+=("$one")
  done
  median "${T[@]}"
}

# record_results TITLE TEXT : appends a dated section (commit, machine) to bench/RESULTS.md.
record_results() {
  local title=$1 text=$2 commit dirty
  commit=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$BENCH_ROOT" status --porcelain 2>/dev/null | grep -q . && echo " (uncommitted changes)" || true)
  {
    printf '\n## %s — %s, commit %s%s\n\n' "$title" "$(date -u +%Y-%m-%dT%H:%MZ)" "$commit" "$dirty"
    printf 'Machine: %s cores, %s, %s\n\n```\n%s\n```\n' "$(nproc)" "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)" \
      "$(. /etc/os-release && echo "$PRETTY_NAME")" "$text"
  } >>"$BENCH_ROOT/bench/RESULTS.md"
  log "figures appended to bench/RESULTS.md"
}
