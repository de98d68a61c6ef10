"""The models and data of the faulty-run suite: small Lightning modules and synthetic datasets, each a few seconds
of CPU training. The labels, and which program uses what, are in ``_fault_programs.py``."""
from __future__ import annotations

import copy
import logging
import time
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

# ----------------------------------------------------------------------------------------------------- data

def blobs(n: int, dim: int = 8, classes: int = 3, seed: int = 0, noise: float = 0.7,
          center_seed: int = 0) -> TensorDataset:
    """Gaussian blobs: ``classes`` centres (fixed by ``center_seed``), ``n`` noisy samples (``seed``)."""
    centers = torch.randn(classes, dim, generator=torch.Generator().manual_seed(center_seed))
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    return TensorDataset(centers[labels] + noise * torch.randn(n, dim, generator=g), labels)


def images(n: int, classes: int = 3, side: int = 16, seed: int = 0, noise: float = 2.5) -> TensorDataset:
    """1-channel images: a class-specific blurred template plus noise."""
    templates = torch.randn(classes, 1, side, side, generator=torch.Generator().manual_seed(100))
    templates = nn.functional.avg_pool2d(templates, 3, stride=1, padding=1) * 3
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    return TensorDataset(templates[labels] + noise * torch.randn(n, 1, side, side, generator=g), labels)


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


# ------------------------------------------------------------------------------------ bugs people write (issue 19)

class ManualSGD(Classifier):
    """Manual optimisation with plain SGD. ``clear=False`` is the bug: the loop never calls
    ``optimizer.zero_grad()``, so every step applies the sum of all gradients so far."""

    def __init__(self, clear: bool, lr: float = 0.05) -> None:
        super().__init__(mlp(dim=256, hidden=64, classes=10, depth=1), lr=lr)
        self.automatic_optimization = False
        self.clear = clear

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        opt = self.optimizers()
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        if self.clear:
            opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class KeptGraph(Classifier):
    """Keeps, for an epoch-end average, the loss of a second (monitoring) forward pass as a tensor: nothing calls
    backward on it, so its graph and the activations it saved stay alive. ``keep=False`` keeps ``.item()``."""

    def __init__(self, keep: bool) -> None:
        super().__init__(mlp(dim=2048, hidden=64, classes=10, depth=1), lr=0.05)
        self.keep = keep
        self.monitor: list[Any] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        watched = nn.functional.cross_entropy(self(x), y)
        self.monitor.append(watched if self.keep else watched.item())
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss


class Repeat(Dataset):
    """``times`` passes over ``base`` per epoch (more steps without more samples in memory)."""

    def __init__(self, base: Dataset, times: int) -> None:
        self.base, self.times = base, times

    def __len__(self) -> int:
        return len(self.base) * self.times  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        return self.base[i % len(self.base)]  # type: ignore[arg-type]


def flat_images(n: int, classes: int = 10, seed: int = 0) -> TensorDataset:
    x, y = images(n, classes=classes, seed=seed).tensors
    return TensorDataset(x.flatten(1), y)


# ------------------------------------------------------------------------------- healthy controls of other kinds

class BatchNormCNN(nn.Module):
    """conv-BN-ReLU-pool x2, global average pooling, a Linear head."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class GRUClassifier(Classifier):
    """A one-layer GRU over the sequence, its last state into a Linear head (the sum's sign is the class)."""

    def __init__(self) -> None:
        super().__init__(nn.Identity(), lr=3e-3, optimizer="adam")
        self.rnn = nn.GRU(1, 16, batch_first=True)
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class SequenceLSTM(Classifier):
    """A one-layer LSTM over (batch, time, features) sequences, its last output into a Linear head (the sum's sign
    is the class), Adam(lr=3e-3). ``batch_first=False``: the LSTM is built as `nn.LSTM(1, 16)` and fed the same
    tensors: it takes the batch as time (the bug)."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__(nn.Identity(), lr=3e-3, optimizer="adam")
        self.rnn = nn.LSTM(1, 16, batch_first=batch_first)
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class AutoEncoder(pl.LightningModule):
    """An MLP autoencoder 32-16-4-16-32 trained with MSE (a regression loss: no classes, no accuracy)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
        self.decoder = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        (x,) = batch
        loss = nn.functional.mse_loss(self(x), x)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        (x,) = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), x))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def low_rank(n: int, seed: int = 0) -> TensorDataset:
    """32-dimensional samples near a fixed 4-dimensional subspace."""
    basis = torch.randn(4, 32, generator=torch.Generator().manual_seed(40))
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 4, generator=g) @ basis + 0.05 * torch.randn(n, 32, generator=g))


class CosineWeightDecay(Classifier):
    """SGD with momentum and weight decay, the learning rate annealed per epoch by a cosine schedule."""

    def __init__(self, epochs: int) -> None:
        super().__init__(mlp(dim=16, hidden=64, classes=4, depth=2), lr=0.1)
        self.epochs = epochs

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)}


class TinyTransformer(Classifier):
    """One TransformerEncoder layer (d_model 32, 4 heads) over a sequence, mean-pooled into a Linear head."""

    def __init__(self) -> None:
        super().__init__(nn.Identity(), lr=1e-3, optimizer="adam")
        self.embed = nn.Linear(1, 32)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0,
                                                                        batch_first=True), num_layers=1)
        self.head = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def noisy_labels(n: int, seed: int = 0, flip: float = 0.3) -> TensorDataset:
    """3-class blobs with ``flip`` of the labels replaced at random: the loss stays high and falls slowly."""
    x, y = blobs(n, dim=8, classes=3, noise=1.0, seed=seed).tensors
    g = torch.Generator().manual_seed(seed + 7)
    y = torch.where(torch.rand(n, generator=g) < flip, torch.randint(0, 3, (n,), generator=g), y)
    return TensorDataset(x, y)


# ------------------------------------------------------------------------- more bugs people write (issue 19, more)

def labels_permuted(data: TensorDataset, seed: int = 0) -> TensorDataset:
    """The bug: the labels shuffled on their own (``y = y[randperm]``), the inputs left in place."""
    x, y = data.tensors
    return TensorDataset(x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))])


def sorted_by_label(data: TensorDataset) -> TensorDataset:
    """A training set stored class by class (as it came from a directory per class)."""
    x, y = data.tensors
    order = torch.argsort(y, stable=True)
    return TensorDataset(x[order], y[order])


def pixel_images(n: int, classes: int = 10, seed: int = 0, scale: float = 1.0) -> TensorDataset:
    """Flattened 16x16 images quantised to raw 0-255 pixel values (``scale=1/255``: the usual ``ToTensor`` range)."""
    x, y = flat_images(n, classes=classes, seed=seed).tensors
    return TensorDataset(((x.clamp(-6, 6) + 6) / 12 * 255).round() * scale, y)


class SoftmaxHead(Classifier):
    """An MLP classifier whose forward ends in ``nn.Softmax(dim=1)`` (``softmax=True``: the bug), trained with
    ``F.cross_entropy``, which applies log-softmax again: the loss cannot fall below log(1 + 9/e) = 1.46 (10
    classes)."""

    def __init__(self, softmax: bool, dim: int = 32, classes: int = 10) -> None:
        net = mlp(dim=dim, hidden=64, classes=classes, depth=2)
        super().__init__(nn.Sequential(net, nn.Softmax(dim=1)) if softmax else net, lr=3e-3, optimizer="adam")


class OptimizerOf(Classifier):
    """``configure_optimizers`` over the parameters of another module (``wrong=True``: a deep copy of the network,
    as after a refactor that rebuilt ``self.net``): the model's own weights never change."""

    def __init__(self, wrong: bool) -> None:
        super().__init__(mlp(dim=16, hidden=64, classes=4, depth=2), lr=0.05)
        self.wrong = wrong

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = copy.deepcopy(self.net).parameters() if self.wrong else self.parameters()
        return torch.optim.SGD(params, lr=self.lr, momentum=0.9)


class StepLRScheduled(Classifier):
    """SGD(lr=0.1) with ``StepLR(step_size=1, gamma=0.5)``, meant per epoch. ``interval="step"`` is the bug: the lr
    halves every batch and is ~1e-10 of its start after one epoch of 32 steps."""

    def __init__(self, interval: str) -> None:
        super().__init__(mlp(dim=16, hidden=64, classes=4, depth=2), lr=0.1)
        self.interval = interval

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": self.interval}}


class TrainsInEvalMode(Classifier):
    """An MLP with BatchNorm and Dropout. ``bug=True``: ``on_train_epoch_start`` calls ``self.eval()`` (left from a
    debugging session), so every training step runs with dropout off and BatchNorm on its initial running stats."""

    def __init__(self, bug: bool, dim: int = 16, classes: int = 4, hidden: int = 256) -> None:
        net = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.5),
                            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.5),
                            nn.Linear(hidden, classes))
        super().__init__(net, lr=1e-3, optimizer="adam")
        self.bug = bug

    def on_train_epoch_start(self) -> None:
        if self.bug:
            self.eval()


def bn_mlp(dim: int = 16, hidden: int = 64, classes: int = 4) -> nn.Sequential:
    """Linear-BatchNorm-ReLU x2 and a Linear head."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, classes))


class UnusedBranch(Classifier):
    """An MLP classifier. ``unused=True``: a trainable ``self.extra = nn.Linear(64, 64)`` (a projection left from an
    experiment) that ``forward`` never calls: its parameters never get a gradient."""

    def __init__(self, unused: bool) -> None:
        super().__init__(mlp(dim=16, hidden=64, classes=4, depth=2), lr=0.05)
        if unused:
            self.extra = nn.Linear(64, 64)


def drifting(n: int, length: int = 100, seed: int = 0, drift: float = 0.5) -> TensorDataset:
    """Length-``length`` noise sequences drifting by +``drift`` or -``drift`` a step; the class is the drift's sign."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = (2 * y.float() - 1)[:, None] * drift + torch.randn(n, length, generator=g)
    return TensorDataset(x[..., None], y)


class LongRNN(Classifier):
    """A one-layer tanh RNN (hidden 32) over length-100 sequences, its last state into a Linear head, plain
    SGD(lr=1.0): the classic recurrent-net recipe, which relies on gradient clipping."""

    def __init__(self, lr: float = 1.0, hidden: int = 32) -> None:
        super().__init__(nn.Identity(), lr=lr)
        self.rnn = nn.RNN(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class FrozenBackbone(Classifier):
    """A CNN (three 3x3 convolutions, 14,048 parameters) frozen under a small head (Linear(32, 3) on globally pooled
    features, 99 parameters: 0.7 % of the model), fine-tuned with Adam(lr=1e-3) as a fine-tuning recipe does.
    ``pretrained``: the backbone is first trained on the task (4 epochs, the whole network), as loaded pretrained
    weights would be, and the head re-initialised; without it the "pretrained" backbone is its random
    initialisation (the freeze block copied from a recipe, the weights never loaded)."""

    def __init__(self, pretrained: bool, data: DataLoader | None = None) -> None:
        backbone = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        super().__init__(nn.Sequential(backbone, nn.Linear(32, 3)), lr=1e-3, optimizer="adam")
        if pretrained:
            assert data is not None
            opt = torch.optim.Adam(self.net.parameters(), lr=3e-3)
            for _ in range(4):
                for x, y in data:
                    opt.zero_grad()
                    nn.functional.cross_entropy(self.net(x), y).backward()
                    opt.step()
            self.net[1].reset_parameters()
        for p in backbone.parameters():
            p.requires_grad_(False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam((p for p in self.parameters() if p.requires_grad), lr=self.lr)


class FirstKernelCNN(nn.Module):
    """conv(k)-ReLU-pool, conv3-ReLU, average pool to 4x4, Linear(256, 3) on 28x28 images. ``kernel=9``: the first
    layer's 9x9 kernel (no padding) turns 28x28 into 20x20."""

    def __init__(self, kernel: int, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, kernel_size=kernel), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))
