#!/usr/bin/env bash
# The whole test suite: start the real services the tests use, then run every test of the workspace.
# Extra arguments go to `cargo nextest run` (e.g. `./scripts/test.sh -p sluice-store`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# CI runs once on a clean clone: incremental-compilation caches would only take disk (a CI machine once ran out
# of it while linking the test binaries), so they are off there. The free space is printed for the same reason.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
df -h . >&2 || true

./scripts/services.sh start
./scripts/tools.sh
# shellcheck disable=SC1091
. target/services/env

# The clean-code gate: formatting and lints fail the run before any test does.
echo "[test] cargo fmt --check" >&2
cargo fmt --all --check
echo "[test] cargo clippy --workspace --all-targets -- -D warnings" >&2
cargo clippy --workspace --all-targets -- -D warnings

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "[test] installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

exec cargo nextest run --workspace "$@"
