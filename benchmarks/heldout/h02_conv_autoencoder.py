# Healthy: convolutional autoencoder on synthetic images, MSE reconstruction, AdamW + cosine schedule per epoch.
import torch, torch.nn as nn, torch.nn.functional as F
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from hcommon import images, trainer

torch.manual_seed(0)

class ConvAE(pl.LightningModule):
    def __init__(self, lr=2e-3, epochs=6):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 3, 4, stride=2, padding=1))

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch, _):
        (x,) = batch
        loss = F.mse_loss(self(x), x)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _):
        (x,) = batch
        self.log("val_loss", F.mse_loss(self(x), x))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

# smoother images than the classifier's: low-noise, so there is structure to reconstruct
xtr, _ = images(1024, seed=0, signal=1.0)
xva, _ = images(512, seed=1, signal=1.0)
mu, sd = xtr.mean(), xtr.std()
xtr, xva = (xtr - mu) / sd, (xva - mu) / sd
train = DataLoader(TensorDataset(xtr), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(xva), batch_size=256)
trainer("h02_conv_autoencoder", 6).fit(ConvAE(), train, val)
