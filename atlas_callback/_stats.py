"""Per-epoch accumulation of the cheap channels: loss, step samples, throughput, step times, system.

The step path does O(1) work: on the CPU the loss is read at once (no synchronisation to avoid) and checked for a
non-finite value (the fast path of a NaN); on an accelerator loss tensors stay on the device and are copied to the
host in groups of `config.loss_sync_every` (one synchronisation per group). The epoch's loss statistics and the
StepSample messages are made from the step records at each hand-off, a group at a time."""
from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Mapping

from atlas_proto.v1 import telemetry_pb2 as tpb

from ._config import AtlasConfig

MAX_STEP_TIMES = 100_000  # per epoch; beyond this, the distribution is of the first 100k steps

# A step record, private to this module: a list, because it is built on the step path (0.24 µs here, against
# 1.1 µs for a slotted dataclass of the same eleven fields: timeit, 2026-12-04) and filled in place when a device
# loss reaches the host; read only through the index names below, and unpacked whole by `_sample`:
#   [step, epoch, perf_counter time, batch_size, lr, step_time_s, amp_skipped, metrics, loss, grad_norm, seq_len]
_STEP, _EPOCH, _PERF, _BATCH, _LR, _STEP_TIME, _AMP, _METRICS, _LOSS, _GRAD, _SEQ = range(11)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


class EpochAccumulator:
    """One epoch's loss, throughput and step-time statistics, and the per-step samples, from step records.

    The step path (`step`) stores one record per step and reads a CPU loss (the fast path of a non-finite loss);
    the statistics are folded in from the records at each hand-off (`_fold`), a group at a time, where the code
    runs warm: on a CPU each Python operation costs several times more on the step path, right after the step's
    own kernels have been through the caches. (Slots: fewer memory locations for the step path to touch.)"""

    __slots__ = ("_config", "_track_loss", "_on_samples", "_on_nonfinite", "_pending", "_ready", "_nonfinite_ready",
                 "_last_handoff", "_flush_s", "_sync_every", "epoch", "t_start", "t_first", "t_last", "mean", "m2",
                 "min", "max", "count", "nonfinite", "worst", "batches", "samples", "tokens", "step_times", "grad_norms")

    def __init__(self, config: AtlasConfig, on_samples: Callable[[list[tpb.StepSample]], None],
                 on_nonfinite: Callable[[int, float], None] | None = None, track_loss: bool = True) -> None:
        self._config = config
        self._track_loss = track_loss and config.track_loss
        self._flush_s = config.step_flush_seconds
        self._sync_every = config.loss_sync_every
        self._on_samples = on_samples
        self._on_nonfinite = on_nonfinite
        # records whose loss / gradient norm are still tensors on a device: copied in groups
        self._pending: list[list[Any]] = []
        self._ready: list[list[Any]] = []  # step records (see `_sample`) not yet folded in and handed off
        self._nonfinite_ready = False
        self._last_handoff = time.perf_counter()
        self.begin(0)

    def begin(self, epoch: int) -> None:
        self.epoch = epoch
        self.t_start = time.time()
        self.t_first = time.perf_counter()
        self.t_last = self.t_first
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.count = 0
        self.nonfinite = 0
        self.worst = math.nan  # the epoch's non-finite loss: NaN if any was NaN, else the infinity seen
        self.batches = 0
        self.samples = 0
        self.tokens = 0
        self.step_times: list[float] = []
        self.grad_norms: list[float] = []

    # ---------------------------------------------------------------------------------- step

    def step(self, loss: Any, step: int, batch_size: int | None, seq_len: int | None, lr: float | None,
             metrics: Mapping[str, float] | None, grad_norm: Any = None, amp_skipped: bool = False) -> None:
        now = time.perf_counter()
        step_time = now - self.t_last if self.batches else None
        self.t_last = now
        self.batches += 1
        if not self._track_loss:
            loss = None
        if lr is not None and type(lr) is not float:
            lr = _host_float(lr)  # a tensor lr is changed in place by schedulers: its value now, not at hand-off
        record = [step, self.epoch, now, batch_size, lr, step_time, amp_skipped, dict(metrics) if metrics else None,
                  loss, grad_norm, seq_len]
        # (`Tensor.is_cpu` is a flag read; `.device` would build a torch.device object on every step)
        if not getattr(loss, "is_cpu", True) or (grad_norm is not None and not getattr(grad_norm, "is_cpu", True)):
            record[_LOSS], record[_GRAD] = _detach(loss), _detach(grad_norm)
            self._pending.append(record)
            if len(self._pending) >= self._sync_every:
                self._sync_pending()
        else:
            if loss is not None:
                loss = record[_LOSS] = _host_float(loss)
                if loss is not None and not math.isfinite(loss):
                    self._nonfinite(record)
            if grad_norm is not None:
                record[_GRAD] = _host_float(grad_norm)
            self._ready.append(record)
        if self._ready and (self._nonfinite_ready or now - self._last_handoff >= self._flush_s):
            self._handoff()

    def recent_step_times(self, n: int = 32) -> list[float]:
        """The last `n` step times (records not yet folded in included)."""
        unfolded = [r[_STEP_TIME] for r in self._ready[-n:] + self._pending[-n:] if r[_STEP_TIME] is not None]
        return (self.step_times[-n:] + unfolded)[-n:]

    def _nonfinite(self, record: list[Any]) -> None:
        self._nonfinite_ready = True  # handed off at once: the collector's NaN check sees it now
        if not record[_AMP] and self._on_nonfinite is not None:
            self._on_nonfinite(record[_STEP], record[_LOSS])

    def _fold(self, records: list[list[Any]]) -> None:
        """Throughput, step times, the loss statistics (Welford) and gradient norms, from records whose values
        are on the host."""
        count, mean, m2, lo, hi, nonfinite = self.count, self.mean, self.m2, self.min, self.max, self.nonfinite
        samples, tokens, step_times = self.samples, self.tokens, self.step_times
        for record in records:
            batch_size, step_time = record[_BATCH], record[_STEP_TIME]
            if batch_size:
                samples += batch_size
                if record[_SEQ]:
                    tokens += batch_size * record[_SEQ]
            if step_time is not None and len(step_times) < MAX_STEP_TIMES:
                step_times.append(step_time)
            grad_norm, loss = record[_GRAD], record[_LOSS]
            if grad_norm is not None and math.isfinite(grad_norm):
                self.grad_norms.append(grad_norm)
            if loss is None:
                continue
            if math.isfinite(loss):
                count += 1
                delta = loss - mean
                mean += delta / count
                m2 += delta * (loss - mean)
                lo = min(lo, loss)
                hi = max(hi, loss)
            else:
                nonfinite += 1
                if nonfinite == 1 or not math.isnan(self.worst):
                    self.worst = loss
        self.count, self.mean, self.m2, self.min, self.max, self.nonfinite = count, mean, m2, lo, hi, nonfinite
        self.samples, self.tokens = samples, tokens

    def _sync_pending(self) -> None:
        """One host copy for a group of device scalars (losses and gradient norms)."""
        if not self._pending:
            return
        import torch

        tensors = [x.float().reshape(()) for r in self._pending for x in (r[_LOSS], r[_GRAD]) if hasattr(x, "device")]
        device = tensors[0].device if tensors else None
        values = iter(torch.stack([t.to(device) for t in tensors]).cpu().tolist()) if tensors else iter(())
        for record in self._pending:
            if hasattr(record[_LOSS], "device"):
                record[_LOSS] = next(values)
            if hasattr(record[_GRAD], "device"):
                record[_GRAD] = next(values)
            if record[_LOSS] is not None and not math.isfinite(record[_LOSS]):
                self._nonfinite(record)
            self._ready.append(record)
        self._pending.clear()

    def _handoff(self) -> None:
        ready, self._ready = self._ready, []
        self._nonfinite_ready = False
        wall_offset_ns = time.time_ns() - int(time.perf_counter() * 1e9)  # records carry perf_counter times
        self._last_handoff = time.perf_counter()
        self._fold(ready)
        if self._track_loss:
            self._on_samples([_sample(r, wall_offset_ns) for r in ready])

    def flush_samples(self) -> None:
        self._sync_pending()
        if self._ready:
            self._handoff()

    # --------------------------------------------------------------------------------- epoch

    def finish(self, epoch: int, *, global_step: int, val_metrics: Mapping[str, Any],
               train_metrics: Mapping[str, Any], lrs: list[float]) -> tpb.EpochSummary:
        self.flush_samples()
        now = time.time()
        out = tpb.EpochSummary(epoch=epoch, global_step=global_step, duration_seconds=max(0.0, now - self.t_start))
        out.started_at.FromNanoseconds(int(self.t_start * 1e9))
        out.ended_at.FromNanoseconds(int(now * 1e9))
        if self._config.track_loss:
            loss = out.loss
            loss.count = self.count
            loss.nonfinite_count = self.nonfinite
            if self.count:
                loss.mean = self.mean if not self.nonfinite else self.worst  # inf stays inf, NaN wins
                loss.std = math.sqrt(self.m2 / self.count)
                loss.min = self.min
                loss.max = self.max
            elif self.nonfinite:
                loss.mean = self.worst
            _put_metrics(out.val_metrics, val_metrics)
            _put_metrics(out.train_metrics, train_metrics)
        out.lr.extend(float(x) for x in lrs)
        if self.grad_norms:
            out.grad_norm = sum(self.grad_norms) / len(self.grad_norms)
            out.grad_norm_max = max(self.grad_norms)
        if self._config.track_throughput and self.batches:
            t = out.throughput
            t.batches = self.batches
            t.samples_processed = self.samples
            train_time = self.t_last - self.t_first
            if train_time > 0:
                t.batches_per_sec = self.batches / train_time
                if self.samples:
                    t.samples_per_sec = self.samples / train_time
                if self.tokens:
                    t.tokens_per_sec = self.tokens / train_time
            if self.step_times:
                st = sorted(self.step_times)
                t.step_time_p50_s = _percentile(st, 0.5)
                t.step_time_p95_s = _percentile(st, 0.95)
                t.step_time_max_s = st[-1]
        self.begin(epoch + 1)
        return out



def _sample(record: list[Any], wall_offset_ns: int) -> tpb.StepSample:
    step, epoch, perf, batch_size, lr, step_time, amp_skipped, metrics, loss, grad_norm, _ = record
    sample = tpb.StepSample(step=step, epoch=epoch)
    sample.time.FromNanoseconds(wall_offset_ns + int(perf * 1e9))
    if amp_skipped:
        sample.amp_skipped = True
    if batch_size:
        sample.batch_size = batch_size
    if lr is not None:
        sample.lr = float(lr)
    if step_time is not None:
        sample.step_time_s = step_time
    if metrics:
        _put_metrics(sample.metrics, metrics)
    if loss is not None:
        sample.loss = loss
    if grad_norm is not None:
        sample.grad_norm = grad_norm
    return sample


def _host_float(value: Any) -> float | None:
    """A host scalar as a float (`item()` for a tensor: no detached copy); None when it is not one (e.g. a loss
    vector), so the step still counts."""
    try:
        return value.item() if hasattr(value, "item") else float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


def _detach(value: Any) -> Any:
    return value.detach() if hasattr(value, "detach") else (None if value is None else float(value))


def _put_metrics(target: Any, metrics: Mapping[str, Any]) -> None:
    for key, value in metrics.items():
        try:
            target[str(key)] = float(value)
        except (TypeError, ValueError, RuntimeError):
            continue


_process: Any = None


def system_snapshot(out: tpb.EpochSummary) -> None:
    """Process RSS, CPU % since the last snapshot, RAM %, CUDA memory when CUDA is initialised."""
    global _process
    import psutil

    if _process is None or _process.pid != os.getpid():
        _process = psutil.Process()
        _process.cpu_percent(None)
    out.memory.process_rss_mb = _process.memory_info().rss / 2**20
    out.system.cpu_percent = _process.cpu_percent(None)
    out.system.ram_percent = psutil.virtual_memory().percent
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out.memory.cuda_allocated_mb = torch.cuda.memory_allocated() / 2**20
            out.memory.cuda_reserved_mb = torch.cuda.memory_reserved() / 2**20
            out.memory.cuda_peak_allocated_mb = torch.cuda.max_memory_allocated() / 2**20
    except Exception:  # noqa: BLE001 - CUDA memory is best effort
        pass
