# Bug: the model is re-created (for a reproducible init) after the optimizer was built over the first instance.
import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from atlas_callback import Observer, AtlasConfig
from hcommon import sequences, ADDR, SUFFIX

class Conv1dNet(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, 32, 5, padding=2), nn.ReLU(),
            nn.Conv1d(32, 32, 5, padding=2), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, classes))

    def forward(self, x):              # x: (B, T, 1)
        return self.net(x.transpose(1, 2))

xtr, ytr = sequences(2048, seed=0)
xva, yva = sequences(512, seed=1)
loader = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True)

model = Conv1dNet()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
torch.manual_seed(42)                 # make the initialisation reproducible
model = Conv1dNet()                   # BUG: optimizer still holds the first instance's parameters

with Observer(project="heldout", run_name="b06_plain_optimizer_other_model" + SUFFIX, collector=ADDR,
              config=AtlasConfig(track_carbon=False), hyperparameters={"lr": 1e-3}) as obs:
    obs.register_model(model)
    for epoch in range(6):
        model.train()
        total = 0.0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            obs.step(loss, batch_size=len(x), optimizer=optimizer)
            total += loss.item() * len(x)
        model.eval()
        with torch.no_grad():
            logits = model(xva)
            val_loss = F.cross_entropy(logits, yva).item()
            val_acc = (logits.argmax(1) == yva).float().mean().item()
        print(f"SYMPTOM epoch {epoch} train_loss={total / len(xtr):.4f} val_loss={val_loss:.4f} val_acc={val_acc:.4f}", flush=True)
        obs.flush(val_metrics={"val_loss": val_loss, "val_acc": val_acc})
