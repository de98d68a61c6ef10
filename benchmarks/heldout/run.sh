#!/usr/bin/env bash
# Run the held-out programs against a fresh collector and print each run's rank-1 issue and its warnings.
#   bash benchmarks/heldout/run.sh        (from the repository root, after ./scripts/test has made .venv)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/.venv/bin"
WORK="$(mktemp -d)"
"$BIN/atlas-collector" --listen 127.0.0.1:0 --db "sqlite:///$WORK/store.db" > "$WORK/collector.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "^listening on" "$WORK/collector.log" && break; sleep 0.2; done
export ATLAS_ADDR="$(grep -m1 '^listening on' "$WORK/collector.log" | awk '{print $NF}')" ATLAS_HOME="$WORK/home"
cd "$(dirname "$0")"
for f in b*.py h*.py; do
  [ "$f" = hcommon.py ] && continue
  name="${f%.py}"
  "$BIN/python" "$f" > "$WORK/$name.log" 2>&1 || echo "$name exited $?"
  "$BIN/atlas" --collector "$ATLAS_ADDR" issues "$name" --json | "$BIN/python" -c "
import json, sys
d = json.load(sys.stdin)
top = (d[0]['check'] + ' (' + d[0]['severity'] + (', cleared' if not d[0]['active'] else '') + ')') if d else '-'
warn = [i['check'] + ('' if i['active'] else ' (cleared)') for i in d if i['severity'] != 'info']
print(f'$name: rank 1 {top}; warning or above: {\", \".join(warn) or \"none\"}')"
done
