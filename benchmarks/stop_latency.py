"""Stop latency: from the training step whose loss is NaN to the trainer having stopped (`on_critical="stop"`).

    .venv/bin/python benchmarks/stop_latency.py [--trials 20]      # any venv with Atlas and Lightning

Each trial is one Lightning fit of a small CNN on CPU (batch 32, 1 torch thread) with AtlasCallback and a
collector subprocess on loopback (SQLite). The module's loss at batch NAN_AT is NaN. Measured from the moment
that `training_step` returns the NaN loss to the batch loop having exited (`on_train_epoch_end` of the
first callback; "stopped"), and to `on_train_end` (after every callback's epoch-end work, Atlas's epoch
summary included), and the number of batches started after the NaN batch. Two paths, trials interleaved:
- fast path (the default): the callback sees the non-finite loss and applies the run's policy at once;
- collector path: the client-side fast path switched off in this process (`RunCore._nonfinite` replaced by a
  no-op: the benchmark's doing, not an Atlas option), so only the collector can stop the run: the NaN sample
  is handed to the sender at once, the collector commits it, its diagnostics raise `nan_loss`, the policy
  issues STOP and the command fans out to the stream.
For both paths the collector's side is timed from its own record of the command (`commands.issued_at`, read
from the collector's SQLite file after the trial) and, on the trainer, the arrival of the STOP command
(`Control.on_command`, wrapped to note the time). Target: <= 1 batch and <= 100 ms on loopback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sqlite3
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

from atlas_callback import AtlasCallback
from atlas_callback import _control, _core

warnings.filterwarnings("ignore")
for name in ("lightning.pytorch", "lightning.fabric", "lightning", "atlas_callback"):
    logging.getLogger(name).setLevel(logging.ERROR)

NAN_AT = 20
MAX_BATCHES = 400

# Trainer-side arrival of commands (wall clock), recorded by wrapping Control.on_command.
ARRIVALS: list[tuple[float, int]] = []
_on_command = _control.Control.on_command


def _noting_on_command(self, command) -> None:  # type: ignore[no-untyped-def]
    ARRIVALS.append((time.time(), command.kind))
    _on_command(self, command)


_control.Control.on_command = _noting_on_command  # type: ignore[method-assign]
_fast_path = _core.RunCore._nonfinite


class NaNCNN(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))
        self.nan_at: float | None = None  # perf_counter and wall clock when the NaN loss was returned
        self.nan_wall: float | None = None

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        if batch_idx == NAN_AT:
            loss = loss * float("nan")
            self.nan_at, self.nan_wall = time.perf_counter(), time.time()
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Probe(pl.Callback):
    def __init__(self) -> None:
        self.last_batch = -1
        self.step_times: list[float] = []
        self._t = 0.0
        self.exited_at: float | None = None
        self.ended_at: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._t:
            self.step_times.append(now - self._t)
        self._t = now
        self.last_batch = batch_idx

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # first callback: before Atlas's epoch-end work
        self.exited_at = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.ended_at = time.perf_counter()


def start_collector(db: str) -> tuple[subprocess.Popen[str], str]:
    exe = pathlib.Path(sys.executable).parent / "atlas-collector"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_") or k == "ATLAS_HOME"}
    proc = subprocess.Popen([str(exe), "--listen", "127.0.0.1:0", "--db", db, "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"collector did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def collector_stop(db_file: str, run_id: str, timeout: float = 5.0) -> tuple[float | None, str | None]:
    """(issued_at, issue_check) of the run's STOP command as the collector recorded it (waits a little)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=5) as conn:
                row = conn.execute("SELECT issued_at, issue_check FROM commands WHERE run_id = ? AND kind = 'stop' "
                                   "ORDER BY issued_at LIMIT 1", (run_id,)).fetchone()
        except sqlite3.OperationalError:
            row = None
        if row or time.monotonic() > deadline:
            return (row[0], row[1]) if row else (None, None)
        time.sleep(0.1)


def trial(path: str, address: str, db_file: str) -> dict[str, float | int | str | None]:
    _core.RunCore._nonfinite = _fast_path if path == "fast path" else (lambda self, step, value: None)
    ARRIVALS.clear()
    probe, model = Probe(), NaNCNN()
    atlas = AtlasCallback(project="stop-latency", run_name=path, collector=address, on_critical="stop")
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[probe, atlas],
                         limit_train_batches=MAX_BATCHES)
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32 * MAX_BATCHES, 1, 28, 28), torch.randint(0, 10, (32 * MAX_BATCHES,)))
    trainer.fit(model, DataLoader(data, batch_size=32))
    assert model.nan_at is not None and probe.exited_at is not None and probe.ended_at is not None
    issued, check = collector_stop(db_file, atlas.run_id or "")
    stop_arrival = next((t for t, kind in ARRIVALS if kind == 3), None)  # COMMAND_KIND_STOP
    normal = statistics.median(probe.step_times[:NAN_AT]) if probe.step_times else None
    return {
        "path": path,
        "batches_after_nan": probe.last_batch - NAN_AT,
        "stopped_ms": (probe.exited_at - model.nan_at) * 1e3,
        "train_end_ms": (probe.ended_at - model.nan_at) * 1e3,
        "stopped_by_nan": probe.last_batch < MAX_BATCHES - 1,
        "collector_issued_ms": (issued - model.nan_wall) * 1e3 if issued else None,
        "issue_check": check,
        "stop_arrived_ms": (stop_arrival - model.nan_wall) * 1e3 if stop_arrival else None,
        "step_ms": normal * 1e3 if normal else None,
    }


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20, help="trials per path")
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    from atlas_proto.v1 import telemetry_pb2 as tpb

    assert tpb.COMMAND_KIND_STOP == 3
    torch.set_num_threads(1)
    home = tempfile.mkdtemp(prefix="atlas-bench-stop-")
    os.environ["ATLAS_HOME"] = home
    db_file = f"{home}/collector.db"
    proc, address = start_collector(f"sqlite:///{db_file}")
    rows: list[dict] = []
    t0 = time.perf_counter()
    try:
        for _ in range(args.trials):
            for path in ("fast path", "collector path"):
                rows.append(trial(path, address, db_file))
                r = rows[-1]
                print(f"{path:15s} batches after NaN {r['batches_after_nan']:3d}  stopped {r['stopped_ms']:8.1f} ms  "
                      f"collector STOP issued {r['collector_issued_ms'] or float('nan'):8.1f} ms  "
                      f"arrived {r['stop_arrived_ms'] or float('nan'):8.1f} ms  step {r['step_ms'] or 0:.1f} ms",
                      flush=True)
    finally:
        proc.terminate()
        proc.wait(20)
    wall = time.perf_counter() - t0
    print(f"\n{args.trials} trials per path, NaN at batch {NAN_AT}; {os.cpu_count()} CPUs; {wall:.0f} s\n")
    print("| path | batches after NaN (median / p95 / max) | NaN -> stopped ms (median / p95) | "
          "NaN -> on_train_end ms (median / p95) | NaN -> collector STOP issued ms (median / p95) | "
          "NaN -> STOP at trainer ms (median / p95) | normal step ms (median) |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for path in ("fast path", "collector path"):
        mine = [r for r in rows if r["path"] == path]
        b = [r["batches_after_nan"] for r in mine]
        s = [r["stopped_ms"] for r in mine]
        e = [r["train_end_ms"] for r in mine]
        issued = [r["collector_issued_ms"] for r in mine if r["collector_issued_ms"] is not None]
        arrived = [r["stop_arrived_ms"] for r in mine if r["stop_arrived_ms"] is not None]
        steps = [r["step_ms"] for r in mine if r["step_ms"]]

        def fmt(v: list[float]) -> str:
            return f"{statistics.median(v):.1f} / {pct(v, 0.95):.1f} (n={len(v)})" if v else "none"

        summary[path] = {"batches_median": statistics.median(b), "batches_p95": pct(b, 0.95), "batches_max": max(b),
                         "stopped_ms_median": statistics.median(s), "stopped_ms_p95": pct(s, 0.95),
                         "train_end_ms_median": statistics.median(e), "train_end_ms_p95": pct(e, 0.95),
                         "issued_ms_median": statistics.median(issued) if issued else None,
                         "issued_ms_p95": pct(issued, 0.95) if issued else None, "issued_n": len(issued),
                         "arrived_ms_median": statistics.median(arrived) if arrived else None,
                         "arrived_ms_p95": pct(arrived, 0.95) if arrived else None, "arrived_n": len(arrived),
                         "step_ms_median": statistics.median(steps) if steps else None,
                         "stopped_by_nan": sum(1 for r in mine if r["stopped_by_nan"]), "trials": len(mine)}
        print(f"| {path} | {statistics.median(b):g} / {pct(b, 0.95):g} / {max(b)} | {fmt(s)} | {fmt(e)} | {fmt(issued)} | "
              f"{fmt(arrived)} | {statistics.median(steps):.1f} |")
    for path, s in summary.items():
        ok = s["batches_p95"] <= 1 and s["stopped_ms_p95"] <= 100
        print(f"{path}: p95 {s['batches_p95']} batches, {s['stopped_ms_p95']:.1f} ms "
              f"(target <= 1 batch and <= 100 ms: {'met' if ok else 'MISSED'})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "trials": rows, "wall_s": wall}, indent=2))


if __name__ == "__main__":
    main()
