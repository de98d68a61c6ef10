"""Small Lightning modules and data for tests (CPU, seconds)."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning.pytorch as pl


def blobs(n: int = 512, dim: int = 8, classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    return TensorDataset(centers[labels] + 0.7 * torch.randn(n, dim, generator=g), labels)


def loaders(n: int = 512, batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    return (DataLoader(blobs(n), batch_size=batch_size, shuffle=True),
            DataLoader(blobs(128, seed=1), batch_size=64))


class TinyClassifier(pl.LightningModule):
    def __init__(self, hidden: int = 16, lr: float = 0.05, fail_at_step: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def training_step(self, batch, batch_idx):
        if self.hparams.fail_at_step is not None and self.global_step >= self.hparams.fail_at_step:
            raise RuntimeError(f"boom at step {self.global_step}: synthetic failure")
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def trainer(callbacks: list, max_epochs: int = 2, **kwargs) -> pl.Trainer:
    options = dict(max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
    options.update(kwargs)
    return pl.Trainer(**options)
