"""g04 (Accelerate, tiny transformer): the learning rate typed as 1e-7 instead of 1e-3; nothing learns,
the loss stays at ln(3). Fix: lr=1e-3."""
import torch
from torch import nn
import hcommon as H


class TinyTransformer(nn.Module):
    def __init__(self, vocab=40, d=32, classes=3, T=20):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, T, d) * 0.02)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True), 2)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.enc(self.emb(x) + self.pos).mean(1))


torch.manual_seed(0)
x, y = H.words(2000, seed=1)
xv, yv = H.words(500, seed=2)
tl, vl = H.loaders(x, y, xv, yv)
model = TinyTransformer()
LR = 1e-7                                   # BUG: meant 1e-3
opt = torch.optim.AdamW(model.parameters(), lr=LR)
H.accelerate_loop(H.name_of(__file__), model, opt, tl, vl, epochs=8, loss_fn=nn.functional.cross_entropy,
                  config={"lr": LR, "d_model": 32, "layers": 2})
