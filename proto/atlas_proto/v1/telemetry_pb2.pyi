import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProtocolVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_VERSION_UNSPECIFIED: _ClassVar[ProtocolVersion]
    PROTOCOL_VERSION_1: _ClassVar[ProtocolVersion]

class OnCritical(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_CRITICAL_UNSPECIFIED: _ClassVar[OnCritical]
    ON_CRITICAL_WARN: _ClassVar[OnCritical]
    ON_CRITICAL_PAUSE: _ClassVar[OnCritical]
    ON_CRITICAL_STOP: _ClassVar[OnCritical]

class Framework(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAMEWORK_UNSPECIFIED: _ClassVar[Framework]
    FRAMEWORK_LIGHTNING: _ClassVar[Framework]
    FRAMEWORK_ACCELERATE: _ClassVar[Framework]
    FRAMEWORK_PYTORCH: _ClassVar[Framework]
    FRAMEWORK_TRANSFORMERS: _ClassVar[Framework]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_PAUSED: _ClassVar[RunStatus]
    RUN_STATUS_STOPPED: _ClassVar[RunStatus]
    RUN_STATUS_COMPLETED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_STALE: _ClassVar[RunStatus]

class CommandKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMAND_KIND_UNSPECIFIED: _ClassVar[CommandKind]
    COMMAND_KIND_PAUSE: _ClassVar[CommandKind]
    COMMAND_KIND_RESUME: _ClassVar[CommandKind]
    COMMAND_KIND_STOP: _ClassVar[CommandKind]
PROTOCOL_VERSION_UNSPECIFIED: ProtocolVersion
PROTOCOL_VERSION_1: ProtocolVersion
ON_CRITICAL_UNSPECIFIED: OnCritical
ON_CRITICAL_WARN: OnCritical
ON_CRITICAL_PAUSE: OnCritical
ON_CRITICAL_STOP: OnCritical
FRAMEWORK_UNSPECIFIED: Framework
FRAMEWORK_LIGHTNING: Framework
FRAMEWORK_ACCELERATE: Framework
FRAMEWORK_PYTORCH: Framework
FRAMEWORK_TRANSFORMERS: Framework
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_PAUSED: RunStatus
RUN_STATUS_STOPPED: RunStatus
RUN_STATUS_COMPLETED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_STALE: RunStatus
COMMAND_KIND_UNSPECIFIED: CommandKind
COMMAND_KIND_PAUSE: CommandKind
COMMAND_KIND_RESUME: CommandKind
COMMAND_KIND_STOP: CommandKind

class ClientMessage(_message.Message):
    __slots__ = ("run_id", "rank", "seq", "session", "run_start", "model_info", "step_batch", "epoch_summary", "log_batch", "run_end", "heartbeat", "command_ack", "dropped", "alert", "metric_batch")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    RUN_START_FIELD_NUMBER: _ClassVar[int]
    MODEL_INFO_FIELD_NUMBER: _ClassVar[int]
    STEP_BATCH_FIELD_NUMBER: _ClassVar[int]
    EPOCH_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    LOG_BATCH_FIELD_NUMBER: _ClassVar[int]
    RUN_END_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ACK_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    METRIC_BATCH_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    rank: int
    seq: int
    session: str
    run_start: RunStart
    model_info: ModelInfo
    step_batch: StepBatch
    epoch_summary: EpochSummary
    log_batch: LogBatch
    run_end: RunEnd
    heartbeat: Heartbeat
    command_ack: CommandAck
    dropped: Dropped
    alert: Alert
    metric_batch: MetricBatch
    def __init__(self, run_id: _Optional[str] = ..., rank: _Optional[int] = ..., seq: _Optional[int] = ..., session: _Optional[str] = ..., run_start: _Optional[_Union[RunStart, _Mapping]] = ..., model_info: _Optional[_Union[ModelInfo, _Mapping]] = ..., step_batch: _Optional[_Union[StepBatch, _Mapping]] = ..., epoch_summary: _Optional[_Union[EpochSummary, _Mapping]] = ..., log_batch: _Optional[_Union[LogBatch, _Mapping]] = ..., run_end: _Optional[_Union[RunEnd, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., command_ack: _Optional[_Union[CommandAck, _Mapping]] = ..., dropped: _Optional[_Union[Dropped, _Mapping]] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ..., metric_batch: _Optional[_Union[MetricBatch, _Mapping]] = ...) -> None: ...

class Dropped(_message.Message):
    __slots__ = ("first_seq", "records", "reason")
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    first_seq: int
    records: int
    reason: str
    def __init__(self, first_seq: _Optional[int] = ..., records: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("ack", "command")
    ACK_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ack: Ack
    command: Command
    def __init__(self, ack: _Optional[_Union[Ack, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("run_id", "rank", "seq", "session", "refused")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    rank: int
    seq: int
    session: str
    refused: str
    def __init__(self, run_id: _Optional[str] = ..., rank: _Optional[int] = ..., seq: _Optional[int] = ..., session: _Optional[str] = ..., refused: _Optional[str] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("command_id", "run_id", "kind", "reason", "issue_check", "issued_at", "sender")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ISSUE_CHECK_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    run_id: str
    kind: CommandKind
    reason: str
    issue_check: str
    issued_at: _timestamp_pb2.Timestamp
    sender: str
    def __init__(self, command_id: _Optional[str] = ..., run_id: _Optional[str] = ..., kind: _Optional[_Union[CommandKind, str]] = ..., reason: _Optional[str] = ..., issue_check: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sender: _Optional[str] = ...) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("kind", "name", "count", "accelerator_available", "hostname")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    count: int
    accelerator_available: bool
    hostname: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., count: _Optional[int] = ..., accelerator_available: _Optional[bool] = ..., hostname: _Optional[str] = ...) -> None: ...

class RunStart(_message.Message):
    __slots__ = ("protocol_version", "project", "run_name", "framework", "hyperparameters", "versions", "device", "world_size", "on_critical", "tags", "started_at", "git_commit", "pause_timeout_s", "thresholds", "pid")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    RUN_NAME_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    ON_CRITICAL_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    GIT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    PAUSE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    protocol_version: ProtocolVersion
    project: str
    run_name: str
    framework: Framework
    hyperparameters: _struct_pb2.Struct
    versions: _containers.ScalarMap[str, str]
    device: DeviceInfo
    world_size: int
    on_critical: OnCritical
    tags: _containers.RepeatedScalarFieldContainer[str]
    started_at: _timestamp_pb2.Timestamp
    git_commit: str
    pause_timeout_s: float
    thresholds: _struct_pb2.Struct
    pid: int
    def __init__(self, protocol_version: _Optional[_Union[ProtocolVersion, str]] = ..., project: _Optional[str] = ..., run_name: _Optional[str] = ..., framework: _Optional[_Union[Framework, str]] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., versions: _Optional[_Mapping[str, str]] = ..., device: _Optional[_Union[DeviceInfo, _Mapping]] = ..., world_size: _Optional[int] = ..., on_critical: _Optional[_Union[OnCritical, str]] = ..., tags: _Optional[_Iterable[str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., git_commit: _Optional[str] = ..., pause_timeout_s: _Optional[float] = ..., thresholds: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., pid: _Optional[int] = ...) -> None: ...

class RunEnd(_message.Message):
    __slots__ = ("status", "error_type", "error_message", "traceback", "ended_at", "total_steps", "epochs")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    error_type: str
    error_message: str
    traceback: str
    ended_at: _timestamp_pb2.Timestamp
    total_steps: int
    epochs: int
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., traceback: _Optional[str] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_steps: _Optional[int] = ..., epochs: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("time", "paused", "step")
    TIME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    paused: bool
    step: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paused: _Optional[bool] = ..., step: _Optional[int] = ...) -> None: ...

class CommandAck(_message.Message):
    __slots__ = ("command_id", "kind", "applied_at", "step")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    kind: CommandKind
    applied_at: _timestamp_pb2.Timestamp
    step: int
    def __init__(self, command_id: _Optional[str] = ..., kind: _Optional[_Union[CommandKind, str]] = ..., applied_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., step: _Optional[int] = ...) -> None: ...

class Layer(_message.Message):
    __slots__ = ("name", "type", "parameters", "pct_of_total", "trainable_parameters", "attributes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PCT_OF_TOTAL_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    parameters: int
    pct_of_total: float
    trainable_parameters: int
    attributes: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., parameters: _Optional[int] = ..., pct_of_total: _Optional[float] = ..., trainable_parameters: _Optional[int] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ShapeStage(_message.Message):
    __slots__ = ("layer", "input_shape", "output_shape")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    layer: str
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    output_shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, layer: _Optional[str] = ..., input_shape: _Optional[_Iterable[int]] = ..., output_shape: _Optional[_Iterable[int]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_class", "total_parameters", "trainable_parameters", "layers", "module_tree", "sequential_path", "dimension_flow")
    MODEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    MODULE_TREE_FIELD_NUMBER: _ClassVar[int]
    SEQUENTIAL_PATH_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FLOW_FIELD_NUMBER: _ClassVar[int]
    model_class: str
    total_parameters: int
    trainable_parameters: int
    layers: _containers.RepeatedCompositeFieldContainer[Layer]
    module_tree: _struct_pb2.Struct
    sequential_path: _containers.RepeatedScalarFieldContainer[str]
    dimension_flow: _containers.RepeatedCompositeFieldContainer[ShapeStage]
    def __init__(self, model_class: _Optional[str] = ..., total_parameters: _Optional[int] = ..., trainable_parameters: _Optional[int] = ..., layers: _Optional[_Iterable[_Union[Layer, _Mapping]]] = ..., module_tree: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., sequential_path: _Optional[_Iterable[str]] = ..., dimension_flow: _Optional[_Iterable[_Union[ShapeStage, _Mapping]]] = ...) -> None: ...

class StepSample(_message.Message):
    __slots__ = ("step", "epoch", "loss", "lr", "grad_norm", "time", "step_time_s", "batch_size", "amp_skipped", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STEP_TIME_S_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    AMP_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    step: int
    epoch: int
    loss: float
    lr: float
    grad_norm: float
    time: _timestamp_pb2.Timestamp
    step_time_s: float
    batch_size: int
    amp_skipped: bool
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, step: _Optional[int] = ..., epoch: _Optional[int] = ..., loss: _Optional[float] = ..., lr: _Optional[float] = ..., grad_norm: _Optional[float] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., step_time_s: _Optional[float] = ..., batch_size: _Optional[int] = ..., amp_skipped: _Optional[bool] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class StepBatch(_message.Message):
    __slots__ = ("samples",)
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[StepSample]
    def __init__(self, samples: _Optional[_Iterable[_Union[StepSample, _Mapping]]] = ...) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ("step", "epoch", "time", "values")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    step: int
    epoch: int
    time: _timestamp_pb2.Timestamp
    values: _containers.ScalarMap[str, float]
    def __init__(self, step: _Optional[int] = ..., epoch: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., values: _Optional[_Mapping[str, float]] = ...) -> None: ...

class MetricBatch(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[MetricPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[MetricPoint, _Mapping]]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("title", "text", "level", "time", "epoch", "step")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    title: str
    text: str
    level: str
    time: _timestamp_pb2.Timestamp
    epoch: int
    step: int
    def __init__(self, title: _Optional[str] = ..., text: _Optional[str] = ..., level: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., epoch: _Optional[int] = ..., step: _Optional[int] = ...) -> None: ...

class LossStats(_message.Message):
    __slots__ = ("mean", "std", "min", "max", "count", "nonfinite_count")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    NONFINITE_COUNT_FIELD_NUMBER: _ClassVar[int]
    mean: float
    std: float
    min: float
    max: float
    count: int
    nonfinite_count: int
    def __init__(self, mean: _Optional[float] = ..., std: _Optional[float] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., count: _Optional[int] = ..., nonfinite_count: _Optional[int] = ...) -> None: ...

class Throughput(_message.Message):
    __slots__ = ("samples_per_sec", "batches_per_sec", "tokens_per_sec", "samples_processed", "batches", "step_time_p50_s", "step_time_p95_s", "step_time_max_s")
    SAMPLES_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    BATCHES_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    STEP_TIME_P50_S_FIELD_NUMBER: _ClassVar[int]
    STEP_TIME_P95_S_FIELD_NUMBER: _ClassVar[int]
    STEP_TIME_MAX_S_FIELD_NUMBER: _ClassVar[int]
    samples_per_sec: float
    batches_per_sec: float
    tokens_per_sec: float
    samples_processed: int
    batches: int
    step_time_p50_s: float
    step_time_p95_s: float
    step_time_max_s: float
    def __init__(self, samples_per_sec: _Optional[float] = ..., batches_per_sec: _Optional[float] = ..., tokens_per_sec: _Optional[float] = ..., samples_processed: _Optional[int] = ..., batches: _Optional[int] = ..., step_time_p50_s: _Optional[float] = ..., step_time_p95_s: _Optional[float] = ..., step_time_max_s: _Optional[float] = ...) -> None: ...

class Memory(_message.Message):
    __slots__ = ("process_rss_mb", "cuda_allocated_mb", "cuda_reserved_mb", "cuda_peak_allocated_mb")
    PROCESS_RSS_MB_FIELD_NUMBER: _ClassVar[int]
    CUDA_ALLOCATED_MB_FIELD_NUMBER: _ClassVar[int]
    CUDA_RESERVED_MB_FIELD_NUMBER: _ClassVar[int]
    CUDA_PEAK_ALLOCATED_MB_FIELD_NUMBER: _ClassVar[int]
    process_rss_mb: float
    cuda_allocated_mb: float
    cuda_reserved_mb: float
    cuda_peak_allocated_mb: float
    def __init__(self, process_rss_mb: _Optional[float] = ..., cuda_allocated_mb: _Optional[float] = ..., cuda_reserved_mb: _Optional[float] = ..., cuda_peak_allocated_mb: _Optional[float] = ...) -> None: ...

class System(_message.Message):
    __slots__ = ("cpu_percent", "ram_percent")
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RAM_PERCENT_FIELD_NUMBER: _ClassVar[int]
    cpu_percent: float
    ram_percent: float
    def __init__(self, cpu_percent: _Optional[float] = ..., ram_percent: _Optional[float] = ...) -> None: ...

class GpuStats(_message.Message):
    __slots__ = ("index", "name", "utilization_percent", "memory_used_mb", "memory_total_mb", "power_watts", "temperature_c")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_MB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_MB_FIELD_NUMBER: _ClassVar[int]
    POWER_WATTS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_C_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    utilization_percent: float
    memory_used_mb: float
    memory_total_mb: float
    power_watts: float
    temperature_c: float
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., utilization_percent: _Optional[float] = ..., memory_used_mb: _Optional[float] = ..., memory_total_mb: _Optional[float] = ..., power_watts: _Optional[float] = ..., temperature_c: _Optional[float] = ...) -> None: ...

class ProfilerOp(_message.Message):
    __slots__ = ("name", "calls", "cpu_time_ms", "cuda_time_ms", "pct_total")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    CPU_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CUDA_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PCT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    calls: int
    cpu_time_ms: float
    cuda_time_ms: float
    pct_total: float
    def __init__(self, name: _Optional[str] = ..., calls: _Optional[int] = ..., cpu_time_ms: _Optional[float] = ..., cuda_time_ms: _Optional[float] = ..., pct_total: _Optional[float] = ...) -> None: ...

class LayerTime(_message.Message):
    __slots__ = ("name", "time_ms", "pct_total")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PCT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    time_ms: float
    pct_total: float
    def __init__(self, name: _Optional[str] = ..., time_ms: _Optional[float] = ..., pct_total: _Optional[float] = ...) -> None: ...

class ProfilerSummary(_message.Message):
    __slots__ = ("step", "top_ops", "per_layer", "total_cpu_time_ms", "total_cuda_time_ms", "forward_ms", "backward_ms")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOP_OPS_FIELD_NUMBER: _ClassVar[int]
    PER_LAYER_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CPU_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CUDA_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    FORWARD_MS_FIELD_NUMBER: _ClassVar[int]
    BACKWARD_MS_FIELD_NUMBER: _ClassVar[int]
    step: int
    top_ops: _containers.RepeatedCompositeFieldContainer[ProfilerOp]
    per_layer: _containers.RepeatedCompositeFieldContainer[LayerTime]
    total_cpu_time_ms: float
    total_cuda_time_ms: float
    forward_ms: float
    backward_ms: float
    def __init__(self, step: _Optional[int] = ..., top_ops: _Optional[_Iterable[_Union[ProfilerOp, _Mapping]]] = ..., per_layer: _Optional[_Iterable[_Union[LayerTime, _Mapping]]] = ..., total_cpu_time_ms: _Optional[float] = ..., total_cuda_time_ms: _Optional[float] = ..., forward_ms: _Optional[float] = ..., backward_ms: _Optional[float] = ...) -> None: ...

class LayerStats(_message.Message):
    __slots__ = ("name", "activation_mean", "activation_std", "activation_var_of_means", "zero_fraction", "saturated_fraction", "gradient_norm_mean", "weight_sparsity", "update_ratio", "samples", "update_ratio_max")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_MEAN_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_STD_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_VAR_OF_MEANS_FIELD_NUMBER: _ClassVar[int]
    ZERO_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SATURATED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_NORM_MEAN_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_SPARSITY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_RATIO_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    UPDATE_RATIO_MAX_FIELD_NUMBER: _ClassVar[int]
    name: str
    activation_mean: float
    activation_std: float
    activation_var_of_means: float
    zero_fraction: float
    saturated_fraction: float
    gradient_norm_mean: float
    weight_sparsity: float
    update_ratio: float
    samples: int
    update_ratio_max: float
    def __init__(self, name: _Optional[str] = ..., activation_mean: _Optional[float] = ..., activation_std: _Optional[float] = ..., activation_var_of_means: _Optional[float] = ..., zero_fraction: _Optional[float] = ..., saturated_fraction: _Optional[float] = ..., gradient_norm_mean: _Optional[float] = ..., weight_sparsity: _Optional[float] = ..., update_ratio: _Optional[float] = ..., samples: _Optional[int] = ..., update_ratio_max: _Optional[float] = ...) -> None: ...

class LayerCorrelation(_message.Message):
    __slots__ = ("layer_a", "layer_b", "correlation")
    LAYER_A_FIELD_NUMBER: _ClassVar[int]
    LAYER_B_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_FIELD_NUMBER: _ClassVar[int]
    layer_a: str
    layer_b: str
    correlation: float
    def __init__(self, layer_a: _Optional[str] = ..., layer_b: _Optional[str] = ..., correlation: _Optional[float] = ...) -> None: ...

class LayerHealth(_message.Message):
    __slots__ = ("layers", "correlations")
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    CORRELATIONS_FIELD_NUMBER: _ClassVar[int]
    layers: _containers.RepeatedCompositeFieldContainer[LayerStats]
    correlations: _containers.RepeatedCompositeFieldContainer[LayerCorrelation]
    def __init__(self, layers: _Optional[_Iterable[_Union[LayerStats, _Mapping]]] = ..., correlations: _Optional[_Iterable[_Union[LayerCorrelation, _Mapping]]] = ...) -> None: ...

class Carbon(_message.Message):
    __slots__ = ("epoch_co2_kg", "epoch_energy_kwh", "power_draw_watts", "cumulative_co2_kg", "cumulative_energy_kwh", "carbon_intensity_g_per_kwh", "country_iso", "epoch_cpu_energy_kwh", "epoch_gpu_energy_kwh", "epoch_ram_energy_kwh")
    EPOCH_CO2_KG_FIELD_NUMBER: _ClassVar[int]
    EPOCH_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    POWER_DRAW_WATTS_FIELD_NUMBER: _ClassVar[int]
    CUMULATIVE_CO2_KG_FIELD_NUMBER: _ClassVar[int]
    CUMULATIVE_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    CARBON_INTENSITY_G_PER_KWH_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_ISO_FIELD_NUMBER: _ClassVar[int]
    EPOCH_CPU_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    EPOCH_GPU_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    EPOCH_RAM_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    epoch_co2_kg: float
    epoch_energy_kwh: float
    power_draw_watts: float
    cumulative_co2_kg: float
    cumulative_energy_kwh: float
    carbon_intensity_g_per_kwh: float
    country_iso: str
    epoch_cpu_energy_kwh: float
    epoch_gpu_energy_kwh: float
    epoch_ram_energy_kwh: float
    def __init__(self, epoch_co2_kg: _Optional[float] = ..., epoch_energy_kwh: _Optional[float] = ..., power_draw_watts: _Optional[float] = ..., cumulative_co2_kg: _Optional[float] = ..., cumulative_energy_kwh: _Optional[float] = ..., carbon_intensity_g_per_kwh: _Optional[float] = ..., country_iso: _Optional[str] = ..., epoch_cpu_energy_kwh: _Optional[float] = ..., epoch_gpu_energy_kwh: _Optional[float] = ..., epoch_ram_energy_kwh: _Optional[float] = ...) -> None: ...

class LogCounts(_message.Message):
    __slots__ = ("console", "warning", "error")
    CONSOLE_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    console: int
    warning: int
    error: int
    def __init__(self, console: _Optional[int] = ..., warning: _Optional[int] = ..., error: _Optional[int] = ...) -> None: ...

class EpochSummary(_message.Message):
    __slots__ = ("epoch", "duration_seconds", "started_at", "ended_at", "global_step", "loss", "val_metrics", "train_metrics", "throughput", "memory", "system", "gpus", "lr", "grad_norm", "profiler", "layer_health", "carbon", "log_counts", "amp_skipped_steps", "grad_accumulation", "grad_norm_max", "facts")
    class ValMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class TrainMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_STEP_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    VAL_METRICS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_METRICS_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    PROFILER_FIELD_NUMBER: _ClassVar[int]
    LAYER_HEALTH_FIELD_NUMBER: _ClassVar[int]
    CARBON_FIELD_NUMBER: _ClassVar[int]
    LOG_COUNTS_FIELD_NUMBER: _ClassVar[int]
    AMP_SKIPPED_STEPS_FIELD_NUMBER: _ClassVar[int]
    GRAD_ACCUMULATION_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_MAX_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    duration_seconds: float
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    global_step: int
    loss: LossStats
    val_metrics: _containers.ScalarMap[str, float]
    train_metrics: _containers.ScalarMap[str, float]
    throughput: Throughput
    memory: Memory
    system: System
    gpus: _containers.RepeatedCompositeFieldContainer[GpuStats]
    lr: _containers.RepeatedScalarFieldContainer[float]
    grad_norm: float
    profiler: ProfilerSummary
    layer_health: LayerHealth
    carbon: Carbon
    log_counts: LogCounts
    amp_skipped_steps: int
    grad_accumulation: int
    grad_norm_max: float
    facts: _struct_pb2.Struct
    def __init__(self, epoch: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., global_step: _Optional[int] = ..., loss: _Optional[_Union[LossStats, _Mapping]] = ..., val_metrics: _Optional[_Mapping[str, float]] = ..., train_metrics: _Optional[_Mapping[str, float]] = ..., throughput: _Optional[_Union[Throughput, _Mapping]] = ..., memory: _Optional[_Union[Memory, _Mapping]] = ..., system: _Optional[_Union[System, _Mapping]] = ..., gpus: _Optional[_Iterable[_Union[GpuStats, _Mapping]]] = ..., lr: _Optional[_Iterable[float]] = ..., grad_norm: _Optional[float] = ..., profiler: _Optional[_Union[ProfilerSummary, _Mapping]] = ..., layer_health: _Optional[_Union[LayerHealth, _Mapping]] = ..., carbon: _Optional[_Union[Carbon, _Mapping]] = ..., log_counts: _Optional[_Union[LogCounts, _Mapping]] = ..., amp_skipped_steps: _Optional[int] = ..., grad_accumulation: _Optional[int] = ..., grad_norm_max: _Optional[float] = ..., facts: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class LogRecord(_message.Message):
    __slots__ = ("time", "level", "logger", "message", "epoch", "kind", "rank")
    TIME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    LOGGER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    level: str
    logger: str
    message: str
    epoch: int
    kind: str
    rank: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., level: _Optional[str] = ..., logger: _Optional[str] = ..., message: _Optional[str] = ..., epoch: _Optional[int] = ..., kind: _Optional[str] = ..., rank: _Optional[int] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[LogRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[LogRecord, _Mapping]]] = ...) -> None: ...
