"""OTLP export during real training: a real collector exports to a real OTLP receiver on 127.0.0.1 (built on
the official `opentelemetry-proto` service definitions); the trace of each run is checked span by span."""
from __future__ import annotations

import time
import uuid

import grpc
import lightning.pytorch as pl
import pytest

from atlas_callback import AtlasCallback
from atlas_collector import run_server
from atlas_collector._otel_metrics import EPOCH_SECONDS_BUCKETS, LOSS_BUCKETS
from atlas_collector._otel_spans import span_id_of, trace_id_of
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import query_pb2_grpc
from atlas_proto.v1 import telemetry_pb2 as tpb

from _lit import TinyClassifier, loaders, trainer
from conftest import start_collector_process
from otlp_receiver import Received, grpc_receiver, http_receiver

OK, ERROR, UNSET = 1, 2, 0  # OTLP Status.StatusCode


@pytest.fixture(autouse=True)
def _fast_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME",
                "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "300")


def by_name(spans: list[dict]) -> dict[str, dict]:
    out = {}
    for span in spans:
        assert span["name"] not in out, f"span {span['name']!r} received twice"
        out[span["name"]] = span
    return out


def trace_of(received: Received, run_id: str) -> list[dict]:
    return [s for s in received.spans() if s["trace_id"] == f"{trace_id_of(run_id):032x}"]


def root_of(received: Received, run_id: str) -> dict | None:
    return next((s for s in trace_of(received, run_id) if not s["parent"]), None)


class WatchSpans(pl.Callback):
    """At the start of epoch `at`, wait (bounded) for the first epoch's span; note whether a root was there."""

    def __init__(self, received: Received, atlas: AtlasCallback, at: int = 2) -> None:
        self.received, self.atlas, self.at = received, atlas, at
        self.seen_while_running: list[str] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            # CodeCarbon starts on a background thread so that no step waits for it (about 1.5 s here); this
            # tiny run's epochs are shorter, so let its first measurement land before epochs 1-2 end.
            carbon = self.atlas._core.channel("carbon")
            deadline = time.monotonic() + 20
            while carbon is not None and carbon.available and carbon._latest is None and time.monotonic() < deadline:
                time.sleep(0.05)
        if trainer.current_epoch != self.at:
            return
        self.received.wait(lambda r: any(s["name"] == "epoch 0" for s in trace_of(r, self.atlas.run_id)), 20)
        self.seen_while_running = sorted(s["name"] for s in trace_of(self.received, self.atlas.run_id))


class StopAt(pl.Callback):
    """Send STOP through the collector's QueryService at a given step (as `atlas stop` does)."""

    def __init__(self, atlas: AtlasCallback, address: str, step: int) -> None:
        self.atlas, self.address, self.step = atlas, address, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with grpc.insecure_channel(self.address) as channel:
                query_pb2_grpc.QueryServiceStub(channel).SendCommand(qpb.CommandRequest(
                    run=self.atlas.run_id, kind=tpb.COMMAND_KIND_STOP, reason="enough for today",
                    sender="test:otel"), timeout=10)


def test_a_training_run_becomes_one_trace_live_with_metrics(db_url: str) -> None:
    """A real `atlas-collector` subprocess, a real Lightning run: epoch spans arrive while the run trains,
    the root at its end; ids derive from the run id; attributes, issue events and metrics arrive."""
    with grpc_receiver() as (endpoint, received):
        collector = start_collector_process(db_url, "--otlp-endpoint", endpoint)
        try:
            atlas = AtlasCallback(project="otel", run_name="live", collector=collector.address)
            watch = WatchSpans(received, atlas, at=2)
            trainer([atlas, watch], max_epochs=3).fit(TinyClassifier(hidden=12, lr=0.05), *loaders())
            run_id = atlas.run_id
            root = received.wait(lambda r: root_of(r, run_id))
        finally:
            collector.stop()
            collector.proc.stdout.close()
        spans = by_name(trace_of(received, run_id))

    # Live: epoch 0 (and maybe 1) had arrived before epoch 2 started; the root had not.
    assert "epoch 0" in watch.seen_while_running and "train otel" not in watch.seen_while_running
    # The tree: one root, three epoch children, ids derived from the run id.
    assert sorted(spans) == ["epoch 0", "epoch 1", "epoch 2", "train otel"]
    assert root["trace_id"] == uuid.UUID(run_id).hex
    assert root["span_id"] == f"{span_id_of(run_id, 'run'):016x}"
    for n in range(3):
        epoch = spans[f"epoch {n}"]
        assert epoch["parent"] == root["span_id"]
        assert epoch["span_id"] == f"{span_id_of(run_id, f'epoch:{n}'):016x}"
        assert root["start"] <= epoch["start"] < epoch["end"] <= root["end"]
        a = epoch["attrs"]
        assert a["atlas.epoch.index"] == n and a["atlas.epoch.completed"] is True
        assert 0 < a["atlas.loss.min"] <= a["atlas.loss.mean"] <= a["atlas.loss.max"] < 10
        assert a["atlas.loss.count"] > 0 and a["atlas.val.val_loss"] > 0 and 0 <= a["atlas.val.val_acc"] <= 1
        assert a["atlas.throughput.samples_per_sec"] > 0 and a["atlas.epoch.duration"] > 0
        assert a["atlas.run.id"] == run_id
    last = spans["epoch 2"]["attrs"]  # measured by then (WatchSpans waits for CodeCarbon's first measurement)
    # The epoch's own delta is 0 (and so absent) when CodeCarbon has not measured again since the previous
    # epoch ended; the cumulative figures and the power are there either way.
    assert last["atlas.carbon.co2_cumulative"] > 0 and last["atlas.carbon.energy_cumulative"] > 0
    assert last["atlas.carbon.power"] > 0
    assert last["atlas.carbon.co2_cumulative"] >= last.get("atlas.carbon.co2", 0.0) >= 0
    # The root: who, where, how, and how it ended.
    a = root["attrs"]
    assert (a["atlas.project"], a["atlas.run.name"], a["atlas.run.framework"], a["atlas.run.status"]) == (
        "otel", "live", "lightning", "completed")
    assert a["atlas.device.kind"] == "cpu" and a["atlas.run.world_size"] == 1 and a["atlas.run.epochs"] == 3
    assert a["atlas.hparam.lr"] == pytest.approx(0.05) and a["atlas.hparam.hidden"] == 12
    assert root["status"] == OK and root["resource"]["service.name"] == "atlas-collector"
    # Issues are span events where they were first seen: a CPU-only run gets one info on epoch 0.
    [event] = [e for e in spans["epoch 0"]["events"] if e["attrs"]["atlas.issue.check"] == "device_underutilization"]
    assert event["name"] == "atlas.issue" and event["attrs"]["atlas.issue.severity"] == "info"
    assert event["attrs"]["atlas.issue.suggestion"] and event["attrs"]["atlas.issue.category"] == "sustainability"

    metrics = received.wait(lambda r: (m := r.metrics()) and "atlas.run.health_score" in m
                            and "atlas.train.epoch.duration" in m and m)
    mine = {name: [p for p in points if p["attrs"].get("atlas.run.id") == run_id] for name, points in metrics.items()}
    for name in ("atlas.train.loss", "atlas.val.loss", "atlas.train.throughput", "atlas.run.health_score",
                 "atlas.run.issues", "atlas.train.step.loss", "atlas.train.step.duration", "atlas.train.epochs",
                 "atlas.train.epoch.duration", "atlas.run.co2"):
        assert mine.get(name), f"no {name} point for the run; got {sorted(metrics)}"
    assert 0 < mine["atlas.train.loss"][-1]["value"] < 10 and mine["atlas.run.health_score"][-1]["value"] <= 100
    assert mine["atlas.train.throughput"][-1]["unit"] == "{sample}/s"
    assert {p["attrs"]["atlas.issue.severity"] for p in mine["atlas.run.issues"]} == {"critical", "warning", "info"}
    step_loss = mine["atlas.train.step.loss"][-1]
    assert step_loss["kind"] == "histogram" and step_loss["bounds"] == list(LOSS_BUCKETS) and step_loss["count"] > 0
    assert mine["atlas.train.epoch.duration"][-1]["bounds"] == list(EPOCH_SECONDS_BUCKETS)
    assert max(p["value"] for p in mine["atlas.train.epochs"]) == 3


def test_a_failed_run_ends_its_trace_in_error(tmp_path) -> None:
    with grpc_receiver() as (endpoint, received), \
            run_server(db=f"sqlite:///{tmp_path / 'fail.db'}", otlp_endpoint=endpoint) as collector:
        atlas = AtlasCallback(project="otel", run_name="doomed", collector=collector.address)
        with pytest.raises(RuntimeError, match="boom at step 5"):
            trainer([atlas], max_epochs=2).fit(TinyClassifier(fail_at_step=5), *loaders())
        root = received.wait(lambda r: root_of(r, atlas.run_id))
        spans = by_name(trace_of(received, atlas.run_id))

    assert root["status"] == ERROR and "RuntimeError" in root["status_message"] and "boom" in root["status_message"]
    assert root["attrs"]["atlas.run.status"] == "failed" and root["attrs"]["error.type"] == "RuntimeError"
    [exc] = [e for e in root["events"] if e["name"] == "exception"]
    assert exc["attrs"]["exception.type"] == "RuntimeError" and "boom at step 5" in exc["attrs"]["exception.message"]
    assert "Traceback" in exc["attrs"]["exception.stacktrace"]
    # The epoch it never finished is a child span that ends with the run, in error too.
    unfinished = spans["epoch 0"]
    assert unfinished["parent"] == root["span_id"] and unfinished["attrs"]["atlas.epoch.completed"] is False
    assert unfinished["status"] == ERROR and unfinished["end"] == root["end"]


def test_a_stop_command_is_a_span_event_of_the_run(tmp_path) -> None:
    with grpc_receiver() as (endpoint, received), \
            run_server(db=f"sqlite:///{tmp_path / 'stop.db'}", otlp_endpoint=endpoint) as collector:
        atlas = AtlasCallback(project="otel", run_name="stopped", collector=collector.address)
        trainer([atlas, StopAt(atlas, collector.address, step=5)], max_epochs=3).fit(TinyClassifier(), *loaders())
        root = received.wait(lambda r: root_of(r, atlas.run_id))

    assert root["attrs"]["atlas.run.status"] == "stopped" and root["status"] == UNSET
    [cmd] = [e for e in root["events"] if e["name"] == "atlas.command"]
    assert cmd["attrs"]["atlas.command.kind"] == "STOP"
    assert cmd["attrs"]["atlas.command.reason"] == "enough for today"
    assert cmd["attrs"]["atlas.command.sender"] == "test:otel" and cmd["attrs"]["atlas.command.delivered_step"] >= 5
    assert root["start"] <= cmd["time"] <= root["end"]


def test_http_protobuf_is_the_other_protocol(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "atlas-lab")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    with http_receiver() as (endpoint, received), \
            run_server(db=f"sqlite:///{tmp_path / 'http.db'}", otlp_endpoint=endpoint) as collector:
        atlas = AtlasCallback(project="otel", run_name="over-http", collector=collector.address)
        trainer([atlas], max_epochs=1).fit(TinyClassifier(), *loaders(n=128))
        root = received.wait(lambda r: root_of(r, atlas.run_id))
        metrics = received.wait(lambda r: "atlas.train.epochs" in r.metrics() and r.metrics())
    assert sorted(s["name"] for s in trace_of(received, atlas.run_id)) == ["epoch 0", "train otel"]
    assert root["resource"]["service.name"] == "atlas-lab"
    assert root["resource"]["deployment.environment"] == "test"
    assert metrics["atlas.train.epochs"][-1]["resource"]["service.name"] == "atlas-lab"


def test_export_lags_but_never_blocks_ingest(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend that holds every export: the run still trains and is stored at full speed; what was held
    is delivered once the backend answers."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "30")
    with grpc_receiver() as (endpoint, received), \
            run_server(db=f"sqlite:///{tmp_path / 'held.db'}", otlp_endpoint=endpoint) as collector:
        received.gate.clear()
        t0 = time.monotonic()
        atlas = AtlasCallback(project="otel", run_name="held", collector=collector.address)
        trainer([atlas], max_epochs=2).fit(TinyClassifier(), *loaders())
        trained = time.monotonic() - t0
        with collector.store.connect() as conn:
            detail = collector.store.get_run(conn, atlas.run_id)
        assert detail["status"] == "completed" and detail["epochs"] == 2
        assert root_of(received, atlas.run_id) is None, "the backend held every export"
        received.gate.set()
        root = received.wait(lambda r: root_of(r, atlas.run_id))
    assert trained < 25
    assert sorted(s["name"] for s in trace_of(received, atlas.run_id)) == ["epoch 0", "epoch 1", "train otel"]
    assert root["attrs"]["atlas.run.epochs"] == 2


def test_gpu_power_and_carbon_metrics_follow_the_hw_conventions(tmp_path) -> None:
    """NVML is absent here, so the GPU statistics come in an epoch summary sent over the real wire protocol, as
    the trainer's GPU channel sends them on a GPU box."""
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "collector"))
    from coll_support import Trainer

    with grpc_receiver() as (endpoint, received), \
            run_server(db=f"sqlite:///{tmp_path / 'gpu.db'}", otlp_endpoint=endpoint) as collector:
        t = Trainer(collector.address).start(project="otel", name="gpu")
        m = t._msg()
        e = m.epoch_summary
        e.epoch, e.duration_seconds, e.global_step = 0, 42.0, 100
        e.ended_at.GetCurrentTime()
        e.loss.mean, e.loss.count = 0.5, 100
        e.gpus.add(index=0, name="NVIDIA H100", utilization_percent=87.5, memory_used_mb=40960.0,
                   memory_total_mb=81920.0, power_watts=350.0, temperature_c=61.0)
        e.carbon.epoch_co2_kg, e.carbon.cumulative_co2_kg, e.carbon.power_draw_watts = 0.01, 0.01, 420.0
        e.carbon.cumulative_energy_kwh = 0.05
        t.outbox.put(m)
        t.wait_acked()
        metrics = received.wait(lambda r: "hw.gpu.utilization" in r.metrics() and "atlas.run.co2" in r.metrics()
                                and r.metrics())
        t.finish()
    point = lambda name: metrics[name][-1]  # noqa: E731
    gpu = point("hw.gpu.utilization")
    assert gpu["value"] == pytest.approx(0.875) and gpu["unit"] == "1"
    assert (gpu["attrs"]["hw.type"], gpu["attrs"]["hw.id"], gpu["attrs"]["hw.name"]) == ("gpu", "0", "NVIDIA H100")
    assert gpu["attrs"]["atlas.run.id"] == t.run_id
    assert point("hw.gpu.memory.usage")["value"] == 40960 * 2**20 and point("hw.gpu.memory.usage")["unit"] == "By"
    assert point("hw.gpu.memory.limit")["value"] == 81920 * 2**20
    assert point("hw.power")["value"] == 350.0 and point("hw.power")["unit"] == "W"
    assert point("hw.temperature")["value"] == 61.0 and point("hw.temperature")["unit"] == "Cel"
    assert point("atlas.run.power")["value"] == 420.0
    co2 = point("atlas.run.co2")
    assert co2["value"] == pytest.approx(0.01) and co2["unit"] == "kg" and co2["kind"] == "sum"
    assert point("atlas.run.energy")["value"] == pytest.approx(0.05) and point("atlas.run.energy")["unit"] == "kW.h"
    duration = point("atlas.train.epoch.duration")
    assert duration["count"] == 1 and duration["sum"] == 42.0
    assert duration["buckets"][EPOCH_SECONDS_BUCKETS.index(60.0)] == 1  # 42 s lands in (30 s, 60 s]
