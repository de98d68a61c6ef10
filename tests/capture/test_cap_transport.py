"""Nothing lost: the spool, offline runs, `atlas sync`, and a collector killed mid-run."""
from __future__ import annotations

import os
import pathlib

import pytest

from atlas_callback import AtlasCallback
from conftest import atlas_json, spool_files
from _lit import TinyClassifier, loaders, trainer



def test_offline_mode_only_spools(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, collector_process) -> None:
    monkeypatch.setenv("ATLAS_MODE", "offline")
    callback = AtlasCallback(project="offline", collector=collector_process.address)
    trainer([callback], max_epochs=1).fit(TinyClassifier(), *loaders())
    assert atlas_json(collector_process.address, "runs") == []
    assert len(spool_files(pathlib.Path(os.environ["ATLAS_HOME"]))) == 1


def test_disabled_mode_does_nothing(monkeypatch: pytest.MonkeyPatch, collector_process) -> None:
    monkeypatch.setenv("ATLAS_MODE", "disabled")
    callback = AtlasCallback(project="off", collector=collector_process.address)
    trainer([callback], max_epochs=1).fit(TinyClassifier(), *loaders())
    assert callback.run_id is None
    assert atlas_json(collector_process.address, "runs") == []
    assert spool_files(pathlib.Path(os.environ["ATLAS_HOME"])) == []


def test_full_spool_warns_once_and_training_goes_on(monkeypatch, caplog) -> None:
    import logging

    from atlas_callback import AtlasConfig, Observer

    monkeypatch.setenv("ATLAS_MODE", "offline")
    with caplog.at_level(logging.WARNING, logger="atlas_callback"):
        with Observer(project="offline", run_name="full", config=AtlasConfig(
                spool_max_mb=1, track_carbon=False, track_gpu=False, step_flush_seconds=0.01)) as obs:
            metrics = {f"metric_{i}": float(i) for i in range(12)}
            for step in range(12_000):
                obs.step(float(step), batch_size=8, metrics=metrics)
            obs.flush()
    full = [r for r in caplog.records if "is full" in r.getMessage()]
    assert len(full) == 1
    spool = next((pathlib.Path(os.environ["ATLAS_HOME"]) / "spool" / obs.run_id).glob("*.log"))
    assert spool.stat().st_size <= 2**20


def test_a_spool_path_that_cannot_be_created_warns_once_and_the_run_still_arrives(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        collector_process) -> None:
    import logging

    home = tmp_path / "home"
    home.write_text("a file, not a directory")  # CI runs as root: a read-only directory would not stop it
    monkeypatch.setenv("ATLAS_HOME", str(home))
    callback = AtlasCallback(project="nospool", collector=collector_process.address)
    with caplog.at_level(logging.WARNING, logger="atlas_callback"):
        trainer([callback], max_epochs=2).fit(TinyClassifier(), *loaders())
    spool_warnings = [r.getMessage() for r in caplog.records if "cannot open the spool" in r.getMessage()]
    assert len(spool_warnings) == 1 and str(home) in spool_warnings[0]
    assert "records live in memory only" in spool_warnings[0]
    run = atlas_json(collector_process.address, "runs", "show", callback.run_id)
    assert run["status"] == "completed" and run["epochs"] == 2  # nothing lost while the collector is up


# ------------------------------------------------------------------ the sender never makes a gap (issue 18)

def _sender(**kwargs):
    import uuid

    from atlas_callback._transport import Transport
    from atlas_proto.v1 import telemetry_pb2 as tpb

    start = tpb.RunStart(protocol_version=tpb.PROTOCOL_VERSION_1, project="p", run_name="r")
    return Transport("127.0.0.1:1", start, run_id=str(uuid.uuid4()), rank=0, session=str(uuid.uuid4()),
                     connect=False, **kwargs)


def _sequenced(transport, n: int) -> None:
    import time

    from atlas_proto.v1 import telemetry_pb2 as tpb

    for i in range(n):
        transport.send("epoch_summary", tpb.EpochSummary(epoch=i))  # one message per record
    deadline = time.monotonic() + 10
    while transport._next_seq <= n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert transport._next_seq == n + 1


def test_an_older_streams_request_generator_never_moves_the_new_stream_past_a_sequence() -> None:
    """The collector restarted: gRPC may still pull from the old stream's generator while the new one sends. The
    new stream must send every unacked sequence from the last ack, whatever the old generator does."""
    transport = _sender()
    try:
        _sequenced(transport, 4)
        old = transport._requests(1)
        transport._stream_gen = 1
        assert next(old).HasField("run_start")
        assert [next(old).seq for _ in range(2)] == [1, 2]  # sent on the stream that died, never acked
        transport._stream_gen = 2
        new = transport._requests(2)
        assert next(new).HasField("run_start")
        assert list(old) == [], "the old stream's generator must end, sending nothing more"
        assert [next(new).seq for _ in range(4)] == [1, 2, 3, 4]
    finally:
        transport.shutdown(1.0)


def test_records_lost_before_delivery_are_declared_not_skipped(monkeypatch) -> None:
    """No spool and memory full: the lost sequences go out as one Dropped message, so the collector records the
    loss instead of waiting for them (or, before, acking over the hole)."""
    from atlas_callback import _transport

    monkeypatch.setattr(_transport, "MAX_MEMORY_BYTES", 150)  # room for one message of ~85 bytes, not two
    transport = _sender()
    try:
        _sequenced(transport, 5)
        gen = transport._requests(0)
        assert next(gen).HasField("run_start")
        lost = next(gen)
        assert lost.WhichOneof("body") == "dropped"
        assert (lost.dropped.first_seq, lost.seq) == (1, 4)
        assert "memory and spool" in lost.dropped.reason
        last = next(gen)
        assert (last.seq, last.epoch_summary.epoch) == (5, 4)
    finally:
        transport.shutdown(1.0)
