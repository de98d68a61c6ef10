"""Shared synthetic data + a plain printing callback (my own symptom record, independent of Atlas)."""
import os, math, torch
import lightning.pytorch as pl

ADDR = os.environ.get("ATLAS_ADDR", "127.0.0.1:34061")
SUFFIX = os.environ.get("RUN_SUFFIX", "")


def images(n, classes=4, seed=0, signal=0.5):
    """Synthetic 3x32x32 images: a smooth class template plus noise; roughly zero mean, unit std."""
    g = torch.Generator().manual_seed(seed)
    tg = torch.Generator().manual_seed(1234)  # templates fixed across splits
    base = torch.randn(classes, 3, 8, 8, generator=tg)
    templates = torch.nn.functional.interpolate(base, size=(32, 32), mode="bilinear", align_corners=False)
    y = torch.randint(0, classes, (n,), generator=g)
    x = signal * templates[y] + torch.randn(n, 3, 32, 32, generator=g)
    return x, y


def sequences(n, T=30, classes=3, seed=0):
    """Noisy sines; the class is the frequency. Shape (n, T, 1)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    freq = 0.15 + 0.2 * y.float()
    phase = torch.rand(n, generator=g) * 2 * math.pi
    t = torch.arange(T).float()
    x = torch.sin(freq[:, None] * t[None, :] + phase[:, None]) + 0.3 * torch.randn(n, T, generator=g)
    return x.unsqueeze(-1), y


def tokens(n, T=24, vocab=50, classes=3, seed=0):
    """Token sequences; each class plants its own 3 signal tokens 4 times among background tokens."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randint(classes * 3 + 1, vocab, (n, T), generator=g)
    for i in range(n):
        pos = torch.randperm(T, generator=g)[:4]
        sig = 1 + 3 * y[i] + torch.randint(0, 3, (4,), generator=g)
        x[i, pos] = sig
    return x, y


def tabular(n, d=20, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    cg = torch.Generator().manual_seed(99)
    centers = torch.randn(classes, d, generator=cg) * 1.2
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, d, generator=g)
    return x, y


def regression(n, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.sin(x[:, 0]) + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] + 0.1 * torch.randn(n, generator=g)
    return x, y.unsqueeze(1)


class PrintMetrics(pl.Callback):
    """Prints what a person would look at: epoch train loss, val loss, val acc."""

    def on_train_epoch_end(self, trainer, pl_module):
        m = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch}"]
        for k in ("train_loss", "train_loss_epoch", "val_loss", "val_acc"):
            if k in m:
                parts.append(f"{k}={float(m[k]):.4f}")
        print("SYMPTOM", " ".join(parts), flush=True)


def trainer(name, epochs, extra_callbacks=(), **kw):
    from atlas_callback import AtlasCallback, AtlasConfig
    return pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[AtlasCallback(project="heldout", run_name=name + SUFFIX, collector=ADDR,
                                 config=AtlasConfig(track_carbon=False)), PrintMetrics(), *extra_callbacks],
        **kw,
    )
