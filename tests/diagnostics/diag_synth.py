"""Synthetic runs for the diagnostics tests: a healthy baseline that each case bends in one place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from atlas_diagnostics import (
    Architecture,
    ArchLayer,
    ArchNode,
    CarbonRecord,
    CorrelationRecord,
    EpochRecord,
    GpuRecord,
    LayerHealthRecord,
    LayerTime,
    ProfilerRecord,
    RunInfo,
    StepRecord,
)

CUDA = RunInfo(device="cuda", cuda_available=True)
CPU_BY_CHOICE = RunInfo(device="cpu", cpu_only_by_choice=True)
LAYERS = ("fc1", "fc2", "fc3", "fc4")


def loss_at(e: int) -> float:
    """Smooth, steady decrease (no plateau, no diminishing returns within 15 epochs)."""
    return 2.0 - 0.1 * e


def healthy_fields(e: int, *, deep: bool = False, cuda: bool = False) -> dict[str, Any]:
    loss = loss_at(e)
    wobble = ((e * 7) % 3 - 1)  # deterministic -1/0/+1 jitter
    fields: dict[str, Any] = dict(
        epoch=e, duration_seconds=10.0 + 0.2 * wobble, end_time=1000.0 + 10.0 * (e + 1),
        train_mean=loss, train_std=0.1 * loss, train_min=0.8 * loss, train_max=1.3 * loss, count=100,
        val={"val_loss": 1.05 * loss, "val_acc": 0.5 + 0.03 * e},
        samples_per_sec=1000.0 + 10.0 * wobble, batches_per_sec=10.0, samples_processed=10_000,
        step_time_p50=0.1, step_time_p95=0.12, step_time_max=0.25,
        process_rss_mb=1000.0 + 2.0 * e, cpu_percent=55.0, ram_percent=40.0,
        lr=(1e-3,), grad_norm=1.0 + 0.05 * wobble, log_console_count=3, log_error_count=0,
    )
    if cuda:
        fields.update(cuda_allocated_mb=2000.0 + e, cuda_reserved_mb=2500.0, cuda_peak_allocated_mb=2400.0,
                      gpus=(GpuRecord(0, utilization_percent=85.0, memory_used_mb=3000.0, memory_total_mb=80_000.0,
                                      power_watts=250.0, temperature_c=60.0),))
    if deep:
        fields.update(
            profiler=ProfilerRecord(
                per_layer=tuple(LayerTime(n, p) for n, p in zip(LAYERS + ("relu",), (22.0, 21.0, 20.0, 19.0, 8.0))),
                total_cpu_time_us=12e6, total_cuda_time_us=(9e6 if cuda else 0.0),
                total_fwd_us=3.5e6, total_bwd_us=5e6,
            ),
            layers={n: LayerHealthRecord(activation_mean=0.2, activation_std=0.5, activation_var_of_means=0.01,
                                         zero_fraction=0.1, saturated_fraction=0.02,
                                         gradient_norm_mean=1e-3 * (i + 1), weight_sparsity=0.05,
                                         update_ratio=1e-3)
                    for i, n in enumerate(LAYERS)},
            correlations=(CorrelationRecord("fc2", "fc3", 0.4),),
            carbon=CarbonRecord(epoch_co2_kg=1e-5, epoch_energy_kwh=4e-5, power_draw_watts=60.0,
                                cumulative_co2_kg=1e-5 * (e + 1), cumulative_energy_kwh=4e-5 * (e + 1),
                                carbon_intensity_g_per_kwh=250.0, cpu_energy_kwh=1e-5,
                                gpu_energy_kwh=(3e-5 if cuda else 0.0)),
        )
    return fields


def epochs(n: int, *, deep: bool = False, cuda: bool = False, **over: Any) -> list[EpochRecord]:
    """``n`` healthy epochs; each keyword replaces a field: a list (one value per epoch), a callable of the
    epoch index, or a constant."""
    out = []
    for e in range(n):
        fields = healthy_fields(e, deep=deep, cuda=cuda)
        for key, value in over.items():
            if isinstance(value, list):
                fields[key] = value[e]
            elif callable(value):
                fields[key] = value(e)
            else:
                fields[key] = value
        out.append(EpochRecord(**fields))
    return out


def layers(**per_layer: dict[str, Any]) -> Callable[[int], dict[str, LayerHealthRecord]]:
    """Healthy layer stats with some layers' fields replaced (same values every epoch)."""
    def build(e: int) -> dict[str, LayerHealthRecord]:
        base = healthy_fields(e, deep=True)["layers"]
        out = {}
        for name, rec in base.items():
            kw = {f: getattr(rec, f) for f in rec.__dataclass_fields__}
            kw.update(per_layer.get(name, {}))
            out[name] = LayerHealthRecord(**kw)
        return out
    return build


def steps_for(epoch_list: Sequence[EpochRecord], per_epoch: int = 5, **over: Any) -> list[StepRecord]:
    """Healthy steps for each epoch (loss near the epoch mean, grad norm near 1); ``over`` maps a global step
    index to a dict of replaced fields."""
    out = []
    i = 0
    for rec in epoch_list:
        for k in range(per_epoch):
            fields: dict[str, Any] = dict(step=i, epoch=rec.epoch, loss=(rec.train_mean or 1.0) * (1 + 0.01 * k),
                                          lr=1e-3, grad_norm=1.0 + 0.02 * k,
                                          time=(rec.end_time or 0.0) - 10.0 + 2.0 * (k + 1))
            fields.update(over.get(str(i), {}))
            out.append(StepRecord(**fields))
            i += 1
    return out


def mlp() -> Architecture:
    """A 4-layer MLP whose profiled names match ``LAYERS``."""
    sizes = ((256, 256), (256, 256), (256, 256), (256, 256))  # equal widths: compute tracks parameters
    params = [i * o + o for i, o in sizes]
    total = sum(params)
    return Architecture(
        total_parameters=total,
        layers=tuple(ArchLayer(n, "Linear", p, 100.0 * p / total) for n, p in zip(LAYERS, params)),
        nodes=tuple(ArchNode(n, "Linear", in_features=i, out_features=o) for n, (i, o) in zip(LAYERS, sizes)),
        sequential_path=LAYERS,
    )


def classifier(classes: int) -> Architecture:
    """An MLP whose last Linear has one output per class (what tells the diagnostics the number of classes)."""
    sizes = ((16, 32), (32, classes))
    return Architecture(
        total_parameters=sum(i * o + o for i, o in sizes),
        layers=tuple(ArchLayer(f"fc{k}", "Linear", i * o + o) for k, (i, o) in enumerate(sizes, 1)),
        nodes=tuple(ArchNode(f"fc{k}", "Linear", in_features=i, out_features=o) for k, (i, o) in enumerate(sizes, 1)),
        sequential_path=("fc1", "fc2"),
    )


def step_losses(per_epoch: Sequence[Sequence[float]], **over: Any) -> list[StepRecord]:
    """Steps with the given losses, epoch by epoch (global step numbers in order); ``over`` maps a global step index
    to replaced fields, as in :func:`steps_for`."""
    out = []
    for epoch, losses in enumerate(per_epoch):
        for loss in losses:
            fields: dict[str, Any] = dict(step=len(out), epoch=epoch, loss=loss, lr=1e-3, grad_norm=1.0)
            fields.update(over.get(str(len(out)), {}))
            out.append(StepRecord(**fields))
    return out


def cnn(*convs: ArchNode, linear_params: int = 1000, conv_params: Sequence[int] | None = None,
        input_shape: tuple[int, ...] = (1, 28, 28), extra: Sequence[ArchNode] = ()) -> Architecture:
    """A CNN from the given conv (and pooling) nodes followed by one Linear ``fc``."""
    nodes = tuple(convs) + tuple(extra) + (ArchNode("fc", "Linear", in_features=10, out_features=10),)
    conv_nodes = [n for n in convs if n.kind == "convolution"]
    cps = list(conv_params) if conv_params is not None else [100] * len(conv_nodes)
    layers_ = [ArchLayer(n.id, n.type, p) for n, p in zip(conv_nodes, cps)] + [ArchLayer("fc", "Linear", linear_params)]
    total = sum(layer.parameters for layer in layers_)
    return Architecture(
        total_parameters=total,
        layers=tuple(ArchLayer(layer.name, layer.type, layer.parameters, 100.0 * layer.parameters / total)
                     for layer in layers_),
        nodes=nodes, sequential_path=tuple(n.id for n in nodes), input_shape=input_shape,
    )


def conv(name: str, cin: int = 8, cout: int = 8, k: int = 3, stride: int = 1) -> ArchNode:
    return ArchNode(name, "Conv2d", in_channels=cin, out_channels=cout, kernel_size=(k, k), stride=(stride, stride))


def pool(name: str) -> ArchNode:
    return ArchNode(name, "MaxPool2d")
