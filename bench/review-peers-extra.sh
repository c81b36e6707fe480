#!/usr/bin/env bash
# The review-peers cases whose peer rule had no Sluice counterpart when the corpus was mapped (its cases.tsv
# leaves `sluice_rules` empty, so its run.sh cannot count them): runs each with the rule Sluice now has for it
# (bench/review-peer-map.txt) under the default policy, and with that rule turned on (for opt-in rules).
#   bench/review-peers-extra.sh [path/to/sluice]      (corpus: ../shared/corpora/review-peers)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-$ROOT/target/release/sluice}"
CORPUS="${REVIEW_PEERS:-$ROOT/../shared/corpora/review-peers}"
[ -x "$BIN" ] || { echo "review-peers-extra: no sluice binary at $BIN (cargo build --release -p sluice)" >&2; exit 2; }
[ -f "$CORPUS/cases.tsv" ] || { echo "review-peers-extra: corpus missing: $CORPUS/cases.tsv" >&2; exit 2; }
python3 - "$BIN" "$CORPUS" "$ROOT/bench/review-peer-map.txt" <<'PY'
import csv, json, os, subprocess, sys, tempfile
bin_, corpus, mapping = sys.argv[1:4]
m = dict(l.split() for l in open(mapping) if l.strip() and not l.startswith('#'))
rows = list(csv.DictReader(open(os.path.join(corpus, 'cases.tsv')), delimiter='\t', quoting=csv.QUOTE_NONE))
tot = {}
for r in rows:
    if r['expectation'] != 'fires' or r['sluice_rules'] or r['peer_rule'] not in m:
        continue
    rule = m[r['peer_rule']]
    res = []
    for policy in ('', f'[levels]\n{rule} = "warning"\n'):
        cmd = [bin_, 'review', os.path.join(corpus, r['file']), '--engine', r['engine'], '--format', 'json']
        with tempfile.NamedTemporaryFile('w', suffix='.toml', delete=False) as f:
            f.write(policy)
        if policy:
            cmd += ['--policy', f.name]
        out = subprocess.run(cmd, capture_output=True, text=True)
        os.unlink(f.name)
        if out.returncode not in (0, 1, 2):
            sys.exit(f'review-peers-extra: {r["file"]}: exit {out.returncode}: {out.stderr.strip()[:200]}')
        found = [x for doc in json.loads(out.stdout) for x in doc['findings'] if x['rule'] == rule and x['level'] in ('warning', 'error')]
        res.append(bool(found))
    t = tot.setdefault(r['engine'], [0, 0, 0])
    t[0] += 1; t[1] += res[0]; t[2] += res[1]
    print(f"{'DETECTED' if res[0] else ('on-only ' if res[1] else 'missed  ')} {r['file']}  [{r['peer_rule']} -> {rule}]")
for e, (n, d, on) in tot.items():
    print(f'review-peers-extra: {e} {d}/{n} detected with the default policy, {on}/{n} with the rule on')
PY
