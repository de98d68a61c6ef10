"""Typed telemetry records: what the collector builds from protobuf and what an exported run holds.

Field names follow the telemetry payload of the system reference (section 7.3) with the nesting flattened:
``loss.train_mean`` is ``EpochRecord.train_mean``, ``throughput.samples_per_sec`` is ``samples_per_sec``,
``memory.process_rss_mb`` is ``process_rss_mb``, ``log_counts.error`` is ``log_error_count`` and so on.
A value that was not measured is ``None``; nothing here invents one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from . import _codec
from ._exceptions import RecordError

__all__ = [
    "CarbonRecord",
    "CorrelationRecord",
    "EpochRecord",
    "GpuRecord",
    "LayerHealthRecord",
    "LayerTime",
    "LogRecord",
    "ProfilerOp",
    "ProfilerRecord",
    "StepRecord",
]


class _Record:
    """Mixin: ``to_dict``/``from_dict`` through :mod:`._codec`."""

    __slots__ = ()
    _nested: ClassVar[Mapping[str, tuple[str, Any]]] = {}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (non-finite floats as ``"NaN"``/``"Infinity"``/``"-Infinity"``)."""
        out = _codec.encode(self)
        assert isinstance(out, dict)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """The inverse of :meth:`to_dict`; unknown keys or wrong types raise :class:`RecordError`."""
        return _codec.from_dict(cls, data, cls._nested)


def _require_index(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError(f"{owner}.{name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class GpuRecord(_Record):
    """One GPU during one epoch (NVML); every value is an epoch mean."""

    index: int = 0
    utilization_percent: float | None = None  # %
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    power_watts: float | None = None
    temperature_c: float | None = None


@dataclass(frozen=True, slots=True)
class ProfilerOp(_Record):
    """One operator of the profiler's top list."""

    name: str
    cpu_time_us: float | None = None
    cuda_time_us: float | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class LayerTime(_Record):
    """One layer's share of the profiled time, in percent (0-100) as in the payload's ``pct_total``."""

    name: str
    pct_total: float


@dataclass(frozen=True, slots=True)
class ProfilerRecord(_Record):
    """The profiled step(s) of one epoch. Times in microseconds."""

    top_ops: tuple[ProfilerOp, ...] = ()
    per_layer: tuple[LayerTime, ...] = ()
    total_cpu_time_us: float | None = None
    total_cuda_time_us: float | None = None
    total_fwd_us: float | None = None
    total_bwd_us: float | None = None

    _nested: ClassVar[Mapping[str, tuple[str, Any]]] = {
        "top_ops": ("tuple", ProfilerOp),
        "per_layer": ("tuple", LayerTime),
    }


@dataclass(frozen=True, slots=True)
class LayerHealthRecord(_Record):
    """Activation, gradient and weight statistics of one layer over one epoch."""

    activation_mean: float | None = None
    activation_std: float | None = None
    activation_var_of_means: float | None = None  # variance across batches of the batch-mean activation
    zero_fraction: float | None = None  # fraction of units whose activation was exactly zero on every batch
    saturated_fraction: float | None = None  # fraction of units in the flat part of tanh/sigmoid
    gradient_norm_mean: float | None = None
    weight_sparsity: float | None = None  # fraction of near-zero weights
    update_ratio: float | None = None  # |update| / |weight|
    update_ratio_max: float | None = None  # the largest per-step |update| / |weight| of the epoch
    samples: int | None = None  # sampled batches (steps) behind the activation statistics; None when unknown


@dataclass(frozen=True, slots=True)
class CorrelationRecord(_Record):
    """Mean activation correlation between two consecutive layers of equal width."""

    layer_a: str
    layer_b: str
    correlation: float


@dataclass(frozen=True, slots=True)
class CarbonRecord(_Record):
    """CodeCarbon's account of one epoch."""

    epoch_co2_kg: float | None = None
    epoch_energy_kwh: float | None = None
    power_draw_watts: float | None = None
    cumulative_co2_kg: float | None = None
    cumulative_energy_kwh: float | None = None
    carbon_intensity_g_per_kwh: float | None = None
    cpu_energy_kwh: float | None = None
    gpu_energy_kwh: float | None = None


@dataclass(frozen=True, slots=True)
class EpochRecord(_Record):
    """Everything measured about one epoch on one rank."""

    epoch: int
    rank: int = 0
    duration_seconds: float | None = None
    end_time: float | None = None  # seconds since the epoch (Unix), given by the caller
    # loss
    train_mean: float | None = None
    train_std: float | None = None
    train_min: float | None = None
    train_max: float | None = None
    count: int | None = None  # batches in the loss statistics
    val: dict[str, float] = field(default_factory=dict)  # every validation metric logged, e.g. val_loss, val_acc
    # throughput
    samples_per_sec: float | None = None
    batches_per_sec: float | None = None
    tokens_per_sec: float | None = None
    samples_processed: int | None = None
    step_time_p50: float | None = None  # seconds
    step_time_p95: float | None = None
    step_time_max: float | None = None
    # memory
    process_rss_mb: float | None = None
    cuda_allocated_mb: float | None = None
    cuda_reserved_mb: float | None = None
    cuda_peak_allocated_mb: float | None = None
    # system
    cpu_percent: float | None = None
    ram_percent: float | None = None
    gpus: tuple[GpuRecord, ...] = ()
    # optimisation
    lr: tuple[float, ...] = ()  # one per param group
    grad_norm: float | None = None  # mean total gradient norm over the epoch's optimizer steps
    grad_norm_max: float | None = None  # the largest sampled total gradient norm of the epoch
    amp_skipped_steps: int = 0  # optimizer steps the AMP GradScaler skipped for inf/NaN gradients
    grad_accumulation: int = 1  # micro-batches per optimizer step
    # deep telemetry
    profiler: ProfilerRecord | None = None
    layers: dict[str, LayerHealthRecord] = field(default_factory=dict)  # in model order, input side first
    correlations: tuple[CorrelationRecord, ...] = ()
    carbon: CarbonRecord | None = None
    # logs
    log_console_count: int | None = None
    log_error_count: int | None = None
    # how the run is set up (optimizer, scheduler, inputs, targets, outputs, modes; ARCHITECTURE.md lists the
    # keys): the keys new or changed since the previous epoch's record; the engine keeps the merged whole
    facts: dict[str, Any] = field(default_factory=dict)

    _nested: ClassVar[Mapping[str, tuple[str, Any]]] = {
        "gpus": ("tuple", GpuRecord),
        "profiler": ("one", ProfilerRecord),
        "layers": ("dict", LayerHealthRecord),
        "correlations": ("tuple", CorrelationRecord),
        "carbon": ("one", CarbonRecord),
    }

    def __post_init__(self) -> None:
        _require_index("EpochRecord", "epoch", self.epoch)
        _require_index("EpochRecord", "rank", self.rank)
        _require_index("EpochRecord", "amp_skipped_steps", self.amp_skipped_steps)
        if isinstance(self.grad_accumulation, bool) or not isinstance(self.grad_accumulation, int) \
                or self.grad_accumulation < 1:
            raise RecordError(f"EpochRecord.grad_accumulation must be an integer >= 1, got {self.grad_accumulation!r}")

    @property
    def val_loss(self) -> float | None:
        """``val["val_loss"]`` (or ``val["loss"]``) when logged."""
        v = self.val.get("val_loss", self.val.get("loss"))
        return None if v is None else float(v)

    @property
    def val_accuracy(self) -> float | None:
        for key in ("val_acc", "val_accuracy", "accuracy", "acc"):
            if key in self.val:
                return float(self.val[key])
        return None

    @property
    def max_lr(self) -> float | None:
        return max(self.lr) if self.lr else None


@dataclass(frozen=True, slots=True)
class StepRecord(_Record):
    """One training batch.

    ``amp_skipped``: the AMP GradScaler found inf/NaN gradients and skipped this optimizer step (normal while the
    scale is calibrated). ``accumulating``: a micro-batch of gradient accumulation (no optimizer step; its gradient
    norm is partial). Neither ever counts as a non-finite loss or an exploding gradient.
    """

    step: int
    epoch: int
    rank: int = 0
    loss: float | None = None  # may be NaN or inf
    lr: float | None = None
    grad_norm: float | None = None
    time: float | None = None  # seconds since the Unix epoch, given by the caller
    amp_skipped: bool = False
    accumulating: bool = False

    def __post_init__(self) -> None:
        _require_index("StepRecord", "step", self.step)
        _require_index("StepRecord", "epoch", self.epoch)
        _require_index("StepRecord", "rank", self.rank)

    @classmethod
    def from_wire(cls, step: int, epoch: int, rank: int, loss: float | None, lr: float | None,
                  grad_norm: float | None, time: float | None, amp_skipped: bool) -> StepRecord:
        """The same record, built without the checks of ``__init__``, for values that cannot fail them: the
        unsigned integer fields of a decoded ``atlas.v1`` StepSample. A collector builds up to 2,000 of these per
        run and update, and the frozen dataclass's ``__init__`` was over half of its CPU time per ingested step
        (1.6 vs 0.6 us, ``benchmarks/ingest.py``)."""
        record = _new(cls)
        s = _STEP_SETTERS
        s[0](record, step), s[1](record, epoch), s[2](record, rank), s[3](record, loss), s[4](record, lr)
        s[5](record, grad_norm), s[6](record, time), s[7](record, amp_skipped), s[8](record, False)
        return record


_new = object.__new__
# the slot descriptors' setters, in StepRecord's field order (a frozen dataclass refuses plain assignment)
_STEP_SETTERS = tuple(StepRecord.__dict__[f.name].__set__ for f in fields(StepRecord))

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class LogRecord(_Record):
    """One captured log line. ``level`` is a :mod:`logging` level name."""

    level: str
    message: str
    epoch: int | None = None
    time: float | None = None
    rank: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.level, str) or self.level.upper() not in _LEVELS:
            raise RecordError(f"LogRecord.level must be one of {', '.join(_LEVELS)}, got {self.level!r}")
        if self.epoch is not None:
            _require_index("LogRecord", "epoch", self.epoch)

    @property
    def is_error(self) -> bool:
        return self.level.upper() in ("ERROR", "CRITICAL")
