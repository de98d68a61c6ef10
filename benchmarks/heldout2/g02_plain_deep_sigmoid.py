"""g02 (plain loop, Observer): a 10-layer MLP with sigmoid activations and default init, plain SGD:
the gradient vanishes through the stack and the early layers barely move; the loss sits near ln(4).
Fix: ReLU (or BatchNorm / residual connections) instead of sigmoid in the hidden layers."""
import torch
from torch import nn
import hcommon as H

torch.manual_seed(0)
x, y = H.blobs(3000, seed=1)
xv, yv = H.blobs(800, seed=2)
tl, vl = H.loaders(x, y, xv, yv)
layers, d = [], 16
for _ in range(10):
    layers += [nn.Linear(d, 64), nn.Sigmoid()]   # BUG: a deep stack of saturating sigmoids
    d = 64
model = nn.Sequential(*layers, nn.Linear(64, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
with H.observer(H.name_of(__file__), lr=0.05, depth=10, act="sigmoid") as obs:
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
