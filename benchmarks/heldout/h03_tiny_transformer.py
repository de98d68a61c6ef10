# Healthy: tiny transformer encoder classifier on token sequences, AdamW, logits into cross-entropy.
import torch, torch.nn as nn, torch.nn.functional as F
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from hcommon import tokens, trainer

torch.manual_seed(0)

class TinyTransformer(pl.LightningModule):
    def __init__(self, vocab=50, d=64, classes=3, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(1, 24, d))
        layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        h = self.encoder(self.emb(x) + self.pos)
        return self.head(h.mean(1))

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
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

xtr, ytr = tokens(1024, seed=0)
xva, yva = tokens(512, seed=1)
train = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(xva, yva), batch_size=256)
trainer("h03_tiny_transformer", 4).fit(TinyTransformer(), train, val)
