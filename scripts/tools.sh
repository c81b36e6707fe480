#!/usr/bin/env bash
# Tools the tests use that are not services: installed into target/tools when missing.
#   - Microsoft's SARIF validator (npm @microsoft/sarif-multitool), which checks `sluice review --format sarif`
#     against the SARIF 2.1.0 schema and the rules GitHub code scanning applies.
#   - Debian's python3 (/usr/bin) with cryptography and zstandard, which runs docs/backup.md's recipe for
#     restoring a sealed backup file without Sluice against files Sluice sealed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR=$ROOT/target/tools
if ! /usr/bin/python3 -c 'import cryptography, zstandard' 2>/dev/null; then
  echo "[tools] apt-get install python3-cryptography python3-zstandard" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-cryptography python3-zstandard >/dev/null
fi
if [ -x "$DIR/node_modules/.bin/sarif-multitool" ]; then exit 0; fi
command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
mkdir -p "$DIR"
echo "[tools] npm install @microsoft/sarif-multitool" >&2
(cd "$DIR" && npm install --no-audit --no-fund --silent @microsoft/sarif-multitool@5 >/dev/null)
