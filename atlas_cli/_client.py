"""The CLI's only way to the data: the collector's QueryService over gRPC, one typed method per RPC
(`CollectorClient`).

gRPC failures become one-line `click.ClickException`s (exit 1, no traceback) that say what to do."""
from __future__ import annotations

import re
from typing import Any, Callable, Iterator, TypeVar

import click
import grpc
from google.protobuf import json_format

# The conversions and JSON helpers the CLI's commands import from here live in the one conversion layer.
from atlas_proto.convert import (
    FRAMEWORK_NAMES,
    ON_CRITICAL_NAMES,
    STATUS_NAMES,
    clean_number,
    issue_dict,
    iso,
    opt,
    ordered,
    struct_json,
)
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import query_pb2_grpc
from atlas_proto.v1 import telemetry_pb2 as tpb

TIMEOUT_S = 15.0


# The collector sends answers up to 64 MiB (its max_send_message_length); gRPC's default receive limit is 4 MiB.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 2**20)]


class NotFound(click.ClickException):
    """The collector answered NOT_FOUND (an unknown run or project); the message suggests close names."""


class Unimplemented(click.ClickException):
    """The collector does not implement the RPC (it is older than this CLI); `CollectorClient.if_served` makes that
    None where the CLI can do without the answer."""


_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


class CollectorClient:
    """The QueryService as the CLI calls it: one typed method per RPC. Every call goes through `_unary`, where a gRPC
    failure becomes a one-line `click.ClickException` (exit 1, no traceback) that says what to do: `NotFound`,
    `Unimplemented`, the collector unreachable, a missing token.

    By default it opens a gRPC channel to `target`; `stub`, an object shaped like `QueryServiceStub` (its methods
    take a request, `timeout` and `metadata`), answers in process instead (the collector's web UI)."""

    def __init__(self, target: str, token: str | None = None, tls_ca: str | None = None, *,
                 stub: Any = None) -> None:
        self.target = target
        self._channel: grpc.Channel | None = None
        self._metadata = [("authorization", f"Bearer {token}")] if token else None
        if stub is not None:
            self.stub = stub
            return
        if tls_ca:
            with open(tls_ca, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.secure_channel(target, creds, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.stub = query_pb2_grpc.QueryServiceStub(self._channel)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()

    # -------------------------------------------------------------------- runs
    def list_runs(self, request: qpb.ListRunsRequest) -> qpb.ListRunsResponse:
        return self._unary(self.stub.ListRuns, request)

    def get_run(self, request: qpb.RunRef) -> qpb.RunDetail:
        return self._unary(self.stub.GetRun, request)

    def delete_run(self, request: qpb.RunRef) -> qpb.DeleteRunResponse:
        return self._unary(self.stub.DeleteRun, request)

    # --------------------------------------------------------------- telemetry
    def get_epochs(self, request: qpb.EpochsRequest) -> qpb.EpochsResponse:
        return self._unary(self.stub.GetEpochs, request)

    def get_steps(self, request: qpb.StepsRequest) -> qpb.StepsResponse:
        return self._unary(self.stub.GetSteps, request)

    def get_logs(self, request: qpb.LogsRequest) -> qpb.LogsResponse:
        return self._unary(self.stub.GetLogs, request)

    def get_architecture(self, request: qpb.RunRef) -> tpb.ModelInfo:
        return self._unary(self.stub.GetArchitecture, request)

    def list_metrics(self, request: qpb.RunRef) -> qpb.MetricsResponse:
        return self._unary(self.stub.ListMetrics, request)

    def get_metric_series(self, request: qpb.MetricSeriesRequest) -> qpb.MetricSeriesResponse:
        return self._unary(self.stub.GetMetricSeries, request)

    # ------------------------------------------------------------- diagnostics
    def list_issues(self, request: qpb.IssuesRequest) -> qpb.IssuesResponse:
        return self._unary(self.stub.ListIssues, request)

    def get_health(self, request: qpb.RunRef) -> qpb.HealthResponse:
        return self._unary(self.stub.GetHealth, request)

    def diagnose(self, request: qpb.RunRef) -> qpb.HealthResponse:
        """Like `get_health`, after the collector has diagnosed everything the run has sent."""
        return self._unary(self.stub.Diagnose, request)

    def get_sustainability(self, request: qpb.RunRef) -> qpb.ReportResponse:
        return self._unary(self.stub.GetSustainability, request)

    def get_project_trend(self, request: qpb.ProjectRef) -> qpb.ReportResponse:
        return self._unary(self.stub.GetProjectTrend, request)

    def compare_runs(self, request: qpb.CompareRequest) -> qpb.ReportResponse:
        return self._unary(self.stub.CompareRuns, request)

    # ------------------------------------------------------ control and alerts
    def send_command(self, request: qpb.CommandRequest) -> qpb.CommandResponse:
        return self._unary(self.stub.SendCommand, request)

    def list_alerts(self, request: qpb.AlertsRequest) -> qpb.AlertsResponse:
        return self._unary(self.stub.ListAlerts, request)

    def test_alert(self, request: qpb.TestAlertRequest) -> qpb.TestAlertResponse:
        return self._unary(self.stub.TestAlert, request)

    def get_server_info(self, request: qpb.ServerInfoRequest) -> qpb.ServerInfo:
        return self._unary(self.stub.GetServerInfo, request)

    # --------------------------------------------------------------- plumbing
    @staticmethod
    def if_served(rpc: Callable[[_Req], _Resp], request: _Req) -> _Resp | None:
        """`rpc(request)` (one of the methods above), or None when the collector does not implement that RPC (an
        older collector), for answers the CLI can do without."""
        try:
            return rpc(request)
        except Unimplemented:
            return None

    def stream_telemetry(self, requests: Iterator[tpb.ClientMessage]) -> Any:
        """TelemetryService.Stream on this client's channel (`atlas sync`, which reads the acks and handles the
        stream's own failures itself; `explain` words the others)."""
        from atlas_proto.v1 import telemetry_pb2_grpc

        if self._channel is None:
            raise click.ClickException(f"{self.target} takes no telemetry stream")
        return telemetry_pb2_grpc.TelemetryServiceStub(self._channel).Stream(requests, metadata=self._metadata)

    def _unary(self, rpc: Callable[..., Any], request: Any) -> Any:
        try:
            return rpc(request, timeout=TIMEOUT_S, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self.explain(exc) from None

    def explain(self, exc: grpc.RpcError) -> click.ClickException:
        """A gRPC failure as the one-line error the CLI prints."""
        from ._terminal import safe

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
            return Unimplemented(
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
# (issues, epochs and the helpers come from atlas_proto.convert, imported above)

def run_row(s: qpb.RunSummary) -> dict[str, Any]:
    """A run as `atlas runs --json` prints it (ARCHITECTURE.md)."""
    return {
        "id": s.id,
        "name": s.name,
        "project": s.project,
        "status": STATUS_NAMES.get(s.status, "unknown"),
        "started_at": iso(s.started_at),
        "ended_at": iso(s.ended_at),
        "epochs": s.epochs,
        "steps": s.steps,
        "health_score": s.health_score if s.HasField("health_score") else None,
        "framework": FRAMEWORK_NAMES.get(s.framework, "pytorch"),
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
        "on_critical": ON_CRITICAL_NAMES.get(d.on_critical, "warn"),
        "final_metrics": struct_json(d.final_metrics),
        "error": ({"type": d.error.type, "message": d.error.message, "traceback": d.error.traceback}
                  if d.HasField("error") else None),
        "git_commit": d.git_commit or None,
        "last_seen_at": iso(d.last_seen_at),
    })
    row["thresholds"] = ordered(clean_number(json_format.MessageToDict(d.thresholds))) or None  # the run's overrides
    return row


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
