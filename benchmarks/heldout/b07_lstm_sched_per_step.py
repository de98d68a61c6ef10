# Bug: an ExponentialLR(gamma=0.9) meant to decay once per epoch is configured with interval="step".
import torch, torch.nn as nn, torch.nn.functional as F
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from hcommon import sequences, trainer

torch.manual_seed(0)

class LSTMClassifier(pl.LightningModule):
    def __init__(self, hidden=48, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 3)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])

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
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}  # BUG: meant "epoch"

xtr, ytr = sequences(1024, seed=0)
xva, yva = sequences(512, seed=1)
train = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(xva, yva), batch_size=256)
trainer("b07_lstm_sched_per_step", 6).fit(LSTMClassifier(), train, val)
