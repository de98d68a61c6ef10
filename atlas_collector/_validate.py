"""Stateless validation of client messages: what can be judged from one message alone.

Store-dependent checks (the run exists) happen in the writer. NaN and Inf losses are valid data."""
from __future__ import annotations

import math
import uuid

from atlas_proto.v1 import telemetry_pb2 as tpb

from ._exceptions import InvalidMessage, ProtocolMismatch

PROTOCOL_VERSION = tpb.PROTOCOL_VERSION_1
UNSEQUENCED = frozenset({"run_start", "heartbeat"})
MAX_NAME = 200


def validate(msg: tpb.ClientMessage) -> str:
    """Raise `InvalidMessage`/`ProtocolMismatch` for a malformed message; return its kind."""
    if not msg.run_id:
        raise InvalidMessage("ClientMessage.run_id is empty: every message must name its run (a UUID)")
    try:
        uuid.UUID(msg.run_id)
    except ValueError:
        raise InvalidMessage(f"ClientMessage.run_id must be a UUID, got {msg.run_id[:64]!r}") from None
    if msg.session:
        try:
            uuid.UUID(msg.session)
        except ValueError:
            raise InvalidMessage(f"ClientMessage.session must be a UUID, got {msg.session[:64]!r}") from None
    kind = msg.WhichOneof("body")
    if kind is None:
        raise InvalidMessage(
            "ClientMessage has no body or an unknown kind: expected one of run_start, model_info, step_batch, "
            "epoch_summary, log_batch, run_end, heartbeat, command_ack"
        )
    if kind not in UNSEQUENCED and msg.seq == 0:
        raise InvalidMessage(f"ClientMessage.seq must be >= 1 for {kind} (run {msg.run_id})")
    if kind not in UNSEQUENCED and not msg.session:
        raise InvalidMessage(f"ClientMessage.session is empty for {kind} (run {msg.run_id}): sequenced messages "
                             "must name their session (a UUID per trainer process)")
    _CHECKS[kind](getattr(msg, kind))
    return kind


def _run_start(m: tpb.RunStart) -> None:
    if m.protocol_version != PROTOCOL_VERSION:
        raise ProtocolMismatch(
            f"client speaks Atlas protocol {m.protocol_version}, this collector serves protocol {PROTOCOL_VERSION}; "
            "upgrade the older side"
        )
    if len(m.project) > MAX_NAME or len(m.run_name) > MAX_NAME:
        raise InvalidMessage(f"RunStart.project and run_name must be at most {MAX_NAME} characters")
    if m.world_size > 65536:
        raise InvalidMessage(f"RunStart.world_size must be between 0 and 65536, got {m.world_size}")
    if m.pause_timeout_s < 0 or not math.isfinite(m.pause_timeout_s):
        raise InvalidMessage(f"RunStart.pause_timeout_s must be a finite number >= 0, got {m.pause_timeout_s}")


def _nonneg(name: str, value: float | None) -> None:
    if value is not None and not (value >= 0 and math.isfinite(value)):
        raise InvalidMessage(f"{name} must be a finite number >= 0, got {value}")


def _percent(name: str, value: float | None, upper: float = 100.0) -> None:
    if value is not None and not (0.0 <= value <= upper):
        raise InvalidMessage(f"{name} must be between 0 and {upper:g}, got {value}")


def _opt(msg: object, field: str) -> float | None:
    return getattr(msg, field) if msg.HasField(field) else None  # type: ignore[attr-defined]


def _epoch_summary(m: tpb.EpochSummary) -> None:
    _nonneg("EpochSummary.duration_seconds", m.duration_seconds)
    t = m.throughput
    for f in ("samples_per_sec", "batches_per_sec", "tokens_per_sec", "step_time_p50_s", "step_time_p95_s",
              "step_time_max_s"):
        _nonneg(f"EpochSummary.throughput.{f}", _opt(t, f))
    for f in ("process_rss_mb", "cuda_allocated_mb", "cuda_reserved_mb", "cuda_peak_allocated_mb"):
        _nonneg(f"EpochSummary.memory.{f}", _opt(m.memory, f))
    # psutil's process cpu_percent sums cores, so it may exceed 100 on a multi-core box.
    _nonneg("EpochSummary.system.cpu_percent", _opt(m.system, "cpu_percent"))
    _percent("EpochSummary.system.ram_percent", _opt(m.system, "ram_percent"))
    for g in m.gpus:
        _percent(f"EpochSummary.gpus[{g.index}].utilization_percent", _opt(g, "utilization_percent"))
        _nonneg(f"EpochSummary.gpus[{g.index}].power_watts", _opt(g, "power_watts"))
        _nonneg(f"EpochSummary.gpus[{g.index}].memory_used_mb", _opt(g, "memory_used_mb"))
    for layer in m.layer_health.layers:
        for f in ("zero_fraction", "saturated_fraction", "weight_sparsity"):
            _percent(f"EpochSummary.layer_health[{layer.name}].{f}", _opt(layer, f), 1.0)
    c = m.carbon
    for f in ("epoch_co2_kg", "epoch_energy_kwh", "power_draw_watts", "cumulative_co2_kg", "cumulative_energy_kwh"):
        _nonneg(f"EpochSummary.carbon.{f}", getattr(c, f))
    for f in ("epoch_cpu_energy_kwh", "epoch_gpu_energy_kwh", "epoch_ram_energy_kwh"):
        _nonneg(f"EpochSummary.carbon.{f}", _opt(c, f))


def _step_batch(m: tpb.StepBatch) -> None:
    # Per sample on the ingest hot path: test first, build the message only for a bad value.
    isfinite = math.isfinite
    for sample in m.samples:
        for field in ("step_time_s", "lr"):
            if sample.HasField(field):
                value = getattr(sample, field)
                if not (value >= 0 and isfinite(value)):
                    _nonneg(f"StepSample[{sample.step}].{field}", value)


def _run_end(m: tpb.RunEnd) -> None:
    if m.status not in (tpb.RUN_STATUS_COMPLETED, tpb.RUN_STATUS_FAILED, tpb.RUN_STATUS_STOPPED):
        raise InvalidMessage(f"RunEnd.status must be COMPLETED, FAILED or STOPPED, got {tpb.RunStatus.Name(m.status)}")


def _log_batch(m: tpb.LogBatch) -> None:
    for r in m.records:
        if r.level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise InvalidMessage(f"LogRecord.level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {r.level[:20]!r}")


def _command_ack(m: tpb.CommandAck) -> None:
    if not m.command_id:
        raise InvalidMessage("CommandAck.command_id is empty")


def _nothing(_m: object) -> None:
    return None


_CHECKS = {
    "run_start": _run_start,
    "model_info": _nothing,
    "step_batch": _step_batch,
    "epoch_summary": _epoch_summary,
    "log_batch": _log_batch,
    "run_end": _run_end,
    "heartbeat": _nothing,
    "command_ack": _command_ack,
}
