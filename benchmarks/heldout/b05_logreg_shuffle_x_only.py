# Bug: hand-written per-epoch shuffling permutes the features but not the labels.
import torch, torch.nn as nn, torch.nn.functional as F
from atlas_callback import Observer, AtlasConfig
from hcommon import tabular, ADDR, SUFFIX

torch.manual_seed(0)
xtr, ytr = tabular(4000, seed=0)
xva, yva = tabular(1000, seed=1)
model = nn.Linear(20, 3)            # multinomial logistic regression
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
bs = 100

with Observer(project="heldout", run_name="b05_logreg_shuffle_x_only" + SUFFIX, collector=ADDR,
              config=AtlasConfig(track_carbon=False), hyperparameters={"lr": 0.1, "batch_size": bs}) as obs:
    obs.register_model(model)
    for epoch in range(15):
        perm = torch.randperm(len(xtr))
        x_shuf = xtr[perm]
        y_shuf = ytr            # BUG: should be ytr[perm]
        total = 0.0
        for i in range(0, len(xtr), bs):
            x, y = x_shuf[i:i + bs], y_shuf[i:i + bs]
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            obs.step(loss, batch_size=len(x), optimizer=optimizer)
            total += loss.item() * len(x)
        with torch.no_grad():
            logits = model(xva)
            val_loss = F.cross_entropy(logits, yva).item()
            val_acc = (logits.argmax(1) == yva).float().mean().item()
        print(f"SYMPTOM epoch {epoch} train_loss={total / len(xtr):.4f} val_loss={val_loss:.4f} val_acc={val_acc:.4f}", flush=True)
        obs.flush(val_metrics={"val_loss": val_loss, "val_acc": val_acc})
