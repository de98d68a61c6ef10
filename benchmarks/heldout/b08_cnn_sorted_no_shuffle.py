# Bug: the training set is built class folder by class folder (sorted by label) and the loader has shuffle=False.
import torch, torch.nn as nn, torch.nn.functional as F
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from hcommon import images, trainer

torch.manual_seed(0)

def load_by_class_folder(n, seed):
    x, y = images(n, seed=seed, signal=0.12)
    order = torch.argsort(y, stable=True)      # class_0/*, class_1/*, ... as read from disk
    return x[order], y[order]

class CNN(pl.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(32 * 16, 4))

    def forward(self, x):
        return self.body(x)

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
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

xtr, ytr = load_by_class_folder(2048, 0)
xva, yva = images(512, seed=1, signal=0.12)
train = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=False)   # BUG: data is sorted by class
val = DataLoader(TensorDataset(xva, yva), batch_size=256)
trainer("b08_cnn_sorted_no_shuffle", 6).fit(CNN(), train, val)
