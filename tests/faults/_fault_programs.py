"""The labelled suite: small, real Lightning programs with one injected fault each, and healthy controls.

Every program trains on the CPU in a few seconds on synthetic data. A fault program is labelled with the check ids
it must raise, the epoch (or, for a non-finite loss, the step) at which the fault begins, and the epoch by which the
check must have fired. Detection delay is measured from the onset. A healthy control is labelled with nothing: it
must raise no critical issue.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from _fault_models import (
    AutoEncoder,
    BatchNormCNN,
    CheckpointStall,
    Classifier,
    CosineWeightDecay,
    DeepLSTM,
    ErrorLogging,
    FcHeavyCNN,
    FirstKernelCNN,
    FrozenBackbone,
    FrozenZeroLayer,
    GRUClassifier,
    KeptGraph,
    LeakyHistory,
    LongRNN,
    LrJump,
    ManualSGD,
    NanBatch,
    NoPoolCNN,
    OptimizerOf,
    RawPixels,
    Repeat,
    ScaledInputs,
    SequenceLSTM,
    SlowDataset,
    SlowLoader,
    SmallCNN,
    SoftmaxHead,
    StepLRScheduled,
    TinyTransformer,
    TrainsInEvalMode,
    UnusedBranch,
    blobs,
    bn_mlp,
    dead_relu_net,
    drifting,
    flat_images,
    images,
    labels_permuted,
    loaders,
    low_rank,
    mlp,
    noisy_labels,
    pixel_images,
    sequences,
    sorted_by_label,
)

# --------------------------------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class Expect:
    """One check the program must raise: by ``by_epoch`` (its first_seen_epoch), the fault beginning at ``onset``.

    ``at_step``: for a non-finite loss, the global step of the first bad batch; the issue must name a step no later
    than ``at_step + 1`` (within one batch). ``layer``: the issue must name this layer (None: any).
    """

    check: str
    onset: int  # -1: read from the run (overfitting: after the best validation loss; loss_divergence: after the
    by_epoch: int  # best training loss), and then due one epoch later
    at_step: int | None = None
    layer: str | None = None


@dataclass(frozen=True)
class Trace:
    """What a probe run without Atlas saw: every step's loss and sampled gradient norm, and per epoch the process
    RSS (MB) and the logged train/validation metrics (``train_loss``, ``val_loss``, ``val_acc``)."""

    step_losses: list[list[float]]  # per epoch, every step's loss
    grad_norms: list[list[float]]  # per epoch, the global gradient norm of every optimizer step
    rss_mb: list[float]
    metrics: list[dict[str, float]]
    lr_start: float | None = None  # the first optimizer's first param group's lr when training starts
    lrs: list[float] = field(default_factory=list)  # ... and at each epoch's end
    train_mode: list[float] = field(default_factory=list)  # per epoch, the share of training steps run in train mode
    no_grad_params: list[str] = field(default_factory=list)  # trainable parameters with no .grad at any optimizer step
    shapes: dict[str, list[int]] = field(default_factory=dict)  # every leaf module's output shape, first batch

    def series(self, key: str) -> list[float]:
        return [m[key] for m in self.metrics if key in m]


@dataclass(frozen=True)
class Symptom:
    """The observable symptom of a fault, as a person would check it without Atlas: ``shows`` returns None when the
    trace shows it, else what is missing."""

    text: str
    shows: Callable[[Trace], str | None]


@dataclass(frozen=True)
class Program:
    name: str
    injected: str  # how the fault is injected (README table)
    build: Callable[[], tuple[pl.LightningModule, DataLoader, DataLoader]]
    epochs: int
    expect: tuple[Expect, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)  # AtlasConfig overrides
    own_process: bool = False  # train in a fresh Python process (checks that judge the process, e.g. its RSS)
    symptom: Symptom | None = None  # what a probe run without Atlas must show (the fault is real, not assumed)
    critical_ok: tuple[str, ...] | None = None  # the only checks that may be critical in this run (None: not judged)
    not_raised: tuple[str, ...] = ()  # checks that must not reach warning in this run (the look-alikes of its fault)
    trainer: dict[str, Any] = field(default_factory=dict)  # Trainer keyword arguments (e.g. gradient_clip_val)
    root: tuple[str, ...] = ()  # the checks, any of which must be ranked first (rank 1); default: the first Expect's

    @property
    def root_checks(self) -> tuple[str, ...]:
        if self.root:
            return self.root
        return (self.expect[0].check,) if self.expect else ()

    @property
    def healthy(self) -> bool:
        return not self.expect


# ------------------------------------------------------------------------------------------------- programs

def _healthy_mlp() -> tuple[pl.LightningModule, DataLoader, DataLoader]:
    torch.manual_seed(0)
    return (Classifier(mlp(), lr=0.05), *loaders(blobs(512), blobs(256, seed=1)))


def _healthy_adam() -> tuple[pl.LightningModule, DataLoader, DataLoader]:
    torch.manual_seed(1)
    return (Classifier(mlp(dim=16, hidden=64, classes=4, depth=3), lr=1e-3, optimizer="adam"),
            *loaders(blobs(768, dim=16, classes=4, noise=1.0), blobs(256, dim=16, classes=4, noise=1.0, seed=1)))


def _healthy_cnn() -> tuple[pl.LightningModule, DataLoader, DataLoader]:
    torch.manual_seed(2)
    return (Classifier(SmallCNN(), lr=0.02), *loaders(images(384), images(128, seed=1)))


def _healthy_tanh() -> tuple[pl.LightningModule, DataLoader, DataLoader]:
    """A shallow tanh network with the default initialisation: tanh is not a fault by itself."""
    torch.manual_seed(3)
    return (Classifier(mlp(hidden=32, depth=2, act=nn.Tanh), lr=0.05), *loaders(blobs(512), blobs(256, seed=1)))


def _healthy_noisy_labels() -> tuple[pl.LightningModule, DataLoader, DataLoader]:
    """Overlapping classes (a hard problem) with enough data: the loss stays high and flattens early, which is not
    a fault."""
    torch.manual_seed(4)
    return (Classifier(mlp(hidden=16, depth=1), lr=0.02),
            *loaders(blobs(2048, noise=1.6), blobs(512, noise=1.6, seed=1), batch_size=64))


def _healthy_lstm() -> tuple[pl.LightningModule, DataLoader, DataLoader]:
    torch.manual_seed(5)
    return (DeepLSTM(num_layers=2), *loaders(sequences(384), sequences(128, seed=1)))




def _blob_loaders(n: int = 512) -> tuple[DataLoader, DataLoader]:
    return loaders(blobs(n), blobs(256, seed=1))


def _seeded(seed: int, make: Callable[[], pl.LightningModule],
            data: Callable[[], tuple[DataLoader, DataLoader]] = _blob_loaders,
            ) -> Callable[[], tuple[pl.LightningModule, DataLoader, DataLoader]]:
    def build() -> tuple[pl.LightningModule, DataLoader, DataLoader]:
        torch.manual_seed(seed)
        return (make(), *data())
    return build


def _slow_loaders() -> tuple[DataLoader, DataLoader]:
    train, val = _blob_loaders()
    return (DataLoader(SlowDataset(train.dataset), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(0)), val)


def _tiny_train() -> tuple[DataLoader, DataLoader]:
    return loaders(blobs(24, noise=1.5), blobs(512, noise=1.5, seed=1), batch_size=8)


def _image_loaders() -> tuple[DataLoader, DataLoader]:
    return loaders(images(256), images(128, seed=1))


def _flat_image_loaders() -> tuple[DataLoader, DataLoader]:
    return loaders(flat_images(4096), flat_images(512, seed=1))


def _wide_easy_loaders() -> tuple[DataLoader, DataLoader]:
    """An easy 10-class task in 2,048 dimensions (~100 % accuracy within the first epoch), 12 passes per epoch."""
    train = blobs(2048, dim=2048, classes=10, noise=2.5)
    return (DataLoader(Repeat(train, 12), batch_size=128, shuffle=True, generator=torch.Generator().manual_seed(0)),
            DataLoader(blobs(512, dim=2048, classes=10, noise=2.5, seed=1), batch_size=256))


def _hard_blobs5() -> tuple[DataLoader, DataLoader]:
    return loaders(blobs(2048, dim=16, classes=5, noise=1.5), blobs(256, dim=16, classes=5, noise=1.5, seed=1))


def _explodes_in_epoch_0(t: Trace) -> str | None:
    first, steps = t.step_losses[0][0], t.step_losses[0]
    grads = t.grad_norms[0]
    if max(steps) < 100 * first:
        return f"epoch 0's worst step loss {max(steps):.4g} is not 100x its first {first:.4g}"
    if max(grads) < 50 * grads[0]:
        return f"epoch 0's gradient norm peaks at {max(grads):.4g}, not 50x its first {grads[0]:.4g}"
    return None


def _train_and_val_rise(t: Trace) -> str | None:
    train, val = t.series("train_loss"), t.series("val_loss")
    best = min(range(len(train)), key=train.__getitem__)
    if not (best < len(train) - 2 and train[best + 1] < train[best + 2] and train[-1] > 1.2 * train[best]):
        return f"the training loss {train} does not rise two epochs running after its best"
    if max(val[best:]) < 1.5 * min(val[:best + 1]):
        return f"the validation loss {val} does not rise with it"
    return None


def _graph_memory_grows(t: Trace) -> str | None:
    growth = [b - a for a, b in zip(t.rss_mb, t.rss_mb[1:])]
    accuracy = t.series("val_acc")
    if not growth or min(growth) < 150:
        return f"the RSS grows by {growth} MB per epoch, not 150 MB or more each epoch"
    if accuracy[0] < 0.99:
        return f"validation accuracy after epoch 0 is {accuracy[0]}, not ~100 % (an easy task)"
    return None


# A run with one of these faults may be stopped: the checks ARCHITECTURE.md lets be critical for a loss or gradient
# gone wrong. Anything else critical in such a run would stop it for the wrong reason.
STOP_WORTHY = ("nan_loss", "loss_explosion", "exploding_gradients")

ISSUE_19_FAULTS: tuple[Program, ...] = (
    Program("forgotten_zero_grad", "manual optimisation, plain SGD(lr=0.05), optimizer.zero_grad() never called",
            _seeded(30, lambda: ManualSGD(clear=False), _flat_image_loaders), 2,
            (Expect("loss_explosion", onset=0, by_epoch=0), Expect("missing_zero_grad", onset=0, by_epoch=0)),
            root=("missing_zero_grad",),
            symptom=Symptom("the step loss grows 100x and the gradient norm 50x inside epoch 0", _explodes_in_epoch_0),
            critical_ok=STOP_WORTHY),
    Program("adam_lr_far_too_high", "Adam(lr=0.2) on an MLP 16-64-64-5: the training loss rises, validation with it",
            _seeded(31, lambda: Classifier(mlp(dim=16, hidden=64, classes=5, depth=2), lr=0.2, optimizer="adam"),
                    _hard_blobs5), 6,
            (Expect("loss_divergence", onset=-1, by_epoch=-1),),
            symptom=Symptom("train loss rises two epochs running after its best, validation loss 1.5x its best",
                            _train_and_val_rise),
            critical_ok=STOP_WORTHY, not_raised=("overfitting",),
            root=('loss_divergence', 'loss_explosion', 'lr_too_high')),
    Program("kept_graph", "a second forward pass per step whose loss tensor is kept in a list (graph alive), "
                          "easy 10-class task at ~100 % accuracy",
            _seeded(32, lambda: KeptGraph(keep=True), _wide_easy_loaders), 3,
            (Expect("memory_growth", onset=0, by_epoch=1),), own_process=True,
            symptom=Symptom("RSS grows 150+ MB every epoch; validation accuracy ~100 % after epoch 0",
                            _graph_memory_grows),
            critical_ok=(), not_raised=("data_leakage",)),
)


FAULTS: tuple[Program, ...] = (
    Program("nan_batch", "a NaN in one input batch at global step 37 (epoch 2)",
            _seeded(10, lambda: NanBatch(at=37)), 3,
            (Expect("nan_loss", onset=2, by_epoch=2, at_step=38),)),
    Program("lr_far_too_high", "SGD lr=2.0 (40x the working 0.05), momentum 0.9",
            _seeded(11, lambda: Classifier(mlp(), lr=2.0)), 6,
            (Expect("lr_too_high", onset=0, by_epoch=1),)),
    Program("lr_far_too_low", "SGD lr=1e-7 (500,000x too small)",
            _seeded(12, lambda: Classifier(mlp(), lr=1e-7)), 5,
            (Expect("lr_too_low", onset=0, by_epoch=1),)),
    Program("deep_sigmoid_stack", "10 Linear+Sigmoid layers of width 32",
            _seeded(13, lambda: Classifier(mlp(hidden=32, depth=10, act=nn.Sigmoid), lr=0.05)), 4,
            (Expect("depth_gradient_ratio", onset=0, by_epoch=1),
             Expect("vanishing_gradients", onset=0, by_epoch=1, layer="net.0")),
            root=('depth_gradient_ratio', 'vanishing_gradients')),
    Program("dead_relu_bias", "hidden ReLU layer with its bias initialised at -20",
            _seeded(14, lambda: Classifier(dead_relu_net(), lr=0.05)), 4,
            (Expect("dead_layers", onset=0, by_epoch=1, layer="net.0"),)),
    Program("unnormalised_tanh_inputs", "tanh MLP fed unnormalised inputs (x * 255, raw pixel scale)",
            _seeded(15, RawPixels), 3,
            (Expect("saturated_activation", onset=0, by_epoch=0, layer="net.0"),
             Expect("unnormalized_inputs", onset=0, by_epoch=0)), root=("unnormalized_inputs",)),
    Program("tiny_train_big_model", "24 training samples, MLP 8-512-512-512-3, Adam(lr=1e-3)",
            _seeded(16, lambda: Classifier(mlp(hidden=512, depth=3), lr=1e-3, optimizer="adam"), _tiny_train), 12,
            (Expect("overfitting", onset=-1, by_epoch=-1),)),
    Program("slow_data_loader", "the dataset's __getitem__ sleeps 3 ms per sample from epoch 3 on",
            _seeded(17, lambda: SlowLoader(onset=3, delay=0.003), _slow_loaders), 5,
            (Expect("throughput_degradation", onset=3, by_epoch=4),)),
    Program("leaking_tensor_list", "a list on the module keeps a 12 MB tensor per step from the first step",
            _seeded(18, lambda: LeakyHistory(onset=0, mb_per_step=12)), 3,
            (Expect("memory_growth", onset=0, by_epoch=1),), own_process=True),
    Program("fc_dominates_cnn", "CNN flattening a 16x8x8 map into Linear(1024, 128)",
            _seeded(19, lambda: Classifier(FcHeavyCNN(), lr=0.02), _image_loaders), 2,
            (Expect("fc_dominates_params", onset=0, by_epoch=0, layer="net.fc"),)),
    Program("conv_without_pooling", "four 3x3 convolutions at full 16x16 resolution",
            _seeded(20, lambda: Classifier(NoPoolCNN(), lr=0.02), _image_loaders), 2,
            (Expect("missing_pooling", onset=0, by_epoch=0),)),
    Program("error_logs", "logging.error('corrupt record ...') every 5th step from epoch 2 on",
            _seeded(21, lambda: ErrorLogging(onset=2)), 4,
            (Expect("error_logs", onset=2, by_epoch=2),)),
    Program("exploding_inputs", "from epoch 3 (global step 49), every input multiplied by 1e4 (a unit bug)",
            _seeded(22, lambda: ScaledInputs(onset=3, factor=1e4)), 4,
            (Expect("exploding_gradients", onset=3, by_epoch=3, at_step=49),)),
    Program("lr_jump", "a scheduler bug multiplies the lr by 60 at epoch 3",
            _seeded(23, lambda: LrJump(onset=3, factor=60.0)), 5,
            (Expect("loss_explosion", onset=3, by_epoch=3),),
            root=('loss_explosion', 'lr_too_high')),
    Program("checkpoint_stall", "from epoch 1, one step per epoch sleeps 0.5 s (a synchronous checkpoint write)",
            _seeded(25, lambda: CheckpointStall(onset=1, seconds=0.5)), 3,
            (Expect("step_time_outlier", onset=1, by_epoch=1),)),
    Program("lstm_six_layers", "nn.LSTM(1, 16, num_layers=6) sequence classifier",
            _seeded(26, DeepLSTM, lambda: loaders(sequences(256), sequences(128, seed=1))), 2,
            (Expect("rnn_too_deep", onset=0, by_epoch=0, layer="rnn"),)),
    Program("frozen_zero_layer", "a hidden Linear zeroed and frozen (requires_grad=False)",
            _seeded(24, lambda: Classifier(FrozenZeroLayer(), lr=0.05)), 3,
            (Expect("frozen_output_layers", onset=0, by_epoch=1, layer="net.fc2"),)),
)


def _blobs4(noise: float = 1.0) -> tuple[DataLoader, DataLoader]:
    return loaders(blobs(1024, dim=16, classes=4, noise=noise), blobs(256, dim=16, classes=4, noise=noise, seed=1))


HEALTHY_MORE: tuple[Program, ...] = (
    Program("healthy_batchnorm_cnn", "conv-BN-ReLU-pool x2, global average pool, Linear(16, 3), SGD(lr=0.02)",
            _seeded(40, lambda: Classifier(BatchNormCNN(), lr=0.02),
                    lambda: loaders(images(1024), images(256, seed=1))), 5),
    Program("healthy_gru", "nn.GRU(1, 16) sequence classifier, Adam(lr=3e-3)",
            _seeded(41, GRUClassifier, lambda: loaders(sequences(512), sequences(128, seed=1))), 5),
    Program("healthy_autoencoder", "MLP autoencoder 32-16-4-16-32 on low-rank data, MSE, Adam(lr=3e-3)",
            _seeded(42, AutoEncoder, lambda: loaders(low_rank(1024), low_rank(256, seed=1))), 6),
    Program("healthy_cosine_wd", "MLP 16-64-64-4, SGD(lr=0.1, momentum=0.9, weight_decay=5e-4), cosine LR per epoch",
            _seeded(43, lambda: CosineWeightDecay(6), _blobs4), 6),
    Program("healthy_transformer", "one TransformerEncoder layer (d_model 32, 4 heads) sequence classifier, Adam",
            _seeded(44, TinyTransformer, lambda: loaders(sequences(512), sequences(128, seed=1))), 5),
    Program("healthy_noisy_slow", "MLP 8-32-32-3 on blobs with 30 % of the labels flipped, SGD(lr=0.005), batch 16",
            _seeded(44, lambda: Classifier(mlp(hidden=32, depth=2), lr=0.005),
                    lambda: loaders(noisy_labels(1024), noisy_labels(512, seed=1), batch_size=16)), 6),
    Program("healthy_manual_sgd", "forgotten_zero_grad's twin: manual optimisation, SGD(lr=0.05), zero_grad() called",
            _seeded(30, lambda: ManualSGD(clear=True), _flat_image_loaders), 2),
    Program("healthy_adam_5class", "adam_lr_far_too_high's twin: the same MLP and data with Adam(lr=1e-3)",
            _seeded(31, lambda: Classifier(mlp(dim=16, hidden=64, classes=5, depth=2), lr=1e-3, optimizer="adam"),
                    _hard_blobs5), 6),
    Program("healthy_easy_fast", "kept_graph's twin (the monitoring loss kept as .item()): an easy 10-class task, "
                                 "~100 % validation accuracy in epoch 0",
            _seeded(32, lambda: KeptGraph(keep=False), _wide_easy_loaders), 3, own_process=True),
)

HEALTHY: tuple[Program, ...] = (
    Program("healthy_mlp_sgd", "MLP 8-32-32-3, SGD(lr=0.05, momentum=0.9), separable blobs", _healthy_mlp, 6),
    Program("healthy_mlp_adam", "MLP 16-64x3-4, Adam(lr=1e-3)", _healthy_adam, 6),
    Program("healthy_cnn", "CNN conv-relu-pool x2 + global pool + Linear(16, 3), 16x16 images", _healthy_cnn, 5),
    Program("healthy_tanh", "MLP with tanh activations, default init", _healthy_tanh, 6),
    Program("healthy_hard_data", "MLP 8-16-3 on overlapping classes, 2048 samples (the loss stays high)",
            _healthy_noisy_labels, 6),
    Program("healthy_lstm", "nn.LSTM(1, 16, num_layers=2) sequence classifier, Adam(lr=1e-3)", _healthy_lstm, 4),
) + HEALTHY_MORE

FAULTS = FAULTS + ISSUE_19_FAULTS


# ------------------------------------------------------------------ more bugs people write (issue 19, continued)

def _easy10(permute: bool = False, n: int = 1024) -> Callable[[], tuple[DataLoader, DataLoader]]:
    """An easy 10-class task in 32 dimensions; ``permute``: the training labels shuffled apart from their inputs."""
    def data() -> tuple[DataLoader, DataLoader]:
        train = blobs(n, dim=32, classes=10, noise=1.0)
        return loaders(labels_permuted(train) if permute else train, blobs(512, dim=32, classes=10, noise=1.0, seed=1))
    return data


def _sorted_blobs(shuffle: bool) -> tuple[DataLoader, DataLoader]:
    """5 overlapping classes, the training set stored class by class; ``shuffle=False`` reads it in that order."""
    train = sorted_by_label(blobs(640, dim=16, classes=5, noise=1.2))
    return (DataLoader(train, batch_size=32, shuffle=shuffle, generator=torch.Generator().manual_seed(0)),
            DataLoader(blobs(512, dim=16, classes=5, noise=1.2, seed=1), batch_size=128))


def _pixels(scale: float) -> tuple[DataLoader, DataLoader]:
    return loaders(pixel_images(2048, scale=scale), pixel_images(512, seed=1, scale=scale))


def _small_noisy4() -> tuple[DataLoader, DataLoader]:
    """192 training samples of 4 overlapping classes: a wide MLP without its dropout memorises them."""
    return loaders(blobs(192, dim=16, classes=4, noise=1.8), blobs(512, dim=16, classes=4, noise=1.8, seed=1))


def _bn_blobs(batch_size: int) -> tuple[DataLoader, DataLoader]:
    return loaders(blobs(384, dim=16, classes=4, noise=1.0), blobs(512, dim=16, classes=4, noise=1.0, seed=1),
                   batch_size=batch_size)


def _long_sequences() -> tuple[DataLoader, DataLoader]:
    """Length-100 sequences drifting up or down by 0.5 a step (under unit noise): the class is the drift's sign."""
    return loaders(drifting(1024), drifting(256, seed=1))


def _images28() -> tuple[DataLoader, DataLoader]:
    return loaders(images(384, side=28), images(128, side=28, seed=1))


# ----- symptoms


def _loss_above_floor_yet_accurate(t: Trace) -> str | None:
    train, acc = t.series("train_loss"), t.series("val_acc")
    if min(train) < 1.4:
        return f"the training loss {[round(v, 3) for v in train]} falls below 1.4"
    if acc[-1] < 0.9:
        return f"validation accuracy ends at {acc[-1]:.3f}, not 0.9 or more"
    return None


def _loss_at_ln10(t: Trace) -> str | None:
    train, acc = t.series("train_loss"), t.series("val_acc")
    chance = math.log(10)
    if any(abs(v - chance) > 0.05 * chance for v in train):
        return f"the training loss {[round(v, 3) for v in train]} is not within 5 % of ln(10) = {chance:.3f}"
    if max(acc) >= 0.2:
        return f"validation accuracy reaches {max(acc):.3f} (chance: 0.1)"
    return None


def _loss_frozen(t: Trace) -> str | None:
    train = [round(v, 4) for v in t.series("train_loss")]
    if len(set(train)) != 1:
        return f"the training loss changes across epochs: {train}"
    return None


def _lr_collapsed(t: Trace) -> str | None:
    train = t.series("train_loss")
    if t.lr_start is None or not t.lrs or t.lrs[0] >= 1e-6 * t.lr_start:
        return f"the lr after epoch 0 is {t.lrs[:1]}, not below 1e-6 of its start {t.lr_start}"
    if abs(train[-1] - train[1]) > 0.01 * train[1]:
        return f"the training loss still moves after epoch 0: {[round(v, 4) for v in train]}"
    return None


def _raw_pixels_hurt(t: Trace) -> str | None:
    acc, first = t.series("val_acc"), t.step_losses[0]
    if max(first) < 4 * math.log(10):
        return f"epoch 0's worst step loss is {max(first):.4g}, not 4x ln(10) or more (a 10-class start: 2.3)"
    if acc[-1] > 0.85:
        return f"validation accuracy ends at {acc[-1]:.3f}, not 0.85 or less"
    return None


def _class_by_class(t: Trace) -> str | None:
    acc = t.series("val_acc")
    if max(acc) > 0.7:
        return f"validation accuracy reaches {max(acc):.3f}, not 0.7 or less"
    return None


def _runs_in_eval_mode(t: Trace) -> str | None:
    if any(share > 0 for share in t.train_mode):
        return f"the share of training steps run in train mode per epoch is {t.train_mode}, not 0"
    train, val = t.series("train_loss"), t.series("val_loss")
    if train[-1] > 0.1 or val[-1] < 1.3 * min(val):
        return (f"the training loss ends at {train[-1]:.3f}, not below 0.1 with the validation loss 1.3x its best "
                f"({val[-1]:.3f} vs {min(val):.3f})")
    return None


def _bn_eval_gap(t: Trace) -> str | None:
    acc = t.series("val_acc")
    if max(acc) > 0.75:
        return f"validation accuracy (running statistics) reaches {max(acc):.3f}, not 0.75 or less"
    return None


def _extra_never_learns(t: Trace) -> str | None:
    if "extra.weight" not in t.no_grad_params:
        return f"extra.weight got a gradient (never-grad parameters: {t.no_grad_params})"
    return None


def _grad_spikes(t: Trace) -> str | None:
    ratios = [max(g) / statistics.median(g) for g in t.grad_norms if g]
    train = t.series("train_loss")
    if max(ratios[:2]) < 10:
        return f"the gradient norm's max/median per epoch is {[round(r, 1) for r in ratios]}, not 10+ by epoch 1"
    if not any(b > 1.2 * a for a, b in zip(train, train[1:])):
        return f"the training loss {[round(v, 3) for v in train]} never rises 20 % from one epoch to the next"
    return None


def _first_conv_shrinks(t: Trace) -> str | None:
    shape = t.shapes.get("net.features.0")
    if shape is None or shape[-2:] != [20, 20]:
        return f"the first conv's output is {shape}, not 20x20 from a 28x28 input"
    return None


def _near_chance_for_three_epochs(t: Trace) -> str | None:
    val = t.series("val_loss")
    if len(val) < 3 or min(val[:3]) < 0.8 * math.log(3):
        return f"the validation loss {[round(v, 3) for v in val]} leaves 0.8 ln(3) = 0.88 within 3 epochs"
    return None


def _sequences_unlearned(t: Trace) -> str | None:
    acc = t.series("val_acc")
    if max(acc) > 0.7:
        return f"validation accuracy reaches {max(acc):.3f}, not 0.7 or less (the twin with batch_first: 0.9+)"
    return None


def _lstm(batch_first: bool) -> Callable[[], tuple[pl.LightningModule, DataLoader, DataLoader]]:
    def build() -> tuple[pl.LightningModule, DataLoader, DataLoader]:
        torch.manual_seed(63)
        return SequenceLSTM(batch_first), *loaders(sequences(512, length=20), sequences(256, length=20, seed=1))
    return build


def _frozen_images(pretrained: bool) -> Callable[[], tuple[pl.LightningModule, DataLoader, DataLoader]]:
    def build() -> tuple[pl.LightningModule, DataLoader, DataLoader]:
        torch.manual_seed(62)
        train, val = loaders(images(384), images(128, seed=1))
        return FrozenBackbone(pretrained, train), train, val
    return build


ISSUE_19_MORE: tuple[Program, ...] = (
    Program("double_softmax", "MLP 32-64-64-10 whose forward ends in nn.Softmax(dim=1), trained with "
                              "F.cross_entropy (softmax twice), Adam(lr=3e-3), an easy 10-class task",
            _seeded(50, lambda: SoftmaxHead(softmax=True), _easy10()), 3,
            (Expect("double_softmax", onset=0, by_epoch=1),),
            symptom=Symptom("the training loss stays above 1.4 (floor log(1 + 9/e) = 1.46) while validation "
                            "accuracy is 0.9 or more", _loss_above_floor_yet_accurate)),
    Program("labels_shuffled_separately", "the training labels permuted apart from their inputs "
                                          "(y = y[randperm]); validation labels correct, 10 classes",
            _seeded(51, lambda: Classifier(mlp(dim=32, hidden=64, classes=10, depth=2), lr=0.02),
                    _easy10(permute=True)), 3,
            (Expect("loss_at_chance", onset=0, by_epoch=1),),
            symptom=Symptom("the training loss within 5 % of ln(10) every epoch, validation accuracy below 0.2",
                            _loss_at_ln10)),
    Program("optimizer_wrong_params", "configure_optimizers returns SGD over a deep copy of the network: the "
                                      "model's weights never change",
            _seeded(52, lambda: OptimizerOf(wrong=True), _blobs4), 3,
            (Expect("optimizer_not_stepping_model", onset=0, by_epoch=0),),
            symptom=Symptom("the training loss is the same to 4 decimals every epoch", _loss_frozen),
            critical_ok=("optimizer_not_stepping_model",) + STOP_WORTHY),
    Program("scheduler_per_batch", "SGD(lr=0.1) with StepLR(step_size=1, gamma=0.5) meant per epoch, stepped per "
                                   "batch (interval 'step'), 32 steps an epoch",
            _seeded(53, lambda: StepLRScheduled("step"), _blobs4), 4,
            (Expect("lr_schedule_collapse", onset=0, by_epoch=0),),
            symptom=Symptom("the lr after epoch 0 is below 1e-6 of its start and the training loss stops moving",
                            _lr_collapsed)),
    Program("unnormalized_inputs", "ReLU MLP 256-64-64-10 on flattened 16x16 images at raw 0-255 pixel values, "
                                   "Adam(lr=1e-3)",
            _seeded(54, lambda: Classifier(mlp(dim=256, hidden=64, classes=10, depth=2), lr=1e-3, optimizer="adam"),
                    lambda: _pixels(1.0)), 3,
            (Expect("unnormalized_inputs", onset=0, by_epoch=0),),
            symptom=Symptom("epoch 0's step loss reaches 4x ln(10) and validation accuracy ends at 0.85 or less",
                            _raw_pixels_hurt)),
    Program("label_sorted_unshuffled", "a 5-class training set stored class by class, loaded with shuffle=False "
                                       "(batch 32)",
            _seeded(55, lambda: Classifier(mlp(dim=16, hidden=64, classes=5, depth=2), lr=0.05),
                    lambda: _sorted_blobs(shuffle=False)), 3,
            (Expect("unshuffled_data", onset=0, by_epoch=0),),
            symptom=Symptom("validation accuracy stays at or below 0.7", _class_by_class)),
    Program("eval_mode_training", "MLP with BatchNorm and Dropout(0.5) whose on_train_epoch_start calls "
                                  "self.eval(): every training step runs in eval mode",
            _seeded(56, lambda: TrainsInEvalMode(bug=True), _small_noisy4), 12,
            (Expect("eval_mode_training", onset=0, by_epoch=0),),
            symptom=Symptom("every training step runs with module.training False; the training loss falls below "
                            "0.1 while the validation loss ends 1.3x its best", _runs_in_eval_mode)),
    Program("batchnorm_tiny_batch", "a BatchNorm MLP 16-64-64-4 trained with batch_size=2",
            _seeded(57, lambda: Classifier(bn_mlp(), lr=0.05), lambda: _bn_blobs(2)), 3,
            (Expect("batchnorm_tiny_batch", onset=0, by_epoch=0),),
            symptom=Symptom("validation accuracy (eval mode, running statistics) stays at or below 0.75",
                            _bn_eval_gap)),
    Program("unused_layer", "a trainable self.extra = nn.Linear(64, 64) that forward never calls",
            _seeded(58, lambda: UnusedBranch(unused=True), _blobs4), 3,
            (Expect("unused_parameters", onset=0, by_epoch=0),),
            symptom=Symptom("extra.weight never has a gradient", _extra_never_learns)),
    Program("rnn_no_clipping", "tanh RNN (hidden 32) on length-100 sequences, plain SGD(lr=1.0), no gradient "
                               "clipping",
            _seeded(61, LongRNN, _long_sequences), 3,
            (Expect("missing_grad_clipping", onset=0, by_epoch=1),),
            symptom=Symptom("the gradient norm spikes to 10x its epoch median by epoch 1; the training loss rises "
                            "20 % from one epoch to the next", _grad_spikes)),
    Program("large_first_kernel", "CNN whose first layer is nn.Conv2d(1, 8, kernel_size=9) on 28x28 images",
            _seeded(60, lambda: Classifier(FirstKernelCNN(kernel=9), lr=0.02), _images28), 3,
            (Expect("large_kernel", onset=0, by_epoch=0),),
            symptom=Symptom("the first conv's output is 20x20 from a 28x28 input", _first_conv_shrinks)),
    Program("frozen_random_backbone", "a fine-tuning recipe's freeze loop over a CNN backbone whose pretrained "
                                      "weights were never loaded: 99.3 % of the parameters frozen at their random "
                                      "initialisation, Adam(lr=1e-3) on the head",
            _frozen_images(pretrained=False), 4,
            (Expect("frozen_backbone", onset=0, by_epoch=1),),
            symptom=Symptom("the validation loss stays at 0.8 ln(3) or above for 3 epochs",
                            _near_chance_for_three_epochs)),
    Program("lstm_without_batch_first", "nn.LSTM(1, 16) (batch_first left False) fed (batch, time, features) "
                                        "sequences, its last output into the head, Adam(lr=3e-3)",
            _lstm(batch_first=False), 4,
            (Expect("rnn_batch_first", onset=0, by_epoch=0, layer="rnn"),),
            symptom=Symptom("validation accuracy stays at or below 0.7", _sequences_unlearned)),
)

HEALTHY_19_MORE: tuple[Program, ...] = (
    Program("healthy_single_softmax", "double_softmax's twin: the MLP returns logits",
            _seeded(50, lambda: SoftmaxHead(softmax=False), _easy10()), 3),
    Program("healthy_labels_aligned", "labels_shuffled_separately's twin: inputs and labels kept together",
            _seeded(51, lambda: Classifier(mlp(dim=32, hidden=64, classes=10, depth=2), lr=0.02), _easy10()), 3),
    Program("healthy_optimizer_own_params", "optimizer_wrong_params's twin: SGD over self.parameters()",
            _seeded(52, lambda: OptimizerOf(wrong=False), _blobs4), 3),
    Program("healthy_scheduler_per_epoch", "scheduler_per_batch's twin: StepLR(step_size=1, gamma=0.5) per epoch",
            _seeded(53, lambda: StepLRScheduled("epoch"), _blobs4), 4),
    Program("healthy_normalized_pixels", "unnormalized_inputs's twin: the pixels divided by 255",
            _seeded(54, lambda: Classifier(mlp(dim=256, hidden=64, classes=10, depth=2), lr=1e-3, optimizer="adam"),
                    lambda: _pixels(1 / 255)), 3),
    Program("healthy_shuffled_sorted", "label_sorted_unshuffled's twin: the sorted set loaded with shuffle=True",
            _seeded(55, lambda: Classifier(mlp(dim=16, hidden=64, classes=5, depth=2), lr=0.05),
                    lambda: _sorted_blobs(shuffle=True)), 3),
    Program("healthy_train_mode", "eval_mode_training's twin: no self.eval() (Lightning's train mode)",
            _seeded(56, lambda: TrainsInEvalMode(bug=False), _small_noisy4), 12),
    Program("healthy_batchnorm_batch32", "batchnorm_tiny_batch's twin: batch_size=32",
            _seeded(57, lambda: Classifier(bn_mlp(), lr=0.05), lambda: _bn_blobs(32)), 3),
    Program("healthy_no_unused_layer", "unused_layer's twin: no extra Linear",
            _seeded(58, lambda: UnusedBranch(unused=False), _blobs4), 3),
    Program("healthy_rnn_clipped", "rnn_no_clipping's twin: Trainer(gradient_clip_val=1.0)",
            _seeded(61, LongRNN, _long_sequences), 3, trainer=dict(gradient_clip_val=1.0)),
    Program("healthy_small_first_kernel", "large_first_kernel's twin: a 3x3 first kernel",
            _seeded(60, lambda: Classifier(FirstKernelCNN(kernel=3), lr=0.02), _images28), 3),
    Program("healthy_pretrained_frozen", "frozen_random_backbone's twin: the same freeze over a backbone trained "
                                         "on the task first (the pretrained weights loaded), a new head",
            _frozen_images(pretrained=True), 4),
    Program("healthy_lstm_batch_first", "lstm_without_batch_first's twin: nn.LSTM(1, 16, batch_first=True)",
            _lstm(batch_first=True), 4),
)

FAULTS = FAULTS + ISSUE_19_MORE
HEALTHY = HEALTHY + HEALTHY_19_MORE
