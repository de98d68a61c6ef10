#!/usr/bin/env bash
# Round-2 held-out programs against a fresh collector: each run's rank-1 issue and its warnings, plus a JSON dump
# of every run's issues.
#   bash benchmarks/heldout2/run.sh            (from the repository root, after ./scripts/test has made .venv)
#   HELDOUT2_JSON=out.json bash benchmarks/heldout2/run.sh      (where the JSON goes; default: $WORK/issues.json)
#   bash benchmarks/heldout2/run.sh g03 k01    (only these programs)
# Logs (each program's own SYMPTOM lines) stay in $WORK, printed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/.venv/bin"
WORK="$(mktemp -d /tmp/heldout2.XXXXXX)"
JSON="${HELDOUT2_JSON:-$WORK/issues.json}"
case "$JSON" in /*) ;; *) JSON="$PWD/$JSON" ;; esac
"$BIN/atlas-collector" --listen 127.0.0.1:0 --db "sqlite:///$WORK/store.db" > "$WORK/collector.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "^listening on" "$WORK/collector.log" && break; sleep 0.2; done
export ATLAS_ADDR="$(grep -m1 '^listening on' "$WORK/collector.log" | awk '{print $NF}')" ATLAS_HOME="$WORK/home"
cd "$(dirname "$0")"
progs=()
if [ $# -gt 0 ]; then for p in "$@"; do progs+=($p*.py); done; else progs=(g*.py k*.py); fi
echo "{" > "$JSON"
sep=""
for f in "${progs[@]}"; do
  name="${f%.py}"
  t0=$(date +%s)
  "$BIN/python" "$f" > "$WORK/$name.log" 2>&1 || echo "$name exited $?"
  t1=$(date +%s)
  "$BIN/atlas" --collector "$ATLAS_ADDR" issues "$name" --json > "$WORK/$name.issues.json" || echo "[]" > "$WORK/$name.issues.json"
  printf '%s"%s": ' "$sep" "$name" >> "$JSON"; cat "$WORK/$name.issues.json" >> "$JSON"; sep=","
  "$BIN/python" -c "
import json, sys
d = json.load(open('$WORK/$name.issues.json'))
top = (d[0]['check'] + ' (' + d[0]['severity'] + (', cleared' if not d[0]['active'] else '') + ')') if d else '-'
warn = [i['check'] + ' ' + i['severity'] + ('' if i['active'] else ' (cleared)') for i in d if i['severity'] != 'info']
print(f'$name ($((t1 - t0)) s): rank 1 {top}; warning or above: {\", \".join(warn) or \"none\"}')"
  grep -h "^SYMPTOM\|STOPPED" "$WORK/$name.log" | tail -3 | sed 's/^/    /'
done
echo "}" >> "$JSON"
echo "issues JSON: $JSON   logs: $WORK"
