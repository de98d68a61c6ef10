"""Step-time overhead of AtlasCallback on a small CNN and a small transformer (Lightning, CPU).

    .venv/bin/python benchmarks/overhead.py [--rounds 6] [--steps 80]

Configurations are interleaved round by round in one process (the machine is shared and noisy):
no callback, AtlasCallback with the default config, and AtlasCallback with every channel on (layer
health every 10 steps, gradient norm every 10 steps, the profiler on step 1 of each fit). A collector
runs as a separate process on loopback, as it would on a GPU box. The step time is the time between
consecutive `on_train_batch_start` calls, so it includes every callback's work; the first 5 steps of
each fit are warm-up. Prints a Markdown table of median and mean step times and their ratios to the
run without a callback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from atlas_callback import AtlasCallback, AtlasConfig

warnings.filterwarnings("ignore")
for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(name).setLevel(logging.ERROR)

WARMUP = 5


class CNN(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    @staticmethod
    def data(n: int) -> TensorDataset:
        return TensorDataset(torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,)))


class Transformer(pl.LightningModule):
    def __init__(self, vocab: int = 1000, d: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 128, batch_first=True), 2)
        self.head = nn.Linear(d, vocab)

    def training_step(self, batch, _):
        (tokens,) = batch
        logits = self.head(self.encoder(self.embed(tokens[:, :-1])))
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)

    @staticmethod
    def data(n: int) -> TensorDataset:
        return TensorDataset(torch.randint(0, 1000, (n, 33)))


class StepTimer(pl.Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def times(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])][WARMUP:]


CONFIGS = {
    "no callback": None,
    "AtlasCallback default": AtlasConfig(),
    "AtlasCallback all channels": AtlasConfig(track_profiler=True),
}


def fit_once(model_cls, config, collector: str, steps: int) -> list[float]:
    timer = StepTimer()
    callbacks = [timer]
    if config is not None:
        callbacks.append(AtlasCallback(project="bench", run_name=model_cls.__name__, collector=collector,
                                       config=config))
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
                         limit_train_batches=steps + 1)
    torch.manual_seed(0)
    trainer.fit(model_cls(), DataLoader(model_cls.data(32 * (steps + 1)), batch_size=32))
    return timer.times()


def start_collector(db: str) -> tuple[subprocess.Popen[str], str]:
    exe = pathlib.Path(sys.executable).parent / "atlas-collector"
    proc = subprocess.Popen([str(exe), "--listen", "127.0.0.1:0", "--db", db, "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    return proc, line.removeprefix("listening on ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    ns = parser.parse_args()
    torch.set_num_threads(1)
    home = tempfile.mkdtemp(prefix="atlas-bench-")
    os.environ["ATLAS_HOME"] = home
    proc, address = start_collector(f"sqlite:///{home}/bench.db")
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for model_cls in (CNN, Transformer):
            per = results.setdefault(model_cls.__name__, {name: [] for name in CONFIGS})
            for _ in range(ns.rounds):
                for name, config in CONFIGS.items():
                    per[name].extend(fit_once(model_cls, config, address, ns.steps))
    finally:
        proc.terminate()
        proc.wait(20)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch {torch.__version__}, 1 torch thread; "
          f"{ns.rounds} interleaved rounds x {ns.steps} steps\n")
    print("| model | configuration | median step (ms) | ratio | mean step (ms) | ratio |")
    print("|---|---|---|---|---|---|")
    summary = {}
    for model, per in results.items():
        base_med = statistics.median(per["no callback"])
        base_mean = statistics.fmean(per["no callback"])
        for name, times in per.items():
            med, mean = statistics.median(times), statistics.fmean(times)
            summary[f"{model}/{name}"] = {"median_ms": med * 1e3, "median_ratio": med / base_med,
                                          "mean_ms": mean * 1e3, "mean_ratio": mean / base_mean}
            print(f"| {model} | {name} | {med * 1e3:.2f} | {med / base_med:.3f}x | {mean * 1e3:.2f} | "
                  f"{mean / base_mean:.3f}x |")
    if ns.json:
        ns.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
