"""Training time when the collector is unreachable for the whole run, next to a reachable one and none.

    .venv/bin/python benchmarks/unreachable.py [--rounds 3] [--epochs 3]

A small Lightning MLP (1 torch thread) is fitted, interleaved round by round: without Atlas; with
AtlasCallback and a live collector (a separate process on loopback); with AtlasCallback pointed at a port
where nothing listens (every record goes to the spool, the sender retries in the background). Reports the
median wall time of `trainer.fit` and of the training steps, so a blocked trainer would show.
"""
from __future__ import annotations

import argparse
import logging
import os
import pathlib
import socket
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
logging.getLogger("atlas_callback").setLevel(logging.ERROR)


class MLP(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 10))

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class StepClock(pl.Callback):
    def __init__(self) -> None:
        self.steps: list[float] = []
        self._t = 0.0

    def on_train_batch_start(self, *args) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.steps.append(time.perf_counter() - self._t)


def fit(collector: str | None, epochs: int) -> tuple[float, float]:
    clock = StepClock()
    callbacks: list[pl.Callback] = [clock]
    if collector is not None:
        callbacks.append(AtlasCallback(project="bench", run_name="unreachable", collector=collector,
                                       config=AtlasConfig(flush_timeout_s=2.0)))
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
    data = TensorDataset(torch.randn(4096, 32), torch.randint(0, 10, (4096,)))
    t0 = time.perf_counter()
    trainer.fit(MLP(), DataLoader(data, batch_size=32))
    return time.perf_counter() - t0, statistics.median(clock.steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    ns = parser.parse_args()
    torch.set_num_threads(1)
    home = tempfile.mkdtemp(prefix="atlas-unreachable-")
    os.environ["ATLAS_HOME"] = home
    exe = pathlib.Path(sys.executable).parent / "atlas-collector"
    proc = subprocess.Popen([str(exe), "--listen", "127.0.0.1:0", "--db", f"sqlite:///{home}/c.db",
                             "--log-level", "WARNING"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    live = (proc.stdout.readline() if proc.stdout else "").strip().removeprefix("listening on ")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    configs = {"no Atlas": None, "collector reachable": live, "collector unreachable": dead}
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in configs}
    try:
        for _ in range(ns.rounds):
            for name, target in configs.items():
                results[name].append(fit(target, ns.epochs))
    finally:
        proc.terminate()
        proc.wait(20)
    print(f"{ns.rounds} interleaved rounds x {ns.epochs} epochs x 128 steps, 1 torch thread\n")
    print("| configuration | fit wall time, median (s) | median step (ms) |")
    print("|---|---|---|")
    for name, rows in results.items():
        print(f"| {name} | {statistics.median(r[0] for r in rows):.2f} | "
              f"{statistics.median(r[1] for r in rows) * 1e3:.3f} |")
    spooled = sorted(pathlib.Path(home, "spool").rglob("*.log"))
    print(f"\nspool files left for `atlas sync` by the unreachable runs: {len(spooled)}")


if __name__ == "__main__":
    main()
