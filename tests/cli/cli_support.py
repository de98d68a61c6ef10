"""Shared by the CLI tests: a real `atlas-collector` subprocess holding real runs, and the real `atlas` CLI.

The store is built once per test session (module-level cache behind `stored_runs()`): three Lightning runs trained
on the CPU with AtlasCallback, and one run streamed through the real telemetry protocol with logs and an
architecture whose content the tests know exactly."""
from __future__ import annotations

import atexit
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import struct_pb2

from atlas_proto.v1 import telemetry_pb2 as tpb
from atlas_proto.v1 import telemetry_pb2_grpc
import _wait
from conftest import BIN, CollectorProcess, cli_env, start_collector_process

TESTS = pathlib.Path(__file__).resolve().parent.parent


def atlas(*args: str, collector: str | None = None, check: bool = True, timeout: float = 60,
          env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `atlas` command; `collector` is passed as --collector."""
    argv = [str(BIN / "atlas")] + (["--collector", collector] if collector else []) + list(args)
    done = subprocess.run(argv, capture_output=True, text=True, env=env or cli_env(), timeout=timeout, input=input)
    if check and done.returncode != 0:
        raise AssertionError(f"atlas {' '.join(args)} exited {done.returncode}:\n{done.stderr}\n{done.stdout}")
    return done


def atlas_json(*args: str, collector: str) -> Any:
    return json.loads(atlas(*args, "--json", collector=collector).stdout)


def one_line_error(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The command failed with `code`, one line on stderr, no traceback; returns that line."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    if code == 1:
        assert len(lines) == 1, done.stderr
    return lines[-1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- a run sent through the real protocol

LOG_LINES = [("INFO", "data", "loaded 512 samples", "console"),
             ("WARNING", "py.warnings", "UserWarning: the dataloader has few workers", "warning"),
             ("ERROR", "train", "CUDA out of memory while allocating 2.00 GiB", "error")]


def stream_run(address: str, *, project: str = "cli", name: str = "streamed", epochs: int = 2) -> str:
    """Send one complete run (start, architecture, epochs, logs, end) over TelemetryService.Stream."""
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    now = time.time()
    seq = iter(range(1, 1000))

    def msg(**body: Any) -> tpb.ClientMessage:
        kind = next(iter(body))
        return tpb.ClientMessage(run_id=run_id, rank=0, seq=0 if kind == "run_start" else next(seq),
                                 session=session, **body)

    start = tpb.RunStart(protocol_version=tpb.PROTOCOL_VERSION_1, project=project, run_name=name,
                         framework=tpb.FRAMEWORK_PYTORCH, world_size=1,
                         device=tpb.DeviceInfo(kind="cpu", name="test-cpu"))
    start.started_at.FromSeconds(int(now) - 60)
    layers = [tpb.Layer(name="conv1", type="Conv2d", parameters=320, pct_of_total=1.5, trainable_parameters=320),
              tpb.Layer(name="fc", type="Linear", parameters=20_490, pct_of_total=98.5, trainable_parameters=20_490)]
    layers[0].attributes.update({"in_channels": 1, "out_channels": 32, "kernel_size": [3, 3]})
    layers[1].attributes.update({"in_features": 2048, "out_features": 10})
    tree = struct_pb2.Struct()
    tree.update({"name": "", "type": "SmallNet", "children": [{"name": "conv1", "type": "Conv2d", "children": []},
                                                               {"name": "fc", "type": "Linear", "children": []}]})
    info = tpb.ModelInfo(model_class="SmallNet", total_parameters=20_810, trainable_parameters=20_810,
                         layers=layers, module_tree=tree, sequential_path=["conv1", "fc"])
    messages = [msg(run_start=start), msg(model_info=info)]
    for e in range(epochs):
        records = [tpb.LogRecord(level=lvl, logger=lg, message=f"{text} (epoch {e})", epoch=e, kind=k)
                   for lvl, lg, text, k in LOG_LINES]
        for r in records:
            r.time.FromNanoseconds(int((now - 50 + e) * 1e9))
        messages.append(msg(log_batch=tpb.LogBatch(records=records)))
        summary = tpb.EpochSummary(epoch=e, duration_seconds=1.0, global_step=10 * (e + 1),
                                   loss=tpb.LossStats(mean=1.0 / (e + 1), std=0.1, min=0.5 / (e + 1),
                                                      max=2.0 / (e + 1), count=10),
                                   val_metrics={"val_loss": 1.1 / (e + 1), "val_acc": 0.5 + 0.1 * e},
                                   throughput=tpb.Throughput(samples_per_sec=1000.0 + e, samples_processed=320,
                                                             batches=10),
                                   carbon=tpb.Carbon(epoch_co2_kg=0.01, epoch_energy_kwh=0.04, power_draw_watts=150.0,
                                                     cumulative_co2_kg=0.01 * (e + 1),
                                                     cumulative_energy_kwh=0.04 * (e + 1),
                                                     carbon_intensity_g_per_kwh=250.0, country_iso="FRA"))
        summary.ended_at.FromNanoseconds(int((now - 49 + e) * 1e9))
        messages.append(msg(epoch_summary=summary))
    end = tpb.RunEnd(status=tpb.RUN_STATUS_COMPLETED, total_steps=10 * epochs, epochs=epochs)
    end.ended_at.FromSeconds(int(now))
    messages.append(msg(run_end=end))
    with grpc.insecure_channel(address) as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        acks = [r.ack.seq for r in stub.Stream(iter(messages), timeout=20) if r.HasField("ack")]
    assert acks and max(acks) == len(messages) - 1, acks
    return run_id


# ------------------------------------------------------------------------------------------------ the store

@dataclass
class Store:
    collector: CollectorProcess
    runs: dict[str, str] = field(default_factory=dict)  # name -> id
    val_loss: dict[str, float] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.collector.address


_STORE: Store | None = None


def train(address: str, name: str, *, epochs: int, lr: float = 0.05, fail_at_step: int | None = None,
          seed: int = 0) -> tuple[str, float | None]:
    import lightning.pytorch as pl

    from atlas_callback import AtlasCallback
    from _lit import TinyClassifier, loaders, trainer

    pl.seed_everything(seed, verbose=False)
    callback = AtlasCallback(project="cli", run_name=name, collector=address, tags=["cli-test"])
    t = trainer([callback], max_epochs=epochs)
    train_dl, val_dl = loaders()
    try:
        t.fit(TinyClassifier(lr=lr, fail_at_step=fail_at_step), train_dl, val_dl)
    except RuntimeError:
        if fail_at_step is None:
            raise
    val = t.callback_metrics.get("val_loss")
    return callback.run_id, (float(val) if val is not None else None)


def stored_runs() -> Store:
    """The session's collector with runs `baseline` (3 epochs), `hot` (lr 3.0, 5 epochs: overfits), `broken`
    (fails at step 5) and `streamed` (known logs and architecture)."""
    global _STORE
    if _STORE is not None and _STORE.collector.proc.poll() is None:
        return _STORE
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="atlas-cli-tests-"))
    collector = start_collector_process(f"sqlite:///{tmp / 'store.db'}")
    store = Store(collector)
    for name, kwargs in (("baseline", {"epochs": 3}), ("hot", {"epochs": 5, "lr": 3.0}),
                         ("broken", {"epochs": 2, "fail_at_step": 5})):
        run_id, val = train(collector.address, name, **kwargs)
        store.runs[name] = run_id
        if val is not None:
            store.val_loss[name] = val
    store.runs["streamed"] = stream_run(collector.address)
    _STORE = store
    atexit.register(stop_store)  # shared by every CLI test module of the session
    return store


def stop_store() -> None:
    global _STORE
    if _STORE is not None:
        _STORE.collector.stop()
        _STORE = None


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """`_wait.wait_for`, polling less often: a CLI predicate runs a command."""
    return _wait.wait_for(predicate, timeout, interval=interval)


__all__ = ["TESTS", "atlas", "atlas_json", "one_line_error", "free_port", "stream_run", "stored_runs", "stop_store",
           "wait_for", "LOG_LINES", "sys", "os"]
