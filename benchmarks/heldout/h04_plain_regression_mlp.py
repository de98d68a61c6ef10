# Healthy: plain-loop regression MLP, Adam, MSE, per-epoch StepLR.
import torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from atlas_callback import Observer, AtlasConfig
from hcommon import regression, ADDR, SUFFIX

torch.manual_seed(0)
xtr, ytr = regression(4096, seed=0)
xva, yva = regression(1024, seed=1)
loader = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True)

model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
loss_fn = nn.MSELoss()

with Observer(project="heldout", run_name="h04_plain_regression_mlp" + SUFFIX, collector=ADDR,
              config=AtlasConfig(track_carbon=False), hyperparameters={"lr": 3e-3}) as obs:
    obs.register_model(model)
    for epoch in range(10):
        model.train()
        total = 0.0
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            obs.step(loss, batch_size=len(x), optimizer=optimizer)
            total += loss.item() * len(x)
        scheduler.step()
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(xva), yva).item()
        print(f"SYMPTOM epoch {epoch} train_loss={total / len(xtr):.4f} val_loss={val_loss:.4f}", flush=True)
        obs.flush(val_metrics={"val_loss": val_loss})
