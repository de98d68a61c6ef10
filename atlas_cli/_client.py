"""The CLI's only way to the data: the collector's QueryService over gRPC.

gRPC failures become one-line `click.ClickException`s (exit 1, no traceback) that say what to do."""
from __future__ import annotations

import datetime as _dt
import math
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
             tpb.FRAMEWORK_PYTORCH: "pytorch"}
ON_CRITICAL = {tpb.ON_CRITICAL_UNSPECIFIED: "warn", tpb.ON_CRITICAL_WARN: "warn", tpb.ON_CRITICAL_PAUSE: "pause",
               tpb.ON_CRITICAL_STOP: "stop"}


class CollectorClient:
    def __init__(self, target: str, token: str | None = None, tls_ca: str | None = None) -> None:
        self.target = target
        if tls_ca:
            with open(tls_ca, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.secure_channel(target, creds)
        else:
            self._channel = grpc.insecure_channel(target)
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

    def _explain(self, exc: grpc.RpcError) -> click.ClickException:
        code = exc.code()
        details = exc.details() or code.name
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
        if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.FAILED_PRECONDITION):
            return click.ClickException(details)
        return click.ClickException(f"the collector at {self.target} failed: {code.name}: {details}")


def _short(details: str) -> str:
    for hint in ("Connection refused", "Deadline Exceeded", "Name resolution failure", "No route to host"):
        if hint.lower() in details.lower():
            return hint.lower()
    return details.splitlines()[0][:120]


# ------------------------------------------------------------------------------------------ JSON

def iso(ts: Any) -> str | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    value = ts.seconds + ts.nanos / 1e9
    return _dt.datetime.fromtimestamp(value, tz=_dt.timezone.utc).isoformat().replace("+00:00", "Z")


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
        "hyperparameters": json_format.MessageToDict(d.hyperparameters),
        "versions": dict(d.versions),
        "device": json_format.MessageToDict(d.device, preserving_proto_field_name=True,
                                            always_print_fields_with_no_presence=True),
        "world_size": d.world_size,
        "on_critical": ON_CRITICAL.get(d.on_critical, "warn"),
        "final_metrics": clean_number(_numbers(json_format.MessageToDict(d.final_metrics))),
        "error": ({"type": d.error.type, "message": d.error.message, "traceback": d.error.traceback}
                  if d.HasField("error") else None),
        "git_commit": d.git_commit or None,
        "last_seen_at": iso(d.last_seen_at),
    })
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
