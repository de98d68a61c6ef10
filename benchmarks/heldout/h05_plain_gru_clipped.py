# Healthy: plain-loop GRU sequence classifier, Adam, gradient clipping, eval/train switching done right.
import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from atlas_callback import Observer, AtlasConfig
from hcommon import sequences, ADDR, SUFFIX

torch.manual_seed(0)

class GRUNet(nn.Module):
    def __init__(self, hidden=48, classes=3):
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(self.drop(out[:, -1]))

xtr, ytr = sequences(1024, seed=0)
xva, yva = sequences(512, seed=1)
loader = DataLoader(TensorDataset(xtr, ytr), batch_size=32, shuffle=True)
model = GRUNet()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

with Observer(project="heldout", run_name="h05_plain_gru_clipped" + SUFFIX, collector=ADDR,
              config=AtlasConfig(track_carbon=False), hyperparameters={"lr": 3e-3, "clip": 1.0}) as obs:
    obs.register_model(model)
    for epoch in range(8):
        model.train()
        total = 0.0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            obs.step(loss, batch_size=len(x), seq_len=x.shape[1], optimizer=optimizer)
            total += loss.item() * len(x)
        model.eval()
        with torch.no_grad():
            logits = model(xva)
            val_loss = F.cross_entropy(logits, yva).item()
            val_acc = (logits.argmax(1) == yva).float().mean().item()
        print(f"SYMPTOM epoch {epoch} train_loss={total / len(xtr):.4f} val_loss={val_loss:.4f} val_acc={val_acc:.4f}", flush=True)
        obs.flush(val_metrics={"val_loss": val_loss, "val_acc": val_acc})
