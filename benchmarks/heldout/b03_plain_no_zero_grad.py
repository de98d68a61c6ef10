# Bug: plain loop that never calls optimizer.zero_grad(): gradients accumulate across steps.
import torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from atlas_callback import Observer, AtlasConfig
from hcommon import regression, ADDR, SUFFIX

torch.manual_seed(0)
xtr, ytr = regression(4096, seed=0)
xva, yva = regression(1024, seed=1)
loader = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True)

model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = nn.MSELoss()

with Observer(project="heldout", run_name="b03_plain_no_zero_grad" + SUFFIX, collector=ADDR,
              config=AtlasConfig(track_carbon=False), hyperparameters={"lr": 0.01}) as obs:
    obs.register_model(model)
    for epoch in range(10):
        model.train()
        total, n = 0.0, 0
        for x, y in loader:
            loss = loss_fn(model(x), y)
            loss.backward()            # BUG: no optimizer.zero_grad()
            optimizer.step()
            obs.step(loss, batch_size=len(x), optimizer=optimizer)
            total += loss.item() * len(x); n += len(x)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(xva), yva).item()
        print(f"SYMPTOM epoch {epoch} train_loss={total / n:.4f} val_loss={val_loss:.4f}", flush=True)
        obs.flush(val_metrics={"val_loss": val_loss})
