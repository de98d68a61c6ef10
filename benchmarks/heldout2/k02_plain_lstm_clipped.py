"""k02 (plain loop, Observer, LSTM with clipping): healthy. on_critical="stop"."""
import torch
from torch import nn
import hcommon as H


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, 32, batch_first=True)
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
with H.observer(H.name_of(__file__), on_critical="stop", lr=3e-3, clip=1.0) as obs:
    obs.register_model(model)
    for epoch in range(8):
        tot, n = 0.0, 0
        for xb, yb in tl:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            obs.step(loss, batch_size=len(xb), seq_len=xb.shape[1], optimizer=opt)
            tot += loss.item() * len(xb); n += len(xb)
            if obs.should_stop:
                break
        val = H.evaluate(model, vl)
        H.symptom(epoch, train_loss=tot / n, **val)
        obs.flush(val_metrics=val)
        if obs.should_stop:
            print("STOPPED by Atlas", flush=True)
            break
