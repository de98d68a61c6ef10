"""g08 (plain loop, Observer, regression): prediction of shape (N, 1) against a target of shape (N,):
`F.mse_loss` broadcasts to (N, N) (with only a UserWarning), so the model learns the mean of y and nothing
else. Fix: `y.unsqueeze(1)` (or `pred.squeeze(1)`)."""
import warnings
import torch
from torch import nn
import hcommon as H

warnings.filterwarnings("once")
torch.manual_seed(0)
x, y = H.housing(3000, seed=1)
xv, yv = H.housing(800, seed=2)
tl, vl = H.loaders(x, y, xv, yv)
model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
mse = nn.functional.mse_loss                     # BUG: called on (N,1) vs (N,) below
with H.observer(H.name_of(__file__), lr=1e-3, loss="mse") as obs:
    obs.register_model(model)
    for epoch in range(8):
        tot, n = 0.0, 0
        for xb, yb in tl:
            opt.zero_grad()
            loss = mse(model(xb), yb)
            loss.backward()
            opt.step()
            obs.step(loss, batch_size=len(xb), optimizer=opt)
            tot += loss.item() * len(xb); n += len(xb)
        val = H.evaluate(model, vl, loss_fn=mse, classify=False)
        with torch.no_grad():
            true_mse = float(((model(xv).squeeze(1) - yv) ** 2).mean())
        H.symptom(epoch, train_loss=tot / n, true_val_mse=true_mse, var_y=float(yv.var()), **val)
        obs.flush(val_metrics=val)
