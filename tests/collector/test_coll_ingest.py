"""Collector ingest over real gRPC and over both real stores: validation, idempotence, durability."""
from __future__ import annotations

import math
import queue
import threading
import uuid

import grpc
import pytest
import sqlalchemy as sa

from atlas_collector import Store, run_server
from atlas_collector import _schema as s
from atlas_collector import _steps
from atlas_collector._ingest import apply_message
from atlas_collector._validate import validate
from atlas_proto.v1 import telemetry_pb2 as tpb
from atlas_proto.v1 import telemetry_pb2_grpc


def run_start(run_id: str, *, project: str = "p", name: str = "r", rank: int = 0, session: str = "") -> tpb.ClientMessage:
    msg = tpb.ClientMessage(run_id=run_id, rank=rank, session=session)
    msg.run_start.protocol_version = tpb.PROTOCOL_VERSION_1
    msg.run_start.project = project
    msg.run_start.run_name = name
    msg.run_start.framework = tpb.FRAMEWORK_PYTORCH
    msg.run_start.world_size = 1
    msg.run_start.started_at.GetCurrentTime()
    return msg


def epoch(run_id: str, session: str, seq: int, n: int, loss: float = 1.0) -> tpb.ClientMessage:
    msg = tpb.ClientMessage(run_id=run_id, session=session, seq=seq)
    msg.epoch_summary.epoch = n
    msg.epoch_summary.duration_seconds = 1.5
    msg.epoch_summary.global_step = (n + 1) * 10
    msg.epoch_summary.loss.mean = loss
    msg.epoch_summary.loss.count = 10
    msg.epoch_summary.val_metrics["val_loss"] = loss + 0.1
    return msg


def steps(run_id: str, session: str, seq: int, losses: list[float], first_step: int = 1) -> tpb.ClientMessage:
    msg = tpb.ClientMessage(run_id=run_id, session=session, seq=seq)
    for i, loss in enumerate(losses):
        msg.step_batch.samples.add(step=first_step + i, epoch=0, loss=loss)
    return msg


def run_end(run_id: str, session: str, seq: int) -> tpb.ClientMessage:
    msg = tpb.ClientMessage(run_id=run_id, session=session, seq=seq)
    msg.run_end.status = tpb.RUN_STATUS_COMPLETED
    msg.run_end.ended_at.GetCurrentTime()
    return msg


class Stream:
    """A raw trainer-side stream: put messages, read server messages, see the final status."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.outbox: queue.Queue[tpb.ClientMessage | None] = queue.Queue()
        self.call = telemetry_pb2_grpc.TelemetryServiceStub(self.channel).Stream(iter(self.outbox.get, None))
        self.received: list[tpb.ServerMessage] = []
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for msg in self.call:
                self.received.append(msg)
        except grpc.RpcError as exc:
            self.error = exc

    def send(self, *msgs: tpb.ClientMessage) -> None:
        for m in msgs:
            self.outbox.put(m)

    def finish(self, timeout: float = 10.0) -> None:
        self.outbox.put(None)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "stream did not end"
        self.channel.close()

    def acked(self) -> int:
        return max((m.ack.seq for m in self.received if m.HasField("ack")), default=0)


def _rows(store: Store, table: sa.Table, run_id: str) -> list[dict]:
    key = table.c.id if table is s.runs else table.c.run_id
    with store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).where(key == run_id))]


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda rid, ses: tpb.ClientMessage(run_id="", seq=1, session=ses, heartbeat=tpb.Heartbeat()),
         grpc.StatusCode.INVALID_ARGUMENT, "run_id is empty"),
        (lambda rid, ses: tpb.ClientMessage(run_id="not-a-uuid", heartbeat=tpb.Heartbeat()),
         grpc.StatusCode.INVALID_ARGUMENT, "must be a UUID"),
        (lambda rid, ses: tpb.ClientMessage(run_id=rid, seq=1, session=ses),
         grpc.StatusCode.INVALID_ARGUMENT, "no body or an unknown kind"),
        (lambda rid, ses: epoch(rid, ses, 1, 0),
         grpc.StatusCode.FAILED_PRECONDITION, "never started"),
        (lambda rid, ses: epoch(rid, ses, 0, 0),
         grpc.StatusCode.INVALID_ARGUMENT, "seq must be >= 1"),
        (lambda rid, ses: (lambda m: (m.run_start.__setattr__("protocol_version", 0), m)[1])(run_start(rid)),
         grpc.StatusCode.FAILED_PRECONDITION, "client speaks Atlas protocol 0, this collector serves protocol 1"),
    ],
    ids=["empty-run-id", "bad-run-id", "no-body", "unknown-run", "seq-zero", "protocol-version"],
)
def test_bad_input_gets_a_clear_status_and_other_streams_go_on(tmp_path, make, code, message) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        healthy_id, session = str(uuid.uuid4()), str(uuid.uuid4())
        healthy = Stream(collector.address)
        healthy.send(run_start(healthy_id), epoch(healthy_id, session, 1, 0))

        bad = Stream(collector.address)
        bad.send(make(str(uuid.uuid4()), str(uuid.uuid4())))
        bad.thread.join(10)
        assert bad.error is not None, "the malformed message was accepted"
        assert bad.error.code() == code
        assert message in bad.error.details() or __import__("re").search(message, bad.error.details())
        bad.channel.close()

        healthy.send(epoch(healthy_id, session, 2, 1), run_end(healthy_id, session, 3))
        healthy.finish()
        assert healthy.error is None
        assert healthy.acked() == 3
        runs = _rows(collector.store, s.runs, healthy_id)
        assert runs[0]["status"] == "completed" and runs[0]["epochs"] == 2


def test_nan_and_inf_losses_are_data_not_errors(db_url: str) -> None:
    store = Store(db_url)
    store.create_schema()
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    with store.begin() as conn:
        for m in (run_start(run_id), steps(run_id, session, 1, [0.5, math.nan, math.inf, -math.inf])):
            apply_message(conn, m, validate(m))
    with store.connect() as conn:
        rows = store.steps(conn, run_id)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["loss"] == 0.5 and math.isnan(rows[1]["loss"]) and rows[2]["loss"] == math.inf
    assert rows[3]["loss"] == -math.inf
    # A non-finite gradient norm survives the store too (diagnostics rebuilt from it must see it).
    from atlas_collector import _steps
    from atlas_proto.convert import step_record

    grads = steps(run_id, session, 2, [1.0, 1.0], first_step=5)
    grads.step_batch.samples[0].grad_norm = math.inf
    grads.step_batch.samples[1].grad_norm = 2.5
    with store.begin() as conn:
        apply_message(conn, grads, validate(grads))
    with store.connect() as conn:  # as the diagnostics driver reads them back after a restart
        rebuilt = {x.step: step_record(x, 0) for x in _steps.latest(conn, run_id, 0, 10)}
    assert math.isinf(rebuilt[5].grad_norm) and rebuilt[6].grad_norm == 2.5
    store.close()


def test_replayed_and_resent_messages_are_stored_once(db_url: str) -> None:
    store = Store(db_url)
    store.create_schema()
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    msgs = [run_start(run_id, session=session), steps(run_id, session, 1, [1.0, 0.9]), epoch(run_id, session, 2, 0),
            steps(run_id, session, 3, [0.8, 0.7], first_step=3), epoch(run_id, session, 4, 1),
            run_end(run_id, session, 5)]
    acks = []
    for _ in range(3):  # the original, a full replay (spool), and a replay after a reconnect
        with store.begin() as conn:
            acks.append([apply_message(conn, m, validate(m)).ack_seq for m in msgs])
    assert acks[0] == [0, 1, 2, 3, 4, 5]
    assert acks[1] == acks[2] == [5, 5, 5, 5, 5, 5]
    with store.connect() as conn:
        assert [r["step"] for r in store.steps(conn, run_id)] == [1, 2, 3, 4]
    assert [r["epoch"] for r in sorted(_rows(store, s.epochs, run_id), key=lambda r: r["epoch"])] == [0, 1]
    run = _rows(store, s.runs, run_id)[0]
    assert (run["status"], run["epochs"], run["steps"]) == ("completed", 2, 20)

    # A new session of the same run (a resumed trainer process) has its own sequence space.
    session2 = str(uuid.uuid4())
    with store.begin() as conn:
        outcome = apply_message(conn, epoch(run_id, session2, 1, 2), "epoch_summary")
    assert outcome.applied and outcome.ack_seq == 1
    assert len(_rows(store, s.epochs, run_id)) == 3
    store.close()


def test_rank_one_may_join_before_rank_zero(db_url: str) -> None:
    store = Store(db_url)
    store.create_schema()
    run_id = str(uuid.uuid4())
    with store.begin() as conn:
        apply_message(conn, run_start(run_id, name="from-rank-1", rank=1), "run_start")
        apply_message(conn, run_start(run_id, name="from-rank-0", rank=0), "run_start")
        apply_message(conn, run_start(run_id, name="again-rank-1", rank=1), "run_start")
    runs = _rows(store, s.runs, run_id)
    assert len(runs) == 1 and runs[0]["name"] == "from-rank-0"
    store.close()


def test_acked_sequences_survive_sigkill(tmp_path) -> None:
    import signal

    from conftest import start_collector_process

    db = f"sqlite:///{tmp_path / 'kill.db'}"
    proc = start_collector_process(db)
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    stream = Stream(proc.address)
    stream.send(run_start(run_id), *[steps(run_id, session, seq, [1.0] * 100, first_step=seq * 100)
                                     for seq in range(1, 41)])
    import time

    deadline = time.monotonic() + 20
    while stream.acked() < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.stop(signal.SIGKILL)
    acked = stream.acked()
    assert acked >= 20
    store = Store(db)
    with store.connect() as conn:
        cursor = conn.execute(sa.select(s.ingest_cursors.c.seq)).scalar_one()
        stored = _steps.count(conn)
    assert cursor >= acked
    assert stored == cursor * 100  # every committed message whole, none twice
    store.close()


# ------------------------------------------------------------------ acks never lie (issue 18), on both stores

def _wait_acked(stream: Stream, seq: int, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while stream.acked() < seq and stream.error is None and time.monotonic() < deadline:
        time.sleep(0.02)


def _stored_steps(store: Store, run_id: str) -> list[int]:
    with store.connect() as conn:
        return [r["step"] for r in store.steps(conn, run_id)]


def test_the_collector_never_acks_over_a_gap_and_stores_the_missing_sequence_later(db_url: str) -> None:
    with run_server(db=db_url) as collector:
        run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
        first = Stream(collector.address)
        first.send(run_start(run_id), steps(run_id, session, 1, [1.0], first_step=1))
        _wait_acked(first, 1)
        first.send(steps(run_id, session, 3, [3.0], first_step=3))  # seq 2 skipped
        first.thread.join(10)
        assert first.error is not None and first.error.code() == grpc.StatusCode.ABORTED
        assert "expected seq 2, got 3" in first.error.details()
        assert first.acked() == 1, "acked over a gap"
        first.channel.close()
        assert _stored_steps(collector.store, run_id) == [1]

        again = Stream(collector.address)  # the client resends from its last ack
        again.send(run_start(run_id), steps(run_id, session, 2, [2.0], first_step=2),
                   steps(run_id, session, 3, [3.0], first_step=3), run_end(run_id, session, 4))
        again.finish()
        assert again.error is None and again.acked() == 4
        assert _stored_steps(collector.store, run_id) == [1, 2, 3]


def test_a_declared_loss_is_recorded_and_passes_the_cursor(db_url: str) -> None:
    with run_server(db=db_url) as collector:
        run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
        lost = tpb.ClientMessage(run_id=run_id, session=session, seq=4,
                                 dropped=tpb.Dropped(first_seq=2, records=3, reason="spool full"))
        stream = Stream(collector.address)
        stream.send(run_start(run_id), steps(run_id, session, 1, [1.0]), lost,
                    steps(run_id, session, 5, [5.0], first_step=5), run_end(run_id, session, 6))
        stream.finish()
        assert stream.error is None and stream.acked() == 6
        assert _stored_steps(collector.store, run_id) == [1, 5]
        logs = _rows(collector.store, s.logs, run_id)
        assert [(r["level"], r["kind"]) for r in logs] == [("ERROR", "dropped")]
        assert "lost seq 2..4 of rank 0 (3 records)" in logs[0]["message"] and "spool full" in logs[0]["message"]


def _refused_cases(run_id: str, session: str) -> list[tpb.ClientMessage]:
    negative = epoch(run_id, session, 1, 0)
    negative.epoch_summary.duration_seconds = -3.0
    huge_step = steps(run_id, session, 2, [1.0])
    huge_step.step_batch.samples[0].step = 2**64 - 1
    huge_epoch = epoch(run_id, session, 3, 0)
    huge_epoch.epoch_summary.epoch = 2**32 - 1
    gpu = epoch(run_id, session, 4, 0)
    gpu.epoch_summary.gpus.add(index=0, utilization_percent=140.0)
    return [negative, huge_step, huge_epoch, gpu]


def test_a_refused_record_is_named_recorded_and_the_run_goes_on(db_url: str) -> None:
    """Values neither store can hold are refused alone, the field named; the rest of the run is stored."""
    with run_server(db=db_url) as collector:
        run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
        nul_log = tpb.ClientMessage(run_id=run_id, session=session, seq=6)
        nul_log.log_batch.records.add(level="WARNING", logger="x\x00y", message="bad\x00byte", kind="console")
        end = run_end(run_id, session, 7)
        end.run_end.status = tpb.RUN_STATUS_FAILED
        end.run_end.error_type = "RuntimeError"
        end.run_end.error_message = "boom\x00!"
        stream = Stream(collector.address)
        stream.send(run_start(run_id), *_refused_cases(run_id, session), steps(run_id, session, 5, [0.5]), nul_log,
                    end)
        stream.finish()
        assert stream.error is None, stream.error
        assert stream.acked() == 7
        refused = {m.ack.seq: m.ack.refused for m in stream.received if m.HasField("ack") and m.ack.refused}
        assert sorted(refused) == [1, 2, 3, 4]
        assert "duration_seconds must be a finite number >= 0, got -3" in refused[1]
        assert "samples[0].step = 18446744073709551615 is out of range" in refused[2]
        assert "EpochSummary.epoch = 4294967295 is out of range" in refused[3]
        assert "utilization_percent must be between 0 and 100, got 140" in refused[4]
        assert all(r.startswith("INVALID_ARGUMENT: ") for r in refused.values())

        run = _rows(collector.store, s.runs, run_id)[0]
        assert (run["status"], run["error_message"], run["epochs"]) == ("failed", "boom\ufffd!", 0)
        assert _stored_steps(collector.store, run_id) == [1]
        logs = _rows(collector.store, s.logs, run_id)
        assert sorted(r["kind"] for r in logs) == ["console", "refused", "refused", "refused", "refused"]
        console = next(r for r in logs if r["kind"] == "console")
        assert (console["logger"], console["message"]) == ("x\ufffdy", "bad\ufffdbyte")


def test_run_start_values_both_stores_hold_or_refuse_alike(db_url: str) -> None:
    with run_server(db=db_url) as collector:
        run_id = str(uuid.uuid4())
        long_tag = run_start(run_id)
        long_tag.run_start.tags.extend(["ok", "t" * 250])
        bad = Stream(collector.address)
        bad.send(long_tag)
        bad.thread.join(10)
        assert bad.error is not None and bad.error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "RunStart.tags[1] must be 1 to 200 characters, got 250" in bad.error.details()
        bad.channel.close()
        assert _rows(collector.store, s.runs, run_id) == []

        nan = run_start(run_id)
        nan.run_start.hyperparameters.update({"lr": 0.1, "momentum": float("nan"), "clip": float("inf")})
        nan.run_start.run_name = "name\x00with-nul"
        ok = Stream(collector.address)
        ok.send(nan)
        _wait_acked(ok, 0, timeout=0.5)
        ok.finish()
        assert ok.error is None
        run = _rows(collector.store, s.runs, run_id)[0]
        assert run["hyperparameters"] == {"lr": 0.1, "momentum": "NaN", "clip": "Infinity"}
        assert run["name"] == "name\ufffdwith-nul"


def test_a_run_start_for_an_existing_run_never_renames_or_rewrites_it(db_url: str) -> None:
    store = Store(db_url)
    store.create_schema()
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    first = run_start(run_id, name="original")
    first.run_start.hyperparameters.update({"lr": 0.1})
    first.run_start.tags.append("baseline")
    second = run_start(run_id, name="hijacked")
    second.run_start.hyperparameters.update({"lr": 99.0, "extra": 1})
    second.run_start.tags.append("other")
    with store.begin() as conn:
        apply_message(conn, first, "run_start")
        apply_message(conn, steps(run_id, session, 1, [1.0]), "step_batch")
        apply_message(conn, second, "run_start")
    run = _rows(store, s.runs, run_id)[0]
    assert run["name"] == "original"
    assert run["hyperparameters"] == {"lr": 0.1, "extra": 1}
    assert sorted(r["tag"] for r in _rows(store, s.run_tags, run_id)) == ["baseline", "other"]
    store.close()
