"""k04 (plain loop, Observer, regression MLP): healthy. on_critical="stop"."""
import torch
from torch import nn
import hcommon as H

torch.manual_seed(0)
x, y = H.housing(3000, seed=1)
xv, yv = H.housing(800, seed=2)
y, yv = y.unsqueeze(1), yv.unsqueeze(1)
tl, vl = H.loaders(x, y, xv, yv)
model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
mse = nn.functional.mse_loss
with H.observer(H.name_of(__file__), on_critical="stop", lr=1e-3, loss="mse") as obs:
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
            if obs.should_stop:
                break
        val = H.evaluate(model, vl, loss_fn=mse, classify=False)
        H.symptom(epoch, train_loss=tot / n, var_y=float(yv.var()), **val)
        obs.flush(val_metrics=val)
        if obs.should_stop:
            print("STOPPED by Atlas", flush=True)
            break
