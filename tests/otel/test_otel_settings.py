"""Export settings (flag, OTEL_* environment), derived ids, the resource, and the bounded notification queue."""
from __future__ import annotations

import pathlib
import subprocess
import sys
import threading
import uuid

import pytest

from atlas_collector import ConfigError, run_server
from atlas_collector._ingest import Outcome
from atlas_collector._otel import OtelExporter, OtelSettings, default_resource
from atlas_collector._otel_spans import span_id_of, trace_id_of

from conftest import BIN, cli_env
from otlp_receiver import grpc_receiver

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "collector"))
from coll_support import Trainer  # noqa: E402 - the raw trainer stream of the collector tests
from _wait import wait_for


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME",
                "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(("flag", "env", "expected"), [
    ("", {}, None),
    ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4317"}, ("", "grpc", True, True)),
    ("127.0.0.1:4317", {}, ("http://127.0.0.1:4317", "grpc", True, True)),
    ("https://otel.example.com:4317", {}, ("https://otel.example.com:4317", "grpc", True, True)),
    ("http://127.0.0.1:4318", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
     ("http://127.0.0.1:4318", "http/protobuf", True, True)),
    ("127.0.0.1:4317", {"OTEL_METRICS_EXPORTER": "none"}, ("http://127.0.0.1:4317", "grpc", True, False)),
    ("127.0.0.1:4317", {"OTEL_SDK_DISABLED": "true"}, None),
])
def test_settings_resolve_flag_then_standard_variables(flag, env, expected) -> None:
    settings = OtelSettings.resolve(flag, env)
    if expected is None:
        assert settings is None
    else:
        assert (settings.endpoint, settings.protocol, settings.traces, settings.metrics) == expected


@pytest.mark.parametrize(("env", "message"), [
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
     "OTEL_EXPORTER_OTLP_PROTOCOL must be one of grpc, http/protobuf, got 'http/json'"),
    ({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "OTEL_METRIC_EXPORT_INTERVAL must be milliseconds, got 'soon'"),
    ({"OTEL_METRIC_EXPORT_INTERVAL": "0"}, "OTEL_METRIC_EXPORT_INTERVAL must be > 0"),
])
def test_bad_settings_are_refused_with_the_variable_named(env, message) -> None:
    with pytest.raises(ConfigError, match=message):
        OtelSettings.resolve("127.0.0.1:4317", env)


def test_the_collector_refuses_a_bad_protocol_at_start(tmp_path) -> None:
    env = cli_env(OTEL_EXPORTER_OTLP_PROTOCOL="http/json")
    done = subprocess.run([str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--db",
                           f"sqlite:///{tmp_path / 'x.db'}", "--otlp-endpoint", "127.0.0.1:4317"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL must be one of grpc, http/protobuf" in done.stderr


def test_ids_derive_from_the_run_id() -> None:
    run_id = str(uuid.uuid4())
    assert trace_id_of(run_id) == uuid.UUID(run_id).int  # the run id, dashes removed, is the trace id
    odd = trace_id_of("not-a-uuid")
    assert odd == trace_id_of("not-a-uuid") and 0 < odd < 2**128 and odd != trace_id_of("not-a-uuid2")
    ids = [span_id_of(run_id, "run")] + [span_id_of(run_id, f"epoch:{n}") for n in range(1000)]
    assert len(set(ids)) == len(ids) and all(0 < i < 2**64 for i in ids)
    assert ids == [span_id_of(run_id, "run")] + [span_id_of(run_id, f"epoch:{n}") for n in range(1000)]
    assert span_id_of(str(uuid.uuid4()), "run") != ids[0]


def test_resource_defaults_to_atlas_collector_and_honours_the_environment(monkeypatch) -> None:
    assert default_resource().attributes["service.name"] == "atlas-collector"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=lab,service.namespace=ml")
    assert default_resource().attributes["service.namespace"] == "ml"
    assert default_resource().attributes["service.name"] == "atlas-collector"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "atlas-eu")
    assert default_resource().attributes["service.name"] == "atlas-eu"


def test_a_full_queue_drops_the_oldest_and_counts_it_without_blocking(tmp_path) -> None:
    """The worker is held by a backend that does not answer; notifications for other runs overflow the queue."""
    with grpc_receiver() as (endpoint, received), run_server(db=f"sqlite:///{tmp_path / 'q.db'}") as collector:
        t = Trainer(collector.address).start(project="otel", name="q")
        t.epoch(0, 1.0)
        t.end()
        t.wait_acked()
        t.finish()
        received.gate.clear()
        settings = OtelSettings.resolve(endpoint, {})
        exporter = OtelExporter(collector.store, span_exporter=settings.span_exporter(), metric_exporter=None,
                                max_queue=2)
        try:
            exporter.notify([Outcome(t.run_id, 0, kind="run_end", applied=True)])
            wait_for(lambda: not exporter._pending, 10, "the worker to take the run and be held")
            def overflow() -> None:
                exporter.notify([Outcome(str(uuid.uuid4()), 0, kind="epoch_summary", applied=True)
                                 for _ in range(5)])
                exporter.notify([Outcome(t.run_id, 0, kind="epoch_summary", applied=False)] * 10_000)  # duplicates

            notifier = threading.Thread(target=overflow, daemon=True)
            notifier.start()
            notifier.join(30)
            assert not notifier.is_alive(), "notify blocked while the backend held the worker"
            assert exporter.stats["dropped"] == 3 and len(exporter._pending) == 2
            received.gate.set()
            assert exporter.force_flush(20)
            assert [s["name"] for s in received.spans()] == ["train otel"]
        finally:
            received.gate.set()
            assert exporter.shutdown(10)
            assert exporter.shutdown(1), "a second shutdown is a no-op"
