"""Every check: a synthetic series that fires it, a near miss that does not, and empty or short input."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from diag_synth import CPU_BY_CHOICE, CUDA, classifier, cnn, conv, epochs, layers, mlp, pool, steps_for

from atlas_diagnostics import (
    CATEGORIES,
    CHECK_IDS,
    CRITICAL_CHECKS,
    Architecture,
    ArchLayer,
    ArchNode,
    CarbonRecord,
    CorrelationRecord,
    LayerHealthRecord,
    LayerTime,
    LogRecord,
    ProfilerRecord,
    RunInfo,
    check_info,
    diagnose,
)

NAN, INF = math.nan, math.inf
L = [2.0 - 0.1 * e for e in range(12)]  # the healthy loss curve


def prof(shares: dict[str, float], **kw: Any) -> ProfilerRecord:
    fields = dict(total_cpu_time_us=12e6, total_cuda_time_us=0.0, total_fwd_us=3.5e6, total_bwd_us=5e6)
    fields.update(kw)
    return ProfilerRecord(per_layer=tuple(LayerTime(n, p) for n, p in shares.items()), **fields)


FIVE = {"a": 45.0, "b": 20.0, "c": 15.0, "d": 10.0, "e": 10.0}
FIVE_OK = {"a": 39.0, "b": 21.0, "c": 20.0, "d": 10.0, "e": 10.0}
FIVE_30 = {"a": 30.0, "b": 20.0, "c": 20.0, "d": 15.0, "e": 15.0}
FIVE_20 = {"a": 20.0, "b": 20.0, "c": 20.0, "d": 20.0, "e": 20.0}


def split_arch(shares: dict[str, float], kind: str = "Linear") -> Architecture:
    total = 100_000
    return Architecture(total_parameters=total,
                        layers=tuple(ArchLayer(n, kind, int(total * s)) for n, s in shares.items()),
                        nodes=tuple(ArchNode(n, kind) for n in shares), sequential_path=tuple(shares))


def co2(values: list[float], cpu: float = 1e-5, gpu: float = 3e-5) -> list[CarbonRecord]:
    return [CarbonRecord(epoch_co2_kg=v, epoch_energy_kwh=4 * v, power_draw_watts=60.0, cpu_energy_kwh=cpu,
                         gpu_energy_kwh=gpu) for v in values]


def gpus(util: float, power: float = 250.0) -> tuple[Any, ...]:
    from atlas_diagnostics import GpuRecord
    return (GpuRecord(0, utilization_percent=util, power_watts=power),)


def ranks(slow: float) -> list[Any]:
    out = epochs(3)
    from dataclasses import replace
    return out + [replace(r, rank=1, duration_seconds=r.duration_seconds * slow) for r in out]  # type: ignore[operator]


def mha(embed: int, heads: int) -> Architecture:
    node = ArchNode("attn", "MultiheadAttention", embed_dim=embed, num_heads=heads)
    return Architecture(total_parameters=1000, layers=(ArchLayer("attn", "MultiheadAttention", 1000),), nodes=(node,))


def embed(vocab: int, dim: int) -> Architecture:
    node = ArchNode("emb", "Embedding", num_embeddings=vocab, embedding_dim=dim)
    return Architecture(total_parameters=vocab * dim, layers=(ArchLayer("emb", "Embedding", vocab * dim),),
                        nodes=(node, ArchNode("head", "Linear")))


def dropout(p: float) -> Architecture:
    nodes = (ArchNode("fc1", "Linear", in_features=8, out_features=64), ArchNode("drop", "Dropout", p=p),
             ArchNode("fc2", "Linear", in_features=64, out_features=4))
    return Architecture(total_parameters=836, layers=(ArchLayer("fc1", "Linear", 576), ArchLayer("fc2", "Linear", 260)),
                        nodes=nodes)


def regression(*, last_relu: bool) -> Architecture:
    nodes = (ArchNode("0", "Linear", in_features=10, out_features=64), ArchNode("1", "ReLU"),
             ArchNode("2", "Linear", in_features=64, out_features=1)) + ((ArchNode("3", "ReLU"),) if last_relu else ())
    return Architecture(total_parameters=769, layers=(ArchLayer("0", "Linear", 704), ArchLayer("2", "Linear", 65)),
                        nodes=nodes, sequential_path=tuple(n.id for n in nodes))


def lstm(num_layers: int) -> Architecture:
    node = ArchNode("rnn", "LSTM", input_size=32, hidden_size=64, num_layers=num_layers)
    return Architecture(total_parameters=1000, layers=(ArchLayer("rnn", "LSTM", 1000),), nodes=(node,))


GPU_MB = [1000.0, 2000, 2200, 2400]


def corr(value: float) -> CorrelationRecord:
    return CorrelationRecord("fc2", "fc3", value)


def with_facts(n: int, facts: dict[str, Any], **over: Any) -> list[Any]:
    """``n`` healthy epochs whose first record carries ``facts`` (what the trainer learned about the run)."""
    return epochs(n, facts=lambda e: facts if e == 0 else {}, **over)


def head_on_frozen(total: int = 9604) -> Architecture:
    """A 4-class classifier whose parameters are nearly all in a backbone (the facts say which train)."""
    nodes = (ArchNode("backbone", "Linear", in_features=64, out_features=128),
             ArchNode("head", "Linear", in_features=32, out_features=4))
    return Architecture(total_parameters=total, layers=(ArchLayer("backbone", "Linear", total - 132),
                                                        ArchLayer("head", "Linear", 132)), nodes=nodes)


def lstm_fed(shape: tuple[int, ...], batch_first: bool | None = None) -> Architecture:
    """A 3-class LSTM classifier whose LSTM saw `shape` in the first forward pass."""
    nodes = (ArchNode("rnn", "LSTM", input_size=4, hidden_size=16, num_layers=1, batch_first=batch_first,
                      input_shape=shape), ArchNode("head", "Linear", in_features=16, out_features=3))
    return Architecture(total_parameters=1472, layers=(ArchLayer("rnn", "LSTM", 1421), ArchLayer("head", "Linear", 51)),
                        nodes=nodes)


BATCHES_OF_32 = {"targets": {"classes_seen": 3, "max_label": 2, "batch_classes": [3] * 8, "batch_sizes": [32] * 8}}
FROZEN = {"parameters": {"trainable": 2, "trainable_numel": 132, "in_optimizer": 2, "in_optimizer_numel": 132,
                         "foreign_in_optimizer": 0, "frozen_checked_numel": 9400, "frozen_at_init_numel": 9400}}
PRETRAINED = {"parameters": {**FROZEN["parameters"], "frozen_at_init_numel": 0}}  # loaded weights left the bound


def bn_arch() -> Architecture:
    nodes = (ArchNode("fc1", "Linear", in_features=16, out_features=32), ArchNode("bn", "BatchNorm1d"),
             ArchNode("fc2", "Linear", in_features=32, out_features=4))
    return Architecture(total_parameters=700, layers=(ArchLayer("fc1", "Linear", 544), ArchLayer("bn", "BatchNorm1d", 64),
                                                      ArchLayer("fc2", "Linear", 132)),
                        nodes=nodes, sequential_path=("fc1", "bn", "fc2"))


SOFTMAX = {"output": {"type": "Softmax", "layer": "net.4", "width": 10, "rows_sum_to_one": 1.0, "min": 0.0,
                      "max": 1.0}}
LOGITS = {"output": {"type": "Linear", "layer": "net.3", "width": 10, "rows_sum_to_one": 0.0, "min": -4.0,
                     "max": 5.0}}
NO_OPT = {"parameters": {"trainable": 4, "trainable_numel": 100, "in_optimizer": 0, "in_optimizer_numel": 0,
                         "foreign_in_optimizer": 2}}
ALL_OPT = {"parameters": {"trainable": 4, "trainable_numel": 100, "in_optimizer": 4, "in_optimizer_numel": 100,
                          "foreign_in_optimizer": 0}, "grad_without_optimizer": {"count": 0, "numel": 0, "names": []}}
STEP_SCHED = {"optimizers": [{"type": "SGD", "groups": [{"lr": 0.1, "initial_lr": 0.1, "params": 4}]}],
              "schedulers": [{"type": "StepLR", "interval": "step", "frequency": 1}], "max_epochs": 6}


def targets(per_batch: int, size: int = 32) -> dict[str, Any]:
    return {"targets": {"classes_seen": per_batch, "max_label": 9, "batch_classes": [per_batch] * 8,
                        "batch_sizes": [size] * 8}, "output": LOGITS["output"], "sampler": "SequentialSampler"}


Case = Callable[[], dict[str, Any]]

# check id -> (fires, near miss). Each builds diagnose() keyword arguments.
CASES: dict[str, tuple[Case, Case]] = {
    # ---- loss
    "nan_loss": (lambda: dict(epochs=epochs(3, train_mean=[2.0, 1.9, NAN])),
                 lambda: dict(epochs=epochs(3, train_mean=[2.0, 1.9, 1.8]))),
    "loss_explosion": (lambda: dict(epochs=epochs(3, train_mean=[1.0, 0.9, 2.0])),
                       lambda: dict(epochs=epochs(3, train_mean=[1.0, 0.9, 1.79]))),
    "loss_divergence": (lambda: dict(epochs=epochs(4, train_mean=[2.0, 1.9, 1.95, 2.0])),
                        lambda: dict(epochs=epochs(4, train_mean=[2.0, 1.9, 1.93, 1.935]))),
    "loss_plateau": (lambda: dict(epochs=epochs(6, train_mean=[2.0, 1.5, 1.0, 0.999, 0.998, 0.997])),
                     lambda: dict(epochs=epochs(6, train_mean=[2.0, 1.5, 1.0, 0.995, 0.99, 0.985]))),
    "loss_at_chance": (lambda: dict(architecture=classifier(4), epochs=epochs(
                           3, train_mean=[1.40, 1.39, 1.385], val={"val_loss": 1.39, "val_acc": 0.26})),
                       lambda: dict(architecture=classifier(4), epochs=epochs(
                           3, train_mean=[1.40, 1.39, 1.385], val={"val_loss": 1.39, "val_acc": 0.36}))),
    "overfitting": (lambda: dict(epochs=epochs(5, val=lambda e: {"val_loss": [1.0, 0.9, 0.8, 0.85, 0.9][e]})),
                    lambda: dict(epochs=epochs(5, val=lambda e: {"val_loss": [1.0, 0.9, 0.8, 0.85, 0.87][e]}))),
    "high_loss_variance": (lambda: dict(epochs=epochs(4, train_std=lambda e: 0.6 * L[e])),
                           lambda: dict(epochs=epochs(4, train_std=lambda e: (0.9 if e == 0 else 0.45) * L[e]))),
    "gradient_instability": (lambda: dict(epochs=epochs(3, train_max=lambda e: (25 if e == 2 else 1.3) * L[e])),
                             lambda: dict(epochs=epochs(3, train_max=lambda e: 19 * L[e]))),
    "lr_too_high": (lambda: dict(epochs=epochs(6, train_mean=[2.0, 1.8, 1.95, 1.7, 1.9, 1.6])),
                    lambda: dict(epochs=epochs(6, train_mean=[2.0, 1.99, 1.995, 1.985, 1.99, 1.98]))),
    "lr_too_low": (lambda: dict(epochs=epochs(4, lr=(1e-7,), train_mean=[2.0, 1.999, 1.998, 1.997])),
                   lambda: dict(epochs=epochs(4, lr=(1e-5,), train_mean=[2.0, 1.999, 1.998, 1.997]))),
    "exploding_gradients": (lambda: dict(epochs=epochs(5, grad_norm=[1.0, 1.1, 0.9, 1.0, 5000.0])),
                            lambda: dict(epochs=epochs(5, grad_norm=[1.0, 1.1, 0.9, 1.0, 500.0]))),
    "data_leakage": (lambda: dict(epochs=epochs(3, val=lambda e: {"val_loss": 0.4 * L[e]})),
                     lambda: dict(epochs=epochs(3, val=lambda e: {"val_loss": 0.6 * L[e]}))),
    # ---- programming bugs (facts)
    "missing_zero_grad": (
        lambda: dict(epochs=with_facts(2, {"grads_not_cleared": {"steps": 15, "watched_steps": 15,
                                                                 "parameter": "fc2.bias"},
                                           "manual_optimization": True})),
        lambda: dict(epochs=with_facts(2, {"grads_not_cleared": {"steps": 0, "watched_steps": 15,
                                                                 "parameter": "fc2.bias"},
                                           "manual_optimization": True}))),
    "double_softmax": (
        lambda: dict(epochs=with_facts(3, SOFTMAX, train_mean=[2.0, 1.6, 1.5], val={"val_loss": 1.5, "val_acc": 0.95})),
        lambda: dict(epochs=with_facts(3, SOFTMAX, train_mean=[2.0, 1.0, 0.5], val={"val_loss": 0.5, "val_acc": 0.95}))),
    "optimizer_not_stepping_model": (lambda: dict(epochs=with_facts(2, NO_OPT)),
                                     lambda: dict(epochs=with_facts(2, ALL_OPT))),
    "lr_schedule_collapse": (
        lambda: dict(epochs=with_facts(2, STEP_SCHED, lr=[(1e-20,), (1e-30,)])),
        lambda: dict(epochs=with_facts(2, STEP_SCHED, lr=[(0.05,), (0.025,)]))),
    "unnormalized_inputs": (
        lambda: dict(epochs=with_facts(1, {"inputs": {"mean": 110.0, "std": 70.0, "min": 0.0, "max": 255.0,
                                                      "dtype": "float32"}})),
        lambda: dict(epochs=with_facts(1, {"inputs": {"mean": 0.1, "std": 1.0, "min": -3.0, "max": 3.0,
                                                      "dtype": "float32"}}))),
    "unshuffled_data": (lambda: dict(epochs=with_facts(1, targets(1))),
                        lambda: dict(epochs=with_facts(1, targets(9)))),
    "eval_mode_training": (
        lambda: dict(epochs=with_facts(1, {"training_mode": {"steps": 16, "eval_steps": 16},
                                           "mode_layers": {"count": 2, "eval": 2}})),
        lambda: dict(epochs=with_facts(1, {"training_mode": {"steps": 16, "eval_steps": 0},
                                           "mode_layers": {"count": 2, "eval": 0}}))),
    "batchnorm_tiny_batch": (lambda: dict(architecture=bn_arch(), epochs=with_facts(1, targets(2, size=2))),
                             lambda: dict(architecture=bn_arch(), epochs=with_facts(1, targets(9, size=32)))),
    "unused_parameters": (
        lambda: dict(epochs=with_facts(1, {"unused_parameters": {"count": 2, "numel": 4160, "watched_steps": 16,
                                                                 "names": ["extra.weight", "extra.bias"]},
                                           "parameters": {"trainable": 6, "trainable_numel": 10000}})),
        lambda: dict(epochs=with_facts(1, {"unused_parameters": {"count": 0, "numel": 0, "watched_steps": 16,
                                                                 "names": []},
                                           "parameters": {"trainable": 6, "trainable_numel": 10000}}))),
    "missing_grad_clipping": (
        lambda: dict(architecture=lstm(2), epochs=with_facts(2, {"grad_clip": {"value": 0.0, "algorithm": "norm"}},
                                                               grad_norm=1.0, grad_norm_max=[2.0, 50.0])),
        lambda: dict(architecture=lstm(2), epochs=with_facts(2, {"grad_clip": {"value": 0.0, "algorithm": "norm"}},
                                                               grad_norm=1.0, grad_norm_max=[2.0, 5.0]))),
    # ---- system
    "throughput_degradation": (lambda: dict(epochs=epochs(5, samples_per_sec=[1000.0, 1000, 1000, 700, 700])),
                               lambda: dict(epochs=epochs(5, samples_per_sec=[1000.0, 1000, 1000, 700, 1000]))),
    "memory_growth": (lambda: dict(epochs=epochs(5, process_rss_mb=[900.0, 1000, 1100, 1200, 1300])),
                      lambda: dict(epochs=epochs(5, process_rss_mb=[1000.0, 1000, 1100, 1200, 1240]))),
    "gpu_memory_growth": (lambda: dict(run_info=CUDA,
                                       epochs=epochs(5, cuda=True, cuda_allocated_mb=GPU_MB + [2600.0])),
                          lambda: dict(run_info=CUDA,
                                       epochs=epochs(5, cuda=True, cuda_allocated_mb=GPU_MB + [2490.0]))),
    "slow_epoch": (lambda: dict(epochs=epochs(6, duration_seconds=[10.0] * 5 + [16.0])),
                   lambda: dict(epochs=epochs(6, duration_seconds=[10.0] * 5 + [14.9]))),
    "high_cpu": (lambda: dict(run_info=CUDA, epochs=epochs(2, cuda=True, cpu_percent=95.0)),
                 lambda: dict(run_info=CUDA, epochs=epochs(2, cuda=True, cpu_percent=89.0))),
    "error_logs": (lambda: dict(epochs=epochs(2), logs=[LogRecord("ERROR", "CUDA out of memory", epoch=1)]),
                   lambda: dict(epochs=epochs(2), logs=[LogRecord("WARNING", "slow data loader", epoch=1)])),
    "low_gpu_utilization": (lambda: dict(run_info=CUDA, epochs=epochs(3, cuda=True, gpus=gpus(30.0))),
                            lambda: dict(run_info=CUDA, epochs=epochs(
                                3, cuda=True, gpus=lambda e: gpus(30.0 if e == 2 else 85.0)))),
    "step_time_outlier": (lambda: dict(epochs=epochs(3, step_time_max=[0.2, 0.2, 1.5])),
                          lambda: dict(epochs=epochs(3, step_time_max=[1.5, 0.2, 0.9]))),
    "straggler_rank": (lambda: dict(run_info=RunInfo(world_size=2), epochs=ranks(1.3)),
                       lambda: dict(run_info=RunInfo(world_size=2), epochs=ranks(1.2))),
    "stalled_training": (lambda: dict(epochs=epochs(2), now=1020.0 + 1801),
                         lambda: dict(epochs=epochs(2), now=1020.0 + 1799)),
    # ---- profiler
    "profiler_hotspot": (lambda: dict(epochs=epochs(2, profiler=prof(FIVE))),
                         lambda: dict(epochs=epochs(2, profiler=prof(FIVE_OK)))),
    "consistent_profiler_hot": (lambda: dict(epochs=epochs(3, profiler=prof(FIVE_30))),
                                lambda: dict(epochs=epochs(3, profiler=[prof(FIVE_30), prof(FIVE_30), prof(FIVE_20)]))),
    "backward_dominance": (lambda: dict(epochs=epochs(1, profiler=prof(FIVE_20, total_bwd_us=6e6))),
                           lambda: dict(epochs=epochs(1, profiler=prof(FIVE_20, total_bwd_us=5.2e6)))),
    "fwd_bwd_ratio": (lambda: dict(epochs=epochs(1, profiler=prof(FIVE_20, total_fwd_us=0.5e6))),
                      lambda: dict(epochs=epochs(1, profiler=prof(FIVE_20, total_fwd_us=1e6)))),
    # ---- sustainability
    "diminishing_returns": (lambda: dict(epochs=epochs(3, train_mean=[2.0, 1.0, 0.98])),
                            lambda: dict(epochs=epochs(3, train_mean=[2.0, 1.0, 0.9]))),
    "early_stopping_missed": (
        lambda: dict(epochs=epochs(6, val=lambda e: {"val_loss": [1.0, 0.8, 0.7, 0.71, 0.72, 0.73][e]})),
        lambda: dict(epochs=epochs(5, val=lambda e: {"val_loss": [1.0, 0.8, 0.7, 0.71, 0.72][e]}))),
    "over_parameterized_layer": (
        lambda: dict(architecture=split_arch({"f1": 0.6, "f2": 0.3, "f3": 0.1}),
                     epochs=epochs(1, profiler=prof({"f1": 5.0, "f2": 50.0, "f3": 45.0}))),
        lambda: dict(architecture=split_arch({"f1": 0.6, "f2": 0.3, "f3": 0.1}),
                     epochs=epochs(1, profiler=prof({"f1": 7.0, "f2": 50.0, "f3": 43.0})))),
    "compute_inefficient_layer": (
        lambda: dict(architecture=split_arch({"c1": 0.01, "f2": 0.99}, "Conv2d"),
                     epochs=epochs(1, profiler=prof({"c1": 20.0, "f2": 80.0}))),
        lambda: dict(architecture=split_arch({"c1": 0.05, "f2": 0.95}, "Conv2d"),
                     epochs=epochs(1, profiler=prof({"c1": 40.0, "f2": 60.0})))),
    "device_underutilization": (
        lambda: dict(run_info=CUDA, epochs=epochs(1, cuda=True, profiler=prof(FIVE_20, total_cuda_time_us=5e5))),
        lambda: dict(run_info=CUDA, epochs=epochs(1, cuda=True, profiler=prof(FIVE_20, total_cuda_time_us=2.4e6)))),
    "carbon_intensity_spike": (lambda: dict(epochs=epochs(5, carbon=co2([1e-5] * 4 + [1.1e-4]))),
                               lambda: dict(epochs=epochs(5, carbon=co2([1e-5] * 4 + [0.9e-4])))),
    "wasted_carbon": (
        lambda: dict(epochs=epochs(7, carbon=co2([1e-5] * 7),
                                   val=lambda e: {"val_loss": [1.0, 0.8, 0.7, 0.71, 0.72, 0.73, 0.74][e]})),
        lambda: dict(epochs=epochs(7, carbon=co2([1e-5] * 7)))),
    "gpu_idle_waste": (lambda: dict(run_info=CUDA, epochs=epochs(1, cuda=True, gpus=gpus(10.0, 60.0))),
                       lambda: dict(run_info=CUDA, epochs=epochs(1, cuda=True, gpus=gpus(25.0, 60.0)))),
    "cpu_dominant_training": (lambda: dict(run_info=CUDA, epochs=epochs(1, cuda=True, carbon=co2([1e-5], 6e-5, 1e-5))),
                              lambda: dict(run_info=CUDA, epochs=epochs(1, cuda=True, carbon=co2([1e-5], 4e-5, 1e-5)))),
    # ---- layer health
    "dead_layers": (lambda: dict(epochs=epochs(3, deep=True, layers=layers(fc2={"zero_fraction": 0.6}))),
                    lambda: dict(epochs=epochs(3, deep=True, layers=layers(fc2={"zero_fraction": 0.5})))),
    "vanishing_gradients": (lambda: dict(epochs=epochs(2, deep=True, layers=layers(fc1={"gradient_norm_mean": 1e-8}))),
                            lambda: dict(epochs=epochs(2, deep=True, layers=layers(fc1={"gradient_norm_mean": 2e-7})))),
    "depth_gradient_ratio": (
        lambda: dict(epochs=epochs(1, deep=True, layers=layers(fc1={"gradient_norm_mean": 3e-5}))),
        lambda: dict(epochs=epochs(1, deep=True, layers=layers(fc1={"gradient_norm_mean": 5e-5})))),
    "frozen_output_layers": (  # absolute 1e-8 (reference) and 1e-10 of the activation variance (0.25), 2 epochs
        lambda: dict(epochs=epochs(2, deep=True, layers=layers(fc3={"activation_var_of_means": 1e-14}))),
        lambda: dict(epochs=epochs(2, deep=True, layers=layers(fc3={"activation_var_of_means": 1e-9})))),
    "activation_collapse": (lambda: dict(epochs=epochs(2, deep=True, layers=layers(fc3={"activation_std": 1e-6}))),
                            lambda: dict(epochs=epochs(2, deep=True, layers=layers(fc3={"activation_std": 1e-4})))),
    "redundant_layers": (lambda: dict(epochs=epochs(1, deep=True, correlations=(corr(0.97),))),
                         lambda: dict(epochs=epochs(1, deep=True, correlations=(corr(0.94),)))),
    "saturated_activation": (lambda: dict(epochs=epochs(1, deep=True, layers=layers(fc4={"saturated_fraction": .6}))),
                             lambda: dict(epochs=epochs(1, deep=True, layers=layers(fc4={"saturated_fraction": .45})))),
    # ---- architecture
    "fc_dominates_params": (lambda: dict(architecture=cnn(conv("c1"), linear_params=2000, conv_params=[100])),
                            lambda: dict(architecture=cnn(conv("c1"), linear_params=900, conv_params=[100]))),
    "conv_bottleneck": (lambda: dict(architecture=cnn(conv("c1"), conv("c2"), pool("p"), conv_params=[100, 2000])),
                        lambda: dict(architecture=cnn(conv("c1"), conv("c2"), pool("p"), conv_params=[100, 1000]))),
    "missing_pooling": (lambda: dict(architecture=cnn(conv("c1"), conv("c2"), conv("c3"))),
                        lambda: dict(architecture=cnn(conv("c1"), conv("c2"), conv("c3", stride=2)))),
    "large_kernel": (lambda: dict(architecture=cnn(conv("c1"), conv("c2", k=7), pool("p"))),
                     lambda: dict(architecture=cnn(conv("c1"), conv("c2", k=7), pool("p"), input_shape=(3, 224, 224)))),
    "grayscale_channel_explosion": (lambda: dict(architecture=cnn(conv("c1", cin=1, cout=64), pool("p"))),
                                    lambda: dict(architecture=cnn(conv("c1", cin=1, cout=32), pool("p")))),
    "attention_head_dim": (lambda: dict(architecture=mha(128, 3)), lambda: dict(architecture=mha(128, 4))),
    "embedding_oversized": (lambda: dict(architecture=embed(1000, 1024)), lambda: dict(architecture=embed(1000, 512))),
    "rnn_too_deep": (lambda: dict(architecture=lstm(5)), lambda: dict(architecture=lstm(4))),
    "excessive_dropout": (lambda: dict(architecture=dropout(0.9)), lambda: dict(architecture=dropout(0.5))),
    "relu_output": (
        lambda: dict(epochs=with_facts(2, {"output": {"width": 1, "min": 0.0, "max": 2.5}}),
                     architecture=regression(last_relu=True)),
        lambda: dict(epochs=with_facts(2, {"output": {"width": 1, "min": -1.2, "max": 2.5}}),  # a ReLU listed last,
                     architecture=regression(last_relu=True))),                             # used in the middle
    "rnn_batch_first": (  # (batch 32, time 20, features 4) into an LSTM that reads (time, batch, features) ...
        lambda: dict(epochs=with_facts(1, BATCHES_OF_32), architecture=lstm_fed((32, 20, 4))),
        # ... the same tensor, transposed to (time, batch, features) as the LSTM expects
        lambda: dict(epochs=with_facts(1, BATCHES_OF_32), architecture=lstm_fed((20, 32, 4)))),
    "frozen_backbone": (  # a head on frozen weights still at their init: the loss near ln(4) = 1.386 ...
        lambda: dict(epochs=with_facts(2, FROZEN, val=lambda e: {"val_loss": 1.36 - 0.01 * e, "val_acc": 0.4}),
                     architecture=head_on_frozen()),
        # ... the same slow head on loaded (pretrained) weights is not this bug
        lambda: dict(epochs=with_facts(2, PRETRAINED, val=lambda e: {"val_loss": 1.36 - 0.01 * e, "val_acc": 0.4}),
                     architecture=head_on_frozen())),
    "broadcast_loss_shapes": (
        lambda: dict(epochs=epochs(2), logs=[LogRecord("WARNING", "train.py:41: UserWarning: Using a target size "
                                                       "(torch.Size([64])) that is different to the input size "
                                                       "(torch.Size([64, 1])). This will likely lead to incorrect "
                                                       "results due to broadcasting.", epoch=0)]),
        lambda: dict(epochs=epochs(2), logs=[LogRecord("WARNING", "UserWarning: The given NumPy array is not "
                                                       "writable", epoch=0)])),
}


def active_checks(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {i.check: i for i in diagnose(**kwargs) if i.active}


def test_every_registered_check_has_cases() -> None:
    assert sorted(CASES) == list(CHECK_IDS)
    assert len(CHECK_IDS) >= 45


@pytest.mark.parametrize("check", sorted(CASES))
def test_check_fires(check: str) -> None:
    found = active_checks(CASES[check][0]())
    assert check in found, f"{check} did not fire; found {sorted(found)}"
    issue = found[check]
    assert issue.category == check_info(check)["category"]
    assert issue.description and issue.suggestion and issue.title


@pytest.mark.parametrize("check", sorted(CASES))
def test_near_miss_does_not_fire(check: str) -> None:
    found = active_checks(CASES[check][1]())
    assert check not in found, found.get(check)


@pytest.mark.parametrize("check", sorted(CASES))
def test_short_input_is_quiet(check: str) -> None:
    assert diagnose() == ()
    assert check not in active_checks(dict(epochs=epochs(1)))
    assert check not in active_checks(dict(epochs=epochs(1, deep=True), architecture=mlp()))


def test_only_the_contracts_checks_may_be_critical() -> None:
    """ARCHITECTURE.md: critical means "stop this run now"; dead_layers is a warning that may escalate."""
    assert CRITICAL_CHECKS == {"nan_loss", "loss_explosion", "exploding_gradients", "optimizer_not_stepping_model",
                               "dead_layers"}
    assert {c for c in CHECK_IDS if check_info(c)["severity"] == "critical"} == {
        "nan_loss", "loss_explosion", "exploding_gradients"}
    assert check_info("dead_layers")["severity"] == "warning"


@pytest.mark.parametrize("check", sorted(CHECK_IDS))
def test_severity_and_category_follow_the_contract(check: str) -> None:
    info = check_info(check)
    assert info["category"] in CATEGORIES
    assert info["severity"] != "critical" or check in CRITICAL_CHECKS
    criticals = {i.check for i in diagnose(**CASES[check][0]()) if i.severity == "critical"}
    assert criticals <= CRITICAL_CHECKS
    if check in {"dead_layers", "vanishing_gradients", "depth_gradient_ratio", "frozen_output_layers",
                 "activation_collapse", "redundant_layers", "saturated_activation", "carbon_intensity_spike",
                 "wasted_carbon", "gpu_idle_waste", "cpu_dominant_training"}:
        assert info["category"] == "sustainability"


@pytest.mark.parametrize("check", sorted(CASES))
def test_issue_carries_its_numbers_and_thresholds(check: str) -> None:
    issue = active_checks(CASES[check][0]())[check]
    d = issue.to_dict()
    assert d["check"] == check
    assert d["severity"] in ("critical", "warning", "info")
    if d["thresholds"]:
        assert all(isinstance(v, (int, float)) for v in d["thresholds"].values())
    assert issue.metric_key is not None


@pytest.mark.parametrize("overrides, check, fires", [
    ({"loss_explosion_ratio": 3.0}, "loss_explosion", False),  # 2.2x is no longer an explosion
    ({"slow_epoch_factor": 1.7}, "slow_epoch", False),
    ({"dead_layer_zero_fraction": 0.7}, "dead_layers", False),
    ({"memory_growth_pct": 0.2}, "memory_growth", True),
])
def test_thresholds_change_verdicts(overrides: dict[str, Any], check: str, fires: bool) -> None:
    from atlas_diagnostics import Thresholds
    kwargs = CASES[check][0]() if not fires else CASES[check][1]()
    assert (check in active_checks({**kwargs, "thresholds": Thresholds.from_mapping(overrides)})) is fires


def test_cpu_by_choice_says_one_info_and_no_device_check() -> None:
    kwargs = CASES["high_cpu"][0]()
    kwargs.update(run_info=CPU_BY_CHOICE, epochs=epochs(4, cpu_percent=99.0, gpus=gpus(5.0, 80.0),
                                                      carbon=co2([1e-5] * 4, 6e-5, 0.0)))
    issues = [i for i in diagnose(**kwargs) if i.active]
    device_checks = {"high_cpu", "low_gpu_utilization", "gpu_idle_waste", "cpu_dominant_training",
                     "gpu_memory_growth", "device_underutilization"}
    found = [i for i in issues if i.check in device_checks]
    assert [(i.check, i.severity) for i in found] == [("device_underutilization", "info")]


def test_gpu_available_but_unused_is_a_warning() -> None:
    issues = active_checks(dict(run_info=RunInfo(device="cpu", cuda_available=True), epochs=epochs(2)))
    assert issues["device_underutilization"].severity == "warning"


def test_step_level_nan_and_amp_skipped_steps() -> None:
    eps = epochs(2)
    bad = steps_for(eps, **{"7": {"loss": NAN}})
    nan = active_checks(dict(epochs=eps, steps=bad))["nan_loss"]
    assert nan.severity == "critical" and nan.first_seen_epoch == 1
    amp = steps_for(eps, **{"7": {"loss": INF, "grad_norm": INF, "amp_skipped": True},
                            "8": {"grad_norm": 1e9, "accumulating": True}})
    found = active_checks(dict(epochs=epochs(2, amp_skipped_steps=lambda e: e), steps=amp))
    assert "nan_loss" not in found and "exploding_gradients" not in found


def test_amp_inflated_epoch_mean_is_not_nan_loss() -> None:
    eps = epochs(2, train_mean=[2.0, INF], amp_skipped_steps=[0, 3], grad_norm=[1.0, INF])
    steps = steps_for(epochs(2), **{"6": {"loss": INF, "amp_skipped": True}})
    found = active_checks(dict(epochs=eps, steps=steps))
    assert "nan_loss" not in found and "exploding_gradients" not in found


def test_step_exploding_gradient_against_recent_median() -> None:
    eps = epochs(3)
    steps = steps_for(eps, per_epoch=6, **{"15": {"grad_norm": 2500.0}})
    issue = active_checks(dict(epochs=eps, steps=steps))["exploding_gradients"]
    assert issue.severity == "critical" and issue.step == 15 and issue.metric_value == 2500.0
    steps = steps_for(eps, per_epoch=6, **{"15": {"grad_norm": 500.0}})
    assert "exploding_gradients" not in active_checks(dict(epochs=eps, steps=steps))


def test_data_leakage_from_perfect_first_epoch_accuracy() -> None:
    fire = active_checks(dict(epochs=epochs(3, val=lambda e: {"val_loss": L[e], "val_acc": 0.9995})))
    assert fire["data_leakage"].metric_key == "val_accuracy"
    assert fire["data_leakage"].severity == "info"  # easy data does that too: a hint, not a warning
    quiet = active_checks(dict(epochs=epochs(3, val=lambda e: {"val_loss": L[e], "val_acc": 0.99})))
    assert "data_leakage" not in quiet


def test_memory_growth_ignores_small_absolute_growth() -> None:
    assert "memory_growth" not in active_checks(dict(epochs=epochs(5, process_rss_mb=[90.0, 100, 120, 130, 140])))


def test_profiler_hotspot_ignores_tiny_models() -> None:
    kwargs = dict(epochs=epochs(3, profiler=prof({"a": 60.0, "b": 30.0, "c": 10.0})))
    assert not {"profiler_hotspot", "consistent_profiler_hot"} & set(active_checks(kwargs))


def test_diminishing_returns_turns_warning_when_it_lasts() -> None:
    curve = [2.0, 1.0, 0.98, 0.97, 0.965, 0.962, 0.96]
    flat_val = {"val_loss": 1.2}
    issue = active_checks(dict(epochs=epochs(7, train_mean=curve, val=flat_val)))["diminishing_returns"]
    assert issue.severity == "warning" and issue.first_seen_epoch == 2
    improving_val = lambda e: {"val_loss": 1.1 * curve[e]}  # noqa: E731  (val still sets a new best each epoch)
    issue = active_checks(dict(epochs=epochs(7, train_mean=curve, val=improving_val)))["diminishing_returns"]
    assert issue.severity == "info"
    issue = active_checks(dict(epochs=epochs(4, train_mean=curve[:4])))["diminishing_returns"]
    assert issue.severity == "info"


def test_wasted_carbon_is_info_when_small() -> None:
    val = [1.0 - 0.05 * e for e in range(13)] + [0.41, 0.42, 0.43]  # best at epoch 12 of 16
    issue = active_checks(dict(epochs=epochs(16, carbon=co2([1e-5] * 16),
                                             val=lambda e: {"val_loss": val[e]})))["wasted_carbon"]
    assert issue.severity == "info"  # 3 of 16 epochs: 19 % of the CO2, below the 20 % warning line
    assert issue.metric_value == pytest.approx(3e-5)


def test_dead_layer_needs_two_epochs() -> None:
    one = dict(epochs=epochs(3, deep=True, layers=lambda e: layers(fc2={"zero_fraction": 0.9 if e == 2 else 0.1})(e)))
    assert "dead_layers" not in active_checks(one)
    issue = active_checks(CASES["dead_layers"][0]())["dead_layers"]
    assert issue.layer == "fc2" and issue.first_seen_epoch == 1


FLAT = dict(train_mean=[1.5, 1.5, 1.5, 1.5], val={"val_loss": 1.6})


@pytest.mark.parametrize("zero, curve, severity", [
    (0.6, {}, "info"),  # dead units while the loss keeps improving: the rest of the network learns
    (1.0, {}, "info"),  # even a whole dead layer, while the loss improves (a residual path around it)
    (0.6, FLAT, "warning"),  # most units dead and the loss stands still
    (0.99, FLAT, "warning"),  # one unit alive: not a whole layer
    (1.0, FLAT, "critical"),  # no unit ever active and the loss stopped improving: stop the run
])
def test_dead_layer_severity_follows_the_loss(zero: float, curve: dict[str, Any], severity: str) -> None:
    found = active_checks(dict(epochs=epochs(4, deep=True, layers=layers(fc2={"zero_fraction": zero}), **curve)))
    assert found["dead_layers"].severity == severity


def test_missing_pooling_resets_at_pooling() -> None:
    arch = cnn(conv("c1"), conv("c2"), pool("p"), conv("c3"), conv("c4"))
    assert "missing_pooling" not in active_checks(dict(architecture=arch))


def test_architecture_checks_follow_the_detected_type() -> None:
    # a 7x7 kernel in an RNN-free, attention-free conv net is judged; the same conv inside a transformer is not
    convnet = cnn(conv("c1"), conv("c2", k=7), pool("p"))
    assert "large_kernel" in active_checks(dict(architecture=convnet))
    hybrid = Architecture(total_parameters=convnet.total_parameters, layers=convnet.layers,
                          nodes=convnet.nodes + (ArchNode("attn", "MultiheadAttention", embed_dim=64, num_heads=4),))
    assert "large_kernel" not in active_checks(dict(architecture=hybrid))


def test_attention_small_heads_are_info() -> None:
    issue = active_checks(dict(architecture=mha(64, 8)))["attention_head_dim"]
    assert issue.severity == "info"


def test_wasted_carbon_from_diminishing_returns_alone_is_info() -> None:
    # no validation metric: the stop point comes from the training loss's diminishing returns
    curve = [0.2 + 2 * 0.7 ** e for e in range(14)]
    eps = epochs(14, train_mean=curve, val={}, carbon=co2([1e-5] * 14))
    issue = active_checks(dict(epochs=eps))["wasted_carbon"]
    assert issue.severity == "info" and "diminishing_returns" in issue.description


# ---- rules tuned on real runs (tests/faults)

def _ratios(value: float) -> Callable[[int], Any]:
    return layers(**{n: {"update_ratio": value} for n in ("fc1", "fc2", "fc3", "fc4")})


@pytest.mark.parametrize("ratio, fires", [(0.6, True), (0.2, False)])
def test_lr_too_high_from_the_update_ratio_in_the_first_epoch(ratio: float, fires: bool) -> None:
    found = active_checks(dict(epochs=epochs(1, deep=True, layers=_ratios(ratio))))
    assert ("lr_too_high" in found) is fires
    if fires:
        assert found["lr_too_high"].metric_key == "update_ratio" and found["lr_too_high"].first_seen_epoch == 0


def test_one_layer_with_a_large_update_ratio_is_not_a_too_high_lr() -> None:
    one = layers(fc4={"update_ratio": 5.0})  # the median over layers judges, not the fastest layer
    assert "lr_too_high" not in active_checks(dict(epochs=epochs(2, deep=True, layers=one)))


@pytest.mark.parametrize("head, losses, fires", [
    (0.2, [1.14, 1.19, 1.18], True),   # a GRU under SGD lr=1.0 (benchmarks/heldout b02): stuck, the head racing
    (0.05, [1.14, 1.19, 1.18], False),  # stuck with ordinary steps: a data or loss bug, not the learning rate
    (0.2, [1.14, 1.0, 0.9], False),    # large steps, but the loss falls: early training
])
def test_lr_too_high_when_the_loss_is_stuck_while_a_layer_moves_a_tenth_of_its_norm_per_step(
        head: float, losses: list[float], fires: bool) -> None:
    moving = layers(fc1={"update_ratio": 0.03}, fc4={"update_ratio": head})
    found = active_checks(dict(epochs=epochs(3, deep=True, layers=moving, train_mean=losses)))
    assert ("lr_too_high" in found) is fires, found.get("lr_too_high")
    if fires:
        assert found["lr_too_high"].key == "stalled_update_ratio" and "fc4" in found["lr_too_high"].description


@pytest.mark.parametrize("ratio, losses, lrs, fires", [
    (1e-7, [2.0, 1.9999], [(1e-7,), (1e-7,)], True),
    (1e-4, [2.0, 1.9999], [(1e-7,), (1e-7,)], False),  # the weights move: near miss on the ratio
    (1e-7, [2.0, 1.9], [(1e-7,), (1e-7,)], False),  # the loss still falls 5 % an epoch
    (1e-7, [2.0, 1.9999], [(1e-3,), (1e-7,)], False),  # a schedule annealed the LR on purpose
])
def test_lr_too_low_from_the_update_ratio_after_one_epoch(ratio: float, losses: list[float],
                                                          lrs: list[tuple[float]], fires: bool) -> None:
    found = active_checks(dict(epochs=epochs(2, deep=True, layers=_ratios(ratio), train_mean=losses, lr=lrs)))
    assert ("lr_too_low" in found) is fires
    if fires:
        assert found["lr_too_low"].first_seen_epoch == 1 and found["lr_too_low"].metric_key == "update_ratio"


def test_vanishing_gradients_are_not_a_too_low_lr() -> None:
    still = layers(fc1={"update_ratio": 1e-9}, fc2={"update_ratio": 1e-8}, fc3={"update_ratio": 1e-7},
                   fc4={"update_ratio": 1e-2})  # the early layers are still, the last one moves normally
    found = active_checks(dict(epochs=epochs(2, deep=True, layers=still, train_mean=[2.0, 1.9999], lr=(1e-3,))))
    assert "lr_too_low" not in found


def test_update_ratio_rules_need_layer_health() -> None:
    found = active_checks(dict(epochs=epochs(2, train_mean=[2.0, 1.9999])))
    assert "lr_too_low" not in found and "lr_too_high" not in found


def test_nan_loss_names_the_first_bad_step_of_a_diverged_run() -> None:
    eps = epochs(3, train_mean=[2.0, 1.9, NAN])
    bad = steps_for(epochs(3), **{str(k): {"loss": NAN} for k in (12, 13, 14)})
    issue = active_checks(dict(epochs=eps, steps=bad))["nan_loss"]
    assert (issue.step, issue.first_seen_epoch, issue.metric_key) == (12, 2, "loss")
    assert "step 12" in issue.description


def test_frozen_output_needs_two_epochs_and_a_tiny_share_of_the_variance() -> None:
    frozen = layers(fc3={"activation_var_of_means": 0.0})
    assert "frozen_output_layers" not in active_checks(dict(epochs=epochs(1, deep=True, layers=frozen)))
    lucky = lambda e: layers(fc3={"activation_var_of_means": 1e-13 if e == 0 else 1e-3})(e)  # noqa: E731
    assert "frozen_output_layers" not in active_checks(dict(epochs=epochs(2, deep=True, layers=lucky)))
    issue = active_checks(dict(epochs=epochs(3, deep=True, layers=frozen)))["frozen_output_layers"]
    assert (issue.layer, issue.first_seen_epoch) == ("fc3", 1)


def test_loss_variance_while_the_loss_still_falls_fast_is_the_trend() -> None:
    falling = dict(train_mean=[1.0, 0.7, 0.2, 0.19], train_std=[0.1, 0.2, 0.15, 0.02])
    assert "high_loss_variance" not in active_checks(dict(epochs=epochs(4, **falling)))  # epoch 2 fell 71 %
    steady = dict(train_mean=[1.0, 0.7, 0.6, 0.55], train_std=[0.1, 0.2, 0.45, 0.4])
    assert active_checks(dict(epochs=epochs(4, **steady)))["high_loss_variance"].first_seen_epoch == 2


def test_a_small_climb_near_convergence_is_not_a_divergence() -> None:
    wobble = [2.0, 1.0, 0.05, 0.06, 0.08]  # +0.03 is 1.5 % of the first loss
    assert "loss_divergence" not in active_checks(dict(epochs=epochs(5, train_mean=wobble)))
    climb = [2.0, 1.0, 0.05, 0.08, 0.12]  # +0.07 is 3.5 %
    assert "loss_divergence" in active_checks(dict(epochs=epochs(5, train_mean=climb)))


def test_throughput_is_judged_against_the_median_not_the_lucky_peak() -> None:
    noisy = [1000.0, 2000, 1000, 950, 1000, 780, 790]  # one lucky epoch; the last two 21 % below the median
    issue = active_checks(dict(epochs=epochs(7, samples_per_sec=noisy)))["throughput_degradation"]
    assert issue.first_seen_epoch == 6 and "median of 1000.0" in issue.description
    peak_only = [1000.0, 2000, 1000, 950, 1000, 900, 900]  # 55 % below the peak, 10 % below the median
    assert "throughput_degradation" not in active_checks(dict(epochs=epochs(7, samples_per_sec=peak_only)))


def test_exploding_gradients_keep_the_first_spike_step_when_the_epoch_mean_explodes_too() -> None:
    eps = epochs(4, grad_norm=[1.0, 1.1, 0.9, 1e12])
    steps = steps_for(epochs(4), **{"16": {"grad_norm": 5e9}, "17": {"grad_norm": 1e12}})
    issue = active_checks(dict(epochs=eps, steps=steps))["exploding_gradients"]
    assert (issue.step, issue.first_seen_epoch, issue.metric_value) == (16, 3, 5e9)


def test_throughput_drop_must_stand_out_of_the_runs_own_noise() -> None:
    noisy = [1000.0, 2000, 1400, 700, 1900, 650, 640]  # epochs swing 2x: 640 is within that swing
    assert "throughput_degradation" not in active_checks(dict(epochs=epochs(7, samples_per_sec=noisy)))
    steady = [1000.0, 1020, 990, 1010, 1000, 650, 640]  # the same drop on a quiet machine
    assert active_checks(dict(epochs=epochs(7, samples_per_sec=steady)))["throughput_degradation"].first_seen_epoch == 6
    slowed = [1000.0, 2000, 1400, 700, 1900, 200, 190]  # a 5x slowdown stands out of a 2x swing
    assert "throughput_degradation" in active_checks(dict(epochs=epochs(7, samples_per_sec=slowed)))


def test_a_leak_from_the_first_step_is_measured_from_epoch_0() -> None:
    leak = [580.0, 770, 960]  # 190 MB per epoch from the first step (tests/faults "leaking_tensor_list")
    issue = active_checks(dict(epochs=epochs(3, process_rss_mb=leak)))["memory_growth"]
    assert issue.first_seen_epoch == 1 and "(epoch 0)" in issue.description
    gpu = dict(run_info=CUDA, epochs=epochs(3, cuda=True, cuda_allocated_mb=[1000.0, 2000, 2050]))
    assert "gpu_memory_growth" not in active_checks(gpu)  # CUDA warm-up into epoch 1 is not a leak


def test_slow_epoch_must_stand_out_of_the_runs_own_noise() -> None:
    noisy = [0.2, 0.4, 0.15, 0.3, 0.2, 0.45]  # short epochs on a busy machine: 2.25x the median is within the swing
    assert "slow_epoch" not in active_checks(dict(epochs=epochs(6, duration_seconds=noisy)))
    stalled = [0.2, 0.4, 0.15, 0.3, 0.2, 2.0]  # a 10x epoch stands out
    assert active_checks(dict(epochs=epochs(6, duration_seconds=stalled)))["slow_epoch"].first_seen_epoch == 5


@pytest.mark.parametrize(("name", "python"), [
    ("net.3", "net[3]"), ("encoder.layers.0.linear1", "encoder.layers[0].linear1"), ("fc", "fc"),
    ("blocks.a-b.conv", "blocks['a-b'].conv"),
])
def test_a_layer_name_in_a_fix_is_valid_python(name: str, python: str) -> None:
    """`model.net.3.weight` is not Python (issue 17): a fix must say `model.net[3].weight`."""
    import ast

    from atlas_diagnostics._rules_layers import attribute_path

    assert attribute_path(name) == python
    ast.parse(f"nn.init.kaiming_normal_(model.{attribute_path(name)}.weight, nonlinearity='relu')")


@pytest.mark.parametrize("cleared, fires", [(16, True), (1, False), (0, False)])
def test_gradients_cleared_before_the_step_are_an_optimizer_stepping_nothing(cleared: int, fires: bool) -> None:
    facts = {**ALL_OPT, "grads_cleared_before_step": {"steps": cleared, "watched_steps": 16, "parameter": "2.bias"},
             "unused_parameters": {"count": 4, "numel": 100, "names": ["0.weight"], "watched_steps": 16}}
    found = active_checks(dict(epochs=with_facts(2, facts)))
    assert ("optimizer_not_stepping_model" in found) is fires
    if fires:
        issue = found["optimizer_not_stepping_model"]
        assert issue.severity == "critical" and "zero_grad()" in issue.description
        assert "unused_parameters" not in found  # the same evidence, not a second issue
    else:
        assert "unused_parameters" in found


def test_nan_in_the_data_is_named_before_the_nan_loss_it_causes() -> None:
    """Found by the second held-out round (g09): NaN rows in the inputs gave a critical nan_loss whose fix named
    the data third; the cause is now its own finding, ranked first, explaining the NaN loss."""
    facts = {"inputs": {"dtype": "float32", "shape": [32, 8], "nonfinite_values": 9, "nonfinite_batches": 1,
                        "first_nonfinite_batch": 7}}
    eps = with_facts(2, facts, train_mean=[float("nan"), float("nan")])
    ranked = [i for i in diagnose(epochs=eps) if i.active]
    assert ranked[0].check == "unnormalized_inputs" and "NaN" in ranked[0].title, [i.check for i in ranked]
    assert "nan_loss" in ranked[0].explains
    clean = {"inputs": {"dtype": "float32", "shape": [32, 8], "mean": 0.0, "std": 1.0, "min": -3.0, "max": 3.0}}
    assert "unnormalized_inputs" not in active_checks(dict(epochs=with_facts(2, clean)))


def test_an_embeddings_small_gradient_is_not_a_gradient_shrinking_with_depth() -> None:
    """Found by the second held-out round (k03): a healthy tiny transformer read 125x from its embedding (whose
    gradient touches only the batch's token rows) to its head, a false depth_gradient_ratio warning."""
    arch = Architecture(total_parameters=2000, layers=(ArchLayer("emb", "Embedding", 1000),
                                                        ArchLayer("fc", "Linear", 500),
                                                        ArchLayer("head", "Linear", 500)),
                        nodes=(ArchNode("TinyTransformer", "TinyTransformer"),  # the model's own `pos` table
                               ArchNode("emb", "Embedding", num_embeddings=100, embedding_dim=10),
                               ArchNode("fc", "Linear", in_features=10, out_features=50),
                               ArchNode("head", "Linear", in_features=50, out_features=4)))
    grads = {"TinyTransformer": 0.0002, "emb": 0.008, "fc": 0.5, "head": 1.0}

    def stats(e: int) -> dict[str, Any]:
        return {n: LayerHealthRecord(gradient_norm_mean=g, samples=4) for n, g in grads.items()}

    found = active_checks(dict(epochs=epochs(2, layers=stats), architecture=arch))
    assert "depth_gradient_ratio" not in found
    grads["fc"] = 0.001  # a linear layer 1000x below the head: still judged
    found = active_checks(dict(epochs=epochs(2, layers=stats), architecture=arch))
    assert "depth_gradient_ratio" in found and found["depth_gradient_ratio"].layer == "fc"
