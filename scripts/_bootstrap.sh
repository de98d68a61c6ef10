# Sourced by scripts/demo and scripts/test: make .venv with everything Atlas needs, on a fresh machine too.
# torch is installed first as the pinned CPU build: a bare `torch` requirement would pull GBs of CUDA wheels.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ATLAS_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "installing torch==2.13.0 (CPU build)" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check torch==2.13.0 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$VENV/bin/python" -c "import torch" || { echo "installing torch==2.13.0 failed" >&2; exit 1; }
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e "$ROOT[dev]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
"$VENV/bin/python" -c "import atlas_cli, atlas_collector, atlas_callback, lightning" \
  || { echo "installation of Atlas into $VENV failed" >&2; exit 1; }
export PATH="$VENV/bin:$PATH"
