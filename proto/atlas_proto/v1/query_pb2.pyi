import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from atlas_proto.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunRef(_message.Message):
    __slots__ = ("run", "project")
    RUN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    run: str
    project: str
    def __init__(self, run: _Optional[str] = ..., project: _Optional[str] = ...) -> None: ...

class ProjectRef(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("project", "status", "name", "tag", "limit", "page_token")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project: str
    status: _telemetry_pb2.RunStatus
    name: str
    tag: str
    limit: int
    page_token: str
    def __init__(self, project: _Optional[str] = ..., status: _Optional[_Union[_telemetry_pb2.RunStatus, str]] = ..., name: _Optional[str] = ..., tag: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class RunSummary(_message.Message):
    __slots__ = ("id", "name", "project", "status", "started_at", "ended_at", "epochs", "steps", "health_score", "framework", "tags")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_SCORE_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project: str
    status: _telemetry_pb2.RunStatus
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    epochs: int
    steps: int
    health_score: float
    framework: _telemetry_pb2.Framework
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project: _Optional[str] = ..., status: _Optional[_Union[_telemetry_pb2.RunStatus, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., epochs: _Optional[int] = ..., steps: _Optional[int] = ..., health_score: _Optional[float] = ..., framework: _Optional[_Union[_telemetry_pb2.Framework, str]] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token", "total")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunSummary]
    next_page_token: str
    total: int
    def __init__(self, runs: _Optional[_Iterable[_Union[RunSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class RunError(_message.Message):
    __slots__ = ("type", "message", "traceback")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    traceback: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...

class RunDetail(_message.Message):
    __slots__ = ("summary", "hyperparameters", "versions", "device", "world_size", "on_critical", "final_metrics", "error", "git_commit", "last_seen_at", "thresholds")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    ON_CRITICAL_FIELD_NUMBER: _ClassVar[int]
    FINAL_METRICS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GIT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    summary: RunSummary
    hyperparameters: _struct_pb2.Struct
    versions: _containers.ScalarMap[str, str]
    device: _telemetry_pb2.DeviceInfo
    world_size: int
    on_critical: _telemetry_pb2.OnCritical
    final_metrics: _struct_pb2.Struct
    error: RunError
    git_commit: str
    last_seen_at: _timestamp_pb2.Timestamp
    thresholds: _struct_pb2.Struct
    def __init__(self, summary: _Optional[_Union[RunSummary, _Mapping]] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., versions: _Optional[_Mapping[str, str]] = ..., device: _Optional[_Union[_telemetry_pb2.DeviceInfo, _Mapping]] = ..., world_size: _Optional[int] = ..., on_critical: _Optional[_Union[_telemetry_pb2.OnCritical, str]] = ..., final_metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[_Union[RunError, _Mapping]] = ..., git_commit: _Optional[str] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., thresholds: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DeleteRunResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class EpochsRequest(_message.Message):
    __slots__ = ("run", "from_epoch", "to_epoch", "rank")
    RUN_FIELD_NUMBER: _ClassVar[int]
    FROM_EPOCH_FIELD_NUMBER: _ClassVar[int]
    TO_EPOCH_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    run: str
    from_epoch: int
    to_epoch: int
    rank: int
    def __init__(self, run: _Optional[str] = ..., from_epoch: _Optional[int] = ..., to_epoch: _Optional[int] = ..., rank: _Optional[int] = ...) -> None: ...

class EpochRow(_message.Message):
    __slots__ = ("rank", "summary")
    RANK_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    rank: int
    summary: _telemetry_pb2.EpochSummary
    def __init__(self, rank: _Optional[int] = ..., summary: _Optional[_Union[_telemetry_pb2.EpochSummary, _Mapping]] = ...) -> None: ...

class EpochsResponse(_message.Message):
    __slots__ = ("run_id", "epochs")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epochs: _containers.RepeatedCompositeFieldContainer[EpochRow]
    def __init__(self, run_id: _Optional[str] = ..., epochs: _Optional[_Iterable[_Union[EpochRow, _Mapping]]] = ...) -> None: ...

class StepsRequest(_message.Message):
    __slots__ = ("run", "from_step", "to_step", "limit", "rank")
    RUN_FIELD_NUMBER: _ClassVar[int]
    FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    TO_STEP_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    run: str
    from_step: int
    to_step: int
    limit: int
    rank: int
    def __init__(self, run: _Optional[str] = ..., from_step: _Optional[int] = ..., to_step: _Optional[int] = ..., limit: _Optional[int] = ..., rank: _Optional[int] = ...) -> None: ...

class StepsResponse(_message.Message):
    __slots__ = ("run_id", "samples")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    samples: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.StepSample]
    def __init__(self, run_id: _Optional[str] = ..., samples: _Optional[_Iterable[_Union[_telemetry_pb2.StepSample, _Mapping]]] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("run", "errors_only", "limit")
    RUN_FIELD_NUMBER: _ClassVar[int]
    ERRORS_ONLY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    run: str
    errors_only: bool
    limit: int
    def __init__(self, run: _Optional[str] = ..., errors_only: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class LogsResponse(_message.Message):
    __slots__ = ("run_id", "records")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    records: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.LogRecord]
    def __init__(self, run_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[_telemetry_pb2.LogRecord, _Mapping]]] = ...) -> None: ...

class IssuesRequest(_message.Message):
    __slots__ = ("run", "severity", "all_runs", "include_inactive", "project")
    RUN_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    ALL_RUNS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    run: str
    severity: str
    all_runs: bool
    include_inactive: bool
    project: str
    def __init__(self, run: _Optional[str] = ..., severity: _Optional[str] = ..., all_runs: _Optional[bool] = ..., include_inactive: _Optional[bool] = ..., project: _Optional[str] = ...) -> None: ...

class Issue(_message.Message):
    __slots__ = ("run", "check", "severity", "category", "title", "description", "epoch", "step", "layer", "metric_key", "metric_value", "thresholds", "suggestion", "first_seen_epoch", "last_seen_epoch", "active", "metric_text", "rank", "explains", "evidence", "insight")
    RUN_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    METRIC_KEY_FIELD_NUMBER: _ClassVar[int]
    METRIC_VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    SUGGESTION_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_EPOCH_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_EPOCH_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    METRIC_TEXT_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    EXPLAINS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    INSIGHT_FIELD_NUMBER: _ClassVar[int]
    run: str
    check: str
    severity: str
    category: str
    title: str
    description: str
    epoch: int
    step: int
    layer: str
    metric_key: str
    metric_value: float
    thresholds: _struct_pb2.Struct
    suggestion: str
    first_seen_epoch: int
    last_seen_epoch: int
    active: bool
    metric_text: str
    rank: int
    explains: _containers.RepeatedScalarFieldContainer[str]
    evidence: _struct_pb2.Struct
    insight: str
    def __init__(self, run: _Optional[str] = ..., check: _Optional[str] = ..., severity: _Optional[str] = ..., category: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., epoch: _Optional[int] = ..., step: _Optional[int] = ..., layer: _Optional[str] = ..., metric_key: _Optional[str] = ..., metric_value: _Optional[float] = ..., thresholds: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., suggestion: _Optional[str] = ..., first_seen_epoch: _Optional[int] = ..., last_seen_epoch: _Optional[int] = ..., active: _Optional[bool] = ..., metric_text: _Optional[str] = ..., rank: _Optional[int] = ..., explains: _Optional[_Iterable[str]] = ..., evidence: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., insight: _Optional[str] = ...) -> None: ...

class IssuesResponse(_message.Message):
    __slots__ = ("issues",)
    ISSUES_FIELD_NUMBER: _ClassVar[int]
    issues: _containers.RepeatedCompositeFieldContainer[Issue]
    def __init__(self, issues: _Optional[_Iterable[_Union[Issue, _Mapping]]] = ...) -> None: ...

class LayerScore(_message.Message):
    __slots__ = ("layer", "severity_score", "checks")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    layer: str
    severity_score: float
    checks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, layer: _Optional[str] = ..., severity_score: _Optional[float] = ..., checks: _Optional[_Iterable[str]] = ...) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("run", "health_score", "severity_counts", "top_issues", "top_layers")
    class SeverityCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    RUN_FIELD_NUMBER: _ClassVar[int]
    HEALTH_SCORE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_COUNTS_FIELD_NUMBER: _ClassVar[int]
    TOP_ISSUES_FIELD_NUMBER: _ClassVar[int]
    TOP_LAYERS_FIELD_NUMBER: _ClassVar[int]
    run: str
    health_score: float
    severity_counts: _containers.ScalarMap[str, int]
    top_issues: _containers.RepeatedCompositeFieldContainer[Issue]
    top_layers: _containers.RepeatedCompositeFieldContainer[LayerScore]
    def __init__(self, run: _Optional[str] = ..., health_score: _Optional[float] = ..., severity_counts: _Optional[_Mapping[str, int]] = ..., top_issues: _Optional[_Iterable[_Union[Issue, _Mapping]]] = ..., top_layers: _Optional[_Iterable[_Union[LayerScore, _Mapping]]] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: _struct_pb2.Struct
    def __init__(self, report: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("run_a", "run_b")
    RUN_A_FIELD_NUMBER: _ClassVar[int]
    RUN_B_FIELD_NUMBER: _ClassVar[int]
    run_a: str
    run_b: str
    def __init__(self, run_a: _Optional[str] = ..., run_b: _Optional[str] = ...) -> None: ...

class CommandRequest(_message.Message):
    __slots__ = ("run", "kind", "reason", "sender")
    RUN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    run: str
    kind: _telemetry_pb2.CommandKind
    reason: str
    sender: str
    def __init__(self, run: _Optional[str] = ..., kind: _Optional[_Union[_telemetry_pb2.CommandKind, str]] = ..., reason: _Optional[str] = ..., sender: _Optional[str] = ...) -> None: ...

class CommandResponse(_message.Message):
    __slots__ = ("command_id", "run_id", "delivered", "issued_at")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    run_id: str
    delivered: bool
    issued_at: _timestamp_pb2.Timestamp
    def __init__(self, command_id: _Optional[str] = ..., run_id: _Optional[str] = ..., delivered: _Optional[bool] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MetricKey(_message.Message):
    __slots__ = ("key", "count", "last_value", "last_step", "last_epoch", "last_time")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_VALUE_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    LAST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_FIELD_NUMBER: _ClassVar[int]
    key: str
    count: int
    last_value: float
    last_step: int
    last_epoch: int
    last_time: _timestamp_pb2.Timestamp
    def __init__(self, key: _Optional[str] = ..., count: _Optional[int] = ..., last_value: _Optional[float] = ..., last_step: _Optional[int] = ..., last_epoch: _Optional[int] = ..., last_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MetricsResponse(_message.Message):
    __slots__ = ("run_id", "metrics")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    metrics: _containers.RepeatedCompositeFieldContainer[MetricKey]
    def __init__(self, run_id: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[MetricKey, _Mapping]]] = ...) -> None: ...

class MetricSeriesRequest(_message.Message):
    __slots__ = ("run", "key", "limit")
    RUN_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    run: str
    key: str
    limit: int
    def __init__(self, run: _Optional[str] = ..., key: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class MetricValue(_message.Message):
    __slots__ = ("step", "epoch", "value", "time")
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    step: int
    epoch: int
    value: float
    time: _timestamp_pb2.Timestamp
    def __init__(self, step: _Optional[int] = ..., epoch: _Optional[int] = ..., value: _Optional[float] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MetricSeriesResponse(_message.Message):
    __slots__ = ("run_id", "key", "points")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    key: str
    points: _containers.RepeatedCompositeFieldContainer[MetricValue]
    def __init__(self, run_id: _Optional[str] = ..., key: _Optional[str] = ..., points: _Optional[_Iterable[_Union[MetricValue, _Mapping]]] = ...) -> None: ...

class AlertsRequest(_message.Message):
    __slots__ = ("run", "limit")
    RUN_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    run: str
    limit: int
    def __init__(self, run: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("id", "run_id", "run_name", "project", "route", "event", "check", "severity", "title", "state", "attempts", "created_at", "sent_at", "next_attempt_at", "last_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: int
    run_id: str
    run_name: str
    project: str
    route: str
    event: str
    check: str
    severity: str
    title: str
    state: str
    attempts: int
    created_at: _timestamp_pb2.Timestamp
    sent_at: _timestamp_pb2.Timestamp
    next_attempt_at: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, id: _Optional[int] = ..., run_id: _Optional[str] = ..., run_name: _Optional[str] = ..., project: _Optional[str] = ..., route: _Optional[str] = ..., event: _Optional[str] = ..., check: _Optional[str] = ..., severity: _Optional[str] = ..., title: _Optional[str] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class AlertsResponse(_message.Message):
    __slots__ = ("notifications", "routes")
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    notifications: _containers.RepeatedCompositeFieldContainer[Notification]
    routes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, notifications: _Optional[_Iterable[_Union[Notification, _Mapping]]] = ..., routes: _Optional[_Iterable[str]] = ...) -> None: ...

class TestAlertRequest(_message.Message):
    __slots__ = ("route",)
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    route: str
    def __init__(self, route: _Optional[str] = ...) -> None: ...

class TestAlertResponse(_message.Message):
    __slots__ = ("notification",)
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    notification: Notification
    def __init__(self, notification: _Optional[_Union[Notification, _Mapping]] = ...) -> None: ...

class ServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "http_url", "token_required")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HTTP_URL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    version: str
    http_url: str
    token_required: bool
    def __init__(self, version: _Optional[str] = ..., http_url: _Optional[str] = ..., token_required: _Optional[bool] = ...) -> None: ...
