"""Per-run state the rules read: bounded windows and running aggregates, never the whole history.

Everything here is updated in O(1) (or O(window)) per record, so one engine update costs the same at epoch 10 and
at epoch 10,000. The only structures that grow with the run are the per-epoch prefix sums of duration, energy, CO2
and samples (appended once per epoch, read by index) that the Green-AI account needs for "wasted since epoch k".
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._architecture import Architecture, RunInfo, detect_arch_type
from ._records import EpochRecord, LogRecord, StepRecord
from ._thresholds import Thresholds

__all__ = ["Context", "LossLevel", "RunState", "finite", "median", "trimmed_mean"]


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def median(values: Iterable[float]) -> float | None:
    data = sorted(values)
    if not data:
        return None
    mid = len(data) // 2
    return data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2.0


def trimmed_mean(values: Iterable[float], trim: float) -> float | None:
    """The mean without the lowest and highest ``trim`` share of the values (rounded down, so short series keep
    every value they cannot spare)."""
    data = sorted(values)
    if not data:
        return None
    k = int(len(data) * trim)
    kept = data[k:len(data) - k] or data
    return sum(kept) / len(kept)


@dataclass(slots=True)
class LossLevel:
    """The training loss level read from the step series (rank 0): the trimmed mean of the last ``size`` finite step
    losses, AMP-skipped steps left out. ``initial`` is where the run started: the larger of the first step's loss
    and the first full window's level (a fast learner's first window is already far below its start).
    ``best`` is the lowest level so far, and ``noise`` how far a level of this run wanders by chance: the relative
    standard error of a level, from the mean over every window so far of its robust relative spread (1.4826 x MAD /
    median, at most 1) over the square root of the values a level keeps. O(size) per step."""

    size: int
    trim: float
    recent: deque[float] = field(default_factory=deque)
    first: float | None = None
    level: float | None = None
    step: int | None = None  # the step whose loss made the current level
    epoch: int | None = None
    initial: float | None = None
    best: float | None = None
    best_step: int | None = None
    spread_sum: float = 0.0
    windows: int = 0

    def __post_init__(self) -> None:
        self.recent = deque(self.recent, maxlen=max(1, self.size))

    def add(self, loss: float, step: int, epoch: int) -> bool:
        """Fold in one step's loss; True when it made a new level."""
        self.recent.append(loss)
        if self.first is None:
            self.first = loss
        if len(self.recent) < self.size:
            return False
        self.level = trimmed_mean(self.recent, self.trim)
        self.step, self.epoch = step, epoch
        if self.initial is None:
            self.initial = max(self.first, self.level)  # type: ignore[type-var]
        if self.best is None or self.level < self.best:  # type: ignore[operator]
            self.best, self.best_step = self.level, step
        centre = median(self.recent) or 0.0
        mad = median(abs(x - centre) for x in self.recent) or 0.0
        self.spread_sum += min(1.0, 1.4826 * mad / abs(centre)) if centre else 1.0
        self.windows += 1
        return True

    @property
    def noise(self) -> float:
        if not self.windows:
            return 0.0
        kept = max(1, len(self.recent) - 2 * int(len(self.recent) * self.trim))
        return self.spread_sum / self.windows / math.sqrt(kept)


@dataclass(slots=True)
class _Totals:
    """Cumulative sums up to and including one epoch."""

    duration: float = 0.0
    co2_kg: float = 0.0
    energy_kwh: float = 0.0
    samples: int = 0
    has_duration: bool = False
    has_carbon: bool = False
    has_samples: bool = False


@dataclass(slots=True)
class RunState:
    """What the rules may read. Updated by the engine only."""

    thresholds: Thresholds
    run_info: RunInfo
    architecture: Architecture | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # how the run is set up, merged over the epochs (rank 0)
    lr_initial: float | None = None  # the largest param-group LR the run started with (facts, else epoch 0)
    lr_lowest: float | None = None  # the lowest end-of-epoch LR so far (largest group)
    grad_max_history: list[float] = field(default_factory=list)  # each epoch's largest sampled gradient norm
    arch_type: str = "generic"
    window: deque[EpochRecord] = field(default_factory=deque)
    profiled: deque[EpochRecord] = field(default_factory=deque)
    epochs_seen: int = 0
    current: EpochRecord | None = None
    first_loss: float | None = None
    best_train: float | None = None
    best_train_epoch: int | None = None
    best_val: float | None = None
    best_val_epoch: int | None = None
    first_val_accuracy: float | None = None
    first_val_accuracy_epoch: int | None = None
    peak_throughput: float | None = None
    peak_throughput_epoch: int | None = None
    rss_baseline: float | None = None
    rss_baseline_epoch: int | None = None
    gpu_mem_baseline: float | None = None
    gpu_mem_baseline_epoch: int | None = None
    co2_sum: float = 0.0
    co2_count: int = 0
    diminishing_since: int | None = None
    totals: dict[int, _Totals] = field(default_factory=dict)
    running: _Totals = field(default_factory=_Totals)
    power_sum: float = 0.0
    power_count: int = 0
    grad_history: deque[float] = field(default_factory=deque)
    loss_level: LossLevel = field(default_factory=lambda: LossLevel(size=1, trim=0.0))
    lowest_train: float | None = None  # the lowest epoch-mean training loss so far (no min-delta)
    lowest_train_epoch: int | None = None
    start_loss: float | None = None  # where training started, from epoch 0 alone: its worst batch (the untrained
    # model's first ones, as a rule) or its mean
    step_fired: dict[int, dict[str, int]] = field(default_factory=dict)
    steps_seen: dict[int, int] = field(default_factory=dict)
    rank_durations: dict[int, dict[int, float]] = field(default_factory=dict)
    last_activity: float | None = None
    layer_health_seen: bool = False
    log_errors: int = 0  # error-level LogRecords seen
    epoch_errors: int = 0  # sum of EpochRecord.log_error_count (the same errors, counted by the trainer)
    errors_by_epoch: dict[int, int] = field(default_factory=dict)
    first_error: str | None = None
    last_error: str | None = None

    def __post_init__(self) -> None:
        th = self.thresholds
        size = 2 + max(
            th.slow_epoch_window, th.overfitting_window, th.lr_oscillation_window, th.lr_too_low_window,
            th.loss_plateau_window, th.chance_epochs, th.loss_divergence_epochs, th.data_leakage_epochs,
            th.throughput_drop_epochs, th.low_gpu_utilization_epochs, th.diminishing_returns_warn_epochs,
            th.dead_layer_epochs, th.vanishing_gradient_epochs, th.activation_collapse_epochs, th.early_stopping_patience,
            th.frozen_output_epochs, th.throughput_drop_epochs + th.throughput_reference_epochs,
        )
        self.window = deque(maxlen=size)
        self.profiled = deque(maxlen=max(1, th.profiler_consistent_epochs))
        self.grad_history = deque(maxlen=max(1, th.exploding_grad_history))
        self.loss_level = LossLevel(size=max(1, th.loss_level_steps), trim=th.loss_level_trim_pct)

    # ----------------------------------------------------------------------------------------------- reading --
    def recent(self, n: int) -> list[EpochRecord]:
        """The last ``n`` epochs (oldest first), fewer early in the run."""
        if n <= 0:
            return []
        return list(self.window)[-n:]

    def previous(self) -> EpochRecord | None:
        return self.window[-2] if len(self.window) >= 2 else None

    def epochs_since_best(self) -> tuple[int | None, str | None]:
        """Epochs since the best validation loss (or, without one, the best training loss)."""
        cur = self.current
        if cur is None:
            return None, None
        if self.best_val_epoch is not None:
            return cur.epoch - self.best_val_epoch, "val_loss"
        if self.best_train_epoch is not None:
            return cur.epoch - self.best_train_epoch, "train_loss"
        return None, None

    def optimal_stop(self) -> tuple[int | None, str | None]:
        """The epoch training could have stopped at, and what that is based on; ``(None, basis)`` if not yet.

        With a validation loss: its best epoch, once ``early_stopping_patience`` epochs passed without a new best
        (EarlyStopping semantics). Without one: the best training-loss epoch on the same rule, or the epoch before
        a run of at least ``patience`` epochs of diminishing returns.
        """
        cur = self.current
        if cur is None:
            return None, None
        patience = self.thresholds.early_stopping_patience
        since, basis = self.epochs_since_best()
        if since is not None and since >= patience:
            return cur.epoch - since, basis
        if basis == "val_loss":
            return None, basis
        if self.diminishing_since is not None and cur.epoch - self.diminishing_since + 1 >= patience:
            stop = self.diminishing_since - 1
            if stop in self.totals:
                return stop, "diminishing_returns"
        return None, basis

    def total_at(self, epoch: int) -> _Totals | None:
        return self.totals.get(epoch)

    def fired_in_epoch(self, epoch: int, check: str) -> int:
        return self.step_fired.get(epoch, {}).get(check, 0)

    # ----------------------------------------------------------------------------------------------- writing --
    def set_architecture(self, architecture: Architecture) -> None:
        self.architecture = architecture
        self.arch_type = detect_arch_type(architecture)

    def observe_epoch(self, rec: EpochRecord) -> None:
        th = self.thresholds
        self.window.append(rec)
        self.current = rec
        if rec.facts:
            self.facts.update(rec.facts)
        if self.lr_initial is None:
            groups = [g.get("initial_lr", g.get("lr")) for o in self.facts.get("optimizers", ()) or ()
                      for g in (o.get("groups") or ()) if isinstance(g, dict)]
            groups = [float(v) for v in groups if isinstance(v, (int, float)) and v > 0]
            self.lr_initial = max(groups) if groups else None
        if rec.max_lr is not None and math.isfinite(rec.max_lr):
            if self.lr_initial is None:
                self.lr_initial = rec.max_lr
            self.lr_lowest = rec.max_lr if self.lr_lowest is None else min(self.lr_lowest, rec.max_lr)
        if finite(rec.grad_norm_max):
            self.grad_max_history.append(float(rec.grad_norm_max))  # type: ignore[arg-type]
        index = self.epochs_seen
        self.epochs_seen += 1
        if rec.profiler is not None and rec.profiler.per_layer:
            self.profiled.append(rec)
        if rec.layers:
            self.layer_health_seen = True
        if finite(rec.end_time):
            self.last_activity = max(self.last_activity or -math.inf, float(rec.end_time))  # type: ignore[arg-type]
        loss = rec.train_mean
        if finite(loss):
            assert loss is not None
            if self.first_loss is None:
                self.first_loss = loss
                self.start_loss = max(loss, rec.train_max) if finite(rec.train_max) else loss  # type: ignore[type-var]
            if self.lowest_train is None or loss < self.lowest_train:
                self.lowest_train, self.lowest_train_epoch = loss, rec.epoch
            delta = th.early_stopping_min_delta_pct
            if self.best_train is None or loss < self.best_train - abs(self.best_train) * delta:
                self.best_train, self.best_train_epoch = loss, rec.epoch
            cumulative = self.first_loss - loss
            prev = self.previous()
            if cumulative <= 0:
                self.diminishing_since = None
            elif prev is not None and finite(prev.train_mean):
                marginal = prev.train_mean - loss  # type: ignore[operator]
                if marginal / cumulative < th.diminishing_returns_pct:
                    if self.diminishing_since is None:
                        self.diminishing_since = rec.epoch
                else:
                    self.diminishing_since = None
        acc = rec.val_accuracy
        if self.first_val_accuracy is None and finite(acc):
            self.first_val_accuracy, self.first_val_accuracy_epoch = acc, rec.epoch
        val = rec.val_loss
        if finite(val):
            assert val is not None
            if self.best_val is None or val < self.best_val - abs(self.best_val) * th.early_stopping_min_delta_pct:
                self.best_val, self.best_val_epoch = val, rec.epoch
        if finite(rec.samples_per_sec) and (self.peak_throughput is None or rec.samples_per_sec > self.peak_throughput):  # type: ignore[operator]
            self.peak_throughput, self.peak_throughput_epoch = rec.samples_per_sec, rec.epoch
        if index == th.memory_baseline_epoch or (self.rss_baseline is None and index > th.memory_baseline_epoch):
            if finite(rec.process_rss_mb):
                self.rss_baseline, self.rss_baseline_epoch = rec.process_rss_mb, rec.epoch
        if index == th.gpu_memory_baseline_epoch or (self.gpu_mem_baseline is None
                                                     and index > th.gpu_memory_baseline_epoch):
            if finite(rec.cuda_allocated_mb):
                self.gpu_mem_baseline, self.gpu_mem_baseline_epoch = rec.cuda_allocated_mb, rec.epoch
        run = self.running
        if finite(rec.duration_seconds):
            run.duration += rec.duration_seconds  # type: ignore[operator]
            run.has_duration = True
        carbon = rec.carbon
        if carbon is not None:
            if finite(carbon.epoch_co2_kg):
                run.co2_kg += carbon.epoch_co2_kg  # type: ignore[operator]
                run.has_carbon = True
            if finite(carbon.epoch_energy_kwh):
                run.energy_kwh += carbon.epoch_energy_kwh  # type: ignore[operator]
                run.has_carbon = True
            if finite(carbon.power_draw_watts):
                self.power_sum += carbon.power_draw_watts  # type: ignore[operator]
                self.power_count += 1
        if rec.samples_processed is not None:
            run.samples += rec.samples_processed
            run.has_samples = True
        self.totals[rec.epoch] = _Totals(run.duration, run.co2_kg, run.energy_kwh, run.samples,
                                         run.has_duration, run.has_carbon, run.has_samples)
        if rec.log_error_count:
            self.epoch_errors += rec.log_error_count
            self.errors_by_epoch[rec.epoch] = self.errors_by_epoch.get(rec.epoch, 0) + rec.log_error_count
        self._prune(rec.epoch)

    def after_epoch(self, rec: EpochRecord) -> None:
        """Aggregates the rules must see *without* the current epoch are folded in after evaluation."""
        carbon = rec.carbon
        if carbon is not None and finite(carbon.epoch_co2_kg):
            self.co2_sum += carbon.epoch_co2_kg  # type: ignore[operator]
            self.co2_count += 1

    def observe_rank_epoch(self, rec: EpochRecord) -> None:
        if finite(rec.duration_seconds):
            self.rank_durations.setdefault(rec.epoch, {})[rec.rank] = rec.duration_seconds  # type: ignore[assignment]
        if finite(rec.end_time):
            self.last_activity = max(self.last_activity or -math.inf, float(rec.end_time))  # type: ignore[arg-type]

    def observe_step(self, step: StepRecord) -> None:
        self.steps_seen[step.epoch] = self.steps_seen.get(step.epoch, 0) + 1
        if step.rank == 0 and not step.amp_skipped and finite(step.loss):
            self.loss_level.add(float(step.loss), step.step, step.epoch)  # type: ignore[arg-type]
        if finite(step.time):
            self.last_activity = max(self.last_activity or -math.inf, float(step.time))  # type: ignore[arg-type]

    def after_step(self, step: StepRecord, fired: Iterable[str]) -> None:
        fired = list(fired)
        bucket = self.step_fired.setdefault(step.epoch, {})
        for check in fired:
            bucket[check] = bucket.get(check, 0) + 1
        if ("exploding_gradients" not in fired and not step.amp_skipped and not step.accumulating
                and finite(step.grad_norm)):
            self.grad_history.append(float(step.grad_norm))  # type: ignore[arg-type]

    def observe_log(self, log: LogRecord) -> None:
        if finite(log.time):
            self.last_activity = max(self.last_activity or -math.inf, float(log.time))  # type: ignore[arg-type]
        if log.is_error:
            self.log_errors += 1
            if log.epoch is not None:
                self.errors_by_epoch[log.epoch] = self.errors_by_epoch.get(log.epoch, 0) + 1
            if self.first_error is None:
                self.first_error = log.message
            self.last_error = log.message

    @property
    def error_count(self) -> int:
        """Errors so far: the trainer's counts and the captured records describe the same errors, so the larger."""
        return max(self.log_errors, self.epoch_errors)

    def _prune(self, epoch: int) -> None:
        keep_from = epoch - 4
        for table in (self.step_fired, self.steps_seen, self.rank_durations, self.errors_by_epoch):
            if len(table) > 8:
                for old in [k for k in table if k < keep_from]:
                    del table[old]


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule's predicate receives: the state and the record that triggered the evaluation."""

    state: RunState
    trigger: str
    epoch: EpochRecord | None = None
    step: StepRecord | None = None
    log: LogRecord | None = None
    now: float | None = None

    @property
    def th(self) -> Thresholds:
        return self.state.thresholds

    @property
    def run(self) -> RunInfo:
        return self.state.run_info

    @property
    def cpu_by_choice(self) -> bool:
        return self.state.run_info.device == "cpu" and self.state.run_info.cpu_only_by_choice
