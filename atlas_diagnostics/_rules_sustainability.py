"""Green-AI checks: diminishing_returns, early_stopping_missed, over_parameterized_layer,
compute_inefficient_layer, device_underutilization, carbon_intensity_spike, wasted_carbon, gpu_idle_waste,
cpu_dominant_training."""

from __future__ import annotations

from ._issue import Finding
from ._registry import rule
from ._state import Context, finite

_EARLY_STOP = {
    "lightning": "`from lightning.pytorch.callbacks import EarlyStopping; "
                 "trainer = Trainer(callbacks=[EarlyStopping(monitor='val_loss', patience=3, min_delta=0.001)])`",
    "accelerate": "before the loop `best, bad = float('inf'), 0`; after each validation "
                  "`bad = 0 if val_loss < best - 1e-3 else bad + 1; best = min(best, val_loss)` and "
                  "`if bad >= 3: accelerator.set_trigger()`; at the top of each epoch "
                  "`if accelerator.check_trigger(): break`",
    "transformers": "`from transformers import EarlyStoppingCallback; trainer = Trainer(model=model, args=args, "
                    "callbacks=[EarlyStoppingCallback(early_stopping_patience=3)])` with `args = "
                    "TrainingArguments(output_dir='out', eval_strategy='epoch', save_strategy='epoch', "
                    "load_best_model_at_end=True, metric_for_best_model='eval_loss')`",
    "pytorch": "before the loop `best, bad = float('inf'), 0`; after each validation "
               "`bad = 0 if val_loss < best - 1e-3 else bad + 1; best = min(best, val_loss)`, then "
               "`if bad >= 3: break`",
}


def early_stop(ctx: Context) -> str:
    """Early stopping as the run's framework does it (a plain loop's few lines where it has no callback)."""
    return _EARLY_STOP.get(ctx.run.framework or "", _EARLY_STOP["pytorch"])


@rule("diminishing_returns", severity="info", category="sustainability")
def diminishing_returns(ctx: Context) -> list[Finding]:
    st, th = ctx.state, ctx.th
    cur, prev = ctx.epoch, st.previous()
    if st.diminishing_since is None or cur is None or prev is None or st.first_loss is None:
        return []
    if not (finite(cur.train_mean) and finite(prev.train_mean)):
        return []
    cumulative = st.first_loss - cur.train_mean  # type: ignore[operator]
    marginal = prev.train_mean - cur.train_mean  # type: ignore[operator]
    if cumulative <= 0:
        return []
    streak = cur.epoch - st.diminishing_since + 1
    val_improving = finite(cur.val_loss) and st.best_val_epoch == cur.epoch
    # a long streak is a warning, unless the validation loss still reaches a new best: then it is information
    severity = "warning" if streak >= th.diminishing_returns_warn_epochs and not val_improving else "info"
    return [Finding(
        title="Diminishing returns",
        description=f"Epoch {cur.epoch} lowered the loss by {marginal:.4g}, {marginal / cumulative * 100:.1f} % of "
                    f"the {cumulative:.4g} gained so far (below {th.diminishing_returns_pct * 100:g} % for {streak} "
                    "epoch(s)): each epoch now costs as much compute for little gain.",
        suggestion=f"Stop earlier with early stopping: {early_stop(ctx)}.",
        metric_key="marginal/cumulative", metric_value=marginal / cumulative, severity=severity,
        thresholds=th.pick("diminishing_returns_pct", "diminishing_returns_warn_epochs"),
    )]


@rule("early_stopping_missed", severity="warning", category="sustainability")
def early_stopping_missed(ctx: Context) -> list[Finding]:
    st, th = ctx.state, ctx.th
    since, basis = st.epochs_since_best()
    if since is None or since < th.early_stopping_patience:
        return []
    best = st.best_val if basis == "val_loss" else st.best_train
    best_epoch = st.best_val_epoch if basis == "val_loss" else st.best_train_epoch
    return [Finding(
        title="Early stopping missed",
        description=f"{basis} has not improved for {since} epochs since its best {best:.4g} at epoch {best_epoch}; "
                    f"training could have stopped there.",
        suggestion=f"Add early stopping ({early_stop(ctx)}) and keep the best checkpoint "
                   "(`ModelCheckpoint(monitor='val_loss', save_top_k=1)`).",
        metric_key="epochs_since_best", metric_value=since,
        thresholds=th.pick("early_stopping_patience", "early_stopping_min_delta_pct"),
    )]


def _layer_shares(ctx: Context) -> tuple[dict[str, float], dict[str, float]] | None:
    cur = ctx.epoch
    arch = ctx.state.architecture
    if cur is None or cur.profiler is None or not cur.profiler.per_layer or arch is None:
        return None
    compute = {lt.name: lt.pct_total / 100.0 for lt in cur.profiler.per_layer}
    return arch.param_share(), compute


@rule("over_parameterized_layer", severity="warning", category="sustainability")
def over_parameterized_layer(ctx: Context) -> list[Finding] | None:
    shares = _layer_shares(ctx)
    if shares is None:
        return None
    params, compute = shares
    th = ctx.th
    arch = ctx.state.architecture
    assert arch is not None
    out = []
    for name, p in params.items():
        c = compute.get(name)
        kind = (arch.layer_type(name) or "").lower()
        if c is None or c <= 0 or p < th.over_parameterized_min_param_pct or "embedding" in kind:
            continue  # embeddings are lookups: many parameters, almost no compute, by design
        if p / c > th.over_parameterized_ratio:
            out.append(Finding(
                title="Over-parameterized layer",
                description=f"Layer {name} holds {p * 100:.1f} % of the parameters but does {c * 100:.2f} % of the "
                            f"compute ({p / c:.0f}x; limit {th.over_parameterized_ratio:g}x).",
                suggestion=f"Shrink `{name}`: fewer units, a low-rank factorisation (two smaller Linear layers), or "
                           "global pooling before it (`nn.AdaptiveAvgPool2d(1)`).",
                metric_key="param_to_compute_ratio", metric_value=p / c, layer=name,
                thresholds=th.pick("over_parameterized_ratio", "over_parameterized_min_param_pct"),
            ))
    return out


@rule("compute_inefficient_layer", severity="info", category="sustainability")
def compute_inefficient_layer(ctx: Context) -> list[Finding] | None:
    shares = _layer_shares(ctx)
    if shares is None:
        return None
    params, compute = shares
    th = ctx.th
    out = []
    for name, c in compute.items():
        p = params.get(name)
        if not p or p <= 0 or c < th.compute_inefficient_min_compute_pct:
            continue  # parameter-free layers (activations, pooling) have no ratio
        ratio = c / p
        if ratio <= th.compute_inefficient_ratio:
            continue
        warn = ratio > th.compute_inefficient_warn_ratio and c >= th.compute_inefficient_warn_compute_pct
        out.append(Finding(
            title="Compute-inefficient layer",
            description=f"Layer {name} does {c * 100:.1f} % of the compute with {p * 100:.2f} % of the parameters "
                        f"({ratio:.0f}x; limit {th.compute_inefficient_ratio:g}x).",
            suggestion=f"Make `{name}` cheaper per parameter: a depthwise-separable convolution "
                       "(`nn.Conv2d(c, c, 3, groups=c)` then `nn.Conv2d(c, out, 1)`), a stride to shrink the feature "
                       "map earlier, or fewer channels at high resolution.",
            metric_key="compute_to_param_ratio", metric_value=ratio, layer=name,
            severity="warning" if warn else "info",
            thresholds=th.pick("compute_inefficient_ratio", "compute_inefficient_min_compute_pct",
                               "compute_inefficient_warn_ratio", "compute_inefficient_warn_compute_pct"),
        ))
    return out


@rule("device_underutilization", severity="warning", category="sustainability")
def device_underutilization(ctx: Context) -> list[Finding]:
    run, cur = ctx.run, ctx.epoch
    assert cur is not None
    if ctx.cpu_by_choice:
        return [Finding(
            title="CPU-only training (by choice)",
            description="This run trains on the CPU as configured; GPU and CPU-bound checks are skipped.",
            suggestion="Nothing to fix. If a GPU becomes available: `Trainer(accelerator='gpu')` or "
                       "`model.to('cuda')`.",
            metric_key="device", metric_value="cpu", severity="info", key="cpu_by_choice",
        )]
    if run.device == "cpu" and run.cuda_available:
        return [Finding(
            title="GPU available but unused",
            description="A CUDA device was available but the run trains on the CPU; GPU training is typically "
                        "10-100x faster for the same energy budget.",
            suggestion="`device = torch.device('cuda'); model.to(device); x, y = x.to(device), y.to(device)` "
                       "(Lightning: `Trainer(accelerator='gpu')`).",
            metric_key="device", metric_value="cpu",
        )]
    prof = cur.profiler
    if run.device != "cuda" or prof is None or not (finite(prof.total_cuda_time_us) and finite(prof.total_cpu_time_us)):
        return []
    if prof.total_cpu_time_us <= 0:  # type: ignore[operator]
        return []
    ratio = prof.total_cuda_time_us / prof.total_cpu_time_us  # type: ignore[operator]
    if ratio >= ctx.th.device_cuda_cpu_ratio:
        return []
    return [Finding(
        title="GPU underutilized",
        description=f"Profiled CUDA time is {ratio:.3f}x the CPU time in epoch {cur.epoch} (below "
                    f"{ctx.th.device_cuda_cpu_ratio:g}): most work runs on the CPU.",
        suggestion="Check that the model and every batch are on the GPU, and move CPU-side preprocessing into the "
                   "DataLoader workers or onto the GPU.",
        metric_key="cuda_cpu_time_ratio", metric_value=ratio, thresholds=ctx.th.pick("device_cuda_cpu_ratio"),
    )]


@rule("carbon_intensity_spike", severity="warning", category="sustainability")
def carbon_intensity_spike(ctx: Context) -> list[Finding]:
    st, cur = ctx.state, ctx.epoch
    assert cur is not None
    co2 = cur.carbon.epoch_co2_kg if cur.carbon is not None else None
    if not finite(co2) or st.co2_count < 3 or st.co2_sum <= 0:
        return []
    mean = st.co2_sum / st.co2_count
    ratio = co2 / mean  # type: ignore[operator]
    if ratio <= ctx.th.carbon_spike_ratio:
        return []
    return [Finding(
        title="Carbon spike",
        description=f"Epoch {cur.epoch} emitted {co2 * 1000:.3f} g CO2, {ratio:.0f}x the mean {mean * 1000:.3f} g of "  # type: ignore[operator]
                    "the previous epochs.",
        suggestion="Find what ran during that epoch (an extra evaluation, a hyperparameter sweep on the same "
                   "machine, a grid-intensity change) and schedule heavy work for low-carbon hours.",
        metric_key="epoch_co2_kg", metric_value=co2, thresholds=ctx.th.pick("carbon_spike_ratio"),
    )]


@rule("wasted_carbon", severity="info", category="sustainability")
def wasted_carbon(ctx: Context) -> list[Finding]:
    st, cur = ctx.state, ctx.epoch
    assert cur is not None
    stop, basis = st.optimal_stop()
    if stop is None:
        return []
    now_t, stop_t = st.total_at(cur.epoch), st.total_at(stop)
    if now_t is None or stop_t is None or not now_t.has_carbon or now_t.co2_kg <= 0:
        return []
    wasted = now_t.co2_kg - stop_t.co2_kg
    if wasted <= 0:
        return []
    share = wasted / now_t.co2_kg
    energy = now_t.energy_kwh - stop_t.energy_kwh
    return [Finding(
        title="Wasted carbon",
        description=f"Training could have stopped after epoch {stop} ({basis}); the {cur.epoch - stop} epochs since "
                    f"emitted {wasted * 1000:.2f} g CO2 and used {energy * 1000:.1f} Wh ({share * 100:.0f} % of the "
                    "run).",
        suggestion=f"Use early stopping: {early_stop(ctx)}.",
        metric_key="wasted_co2_kg", metric_value=wasted,
        # a stop inferred from the training loss's diminishing returns alone is a weaker basis: information only
        severity="warning" if share > ctx.th.wasted_carbon_warn_pct and basis != "diminishing_returns" else "info",
        thresholds=ctx.th.pick("wasted_carbon_warn_pct", "early_stopping_patience"),
    )]


@rule("gpu_idle_waste", severity="info", category="sustainability", device=True)
def gpu_idle_waste(ctx: Context) -> list[Finding]:
    cur = ctx.epoch
    assert cur is not None
    limit = ctx.th.gpu_idle_utilization_percent
    return [Finding(
        title="Idle GPU drawing power",
        description=f"GPU {g.index} averaged {g.utilization_percent:.0f} % utilization while drawing "
                    f"{g.power_watts:.0f} W in epoch {cur.epoch}.",
        suggestion="Use fewer GPUs, larger batches, or a faster input pipeline; release GPUs the job does not use "
                   "(`CUDA_VISIBLE_DEVICES`).",
        metric_key="utilization_percent", metric_value=g.utilization_percent, key=f"gpu{g.index}",
        thresholds=ctx.th.pick("gpu_idle_utilization_percent"),
    ) for g in cur.gpus
        if finite(g.utilization_percent) and finite(g.power_watts) and g.power_watts > 0  # type: ignore[operator]
        and g.utilization_percent < limit]  # type: ignore[operator]


@rule("cpu_dominant_training", severity="info", category="sustainability", device=True)
def cpu_dominant_training(ctx: Context) -> list[Finding]:
    cur = ctx.epoch
    assert cur is not None
    c = cur.carbon
    if ctx.run.device != "cuda" or c is None or not (finite(c.cpu_energy_kwh) and finite(c.gpu_energy_kwh)):
        return []
    cpu, gpu = float(c.cpu_energy_kwh), float(c.gpu_energy_kwh)  # type: ignore[arg-type]
    limit = ctx.th.cpu_dominant_energy_ratio
    if cpu <= 0 or (gpu > 0 and cpu / gpu <= limit):
        return []
    ratio = cpu / gpu if gpu > 0 else float("inf")
    return [Finding(
        title="CPU-dominant energy use",
        description=f"Epoch {cur.epoch}: the CPU used {cpu * 1000:.2f} Wh against {gpu * 1000:.2f} Wh for the GPU "
                    f"(limit {limit:g}x): the GPU run is CPU-bound.",
        suggestion="Move preprocessing to the GPU or to DataLoader workers and avoid per-step `.cpu()`/`.item()` "
                   "syncs.",
        metric_key="cpu_gpu_energy_ratio", metric_value=ratio, thresholds=ctx.th.pick("cpu_dominant_energy_ratio"),
    )]
