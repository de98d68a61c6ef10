"""System, throughput, memory and log checks: throughput_degradation, memory_growth, gpu_memory_growth,
slow_epoch, high_cpu, error_logs, low_gpu_utilization, step_time_outlier, straggler_rank, stalled_training."""

from __future__ import annotations

import math

from ._issue import Finding
from ._registry import rule
from ._state import Context, finite, median


@rule("throughput_degradation", severity="warning", category="throughput")
def throughput_degradation(ctx: Context) -> list[Finding]:
    th, st = ctx.th, ctx.state
    n = th.throughput_drop_epochs
    recent = st.recent(n + th.throughput_reference_epochs)
    streak, before = recent[-n:] if n else [], recent[:-n] if n else recent
    if n < 1 or len(streak) < n or not before or not all(finite(r.samples_per_sec) for r in streak):
        return []
    # The reference is the median throughput of the recent window (the streak included), not the run's peak: on
    # real runs (tests/faults) epoch throughput on a shared machine swings 2x from one short epoch to the next; the
    # peak of a noisy series is its luckiest epoch (every healthy control read as degraded against it), and the
    # median of the few epochs before a streak is still pulled up by one lucky epoch.
    ref = median(float(r.samples_per_sec) for r in recent if finite(r.samples_per_sec))  # type: ignore[arg-type]
    if ref is None or ref <= 0:
        return []
    floor = ref * (1 - th.throughput_drop_pct)
    # ... and the drop must stand out of the run's own epoch-to-epoch noise: below the reference by more than
    # `throughput_noise_sigmas` robust standard deviations (1.4826 x MAD) of log throughput over the epochs before
    # the streak. A quiet machine (a few % of noise) keeps the guide's 20 %; a shared one whose short epochs swing
    # 2x (tests/faults, load 5-8 on 2 cores) needs a drop beyond that swing before it is a degradation.
    logs = [math.log(float(r.samples_per_sec)) for r in before  # type: ignore[arg-type]
            if finite(r.samples_per_sec) and r.samples_per_sec > 0]  # type: ignore[operator]
    sigma = 0.0
    if len(logs) >= 3:
        centre = median(logs)
        sigma = 1.4826 * (median(abs(v - centre) for v in logs) or 0.0)  # type: ignore[operator]
        floor = min(floor, ref * math.exp(-th.throughput_noise_sigmas * sigma))
    if not all(r.samples_per_sec < floor for r in streak):  # type: ignore[operator]
        return []
    cur = float(streak[-1].samples_per_sec)  # type: ignore[arg-type]
    drop = 1 - cur / ref
    noise = f"; epoch-to-epoch noise {sigma * 100:.0f} %" if sigma else ""
    return [Finding(
        title="Throughput degradation",
        description=f"{cur:.1f} samples/s is {drop * 100:.0f} % below the median of {ref:.1f} samples/s of the "
                    f"last {len(recent)} epochs, for {n} epochs (peak {st.peak_throughput or 0:.1f} at epoch "
                    f"{st.peak_throughput_epoch}{noise}).",
        suggestion="Look for another process on the machine, a growing data pipeline cost or thermal throttling; "
                   "raise `DataLoader(num_workers=4, pin_memory=True, persistent_workers=True)`.",
        metric_key="samples_per_sec", metric_value=cur,
        thresholds=th.pick("throughput_drop_pct", "throughput_drop_epochs", "throughput_reference_epochs",
                           "throughput_noise_sigmas"),
    )]


def _growth(ctx: Context, field: str, base: float | None, base_epoch: int | None, pct: float, min_mb: float,
            title: str, suggestion: str, names: tuple[str, str]) -> list[Finding]:
    cur = ctx.epoch
    assert cur is not None
    value = getattr(cur, field)
    if base is None or base <= 0 or base_epoch is None or cur.epoch <= base_epoch or not finite(value):
        return []
    growth = value - base
    if growth / base <= pct or growth < min_mb:
        return []
    return [Finding(
        title=title,
        description=f"{field} grew from {base:.0f} MB (epoch {base_epoch}) to {value:.0f} MB (epoch {cur.epoch}): "
                    f"+{growth / base * 100:.0f} %, +{growth:.0f} MB.",
        suggestion=suggestion, metric_key=field, metric_value=value, thresholds=ctx.th.pick(*names),
    )]


@rule("memory_growth", severity="warning", category="memory")
def memory_growth(ctx: Context) -> list[Finding]:
    st, th = ctx.state, ctx.th
    return _growth(ctx, "process_rss_mb", st.rss_baseline, st.rss_baseline_epoch, th.memory_growth_pct,
                   th.memory_growth_min_mb, "Memory growth (possible leak)",
                   "Keep numbers, not tensors, across steps: `history.append(loss.item())` instead of "
                   "`history.append(loss)`; detach anything you store (`x.detach().cpu()`).",
                   ("memory_growth_pct", "memory_growth_min_mb"))


@rule("gpu_memory_growth", severity="warning", category="memory", device=True)
def gpu_memory_growth(ctx: Context) -> list[Finding]:
    st, th = ctx.state, ctx.th
    return _growth(ctx, "cuda_allocated_mb", st.gpu_mem_baseline, st.gpu_mem_baseline_epoch,
                   th.gpu_memory_growth_pct, th.gpu_memory_growth_min_mb, "GPU memory growth",
                   "Something keeps CUDA tensors alive across steps: store `loss.item()`, wrap evaluation in "
                   "`with torch.no_grad():`, and `del` large intermediates you keep in lists.",
                   ("gpu_memory_growth_pct", "gpu_memory_growth_min_mb"))


@rule("slow_epoch", severity="info", category="throughput")
def slow_epoch(ctx: Context) -> list[Finding]:
    th, st = ctx.th, ctx.state
    cur = ctx.epoch
    assert cur is not None
    if not finite(cur.duration_seconds):
        return []
    previous = [r.duration_seconds for r in st.recent(th.slow_epoch_window + 1)[:-1] if finite(r.duration_seconds)]
    if len(previous) < th.slow_epoch_min_history:
        return []
    med = median(previous)  # type: ignore[arg-type]
    duration = float(cur.duration_seconds)  # type: ignore[arg-type]
    if med is None or med <= 0 or duration <= th.slow_epoch_factor * med:
        return []
    # as throughput_degradation: beyond the run's own epoch-to-epoch noise too (robust sigmas of log duration);
    # on a shared machine (tests/faults) healthy 0.2 s epochs took 2-3x the median now and then
    logs = [math.log(d) for d in previous if d and d > 0]  # type: ignore[arg-type]
    centre = median(logs)
    if centre is not None:
        sigma = 1.4826 * (median(abs(v - centre) for v in logs) or 0.0)
        if duration <= med * math.exp(th.throughput_noise_sigmas * sigma):
            return []
    return [Finding(
        title="Slow epoch",
        description=f"Epoch {cur.epoch} took {duration:.1f} s, {duration / med:.1f}x the "
                    f"median {med:.1f} s of the previous {len(previous)} epochs.",
        suggestion="Check what else ran during that epoch (checkpointing, evaluation, another job, I/O stalls).",
        metric_key="duration_seconds", metric_value=cur.duration_seconds,
        thresholds=th.pick("slow_epoch_factor", "slow_epoch_window", "throughput_noise_sigmas"),
    )]


@rule("high_cpu", severity="info", category="system", device=True)
def high_cpu(ctx: Context) -> list[Finding]:
    cur = ctx.epoch
    assert cur is not None
    limit = ctx.th.high_cpu_percent
    if not finite(cur.cpu_percent) or cur.cpu_percent <= limit:  # type: ignore[operator]
        return []
    return [Finding(
        title="High CPU usage",
        description=f"CPU at {cur.cpu_percent:.0f} % in epoch {cur.epoch} (limit {limit:g} %): training may be "
                    "CPU-bound.",
        suggestion="Move the model and batches to the GPU (`model.to('cuda')`, `x = x.to('cuda', "
                   "non_blocking=True)`) or move data preprocessing into DataLoader workers.",
        metric_key="cpu_percent", metric_value=cur.cpu_percent, thresholds=ctx.th.pick("high_cpu_percent"),
    )]


@rule("error_logs", severity="warning", category="logs", on=("log", "epoch"), sticky=True)
def error_logs(ctx: Context) -> list[Finding] | None:
    st = ctx.state
    if ctx.trigger == "log":
        if ctx.log is None or not ctx.log.is_error:
            return None
    else:
        cur = ctx.epoch
        assert cur is not None
        if not st.errors_by_epoch.get(cur.epoch):
            return None
    first = f' First: "{st.first_error[:200]}".' if st.first_error else ""
    last = f' Latest: "{st.last_error[:200]}".' if st.last_error and st.last_error != st.first_error else ""
    return [Finding(
        title="Error logs",
        description=f"{st.error_count} error-level log record(s) so far.{first}{last}",
        suggestion="Read the errors (`atlas logs RUN --errors`); an error the trainer survived often hides a "
                   "skipped batch, a failed checkpoint or an out-of-memory retry.",
        metric_key="error_count", metric_value=st.error_count,
    )]


@rule("low_gpu_utilization", severity="warning", category="system", device=True)
def low_gpu_utilization(ctx: Context) -> list[Finding]:
    th = ctx.th
    n = th.low_gpu_utilization_epochs
    recent = ctx.state.recent(n)
    means = []
    for r in recent:
        utils = [g.utilization_percent for g in r.gpus if finite(g.utilization_percent)]
        if not utils:
            return []
        means.append(sum(utils) / len(utils))  # type: ignore[arg-type]
    if len(means) < n or n < 1 or not all(m < th.low_gpu_utilization_percent for m in means):
        return []
    return [Finding(
        title="Low GPU utilization",
        description=f"Mean GPU utilization {means[-1]:.0f} % (below {th.low_gpu_utilization_percent:g} % for "
                    f"{n} epochs): the GPU waits for data or for the CPU.",
        suggestion="Feed the GPU faster: `DataLoader(num_workers=8, pin_memory=True, prefetch_factor=4)`, larger "
                   "batches, and `non_blocking=True` copies.",
        metric_key="gpu_utilization_percent", metric_value=means[-1],
        thresholds=th.pick("low_gpu_utilization_percent", "low_gpu_utilization_epochs"),
    )]


@rule("step_time_outlier", severity="info", category="throughput")
def step_time_outlier(ctx: Context) -> list[Finding]:
    cur = ctx.epoch
    assert cur is not None
    if ctx.state.epochs_seen < 2:  # the first epoch's first steps include compilation and cudnn autotuning
        return []
    p50, worst = cur.step_time_p50, cur.step_time_max
    if not (finite(p50) and finite(worst)) or p50 <= 0:  # type: ignore[operator]
        return []
    ratio = worst / p50  # type: ignore[operator]
    if ratio <= ctx.th.step_time_outlier_ratio:
        return []
    return [Finding(
        title="Step time outlier",
        description=f"Epoch {cur.epoch}: the slowest step took {worst:.3f} s, {ratio:.0f}x the median "
                    f"{p50:.3f} s.",
        suggestion="Look for periodic work inside the loop (logging tensors to disk, `.item()` syncs, garbage "
                   "collection, checkpointing) or a DataLoader worker that stalls.",
        metric_key="step_time_max", metric_value=worst, thresholds=ctx.th.pick("step_time_outlier_ratio"),
    )]


@rule("straggler_rank", severity="warning", category="system", on=("rank",))
def straggler_rank(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    world = ctx.run.world_size
    durations = ctx.state.rank_durations.get(cur.epoch, {})
    if world < 2 or len(durations) < world:
        return None  # not every rank has reported this epoch yet: no verdict
    out = []
    for rank, d in sorted(durations.items()):
        others = median(v for r, v in durations.items() if r != rank)
        if others and others > 0 and d > ctx.th.straggler_ratio * others:
            out.append(Finding(
                title="Straggler rank",
                description=f"Rank {rank} took {d:.1f} s for epoch {cur.epoch}, {d / others:.2f}x the median "
                            f"{others:.1f} s of the other ranks; every collective waits for it.",
                suggestion="Check that rank's node (other jobs, slower GPU, thermal throttling, data on a slow "
                           "disk) and that its data shard is the same size (`DistributedSampler(drop_last=True)`).",
                metric_key="duration_seconds", metric_value=d, key=f"rank {rank}",
                thresholds=ctx.th.pick("straggler_ratio"),
            ))
    return out


@rule("stalled_training", severity="warning", category="system", on=("time",))
def stalled_training(ctx: Context) -> list[Finding]:
    last = ctx.state.last_activity
    if ctx.now is None or last is None:
        return []
    idle = ctx.now - last
    limit = ctx.th.stalled_seconds
    if idle <= limit:
        return []
    return [Finding(
        title="Training stalled",
        description=f"No step, epoch or log for {idle:.0f} s (limit {limit:g} s).",
        suggestion="Check the trainer: a deadlocked collective (one rank died), a hung DataLoader worker, or a "
                   "paused run. `py-spy dump --pid PID` shows where it waits.",
        metric_key="seconds_since_last_record", metric_value=idle, thresholds=ctx.th.pick("stalled_seconds"),
    )]
