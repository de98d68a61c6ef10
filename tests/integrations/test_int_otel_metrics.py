"""User metrics reach OpenTelemetry: the `atlas.user.metric` gauge, one point per key with `atlas.metric.key`."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "otel"))
from otlp_receiver import grpc_receiver  # noqa: E402

from conftest import start_collector_process  # noqa: E402
from test_int_user_metrics import _plain_run  # noqa: E402


@pytest.fixture(autouse=True)
def _fast_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME",
                "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "300")


def test_user_metrics_are_exported_as_a_gauge_per_key(tmp_path) -> None:
    with grpc_receiver() as (endpoint, received):
        collector = start_collector_process(f"sqlite:///{tmp_path / 'otel.db'}", "--otlp-endpoint", endpoint)
        try:
            run_id = _plain_run(collector.address)
            metrics = received.wait(lambda r: (m := r.metrics()) and any(
                p["attrs"].get("atlas.run.id") == run_id and p["attrs"].get("atlas.metric.key") == "val_acc"
                and p["value"] == pytest.approx(0.79) for p in m.get("atlas.user.metric", [])) and m, 60)
        finally:
            collector.stop()
            collector.proc.stdout.close()
    assert metrics, "no atlas.user.metric point for the run"
    mine = [p for p in metrics["atlas.user.metric"] if p["attrs"].get("atlas.run.id") == run_id]
    last = {p["attrs"]["atlas.metric.key"]: p["value"] for p in mine}
    assert last["val_acc"] == pytest.approx(0.79) and last["tokens"] == 232
    assert "weird" not in last  # a NaN has no gauge value
