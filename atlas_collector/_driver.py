"""The diagnostics driver: one worker thread that diagnoses runs after their data has been committed.

The writer's `on_commit` hands it the outcomes (`notify`, cheap, never blocks ingest); the worker reads what is
new for each touched run from the store (epochs, step samples, logs, architecture — by id cursors), feeds the
run's `Engine`, persists the issues, the health score and a diagnostic run, and applies the run's `on_critical`
policy to issues that became critical. One Engine per active run, rebuilt from the store when absent (a restart,
or a stream that moved here from another replica); engines of ended runs are dropped.

Every engine is used under one lock, so `diagnose_now` (the Diagnose RPC) and the time ticks of the stale timer
see a consistent state."""
from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import sqlalchemy as sa

from atlas_diagnostics import Engine, IssueDelta, StepRecord, Thresholds, health_score

from . import _diagnostics as d
from . import _schema as s
from . import _steps
from ._convert import ENDED_STATUSES
from ._exceptions import RunNotFound

log = logging.getLogger(__name__)

REBUILD_STEPS = 20_000  # a rebuilt engine sees at most this many of the run's latest step samples
STEPS_PER_UPDATE = 2_000  # step samples fed per run and update; more are thinned (notable ones always kept)
STEP_BUFFER = 50_000  # step samples held per run while the worker is busy; beyond it they are thinned
_DIAG_KINDS = frozenset({"run_start", "model_info", "step_batch", "epoch_summary", "log_batch", "run_end"})

# (run id, kind "pause"|"stop", reason, issue check) -> None; records and delivers the command.
PolicyAction = Callable[[str, str, str, str], None]


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

    def __init__(self, store: Any, *, thresholds: Thresholds | None = None, disabled_checks: Iterable[str] = (),
                 act: PolicyAction | None = None, max_engines: int = 256, alerts: Any = None) -> None:
        self._store = store
        self._alerts = alerts  # _alerts.Alerts: an issue's opening writes its notifications in the same transaction
        self._thresholds = thresholds or Thresholds()
        self._disabled = tuple(disabled_checks)
        self._act = act
        self._max_engines = max_engines
        self._runs: collections.OrderedDict[str, _RunDiag] = collections.OrderedDict()
        self._lock = threading.RLock()  # engines and their cursors
        self._pending_lock = threading.Condition()
        self._pending: dict[str, set[str]] = {}
        self._pending_steps: dict[str, list[tuple[Any, ...]]] = {}
        self._busy: set[str] = set()  # runs taken from `_pending` and being diagnosed
        self._wake = threading.Event()
        self._stopping = False
        self._errors: dict[str, int] = {}
        self.on_persist: Callable[[str], None] | None = None  # told the run id after its issues were stored (UI)
        self._thread = threading.Thread(target=self._loop, name="atlas-diagnostics", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------- feeding

    def notify(self, outcomes: Iterable[Any]) -> None:
        """Writer thread, after commit: note which runs got new data (and of which kind)."""
        touched: dict[str, set[str]] = {}
        steps: dict[str, list[tuple[Any, ...]]] = {}
        for o in outcomes:
            if o.error is None and o.applied and o.kind in _DIAG_KINDS:
                touched.setdefault(o.run_id, set()).add(o.kind)
                if o.steps:
                    steps.setdefault(o.run_id, []).extend(o.steps)
        if not touched:
            return
        with self._pending_lock:
            for run_id, kinds in touched.items():
                self._pending.setdefault(run_id, set()).update(kinds)
            for run_id, new in steps.items():
                held = self._pending_steps.setdefault(run_id, [])
                held.extend(new)
                if len(held) > STEP_BUFFER:
                    self._pending_steps[run_id] = thin(held, STEP_BUFFER // 5)
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
                trigger = "epoch" if "epoch_summary" in kinds else ("step" if "step_batch" in kinds else "data")
                try:
                    self.update_run(run_id, trigger=trigger, ended="run_end" in kinds, steps=steps.get(run_id))
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
                   record: bool | None = None, steps: list[tuple[Any, ...]] | None = None) -> IssueDelta:
        """Feed the run's new records to its engine, persist, act on the policy. Thread-safe.

        `steps`: the step samples just committed (the writer's tuples); epochs, logs and the architecture are
        read from the store, and so are the latest steps when the engine is rebuilt."""
        with self._lock:
            with self._store.connect() as conn:
                run = conn.execute(sa.select(s.runs).where(s.runs.c.id == run_id)).first()
                if run is None:
                    self._runs.pop(run_id, None)
                    raise RunNotFound(f"no run with id {run_id!r}")
                run = dict(run._mapping)
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
            run = dict(conn.execute(sa.select(s.runs).where(s.runs.c.id == run_id)).first()._mapping)
            rd = self._new(run)
            rd.engine.update(**self._read_new(conn, run_id, rd, rebuilt=True))
        return rd.engine

    def locked(self) -> threading.RLock:
        return self._lock

    # ------------------------------------------------------------------------------------- private

    def _new(self, run: dict[str, Any]) -> _RunDiag:
        engine = Engine(thresholds=d.run_thresholds(run["thresholds"], self._thresholds), run_info=d.run_info(run),
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
            payload = conn.execute(sa.select(s.architectures.c.payload)
                                   .where(s.architectures.c.run_id == run_id)).scalar()
            if payload:
                out["architecture"] = d.architecture(payload)
                rd.arch_loaded = True
        e = s.epochs.c
        for row in conn.execute(sa.select(s.epochs).where(e.run_id == run_id, e.epoch >= rd.max_epoch)
                                .order_by(e.epoch, e.rank)):
            key = (row.rank, row.epoch)
            if key in rd.epochs_seen:
                continue
            rd.epochs_seen.add(key)
            rd.max_epoch = max(rd.max_epoch, row.epoch)
            out["epochs"].append(d.epoch_record(row._mapping))
        if rebuilt:  # the latest steps of each rank, oldest first
            for rank in _steps.ranks(conn, run_id):
                latest = _steps.latest(conn, run_id, rank, REBUILD_STEPS)
                out["steps"].extend(d.step_record(_steps.as_row(run_id, rank, x)) for x in latest)
                if latest:
                    rd.step_hw[rank] = latest[-1].step
        lc = s.logs.c
        for row in conn.execute(sa.select(s.logs).where(lc.run_id == run_id, lc.id > rd.log_id).order_by(lc.id)):
            rd.log_id = row.id
            out["logs"].append(d.log_record(row._mapping))
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
        # A run the trainer's own fast path already stopped (non-finite loss) still gets its command recorded,
        # as for any other critical issue (ARCHITECTURE.md); other ended runs get none.
        open_or_fast_stopped = rd.status not in ENDED_STATUSES or rd.status == "stopped"
        if critical and rd.on_critical in ("pause", "stop") and self._act is not None \
                and open_or_fast_stopped and not (rd.on_critical == "pause" and rd.status == "paused"):
            first = critical[0]
            reason = f"{first.check}: {first.title}"
            if first.description:
                reason += f" — {first.description}"
            try:
                self._act(run_id, rd.on_critical, reason, first.check)
            except Exception:  # noqa: BLE001 - the issue is stored; a failed command is logged, not fatal
                log.exception("run=%s on_critical=%s command failed", run_id, rd.on_critical)


def thin(rows: list[tuple[Any, ...]], limit: int) -> list[tuple[Any, ...]]:
    """At most about `limit` of the step tuples, evenly spaced, always keeping the notable ones: every
    non-finite or AMP-skipped loss, the largest loss and the largest gradient norm (so a spike or an explosion
    is never thinned away), and the last sample."""
    n = len(rows)
    if n <= limit:
        return rows
    keep = {n - 1}
    best_loss = best_grad = None
    for i, (_, _, _, loss, _, grad, _, amp) in enumerate(rows):
        if loss is not None and (loss != loss or loss in (math.inf, -math.inf)) or amp:
            keep.add(i)
        elif loss is not None and (best_loss is None or loss > rows[best_loss][3]):
            best_loss = i
        if grad is not None and (best_grad is None or not grad <= rows[best_grad][5]):
            best_grad = i
    keep.update(i for i in (best_loss, best_grad) if i is not None)
    stride = n / limit
    keep.update(int(j * stride) for j in range(limit))
    return [rows[i] for i in sorted(keep)]


def _fresh_steps(rd: _RunDiag, steps: Iterable[tuple[Any, ...]]) -> list[Any]:
    """The just-committed step tuples this engine has not seen (a rebuild may have read them already), thinned
    to `STEPS_PER_UPDATE`, as StepRecords."""
    hw = rd.step_hw
    new = [t for t in steps if t[1] > hw.get(t[0], -1)]
    out = []
    for rank, step, epoch, loss, lr, grad, when, amp in thin(new, STEPS_PER_UPDATE):
        out.append(StepRecord(step=step, epoch=epoch, rank=rank, loss=loss, lr=lr, grad_norm=grad, time=when,
                              amp_skipped=amp))
        if step > hw.get(rank, -1):
            hw[rank] = step
    return out
