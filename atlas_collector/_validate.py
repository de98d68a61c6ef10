"""Stateless validation of client messages: what can be judged from one message alone.

Store-dependent checks (the run exists, the sequence is the next one) happen in the writer. NaN and Inf losses are
valid data.

Both stores must accept or refuse the same messages, so what only one of them could hold is settled here, the same
for both: text has its NUL characters replaced by U+FFFD (PostgreSQL text cannot hold NUL); a NaN or Inf inside a
Struct (hyperparameters) becomes the string "NaN"/"Infinity"/"-Infinity" (JSON has no such numbers); integers
must fit the store's signed columns (steps and sequences < 2^63, epochs and ranks < 2^31) and timestamps the
years 1970-9999; tags at most `MAX_TAG` characters. What cannot be made to fit is refused with the field named.

Two kinds of refusal: `InvalidMessage` for the envelope (run id, session, sequence) or a RunStart — the stream is
closed with INVALID_ARGUMENT, as nothing of it can be placed; `BodyInvalid` for the body of a sequenced message —
the writer records the refusal with the run and acks it (`Ack.refused`), so one bad record never wedges the rest of
the run."""
from __future__ import annotations

import math
import uuid
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from atlas_proto.v1 import telemetry_pb2 as tpb

from ._exceptions import InvalidMessage, ProtocolMismatch
from ._kinds import BODY_KINDS, UNSEQUENCED, Kind

PROTOCOL_VERSION = tpb.PROTOCOL_VERSION_1
MAX_NAME = 200
MAX_TAG = 200
MAX_TAGS = 256
MAX_GIT_COMMIT = 64
MAX_METRIC_KEY = 200
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
MAX_EPOCH = INT32_MAX - 1  # the store keeps epoch + 1 (epochs stored) in a signed 32-bit column
MAX_RANK = 65535
MAX_TIMESTAMP_S = 253402300799  # 9999-12-31T23:59:59Z, the end of protobuf Timestamp's range


class BodyInvalid(InvalidMessage):
    """The body of a sequenced message is refused; the writer records the refusal and acks it (`Ack.refused`)."""


def validate(msg: tpb.ClientMessage) -> Kind:
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
    kind = Kind.of(msg)
    if kind is None:
        raise InvalidMessage("ClientMessage has no body or an unknown kind: expected one of "
                             + ", ".join(BODY_KINDS))
    if msg.rank > MAX_RANK:
        raise InvalidMessage(f"ClientMessage.rank must be between 0 and {MAX_RANK}, got {msg.rank}")
    if kind not in UNSEQUENCED and not 1 <= msg.seq <= INT64_MAX:
        raise InvalidMessage(f"ClientMessage.seq must be >= 1 and below 2^63 for {kind} (run {msg.run_id}), "
                             f"got {msg.seq}")
    if kind not in UNSEQUENCED and not msg.session:
        raise InvalidMessage(f"ClientMessage.session is empty for {kind} (run {msg.run_id}): sequenced messages "
                             "must name their session (a UUID per trainer process)")
    if kind is Kind.DROPPED and not 1 <= msg.dropped.first_seq <= msg.seq:
        raise InvalidMessage(f"Dropped.first_seq must be between 1 and the message's seq ({msg.seq}), "
                             f"got {msg.dropped.first_seq}")
    body = getattr(msg, kind)
    try:
        _CHECKS[kind](body)
        if kind is not Kind.STEP_BATCH:  # a step batch is checked sample by sample in `_step_batch` (the hot path)
            _fit(body, type(body).__name__)
    except InvalidMessage as exc:
        if kind in UNSEQUENCED or isinstance(exc, ProtocolMismatch):
            raise
        raise BodyInvalid(str(exc)) from None
    return kind


# ------------------------------------------------------------------------------ what both stores can hold

_INT64_TYPES = frozenset({FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_FIXED64,
                          FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_SINT64})
_UINT32_TYPES = frozenset({FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32})
_NONFINITE_NAMES = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _text(value: str) -> str:
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _int(path: str, fd: FieldDescriptor, value: int) -> None:
    if fd.type in _INT64_TYPES:
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise InvalidMessage(f"{path} = {value} is out of range: at most 2^63-1")
    elif fd.type in _UINT32_TYPES:
        upper = MAX_EPOCH if fd.name.endswith("epoch") else INT32_MAX
        if value > upper:
            raise InvalidMessage(f"{path} = {value} is out of range: at most {upper}")


def _timestamp(path: str, ts: Any) -> None:
    if not (0 <= ts.seconds <= MAX_TIMESTAMP_S and 0 <= ts.nanos < 1_000_000_000):
        raise InvalidMessage(f"{path} = {ts.seconds} s is not a time between 1970 and 9999")


def _fit(m: Any, path: str) -> None:
    """Make `m` fit both stores in place (NUL in text, NaN in a Struct) or raise for what cannot fit."""
    name = m.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        _timestamp(path, m)
        return
    if name == "google.protobuf.Value" and m.WhichOneof("kind") == "number_value" \
            and not math.isfinite(m.number_value):
        m.string_value = _NONFINITE_NAMES.get(m.number_value, "NaN")
        return
    for fd, value in m.ListFields():
        where = f"{path}.{fd.name}"
        if fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            _fit_map(value, fd.message_type, where)
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            if fd.is_repeated:
                for i, item in enumerate(value):
                    _fit(item, f"{where}[{i}]")
            else:
                _fit(value, where)
        elif fd.type == FieldDescriptor.TYPE_STRING:
            if fd.is_repeated:
                for i, item in enumerate(value):
                    if "\x00" in item:
                        value[i] = _text(item)
            elif "\x00" in value:
                setattr(m, fd.name, _text(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if fd.is_repeated:
                for i, item in enumerate(value):
                    _int(f"{where}[{i}]", fd, item)
            else:
                _int(where, fd, value)


def _fit_map(mapping: Any, entry: Any, where: str) -> None:
    key_fd, value_fd = entry.fields_by_name["key"], entry.fields_by_name["value"]
    for key in list(mapping):
        at = f"{where}[{key!r}]"
        if isinstance(key, int):
            _int(at, key_fd, key)
        if value_fd.type == FieldDescriptor.TYPE_MESSAGE:
            _fit(mapping[key], at)
        elif value_fd.type == FieldDescriptor.TYPE_STRING:
            if "\x00" in mapping[key]:
                mapping[key] = _text(mapping[key])
        elif isinstance(mapping[key], int) and not isinstance(mapping[key], bool):
            _int(at, value_fd, mapping[key])
        if isinstance(key, str) and "\x00" in key:
            new = _text(key)
            if value_fd.type == FieldDescriptor.TYPE_MESSAGE:
                mapping[new].CopyFrom(mapping[key])
            else:
                mapping[new] = mapping[key]
            del mapping[key]


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
    if len(m.tags) > MAX_TAGS:
        raise InvalidMessage(f"RunStart.tags: at most {MAX_TAGS} tags, got {len(m.tags)}")
    for i, tag in enumerate(m.tags):
        if not tag or len(tag) > MAX_TAG:
            raise InvalidMessage(f"RunStart.tags[{i}] must be 1 to {MAX_TAG} characters, got {len(tag)} "
                                 f"({tag[:40]!r}{'...' if len(tag) > 40 else ''})")
    if len(m.git_commit) > MAX_GIT_COMMIT:
        raise InvalidMessage(f"RunStart.git_commit must be at most {MAX_GIT_COMMIT} characters, "
                             f"got {len(m.git_commit)}")
    _fit(m, "RunStart")


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
    # The samples are stored as the serialized batch (bytes on both stores); only the step range, the first and
    # last epochs and times become columns. So what must fit is those, and each sample's step (a range bound).
    isfinite = math.isfinite
    samples = m.samples
    for sample in samples:
        if sample.step > INT64_MAX:
            raise InvalidMessage(f"StepBatch.samples[{list(samples).index(sample)}].step = {sample.step} is out of "
                                 "range: at most 2^63-1")
        for field in ("step_time_s", "lr"):
            if sample.HasField(field):
                value = getattr(sample, field)
                if not (value >= 0 and isfinite(value)):
                    _nonneg(f"StepSample[{sample.step}].{field}", value)
    if samples:
        for i in {0, len(samples) - 1}:
            if samples[i].epoch > MAX_EPOCH:
                _int(f"StepBatch.samples[{i}].epoch", samples[i].DESCRIPTOR.fields_by_name["epoch"], samples[i].epoch)
            if samples[i].HasField("time"):
                _timestamp(f"StepBatch.samples[{i}].time", samples[i].time)


def _run_end(m: tpb.RunEnd) -> None:
    if m.status not in (tpb.RUN_STATUS_COMPLETED, tpb.RUN_STATUS_FAILED, tpb.RUN_STATUS_STOPPED):
        name = tpb.RunStatus.Name(m.status) if m.status in tpb.RunStatus.values() else f"unknown value {m.status}"
        raise InvalidMessage(f"RunEnd.status must be COMPLETED, FAILED or STOPPED, got {name}")


def _log_batch(m: tpb.LogBatch) -> None:
    for r in m.records:
        if r.level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise InvalidMessage(f"LogRecord.level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {r.level[:20]!r}")


def _command_ack(m: tpb.CommandAck) -> None:
    if not m.command_id:
        raise InvalidMessage("CommandAck.command_id is empty")


def _metric_batch(m: tpb.MetricBatch) -> None:
    for i, point in enumerate(m.points):
        for key in point.values:
            if not key or len(key) > MAX_METRIC_KEY:
                raise InvalidMessage(f"MetricBatch.points[{i}].values has a key of {len(key)} characters: a metric "
                                     f"name must have 1 to {MAX_METRIC_KEY} characters")


ALERT_LEVELS = ("info", "warning", "error")
MAX_ALERT_TITLE = 1000
MAX_ALERT_TEXT = 10_000


def _alert(m: tpb.Alert) -> None:
    if not m.title.strip():
        raise InvalidMessage("Alert.title is empty: an alert needs a title")
    if len(m.title) > MAX_ALERT_TITLE or len(m.text) > MAX_ALERT_TEXT:
        raise InvalidMessage(f"Alert.title must be at most {MAX_ALERT_TITLE} characters and Alert.text at most "
                             f"{MAX_ALERT_TEXT}, got {len(m.title)} and {len(m.text)}")
    if m.level and m.level not in ALERT_LEVELS:
        raise InvalidMessage(f"Alert.level must be one of {', '.join(ALERT_LEVELS)}, got {m.level[:20]!r}")


def _nothing(_m: object) -> None:
    return None


_CHECKS = {
    Kind.RUN_START: _run_start,
    Kind.MODEL_INFO: _nothing,
    Kind.STEP_BATCH: _step_batch,
    Kind.EPOCH_SUMMARY: _epoch_summary,
    Kind.LOG_BATCH: _log_batch,
    Kind.RUN_END: _run_end,
    Kind.HEARTBEAT: _nothing,
    Kind.COMMAND_ACK: _command_ack,
    Kind.DROPPED: _nothing,
    Kind.ALERT: _alert,
    Kind.METRIC_BATCH: _metric_batch,
}
