"""The diagnostics driver: one worker thread that diagnoses runs after their data has been committed.

The writer's `on_commit` hands it the outcomes (`notify`, cheap, never blocks ingest); the worker reads what is
new for each touched run from the store (epochs, logs, architecture — by id cursors; the step samples come with
the outcomes), feeds the run's `Engine`, persists the issues, the health score and a diagnostic run, and hands the
issues that became critical to the `Policy` it was given (`_policy.py`: `on_critical`). One Engine per active
run, rebuilt from the store when absent (a restart, or a stream that moved here from another replica); engines of
ended runs are dropped.

Every engine is used under one lock, so `diagnose_now` (the Diagnose RPC) and the time ticks of the stale timer
see a consistent state."""
from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import sqlalchemy as sa

from atlas_diagnostics import Engine, IssueDelta, StepRecord, Thresholds, health_score

from atlas_proto.v1 import telemetry_pb2 as tpb

from . import _diagnostics as d
from . import _schema as s
from . import _steps
from atlas_proto import convert
from atlas_proto.convert import ENDED_STATUSES
from ._exceptions import RunNotFound
from ._ingest import Outcome
from ._kinds import DIAGNOSED, Kind
from ._policy import Policy
from ._steps import CommittedSteps
from ._store import Store

log = logging.getLogger(__name__)

REBUILD_STEPS = 20_000  # a rebuilt engine sees at most this many of the run's latest step samples
STEPS_PER_UPDATE = 2_000  # step samples fed per run and update; more are thinned (notable ones always kept)
STEP_BUFFER = 50_000  # step samples held per run while the worker is busy; beyond it they are thinned


@dataclass
class _RunDiag:
    engine: Engine
    on_critical: str
    status: str
    step_hw: dict[int, int] = field(default_factory=dict)  # rank -> highest step fed
    log_id: int = 0
    epochs_seen: set[tuple[int, int]] = field(default_factory=set)
    max_epoch: int = -1
    arch_loaded: bool = False


class DiagnosticsDriver:
    """Diagnoses runs incrementally on its own thread. `shutdown` is bounded and safe to call twice."""

    def __init__(self, store: Store, *, thresholds: Thresholds | None = None, disabled_checks: Iterable[str] = (),
                 policy: Policy | None = None, max_engines: int = 256, alerts: Any = None) -> None:
        self._store = store
        self._alerts = alerts  # _alerts.Alerts: an issue's opening writes its notifications in the same transaction
        self._thresholds = thresholds or Thresholds()
        self._disabled = tuple(disabled_checks)
        self._policy = policy  # None: issues are stored and nothing acts on them (`on_critical` as if "warn")
        self._max_engines = max_engines
        self._runs: collections.OrderedDict[str, _RunDiag] = collections.OrderedDict()
        self._lock = threading.RLock()  # engines and their cursors
        self._pending_lock = threading.Condition()
        self._pending: dict[str, set[Kind]] = {}
        self._pending_steps: dict[str, list[CommittedSteps]] = {}
        self._busy: set[str] = set()  # runs taken from `_pending` and being diagnosed
        self._wake = threading.Event()
        self._stopping = False
        self._errors: dict[str, int] = {}
        self.on_persist: Callable[[str], None] | None = None  # told the run id after its issues were stored (UI)
        self._thread = threading.Thread(target=self._loop, name="atlas-diagnostics", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------- feeding

    def notify(self, outcomes: Iterable[Outcome]) -> None:
        """Writer thread, after commit: note which runs got new data (and of which kind)."""
        touched: dict[str, set[Kind]] = {}
        steps: dict[str, list[CommittedSteps]] = {}
        for o in outcomes:
            if o.error is None and o.applied and o.kind in DIAGNOSED:
                touched.setdefault(o.run_id, set()).add(o.kind)
                if o.steps is not None:
                    steps.setdefault(o.run_id, []).append(o.steps)
        if not touched:
            return
        with self._pending_lock:
            for run_id, kinds in touched.items():
                self._pending.setdefault(run_id, set()).update(kinds)
            for run_id, new in steps.items():
                held = self._pending_steps.setdefault(run_id, [])
                held.extend(new)
                if sum(len(b.samples) for b in held) > STEP_BUFFER:
                    self._pending_steps[run_id] = _thin_batches(held, STEP_BUFFER // 5)
        self._wake.set()

    def forget(self, run_id: str) -> None:
        """Drop the run's engine: the next update rebuilds it from the store (its stream joined this process,
        perhaps after streaming to another replica, whose data this engine has not seen)."""
        with self._lock:
            self._runs.pop(run_id, None)

    def settle(self, run_id: str | None = None, timeout: float = 5.0) -> bool:
        """Wait (bounded) until the data committed so far for `run_id` (None: every run) has been diagnosed,
        so a query right after an ack reads the issues that data produced."""
        def done() -> bool:
            if run_id is None:
                return not self._pending and not self._busy
            return run_id not in self._pending and run_id not in self._busy

        with self._pending_lock:
            return self._pending_lock.wait_for(done, timeout)

    force_flush = settle

    def shutdown(self, timeout: float = 5.0) -> bool:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._pending_lock:
                work, self._pending = self._pending, {}
                steps, self._pending_steps = self._pending_steps, {}
                self._busy = set(work)
            for run_id, kinds in work.items():
                trigger = "epoch" if Kind.EPOCH_SUMMARY in kinds else ("step" if Kind.STEP_BATCH in kinds else "data")
                try:
                    self.update_run(run_id, trigger=trigger, ended=Kind.RUN_END in kinds, steps=steps.get(run_id))
                except Exception:  # noqa: BLE001 - worker boundary: one run's failure never stops the others
                    count = self._errors[run_id] = self._errors.get(run_id, 0) + 1
                    if count <= 3:
                        log.exception("run=%s diagnostics failed (%d)", run_id, count)
                with self._pending_lock:
                    self._busy.discard(run_id)
                    self._pending_lock.notify_all()
            if self._stopping:
                return

    # ------------------------------------------------------------------------------------ diagnosis

    def update_run(self, run_id: str, *, trigger: str = "data", now: float | None = None, ended: bool = False,
                   record: bool | None = None, steps: Sequence[CommittedSteps] | None = None) -> IssueDelta:
        """Feed the run's new records to its engine, persist, act on the policy. Thread-safe.

        `steps`: the step samples just committed (`Outcome.steps`); epochs, logs and the architecture are
        read from the store, and so are the latest steps when the engine is rebuilt."""
        with self._lock:
            with self._store.connect() as conn:
                run = self._store.run_row(conn, run_id)
                if run is None:
                    self._runs.pop(run_id, None)
                    raise RunNotFound(f"no run with id {run_id!r}")
                rd = self._runs.get(run_id)
                rebuilt = rd is None
                if rd is None:
                    rd = self._new(run)
                rd.status, rd.on_critical = run["status"], run["on_critical"]
                records = self._read_new(conn, run_id, rd, rebuilt)
            records["steps"].extend(_fresh_steps(rd, steps or ()))
            delta = rd.engine.update(**records, now=now)
            epoch_seen = bool(records["epochs"])
            self._remember(run_id, rd)
            write = bool(delta) or rebuilt or trigger in ("manual",) or epoch_seen or ended  # the end: its status
            if write:
                self._persist(run_id, rd, delta, trigger="rebuild" if rebuilt and trigger == "data" else trigger,
                              record=record if record is not None else (epoch_seen or trigger == "manual"))
                if self.on_persist is not None:
                    try:
                        self.on_persist(run_id)
                    except Exception:  # noqa: BLE001 - a listener never breaks the diagnosis
                        log.debug("on_persist failed", exc_info=True)
            if ended or run["status"] in ENDED_STATUSES:
                self._runs.pop(run_id, None)
            return delta

    def tick(self, now: float, run_ids: Iterable[str]) -> None:
        """Time-based checks (stalled_training) for the given live runs, with the collector's clock."""
        for run_id in run_ids:
            try:
                self.update_run(run_id, trigger="time", now=now, record=False)
            except RunNotFound:
                continue
            except Exception:  # noqa: BLE001 - a timer tick never dies
                log.exception("run=%s time-based diagnostics failed", run_id)

    def engine(self, run_id: str) -> Engine:
        """The run's engine, brought up to date (rebuilt from the store if needed). Use under `locked()`."""
        self.update_run(run_id, trigger="data")
        rd = self._runs.get(run_id)
        if rd is not None:
            return rd.engine
        # An ended run is not kept: rebuild a throwaway engine for the report.
        with self._store.connect() as conn:
            run = self._store.run_row(conn, run_id)
            rd = self._new(run)
            rd.engine.update(**self._read_new(conn, run_id, rd, rebuilt=True))
        return rd.engine

    def locked(self) -> threading.RLock:
        return self._lock

    # ------------------------------------------------------------------------------------- private

    def _new(self, run: dict[str, Any]) -> _RunDiag:
        engine = Engine(thresholds=d.run_thresholds(run["thresholds"], self._thresholds), run_info=convert.run_info(run),
                        disabled_checks=self._disabled)
        return _RunDiag(engine=engine, on_critical=run["on_critical"], status=run["status"])

    def _remember(self, run_id: str, rd: _RunDiag) -> None:
        self._runs[run_id] = rd
        self._runs.move_to_end(run_id)
        while len(self._runs) > self._max_engines:
            self._runs.popitem(last=False)

    def _read_new(self, conn: Any, run_id: str, rd: _RunDiag, rebuilt: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"epochs": [], "steps": [], "logs": [], "architecture": None}
        if not rd.arch_loaded:
            payload = self._store.architecture(conn, run_id)
            if payload:
                out["architecture"] = d.architecture(payload, run_id)
                rd.arch_loaded = True
        for row in self._store.epochs(conn, run_id, rank=None, from_epoch=rd.max_epoch):
            key = (row["rank"], row["epoch"])
            if key in rd.epochs_seen:
                continue
            rd.epochs_seen.add(key)
            rd.max_epoch = max(rd.max_epoch, row["epoch"])
            out["epochs"].append(d.epoch_record(row))
        if rebuilt:  # the latest steps of each rank, oldest first
            for rank in _steps.ranks(conn, run_id):
                latest = _steps.latest(conn, run_id, rank, REBUILD_STEPS)
                out["steps"].extend(convert.step_record(x, rank) for x in latest)
                if latest:
                    rd.step_hw[rank] = latest[-1].step
        for row in self._store.logs_after(conn, run_id, rd.log_id):
            rd.log_id = row["id"]
            out["logs"].append(d.log_record(row))
        return out

    def _persist(self, run_id: str, rd: _RunDiag, delta: IssueDelta, *, trigger: str, record: bool) -> None:
        now = time.time()
        issues = list(rd.engine.issues())
        score = float(health_score(issues, rd.status))
        with self._store.begin() as conn:
            became_active = d.save_issues(conn, run_id, issues, now)
            notified = 0
            if self._alerts is not None and became_active:
                notified = self._alerts.issues_opened(
                    conn, run_id, [i for i in issues if (i.check, d.issue_key(i)) in became_active], now)
            conn.execute(sa.update(s.runs).where(s.runs.c.id == run_id).values(health_score=score))
            if record:
                epoch = rd.engine.state.current.epoch if rd.engine.state.current is not None else None
                d.save_diagnostic_run(conn, run_id, issues, trigger=trigger, epoch=epoch,
                                      arch_type=rd.engine.arch_type, score=score, now=now)
        if notified:
            self._alerts.wake()
        for issue in delta.new:
            if (issue.check, d.issue_key(issue)) in became_active:
                log.info("run=%s issue=%s severity=%s epoch=%s %s", run_id, issue.check, issue.severity,
                         issue.epoch, issue.title)
        critical = [i for i in delta.new_critical if (i.check, d.issue_key(i)) in became_active]
        if critical and self._policy is not None:
            self._policy.on_critical(run_id, rd.on_critical, rd.status, critical)


def thin(samples: Sequence[tpb.StepSample], limit: int) -> Sequence[int]:
    """The indices (ascending) of at most about `limit` of the step samples, evenly spaced, always keeping the
    notable ones: every non-finite or AMP-skipped loss, the largest loss and the largest gradient norm (so a spike
    or an explosion is never thinned away), and the last sample."""
    n = len(samples)
    if n <= limit:
        return range(n)
    keep = {n - 1}
    best_loss = best_grad = None
    top_loss = top_grad = 0.0  # the loss of `best_loss`, the gradient norm of `best_grad`, once those are set
    for i, x in enumerate(samples):
        has = x.HasField
        loss = x.loss if has("loss") else None
        if loss is not None and (loss != loss or loss in (math.inf, -math.inf)) or x.amp_skipped:
            keep.add(i)
        elif loss is not None and (best_loss is None or loss > top_loss):
            best_loss, top_loss = i, loss
        if has("grad_norm") and (best_grad is None or not x.grad_norm <= top_grad):
            best_grad, top_grad = i, x.grad_norm
    keep.update(i for i in (best_loss, best_grad) if i is not None)
    stride = n / limit
    keep.update(int(j * stride) for j in range(limit))
    return sorted(keep)


def _flatten(batches: Iterable[CommittedSteps], after: dict[int, int]) -> tuple[list[int], list[tpb.StepSample]]:
    """The ranks and the samples of the batches, in order, without those at or below `after[rank]`."""
    ranks: list[int] = []
    samples: list[tpb.StepSample] = []
    for b in batches:
        seen = after.get(b.rank, -1)
        fresh = [x for x in b.samples if x.step > seen]
        samples += fresh
        ranks += [b.rank] * len(fresh)
    return ranks, samples


def _thin_batches(batches: list[CommittedSteps], limit: int) -> list[CommittedSteps]:
    """The batches held for a run, thinned to about `limit` samples (`thin`), in their order."""
    ranks, samples = _flatten(batches, {})
    groups: list[tuple[int, list[tpb.StepSample]]] = []
    for i in thin(samples, limit):
        if groups and groups[-1][0] == ranks[i]:
            groups[-1][1].append(samples[i])
        else:
            groups.append((ranks[i], [samples[i]]))
    return [CommittedSteps(rank, kept, max(x.step for x in kept)) for rank, kept in groups]


def _fresh_steps(rd: _RunDiag, batches: Iterable[CommittedSteps]) -> list[StepRecord]:
    """The just-committed step samples this engine has not seen (a rebuild may have read them already), thinned
    to `STEPS_PER_UPDATE`, as StepRecords."""
    hw = rd.step_hw
    ranks, samples = _flatten(batches, hw)
    out = []
    for i in thin(samples, STEPS_PER_UPDATE):
        x, rank = samples[i], ranks[i]
        has = x.HasField
        out.append(StepRecord.from_wire(  # unsigned wire fields: the checks of StepRecord() cannot fail
            x.step, x.epoch, rank, x.loss if has("loss") else None, x.lr if has("lr") else None,
            x.grad_norm if has("grad_norm") else None, x.time.seconds + x.time.nanos / 1e9 if has("time") else None,
            x.amp_skipped))
        if x.step > hw.get(rank, -1):
            hw[rank] = x.step
    return out
