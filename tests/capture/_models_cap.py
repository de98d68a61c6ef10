"""Small real models and a plain training step for the capture channel tests (architecture, layers, profiler)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Conv2d + ReLU + MaxPool twice, then Flatten and two Linear layers; input (N, 1, 12, 12)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 8, kernel_size=3, stride=1, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(8 * 3 * 3, 16)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))

    @staticmethod
    def batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, 1, 12, 12), torch.randint(0, 10, (n,))


class TinyTransformer(nn.Module):
    """Embedding + one TransformerEncoderLayer + Linear head over the mean token; input (N, L) token ids."""

    def __init__(self, vocab: int = 50, d_model: int = 16, nhead: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.encoder = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=32, dropout=0.1,
                                                  batch_first=True)
        self.head = nn.Linear(d_model, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(1))

    @staticmethod
    def batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randint(0, 50, (n, 6)), torch.randint(0, 10, (n,))


class TinyLSTM(nn.Module):
    """LSTM (2 layers) over (N, L, 5) inputs, Linear head over the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(5, 12, num_layers=2, batch_first=True, bidirectional=False)
        self.head = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])

    @staticmethod
    def batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, 7, 5), torch.randint(0, 10, (n,))


def sigmoid_mlp(depth: int = 4, width: int = 16) -> nn.Sequential:
    """Linear + Sigmoid stack, ending in a Linear to 10 classes; input (N, width)."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Sigmoid()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def relu_mlp(width: int = 16) -> nn.Sequential:
    """Linear, ReLU, Linear, ReLU, Linear; indices 0 and 2 are the hidden Linear layers."""
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


def mlp_batch(n: int = 32, width: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, width), torch.randint(0, 10, (n,))


def train_step(model: nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """One plain optimisation step; returns the loss."""
    x, y = batch
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def all_hooks(model: nn.Module) -> int:
    """Number of module and parameter hooks anywhere in ``model`` (0 when everything was removed)."""
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += len(getattr(m, "_backward_pre_hooks", {}))
    for p in model.parameters():
        hooks = getattr(p, "_backward_hooks", None)
        n += len(hooks) if hooks else 0
    return n


def run_epoch(model: nn.Module, monitor_arm: Callable[[int], bool], monitor_disarm: Callable[[], None],
              make_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]], steps: int, lr: float = 0.01,
              start: int = 0, opt: torch.optim.Optimizer | None = None) -> torch.optim.Optimizer:
    """``steps`` training steps with the monitor armed/disarmed around each; returns the optimiser."""
    opt = opt or torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(start, start + steps):
        monitor_arm(step)
        train_step(model, opt, make_batch())
        monitor_disarm()
    return opt
