"""g06 (Lightning, GRU): `.detach()` on the encoder's output ("to save memory", from a truncated-BPTT snippet)
cuts the graph: the GRU never trains, only the linear head on its random features does.
Fix: remove the .detach()."""
import torch
from torch import nn
import hcommon as H


class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(2, 16, batch_first=True)
        self.head = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1].detach())     # BUG: cuts the graph below the head


torch.manual_seed(0)
x, y = H.waves(1500, seed=1)
xv, yv = H.waves(500, seed=2)
tl, vl = H.loaders(x, y, xv, yv)
model = H.LitClassifier.make(GRUClassifier(), lr=3e-3)
H.lightning_trainer(H.name_of(__file__), epochs=8).fit(model, tl, vl)
