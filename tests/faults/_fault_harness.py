"""Run a labelled program against a real collector and judge what the collector raised.

``run_program`` trains the program with a real ``AtlasCallback`` streaming over gRPC to the collector at
``address``, then reads the run's issues back through the query service (``ListIssues`` settles the collector's
diagnostics first). ``judge`` compares them with the labels; ``summarise`` gives recall, critical false positives
on healthy controls and detection delays.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import grpc
import lightning.pytorch as pl
import psutil
import torch
from google.protobuf.json_format import MessageToDict

from atlas_callback import AtlasCallback, AtlasConfig
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import query_pb2_grpc
from _fault_programs import Expect, Program, Trace

# What every program captures: the defaults, without carbon (CodeCarbon adds seconds per run and no check of the
# suite needs it), layer health sampled more often than the default 10 steps because these epochs are short.
BASE_CONFIG: dict[str, Any] = dict(track_carbon=False, layer_health_every=4, layer_health_budget=1.0, grad_norm_every=2)


@dataclass
class RunResult:
    program: Program
    run_id: str
    seconds: float
    issues: list[dict[str, Any]]
    epochs: list[dict[str, Any]]
    error: str | None = None

    def first(self, check: str, layer: str | None = None) -> dict[str, Any] | None:
        """The earliest issue of ``check`` (on ``layer`` if given)."""
        found = [i for i in self.issues if i["check"] == check and (layer is None or i.get("layer") == layer)]
        return min(found, key=lambda i: (i.get("first_seen_epoch", math.inf), i.get("step", math.inf)),
                   default=None)


@dataclass
class Verdict:
    expect: Expect
    detected: bool
    first_seen_epoch: int | None
    step: int | None
    delay_epochs: int | None
    delay_steps: int | None
    why: str = ""


def trainer(callback: pl.Callback, epochs: int, **kwargs: Any) -> pl.Trainer:
    """The suite's Trainer; ``kwargs`` are the program's own Trainer arguments (``Program.trainer``)."""
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      callbacks=[callback], **kwargs)


def read_issues(address: str, run_id: str) -> list[dict[str, Any]]:
    with grpc.insecure_channel(address) as channel:
        stub = query_pb2_grpc.QueryServiceStub(channel)
        resp = stub.ListIssues(qpb.IssuesRequest(run=run_id, include_inactive=True), timeout=30)
    return [MessageToDict(i, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
            for i in resp.issues]


def run_program(address: str, program: Program) -> RunResult:
    """Train ``program`` against the collector at ``address`` and read back its issues and epochs."""
    t0 = time.perf_counter()
    if program.own_process:
        run_id, error = _train_in_child(address, program)
    else:
        run_id, error = train(address, program)
    seconds = time.perf_counter() - t0
    issues = read_issues(address, run_id)
    for issue in issues:  # uint64 fields come back as strings from MessageToDict
        for key in ("step", "first_seen_epoch", "last_seen_epoch", "epoch"):
            if key in issue and issue[key] is not None:
                issue[key] = int(issue[key])
    return RunResult(program, run_id, seconds, issues, read_epochs(address, run_id), error)


def _train_in_child(address: str, program: Program) -> tuple[str, str | None]:
    """A fresh trainer process: its RSS is the program's own, not the test session's (hundreds of MB that would
    make any leak a smaller share of the baseline)."""
    here = pathlib.Path(__file__).resolve().parent
    code = ("import json, sys; sys.path[:0] = [sys.argv[1]]; import _fault_harness as h, _fault_programs as p; "
            "prog = {x.name: x for x in p.FAULTS + p.HEALTHY}[sys.argv[3]]; "
            "print(json.dumps(h.train(sys.argv[2], prog)))")
    done = subprocess.run([sys.executable, "-c", code, str(here), address, program.name], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))
    if done.returncode != 0:
        raise RuntimeError(f"{program.name} failed in its own process: {done.stderr[-2000:]}")
    run_id, error = json.loads(done.stdout.strip().splitlines()[-1])
    return run_id, error


def train(address: str, program: Program) -> tuple[str, str | None]:
    """Train ``program`` in this process with a real AtlasCallback; returns the run id and the error, if any."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared: one thread keeps each run's timing steady
    config = AtlasConfig(**{**BASE_CONFIG, **program.config})
    # a healthy control runs with on_critical="stop": it must still train every epoch (issue 19: a healthy run is
    # never stopped); a fault program warns only, so that every symptom of its fault gets its say
    callback = AtlasCallback(project="faults", run_name=program.name, collector=address, config=config,
                             on_critical="stop" if program.healthy else "warn")
    model, train_loader, val_loader = program.build()
    error = None
    try:
        trainer(callback, program.epochs, **program.trainer).fit(model, train_loader, val_loader)
    except Exception as exc:  # a fault may crash training; the run is still diagnosed
        error = f"{type(exc).__name__}: {exc}"
    finally:
        torch.set_num_threads(threads)
    assert callback.run_id is not None
    return callback.run_id, error


def _lr(trainer: pl.Trainer) -> float | None:
    return float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else None


class _Recorder(pl.Callback):
    """The probe's own instruments (no Atlas): every step's loss, the global gradient norm before every optimizer
    step (before any clipping), whether each training step ran in train mode, which trainable parameters never had
    a gradient at an optimizer step, every leaf module's output shape on the first batch, and at each epoch's end
    the process RSS, the logged metrics and the learning rate."""

    def __init__(self) -> None:
        self.losses: list[list[float]] = []
        self.grads: list[list[float]] = []
        self.rss: list[float] = []
        self.metrics: list[dict[str, float]] = []
        self.lr_start: float | None = None
        self.lrs: list[float] = []
        self.modes: list[list[bool]] = []
        self.no_grad: set[str] | None = None
        self.shapes: dict[str, list[int]] = {}
        self._hooks: list[Any] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.lr_start = _lr(trainer)
        for name, module in pl_module.named_modules():
            if name and not any(True for _ in module.children()):
                self._hooks.append(module.register_forward_hook(self._shape_of(name)))

    def _shape_of(self, name: str) -> Any:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and name not in self.shapes:
                self.shapes[name] = list(output.shape)
        return hook

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.losses.append([])
        self.grads.append([])
        self.modes.append([])

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        norms = [p.grad.detach().norm() for p in pl_module.parameters() if p.grad is not None]
        if norms:
            self.grads[-1].append(float(torch.linalg.vector_norm(torch.stack(norms))))
        missing = {n for n, p in pl_module.named_parameters() if p.requires_grad and p.grad is None}
        self.no_grad = missing if self.no_grad is None else self.no_grad & missing

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self.modes[-1].append(pl_module.training)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.losses[-1].append(float(loss))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rss.append(psutil.Process().memory_info().rss / 2**20)
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
        lr = _lr(trainer)
        if lr is not None:
            self.lrs.append(lr)

    def trace(self) -> Trace:
        return Trace(self.losses, self.grads, self.rss, self.metrics, lr_start=self.lr_start, lrs=self.lrs,
                     train_mode=[sum(m) / len(m) for m in self.modes if m], no_grad_params=sorted(self.no_grad or ()),
                     shapes=self.shapes)


def probe(program: Program) -> Trace:
    """Train ``program`` without Atlas, with a plain recorder: what a person would look at to see the fault."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    recorder = _Recorder()
    model, train_loader, val_loader = program.build()
    try:
        trainer(recorder, program.epochs, **program.trainer).fit(model, train_loader, val_loader)
    finally:
        torch.set_num_threads(threads)
    return recorder.trace()


def read_epochs(address: str, run_id: str) -> list[dict[str, Any]]:
    with grpc.insecure_channel(address) as channel:
        stub = query_pb2_grpc.QueryServiceStub(channel)
        resp = stub.GetEpochs(qpb.EpochsRequest(run=run_id, rank=0), timeout=30)
    return [MessageToDict(e.summary, preserving_proto_field_name=True) for e in resp.epochs]


def rise_onset(epochs: list[dict[str, Any]], key: str = "val_loss") -> int | None:
    """A curve's rise begins the epoch after its lowest point (None if the lowest is the last epoch): the
    validation loss for overfitting, the training loss (``train_mean``) for divergence."""
    def value(e: dict[str, Any]) -> Any:
        return e.get("loss", {}).get("mean") if key == "train_mean" else e.get("val_metrics", {}).get(key)

    vals = [(e.get("epoch", 0), value(e)) for e in epochs]
    vals = [(ep, v) for ep, v in vals if v is not None and math.isfinite(v)]
    if not vals:
        return None
    best = min(vals, key=lambda x: x[1])[0]
    return best + 1 if best < vals[-1][0] else None


def resolve(expect: Expect, result: RunResult) -> Expect:
    """Labels whose onset depends on the run (``onset=-1``): overfitting begins the epoch after the best validation
    loss, divergence the epoch after the best training loss; either must be found within one epoch."""
    if expect.onset >= 0:
        return expect
    onset = rise_onset(result.epochs, "train_mean" if expect.check == "loss_divergence" else "val_loss")
    if onset is None:
        return Expect(expect.check, onset=10**6, by_epoch=10**6, layer=expect.layer)  # never overfitted: no fault
    return Expect(expect.check, onset=onset, by_epoch=onset + 1, layer=expect.layer)


def judge(result: RunResult) -> list[Verdict]:
    out = []
    for e in (resolve(x, result) for x in result.program.expect):
        issue = result.first(e.check, e.layer)
        if issue is None:
            out.append(Verdict(e, False, None, None, None, None, f"{e.check} not raised"))
            continue
        # an architecture check is judged when the model description arrives, during the first epoch, before any
        # epoch has ended: its issue has no epoch
        first = issue.get("first_seen_epoch", 0)
        step = issue.get("step")
        delay_steps = None
        ok = first is not None and e.onset <= first <= e.by_epoch
        why = "" if ok else f"{e.check} first seen at epoch {first}, expected from epoch {e.onset} by {e.by_epoch}"
        if first is not None and first < e.onset:
            why += " (raised before the fault began: a false alarm on the healthy part of the run)"
        if e.at_step is not None:
            delay_steps = None if step is None else step - e.at_step
            if step is None or not 0 <= step - e.at_step <= 1:
                ok = False
                why = f"{e.check} names step {step}, expected step {e.at_step} (within one batch)"
        out.append(Verdict(e, ok, first, step, None if first is None else first - e.onset, delay_steps, why))
    return out


def ranked_first(result: RunResult) -> dict[str, Any] | None:
    """The issue the collector ranks as the run's most likely root cause (``rank == 1``; rank 0: not ranked)."""
    return next((i for i in result.issues if int(i.get("rank") or 0) == 1), None)


def root_first(result: RunResult) -> bool:
    """Whether the issue ranked first is one of the program's root-cause checks (``Program.root_checks``)."""
    top = ranked_first(result)
    return top is not None and top["check"] in result.program.root_checks


def critical(result: RunResult) -> list[dict[str, Any]]:
    return [i for i in result.issues if i["severity"] == "critical"]


def summarise(results: list[RunResult]) -> dict[str, Any]:
    faults = [r for r in results if not r.program.healthy]
    healthy = [r for r in results if r.program.healthy]
    rows = []
    detected_faults = 0
    expectations = hits = roots = 0
    for r in faults:
        verdicts = judge(r)
        expectations += len(verdicts)
        hits += sum(v.detected for v in verdicts)
        ok = all(v.detected for v in verdicts)
        detected_faults += ok
        top = ranked_first(r)
        roots += root_first(r)
        rows.append({
            "program": r.program.name, "injected": r.program.injected, "seconds": round(r.seconds, 2),
            "detected": ok, "error": r.error,
            "root": list(r.program.root_checks), "ranked_first": None if top is None else top["check"],
            "root_first": root_first(r),
            "checks": [{"check": v.expect.check, "onset_epoch": v.expect.onset, "by_epoch": v.expect.by_epoch,
                        "at_step": v.expect.at_step, "detected": v.detected, "first_seen_epoch": v.first_seen_epoch,
                        "step": v.step, "delay_epochs": v.delay_epochs, "delay_steps": v.delay_steps,
                        "why": v.why} for v in verdicts],
            "other_issues": sorted({f"{i['check']}:{i['severity']}" for i in r.issues
                                    if i["check"] not in {v.expect.check for v in verdicts}}),
        })
    controls = [{
        "program": r.program.name, "injected": r.program.injected, "seconds": round(r.seconds, 2),
        "critical": sorted({i["check"] for i in critical(r)}),
        "warnings": sorted({i["check"] for i in r.issues if i["severity"] == "warning"}),
        "infos": sorted({i["check"] for i in r.issues if i["severity"] == "info"}),
        "issues": [f"{i['severity']} {i['check']}: {i['description']}" for i in r.issues],
    } for r in healthy]
    delays = [c["delay_epochs"] for row in rows for c in row["checks"] if c["delay_epochs"] is not None]
    return {
        "faults": len(faults), "healthy_controls": len(healthy),
        "recall": detected_faults / len(faults) if faults else None,
        "check_recall": hits / expectations if expectations else None,
        "root_first": roots, "root_first_rate": roots / len(faults) if faults else None,
        "critical_false_positives": sum(len(c["critical"]) > 0 for c in controls),
        "warnings_per_healthy_run": (sum(len(c["warnings"]) for c in controls) / len(controls)) if controls else None,
        "max_delay_epochs": max(delays) if delays else None,
        "mean_delay_epochs": sum(delays) / len(delays) if delays else None,
        "seconds": round(sum(r.seconds for r in results), 1),
        "fault_runs": rows, "healthy_runs": controls,
    }
