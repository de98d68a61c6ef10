# Bug: GRU trained with a far too high SGD learning rate and no gradient clipping.
import torch, torch.nn as nn, torch.nn.functional as F
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from hcommon import sequences, trainer

torch.manual_seed(0)

class GRUClassifier(pl.LightningModule):
    def __init__(self, hidden=64, lr=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(1, hidden, num_layers=2, batch_first=True)
        self.fc = nn.Linear(hidden, 3)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(out[:, -1])

    def training_step(self, batch, _):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)

xtr, ytr = sequences(2048, seed=0)
xva, yva = sequences(512, seed=1)
train = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(xva, yva), batch_size=256)
trainer("b02_gru_high_lr", 8).fit(GRUClassifier(), train, val)  # no gradient_clip_val
