"""Helpers of the collector tests: a raw trainer stream over real gRPC, message builders, a query stub."""
from __future__ import annotations

import math
import queue
import threading
import time
import uuid
from typing import Any

import grpc
import sqlalchemy as sa

from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import query_pb2_grpc
from atlas_proto.v1 import telemetry_pb2 as tpb
from atlas_proto.v1 import telemetry_pb2_grpc

from _wait import wait_for  # noqa: F401 - re-exported to the collector tests


class Trainer:
    """One trainer process's stream of one run: builds sequenced messages, reads acks and commands."""

    def __init__(self, address: str, run_id: str | None = None, *, rank: int = 0,
                 channel: grpc.Channel | None = None, metadata: tuple[tuple[str, str], ...] | None = None) -> None:
        self.run_id = run_id or str(uuid.uuid4())
        self.session = str(uuid.uuid4())
        self.rank = rank
        self.seq = 0
        self.channel = channel or grpc.insecure_channel(address)
        self.outbox: queue.Queue[tpb.ClientMessage | None] = queue.Queue()
        stub = telemetry_pb2_grpc.TelemetryServiceStub(self.channel)
        self.call = stub.Stream(iter(self.outbox.get, None), metadata=metadata)
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

    def _msg(self, sequenced: bool = True) -> tpb.ClientMessage:
        if sequenced:
            self.seq += 1
        return tpb.ClientMessage(run_id=self.run_id, rank=self.rank, session=self.session,
                                 seq=self.seq if sequenced else 0)

    def start(self, *, project: str = "p", name: str = "r", on_critical: int = tpb.ON_CRITICAL_WARN,
              thresholds: dict[str, Any] | None = None, hyperparameters: dict[str, Any] | None = None,
              started_at: float | None = None, device: str = "cpu") -> "Trainer":
        m = self._msg(sequenced=False)
        rs = m.run_start
        rs.protocol_version = tpb.PROTOCOL_VERSION_1
        rs.project, rs.run_name, rs.framework, rs.world_size = project, name, tpb.FRAMEWORK_PYTORCH, 1
        rs.on_critical = on_critical
        rs.device.kind, rs.device.accelerator_available = device, device != "cpu"
        if thresholds:
            rs.thresholds.update(thresholds)
        if hyperparameters:
            rs.hyperparameters.update(hyperparameters)
        if started_at is None:
            rs.started_at.GetCurrentTime()
        else:
            rs.started_at.FromNanoseconds(int(started_at * 1e9))
        self.outbox.put(m)
        return self

    def steps(self, losses: list[float], *, epoch: int = 0, first_step: int = 1,
              grad_norm: float | None = None) -> int:
        m = self._msg()
        now = time.time()
        for i, loss in enumerate(losses):
            x = m.step_batch.samples.add(step=first_step + i, epoch=epoch, loss=loss, lr=0.01)
            if grad_norm is not None:
                x.grad_norm = grad_norm
            x.time.FromNanoseconds(int(now * 1e9))
        self.outbox.put(m)
        return m.seq

    def epoch(self, n: int, loss: float, *, val_loss: float | None = None, duration: float = 2.0,
              co2: float | None = None, **extra: Any) -> int:
        m = self._msg()
        e = m.epoch_summary
        e.epoch, e.duration_seconds, e.global_step = n, duration, (n + 1) * 10
        e.ended_at.GetCurrentTime()
        if not math.isnan(loss):
            e.loss.mean, e.loss.std, e.loss.min, e.loss.max = loss, loss * 0.05, loss * 0.9, loss * 1.1
        else:
            e.loss.mean = loss
        e.loss.count = 10
        if val_loss is not None:
            e.val_metrics["val_loss"] = val_loss
        e.throughput.samples_per_sec = 1000.0
        e.throughput.samples_processed = 640
        if co2 is not None:
            e.carbon.epoch_co2_kg = co2
            e.carbon.epoch_energy_kwh = co2 * 4
            e.carbon.cumulative_co2_kg = co2 * (n + 1)
            e.carbon.cumulative_energy_kwh = co2 * 4 * (n + 1)
            e.carbon.power_draw_watts = 50.0
        for key, value in extra.items():
            setattr(e, key, value)
        self.outbox.put(m)
        return m.seq

    def heartbeat(self, paused: bool = False) -> None:
        m = self._msg(sequenced=False)
        m.heartbeat.paused = paused
        m.heartbeat.time.GetCurrentTime()
        self.outbox.put(m)

    def ack_command(self, cmd: tpb.Command, step: int = 7) -> int:
        m = self._msg()
        m.command_ack.command_id, m.command_ack.kind, m.command_ack.step = cmd.command_id, cmd.kind, step
        m.command_ack.applied_at.GetCurrentTime()
        self.outbox.put(m)
        return m.seq

    def end(self, status: int = tpb.RUN_STATUS_COMPLETED) -> int:
        m = self._msg()
        m.run_end.status = status
        m.run_end.ended_at.GetCurrentTime()
        self.outbox.put(m)
        return m.seq

    def acked(self) -> int:
        return max((m.ack.seq for m in list(self.received) if m.HasField("ack") and m.ack.session == self.session),
                   default=0)

    def wait_acked(self, seq: int | None = None, timeout: float = 10.0) -> None:
        target = self.seq if seq is None else seq
        wait_for(lambda: self.acked() >= target or self.error, timeout, f"ack of seq {target}")
        assert self.error is None, self.error

    def commands(self) -> list[tpb.Command]:
        return [m.command for m in list(self.received) if m.HasField("command")]

    def wait_command(self, timeout: float = 10.0, count: int = 1) -> tpb.Command:
        wait_for(lambda: len(self.commands()) >= count, timeout, f"{count} command(s) on run {self.run_id}")
        return self.commands()[count - 1]

    def finish(self, timeout: float = 10.0) -> None:
        self.outbox.put(None)
        self.thread.join(timeout)
        self.channel.close()


def query(address: str, channel: grpc.Channel | None = None) -> query_pb2_grpc.QueryServiceStub:
    return query_pb2_grpc.QueryServiceStub(channel or grpc.insecure_channel(address))


def send(address: str, run: str, kind: int, reason: str = "", sender: str = "test") -> qpb.CommandResponse:
    return query(address).SendCommand(qpb.CommandRequest(run=run, kind=kind, reason=reason, sender=sender),
                                      timeout=10)


def rows(db_url_or_store: Any, table: sa.Table, **where: Any) -> list[dict[str, Any]]:
    from atlas_collector import Store

    store = db_url_or_store if isinstance(db_url_or_store, Store) else Store(db_url_or_store)
    q = sa.select(table)
    for key, value in where.items():
        q = q.where(table.c[key] == value)
    with store.connect() as conn:
        out = [dict(r._mapping) for r in conn.execute(q)]
    if store is not db_url_or_store:
        store.close()
    return out
