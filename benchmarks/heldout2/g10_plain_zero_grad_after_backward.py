"""g10 (plain loop, Observer): `optimizer.zero_grad()` placed between `loss.backward()` and
`optimizer.step()`: every step applies a zero gradient, the weights never change.
Fix: zero_grad() before backward() (or after step())."""
import torch
from torch import nn
import hcommon as H

torch.manual_seed(0)
x, y = H.blobs(3000, seed=1)
xv, yv = H.blobs(800, seed=2)
tl, vl = H.loaders(x, y, xv, yv)
model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
with H.observer(H.name_of(__file__), lr=0.05) as obs:
    obs.register_model(model)
    for epoch in range(8):
        tot, n = 0.0, 0
        for xb, yb in tl:
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.zero_grad()                         # BUG: clears the gradient just computed
            opt.step()
            obs.step(loss, batch_size=len(xb), optimizer=opt)
            tot += loss.item() * len(xb); n += len(xb)
        val = H.evaluate(model, vl)
        H.symptom(epoch, train_loss=tot / n, **val)
        obs.flush(val_metrics=val)
