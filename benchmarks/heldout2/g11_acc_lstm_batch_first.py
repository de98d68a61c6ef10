"""g11 (Accelerate, LSTM): `nn.LSTM(...)` without `batch_first=True` fed (batch, time, features): the LSTM
runs along the batch, each "sequence" is one time step of every sample, and `out[:, -1]` still has the
right shape. Fix: nn.LSTM(..., batch_first=True)."""
import torch
from torch import nn
import hcommon as H


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, 32)              # BUG: batch_first=False while inputs are (B, T, F)
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


torch.manual_seed(0)
x, y = H.waves(1500, seed=1)
xv, yv = H.waves(500, seed=2)
tl, vl = H.loaders(x, y, xv, yv)
model = LSTMClassifier()
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
H.accelerate_loop(H.name_of(__file__), model, opt, tl, vl, epochs=8, loss_fn=nn.functional.cross_entropy,
                  clip=1.0, config={"lr": 3e-3, "hidden": 32})
