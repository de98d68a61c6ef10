"""The CLI's only way to the data: the collector's QueryService over gRPC.

gRPC failures become one-line `click.ClickException`s (exit 1, no traceback) that say what to do."""
from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Callable

import click
import grpc
from google.protobuf import json_format

from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import query_pb2_grpc
from atlas_proto.v1 import telemetry_pb2 as tpb

TIMEOUT_S = 15.0

STATUS = {v: k for k, v in {
    "running": tpb.RUN_STATUS_RUNNING, "paused": tpb.RUN_STATUS_PAUSED, "stopped": tpb.RUN_STATUS_STOPPED,
    "completed": tpb.RUN_STATUS_COMPLETED, "failed": tpb.RUN_STATUS_FAILED, "stale": tpb.RUN_STATUS_STALE,
}.items()}
STATUS_VALUES = {v: k for k, v in STATUS.items()}
FRAMEWORK = {tpb.FRAMEWORK_LIGHTNING: "lightning", tpb.FRAMEWORK_ACCELERATE: "accelerate",
             tpb.FRAMEWORK_PYTORCH: "pytorch", tpb.FRAMEWORK_TRANSFORMERS: "transformers"}
ON_CRITICAL = {tpb.ON_CRITICAL_UNSPECIFIED: "warn", tpb.ON_CRITICAL_WARN: "warn", tpb.ON_CRITICAL_PAUSE: "pause",
               tpb.ON_CRITICAL_STOP: "stop"}


# The collector sends answers up to 64 MiB (its max_send_message_length); gRPC's default receive limit is 4 MiB.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 2**20)]


class NotFound(click.ClickException):
    """The collector answered NOT_FOUND (an unknown run or project); the message suggests close names."""


class CollectorClient:
    def __init__(self, target: str, token: str | None = None, tls_ca: str | None = None) -> None:
        self.target = target
        if tls_ca:
            with open(tls_ca, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.secure_channel(target, creds, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._metadata = [("authorization", f"Bearer {token}")] if token else None
        self.stub = query_pb2_grpc.QueryServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def call(self, method: str, request: Any) -> Any:
        fn: Callable[..., Any] = getattr(self.stub, method)
        try:
            return fn(request, timeout=TIMEOUT_S, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._explain(exc) from None

    def try_call(self, method: str, request: Any) -> Any:
        """Like `call`, but None when this collector does not implement `method` (an older collector)."""
        fn: Callable[..., Any] = getattr(self.stub, method)
        try:
            return fn(request, timeout=TIMEOUT_S, metadata=self._metadata)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise self._explain(exc) from None

    def _explain(self, exc: grpc.RpcError) -> click.ClickException:
        from ._app import safe

        code = exc.code()
        details = safe(exc.details() or code.name, lines=False)  # may quote run names a trainer chose
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return click.ClickException(
                f"cannot reach the Atlas collector at {self.target} ({_short(details)}). "
                f"Start one with `atlas-collector --listen {self.target}`, or point --collector / ATLAS_COLLECTOR "
                "at a running one."
            )
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return click.ClickException(
                f"the collector at {self.target} refused the request: missing or wrong token "
                "(set --token or ATLAS_TOKEN to the collector's token)"
            )
        if code == grpc.StatusCode.NOT_FOUND:
            return NotFound(details)
        if code in (grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.FAILED_PRECONDITION):
            return click.ClickException(details)
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return click.ClickException(
                f"the collector at {self.target} does not answer this query (UNIMPLEMENTED); "
                "upgrade atlas-collector to the version of this CLI"
            )
        return click.ClickException(f"the collector at {self.target} failed: {code.name}: {_short(details)}")


def _short(details: str) -> str:
    for hint in ("Connection refused", "Deadline Exceeded", "Name resolution failure", "No route to host"):
        if hint.lower() in details.lower():
            return hint.lower()
    return details.splitlines()[0][:120]


# ------------------------------------------------------------------------------------------ JSON

def iso(ts: Any) -> str | None:
    """ISO 8601 in UTC; None for an unset timestamp or one no date can show (outside years 1970-9999)."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    value = ts.seconds + ts.nanos / 1e9
    try:
        return _dt.datetime.fromtimestamp(value, tz=_dt.timezone.utc).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None


def clean_number(value: Any) -> Any:
    """JSON has no NaN/Inf: they print as null (the value is then shown in text output)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, dict):
        return {k: clean_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_number(v) for v in value]
    return value


def run_row(s: qpb.RunSummary) -> dict[str, Any]:
    """A run as `atlas runs --json` prints it (ARCHITECTURE.md)."""
    return {
        "id": s.id,
        "name": s.name,
        "project": s.project,
        "status": STATUS.get(s.status, "unknown"),
        "started_at": iso(s.started_at),
        "ended_at": iso(s.ended_at),
        "epochs": s.epochs,
        "steps": s.steps,
        "health_score": s.health_score if s.HasField("health_score") else None,
        "framework": FRAMEWORK.get(s.framework, "pytorch"),
        "tags": list(s.tags),
    }


def run_detail(d: qpb.RunDetail) -> dict[str, Any]:
    row = run_row(d.summary)
    row.update({
        "hyperparameters": ordered(json_format.MessageToDict(d.hyperparameters)),
        "versions": ordered(dict(d.versions)),
        "device": json_format.MessageToDict(d.device, preserving_proto_field_name=True,
                                            always_print_fields_with_no_presence=True),
        "world_size": d.world_size,
        "on_critical": ON_CRITICAL.get(d.on_critical, "warn"),
        "final_metrics": ordered(clean_number(_numbers(json_format.MessageToDict(d.final_metrics)))),
        "error": ({"type": d.error.type, "message": d.error.message, "traceback": d.error.traceback}
                  if d.HasField("error") else None),
        "git_commit": d.git_commit or None,
        "last_seen_at": iso(d.last_seen_at),
    })
    row["thresholds"] = ordered(clean_number(json_format.MessageToDict(d.thresholds))) or None  # the run's overrides
    return row


def _numbers(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        out[key] = value
    return out


def opt(msg: Any, field: str) -> Any:
    """An `optional` scalar field's value, or None when unset."""
    return getattr(msg, field) if msg.HasField(field) else None


def ordered(value: Any) -> Any:
    """`value` with every mapping's keys sorted, at every depth. A protobuf Struct or map comes back in an order
    that depends on its key set, so two runs' final metrics, trends or attributes would print in different
    orders; sorted, the same field always stands in the same place."""
    if isinstance(value, dict):
        return {k: ordered(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


def struct_dict(s: Any) -> dict[str, Any]:
    return ordered(clean_number(_numbers(json_format.MessageToDict(s))))


def issue_dict(i: qpb.Issue) -> dict[str, Any]:
    """An issue as `atlas issues --json` prints it (ARCHITECTURE.md)."""
    value = opt(i, "metric_value")
    return {
        "run": i.run,
        "check": i.check,
        "severity": i.severity,
        "category": i.category,
        "title": i.title,
        "description": i.description,
        "epoch": opt(i, "epoch"),
        "step": opt(i, "step"),
        "layer": i.layer or None,
        "metric_key": i.metric_key or None,
        "metric_value": clean_number(value) if value is not None else None,
        "thresholds": struct_dict(i.thresholds),
        "suggestion": i.suggestion,
        "first_seen_epoch": opt(i, "first_seen_epoch"),
        "last_seen_epoch": opt(i, "last_seen_epoch"),
        "active": i.active,
        "rank": i.rank or None,
        "explains": list(i.explains),
        "evidence": struct_dict(i.evidence),
        "insight": i.insight or None,
    }


def health_dict(h: qpb.HealthResponse) -> dict[str, Any]:
    """`atlas health --json`: run, health_score, severity_counts, top_issues, top_layers."""
    counts = {k: 0 for k in ("critical", "warning", "info")}
    counts.update(dict(h.severity_counts))
    return {
        "run": h.run,
        "health_score": clean_number(opt(h, "health_score")),
        "severity_counts": counts,
        "top_issues": [issue_dict(i) for i in h.top_issues],
        "top_layers": [{"layer": x.layer, "severity_score": clean_number(x.severity_score), "checks": list(x.checks)}
                       for x in h.top_layers],
    }


def message_dict(msg: Any) -> dict[str, Any]:
    """Protobuf JSON with the .proto field names; 64-bit integer fields (which protobuf JSON writes as strings) are
    numbers again. Other strings stay strings (a layer may be named "0")."""
    return _int64_fields(json_format.MessageToDict(msg, preserving_proto_field_name=True))


# uint64/int64 fields of atlas.v1 messages
_INT64 = frozenset({"parameters", "total_parameters", "trainable_parameters", "input_shape", "output_shape", "step",
                    "global_step", "samples_processed", "batches", "count", "nonfinite_count", "calls", "console",
                    "warning", "error", "total_steps"})
_INT = re.compile(r"-?\d+")


def _int64_fields(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _int64_fields(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_int64_fields(v, key) for v in value]
    if key in _INT64 and isinstance(value, str) and _INT.fullmatch(value):
        return int(value)
    return value


def epoch_row(summary: Any, rank: int = 0) -> dict[str, Any]:
    """One epoch, flattened for `atlas epochs` and scalars.csv."""
    s = summary
    loss, tp = s.loss, s.throughput
    carbon = s.carbon if s.HasField("carbon") else None
    gpu = s.gpus[0] if s.gpus else None
    row: dict[str, Any] = {
        "epoch": s.epoch,
        "rank": rank,
        "started_at": iso(s.started_at),
        "ended_at": iso(s.ended_at),
        "duration_seconds": s.duration_seconds,
        "global_step": s.global_step,
        "loss_mean": opt(loss, "mean"),
        "loss_std": opt(loss, "std"),
        "loss_min": opt(loss, "min"),
        "loss_max": opt(loss, "max"),
        "loss_count": loss.count,
        "loss_nonfinite": loss.nonfinite_count,
    }
    row.update({k: v for k, v in sorted(s.val_metrics.items())})
    row.update({k: v for k, v in sorted(s.train_metrics.items()) if k not in row})
    row.update({
        "samples_per_sec": opt(tp, "samples_per_sec"),
        "batches_per_sec": opt(tp, "batches_per_sec"),
        "tokens_per_sec": opt(tp, "tokens_per_sec"),
        "step_time_p50_s": opt(tp, "step_time_p50_s"),
        "step_time_p95_s": opt(tp, "step_time_p95_s"),
        "lr": s.lr[0] if s.lr else None,
        "grad_norm": opt(s, "grad_norm"),
        "process_rss_mb": opt(s.memory, "process_rss_mb"),
        "cuda_allocated_mb": opt(s.memory, "cuda_allocated_mb"),
        "cpu_percent": opt(s.system, "cpu_percent"),
        "gpu_utilization_percent": opt(gpu, "utilization_percent") if gpu is not None else None,
        "gpu_memory_used_mb": opt(gpu, "memory_used_mb") if gpu is not None else None,
        "gpu_power_watts": opt(gpu, "power_watts") if gpu is not None else None,
        "epoch_co2_kg": carbon.epoch_co2_kg if carbon is not None else None,
        "cumulative_co2_kg": carbon.cumulative_co2_kg if carbon is not None else None,
        "cumulative_energy_kwh": carbon.cumulative_energy_kwh if carbon is not None else None,
    })
    return row
