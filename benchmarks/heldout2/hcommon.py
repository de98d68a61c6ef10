"""Round-2 held-out programs: synthetic data, a printing callback, and the three Atlas adapters.

Every program prints its own symptom (`SYMPTOM epoch ...`) without Atlas; the run name is the file stem.
"""
import math
import os
import sys

import torch

ADDR = os.environ.get("ATLAS_ADDR", "127.0.0.1:34061")
SUFFIX = os.environ.get("RUN_SUFFIX", "")
PROJECT = "heldout2"
torch.set_num_threads(1)


def name_of(path):
    return os.path.splitext(os.path.basename(path))[0] + SUFFIX


# ------------------------------------------------------------------------------------------- data
def blobs(n, d=16, classes=4, seed=0, spread=1.0, weights=None):
    """Gaussian class clusters in d dimensions (centres fixed across splits)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=torch.Generator().manual_seed(7)) * 1.0
    if weights is None:
        y = torch.randint(0, classes, (n,), generator=g)
    else:
        y = torch.multinomial(torch.tensor(weights, dtype=torch.float), n, replacement=True, generator=g)
    x = centres[y] + spread * torch.randn(n, d, generator=g)
    return x, y


def pictures(n, classes=4, seed=0, size=16):
    """1x16x16 images: a class-specific blurred stroke pattern plus noise; about zero mean, unit std."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(classes, 1, 4, 4, generator=torch.Generator().manual_seed(11))
    tpl = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.randint(0, classes, (n,), generator=g)
    x = 0.8 * tpl[y] + torch.randn(n, 1, size, size, generator=g)
    return x, y


def waves(n, T=40, classes=3, seed=0):
    """(n, T, 2) sequences: a noisy sine whose frequency is the class, and its cosine."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    f = 0.12 + 0.18 * y.float()
    ph = torch.rand(n, generator=g) * 2 * math.pi
    t = torch.arange(T).float()
    a = f[:, None] * t[None, :] + ph[:, None]
    x = torch.stack([torch.sin(a), torch.cos(a)], -1) + 0.35 * torch.randn(n, T, 2, generator=g)
    return x, y


def words(n, T=20, vocab=40, classes=3, seed=0):
    """Token sequences: each class plants its 2 marker tokens 3 times among background tokens."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randint(2 * classes + 1, vocab, (n, T), generator=g)
    for i in range(n):
        pos = torch.randperm(T, generator=g)[:3]
        x[i, pos] = 1 + 2 * y[i] + torch.randint(0, 2, (3,), generator=g)
    return x, y


def housing(n, d=10, seed=0):
    """A regression target with a nonlinear part; y has shape (n,) as a CSV column would."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = 2.0 * torch.tanh(x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3] + 0.1 * torch.randn(n, generator=g)
    return x, y


def loaders(x, y, xv, yv, bs=64, shuffle=True):
    from torch.utils.data import DataLoader, TensorDataset
    g = torch.Generator().manual_seed(0)
    return (DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=shuffle, generator=g),
            DataLoader(TensorDataset(xv, yv), batch_size=256))


def symptom(epoch, **vals):
    print("SYMPTOM epoch", epoch, " ".join(f"{k}={v:.4f}" for k, v in vals.items()), flush=True)


@torch.no_grad()
def evaluate(model, val_loader, loss_fn=torch.nn.functional.cross_entropy, classify=True):
    was = model.training
    model.eval()
    tot, n, correct = 0.0, 0, 0
    for xb, yb in val_loader:
        out = model(xb)
        tot += float(loss_fn(out, yb)) * len(xb)
        n += len(xb)
        if classify:
            correct += int((out.argmax(-1) == yb).sum())
    model.train(was)
    res = {"val_loss": tot / n}
    if classify:
        res["val_acc"] = correct / n
    return res


# ------------------------------------------------------------------------------------- adapters
def lightning_trainer(name, epochs, on_critical="warn", **kw):
    import lightning.pytorch as pl
    from atlas_callback import AtlasCallback, AtlasConfig

    class PrintMetrics(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            m = trainer.callback_metrics
            symptom(trainer.current_epoch, **{k: float(m[k]) for k in ("train_loss", "train_loss_epoch",
                                                                        "val_loss", "val_acc") if k in m})

    return pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[AtlasCallback(project=PROJECT, run_name=name, collector=ADDR, on_critical=on_critical,
                                 config=AtlasConfig(track_carbon=False)), PrintMetrics()],
        **kw,
    )


def observer(name, on_critical="warn", **hp):
    from atlas_callback import AtlasConfig, Observer
    return Observer(project=PROJECT, run_name=name, collector=ADDR, on_critical=on_critical,
                    config=AtlasConfig(track_carbon=False), hyperparameters=hp)


def tracker(name, on_critical="warn"):
    from atlas_callback import AtlasConfig, AtlasTracker
    return AtlasTracker(project=PROJECT, run_name=name, collector=ADDR, on_critical=on_critical,
                        config=AtlasConfig(track_carbon=False))


class LitClassifier:
    """Factory for a LightningModule around `net` with cross-entropy (or a given loss)."""

    @staticmethod
    def make(net, lr=1e-3, opt="adam", loss_fn=None, classify=True, wd=0.0):
        import lightning.pytorch as pl
        lf = loss_fn or torch.nn.functional.cross_entropy

        class Lit(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, x):
                return self.net(x)

            def training_step(self, batch, i):
                x, y = batch
                loss = lf(self(x), y)
                self.log("train_loss", loss, on_step=False, on_epoch=True)
                return loss

            def validation_step(self, batch, i):
                x, y = batch
                out = self(x)
                self.log("val_loss", lf(out, y))
                if classify:
                    self.log("val_acc", (out.argmax(-1) == y).float().mean())

            def configure_optimizers(self):
                params = [p for p in self.parameters() if p.requires_grad]
                if opt == "sgd":
                    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
                return torch.optim.Adam(params, lr=lr, weight_decay=wd)

        return Lit()


def accelerate_loop(name, model, optimizer, train_loader, val_loader, epochs, loss_fn, on_critical="warn",
                    clip=None, classify=True, config=None):
    """An Accelerate training loop as its docs write it, with AtlasTracker."""
    from accelerate import Accelerator
    trk = tracker(name, on_critical)
    acc = Accelerator(cpu=True, log_with=[trk])
    acc.init_trackers(PROJECT, config=config or {})
    model, optimizer, train_loader = acc.prepare(model, optimizer, train_loader)
    trk.watch(model)
    step = 0
    for epoch in range(epochs):
        model.train()
        tot, n = 0.0, 0
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            acc.backward(loss)
            if clip:
                acc.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            acc.log({"loss": loss.item()}, step=step)
            step += 1
            tot += loss.item() * len(xb)
            n += len(xb)
            if acc.check_trigger():
                break
        val = evaluate(model, val_loader, loss_fn=loss_fn, classify=classify)
        symptom(epoch, train_loss=tot / max(n, 1), **val)
        trk.epoch_end(val_metrics=val)
        if acc.check_trigger():
            print("STOPPED by Atlas", flush=True)
            break
    acc.end_training()
