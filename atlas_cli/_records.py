"""Telemetry messages (atlas.v1) to `atlas_diagnostics` records, for re-diagnosing an exported run offline.

Units follow the records' docstrings: profiler times in microseconds (the wire carries milliseconds), step times in
seconds, percentages 0-100. A value the trainer did not measure stays None."""
from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from ._client import opt

_ARCH_ATTRS = ("in_features", "out_features", "in_channels", "out_channels", "kernel_size", "stride", "padding",
               "num_embeddings", "embedding_dim", "embed_dim", "num_heads", "input_size", "hidden_size",
               "num_layers", "bidirectional", "batch_first", "p")
_FLOAT_ATTRS = ("p",)


def _ts(ts: Any) -> float | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.seconds + ts.nanos / 1e9


def _pos(value: float) -> float | None:
    """Zero means "not measured" for proto3 scalars without presence (times, energies)."""
    return float(value) if value else None


def epoch_record(s: Any, rank: int = 0) -> Any:
    """An `EpochSummary` message as an `atlas_diagnostics.EpochRecord`."""
    import atlas_diagnostics as d

    tp, mem, sysm = s.throughput, s.memory, s.system
    profiler = None
    if s.HasField("profiler"):
        p = s.profiler
        profiler = d.ProfilerRecord(
            top_ops=tuple(d.ProfilerOp(name=o.name, cpu_time_us=o.cpu_time_ms * 1000.0,
                                       cuda_time_us=_pos(o.cuda_time_ms * 1000.0), count=int(o.calls))
                         for o in p.top_ops),
            per_layer=tuple(d.LayerTime(name=x.name, pct_total=x.pct_total) for x in p.per_layer),
            total_cpu_time_us=_pos(p.total_cpu_time_ms * 1000.0),
            total_cuda_time_us=_pos(p.total_cuda_time_ms * 1000.0),
            total_fwd_us=_pos(p.forward_ms * 1000.0),
            total_bwd_us=_pos(p.backward_ms * 1000.0),
        )
    layers = {}
    for x in s.layer_health.layers:
        layers[x.name] = d.LayerHealthRecord(**{k: opt(x, k) for k in (
            "activation_mean", "activation_std", "activation_var_of_means", "zero_fraction", "saturated_fraction",
            "gradient_norm_mean", "weight_sparsity", "update_ratio", "update_ratio_max")},
            samples=int(x.samples) or None)
    carbon = None
    if s.HasField("carbon"):
        c = s.carbon
        carbon = d.CarbonRecord(epoch_co2_kg=c.epoch_co2_kg, epoch_energy_kwh=c.epoch_energy_kwh,
                                power_draw_watts=_pos(c.power_draw_watts), cumulative_co2_kg=c.cumulative_co2_kg,
                                cumulative_energy_kwh=c.cumulative_energy_kwh,
                                carbon_intensity_g_per_kwh=opt(c, "carbon_intensity_g_per_kwh"),
                                cpu_energy_kwh=opt(c, "epoch_cpu_energy_kwh"),
                                gpu_energy_kwh=opt(c, "epoch_gpu_energy_kwh"))
    has_counts = s.HasField("log_counts")
    return d.EpochRecord(
        epoch=s.epoch, rank=rank,
        duration_seconds=_pos(s.duration_seconds),
        end_time=_ts(s.ended_at),
        train_mean=opt(s.loss, "mean"), train_std=opt(s.loss, "std"), train_min=opt(s.loss, "min"),
        train_max=opt(s.loss, "max"), count=int(s.loss.count) if s.loss.count else None,
        val=dict(s.val_metrics),
        samples_per_sec=opt(tp, "samples_per_sec"), batches_per_sec=opt(tp, "batches_per_sec"),
        tokens_per_sec=opt(tp, "tokens_per_sec"),
        samples_processed=int(tp.samples_processed) if tp.samples_processed else None,
        step_time_p50=opt(tp, "step_time_p50_s"), step_time_p95=opt(tp, "step_time_p95_s"),
        step_time_max=opt(tp, "step_time_max_s"),
        process_rss_mb=opt(mem, "process_rss_mb"), cuda_allocated_mb=opt(mem, "cuda_allocated_mb"),
        cuda_reserved_mb=opt(mem, "cuda_reserved_mb"), cuda_peak_allocated_mb=opt(mem, "cuda_peak_allocated_mb"),
        cpu_percent=opt(sysm, "cpu_percent"), ram_percent=opt(sysm, "ram_percent"),
        gpus=tuple(d.GpuRecord(index=g.index, utilization_percent=opt(g, "utilization_percent"),
                               memory_used_mb=opt(g, "memory_used_mb"), memory_total_mb=opt(g, "memory_total_mb"),
                               power_watts=opt(g, "power_watts"), temperature_c=opt(g, "temperature_c"))
                   for g in s.gpus),
        lr=tuple(s.lr), grad_norm=opt(s, "grad_norm"), grad_norm_max=opt(s, "grad_norm_max"),
        facts=json_format.MessageToDict(s.facts) if s.HasField("facts") else {},
        amp_skipped_steps=s.amp_skipped_steps, grad_accumulation=max(1, s.grad_accumulation),
        profiler=profiler, layers=layers,
        correlations=tuple(d.CorrelationRecord(layer_a=c.layer_a, layer_b=c.layer_b, correlation=c.correlation)
                           for c in s.layer_health.correlations),
        carbon=carbon,
        log_console_count=int(s.log_counts.console) if has_counts else None,
        log_error_count=int(s.log_counts.error) if has_counts else None,
    )


def step_record(x: Any, rank: int = 0) -> Any:
    import atlas_diagnostics as d

    return d.StepRecord(step=int(x.step), epoch=x.epoch, rank=rank, loss=opt(x, "loss"), lr=opt(x, "lr"),
                        grad_norm=opt(x, "grad_norm"), time=_ts(x.time), amp_skipped=x.amp_skipped)


def log_record(x: Any, rank: int = 0) -> Any:
    import atlas_diagnostics as d

    level = (x.level or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        level = "ERROR" if x.kind == "error" else "WARNING" if x.kind == "warning" else "INFO"
    return d.LogRecord(level=level, message=x.message, epoch=x.epoch, time=_ts(x.time), rank=rank)


def architecture(info: Any) -> Any:
    """A `ModelInfo` message as an `atlas_diagnostics.Architecture` (None when nothing was recorded)."""
    import atlas_diagnostics as d

    if not info.layers and not info.total_parameters:
        return None
    nodes = []
    for layer in info.layers:
        attrs = json_format.MessageToDict(layer.attributes)
        fields: dict[str, Any] = {}
        for key in _ARCH_ATTRS:
            value = attrs.get(key)
            if value is None:
                continue
            if key in _FLOAT_ATTRS:
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                value = float(value)
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, list):
                value = [int(v) for v in value]
            fields[key] = value
        nodes.append(d.ArchNode.from_dict({"id": layer.name, "type": layer.type,
                                           "parameters": int(layer.parameters), **fields}))
    shape: tuple[int, ...] = ()
    if info.dimension_flow and info.dimension_flow[0].input_shape:
        shape = tuple(int(v) for v in info.dimension_flow[0].input_shape[1:])
    return d.Architecture(
        total_parameters=int(info.total_parameters) or None,
        layers=tuple(d.ArchLayer(name=x.name, type=x.type, parameters=int(x.parameters),
                                 pct_of_total=x.pct_of_total or None)
                     for x in info.layers),
        nodes=tuple(nodes),
        sequential_path=tuple(info.sequential_path),
        input_shape=shape,
    )


def run_info(detail: dict[str, Any]) -> Any:
    """`RunInfo` from the run as `atlas runs show --json` prints it."""
    import atlas_diagnostics as d

    device = detail.get("device") or {}
    kind = device.get("kind") or "cpu"
    kind = kind if kind in ("cpu", "cuda", "mps") else "cpu"
    accelerator = device.get("accelerator_available") if device else None
    return d.RunInfo(device=kind, cpu_only_by_choice=kind == "cpu" and not accelerator,
                     world_size=max(1, detail.get("world_size") or 1), framework=detail.get("framework"),
                     cuda_available=bool(accelerator) if device else None)


def thresholds(overrides: dict[str, Any] | None) -> Any:
    """The run's threshold overrides (as its RunStart sent them) over the defaults; integers sent as floats by
    protobuf Struct are read back as integers."""
    import atlas_diagnostics as d

    if not overrides:
        return None
    ints = {k for k, v in d.Thresholds().to_dict().items() if isinstance(v, int) and not isinstance(v, bool)}
    fixed = {k: int(v) if k in ints and isinstance(v, float) and v.is_integer() else v for k, v in overrides.items()}
    return d.Thresholds.from_mapping(fixed)
