# Bug: images fed as raw 0-255 pixel values (the /255 + normalisation step was forgotten).
import torch, torch.nn as nn, torch.nn.functional as F
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from hcommon import images, trainer

torch.manual_seed(0)

def load_split(n, seed):
    x, y = images(n, seed=seed)
    # "decode" to uint8 pixels the way they come off disk
    pixels = ((x * 0.25 + 0.5).clamp(0, 1) * 255).round()
    return pixels, y   # BUG: should be pixels / 255. (and normalised)

class SmallCNN(pl.LightningModule):
    def __init__(self, lr=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(32 * 8 * 8, 4)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))

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

xtr, ytr = load_split(2048, 0)
xva, yva = load_split(512, 1)
train = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(xva, yva), batch_size=256)
trainer("b01_cnn_raw_pixels", 6).fit(SmallCNN(), train, val)
