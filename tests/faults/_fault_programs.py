"""The labelled suite: small, real Lightning programs with one injected fault each, and healthy controls.

Every program trains on the CPU in a few seconds on synthetic data. A fault program is labelled with the check ids
it must raise, the epoch (or, for a non-finite loss, the step) at which the fault begins, and the epoch by which the
check must have fired. Detection delay is measured from the onset. A healthy control is labelled with nothing: it
must raise no critical issue.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

# --------------------------------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class Expect:
    """One check the program must raise: by ``by_epoch`` (its first_seen_epoch), the fault beginning at ``onset``.

    ``at_step``: for a non-finite loss, the global step of the first bad batch; the issue must name a step no later
    than ``at_step + 1`` (within one batch). ``layer``: the issue must name this layer (None: any).
    """

    check: str
    onset: int
    by_epoch: int
    at_step: int | None = None
    layer: str | None = None


@dataclass(frozen=True)
class Program:
    name: str
    injected: str  # how the fault is injected (README table)
    build: Callable[[], tuple[pl.LightningModule, DataLoader, DataLoader]]
    epochs: int
    expect: tuple[Expect, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)  # AtlasConfig overrides
    own_process: bool = False  # train in a fresh Python process (checks that judge the process, e.g. its RSS)

    @property
    def healthy(self) -> bool:
        return not self.expect


# ----------------------------------------------------------------------------------------------------- data

def blobs(n: int, dim: int = 8, classes: int = 3, seed: int = 0, noise: float = 0.7,
          center_seed: int = 0) -> TensorDataset:
    """Gaussian blobs: ``classes`` centres (fixed by ``center_seed``), ``n`` noisy samples (``seed``)."""
    centers = torch.randn(classes, dim, generator=torch.Generator().manual_seed(center_seed))
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    return TensorDataset(centers[labels] + noise * torch.randn(n, dim, generator=g), labels)


def images(n: int, classes: int = 3, side: int = 16, seed: int = 0) -> TensorDataset:
    """1-channel images: a class-specific blurred template plus noise."""
    templates = torch.randn(classes, 1, side, side, generator=torch.Generator().manual_seed(100))
    templates = nn.functional.avg_pool2d(templates, 3, stride=1, padding=1) * 3
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    return TensorDataset(templates[labels] + 2.5 * torch.randn(n, 1, side, side, generator=g), labels)


def loaders(train: Dataset, val: Dataset, batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    return (DataLoader(train, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)),
            DataLoader(val, batch_size=128))


# --------------------------------------------------------------------------------------------------- models

class Classifier(pl.LightningModule):
    """A classifier around any ``net``; optimiser, learning rate and per-step hooks are parameters."""

    def __init__(self, net: nn.Module, lr: float = 0.05, optimizer: str = "sgd") -> None:
        super().__init__()
        self.net = net
        self.lr = lr
        self.optimizer_name = optimizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Where a fault may corrupt a batch (identity in healthy programs)."""
        return x

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(self.inputs(x)), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.lr)
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def mlp(dim: int = 8, hidden: int = 32, classes: int = 3, depth: int = 2,
        act: Callable[[], nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """conv-relu-pool x2, global pooling, a small head: the healthy CNN."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


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


HEALTHY: tuple[Program, ...] = (
    Program("healthy_mlp_sgd", "MLP 8-32-32-3, SGD(lr=0.05, momentum=0.9), separable blobs", _healthy_mlp, 6),
    Program("healthy_mlp_adam", "MLP 16-64x3-4, Adam(lr=1e-3)", _healthy_adam, 6),
    Program("healthy_cnn", "CNN conv-relu-pool x2 + global pool + Linear(16, 3), 16x16 images", _healthy_cnn, 5),
    Program("healthy_tanh", "MLP with tanh activations, default init", _healthy_tanh, 6),
    Program("healthy_hard_data", "MLP 8-16-3 on overlapping classes, 2048 samples (the loss stays high)",
            _healthy_noisy_labels, 6),
    Program("healthy_lstm", "nn.LSTM(1, 16, num_layers=2) sequence classifier, Adam(lr=1e-3)", _healthy_lstm, 4),
)


# ---------------------------------------------------------------------------------------------- fault models

class NanBatch(Classifier):
    """One corrupted batch: a NaN in the inputs at global step ``at`` (0-based, before its optimiser step)."""

    def __init__(self, at: int) -> None:
        super().__init__(mlp(), lr=0.05)
        self.at = at

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_step == self.at:
            x = x.clone()
            x[0, 0] = float("nan")
        return x


class ScaledInputs(Classifier):
    """From epoch ``onset`` on, a unit bug multiplies every input by ``factor`` (e.g. millimetres for metres)."""

    def __init__(self, onset: int, factor: float) -> None:
        super().__init__(mlp(), lr=0.05)
        self.onset, self.factor = onset, factor

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor if self.current_epoch >= self.onset else x


class LrJump(Classifier):
    """A scheduler bug: from epoch ``onset`` on, the learning rate is multiplied by ``factor``."""

    def __init__(self, onset: int, factor: float) -> None:
        super().__init__(mlp(), lr=0.05)
        self.onset, self.factor = onset, factor

    def on_train_epoch_start(self) -> None:
        if self.current_epoch == self.onset:
            for group in self.optimizers().optimizer.param_groups:
                group["lr"] *= self.factor


class LeakyHistory(Classifier):
    """Keeps a tensor per step in a list from epoch ``onset`` on (a debugging history nobody clears)."""

    def __init__(self, onset: int, mb_per_step: float) -> None:
        super().__init__(mlp(), lr=0.05)
        self.onset, self.numel = onset, int(mb_per_step * 2**20 / 4)
        self.history: list[torch.Tensor] = []

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.current_epoch >= self.onset:
            self.history.append(torch.full((self.numel,), 1.0))  # filled, so its pages are resident
        return x


class ErrorLogging(Classifier):
    """From epoch ``onset`` on, the data pipeline logs an error for a skipped sample every few batches."""

    def __init__(self, onset: int) -> None:
        super().__init__(mlp(), lr=0.05)
        self.onset = onset

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.current_epoch >= self.onset and self.global_step % 5 == 0:
            logging.getLogger("train.data").error("corrupt record at step %d: skipped", self.global_step)
        return x


class SlowDataset(Dataset):
    """A dataset whose per-sample cost is set from outside (``delay`` seconds): a decoder that degrades."""

    def __init__(self, base: TensorDataset) -> None:
        self.base = base
        self.delay = 0.0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Any:
        if self.delay:
            time.sleep(self.delay)
        return self.base[i]


class SlowLoader(Classifier):
    def __init__(self, onset: int, delay: float) -> None:
        super().__init__(mlp(), lr=0.05)
        self.onset, self.delay = onset, delay

    def on_train_epoch_start(self) -> None:
        if self.current_epoch >= self.onset:
            self.trainer.train_dataloader.dataset.delay = self.delay


class CheckpointStall(Classifier):
    """From epoch ``onset`` on, one step per epoch blocks for ``seconds`` (a synchronous checkpoint to a slow disk)."""

    def __init__(self, onset: int, seconds: float) -> None:
        super().__init__(mlp(), lr=0.05)
        self.onset, self.seconds = onset, seconds

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.current_epoch >= self.onset and batch_idx == 7:
            time.sleep(self.seconds)
        return super().training_step(batch, batch_idx)


class DeepLSTM(pl.LightningModule):
    """A sequence classifier on a 6-layer LSTM (the sum of a sequence's signs decides its class)."""

    def __init__(self, num_layers: int = 6) -> None:
        super().__init__()
        self.rnn = nn.LSTM(1, 16, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def sequences(n: int, length: int = 12, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, 1, generator=g)
    return TensorDataset(x, (x.sum(dim=(1, 2)) > 0).long())


class FrozenZeroLayer(nn.Module):
    """MLP whose middle Linear was zeroed and frozen (a bad checkpoint load): its output is a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 3)
        with torch.no_grad():
            self.fc2.weight.zero_()
        self.fc2.weight.requires_grad_(False)
        self.fc2.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def dead_relu_net() -> nn.Sequential:
    """A hidden ReLU layer whose bias was initialised at -20: no input reaches a positive pre-activation."""
    net = mlp(hidden=64, depth=2)
    with torch.no_grad():
        net[0].bias.fill_(-20.0)
    return net


class RawPixels(Classifier):
    """A tanh MLP fed unnormalised inputs (raw 0-255 pixel scale: every input multiplied by 255)."""

    def __init__(self) -> None:
        super().__init__(mlp(hidden=64, depth=2, act=nn.Tanh), lr=0.05)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x * 255.0


class FcHeavyCNN(nn.Module):
    """Two convs and one pooling, then a flatten into a 128-unit Linear: the classifier holds the parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(16 * 8 * 8, 128)
        self.head = nn.Linear(128, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(self.features(x).flatten(1))))


class NoPoolCNN(nn.Module):
    """Four 3x3 convolutions at full resolution, pooled only at the very end."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


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
             Expect("vanishing_gradients", onset=0, by_epoch=1, layer="net.0"))),
    Program("dead_relu_bias", "hidden ReLU layer with its bias initialised at -20",
            _seeded(14, lambda: Classifier(dead_relu_net(), lr=0.05)), 4,
            (Expect("dead_layers", onset=0, by_epoch=1, layer="net.0"),)),
    Program("unnormalised_tanh_inputs", "tanh MLP fed unnormalised inputs (x * 255, raw pixel scale)",
            _seeded(15, RawPixels), 3,
            (Expect("saturated_activation", onset=0, by_epoch=0, layer="net.0"),)),
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
            (Expect("loss_explosion", onset=3, by_epoch=3),)),
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
