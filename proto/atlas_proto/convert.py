"""The one conversion layer: atlas.v1 messages <-> `atlas_diagnostics` records <-> the JSON users see.

The collector (diagnosis, queries, OTel export), the offline `atlas diagnose`, the CLI's JSON and the web UI all
convert through these functions, so a field is read one way everywhere. This module owns:

- the enum-name tables (run status, framework, on_critical, command kind);
- protobuf helpers (`opt`, timestamps, Struct <-> dict, message <-> protobuf JSON);
- telemetry messages to diagnostics records: `epoch_record` (EpochSummary), `step_record` (StepSample),
  `log_record` (LogRecord), `architecture` (ModelInfo), `run_info` and `thresholds` (a run's setting);
- the issue's field list `ISSUE_FIELDS` and the shapes an Issue takes from it: a store row (`issue_row`,
  `row_issue`), a `qpb.Issue` (`issue_message`) and the JSON of `atlas issues --json` (`issue_dict`);
- one flat view of an EpochSummary (`flat_epoch`), read by `epoch_row` (`atlas epochs`, scalars.csv) and by the
  OTel epoch span's attributes.

Units follow the records' docstrings: profiler times in microseconds (the wire carries milliseconds), step times in
seconds, percentages 0-100. A value the trainer did not measure stays None; nothing here invents one.
Depends only on protobuf, the generated atlas.v1 modules and atlas_diagnostics: no torch, no gRPC, no SQL, so the
CLI imports it cheaply."""
from __future__ import annotations

import datetime as _dt
import logging
import math
from dataclasses import replace
from typing import Any, Callable, Mapping

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from atlas_diagnostics import (
    Architecture,
    ArchLayer,
    ArchNode,
    CarbonRecord,
    CorrelationRecord,
    EpochRecord,
    GpuRecord,
    Issue,
    LayerHealthRecord,
    LayerTime,
    LogRecord,
    ProfilerOp,
    ProfilerRecord,
    RunInfo,
    StepRecord,
    Thresholds,
)
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import telemetry_pb2 as tpb

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ enum names

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

# ------------------------------------------------------------------------------------ protobuf helpers

MAX_TIMESTAMP_S = 253402300799  # 9999-12-31T23:59:59Z, the end of protobuf Timestamp's range


def opt(msg: Any, field: str) -> Any:
    """The value of an `optional` scalar field, or None when unset."""
    return getattr(msg, field) if msg.HasField(field) else None


def ts_to_float(ts: timestamp_pb2.Timestamp) -> float | None:
    """Seconds since the epoch, or None for an unset (zero) timestamp."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.seconds + ts.nanos / 1e9


def float_to_ts(value: float | None, out: timestamp_pb2.Timestamp | None = None) -> timestamp_pb2.Timestamp:
    """`value` seconds as a Timestamp; one outside 1970-9999 (a row an older collector let in) stays unset."""
    out = out if out is not None else timestamp_pb2.Timestamp()
    if value is not None and math.isfinite(value) and 0 <= value <= MAX_TIMESTAMP_S:
        seconds = math.floor(value)
        out.seconds = seconds
        out.nanos = int(round((value - seconds) * 1e9)) % 1_000_000_000
    return out


def iso(value: float | timestamp_pb2.Timestamp | None) -> str | None:
    """ISO 8601 in UTC (`2026-11-22T14:50:00.123456Z`) of seconds or a Timestamp; None when unset or when no date
    can show it (outside the years 1970-9999)."""
    if isinstance(value, timestamp_pb2.Timestamp):
        value = ts_to_float(value)
    if value is None or not (math.isfinite(value) and 0 <= value <= MAX_TIMESTAMP_S):
        return None
    return _dt.datetime.fromtimestamp(value, tz=_dt.timezone.utc).isoformat().replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """`value` with non-finite floats made strings ("nan", "inf") so JSON and Struct accept it."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def struct_dict(msg: struct_pb2.Struct) -> dict[str, Any]:
    """A google.protobuf.Struct as a plain dict (numbers as floats, lists as lists)."""
    return json_format.MessageToDict(msg)


def dict_to_struct(d: Mapping[str, Any] | None, out: struct_pb2.Struct | None = None) -> struct_pb2.Struct:
    out = out if out is not None else struct_pb2.Struct()
    if d:
        out.update(jsonable(dict(d)))
    return out


def message_to_dict(msg: Any) -> dict[str, Any]:
    """The protobuf JSON form (field names as in the .proto), with NaN/Inf kept as "NaN"/"Infinity"."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def dict_to_message(d: Mapping[str, Any], msg: Any) -> Any:
    """The inverse of `message_to_dict`, into `msg`; fields this version does not know are skipped."""
    return json_format.ParseDict(d, msg, ignore_unknown_fields=True)


# ---------------------------------------------------------------------------- JSON for people (the CLI)

def clean_number(value: Any) -> Any:
    """JSON has no NaN/Inf: they print as null (text output shows the value). Whole floats print as integers."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, dict):
        return {k: clean_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_number(v) for v in value]
    return value


def ordered(value: Any) -> Any:
    """`value` with every mapping's keys sorted, at every depth. A protobuf Struct or map comes back in an order
    that depends on its key set, so two runs' final metrics, trends or attributes would print in different
    orders; sorted, the same field always stands in the same place."""
    if isinstance(value, dict):
        return {k: ordered(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


def numbers(d: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level string values that are numbers ("NaN", "0.5": how `jsonable` wrote them) as floats again."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        out[key] = value
    return out


def struct_json(msg: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as the CLI prints it: keys sorted, numbers as numbers, NaN/Inf as null."""
    return ordered(clean_number(numbers(struct_dict(msg))))


# ------------------------------------------------------------------------ messages -> diagnostics records

def _pos(value: float) -> float | None:
    """Zero means "not measured" for the proto3 scalars that have no presence (times, energies)."""
    return float(value) if value else None


def epoch_record(m: tpb.EpochSummary, rank: int = 0, *, ended_at: float | None = None) -> EpochRecord:
    """An EpochSummary as an `EpochRecord`. `ended_at`: when the epoch ended if the message does not say (the
    collector passes the time it received it)."""
    t, mem, sysm = m.throughput, m.memory, m.system
    profiler = None
    if m.HasField("profiler"):
        p = m.profiler
        profiler = ProfilerRecord(
            top_ops=tuple(ProfilerOp(name=o.name, cpu_time_us=o.cpu_time_ms * 1000.0,
                                     cuda_time_us=_pos(o.cuda_time_ms * 1000.0), count=int(o.calls))
                          for o in p.top_ops),
            per_layer=tuple(LayerTime(name=x.name, pct_total=x.pct_total) for x in p.per_layer),
            total_cpu_time_us=_pos(p.total_cpu_time_ms * 1000.0),
            total_cuda_time_us=_pos(p.total_cuda_time_ms * 1000.0),
            total_fwd_us=_pos(p.forward_ms * 1000.0),
            total_bwd_us=_pos(p.backward_ms * 1000.0),
        )
    layers = {
        x.name: LayerHealthRecord(
            activation_mean=opt(x, "activation_mean"), activation_std=opt(x, "activation_std"),
            activation_var_of_means=opt(x, "activation_var_of_means"), zero_fraction=opt(x, "zero_fraction"),
            saturated_fraction=opt(x, "saturated_fraction"), gradient_norm_mean=opt(x, "gradient_norm_mean"),
            weight_sparsity=opt(x, "weight_sparsity"), update_ratio=opt(x, "update_ratio"),
            update_ratio_max=opt(x, "update_ratio_max"), samples=int(x.samples) or None,
        )
        for x in m.layer_health.layers
    }
    carbon = None
    if m.HasField("carbon"):
        c = m.carbon
        carbon = CarbonRecord(
            epoch_co2_kg=c.epoch_co2_kg, epoch_energy_kwh=c.epoch_energy_kwh,
            power_draw_watts=_pos(c.power_draw_watts), cumulative_co2_kg=c.cumulative_co2_kg,
            cumulative_energy_kwh=c.cumulative_energy_kwh,
            carbon_intensity_g_per_kwh=opt(c, "carbon_intensity_g_per_kwh"),
            cpu_energy_kwh=opt(c, "epoch_cpu_energy_kwh"), gpu_energy_kwh=opt(c, "epoch_gpu_energy_kwh"),
        )
    has_logs = m.HasField("log_counts")
    end = ts_to_float(m.ended_at)
    return EpochRecord(
        epoch=m.epoch, rank=int(rank),
        duration_seconds=_pos(m.duration_seconds),
        end_time=end if end is not None else ended_at,
        train_mean=opt(m.loss, "mean"), train_std=opt(m.loss, "std"), train_min=opt(m.loss, "min"),
        train_max=opt(m.loss, "max"), count=int(m.loss.count) or None,
        val=dict(m.val_metrics),
        samples_per_sec=opt(t, "samples_per_sec"), batches_per_sec=opt(t, "batches_per_sec"),
        tokens_per_sec=opt(t, "tokens_per_sec"), samples_processed=int(t.samples_processed) or None,
        step_time_p50=opt(t, "step_time_p50_s"), step_time_p95=opt(t, "step_time_p95_s"),
        step_time_max=opt(t, "step_time_max_s"),
        process_rss_mb=opt(mem, "process_rss_mb"), cuda_allocated_mb=opt(mem, "cuda_allocated_mb"),
        cuda_reserved_mb=opt(mem, "cuda_reserved_mb"), cuda_peak_allocated_mb=opt(mem, "cuda_peak_allocated_mb"),
        cpu_percent=opt(sysm, "cpu_percent"), ram_percent=opt(sysm, "ram_percent"),
        gpus=tuple(GpuRecord(index=g.index, utilization_percent=opt(g, "utilization_percent"),
                             memory_used_mb=opt(g, "memory_used_mb"), memory_total_mb=opt(g, "memory_total_mb"),
                             power_watts=opt(g, "power_watts"), temperature_c=opt(g, "temperature_c"))
                   for g in m.gpus),
        lr=tuple(m.lr), grad_norm=opt(m, "grad_norm"), grad_norm_max=opt(m, "grad_norm_max"),
        facts=struct_dict(m.facts) if m.HasField("facts") else {},
        amp_skipped_steps=int(m.amp_skipped_steps), grad_accumulation=max(1, int(m.grad_accumulation)),
        profiler=profiler, layers=layers,
        correlations=tuple(CorrelationRecord(layer_a=x.layer_a, layer_b=x.layer_b, correlation=x.correlation)
                           for x in m.layer_health.correlations),
        carbon=carbon,
        log_console_count=int(m.log_counts.console) if has_logs else None,
        log_error_count=int(m.log_counts.error) if has_logs else None,
    )


def step_record(x: tpb.StepSample, rank: int = 0) -> StepRecord:
    """A StepSample as a `StepRecord` (NaN and Inf losses and gradient norms are data, kept as they are)."""
    return StepRecord(step=int(x.step), epoch=int(x.epoch), rank=int(rank), loss=opt(x, "loss"), lr=opt(x, "lr"),
                      grad_norm=opt(x, "grad_norm"), time=ts_to_float(x.time), amp_skipped=bool(x.amp_skipped))


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_KIND_LEVELS = {"error": "ERROR", "warning": "WARNING"}


def log_record(x: tpb.LogRecord, rank: int = 0) -> LogRecord:
    """A LogRecord message as a `LogRecord`. The collector refuses other levels; an exported file may hold one,
    which then follows the record's kind (an `error` line stays an error)."""
    level = (x.level or "INFO").upper()
    if level not in _LEVELS:
        level = _KIND_LEVELS.get(x.kind, "INFO")
    return LogRecord(level=level, message=x.message, epoch=int(x.epoch), time=ts_to_float(x.time), rank=int(rank))


_NODE_INTS = ("in_features", "out_features", "in_channels", "out_channels", "num_embeddings", "embedding_dim",
              "embed_dim", "num_heads", "input_size", "hidden_size", "num_layers")
_NODE_TUPLES = ("kernel_size", "stride", "padding")
_NODE_FLAGS = ("bidirectional", "batch_first")


def _whole(value: Any) -> int | None:
    """A whole number (a Struct holds every number as a float) as an int; anything else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else None


def _node_attributes(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A layer's attributes as `ArchNode` fields. A value of the wrong shape is left out, never fatal: a trainer's
    odd module must not stop the diagnosis."""
    attrs: dict[str, Any] = {}
    for key in _NODE_INTS:
        if _whole(raw.get(key)) is not None:
            attrs[key] = _whole(raw[key])
    for key in _NODE_TUPLES:  # torch reports kernel_size=3 or (3, 3): a tuple either way
        value = raw.get(key)
        items = value if isinstance(value, list) else [value]
        ints = [_whole(v) for v in items]
        if value is not None and all(v is not None for v in ints):
            attrs[key] = tuple(ints)
    for key in _NODE_FLAGS:
        if isinstance(raw.get(key), bool):
            attrs[key] = raw[key]
    p = raw.get("p")  # Dropout's probability
    if isinstance(p, (int, float)) and not isinstance(p, bool):
        attrs["p"] = float(p)
    return attrs


def architecture(m: tpb.ModelInfo) -> Architecture | None:
    """A ModelInfo as an `Architecture` (layers, graph nodes with their attributes, path, input shape); None when
    it holds nothing a check reads (no layers, no parameter count)."""
    if not m.layers and not m.total_parameters:
        return None
    layers, nodes = [], []
    traced = {stage.layer: tuple(int(v) for v in stage.input_shape) for stage in m.dimension_flow
              if all(v >= 0 for v in stage.input_shape)}
    for x in m.layers:
        layers.append(ArchLayer(name=x.name, type=x.type, parameters=int(x.parameters),
                                pct_of_total=x.pct_of_total or None))
        raw = struct_dict(x.attributes) if x.HasField("attributes") else {}
        nodes.append(ArchNode(id=x.name, type=x.type, parameters=int(x.parameters), input_shape=traced.get(x.name, ()),
                              **_node_attributes(raw)))
    input_shape: tuple[int, ...] = ()
    if m.dimension_flow and len(m.dimension_flow[0].input_shape) > 1:  # (batch, *one sample)
        input_shape = tuple(int(v) for v in m.dimension_flow[0].input_shape[1:])
    return Architecture(total_parameters=int(m.total_parameters) or None, layers=tuple(layers), nodes=tuple(nodes),
                        sequential_path=tuple(m.sequential_path), input_shape=input_shape)


def run_info(run: Mapping[str, Any]) -> RunInfo:
    """The run's setting (device, whether the CPU was its only option, world size, framework) from the run as the
    store holds it or as `atlas runs show --json` prints it (the same keys)."""
    device = run.get("device") or {}
    kind = str(device.get("kind") or "cpu").lower()
    kind = kind if kind in ("cpu", "cuda", "mps") else "cpu"
    accelerator = device.get("accelerator_available") if device else None
    return RunInfo(device=kind, cpu_only_by_choice=kind == "cpu" and not accelerator,
                   world_size=max(1, int(run.get("world_size") or 1)), framework=run.get("framework"),
                   cuda_available=bool(accelerator) if device else None)


def thresholds(overrides: Mapping[str, Any] | None, base: Thresholds | None = None) -> Thresholds:
    """`base` (default: the defaults) with the run's RunStart threshold overrides. A protobuf Struct holds numbers
    as floats, so an integer threshold sent as 3.0 is read as 3. A bad override raises `DiagnosticsError`."""
    base = base if base is not None else Thresholds()
    if not overrides:
        return base
    ints = {name for name, value in base.to_dict().items() if isinstance(value, int) and not isinstance(value, bool)}
    fixed = {k: int(v) if k in ints and isinstance(v, float) and v.is_integer() else v for k, v in overrides.items()}
    return Thresholds.from_mapping(fixed, base=base)


# ---------------------------------------------------------------------------------------------- issues
# One list of an issue's fields, in the order of `atlas issues --json` (ARCHITECTURE.md), each with the kind that
# says how every shape holds it:
#   kind      Issue attribute         store row (`issues`)     qpb.Issue                    JSON
#   run       (not one: given)        run_id                   run                          str
#   text      str                     same                     string                       str
#   count     int | None              same                     optional uint                int | null
#   name      str | None              same                     string, "" for None          str | null
#   value     float | int | str|None  JSON ("NaN" for NaN)     metric_value | metric_text   number | str | null
#   object    mapping                 JSON                     Struct                       object (sorted keys)
#   flag      bool                    same                     bool                         bool
#   rank      int | None              not stored (ranked)      uint, 0 for None             int | null
#   names     tuple[str, ...]         not stored (ranked)      repeated string              list
#   insight   (not one: alerts')      insight (alerts write)   string, "" for None          str | null

ISSUE_FIELDS: tuple[tuple[str, str], ...] = (
    ("run", "run"), ("check", "text"), ("severity", "text"), ("category", "text"), ("title", "text"),
    ("description", "text"), ("epoch", "count"), ("step", "count"), ("layer", "name"), ("metric_key", "name"),
    ("metric_value", "value"), ("thresholds", "object"), ("suggestion", "text"), ("first_seen_epoch", "count"),
    ("last_seen_epoch", "count"), ("active", "flag"), ("rank", "rank"), ("explains", "names"),
    ("evidence", "object"), ("insight", "insight"),
)
_STORED_KINDS = frozenset({"text", "count", "name", "value", "object", "flag"})
_COLUMN = {"run": "run_id", "check": "check_id"}  # where a column's name is not the field's


def issue_key(issue: Issue) -> str:
    """The issue's identity within its check, as the store's `key` column holds it."""
    return (issue.key or "")[:300]


def issue_row(run_id: str, issue: Issue, now: float) -> dict[str, Any]:
    """The `issues` row of `issue` (its JSON-safe values: NaN as "NaN"), `updated_at` = now."""
    d = issue.to_dict()
    row = {_COLUMN.get(name, name): d[name] for name, kind in ISSUE_FIELDS if kind in _STORED_KINDS}
    row.update(run_id=run_id, key=issue_key(issue), updated_at=now)
    return row


def row_issue(row: Mapping[str, Any]) -> Issue:
    """A stored issue (`issue_row`) as an `Issue`, its key included."""
    data = {name: row[_COLUMN.get(name, name)] for name, kind in ISSUE_FIELDS if kind in _STORED_KINDS}
    data["active"] = bool(data["active"])
    return replace(Issue.from_dict(data), key=row["key"] or None)


def _set_plain(out: Any, name: str, value: Any) -> None:
    setattr(out, name, value)


def _set_count(out: Any, name: str, value: Any) -> None:
    if value is not None:
        setattr(out, name, value)


def _set_name(out: Any, name: str, value: Any) -> None:
    setattr(out, name, value or "")


def _set_value(out: Any, name: str, value: Any) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        out.metric_value = float(value)
    elif value is not None:
        out.metric_text = str(value)


def _set_object(out: Any, name: str, value: Any) -> None:
    dict_to_struct(dict(value), getattr(out, name))


def _set_names(out: Any, name: str, value: Any) -> None:
    getattr(out, name).extend(value)


_TO_MESSAGE: dict[str, Callable[[Any, str, Any], None]] = {
    "text": _set_plain, "count": _set_count, "name": _set_name, "value": _set_value, "object": _set_object,
    "flag": _set_plain, "rank": lambda out, name, value: setattr(out, name, value or 0), "names": _set_names,
}


def issue_message(run_id: str, issue: Issue, out: qpb.Issue | None = None, *, insight: str | None = None) -> qpb.Issue:
    """`issue` as a `qpb.Issue` (into `out` when given). `insight`: the explanation the alerts wrote, if any."""
    out = out if out is not None else qpb.Issue()
    out.run, out.insight = run_id, insight or ""
    for name, kind in ISSUE_FIELDS:
        if kind in _TO_MESSAGE:
            _TO_MESSAGE[kind](out, name, getattr(issue, name))
    return out


def _json_value(msg: qpb.Issue) -> Any:
    if msg.HasField("metric_value"):
        return clean_number(msg.metric_value)
    return msg.metric_text or None


_TO_JSON: dict[str, Callable[[qpb.Issue, str], Any]] = {
    "run": getattr, "text": getattr, "flag": getattr,
    "count": opt,
    "name": lambda msg, name: getattr(msg, name) or None,
    "insight": lambda msg, name: getattr(msg, name) or None,
    "rank": lambda msg, name: getattr(msg, name) or None,
    "value": lambda msg, name: _json_value(msg),
    "object": lambda msg, name: struct_json(getattr(msg, name)),
    "names": lambda msg, name: list(getattr(msg, name)),
}


def issue_dict(msg: qpb.Issue) -> dict[str, Any]:
    """An issue as `atlas issues --json` prints it (ARCHITECTURE.md): every field of `ISSUE_FIELDS`, null when
    absent."""
    return {name: _TO_JSON[kind](msg, name) for name, kind in ISSUE_FIELDS}


# ------------------------------------------------------------------------------------- the flat epoch

_FLAT_SECTIONS = ("loss", "throughput", "memory", "system", "carbon")


def _scalar(msg: Any, fd: Any) -> Any:
    """A scalar field's value, None when unset: an `optional` field not set, or a field without presence at its
    zero value (proto3 cannot tell zero from unset there)."""
    if fd.has_presence:
        return getattr(msg, fd.name) if msg.HasField(fd.name) else None
    return getattr(msg, fd.name) or None


def flat_epoch(m: tpb.EpochSummary) -> dict[str, Any]:
    """One EpochSummary as one flat dict, the single flattening its tabular views read (`epoch_row`, the OTel
    epoch span). Keys: `epoch`, `global_step`, `duration_seconds`, `started_at`/`ended_at` (seconds),
    `grad_norm`, `grad_norm_max`; `<section>.<field>` for every scalar of loss, throughput, memory, system and
    carbon (`loss.mean`, `carbon.cumulative_co2_kg`); `val.<metric>` and `train.<metric>` (sorted); `lr` (one per
    param group) and `gpus` (one dict of scalars per GPU) as lists. A value not measured is None."""
    out: dict[str, Any] = {
        "epoch": m.epoch, "global_step": m.global_step or None, "duration_seconds": m.duration_seconds or None,
        "started_at": ts_to_float(m.started_at), "ended_at": ts_to_float(m.ended_at),
        "grad_norm": opt(m, "grad_norm"), "grad_norm_max": opt(m, "grad_norm_max"),
    }
    for section in _FLAT_SECTIONS:
        sub = getattr(m, section)
        for fd in sub.DESCRIPTOR.fields:
            out[f"{section}.{fd.name}"] = _scalar(sub, fd)
    out.update((f"val.{k}", v) for k, v in sorted(m.val_metrics.items()))
    out.update((f"train.{k}", v) for k, v in sorted(m.train_metrics.items()))
    out["lr"] = list(m.lr)
    out["gpus"] = [{fd.name: _scalar(g, fd) for fd in g.DESCRIPTOR.fields} for g in m.gpus]
    return out


# `atlas epochs` / scalars.csv column -> flat_epoch key, in column order (the val and train metrics go after the
# loss columns; the first GPU's and the first param group's values stand for all)
_ROW_HEAD = (("loss_mean", "loss.mean"), ("loss_std", "loss.std"), ("loss_min", "loss.min"), ("loss_max", "loss.max"))
_ROW_TAIL = (
    ("samples_per_sec", "throughput.samples_per_sec"), ("batches_per_sec", "throughput.batches_per_sec"),
    ("tokens_per_sec", "throughput.tokens_per_sec"), ("step_time_p50_s", "throughput.step_time_p50_s"),
    ("step_time_p95_s", "throughput.step_time_p95_s"),
)
_ROW_MEMORY = (("process_rss_mb", "memory.process_rss_mb"), ("cuda_allocated_mb", "memory.cuda_allocated_mb"),
               ("cpu_percent", "system.cpu_percent"))
_ROW_GPU = (("gpu_utilization_percent", "utilization_percent"), ("gpu_memory_used_mb", "memory_used_mb"),
            ("gpu_power_watts", "power_watts"))
_ROW_CARBON = ("epoch_co2_kg", "cumulative_co2_kg", "cumulative_energy_kwh")


def epoch_row(summary: tpb.EpochSummary, rank: int = 0) -> dict[str, Any]:
    """One epoch as a row of `atlas epochs` and scalars.csv (`flat_epoch`'s values under the column names).
    Counts and the duration are 0 when not sent; carbon columns are null without a carbon report, 0 within one."""
    f = flat_epoch(summary)
    row: dict[str, Any] = {
        "epoch": f["epoch"], "rank": rank, "started_at": iso(f["started_at"]), "ended_at": iso(f["ended_at"]),
        "duration_seconds": f["duration_seconds"] or 0.0, "global_step": f["global_step"] or 0,
    }
    row.update((col, f[key]) for col, key in _ROW_HEAD)
    row["loss_count"] = f["loss.count"] or 0
    row["loss_nonfinite"] = f["loss.nonfinite_count"] or 0
    row.update((k.removeprefix("val."), v) for k, v in f.items() if k.startswith("val."))
    for key, value in f.items():  # a train metric never hides a val metric (or a column) of the same name
        if key.startswith("train."):
            row.setdefault(key.removeprefix("train."), value)
    row.update((col, f[key]) for col, key in _ROW_TAIL)
    row["lr"] = f["lr"][0] if f["lr"] else None
    row["grad_norm"] = f["grad_norm"]
    row.update((col, f[key]) for col, key in _ROW_MEMORY)
    gpu = f["gpus"][0] if f["gpus"] else {}
    row.update((col, gpu.get(key)) for col, key in _ROW_GPU)
    has_carbon = summary.HasField("carbon")
    row.update((key, (f[f"carbon.{key}"] or 0.0) if has_carbon else None) for key in _ROW_CARBON)
    return row
