"""Spans of a run, built from what the store holds (pure functions over a connection).

One trace per run. The trace id is the run id's 128 bits when the id is a UUID (so a run id, dashes removed,
opens its trace in any backend), else the first 16 bytes of SHA-256 over the id. Span ids are the first
8 bytes of SHA-256 over `run id + ":run"` (the root) and `run id + ":epoch:N"` (epoch N). Building the same
run twice, in any process, gives the same ids and the same content: that is what makes a collector restart,
a stream that moved to another replica, or `atlas-collector otel-replay` produce one trace, not several.

The names and units are documented in deploy/OTEL.md; keep the two in step."""
from __future__ import annotations

import hashlib
import math
import uuid
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from atlas_proto import convert
from atlas_proto.v1 import telemetry_pb2 as tpb

from . import _schema as s
from . import _steps
from ._queries import fill

SCOPE = InstrumentationScope("atlas_collector", "0.1.0", "https://atlas.dev/otel/v1")
# Statuses after which the root span is exported. `stale` is not one of them: a stale run may come back.
FINAL_STATUSES = frozenset({"completed", "failed", "stopped"})
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


# ------------------------------------------------------------------------------------------------ ids

def trace_id_of(run_id: str) -> int:
    """The run's trace id: its UUID's 128 bits, or a SHA-256 prefix for an id that is no UUID."""
    try:
        value = uuid.UUID(run_id).int
    except ValueError:
        value = 0
    return value or int.from_bytes(hashlib.sha256(f"atlas:{run_id}".encode()).digest()[:16], "big") or 1


def span_id_of(run_id: str, part: str) -> int:
    """A span id derived from the run id and the span's part (`run`, `epoch:3`); never zero."""
    return int.from_bytes(hashlib.sha256(f"{run_id}:{part}".encode()).digest()[:8], "big") or 1


def root_context(run_id: str) -> SpanContext:
    return SpanContext(trace_id_of(run_id), span_id_of(run_id, "run"), is_remote=False, trace_flags=_SAMPLED)


def epoch_context(run_id: str, epoch: int) -> SpanContext:
    return SpanContext(trace_id_of(run_id), span_id_of(run_id, f"epoch:{epoch}"), is_remote=False,
                       trace_flags=_SAMPLED)


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds * 1e9))


# --------------------------------------------------------------------------------------------- reading

def read_run(conn: Any, run_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(s.runs, s.projects.c.name.label("project"))
                       .select_from(s.runs.join(s.projects)).where(s.runs.c.id == run_id)).first()
    if row is None:
        return None
    run = dict(row._mapping)
    run["tags"] = [t for (t,) in conn.execute(sa.select(s.run_tags.c.tag).where(s.run_tags.c.run_id == run_id)
                                              .order_by(s.run_tags.c.tag))]
    return run


def read_epochs(conn: Any, run_id: str, *, last: int | None = None) -> list[dict[str, Any]]:
    """Rank zero's epochs, oldest first (`last`: only the newest `last` of them)."""
    e = s.epochs.c
    q = sa.select(s.epochs).where(e.run_id == run_id, e.rank == 0)
    if last is not None:
        q = q.order_by(e.epoch.desc()).limit(last)
        return [dict(r._mapping) for r in reversed(conn.execute(q).all())]
    return [dict(r._mapping) for r in conn.execute(q.order_by(e.epoch))]


def read_issues(conn: Any, run_id: str) -> list[dict[str, Any]]:
    c = s.issues.c
    return [dict(r._mapping) for r in conn.execute(sa.select(s.issues).where(c.run_id == run_id)
                                                   .order_by(c.created_at, c.id))]


def read_commands(conn: Any, run_id: str) -> list[dict[str, Any]]:
    c = s.commands.c
    return [dict(r._mapping) for r in conn.execute(sa.select(s.commands).where(c.run_id == run_id)
                                                   .order_by(c.issued_at, c.id))]


def _last_step_epoch(conn: Any, run_id: str) -> int | None:
    return _steps.last_epoch(conn, run_id, 0)


# ------------------------------------------------------------------------------------------ attributes

def _put(attrs: dict[str, Any], key: str, value: Any) -> None:
    """Set an attribute when the value is one OTLP carries (None and empty values are left out)."""
    if value is None or value == "" or value == [] or value == ():
        return
    if isinstance(value, (bool, int, float, str)):
        attrs[key] = value
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in value):
        attrs[key] = [float(v) for v in value]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        attrs[key] = list(value)


def _number(value: Any) -> Any:
    """The store's JSON numbers, with "NaN"/"Infinity" made floats again."""
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    return value


def scalar_hyperparameters(hp: Mapping[str, Any] | None) -> dict[str, Any]:
    """`atlas.hparam.<key>` for every scalar hyperparameter (nested tables flattened with dots)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, (bool, int, float, str)):
            out[f"atlas.hparam{prefix}"] = value

    walk("", hp or {})
    return out


def run_attributes(run: Mapping[str, Any]) -> dict[str, Any]:
    """What every span and metric point of the run carries to identify it."""
    return {"atlas.run.id": run["id"], "atlas.run.name": run["name"], "atlas.project": run["project"]}


def root_attributes(run: Mapping[str, Any], last_epoch: Mapping[str, Any] | None) -> dict[str, Any]:
    attrs = run_attributes(run)
    device = run.get("device") or {}
    for key, value in (
        ("atlas.run.status", run["status"]), ("atlas.run.framework", run["framework"]),
        ("atlas.run.on_critical", run["on_critical"]), ("atlas.run.world_size", int(run["world_size"] or 1)),
        ("atlas.run.epochs", int(run["epochs"] or 0)), ("atlas.run.steps", int(run["steps"] or 0)),
        ("atlas.run.health_score", run.get("health_score")), ("atlas.run.tags", tuple(run.get("tags") or ())),
        ("atlas.run.git_commit", run.get("git_commit")),
        ("atlas.device.kind", device.get("kind")), ("atlas.device.name", device.get("name")),
        ("atlas.device.count", int(device["count"]) if device.get("count") else None),
        ("atlas.device.hostname", device.get("hostname")),
    ):
        _put(attrs, key, value)
    for key, value in sorted((run.get("versions") or {}).items()):
        _put(attrs, f"atlas.version.{key}", str(value))
    for key, value in scalar_hyperparameters(run.get("hyperparameters")).items():
        _put(attrs, key, value)
    carbon = (last_epoch or {}).get("payload", {}).get("carbon") or {}
    _put(attrs, "atlas.carbon.co2_cumulative", carbon.get("cumulative_co2_kg"))
    _put(attrs, "atlas.carbon.energy_cumulative", carbon.get("cumulative_energy_kwh"))
    if run["status"] == "failed":
        _put(attrs, "error.type", run.get("error_type") or "Exception")
    return attrs


# OTel attribute -> `convert.flat_epoch` key (deploy/OTEL.md documents the attributes)
_LOSS_ATTRIBUTES = tuple((f"atlas.loss.{k}", f"loss.{k}") for k in ("mean", "std", "min", "max", "count",
                                                                      "nonfinite_count"))
_EPOCH_ATTRIBUTES = (
    *((f"atlas.throughput.{k}", f"throughput.{k}") for k in ("samples_per_sec", "batches_per_sec",
                                                              "tokens_per_sec")),
    ("atlas.throughput.samples", "throughput.samples_processed"), ("atlas.throughput.batches", "throughput.batches"),
    *((f"atlas.throughput.{k}", f"throughput.{k}_s") for k in ("step_time_p50", "step_time_p95", "step_time_max")),
    *((f"atlas.memory.{k}", f"memory.{k}_mb") for k in ("process_rss", "cuda_allocated", "cuda_reserved",
                                                         "cuda_peak_allocated")),
    ("atlas.system.cpu_percent", "system.cpu_percent"), ("atlas.system.ram_percent", "system.ram_percent"),
    ("atlas.carbon.co2", "carbon.epoch_co2_kg"), ("atlas.carbon.energy", "carbon.epoch_energy_kwh"),
    ("atlas.carbon.co2_cumulative", "carbon.cumulative_co2_kg"),
    ("atlas.carbon.energy_cumulative", "carbon.cumulative_energy_kwh"),
    ("atlas.carbon.power", "carbon.power_draw_watts"), ("atlas.carbon.intensity", "carbon.carbon_intensity_g_per_kwh"),
    ("atlas.carbon.country", "carbon.country_iso"),
    ("atlas.optimizer.lr", "lr"), ("atlas.optimizer.grad_norm", "grad_norm"),
)


def epoch_attributes(run: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    """Epoch `row`'s span attributes: the run's, the row's index, step and duration, and the epoch summary's
    values (`convert.flat_epoch` of its payload); a value not measured is left out."""
    flat = convert.flat_epoch(fill(row.get("payload") or {}, tpb.EpochSummary(), "epoch summary", run["id"]))
    attrs = run_attributes(run)
    _put(attrs, "atlas.epoch.index", int(row["epoch"]))
    _put(attrs, "atlas.epoch.completed", True)
    _put(attrs, "atlas.epoch.global_step", int(row["global_step"] or 0))
    _put(attrs, "atlas.epoch.duration", row.get("duration_seconds"))
    for name, key in _LOSS_ATTRIBUTES:  # the loss, the metrics, then the rest (deploy/OTEL.md's order)
        _put(attrs, name, flat[key])
    for key, value in flat.items():
        if key.startswith(("val.", "train.")):
            _put(attrs, f"atlas.{key}", value)
    for name, key in _EPOCH_ATTRIBUTES:
        _put(attrs, name, flat[key])
    gpus = flat["gpus"]  # the busiest GPU stands for all
    utils = [g["utilization_percent"] for g in gpus if g["utilization_percent"] is not None]
    _put(attrs, "atlas.gpu.utilization_percent", max(utils) if utils else None)
    mem = [g["memory_used_mb"] for g in gpus if g["memory_used_mb"] is not None]
    _put(attrs, "atlas.gpu.memory_used", max(mem) if mem else None)
    return attrs


# -------------------------------------------------------------------------------------------- events

def issue_event(issue: Mapping[str, Any]) -> Event:
    attrs: dict[str, Any] = {}
    for key, value in (
        ("atlas.issue.check", issue["check_id"]), ("atlas.issue.severity", issue["severity"]),
        ("atlas.issue.category", issue["category"]), ("atlas.issue.title", issue["title"]),
        ("atlas.issue.description", issue["description"]), ("atlas.issue.suggestion", issue["suggestion"]),
        ("atlas.issue.layer", issue.get("layer")), ("atlas.issue.epoch", issue.get("first_seen_epoch")),
        ("atlas.issue.step", issue.get("step")), ("atlas.issue.metric_key", issue.get("metric_key")),
        ("atlas.issue.metric_value", _number(issue.get("metric_value"))),
    ):
        _put(attrs, key, value)
    return Event("atlas.issue", attrs, _ns(issue["created_at"]))


def command_event(cmd: Mapping[str, Any]) -> Event:
    attrs: dict[str, Any] = {}
    for key, value in (
        ("atlas.command.id", cmd["id"]), ("atlas.command.kind", str(cmd["kind"]).upper()),
        ("atlas.command.reason", cmd.get("reason")), ("atlas.command.sender", cmd.get("sender")),
        ("atlas.command.issue_check", cmd.get("issue_check")),
        ("atlas.command.delivered_step", cmd.get("delivered_step")),
    ):
        _put(attrs, key, value)
    return Event("atlas.command", attrs, _ns(cmd["issued_at"]))


def exception_event(run: Mapping[str, Any]) -> Event:
    attrs: dict[str, Any] = {}
    _put(attrs, "exception.type", run.get("error_type") or "Exception")
    _put(attrs, "exception.message", run.get("error_message"))
    _put(attrs, "exception.stacktrace", run.get("traceback"))
    return Event("exception", attrs, _ns(run.get("ended_at")))


# --------------------------------------------------------------------------------------------- spans

def _span(name: str, ctx: SpanContext, parent: SpanContext | None, resource: Resource, attrs: dict[str, Any],
          events: list[Event], start: float, end: float, status: Status) -> ReadableSpan:
    return ReadableSpan(name=name, context=ctx, parent=parent, resource=resource, attributes=attrs,
                        events=tuple(sorted(events, key=lambda e: e.timestamp or 0)), kind=SpanKind.INTERNAL,
                        status=status, start_time=_ns(start), end_time=_ns(max(end, start)),
                        instrumentation_scope=SCOPE)


def _epoch_start(row: Mapping[str, Any], previous_end: float | None, run_start: float) -> float:
    started = (row.get("payload") or {}).get("started_at")
    if started:
        import datetime as _dt

        return _dt.datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
    if row.get("ended_at") is not None and row.get("duration_seconds"):
        return float(row["ended_at"]) - float(row["duration_seconds"])
    return previous_end if previous_end is not None else run_start


def epoch_span(run: Mapping[str, Any], row: Mapping[str, Any], issues: Iterable[Mapping[str, Any]],
               resource: Resource, previous_end: float | None = None) -> ReadableSpan:
    """Epoch `row`'s span, a child of the run's root, with the issues first seen in that epoch as events."""
    start = _epoch_start(row, previous_end, run["started_at"])
    end = row.get("ended_at") or start
    events = [issue_event(i) for i in issues if i.get("first_seen_epoch") == row["epoch"]]
    return _span(f"epoch {row['epoch']}", epoch_context(run["id"], row["epoch"]), root_context(run["id"]),
                 resource, epoch_attributes(run, row), events, start, end, Status(StatusCode.UNSET))


def _run_status(run: Mapping[str, Any]) -> Status:
    if run["status"] == "failed":
        detail = f"{run.get('error_type') or 'Exception'}: {run.get('error_message') or ''}".rstrip(": ")
        return Status(StatusCode.ERROR, detail)
    if run["status"] == "completed":
        return Status(StatusCode.OK)
    return Status(StatusCode.UNSET)


def end_spans(conn: Any, run: Mapping[str, Any], resource: Resource,
              epochs: list[dict[str, Any]] | None = None) -> list[ReadableSpan]:
    """The spans that exist once the run has ended: the epoch it never finished (when steps ran in it) and the
    root. The root carries the commands and the issues that belong to no finished epoch."""
    run_id = run["id"]
    epochs = read_epochs(conn, run_id) if epochs is None else epochs
    issues = read_issues(conn, run_id)
    done = {e["epoch"] for e in epochs}
    end = run.get("ended_at") or run.get("last_seen_at") or run["started_at"]
    spans: list[ReadableSpan] = []
    open_epoch = _last_step_epoch(conn, run_id)
    if open_epoch is not None and open_epoch not in done and open_epoch > max(done, default=-1):
        start = epochs[-1]["ended_at"] if epochs and epochs[-1].get("ended_at") else run["started_at"]
        attrs = run_attributes(run)
        attrs.update({"atlas.epoch.index": int(open_epoch), "atlas.epoch.completed": False})
        events = [issue_event(i) for i in issues if i.get("first_seen_epoch") == open_epoch]
        done.add(open_epoch)
        spans.append(_span(f"epoch {open_epoch}", epoch_context(run_id, open_epoch), root_context(run_id), resource,
                           attrs, events, start, end, _run_status(run) if run["status"] == "failed"
                           else Status(StatusCode.UNSET)))
    events = [issue_event(i) for i in issues if i.get("first_seen_epoch") not in done]
    events += [command_event(c) for c in read_commands(conn, run_id)]
    if run["status"] == "failed":
        events.append(exception_event(run))
    root = _span(f"train {run['project']}", root_context(run_id), None, resource,
                 root_attributes(run, epochs[-1] if epochs else None), events, run["started_at"], end,
                 _run_status(run))
    return spans + [root]


def run_spans(conn: Any, run_id: str, resource: Resource, *, include_root: bool | None = None) -> list[ReadableSpan]:
    """Every span of the run as the store holds it now (what `otel-replay` sends): its finished epochs and,
    once the run has ended (or when `include_root`), the unfinished epoch and the root."""
    run = read_run(conn, run_id)
    if run is None:
        return []
    epochs = read_epochs(conn, run_id)
    issues = read_issues(conn, run_id)
    spans, previous = [], None
    for row in epochs:
        spans.append(epoch_span(run, row, issues, resource, previous))
        previous = row.get("ended_at")
    if include_root if include_root is not None else run["status"] in FINAL_STATUSES:
        spans += end_spans(conn, run, resource, epochs)
    return spans


def finite(value: Any) -> float | None:
    """A float for a finite number, else None (what metrics record)."""
    value = _number(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
