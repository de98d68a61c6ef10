"""A backend that is down, a collector that restarts, a stream that moves to another replica: ingest goes on,
each span is sent once live, and `atlas-collector otel-replay RUN` delivers a run from the store."""
from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
import time

import pytest

from atlas_callback import AtlasCallback
from atlas_collector import CollectorConfig, RunningCollector, run_server
from atlas_collector._otel_spans import span_id_of, trace_id_of

from _lit import TinyClassifier, loaders, trainer
from conftest import BIN, cli_env
from otlp_receiver import grpc_receiver

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "collector"))
from coll_support import Trainer  # noqa: E402 - the raw trainer stream of the collector tests


@pytest.fixture(autouse=True)
def _otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SDK_DISABLED",
                "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "300")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")


def dead_endpoint() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def replay(db_url: str, run: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "atlas-collector"), "otel-replay", run, "--db", db_url, *extra],
                          capture_output=True, text=True, timeout=60, env=cli_env())


def names_and_ids(spans: list[dict]) -> list[tuple[str, str, str, str]]:
    return sorted((s["name"], s["trace_id"], s["span_id"], s["parent"]) for s in spans)


def test_backend_down_ingest_unaffected_then_replay_delivers_the_run(tmp_path) -> None:
    db_url = f"sqlite:///{tmp_path / 'down.db'}"
    with run_server(db=db_url, otlp_endpoint=dead_endpoint()) as collector:
        atlas = AtlasCallback(project="otel", run_name="unseen", collector=collector.address)
        trainer([atlas], max_epochs=2).fit(TinyClassifier(), *loaders())
        with collector.store.connect() as conn:
            run = collector.store.get_run(conn, atlas.run_id)
        assert (run["status"], run["epochs"], run["steps"]) == ("completed", 2, 32)
        exporter = collector.collector.otel
        assert exporter is not None
        deadline = time.monotonic() + 30
        while exporter.failures.counts["spans"] < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert exporter.failures.counts["spans"] == 3, "two epoch spans and the root failed, and were counted"
        assert exporter.stats["spans"] == 0
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 12, "stopping the collector waited too long on a dead backend"

    with grpc_receiver() as (endpoint, received):
        done = replay(db_url, atlas.run_id[:8], "--otlp-endpoint", endpoint)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == f"exported 3 span(s) of run {atlas.run_id}"
        first = received.wait(lambda r: len(r.spans()) == 3 and r.spans())
        again = replay(db_url, "unseen", "--otlp-endpoint", endpoint)
        assert again.returncode == 0, again.stderr[-2000:]
        second = received.wait(lambda r: len(r.spans()) == 6 and r.spans()[3:])

    trace = f"{trace_id_of(atlas.run_id):032x}"
    root = f"{span_id_of(atlas.run_id, 'run'):016x}"
    assert names_and_ids(first) == sorted([
        ("epoch 0", trace, f"{span_id_of(atlas.run_id, 'epoch:0'):016x}", root),
        ("epoch 1", trace, f"{span_id_of(atlas.run_id, 'epoch:1'):016x}", root),
        ("train otel", trace, root, ""),
    ])
    # Built from the store, a replay is the same trace every time: same ids, same content.
    key = lambda s: s["name"]  # noqa: E731
    for a, b in zip(sorted(first, key=key), sorted(second, key=key)):
        assert {k: a[k] for k in ("span_id", "attrs", "events", "start", "end", "status")} == \
               {k: b[k] for k in ("span_id", "attrs", "events", "start", "end", "status")}


def test_a_run_that_moves_between_collectors_is_one_trace(db_url: str) -> None:
    """Epoch 0 is committed by collector A; the trainer then streams to B (on SQLite: A restarted on the same
    store; on PostgreSQL: a second live replica), resending epoch 0 it never saw acked: B exports epoch 1 and
    the root, and no span is sent twice."""
    move = "replica" if db_url.startswith("postgresql") else "restart"
    with grpc_receiver() as (endpoint, received):
        a = RunningCollector(CollectorConfig(listen="127.0.0.1:0", db=db_url, otlp_endpoint=endpoint)).start()
        try:
            t1 = Trainer(a.address).start(project="otel", name="mover")
            t1.steps([1.0, 0.9], epoch=0)
            t1.epoch(0, 0.95, val_loss=1.0)
            t1.wait_acked()
            received.wait(lambda r: any(s["name"] == "epoch 0" for s in r.spans()))
            t1.finish()
            if move == "restart":
                a.stop()
            with run_server(db=db_url, otlp_endpoint=endpoint) as b:
                t2 = Trainer(b.address, run_id=t1.run_id)
                t2.session, t2.seq = t1.session, t1.seq - 1  # the same session resends its last record
                t2.start(project="otel", name="mover")
                t2.epoch(0, 0.95, val_loss=1.0)
                t2.steps([0.8, 0.7], epoch=1, first_step=3)
                t2.epoch(1, 0.75, val_loss=0.9)
                t2.end()
                t2.wait_acked()
                received.wait(lambda r: any(not s["parent"] for s in r.spans()))
                b.collector.otel.force_flush(5)
                t2.finish()
        finally:
            a.stop()
        spans = received.spans()
    names = sorted(s["name"] for s in spans)
    assert names == ["epoch 0", "epoch 1", "train otel"], names
    assert {s["trace_id"] for s in spans} == {f"{trace_id_of(t1.run_id):032x}"}
    assert {s["parent"] for s in spans if s["name"].startswith("epoch")} == {f"{span_id_of(t1.run_id, 'run'):016x}"}


def test_replay_refuses_without_an_endpoint_and_names_an_unknown_run(tmp_path) -> None:
    db_url = f"sqlite:///{tmp_path / 'empty.db'}"
    subprocess.run([str(BIN / "atlas-collector"), "migrate", "--db", db_url], check=True, capture_output=True,
                   env=cli_env())
    done = replay(db_url, "latest")
    assert done.returncode == 2 and "no OTLP endpoint" in done.stderr
    with grpc_receiver() as (endpoint, received):
        done = replay(db_url, "nosuchrun", "--otlp-endpoint", endpoint)
    assert done.returncode == 1 and "no run matches 'nosuchrun'" in done.stderr
    assert received.spans() == []
