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
import torch
from google.protobuf.json_format import MessageToDict

from atlas_callback import AtlasCallback, AtlasConfig
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import query_pb2_grpc
from _fault_programs import Expect, Program

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


def trainer(callback: AtlasCallback, epochs: int) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      callbacks=[callback])


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
    callback = AtlasCallback(project="faults", run_name=program.name, collector=address, config=config)
    model, train_loader, val_loader = program.build()
    error = None
    try:
        trainer(callback, program.epochs).fit(model, train_loader, val_loader)
    except Exception as exc:  # a fault may crash training; the run is still diagnosed
        error = f"{type(exc).__name__}: {exc}"
    finally:
        torch.set_num_threads(threads)
    assert callback.run_id is not None
    return callback.run_id, error


def read_epochs(address: str, run_id: str) -> list[dict[str, Any]]:
    with grpc.insecure_channel(address) as channel:
        stub = query_pb2_grpc.QueryServiceStub(channel)
        resp = stub.GetEpochs(qpb.EpochsRequest(run=run_id, rank=0), timeout=30)
    return [MessageToDict(e.summary, preserving_proto_field_name=True) for e in resp.epochs]


def val_rise_onset(epochs: list[dict[str, Any]]) -> int | None:
    """Overfitting begins the epoch after the best validation loss (None if the best is the last epoch)."""
    vals = [(e.get("epoch", 0), e.get("val_metrics", {}).get("val_loss")) for e in epochs]
    vals = [(ep, v) for ep, v in vals if v is not None and math.isfinite(v)]
    if not vals:
        return None
    best = min(vals, key=lambda x: x[1])[0]
    return best + 1 if best < vals[-1][0] else None


def resolve(expect: Expect, result: RunResult) -> Expect:
    """Labels whose onset depends on the run (``onset=-1``: overfitting, from the validation curve): the fault
    begins the epoch after the best validation loss and must be found within one epoch."""
    if expect.onset >= 0:
        return expect
    onset = val_rise_onset(result.epochs)
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


def critical(result: RunResult) -> list[dict[str, Any]]:
    return [i for i in result.issues if i["severity"] == "critical"]


def summarise(results: list[RunResult]) -> dict[str, Any]:
    faults = [r for r in results if not r.program.healthy]
    healthy = [r for r in results if r.program.healthy]
    rows = []
    detected_faults = 0
    expectations = hits = 0
    for r in faults:
        verdicts = judge(r)
        expectations += len(verdicts)
        hits += sum(v.detected for v in verdicts)
        ok = all(v.detected for v in verdicts)
        detected_faults += ok
        rows.append({
            "program": r.program.name, "injected": r.program.injected, "seconds": round(r.seconds, 2),
            "detected": ok, "error": r.error,
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
        "critical_false_positives": sum(len(c["critical"]) > 0 for c in controls),
        "max_delay_epochs": max(delays) if delays else None,
        "mean_delay_epochs": sum(delays) / len(delays) if delays else None,
        "seconds": round(sum(r.seconds for r in results), 1),
        "fault_runs": rows, "healthy_runs": controls,
    }
