#!/usr/bin/env python3
"""Exercise every GPU path of Atlas on a real CUDA device and print what was captured.

What it does, in one process:
  1. prints the environment: Python, torch, CUDA, the GPU (name, capability, memory), the NVIDIA driver and
     NVML readings, and the versions of the packages Atlas leans on;
  2. starts an in-process collector (`atlas_collector.run_server`, SQLite under a temporary directory);
  3. trains three short real runs on the GPU, every channel on (NVML GPU, CUDA memory, CodeCarbon energy,
     layer health, profiler, gradients, architecture, logs):
       - Lightning (`AtlasCallback`): an MLP on synthetic, learnable data, 3 epochs;
       - a plain loop (`Observer`): a small CNN, 2 epochs;
       - Accelerate (`AtlasTracker`): a small MLP, 2 epochs;
     and, around the Lightning run, reads NVML's own energy counter to compare with CodeCarbon's GPU energy;
  4. reads every run back through the collector's QueryService (the same calls `atlas` makes) and prints,
     per epoch: the NVML GPU records per device (utilisation %, memory used / total MB, power W, temperature C),
     the CUDA memory fields (allocated / reserved / peak MB), CodeCarbon's energy split (GPU / CPU / RAM kWh)
     and CO2, the number of layer-health rows, the profiler's device time; then the run's device info, step and
     epoch counts, and the issues the diagnostics raised (a critical issue on these healthy runs is a bug);
  5. runs the CUDA-only tests of the suite (`pytest -k cuda`), then prints one line per check (ok / FAIL)
     and exits 1 when a check failed, 0 otherwise.

Without CUDA (any developer machine) it runs the same steps on the CPU with small models, expects the GPU
channel to say "unavailable" (no GPU records, no CUDA memory fields) and says so; the CUDA tests are skipped.

Everything printed also goes to a log file: --log PATH, else $OUT/gpu_check.log when $OUT is set.

    .venv/bin/python scripts/gpu_check.py                     # here: CPU, about a minute
    python3 scripts/gpu_check.py --epochs 3 --steps 150       # on a GPU machine (the defaults there)

On a machine where the repo is not installed, put the repo root and proto/ on PYTHONPATH (the package
`atlas_proto` lives in proto/), plus wherever missing dependencies were installed. A GPU machine whose Python has
torch, Lightning, Accelerate, grpcio, psutil, nvidia-ml-py, numpy, pandas, requests, click, rich and pytest but not
the rest can be given the rest as py3.12 wheels in an (ignored) folder .whl/: protobuf 7.36.2, grpcio 1.85.1,
grpcio-health-checking 1.85.1, sqlalchemy 2.1.9, alembic 1.20.1, mako, opentelemetry-api/-sdk 1.45.2,
opentelemetry-semantic-conventions 0.66b2, codecarbon 3.3.2 with pycountry, rapidfuzz, py-cpuinfo, arrow, tzdata,
pydantic, pydantic-core, annotated-types, typing-inspection, typing-extensions (and, never imported by the tracker,
authlib, joserfc, questionary, prompt_toolkit, wcwidth); then:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:$PWD:$PWD/proto python3 scripts/gpu_check.py
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable

ROOT = pathlib.Path(__file__).resolve().parent.parent
for _p in (ROOT / "proto", ROOT):  # runnable from a bare checkout too
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

CHECKS: list[tuple[str, str, str]] = []  # (name, "ok" | "FAIL" | "skip", detail)


def check(name: str, ok: bool | None, detail: str = "") -> None:
    """Record one expectation: True ok, False FAIL, None skipped (not applicable here)."""
    status = "skip" if ok is None else ("ok" if ok else "FAIL")
    CHECKS.append((name, status, detail))
    print(f"  [{status}] {name}{': ' + detail if detail else ''}")


def section(title: str) -> None:
    print(f"\n{'=' * 100}\n== {title}\n{'=' * 100}", flush=True)


class _Tee:
    def __init__(self, stream: Any, log: Any) -> None:
        self.stream, self.log = stream, log

    def write(self, data: str) -> int:
        self.stream.write(data)
        try:
            self.log.write(data)
        except ValueError:  # closed at exit
            pass
        return len(data)

    def flush(self) -> None:
        self.stream.flush()
        with contextlib.suppress(ValueError):
            self.log.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()


def phase(name: str, fn: Callable[[], Any]) -> Any:
    """Run one phase; an exception is printed with its traceback and recorded as a failed check."""
    t0 = time.perf_counter()
    try:
        out = fn()
    except BaseException as exc:  # noqa: BLE001 - report and go on with the next phase
        if isinstance(exc, KeyboardInterrupt):
            raise
        print(f"!! phase {name} raised {type(exc).__name__}: {exc}")
        traceback.print_exc(file=sys.stdout)
        check(f"{name} ran", False, f"{type(exc).__name__}: {exc}")
        return None
    print(f"-- phase {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def opt(msg: Any, field: str) -> float | None:
    return getattr(msg, field) if msg.HasField(field) else None


# ------------------------------------------------------------------------------------------ environment


def nvml_readings() -> list[dict[str, Any]]:
    """NVML's own view of each device, read directly (not through Atlas); [] without NVML."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001
        return []
    out = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            row: dict[str, Any] = {"index": i}
            for key, read in (
                ("name", lambda: pynvml.nvmlDeviceGetName(h)),
                ("util_pct", lambda: pynvml.nvmlDeviceGetUtilizationRates(h).gpu),
                ("mem_used_mb", lambda: pynvml.nvmlDeviceGetMemoryInfo(h).used / 2**20),
                ("mem_total_mb", lambda: pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**20),
                ("power_w", lambda: pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
                ("power_limit_w", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0),
                ("temp_c", lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
                ("energy_mj", lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h)),
                ("sm_clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)),
            ):
                try:
                    value = read()
                    row[key] = value.decode() if isinstance(value, bytes) else value
                except Exception as exc:  # noqa: BLE001 - unsupported readings are part of the report
                    row[key] = f"n/a ({type(exc).__name__})"
            out.append(row)
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return out


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"cuda": torch.cuda.is_available()}
    print(f"python      {sys.version.split()[0]} ({sys.executable}) on {platform.platform()}")
    print(f"torch       {torch.__version__}, built for CUDA {torch.version.cuda}, cuda available: {info['cuda']}")
    versions = {}
    for mod in ("lightning", "pytorch_lightning", "accelerate", "codecarbon", "pynvml", "google.protobuf", "grpc",
                "sqlalchemy", "alembic", "numpy", "pandas", "psutil"):
        try:
            m = __import__(mod, fromlist=["__version__"])
            versions[mod] = getattr(m, "__version__", "?")
        except Exception as exc:  # noqa: BLE001
            versions[mod] = f"MISSING ({type(exc).__name__}: {exc})"
    try:
        from importlib.metadata import version
        versions["nvidia-ml-py"] = version("nvidia-ml-py")
    except Exception:  # noqa: BLE001
        versions["nvidia-ml-py"] = "?"
    print("packages    " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if info["cuda"]:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            print(f"cuda:{i}      {p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.1f} GiB, "
                  f"{p.multi_processor_count} SMs")
        info["name"] = torch.cuda.get_device_name(0)
    try:
        import pynvml

        pynvml.nvmlInit()
        drv = pynvml.nvmlSystemGetDriverVersion()
        nvml_v = pynvml.nvmlSystemGetNVMLVersion()
        cuda_drv = pynvml.nvmlSystemGetCudaDriverVersion()
        info["driver"] = drv.decode() if isinstance(drv, bytes) else drv
        print(f"driver      {info['driver']}, NVML {nvml_v}, CUDA driver API {cuda_drv // 1000}.{cuda_drv % 1000 // 10}")
        pynvml.nvmlShutdown()
    except Exception as exc:  # noqa: BLE001
        print(f"driver      NVML unavailable ({type(exc).__name__}: {exc})")
    for row in nvml_readings():
        print(f"nvml idle   {row}")
    return info


# ---------------------------------------------------------------------------------------------- runs


def teacher_data(n: int, features: int, classes: int, seed: int = 0) -> Any:
    """Synthetic data a model can learn: labels from a fixed random linear teacher."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, classes, generator=g)
    return x, (x @ w).argmax(1)


def batch_loader(x: Any, y: Any, batch: int, shuffle: bool) -> Any:
    """One fancy index per batch (no per-sample collate): the GPU, not the loader, sets the pace."""
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

    ds = TensorDataset(x, y)
    base = RandomSampler(ds, generator=torch.Generator().manual_seed(1)) if shuffle else SequentialSampler(ds)
    return DataLoader(ds, sampler=BatchSampler(base, batch, drop_last=True), batch_size=None, pin_memory=x.is_pinned()
                      or torch.cuda.is_available())


def wait_for_carbon(core: Any, timeout: float = 30.0) -> str:
    """CodeCarbon starts on a thread (hardware detection takes seconds); wait for its first measurement so every
    epoch carries one. Returns what happened."""
    carbon = getattr(core, "_carbon", None)
    if carbon is None:
        return "carbon channel off"
    t0 = time.monotonic()
    while carbon.available and carbon._latest is None and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    state = "ready" if carbon._latest is not None else ("unavailable" if not carbon.available else "not ready")
    return f"CodeCarbon {state} after {time.monotonic() - t0:.1f} s"


def atlas_config(args: argparse.Namespace) -> Any:
    from atlas_callback import AtlasConfig

    return AtlasConfig(track_gpu=True, track_carbon=True, track_layer_health=True, track_profiler=True,
                       profile_every_epochs=1, layer_health_every=args.layer_every, layer_health_budget=1.0,
                       grad_norm_every=10, carbon_country="IRL", flush_timeout_s=30.0)


def lightning_run(address: str, args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    import lightning.pytorch as pl
    import torch
    from torch import nn

    from atlas_callback import AtlasCallback

    class MLP(pl.LightningModule):
        def __init__(self, features: int, width: int, depth: int, classes: int, lr: float) -> None:
            super().__init__()
            self.save_hyperparameters()
            layers: list[nn.Module] = [nn.Linear(features, width), nn.ReLU()]
            for _ in range(depth - 1):
                layers += [nn.Linear(width, width), nn.ReLU()]
            self.net = nn.Sequential(*layers, nn.Linear(width, classes))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)  # accumulated on the device: no sync
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            logits = self(x)
            self.log("val_loss", nn.functional.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    n = args.steps * args.batch
    x, y = teacher_data(n + 4 * args.batch, args.features, 10)
    train = batch_loader(x[:n], y[:n], args.batch, shuffle=True)
    val = batch_loader(x[n:], y[n:], args.batch, shuffle=False)
    model = MLP(args.features, args.width, args.depth, 10, lr=1e-4 if args.width >= 1024 else 3e-3)
    callback = AtlasCallback(project="gpu-check", run_name="lightning-mlp", collector=address,
                             config=atlas_config(args), tags=["gpu-check"])
    times: list[float] = []

    class Probe(pl.Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            print(f"  lightning: {wait_for_carbon(callback._core)}; model on {pl_module.device}")

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            times.append(time.perf_counter())

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            print(f"  lightning epoch {trainer.current_epoch}: {time.perf_counter() - times[-1]:.2f} s, "
                  f"train loss {float(trainer.callback_metrics.get('train_loss', float('nan'))):.4f}, "
                  f"val loss {float(trainer.callback_metrics.get('val_loss', float('nan'))):.4f}", flush=True)

    trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cuda" if cuda else "cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, callbacks=[Probe(), callback])
    before = nvml_readings()
    t0 = time.perf_counter()
    trainer.fit(model, train, val)
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    after = nvml_readings()
    out = {"run_id": callback.run_id, "wall_s": wall, "nvml_energy_kwh": None}
    if before and after and isinstance(before[0].get("energy_mj"), int) and isinstance(after[0].get("energy_mj"), int):
        out["nvml_energy_kwh"] = (after[0]["energy_mj"] - before[0]["energy_mj"]) / 3.6e9  # mJ -> kWh
    print(f"  lightning fit: {wall:.1f} s, {trainer.global_step} steps; NVML after: {after}")
    return out


def observer_run(address: str, args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    import torch
    from torch import nn

    from atlas_callback import Observer

    torch.manual_seed(0)
    device = torch.device("cuda" if cuda else "cpu")
    side = 32 if cuda else 8
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(64, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator(device=device).manual_seed(0)
    batch = 256 if cuda else 32
    steps = max(20, args.steps // 2)
    with Observer(project="gpu-check", run_name="observer-cnn", collector=address, config=atlas_config(args),
                  hyperparameters={"lr": 1e-3, "batch": batch}, tags=["gpu-check"]) as obs:
        obs.register_model(model)
        print(f"  observer: {wait_for_carbon(obs._core)}")
        for epoch in range(2):
            t0 = time.perf_counter()
            for _ in range(steps):
                xb = torch.randn(batch, 3, side, side, device=device, generator=g)
                yb = (xb.mean((1, 2, 3)) > 0).long() + 2 * (xb[:, 0].mean((1, 2)) > 0).long()
                loss = nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                obs.step(loss, batch_size=batch, optimizer=opt)
            last = loss.item()
            obs.flush(val_metrics={"val_loss": last})
            print(f"  observer epoch {epoch}: {time.perf_counter() - t0:.2f} s, last loss {last:.4f}")
        run_id = obs.run_id
    return {"run_id": run_id}


def accelerate_run(address: str, args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    import torch
    from accelerate import Accelerator
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from atlas_callback import AtlasTracker

    torch.manual_seed(0)
    tracker = AtlasTracker(project="gpu-check", run_name="accelerate-mlp", collector=address,
                           config=atlas_config(args), tags=["gpu-check"])
    accelerator = Accelerator(log_with=[tracker], cpu=not cuda)
    accelerator.init_trackers("gpu-check", config={"lr": 1e-3})
    width = 1024 if cuda else 64
    model = nn.Sequential(nn.Linear(args.features, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                          nn.Linear(width, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = teacher_data(max(20, args.steps // 2) * 256, args.features, 10, seed=3)
    # a plain DataLoader: Accelerate re-creates it per process and refuses a batch sampler with batch_size=None
    loader = DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True, drop_last=True)
    try:
        model, opt, loader = accelerator.prepare(model, opt, loader)
        tracker.watch(model, accelerator)
        print(f"  accelerate: device {accelerator.device}; {wait_for_carbon(tracker._core)}")
        step = 0
        for epoch in range(2):
            for xb, yb in loader:
                loss = nn.functional.cross_entropy(model(xb), yb)
                accelerator.backward(loss)
                opt.step()
                opt.zero_grad()
                accelerator.log({"loss": loss.detach(), "lr": 1e-3}, step=step)
                step += 1
            last = loss.item()
            tracker.epoch_end(val_metrics={"val_loss": last})
            print(f"  accelerate epoch {epoch}: last loss {last:.4f}")
    except BaseException as exc:
        tracker.fail(exc)  # the run ends as failed at once instead of waiting for the interpreter's exit
        raise
    accelerator.end_training()
    return {"run_id": tracker.run_id}


# ------------------------------------------------------------------------------------------- read back


def report(stub: Any, name: str, run: dict[str, Any] | None, cuda: bool, gpu_name: str) -> None:
    from google.protobuf.json_format import MessageToDict

    from atlas_proto.v1 import query_pb2 as qpb
    from atlas_proto.v1 import telemetry_pb2 as tpb

    section(f"read back: {name}")
    if not run or not run.get("run_id"):
        check(f"{name}: a run id", False, "the run did not start")
        return
    run_id = run["run_id"]
    detail = stub.GetRun(qpb.RunRef(run=run_id), timeout=30)
    s = detail.summary
    print(f"run {s.id} {s.project}/{s.name}: status {tpb.RunStatus.Name(s.status)}, epochs {s.epochs}, "
          f"steps {s.steps}, health score {fmt(opt(s, 'health_score'), '.1f')}")
    d = detail.device
    print(f"device      kind {d.kind!r}, name {d.name!r}, count {d.count}, accelerator_available "
          f"{d.accelerator_available}, host {d.hostname!r}")
    print(f"versions    {dict(sorted(detail.versions.items()))}")
    check(f"{name}: completed", s.status == tpb.RUN_STATUS_COMPLETED, tpb.RunStatus.Name(s.status))
    check(f"{name}: device kind", d.kind == ("cuda" if cuda else "cpu"), repr(d.kind))
    if cuda:
        check(f"{name}: device name is the GPU's", bool(d.name) and d.name == gpu_name, repr(d.name))
        check(f"{name}: accelerator_available and count", d.accelerator_available and d.count >= 1,
              f"{d.accelerator_available}, {d.count}")

    epochs = [e.summary for e in stub.GetEpochs(qpb.EpochsRequest(run=run_id, rank=0), timeout=30).epochs]
    print(f"\n{len(epochs)} epochs stored")
    any_gpu_energy = False
    for e in epochs:
        print(f"\n-- epoch {e.epoch}: {e.duration_seconds:.2f} s, global_step {e.global_step}, loss mean "
              f"{fmt(opt(e.loss, 'mean'), '.4f')} (n={e.loss.count}), val {dict(e.val_metrics)}, "
              f"grad_norm {fmt(opt(e, 'grad_norm'), '.3f')}")
        t = e.throughput
        print(f"   throughput  {fmt(opt(t, 'samples_per_sec'), '.0f')} samples/s, {fmt(opt(t, 'batches_per_sec'), '.1f')}"
              f" batches/s, step p50/p95/max {fmt(opt(t, 'step_time_p50_s'), '.4f')}/"
              f"{fmt(opt(t, 'step_time_p95_s'), '.4f')}/{fmt(opt(t, 'step_time_max_s'), '.4f')} s")
        m = e.memory
        alloc, reserved, peak = (opt(m, f) for f in ("cuda_allocated_mb", "cuda_reserved_mb", "cuda_peak_allocated_mb"))
        print(f"   memory      rss {fmt(opt(m, 'process_rss_mb'), '.0f')} MB; CUDA allocated {fmt(alloc)} MB, "
              f"reserved {fmt(reserved)} MB, peak {fmt(peak)} MB; cpu {fmt(opt(e.system, 'cpu_percent'), '.0f')} %, "
              f"ram {fmt(opt(e.system, 'ram_percent'), '.0f')} %")
        if not e.gpus:
            print("   gpus        none")
        for g in e.gpus:
            print(f"   gpu[{g.index}]      {g.name}: util {fmt(opt(g, 'utilization_percent'), '.1f')} %, mem used "
                  f"{fmt(opt(g, 'memory_used_mb'), '.0f')} / {fmt(opt(g, 'memory_total_mb'), '.0f')} MB, power "
                  f"{fmt(opt(g, 'power_watts'), '.1f')} W, temp {fmt(opt(g, 'temperature_c'), '.1f')} C")
        if e.HasField("carbon"):
            c = e.carbon
            gpu_kwh = opt(c, "epoch_gpu_energy_kwh")
            any_gpu_energy = any_gpu_energy or bool(gpu_kwh)
            print(f"   carbon      energy {c.epoch_energy_kwh:.3e} kWh (gpu {fmt(gpu_kwh, '.3e')}, cpu "
                  f"{fmt(opt(c, 'epoch_cpu_energy_kwh'), '.3e')}, ram {fmt(opt(c, 'epoch_ram_energy_kwh'), '.3e')}), "
                  f"co2 {c.epoch_co2_kg:.3e} kg, power {c.power_draw_watts:.1f} W, intensity "
                  f"{fmt(opt(c, 'carbon_intensity_g_per_kwh'), '.1f')} g/kWh ({c.country_iso}); cumulative "
                  f"{c.cumulative_energy_kwh:.3e} kWh, {c.cumulative_co2_kg:.3e} kg")
        else:
            print("   carbon      none")
        lh = e.layer_health
        print(f"   layers      {len(lh.layers)} layer-health rows, {len(lh.correlations)} correlations")
        for layer in list(lh.layers)[:6]:
            print(f"               {layer.name}: act mean {fmt(opt(layer, 'activation_mean'), '.3g')}, std "
                  f"{fmt(opt(layer, 'activation_std'), '.3g')}, zero {fmt(opt(layer, 'zero_fraction'), '.3f')}, grad "
                  f"{fmt(opt(layer, 'gradient_norm_mean'), '.3g')}, update ratio {fmt(opt(layer, 'update_ratio'), '.2e')}"
                  f", samples {layer.samples}")
        if e.HasField("profiler"):
            p = e.profiler
            top = ", ".join(f"{op.name} {op.cuda_time_ms:.2f}/{op.cpu_time_ms:.2f} ms" for op in list(p.top_ops)[:4])
            print(f"   profiler    step {p.step}: cpu {p.total_cpu_time_ms:.2f} ms, cuda {p.total_cuda_time_ms:.2f} ms, "
                  f"fwd {p.forward_ms:.2f} ms, bwd {p.backward_ms:.2f} ms; top (cuda/cpu) {top}")
        # expectations per epoch
        tag = f"{name} epoch {e.epoch}"
        if cuda:
            g = e.gpus[0] if e.gpus else None
            check(f"{tag}: NVML record", g is not None and all(
                g.HasField(f) for f in ("utilization_percent", "memory_used_mb", "power_watts", "temperature_c")),
                "fields: " + (",".join(f.name for f, _ in g.ListFields()) if g else "none"))
            if g is not None:
                check(f"{tag}: NVML utilisation > 0 and power > 0", g.utilization_percent > 0 and g.power_watts > 0,
                      f"{g.utilization_percent:.1f} %, {g.power_watts:.1f} W")
            check(f"{tag}: CUDA memory fields", None not in (alloc, reserved, peak) and peak > 0 and reserved >= alloc,
                  f"{fmt(alloc)} / {fmt(reserved)} / {fmt(peak)} MB")
        else:
            check(f"{tag}: no GPU records without a GPU", not e.gpus, f"{len(e.gpus)} records")
            check(f"{tag}: no CUDA memory fields without CUDA", alloc is None and peak is None)
        check(f"{tag}: carbon", e.HasField("carbon") and e.carbon.epoch_energy_kwh > 0,
              f"{e.carbon.epoch_energy_kwh:.3e} kWh" if e.HasField("carbon") else "absent")
        check(f"{tag}: layer health rows", len(lh.layers) > 0, str(len(lh.layers)))
        if e.HasField("profiler") and cuda:
            check(f"{tag}: profiler saw device time", e.profiler.total_cuda_time_ms > 0,
                  f"{e.profiler.total_cuda_time_ms:.2f} ms")
    if cuda:
        check(f"{name}: CodeCarbon measured GPU energy", any_gpu_energy,
              "sum " + format(sum(e.carbon.epoch_gpu_energy_kwh for e in epochs if e.HasField("carbon")), ".3e") + " kWh")
    if run.get("nvml_energy_kwh") is not None:
        cc = sum(e.carbon.epoch_gpu_energy_kwh for e in epochs if e.HasField("carbon"))
        nv = run["nvml_energy_kwh"]
        print(f"\nGPU energy over the fit: NVML counter {nv:.3e} kWh, CodeCarbon epochs {cc:.3e} kWh "
              f"(ratio {cc / nv if nv else float('nan'):.2f}); wall {run['wall_s']:.1f} s")
    steps = list(stub.GetSteps(qpb.StepsRequest(run=run_id, rank=0), timeout=30).samples)
    print(f"\nstep samples stored: {len(steps)}; with loss {sum(1 for x in steps if x.HasField('loss'))}, with grad norm "
          f"{sum(1 for x in steps if x.HasField('grad_norm'))}; last step {steps[-1].step if steps else '-'}")
    check(f"{name}: step samples = run steps", len(steps) == s.steps, f"{len(steps)} vs {s.steps}")

    health = stub.Diagnose(qpb.RunRef(run=run_id), timeout=60)
    print(f"\ndiagnose: health {fmt(opt(health, 'health_score'), '.1f')}, severity counts {dict(health.severity_counts)}")
    issues = list(stub.ListIssues(qpb.IssuesRequest(run=run_id, include_inactive=True), timeout=30).issues)
    for i in issues:
        where = f"epoch {i.epoch}" if i.HasField("epoch") else ""
        value = i.metric_text or (fmt(opt(i, "metric_value"), ".4g") if i.metric_key else "")
        print(f"  issue {i.severity:8s} {i.check:28s} active={i.active} {where} {i.layer} {i.metric_key}={value} "
              f"- {i.title}")
    critical = [i.check for i in issues if i.severity == "critical"]
    check(f"{name}: no critical issue on a healthy run", not critical, ", ".join(critical) or "none")
    with contextlib.suppress(Exception):
        sus = MessageToDict(stub.GetSustainability(qpb.RunRef(run=run_id), timeout=30).report)
        print("sustainability report: " + json.dumps(sus, sort_keys=True)[:1500])


def run_pytest(cuda: bool) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-o", "addopts=",
           "tests/capture/test_cap_layers.py", "-k", "cuda"]
    print("$ " + " ".join(cmd), flush=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "proto"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    print(done.stdout[-6000:] + done.stderr[-3000:])
    passed = "1 passed" in done.stdout
    if cuda:
        check("pytest CUDA test passed", done.returncode == 0 and passed, f"exit {done.returncode}")
    else:
        check("pytest CUDA test skipped without CUDA", done.returncode == 0 and "1 skipped" in done.stdout,
              f"exit {done.returncode}")


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="Lightning epochs (default 3)")
    parser.add_argument("--steps", type=int, default=0, help="steps per Lightning epoch (default 150 on CUDA, 30 on CPU)")
    parser.add_argument("--batch", type=int, default=0, help="batch size (default 1024 on CUDA, 64 on CPU)")
    parser.add_argument("--width", type=int, default=0, help="MLP width (default 8192 on CUDA: ~20 ms steps on an "
                        "H100-class GPU in fp32; 64 on CPU)")
    parser.add_argument("--depth", type=int, default=3, help="hidden layers of the MLP (default 3)")
    parser.add_argument("--features", type=int, default=256, help="input features (default 256)")
    parser.add_argument("--layer-every", type=int, default=10, help="layer-health sampling interval (default 10)")
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: lightning,observer,accelerate,pytest")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store (SQLite) and ATLAS_HOME")
    parser.add_argument("--log", default="", help="also write everything printed here (default $OUT/gpu_check.log)")
    args = parser.parse_args(argv)

    log_path = args.log or (os.path.join(os.environ["OUT"], "gpu_check.log") if os.environ.get("OUT") else "")
    log_file = open(log_path, "w", buffering=1) if log_path else None  # noqa: SIM115 - open for the whole run
    if log_file is not None:
        sys.stdout = _Tee(sys.__stdout__, log_file)
        sys.stderr = _Tee(sys.__stderr__, log_file)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("atlas_callback").setLevel(logging.INFO)
    t_start = time.perf_counter()

    section("environment")
    env = environment()
    cuda = bool(env["cuda"])
    if not cuda:
        print("\nno CUDA: the runs below use the CPU with small models; GPU records must be absent, not wrong")
    args.steps = args.steps or (150 if cuda else 30)
    args.batch = args.batch or (1024 if cuda else 64)
    args.width = args.width or (8192 if cuda else 64)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    tmp = tempfile.mkdtemp(prefix="atlas-gpu-check-")
    os.environ["ATLAS_HOME"] = os.path.join(tmp, "home")  # the spool lives there, not in ~/.atlas
    os.environ.pop("ATLAS_MODE", None)
    from atlas_collector import run_server

    from atlas_proto.v1 import query_pb2_grpc

    import grpc

    runs: dict[str, Any] = {}
    with run_server(db=f"sqlite:///{tmp}/atlas.db", log_level="WARNING") as collector:
        print(f"\ncollector on {collector.address}, store sqlite:///{tmp}/atlas.db")
        for name, fn in (("lightning", lightning_run), ("observer", observer_run), ("accelerate", accelerate_run)):
            if name in skip:
                continue
            section(f"train: {name} on {'CUDA' if cuda else 'CPU'}")
            runs[name] = phase(name, lambda fn=fn: fn(collector.address, args, cuda))
            if cuda:
                import torch
                torch.cuda.empty_cache()
        time.sleep(1.0)  # the writer commits what the last flush acknowledged
        channel = grpc.insecure_channel(collector.address)
        stub = query_pb2_grpc.QueryServiceStub(channel)
        for name, run in runs.items():
            phase(f"report {name}", lambda name=name, run=run: report(stub, name, run, cuda, env.get("name", "")))
        channel.close()

    if "pytest" not in skip:
        section("pytest: the CUDA-only tests")
        phase("pytest", lambda: run_pytest(cuda))

    if args.keep:
        print(f"\nkept {tmp} (atlas.db, home/)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)

    section("summary")
    failed = [c for c in CHECKS if c[1] == "FAIL"]
    for name, status, detail in CHECKS:
        print(f"  [{status:4s}] {name}{': ' + detail if detail else ''}")
    print(f"\n{len(CHECKS)} checks: {sum(c[1] == 'ok' for c in CHECKS)} ok, {len(failed)} failed, "
          f"{sum(c[1] == 'skip' for c in CHECKS)} skipped; {'CUDA' if cuda else 'CPU only'}; "
          f"{time.perf_counter() - t_start:.1f} s")
    if log_file is not None:
        sys.stdout.flush()
        print(f"log written to {log_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
