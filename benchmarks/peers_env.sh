#!/usr/bin/env bash
# Create benchmarks/.peers-venv: torch (CPU), Lightning, the peers (mlflow, wandb, tensorboard) and Atlas itself
# (editable, runtime dependencies only), so that Atlas and its peers are measured in one process. Never touches the
# project's environment. Idempotent: re-running only installs what is missing.
#
#     bash benchmarks/peers_env.sh            # then: benchmarks/.peers-venv/bin/python benchmarks/overhead.py
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
venv="$here/.peers-venv"
py="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first and pinned: a bare `torch` requirement would resolve the CUDA build and its GBs of wheels.
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" "torch==2.13.0" "lightning>=2.6.6" mlflow wandb tensorboard \
    "grpcio>=1.85.1" "grpcio-health-checking>=1.85.1" "protobuf>=6" "psutil>=7.2.2" "codecarbon>=3.3.2" \
    "nvidia-ml-py>=13.615.71" "sqlalchemy>=2.1.9" "alembic>=1.20.1" "psycopg[binary]>=3.3.9" \
    "opentelemetry-sdk>=1.45.2" "opentelemetry-exporter-otlp>=1.45.2" "click>=8.5.1" "rich>=15.0.0" \
    py-spy  # a sampling profiler, to see where the collector's time goes
"${pip[@]}" --no-deps -e "$repo"
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
print("peers venv:", ", ".join(f"{p} {md.version(p)}" for p in
      ("torch", "lightning", "mlflow", "wandb", "tensorboard", "protobuf", "grpcio", "sqlalchemy")))
import atlas_callback, atlas_collector  # noqa: F401  (the editable install works)
PY
