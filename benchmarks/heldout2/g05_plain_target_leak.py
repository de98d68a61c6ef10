"""g05 (plain loop, Observer): target leakage -- a feature column ("account_status") was computed from the
label during preprocessing, in both splits; the task is really hard (overlapping classes) yet the model is
"perfect" after a few steps. Fix: drop the column derived from the label."""
import torch
from torch import nn
import hcommon as H

torch.manual_seed(0)
x, y = H.blobs(3000, seed=1, spread=3.0)
xv, yv = H.blobs(800, seed=2, spread=3.0)
x[:, 0] = y.float()                      # BUG: a column derived from the label
xv[:, 0] = yv.float()
tl, vl = H.loaders(x, y, xv, yv)
model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
with H.observer(H.name_of(__file__), lr=1e-3) as obs:
    obs.register_model(model)
    for epoch in range(8):
        tot, n = 0.0, 0
        for xb, yb in tl:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            obs.step(loss, batch_size=len(xb), optimizer=opt)
            tot += loss.item() * len(xb); n += len(xb)
        val = H.evaluate(model, vl)
        H.symptom(epoch, train_loss=tot / n, **val)
        obs.flush(val_metrics=val)
