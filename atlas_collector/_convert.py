"""Conversions between protobuf messages and the store's plain values."""
from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from atlas_proto.v1 import telemetry_pb2 as tpb

STATUS_NAMES: dict[int, str] = {
    tpb.RUN_STATUS_RUNNING: "running",
    tpb.RUN_STATUS_PAUSED: "paused",
    tpb.RUN_STATUS_STOPPED: "stopped",
    tpb.RUN_STATUS_COMPLETED: "completed",
    tpb.RUN_STATUS_FAILED: "failed",
    tpb.RUN_STATUS_STALE: "stale",
}
STATUS_VALUES = {v: k for k, v in STATUS_NAMES.items()}
ENDED_STATUSES = frozenset({"stopped", "completed", "failed"})

FRAMEWORK_NAMES: dict[int, str] = {
    tpb.FRAMEWORK_LIGHTNING: "lightning",
    tpb.FRAMEWORK_ACCELERATE: "accelerate",
    tpb.FRAMEWORK_PYTORCH: "pytorch",
    tpb.FRAMEWORK_TRANSFORMERS: "transformers",
}
FRAMEWORK_VALUES = {v: k for k, v in FRAMEWORK_NAMES.items()}

ON_CRITICAL_NAMES: dict[int, str] = {
    tpb.ON_CRITICAL_UNSPECIFIED: "warn",
    tpb.ON_CRITICAL_WARN: "warn",
    tpb.ON_CRITICAL_PAUSE: "pause",
    tpb.ON_CRITICAL_STOP: "stop",
}
ON_CRITICAL_VALUES = {"warn": tpb.ON_CRITICAL_WARN, "pause": tpb.ON_CRITICAL_PAUSE, "stop": tpb.ON_CRITICAL_STOP}

COMMAND_NAMES: dict[int, str] = {
    tpb.COMMAND_KIND_PAUSE: "pause",
    tpb.COMMAND_KIND_RESUME: "resume",
    tpb.COMMAND_KIND_STOP: "stop",
}
COMMAND_VALUES = {v: k for k, v in COMMAND_NAMES.items()}


def ts_to_float(ts: timestamp_pb2.Timestamp) -> float | None:
    """Seconds since the epoch, or None for an unset (zero) timestamp."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.seconds + ts.nanos / 1e9


MAX_TIMESTAMP_S = 253402300799  # 9999-12-31T23:59:59Z, the end of protobuf Timestamp's range


def float_to_ts(value: float | None, out: timestamp_pb2.Timestamp | None = None) -> timestamp_pb2.Timestamp:
    """`value` seconds as a Timestamp; one outside 1970-9999 (a row an older collector let in) stays unset."""
    out = out if out is not None else timestamp_pb2.Timestamp()
    if value is not None and math.isfinite(value) and 0 <= value <= MAX_TIMESTAMP_S:
        seconds = math.floor(value)
        out.seconds = seconds
        out.nanos = int(round((value - seconds) * 1e9)) % 1_000_000_000
    return out


def iso(value: float | None) -> str | None:
    """ISO 8601 in UTC (`2026-11-22T14:50:00.123456Z`), or None."""
    if value is None or not (math.isfinite(value) and 0 <= value <= MAX_TIMESTAMP_S):
        return None
    return _dt.datetime.fromtimestamp(value, tz=_dt.timezone.utc).isoformat().replace("+00:00", "Z")


def struct_to_dict(s: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(s)


def dict_to_struct(d: dict[str, Any] | None, out: struct_pb2.Struct | None = None) -> struct_pb2.Struct:
    out = out if out is not None else struct_pb2.Struct()
    if d:
        out.update(jsonable(d))
    return out


def jsonable(value: Any) -> Any:
    """`value` with non-finite floats made strings ("nan", "inf") so JSON and Struct accept it."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def message_to_dict(msg: Any) -> dict[str, Any]:
    """The protobuf JSON form (field names as in the .proto), with NaN/Inf kept as "NaN"/"Infinity"."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def dict_to_message(d: dict[str, Any], msg: Any) -> Any:
    return json_format.ParseDict(d, msg, ignore_unknown_fields=True)


def opt(msg: Any, field: str) -> float | None:
    """The value of an `optional` scalar field, or None when unset."""
    return getattr(msg, field) if msg.HasField(field) else None


def finite_or_none(value: float | None) -> float | None:
    """Store NaN/Inf as NULL in columns that are averaged or plotted; the payload keeps the real value."""
    if value is None or not math.isfinite(value):
        return None
    return value


def struct_dict(msg: Any) -> dict[str, Any]:
    """A google.protobuf.Struct as a plain dict (numbers as floats)."""
    return json_format.MessageToDict(msg)
