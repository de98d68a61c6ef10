"""Per-step cost of Atlas's framework integrations against W&B's and MLflow's for the same framework, in one run.

    .venv/bin/pip install -e '.[dev,bench]'
    .venv/bin/python benchmarks/integrations.py [--rounds 3] [--steps 40] [--json out.json]

Two frameworks, each with its own configurations, interleaved round by round in one process (the machine is shared
and noisy; the order alternates each round):

- Hugging Face Trainer (a 2-layer BERT built from a config, random weights, no download; batch 16 x 32 tokens,
  `logging_steps=1` so every integration sees a log every step): no integration, an empty callback (the instrument's
  own cost, as in overhead.py), AtlasTransformersCallback, transformers' WandbCallback (WANDB_MODE=offline) and
  MLflowCallback (a local file store in a temp dir).
- Lightning (overhead.py's CNN, `self.log("train_loss", on_step=True)`, `log_every_n_steps=1`): no logger, an empty
  Logger (instrument), AtlasLogger (which adds AtlasCallback's capture itself), WandbLogger (offline), MLFlowLogger
  (a local file store).

A collector runs as a separate process on loopback. The cost accounting is overhead.py's (see its AtlasClock): the
integration's own CPU time on the training thread per step (`time.thread_time` around every hook the Trainer calls
on it, its module hooks included: Atlas's forward hooks and layer-health hooks), net of the instrument's cost per
timed call (measured on the empty callback/logger in the same rounds); the CPU time of the process's other threads
beyond the baseline's (Atlas's sender, MLflow's and W&B's client threads; W&B's service is a separate process and is
not counted); and the step-time ratio these imply. Wall-clock median step ratios are printed too, with the caveat
that on a shared machine they carry the noise of the other load.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "integrations"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

import overhead  # noqa: E402
from overhead import CNN, start_collector  # noqa: E402

warnings.filterwarnings("ignore")
for name in ("lightning.pytorch", "lightning.fabric", "lightning", "transformers", "mlflow", "wandb"):
    logging.getLogger(name).setLevel(logging.ERROR)

WARMUP = 5
CLOCK = overhead.CLOCK  # one clock: overhead.py's StepTimer (the Lightning timer) reads this one
BASELINE = "none"
CALIBRATION = "empty (instrument)"


def _timed_methods(obj: Any, names: list[str]) -> None:
    for name in names:
        fn = getattr(obj, name, None)
        if callable(fn):
            setattr(obj, name, CLOCK.timed(fn))


def _instrument_atlas_hooks() -> None:
    """Atlas's module hooks run inside the forward and backward: time them too (layer health, and the Transformers
    callback's forward hooks)."""
    from atlas_callback._layers import LayerHealthMonitor
    from atlas_callback._transformers import AtlasTransformersCallback

    for factory in ("_layer_hook", "_act_hook", "_grad_hook"):
        make = getattr(LayerHealthMonitor, factory)

        def patched(self, *args, _make=make):
            return CLOCK.timed(_make(self, *args))
        setattr(LayerHealthMonitor, factory, patched)

    original = AtlasTransformersCallback._hook

    def hook(self, model):
        pre, post = model.register_forward_pre_hook, model.register_forward_hook
        model.register_forward_pre_hook = lambda fn, **kw: pre(CLOCK.timed(fn), **kw)
        model.register_forward_hook = lambda fn, **kw: post(CLOCK.timed(fn), **kw)
        try:
            original(self, model)
        finally:
            del model.register_forward_pre_hook, model.register_forward_hook
    AtlasTransformersCallback._hook = hook


# ------------------------------------------------------------------------------------------ Transformers

class Tokens(Dataset):
    def __init__(self, n: int, seq_len: int = 32, vocab: int = 1000) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (n, seq_len), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}


class HFStepTimer:
    """Between consecutive `on_step_begin` calls: wall, process CPU, training-thread CPU, CLOCK seconds and calls."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, float, float, float, int]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return _noop
        raise AttributeError(name)

    def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
        self.starts.append((time.perf_counter(), time.process_time(), time.thread_time(), CLOCK.seconds,
                            CLOCK.calls))

    def times(self) -> list[tuple[float, ...]]:
        return [tuple(y - x for x, y in zip(a, b)) for a, b in zip(self.starts, self.starts[1:])][WARMUP:]


class HFEmpty:
    """The hooks AtlasTransformersCallback implements, empty: what the instrument costs per timed call."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return _noop
        raise AttributeError(name)

    def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_log(self, *args: Any, **kwargs: Any) -> None:
        pass


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


HF_HOOKS = ["on_train_begin", "on_epoch_begin", "on_step_begin", "on_pre_optimizer_step", "on_optimizer_step",
            "on_substep_end", "on_step_end", "on_log", "on_evaluate", "on_epoch_end", "on_train_end"]


def hf_fit(name: str, collector: str, steps: int, tmp: str) -> list[tuple[float, ...]]:
    from transformers import BertConfig, BertForSequenceClassification, PrinterCallback, Trainer, TrainingArguments

    timer = HFStepTimer()
    callbacks: list[Any] = [timer]
    finish = None
    if name == CALIBRATION:
        cb: Any = HFEmpty()
    elif name == "AtlasTransformersCallback":
        from atlas_callback import AtlasTransformersCallback

        cb = AtlasTransformersCallback(project="bench", run_name="hf", collector=collector)
    elif name == "WandbCallback (offline)":
        import wandb
        from transformers.integrations import WandbCallback

        cb, finish = WandbCallback(), wandb.finish
    elif name == "MLflowCallback (file store)":
        from transformers.integrations import MLflowCallback

        cb = MLflowCallback()
    else:
        cb = None
    if cb is not None:
        _timed_methods(cb, [h for h in HF_HOOKS if h in vars(type(cb)) or isinstance(cb, HFEmpty)])
        callbacks.append(cb)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=128,
                                                     max_position_embeddings=64, num_labels=2))
    args = TrainingArguments(output_dir=f"{tmp}/hf-out", max_steps=steps + WARMUP + 1, per_device_train_batch_size=16,
                             logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[],
                             disable_tqdm=True, use_cpu=True, dataloader_num_workers=0, seed=0,
                             run_name=f"bench-{name}")
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(16 * (steps + WARMUP + 2)), callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    try:
        trainer.train()
    finally:
        if finish is not None:
            finish()
    return timer.times()


HF_CONFIGS = [BASELINE, CALIBRATION, "AtlasTransformersCallback", "WandbCallback (offline)",
              "MLflowCallback (file store)"]

# ---------------------------------------------------------------------------------------------- Lightning


def lightning_fit(name: str, collector: str, steps: int, tmp: str) -> list[tuple[float, ...]]:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import Logger

    from overhead import StepTimer

    class EmptyLogger(Logger):
        name = "empty"
        version = "0"

        def log_metrics(self, metrics, step=None):  # type: ignore[override]
            pass

        def log_hyperparams(self, params, *args, **kwargs):  # type: ignore[override]
            pass

    timer = StepTimer()
    logger: Any = False
    finish = None
    if name == CALIBRATION:
        logger = EmptyLogger()
    elif name == "AtlasLogger":
        from atlas_callback import AtlasLogger

        logger = AtlasLogger(project="bench", run_name="lightning", collector=collector)
        CLOCK.instrument(logger.callback)  # the capture it adds to the Trainer (its hooks run on every step)
    elif name == "WandbLogger (offline)":
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        logger, finish = WandbLogger(project="bench", name="lightning", save_dir=tmp, offline=True), wandb.finish
    elif name == "MLFlowLogger (file store)":
        from lightning.pytorch.loggers import MLFlowLogger

        logger = MLFlowLogger(experiment_name="bench", run_name="lightning", tracking_uri=f"file:{tmp}/mlruns")
    if logger:
        CLOCK.instrument_logger(logger)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=logger, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                         limit_train_batches=steps + 1, log_every_n_steps=1)
    torch.manual_seed(0)
    try:
        trainer.fit(CNN(), DataLoader(CNN.data(32 * (steps + 1)), batch_size=32))
    finally:
        if finish is not None:
            finish()
    return timer.times()


LIGHTNING_CONFIGS = [BASELINE, CALIBRATION, "AtlasLogger", "WandbLogger (offline)", "MLFlowLogger (file store)"]

# ------------------------------------------------------------------------------------------------- report


def report(results: dict[str, dict[str, list[tuple[float, ...]]]]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    print("| framework | integration | median step (ms) | ratio | median CPU/step (ms) | ratio | on the training "
          "thread, net (us/step) | timed calls/step | other threads (us/step) | implied step ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for fw, per in results.items():
        base = per[BASELINE]
        base_med = statistics.median(t[0] for t in base)
        base_cpu = statistics.median(t[1] for t in base)
        base_main = statistics.fmean(t[2] for t in base)
        base_other = statistics.fmean(t[1] - t[2] for t in base)
        null = per[CALIBRATION]
        per_call = statistics.fmean(t[3] for t in null) / max(1e-9, statistics.fmean(t[4] for t in null))
        for name, times in per.items():
            med = statistics.median(t[0] for t in times)
            cpu = statistics.median(t[1] for t in times)
            row = {"median_ms": med * 1e3, "median_ratio": med / base_med, "cpu_median_ms": cpu * 1e3,
                   "cpu_ratio": cpu / base_cpu, "steps": len(times)}
            net = other = implied = calls = None
            if name not in (BASELINE, CALIBRATION):
                calls = statistics.fmean(t[4] for t in times)
                net = max(0.0, statistics.fmean(t[3] for t in times) - calls * per_call)
                other = statistics.fmean(t[1] - t[2] for t in times) - base_other
                implied = (base_main + net) / base_main
                row.update(main_net_us=net * 1e6, timed_calls=calls, other_threads_us=other * 1e6,
                           implied_ratio=implied)
            elif name == CALIBRATION:
                row.update(instrument_us_per_call=per_call * 1e6)
            summary[f"{fw}/{name}"] = row
            fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
            print(f"| {fw} | {name} | {med * 1e3:.2f} | {med / base_med:.3f}x | {cpu * 1e3:.2f} | "
                  f"{cpu / base_cpu:.3f}x | {fmt(None if net is None else net * 1e6, '.1f')} | "
                  f"{fmt(calls, '.2f')} | {fmt(None if other is None else other * 1e6, '.1f')} | "
                  f"{fmt(implied, '.4f')}{'x' if implied else ''} |")
    print()
    print("Atlas against the peers of the same framework (ratios of the net training-thread cost per step, and of the "
          "implied step-time overhead; < 1: Atlas costs less):")
    for fw, atlas, peers in (("transformers", "AtlasTransformersCallback", HF_CONFIGS[3:]),
                             ("lightning", "AtlasLogger", LIGHTNING_CONFIGS[3:])):
        a = summary.get(f"{fw}/{atlas}")
        if a is None:
            continue
        for peer in peers:
            p = summary.get(f"{fw}/{peer}")
            if p is None:
                continue
            cost = a["main_net_us"] / p["main_net_us"] if p["main_net_us"] else float("inf")
            over = (a["implied_ratio"] - 1) / (p["implied_ratio"] - 1) if p["implied_ratio"] > 1 else float("inf")
            print(f"  {fw}: {atlas} / {peer}: training-thread cost {cost:.3f}x, overhead {over:.3f}x "
                  f"({a['main_net_us']:.1f} vs {p['main_net_us']:.1f} us/step)")
            summary[f"{fw}/{atlas} vs {peer}"] = {"cost_ratio": cost, "overhead_ratio": over}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--only", choices=["transformers", "lightning"], help="one framework only")
    parser.add_argument("--json", type=pathlib.Path, help="also write the results here")
    ns = parser.parse_args()
    torch.set_num_threads(1)
    _instrument_atlas_hooks()
    home = tempfile.mkdtemp(prefix="atlas-bench-int-")
    os.environ["ATLAS_HOME"] = home
    os.environ.update(WANDB_MODE="offline", WANDB_DIR=home, WANDB_SILENT="true", WANDB_CONSOLE="off",
                      WANDB_PROJECT="bench", MLFLOW_TRACKING_URI=f"file:{home}/mlruns-hf",
                      MLFLOW_EXPERIMENT_NAME="bench", MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="false",
                      MLFLOW_ALLOW_FILE_STORE="true",  # the brief: a local file store (MLflow 3 wants an opt-in)
                      DISABLE_MLFLOW_INTEGRATION="FALSE")
    import importlib.util

    frameworks = {"transformers": (hf_fit, HF_CONFIGS), "lightning": (lightning_fit, LIGHTNING_CONFIGS)}
    if ns.only:
        frameworks = {ns.only: frameworks[ns.only]}
    missing = [m for m in ("wandb", "mlflow", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"benchmarks/integrations.py needs {', '.join(missing)}: pip install -e '.[dev,bench]'")
    proc, address = start_collector(f"sqlite:///{home}/bench.db")
    results: dict[str, dict[str, list[tuple[float, ...]]]] = {}
    t0 = time.perf_counter()
    try:
        for fw, (fit, names) in frameworks.items():
            per = results.setdefault(fw, {name: [] for name in names})
            for name in names:  # one untimed cold fit each: one-time costs (imports, W&B's service) land here
                fit(name, address, min(ns.steps, 10), home)
            for r in range(ns.rounds):
                for name in (names if r % 2 == 0 else names[::-1]):
                    per[name].extend(fit(name, address, ns.steps, home))
    finally:
        proc.terminate()
        proc.wait(20)
    import transformers
    import lightning

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, lightning "
          f"{lightning.__version__}, 1 torch thread; {ns.rounds} interleaved rounds x {ns.steps} steps; "
          f"{time.perf_counter() - t0:.0f} s\n")
    summary = report(results)
    if ns.json:
        ns.json.parent.mkdir(parents=True, exist_ok=True)
        ns.json.write_text(json.dumps({"rounds": ns.rounds, "steps": ns.steps, "results": summary}, indent=2))


if __name__ == "__main__":
    main()
