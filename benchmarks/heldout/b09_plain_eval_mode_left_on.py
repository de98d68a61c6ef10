# Bug: model.train() is called once before the loop; the end-of-epoch evaluation switches to eval()
# and nothing switches back, so from epoch 1 on BatchNorm/Dropout train in eval mode.
import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from atlas_callback import Observer, AtlasConfig
from hcommon import images, ADDR, SUFFIX

torch.manual_seed(0)
xtr, ytr = images(1024, seed=0, signal=0.15)
xva, yva = images(512, seed=1, signal=0.15)
loader = DataLoader(TensorDataset(xtr, ytr), batch_size=32, shuffle=True)

model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Dropout(0.5), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

def evaluate():
    model.eval()
    with torch.no_grad():
        logits = model(xva)
        return F.cross_entropy(logits, yva).item(), (logits.argmax(1) == yva).float().mean().item()

with Observer(project="heldout", run_name="b09_plain_eval_mode_left_on" + SUFFIX, collector=ADDR,
              config=AtlasConfig(track_carbon=False), hyperparameters={"lr": 1e-3}) as obs:
    obs.register_model(model)
    model.train()
    for epoch in range(6):
        total, correct = 0.0, 0
        for x, y in loader:          # BUG: no model.train() here after evaluate() at the end of the last epoch
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            obs.step(loss, batch_size=len(x), optimizer=optimizer)
            total += loss.item() * len(x); correct += (logits.argmax(1) == y).sum().item()
        val_loss, val_acc = evaluate()
        print(f"SYMPTOM epoch {epoch} train_loss={total / len(xtr):.4f} train_acc={correct / len(xtr):.4f} "
              f"val_loss={val_loss:.4f} val_acc={val_acc:.4f}", flush=True)
        obs.flush(val_metrics={"val_loss": val_loss, "val_acc": val_acc})
