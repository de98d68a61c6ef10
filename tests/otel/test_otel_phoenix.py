"""End to end into a real tracing backend: Arize Phoenix (`phoenix serve`) on 127.0.0.1, in its own virtual
environment under ~/.cache/atlas-tests/ (never Atlas's), fed by a real collector during real training runs,
read back through Phoenix's REST API.

The environment is created on first use (`pip install arize-phoenix`: about five minutes, once); the test
skips, saying why, when the package index cannot provide it. Phoenix itself takes ~30 s to start."""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from atlas_callback import AtlasCallback
from atlas_collector import run_server

from _lit import TinyClassifier, loaders, trainer

VENV = pathlib.Path.home() / ".cache" / "atlas-tests" / "phoenix-venv"
PHOENIX = VENV / "bin" / "phoenix"

pytestmark = pytest.mark.slow


def _phoenix_venv() -> pathlib.Path:
    if PHOENIX.exists():
        return PHOENIX
    VENV.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, capture_output=True,
                       timeout=120)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "arize-phoenix"], check=True,
                       capture_output=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"arize-phoenix could not be installed into {VENV}: {exc}")
    return PHOENIX


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory):
    """`phoenix serve` on loopback ports; yields (OTLP gRPC endpoint, REST base URL)."""
    binary = _phoenix_venv()
    http, grpc_port = _free_port(), _free_port()
    workdir = tmp_path_factory.mktemp("phoenix")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_", "ATLAS_"))}
    env.update(PHOENIX_HOST="127.0.0.1", PHOENIX_PORT=str(http), PHOENIX_GRPC_PORT=str(grpc_port),
               PHOENIX_WORKING_DIR=str(workdir), PHOENIX_TELEMETRY_ENABLED="false")
    log = open(workdir / "phoenix.log", "w")
    proc = subprocess.Popen([str(binary), "serve"], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 180
        while _get(f"{base}/v1/projects") is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"phoenix did not start: {(workdir / 'phoenix.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{grpc_port}", base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _spans(base: str, project: str, trace_id: str, count: int, timeout: float = 60.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        data = _get(f"{base}/v1/projects/{project}/spans?limit=100") or {"data": []}
        spans = {s["name"]: s for s in data["data"] if s["context"]["trace_id"] == trace_id}
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def test_phoenix_shows_each_run_as_a_trace(phoenix, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, base = phoenix
    project = f"atlas-e2e-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={project}")
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    with run_server(db=f"sqlite:///{tmp_path / 'phoenix.db'}", otlp_endpoint=endpoint) as collector:
        good = AtlasCallback(project="otel", run_name="phoenix-ok", collector=collector.address)
        trainer([good], max_epochs=2).fit(TinyClassifier(), *loaders())
        bad = AtlasCallback(project="otel", run_name="phoenix-failed", collector=collector.address)
        with pytest.raises(RuntimeError, match="boom"):
            trainer([bad], max_epochs=2).fit(TinyClassifier(fail_at_step=5), *loaders())
        assert collector.collector.otel.force_flush(20)

    spans = _spans(base, project, uuid.UUID(good.run_id).hex, 3)
    assert sorted(spans) == ["epoch 0", "epoch 1", "train otel"], sorted(spans)
    root = spans["train otel"]
    assert root["parent_id"] is None and root["status_code"] == "OK"
    assert {spans[f"epoch {n}"]["parent_id"] for n in (0, 1)} == {root["context"]["span_id"]}
    assert root["attributes"]["atlas.run.name"] == "phoenix-ok"
    assert root["attributes"]["atlas.run.framework"] == "lightning"
    assert spans["epoch 1"]["attributes"]["atlas.val.val_loss"] > 0
    issues = [e for e in spans["epoch 0"]["events"] if e["name"] == "atlas.issue"]
    assert [e["attributes"]["atlas.issue.check"] for e in issues] == ["device_underutilization"]

    failed = _spans(base, project, uuid.UUID(bad.run_id).hex, 2)
    assert sorted(failed) == ["epoch 0", "train otel"], sorted(failed)
    assert failed["train otel"]["status_code"] == "ERROR"
    assert "boom at step 5" in failed["train otel"]["status_message"]
    assert any(e["name"] == "exception" for e in failed["train otel"]["events"])
