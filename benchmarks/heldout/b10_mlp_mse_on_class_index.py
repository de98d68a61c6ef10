# Bug: a 5-class classifier trained with MSELoss against the integer class index instead of cross-entropy.
import torch, torch.nn as nn, torch.nn.functional as F
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from hcommon import tabular, trainer

torch.manual_seed(0)

class TabularNet(pl.LightningModule):
    def __init__(self, d=20, classes=5, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(d, 128), nn.LayerNorm(128), nn.GELU(),
                                 nn.Linear(128, 64), nn.GELU(), nn.Linear(64, classes))
        self.criterion = nn.MSELoss()   # BUG: should be nn.CrossEntropyLoss()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        loss = self.criterion(self(x), y.float().unsqueeze(1))
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.criterion(logits, y.float().unsqueeze(1)))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

xtr, ytr = tabular(4096, classes=5, seed=0)
xva, yva = tabular(1024, classes=5, seed=1)
train = DataLoader(TensorDataset(xtr, ytr), batch_size=128, shuffle=True)
val = DataLoader(TensorDataset(xva, yva), batch_size=512)
trainer("b10_mlp_mse_on_class_index", 8).fit(TabularNet(), train, val)
