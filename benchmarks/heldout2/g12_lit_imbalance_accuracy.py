"""g12 (Lightning, MLP): a 97:3 class imbalance trained with plain cross-entropy and judged by accuracy:
the model predicts the majority class for everything, accuracy reads 0.97, the minority recall is 0.
Fix: class weights in the loss (or a balanced sampler) and a per-class metric."""
import torch
from torch import nn
import lightning.pytorch as pl
import hcommon as H


class Lit(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, i):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)   # BUG: no class weights for a 97:3 imbalance
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, i):
        x, y = batch
        out = self(x)
        pred = out.argmax(-1)
        self.log("val_loss", nn.functional.cross_entropy(out, y))
        self.log("val_acc", (pred == y).float().mean())
        self.log("val_minority_recall", ((pred == 1) & (y == 1)).sum().float() / (y == 1).sum().clamp(min=1))

    def on_validation_epoch_end(self):
        print("SYMPTOM minority recall", round(float(self.trainer.callback_metrics["val_minority_recall"]), 4),
              flush=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


torch.manual_seed(0)
x, y = H.blobs(3000, classes=2, seed=1, spread=2.5, weights=[0.97, 0.03])
xv, yv = H.blobs(1000, classes=2, seed=2, spread=2.5, weights=[0.97, 0.03])
tl, vl = H.loaders(x, y, xv, yv)
H.lightning_trainer(H.name_of(__file__), epochs=8).fit(Lit(), tl, vl)
