"""Step-time overhead of AtlasCallback and of its peers on a small CNN and a small transformer (Lightning, CPU).

    bash benchmarks/peers_env.sh        # once: torch (CPU), Lightning, mlflow, wandb, tensorboard, Atlas
    benchmarks/.peers-venv/bin/python benchmarks/overhead.py [--rounds 5] [--steps 60]

Configurations are interleaved round by round in one process (the machine is shared and noisy):
no logger, an empty callback (it calibrates the cost accounting's instrument, see NullCallback), AtlasCallback with
the default config, AtlasCallback with every channel on (layer
health every 10 steps, gradient norm every 10 steps, the profiler on step 1 of each fit), and the
peers' Lightning loggers: CSVLogger, TensorBoardLogger, MLFlowLogger (SQLite store) and WandbLogger
(offline). Every configuration logs the same thing: the module calls `self.log("train_loss", loss,
on_step=True)` each step and the Trainer has `log_every_n_steps=1`. A collector runs as a separate
process on loopback, as it would on a GPU box. The step time is the time between consecutive
`on_train_batch_start` calls, so it includes every callback's and logger's work; the first 5 steps of
each fit are warm-up. Before the timed rounds every configuration runs one untimed fit per model, so that one-time
costs of the process (imports, CodeCarbon's first hardware detection, wandb's service) are not charged to whichever
configuration happens to come first; that cold fit's wall time is printed separately, as the one-time cost. Prints a Markdown table of median and mean step times and their ratios to the
run without a logger, and the same for this process's CPU time per step (all its threads: Atlas's sender
included, the collector and wandb's service process not), which the other load on a shared machine
disturbs much less than wall time; the mean includes the sampled steps (layer health, gradient norm). Peers that are not installed (e.g. in the project's own venv) are skipped.
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
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=True)
        return loss

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
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        self.log("train_loss", loss, on_step=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)

    @staticmethod
    def data(n: int) -> TensorDataset:
        return TensorDataset(torch.randint(0, 1000, (n, 33)))


class AtlasClock:
    """CPU time the training thread spends inside the logger under test, by `time.thread_time` (this thread's CPU
    only, so neither preemption nor the other load on the machine enters). Atlas: its Lightning hooks and its
    layer-health module hooks (the only Atlas code that runs on the training thread). A peer: the methods Lightning
    calls on its logger (`log_metrics`, `log_hyperparams`, `log_graph`, `save`, `finalize`); the `self.log`
    bookkeeping that precedes them is Lightning's and the same in every configuration, the no-logger one included."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def timed(self, fn):
        def wrapper(*args, **kwargs):
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.thread_time() - t
                self.calls += 1
        return wrapper

    def instrument(self, callback: pl.Callback) -> None:
        for name in dir(pl.Callback):
            if (name.startswith("on_") or name in ("setup", "teardown")) and name in vars(type(callback)):
                setattr(callback, name, self.timed(getattr(callback, name)))

    def instrument_logger(self, logger) -> None:
        for name in ("log_metrics", "log_hyperparams", "log_graph", "save", "finalize"):
            if hasattr(logger, name):
                setattr(logger, name, self.timed(getattr(logger, name)))


CLOCK = AtlasClock()


def _instrument_layer_hooks() -> None:
    from atlas_callback._layers import LayerHealthMonitor

    for factory in ("_layer_hook", "_act_hook", "_grad_hook"):
        make = getattr(LayerHealthMonitor, factory)

        def patched(self, *args, _make=make):
            return CLOCK.timed(_make(self, *args))
        setattr(LayerHealthMonitor, factory, patched)


class NullCallback(pl.Callback):
    """The instrument's own cost: the per-step hooks AtlasCallback overrides, empty. Lightning calls every hook of
    every callback, overridden or not (the base class's are empty methods too), so an empty override adds nothing to
    the step: what AtlasClock measures for it is the timing itself (two `thread_time` calls and a wrapper frame per
    timed call, a few microseconds on this machine's cold path after a step)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        pass

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        pass

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pass


class StepTimer(pl.Callback):
    """Between consecutive batch starts: wall time, this process's CPU time (every thread), the training thread's
    CPU time, the training thread's CPU time inside the logger (AtlasClock) and the number of timed calls."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, float, float, float, int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append((time.perf_counter(), time.process_time(), time.thread_time(), CLOCK.seconds,
                            CLOCK.calls))

    def times(self) -> list[tuple[float, ...]]:
        return [tuple(y - x for x, y in zip(a, b)) for a, b in zip(self.starts, self.starts[1:])][WARMUP:]


ATLAS = {
    "AtlasCallback default": AtlasConfig(),
    "AtlasCallback all channels": AtlasConfig(track_profiler=True),
    "AtlasCallback default, no setup facts": AtlasConfig(track_facts=False),  # what the facts channel costs
}
BASELINE = "no logger"
CALIBRATION = "empty callback (instrument)"


def _csv(tmp: str, tag: str):
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=tmp, name=tag), None


def _tensorboard(tmp: str, tag: str):
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=tmp, name=tag), None


def _mlflow(tmp: str, tag: str):
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name="bench", run_name=tag, tracking_uri=f"sqlite:///{tmp}/mlflow.db",
                        artifact_location=f"{tmp}/mlflow-artifacts"), None


def _wandb(tmp: str, tag: str):
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(project="bench", name=tag, save_dir=tmp, offline=True), wandb.finish


PEERS = {"CSVLogger": (_csv, "lightning"), "TensorBoardLogger": (_tensorboard, "tensorboard"),
         "MLFlowLogger (SQLite)": (_mlflow, "mlflow"), "WandbLogger (offline)": (_wandb, "wandb")}


def configurations() -> list[str]:
    import importlib.util

    names = [BASELINE, CALIBRATION, *ATLAS]
    for name, (_, module) in PEERS.items():
        if importlib.util.find_spec(module) is None:
            print(f"skipping {name}: `{module}` is not installed here (run benchmarks/peers_env.sh)")
        else:
            names.append(name)
    return names


def fit_once(model_cls, name: str, collector: str, steps: int, tmp: str) -> list[tuple[float, ...]]:
    """Step times of one fit of `steps` steps (after warm-up)."""
    timer = StepTimer()
    callbacks: list[pl.Callback] = [timer]
    logger, finish = False, None
    if name in ATLAS or name == CALIBRATION:
        callback = NullCallback() if name == CALIBRATION else AtlasCallback(
            project="bench", run_name=model_cls.__name__, collector=collector, config=ATLAS[name])
        CLOCK.instrument(callback)
        callbacks.append(callback)
    elif name in PEERS:
        logger, finish = PEERS[name][0](tmp, model_cls.__name__)
        CLOCK.instrument_logger(logger)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=logger, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
                         limit_train_batches=steps + 1, log_every_n_steps=1)
    torch.manual_seed(0)
    try:
        trainer.fit(model_cls(), DataLoader(model_cls.data(32 * (steps + 1)), batch_size=32))
    finally:
        if finish is not None:
            finish()
    return timer.times()


def start_collector(db: str) -> tuple[subprocess.Popen[str], str]:
    exe = pathlib.Path(sys.executable).parent / "atlas-collector"
    proc = subprocess.Popen([str(exe), "--listen", "127.0.0.1:0", "--db", db, "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    return proc, line.removeprefix("listening on ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    ns = parser.parse_args()
    torch.set_num_threads(1)
    _instrument_layer_hooks()
    home = tempfile.mkdtemp(prefix="atlas-bench-")
    os.environ["ATLAS_HOME"] = home
    os.environ.update(WANDB_MODE="offline", WANDB_DIR=home, WANDB_SILENT="true", WANDB_CONSOLE="off",
                      MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="false")
    names = configurations()
    proc, address = start_collector(f"sqlite:///{home}/bench.db")
    results: dict[str, dict[str, list[tuple[float, ...]]]] = {}
    cold: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    try:
        for model_cls in (CNN, Transformer):
            per = results.setdefault(model_cls.__name__, {name: [] for name in names})
            for name in names:  # one untimed cold fit each: the process's one-time costs land here
                c0 = time.perf_counter()
                fit_once(model_cls, name, address, ns.steps, home)
                cold.setdefault(model_cls.__name__, {})[name] = time.perf_counter() - c0
            for r in range(ns.rounds):
                order = names if r % 2 == 0 else names[::-1]  # alternate the order: no slot is always first
                for name in order:
                    per[name].extend(fit_once(model_cls, name, address, ns.steps, home))
    finally:
        proc.terminate()
        proc.wait(20)
    wall = time.perf_counter() - t0
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch {torch.__version__}, lightning {pl.__version__}, "
          f"1 torch thread; {ns.rounds} interleaved rounds x {ns.steps} steps; {wall:.0f} s\n")
    print("| model | configuration | median step (ms) | ratio | mean step (ms) | ratio | median CPU/step (ms) | ratio "
          "| mean CPU/step (ms) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    summary: dict[str, dict[str, float]] = {}
    for model, per in results.items():
        base_med = statistics.median(w for w, *_ in per[BASELINE])
        base_mean = statistics.fmean(w for w, *_ in per[BASELINE])
        base_cpu = statistics.median(c for _, c, *_ in per[BASELINE])
        base_cpu_mean = statistics.fmean(c for _, c, *_ in per[BASELINE])
        for name, times in per.items():
            wall_s = [w for w, *_ in times]
            med, mean = statistics.median(wall_s), statistics.fmean(wall_s)
            cpu, cpu_mean = statistics.median(c for _, c, *_ in times), statistics.fmean(c for _, c, *_ in times)
            summary[f"{model}/{name}"] = {"median_ms": med * 1e3, "median_ratio": med / base_med,
                                          "mean_ms": mean * 1e3, "mean_ratio": mean / base_mean,
                                          "cpu_median_ms": cpu * 1e3, "cpu_ratio": cpu / base_cpu,
                                          "cpu_mean_ms": cpu_mean * 1e3, "cpu_mean_ratio": cpu_mean / base_cpu_mean,
                                          "steps": len(times)}
            print(f"| {model} | {name} | {med * 1e3:.2f} | {med / base_med:.3f}x | {mean * 1e3:.2f} | "
                  f"{mean / base_mean:.3f}x | {cpu * 1e3:.2f} | {cpu / base_cpu:.3f}x | {cpu_mean * 1e3:.2f} | "
                  f"{cpu_mean / base_cpu_mean:.3f}x |")
    print()
    print("Cost accounting (CPU time, so the machine's other load does not enter): the logger's own work on the "
          "training thread per step (mean over every step, sampled steps included; see AtlasClock), as measured and "
          "net of the instrument (each timed call costs the timing itself: measured in the same rounds on an empty "
          f"callback, '{CALIBRATION}', and subtracted per timed call), the CPU time of "
          "the process's other threads per step beyond the no-logger run's (Atlas's sender, samplers and "
          "CodeCarbon, gRPC's threads; TensorBoard's writer thread; W&B's service is a separate process and is not "
          "counted), and the step-time ratio these imply: (no-logger training-thread CPU + the logger's net "
          "training-thread CPU) / no-logger training-thread CPU. The other threads run on the second core.")
    print()
    print("| model | configuration | logger on the training thread, measured (us/step) | timed calls per step "
          "| net of the instrument (us/step) | other threads, beyond no logger (us/step) | implied step ratio |")
    print("|---|---|---|---|---|---|---|")
    for model, per in results.items():
        base_main = statistics.fmean(t[2] for t in per[BASELINE])
        base_other = statistics.fmean(t[1] - t[2] for t in per[BASELINE])
        null = per[CALIBRATION]
        per_call = statistics.fmean(t[3] for t in null) / statistics.fmean(t[4] for t in null)
        summary[f"{model}/{CALIBRATION}"].update(instrument_us_per_call=per_call * 1e6)
        print(f"| {model} | {CALIBRATION} | {statistics.fmean(t[3] for t in null) * 1e6:.1f} | "
              f"{statistics.fmean(t[4] for t in null):.2f} | ({per_call * 1e6:.2f} per call) | | |")
        for name in per:
            if name in (BASELINE, CALIBRATION):
                continue
            times = per[name]
            measured = statistics.fmean(t[3] for t in times)
            calls = statistics.fmean(t[4] for t in times)
            net = max(0.0, measured - calls * per_call)
            other = statistics.fmean(t[1] - t[2] for t in times) - base_other
            implied = (base_main + net) / base_main
            summary[f"{model}/{name}"].update(logger_main_measured_us=measured * 1e6, timed_calls_per_step=calls,
                                              logger_main_us=net * 1e6, other_threads_us=other * 1e6,
                                              implied_ratio=implied)
            print(f"| {model} | {name} | {measured * 1e6:.1f} | {calls:.2f} | {net * 1e6:.1f} | {other * 1e6:.1f} | "
                  f"{implied:.4f}x |")
    print()
    print("one-time cost: wall time of the first (untimed) fit of each configuration, seconds")
    for model, fits in cold.items():
        print(f"  {model}: " + ", ".join(f"{name} {secs:.2f}" for name, secs in fits.items()))
    print()
    for measure, key in (("wall-clock median step", "median_ratio"), ("cost accounting", "implied_ratio")):
        print(f"verdicts on the {measure}:")
        for model, per in results.items():
            ratio = {name: summary[f"{model}/{name}"][key] for name in per if key in summary[f"{model}/{name}"]}
            peers = {n: ratio[n] for n in per if n in PEERS}
            for name, target in (("AtlasCallback default", 1.01), ("AtlasCallback all channels", 1.10)):
                verdict = "met" if ratio[name] <= target else "MISSED"
                above = [n for n, p in peers.items() if ratio[name] >= p]
                print(f"  {model}: {name} {ratio[name]:.4f}x (target <= {target:.2f}x: {verdict}; below every "
                      f"peer: {'yes' if peers and not above else 'no, not below ' + ', '.join(above) if peers else 'n/a'})")
    if ns.json:
        ns.json.parent.mkdir(parents=True, exist_ok=True)
        ns.json.write_text(json.dumps({"rounds": ns.rounds, "steps": ns.steps, "wall_s": wall,
                                       "cold_fit_s": cold, "results": summary}, indent=2))


if __name__ == "__main__":
    main()
