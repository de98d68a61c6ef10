"""The training behind `atlas demo`: a small Lightning classifier on synthetic data, on the CPU.

    python -m atlas_callback._demo --collector 127.0.0.1:50051 --epochs 3
    python -m atlas_callback._demo --collector 127.0.0.1:50051 --epochs 3 --bug

With ``--bug`` the same model has a bug people write: ``configure_optimizers`` builds the optimizer over a copy of
the network, so no weight ever changes. The run uses ``on_critical="stop"``: Atlas names the bug at the end of the
first epoch and stops the run.
"""
from __future__ import annotations

import argparse
import logging
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description="Train a small model with AtlasCallback.")
    parser.add_argument("--collector", required=True, help="HOST:PORT of the collector")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--project", default="demo")
    parser.add_argument("--run-name", default=None)
    parser.add_argument("--bug", action="store_true", help="train with the optimizer over a copy of the network")
    ns = parser.parse_args()
    run_name = ns.run_name or ("demo-bug" if ns.bug else "demo-mlp")

    warnings.filterwarnings("ignore")
    import lightning.pytorch as pl
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from atlas_callback import AtlasCallback

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)

    torch.manual_seed(0)
    torch.set_num_threads(1)

    # Four overlapping Gaussian blobs in 20 dimensions: learnable in a few epochs, never perfectly.
    centers = torch.randn(4, 20) * 0.5
    labels = torch.randint(0, 4, (4096,))
    features = centers[labels] + torch.randn(4096, 20)
    train = TensorDataset(features[:3584], labels[:3584])
    val = TensorDataset(features[3584:], labels[3584:])

    class Classifier(pl.LightningModule):
        def __init__(self, hidden: int = 64, lr: float = 0.01) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(20, hidden), nn.ReLU(), nn.Linear(hidden, 4))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, on_epoch=True, on_step=False)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self.net(x)
            self.log("val_loss", nn.functional.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(-1) == y).float().mean())

        def configure_optimizers(self):
            if ns.bug:  # the bug: an optimizer over a copy of the network (e.g. a model rebuilt after this line)
                import copy

                return torch.optim.Adam(copy.deepcopy(self.net).parameters(), lr=self.hparams.lr)
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    trainer = pl.Trainer(
        max_epochs=ns.epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[AtlasCallback(project=ns.project, run_name=run_name, collector=ns.collector,
                                 on_critical="stop" if ns.bug else "warn")],
    )
    trainer.fit(Classifier(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=256))
    metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()}
    print(f"{run_name}: trained {trainer.current_epoch} of {ns.epochs} epochs: {metrics}", flush=True)


if __name__ == "__main__":
    main()
