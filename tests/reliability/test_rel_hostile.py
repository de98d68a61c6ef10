"""Reliability: hostile or broken clients against a real `atlas-collector` process. Each offender gets a clear
status; the collector stays up; a trainer running at the same time completes with everything stored.
(Wrong and missing tokens: tests/collector/test_coll_security.py.)"""
from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest

from atlas_callback import AtlasConfig, Observer
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import telemetry_pb2 as tpb
from conftest import CollectorProcess
from _query import Query
from _wait import wait_for

# flush_timeout_s: beside a flood the run's last acks may take longer than the default 10 s on a loaded machine; the
# test asks that it completes, and prints how long it took.
QUIET = AtlasConfig(track_carbon=False, track_layer_health=False, track_gpu=False, flush_timeout_s=60.0)
STREAM = "/atlas.v1.TelemetryService/Stream"


def _run_start(run_id: str) -> tpb.ClientMessage:
    msg = tpb.ClientMessage(run_id=run_id)
    msg.run_start.protocol_version = tpb.PROTOCOL_VERSION_1
    msg.run_start.project, msg.run_start.run_name = "hostile", "offender"
    msg.run_start.framework = tpb.FRAMEWORK_PYTORCH
    msg.run_start.world_size = 1
    msg.run_start.started_at.GetCurrentTime()
    return msg


def _steps(run_id: str, session: str, seq: int, n: int, first: int) -> tpb.ClientMessage:
    msg = tpb.ClientMessage(run_id=run_id, session=session, seq=seq)
    for i in range(n):
        msg.step_batch.samples.add(step=first + i, epoch=0, loss=1.0)
    return msg


def _send_raw(address: str, payloads: Iterator[bytes], timeout: float = 60.0) -> tuple[grpc.StatusCode, str, int]:
    """Bytes as they are, on the telemetry stream; the final status, its details and how many answers came."""
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 * 2**20)])
    call = channel.stream_stream(STREAM, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    answers = 0
    try:
        for _ in call(payloads, timeout=timeout):
            answers += 1
        return grpc.StatusCode.OK, "", answers
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", answers
    finally:
        channel.close()


class _Trainer(threading.Thread):
    """A well-behaved Observer run of 3 epochs alongside the offender."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address, self.run_id, self.error = address, "", None

    def run(self) -> None:
        try:
            with Observer(project="hostile", run_name="healthy", collector=self.address, config=QUIET) as obs:
                for _ in range(3):
                    for s in range(100):
                        obs.step(1.0 / (s + 1), batch_size=8)
                        time.sleep(0.002)
                    obs.flush(val_metrics={"val_loss": 0.5})
                self.run_id = obs.run_id
        except BaseException as exc:  # noqa: BLE001
            self.error = exc


def _healthy_run_completed(collector: CollectorProcess, trainer: _Trainer) -> None:
    trainer.join(120)
    assert not trainer.is_alive() and trainer.error is None
    assert collector.proc.poll() is None, "the collector went down"
    query = Query(collector.address)
    try:
        detail = query.run(trainer.run_id)
        assert (detail.summary.status, detail.summary.epochs, detail.summary.steps) == (
            tpb.RUN_STATUS_COMPLETED, 3, 300)
    finally:
        query.close()


def _garbage(run_id: str) -> list[bytes]:
    return [b"\xff\xfe\x00 not a protobuf at all \x07" * 3]


def _truncated(run_id: str) -> list[bytes]:
    whole = _run_start(run_id).SerializeToString()
    return [whole[: len(whole) // 2]]


def _garbage_after_good(run_id: str) -> list[bytes]:
    return [_run_start(run_id).SerializeToString(), os.urandom(7) + b"\xff\xff\xff\xff\x0f"]


@pytest.mark.parametrize("make", [_garbage, _truncated, _garbage_after_good],
                         ids=["garbage bytes", "truncated protobuf", "garbage after a good message"])
def test_undecodable_bytes_get_invalid_argument_and_the_collector_stays_up(
        collector_process: CollectorProcess, make: Callable[[str], list[bytes]]) -> None:
    trainer = _Trainer(collector_process.address)
    trainer.start()
    run_id = str(uuid.uuid4())
    code, details, _ = _send_raw(collector_process.address, iter(make(run_id)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not an atlas.v1.ClientMessage (protobuf decoding failed" in details
    _healthy_run_completed(collector_process, trainer)
    if make is _garbage_after_good:  # the message before the garbage was kept
        query = Query(collector_process.address)
        try:
            assert query.run(run_id).summary.name == "offender"
        finally:
            query.close()


def test_an_oversized_message_gets_resource_exhausted_and_the_collector_stays_up(
        collector_process: CollectorProcess) -> None:
    trainer = _Trainer(collector_process.address)
    trainer.start()
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    big = _steps(run_id, session, 1, 1_200_000, 1).SerializeToString()  # ~18 MB, over the 16 MB default
    code, details, _ = _send_raw(collector_process.address, iter([_run_start(run_id).SerializeToString(), big]))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details
    _healthy_run_completed(collector_process, trainer)


def test_a_flooding_client_is_slowed_down_and_the_others_go_on(collector_process: CollectorProcess) -> None:
    """One client sends 3,000 step batches of 500 samples as fast as gRPC lets it. It holds at most its share of
    the collector's queue, so a trainer beside it completes, and its own messages are all stored in the end: a
    flood is throttled (gRPC flow control), not refused, since `atlas sync` of a long run is a legitimate one."""
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    batches, per = 3000, 500
    messages = [_run_start(run_id).SerializeToString()]
    messages += [_steps(run_id, session, i + 1, per, i * per + 1).SerializeToString() for i in range(batches)]
    outcome: dict[str, object] = {}

    def flood() -> None:
        outcome["result"] = _send_raw(collector_process.address, iter(messages), timeout=300)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    watching = Query(collector_process.address)

    def flood_stored() -> bool:
        try:
            return watching.run(run_id).summary.steps > 0
        except grpc.RpcError:  # its RunStart is not stored yet
            return False

    try:
        wait_for(flood_stored, 60, "the flood's first stored steps")  # the flood is under way
    finally:
        watching.close()
    trainer = _Trainer(collector_process.address)
    started = time.monotonic()
    trainer.start()
    _healthy_run_completed(collector_process, trainer)
    healthy_s = time.monotonic() - started
    flooder.join(300)
    code, details, answers = outcome["result"]  # type: ignore[misc]
    assert code == grpc.StatusCode.OK, details
    assert answers >= 1  # acked (acks may be coalesced)
    query = Query(collector_process.address)
    try:
        assert query.run(run_id).summary.steps == batches * per
    finally:
        query.close()
    print(f"\nflood of {batches * per:,} samples; the healthy run beside it took {healthy_s:.1f} s")


@pytest.mark.parametrize("method", ["ListRuns", "GetRun", "ListIssues", "SendCommand"])
def test_undecodable_query_requests_get_invalid_argument_and_one_log_line(
        collector_process: CollectorProcess, method: str) -> None:
    channel = grpc.insecure_channel(collector_process.address)
    call = channel.unary_unary(f"/atlas.v1.QueryService/{method}", request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            call(b"\xff\xff\xff\xff garbage", timeout=10)
    finally:
        channel.close()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a valid atlas.v1.QueryService request (protobuf decoding failed" in caught.value.details()
    query = Query(collector_process.address)  # the collector still answers
    try:
        query.stub.ListRuns(qpb.ListRunsRequest(), timeout=10)
    finally:
        query.close()
