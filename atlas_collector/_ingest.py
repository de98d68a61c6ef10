"""Ingest: apply validated client messages to the store, idempotently by (run, rank, seq).

`apply_message` is a plain function over a connection (tests call it directly). `Writer` owns the one
thread that writes: it drains whatever messages are queued (from every stream), applies them in one
transaction, commits, and only then reports each message's ack — so an acked sequence is durable.

An ack is the highest *contiguous* sequence committed for a (run, rank, session), and nothing else:
- a message whose sequence skips ahead of the cursor is not stored: `SequenceGap` (ABORTED) closes its stream,
  and the client resends from its last ack; a client that lost records says so with a `Dropped` message, which
  is recorded with the run (a log line of kind "dropped") and passes the cursor over them;
- when the store cannot write (disk full, database locked, connection lost), every message of the failed
  transaction gets `StoreUnavailable` (UNAVAILABLE) and no ack: the clients keep their records and resend;
- a message the store refuses for what it holds (a value no validation caught) is refused alone: the refusal is
  recorded with the run (kind "refused") and acked with `Ack.refused`, so it never wedges the rest of the run."""
from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from atlas_proto.v1 import telemetry_pb2 as tpb

from . import _schema as s
from . import _alerts, _metrics, _steps
from ._commands import mark_delivered
from atlas_proto.convert import (
    ENDED_STATUSES,
    FRAMEWORK_NAMES,
    ON_CRITICAL_NAMES,
    STATUS_NAMES,
    message_to_dict,
    opt,
    struct_dict,
    ts_to_float,
)
from ._exceptions import InvalidMessage, RunNotStarted, SequenceGap, StoreUnavailable
from ._kinds import UNSEQUENCED, Kind
from ._steps import CommittedSteps
from ._store import error_line, is_transient

log = logging.getLogger(__name__)


def finite_or_none(value: float | None) -> float | None:
    """Store NaN/Inf as NULL in columns that are averaged or plotted; the payload keeps the real value."""
    if value is None or not math.isfinite(value):
        return None
    return value


@dataclass
class Outcome:
    """What happened to one message: the ack to send (run, rank, seq) or the error that refused it."""

    run_id: str
    rank: int
    session: str = ""
    ack_seq: int | None = None
    error: BaseException | None = None
    kind: Kind | None = None  # REFUSED for a refused body
    applied: bool = False  # False for a duplicate that was skipped, a refusal or a declared loss
    refused: str = ""  # the reason a sequenced message was refused (recorded with the run, acked)
    steps: CommittedSteps | None = None  # an applied StepBatch's samples, for the diagnostics driver


@dataclass
class _BatchState:
    cursors: dict[tuple[str, int, str], int] = field(default_factory=dict)
    dirty: set[tuple[str, int, str]] = field(default_factory=set)  # cursors advanced in this batch
    known_runs: set[str] = field(default_factory=set)
    touched: dict[str, float] = field(default_factory=dict)  # run id -> last seen
    top_steps: dict[str, int] = field(default_factory=dict)  # run id -> highest step of rank zero in the batch
    alerts: Any = None  # _alerts.Alerts: notifications of alerts and run ends, in the batch's transaction


# ------------------------------------------------------------------------------------ dialect helpers

def _insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _insert_ignore(conn: Connection, table: sa.Table, values: dict[str, Any] | list[dict[str, Any]]) -> None:
    conn.execute(_insert(conn, table).on_conflict_do_nothing(), values)


_UPSERTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}


def _upsert(conn: Connection, table: sa.Table, values: dict[str, Any], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE; the statement is built once per shape (building it is costly)."""
    cache_key = (conn.dialect.name, table.name, tuple(values), tuple(keys))
    stmt = _UPSERTS.get(cache_key)
    if stmt is None:
        ins = _insert(conn, table)
        stmt = ins.on_conflict_do_update(index_elements=keys,
                                         set_={k: ins.excluded[k] for k in values if k not in keys})
        _UPSERTS[cache_key] = stmt
    conn.execute(stmt, values)


# ------------------------------------------------------------------------------------------- apply

def apply_message(conn: Connection, msg: tpb.ClientMessage, kind: Kind, state: _BatchState | None = None,
                  now: float | None = None, refusal: str = "") -> Outcome:
    """Apply one validated message inside the caller's transaction.

    `refusal` (a sequenced message whose body was refused): record the refusal in its place and ack it."""
    flush_cursor = state is None  # a lone call writes its cursor at once; the Writer writes them per batch
    state = state if state is not None else _BatchState()
    now = now if now is not None else time.time()
    run_id, rank, session = msg.run_id, msg.rank, msg.session
    if kind == Kind.RUN_START:
        _run_start(conn, msg, state, now)
        state.known_runs.add(run_id)
        return Outcome(run_id, rank, session, ack_seq=_cursor(conn, state, msg), kind=kind, applied=True)
    _require_run(conn, state, run_id, kind)
    state.touched[run_id] = now
    if kind == Kind.HEARTBEAT:
        conn.execute(
            sa.update(s.runs).where(s.runs.c.id == run_id, s.runs.c.status == "stale")
            .values(status="paused" if msg.heartbeat.paused else "running")
        )
        return Outcome(run_id, rank, session, ack_seq=None, kind=kind, applied=True)
    current = _cursor(conn, state, msg)
    if msg.seq <= current:
        return Outcome(run_id, rank, session, ack_seq=current, kind=kind, applied=False)
    first = msg.dropped.first_seq if kind == Kind.DROPPED else msg.seq
    if first > current + 1:  # not stored; the transaction goes on for the other messages
        gap = SequenceGap(f"sequence gap on run {run_id} rank {rank}: expected seq {current + 1}, got {first}; "
                          f"nothing from {first} on is stored or acked until {current + 1} arrives (resend from "
                          f"the last ack)")
        return Outcome(run_id, rank, session, kind=kind, error=gap)
    if refusal or kind == Kind.DROPPED:
        _record_loss(conn, msg, kind, refusal, now)
        state.cursors[(run_id, rank, session)] = msg.seq
        state.dirty.add((run_id, rank, session))
        if flush_cursor:
            _flush_cursors(conn, state)
        return Outcome(run_id, rank, session, ack_seq=msg.seq, kind=Kind.REFUSED if refusal else kind,
                       refused=refusal)
    extra = _APPLY[kind](conn, msg, getattr(msg, kind), now)
    if state.alerts is not None and kind in (Kind.ALERT, Kind.RUN_END):
        state.alerts.on_message(conn, msg, kind, extra, now)
    if kind == Kind.STEP_BATCH and rank == 0 and extra:
        if extra.last_step > state.top_steps.get(run_id, -1):
            state.top_steps[run_id] = extra.last_step
    state.cursors[(run_id, rank, session)] = msg.seq
    state.dirty.add((run_id, rank, session))
    if flush_cursor:
        _flush_cursors(conn, state)
    return Outcome(run_id, rank, session, ack_seq=msg.seq, kind=kind, applied=True,
                   steps=extra if kind == Kind.STEP_BATCH else None)


def _record_loss(conn: Connection, msg: tpb.ClientMessage, kind: Kind, refusal: str, now: float) -> None:
    """A refused message or a client's declared loss, kept with the run as an ERROR log line (never silent)."""
    if refusal:
        text, what = f"the collector refused {kind} seq {msg.seq} of rank {msg.rank}: {refusal}", "refused"
        log.warning("run=%s rank=%d refused %s seq %d: %s", msg.run_id, msg.rank, kind, msg.seq, refusal)
    else:
        d = msg.dropped
        count = f" ({d.records} records)" if d.records else ""
        text = (f"the trainer lost seq {d.first_seq}..{msg.seq} of rank {msg.rank}{count} before delivering them: "
                f"{d.reason or 'no reason given'}")
        what = "dropped"
        log.warning("run=%s %s", msg.run_id, text)
    conn.execute(sa.insert(s.logs), {"run_id": msg.run_id, "rank": msg.rank, "time": now, "level": "ERROR",
                                     "logger": "atlas.collector", "message": text[:10_000], "epoch": 0,
                                     "kind": what})


def _cursor(conn: Connection, state: _BatchState, msg: tpb.ClientMessage) -> int:
    key = (msg.run_id, msg.rank, msg.session)
    if key not in state.cursors:
        c = s.ingest_cursors.c
        row = conn.execute(
            sa.select(c.seq).where(c.run_id == msg.run_id, c.rank == msg.rank, c.session == msg.session)
        ).first()
        state.cursors[key] = int(row[0]) if row is not None else 0
    return state.cursors[key]


def _require_run(conn: Connection, state: _BatchState, run_id: str, kind: Kind) -> None:
    if run_id in state.known_runs:
        return
    if conn.execute(sa.select(s.runs.c.id).where(s.runs.c.id == run_id)).first() is None:
        raise RunNotStarted(f"{kind} for run {run_id} which was never started: send RunStart first")
    state.known_runs.add(run_id)


def _project_id(conn: Connection, name: str, now: float) -> int:
    _insert_ignore(conn, s.projects, {"name": name, "created_at": now})
    return conn.execute(sa.select(s.projects.c.id).where(s.projects.c.name == name)).scalar_one()


def _run_start(conn: Connection, msg: tpb.ClientMessage, state: _BatchState, now: float) -> None:
    m = msg.run_start
    started = ts_to_float(m.started_at) or now
    fields = {
        "name": m.run_name or msg.run_id[:8],
        "framework": FRAMEWORK_NAMES.get(m.framework, "pytorch"),
        "on_critical": ON_CRITICAL_NAMES.get(m.on_critical, "warn"),
        "world_size": max(1, m.world_size),
        "pause_timeout_s": m.pause_timeout_s or None,
        "hyperparameters": struct_dict(m.hyperparameters),
        "versions": dict(m.versions),
        "device": message_to_dict(m.device),
        "thresholds": struct_dict(m.thresholds) or None,
        "git_commit": m.git_commit or None,
    }
    row = conn.execute(sa.select(s.runs.c.status, s.runs.c.ended_at).where(s.runs.c.id == msg.run_id)).first()
    if row is None:
        project_id = _project_id(conn, m.project or "default", now)
        values = {"id": msg.run_id, "project_id": project_id, "status": "running", "started_at": started,
                  "last_seen_at": now, **fields}
        _insert_ignore(conn, s.runs, values)
        log.info("run=%s started project=%s name=%s rank=%d on_critical=%s", msg.run_id, m.project or "default",
                 fields["name"], msg.rank, fields["on_critical"])
        if m.tags:
            _insert_ignore(conn, s.run_tags, [{"run_id": msg.run_id, "tag": t} for t in dict.fromkeys(m.tags)])
        return
    update: dict[str, Any] = {"last_seen_at": now}
    if msg.rank == 0:  # a later RunStart (a resumed run, a replay) fills in what is unset, never overwrites
        update.update(_unset_fields(conn, msg.run_id, fields))
    status, ended_at = row
    if status == "stale":
        update["status"] = "running"
    elif status in ENDED_STATUSES and ended_at is not None and started > ended_at:
        # A resumed run (same run_id, new session): it runs again. A replayed RunStart is older than the end.
        update.update(status="running", ended_at=None, error_type=None, error_message=None, traceback=None)
    conn.execute(sa.update(s.runs).where(s.runs.c.id == msg.run_id).values(**update))
    if m.tags:
        _insert_ignore(conn, s.run_tags, [{"run_id": msg.run_id, "tag": t} for t in dict.fromkeys(m.tags)])


def _unset_fields(conn: Connection, run_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """What a later RunStart of rank zero may change. Until rank zero has streamed anything, all of it (the run may
    have been made from another rank's RunStart). After that, the facts of the process now running it (framework,
    on_critical, world size, versions, device, ...) follow it, while the run's name and hyperparameters stay as
    stored (new hyperparameter keys are added): a RunStart naming an existing run never renames or rewrites it.
    Tags are only ever added."""
    r, c = s.runs.c, s.ingest_cursors.c
    streamed = conn.execute(sa.select(c.seq).where(c.run_id == run_id, c.rank == 0).limit(1)).first() is not None
    if not streamed:  # rank zero has sent nothing yet: the run was made from another rank's RunStart
        return fields
    old_hp = conn.execute(sa.select(r.hyperparameters).where(r.id == run_id)).scalar_one()
    out = {k: v for k, v in fields.items() if k not in ("name", "hyperparameters")}
    new_hp = fields["hyperparameters"]
    if isinstance(new_hp, dict) and new_hp:
        merged = {**new_hp, **old_hp} if isinstance(old_hp, dict) else new_hp
        if merged != old_hp:
            out["hyperparameters"] = merged
    return out


def _model_info(conn: Connection, msg: tpb.ClientMessage, m: tpb.ModelInfo, now: float) -> None:
    _upsert(conn, s.architectures, {"run_id": msg.run_id, "model_class": m.model_class[:200],
                                    "total_parameters": m.total_parameters, "payload": message_to_dict(m)},
            ["run_id"])


def _step_batch(conn: Connection, msg: tpb.ClientMessage, m: tpb.StepBatch, now: float) -> CommittedSteps | None:
    """One row for the whole batch (`_steps.insert`); returns its samples for the diagnostics. (`runs.steps`
    advances once per batch, in `_flush_cursors`, not once per message.)"""
    top = _steps.insert(conn, msg.run_id, msg.rank, m)
    return CommittedSteps(msg.rank, m.samples, top) if top is not None else None


def _epoch_summary(conn: Connection, msg: tpb.ClientMessage, m: tpb.EpochSummary, now: float) -> None:
    val_loss = m.val_metrics.get("val_loss", m.val_metrics.get("val/loss"))
    _upsert(conn, s.epochs, {
        "run_id": msg.run_id, "rank": msg.rank, "epoch": m.epoch,
        "ended_at": ts_to_float(m.ended_at) or now,
        "duration_seconds": m.duration_seconds,
        "global_step": m.global_step,
        "loss_mean": finite_or_none(opt(m.loss, "mean")),
        "loss_min": finite_or_none(opt(m.loss, "min")),
        "loss_max": finite_or_none(opt(m.loss, "max")),
        "val_loss": finite_or_none(val_loss),
        "samples_per_sec": opt(m.throughput, "samples_per_sec"),
        "process_rss_mb": opt(m.memory, "process_rss_mb"),
        "cumulative_co2_kg": m.carbon.cumulative_co2_kg if m.HasField("carbon") else None,
        "payload": message_to_dict(m),
    }, ["run_id", "rank", "epoch"])
    if msg.rank == 0:
        conn.execute(sa.update(s.runs).where(s.runs.c.id == msg.run_id, s.runs.c.epochs < m.epoch + 1)
                     .values(epochs=m.epoch + 1))
        conn.execute(sa.update(s.runs).where(s.runs.c.id == msg.run_id, s.runs.c.steps < m.global_step)
                     .values(steps=m.global_step))


def _log_batch(conn: Connection, msg: tpb.ClientMessage, m: tpb.LogBatch, now: float) -> None:
    if m.records:
        conn.execute(sa.insert(s.logs), [
            {"run_id": msg.run_id, "rank": msg.rank, "time": ts_to_float(r.time), "level": r.level,
             "logger": r.logger[:200] or None, "message": r.message, "epoch": r.epoch, "kind": r.kind[:16] or None}
            for r in m.records
        ])


def _metric_batch(conn: Connection, msg: tpb.ClientMessage, m: tpb.MetricBatch, now: float) -> None:
    _metrics.insert(conn, msg.run_id, msg.rank, m)


def _run_end(conn: Connection, msg: tpb.ClientMessage, m: tpb.RunEnd, now: float) -> None:
    if msg.rank != 0:
        return  # the run ends with rank zero; other ranks' ends only advance their cursor
    log.info("run=%s ended status=%s%s", msg.run_id, STATUS_NAMES[m.status],
             f" error={m.error_type}" if m.error_type else "")
    conn.execute(sa.update(s.runs).where(s.runs.c.id == msg.run_id).values(
        status=STATUS_NAMES[m.status],
        ended_at=ts_to_float(m.ended_at) or now,
        error_type=m.error_type[:200] or None,
        error_message=m.error_message or None,
        traceback=m.traceback or None,
    ))
    if m.total_steps:
        conn.execute(sa.update(s.runs).where(s.runs.c.id == msg.run_id, s.runs.c.steps < m.total_steps)
                     .values(steps=m.total_steps))


def _command_ack(conn: Connection, msg: tpb.ClientMessage, m: tpb.CommandAck, now: float) -> None:
    # The first rank to apply it marks the command delivered; the run's status follows rank zero.
    mark_delivered(conn, msg.run_id, m.command_id, ts_to_float(m.applied_at) or now, m.step or None)
    if msg.rank != 0:
        return
    new_status = {tpb.COMMAND_KIND_PAUSE: "paused", tpb.COMMAND_KIND_RESUME: "running"}.get(m.kind)
    if new_status:
        conn.execute(sa.update(s.runs).where(s.runs.c.id == msg.run_id, s.runs.c.status.in_(("running", "paused")))
                     .values(status=new_status))


_APPLY: dict[Kind, Callable[[Connection, tpb.ClientMessage, Any, float], Any]] = {
    Kind.MODEL_INFO: _model_info,
    Kind.STEP_BATCH: _step_batch,
    Kind.EPOCH_SUMMARY: _epoch_summary,
    Kind.LOG_BATCH: _log_batch,
    Kind.RUN_END: _run_end,
    Kind.COMMAND_ACK: _command_ack,
    Kind.ALERT: _alerts.store_alert,
    Kind.METRIC_BATCH: _metric_batch,
}


def _flush_cursors(conn: Connection, state: _BatchState) -> None:
    for run_id, top in state.top_steps.items():
        conn.execute(sa.update(s.runs).where(s.runs.c.id == run_id, s.runs.c.steps < top).values(steps=top))
    state.top_steps.clear()
    for key in sorted(state.dirty):
        run_id, rank, session = key
        _upsert(conn, s.ingest_cursors, {"run_id": run_id, "rank": rank, "session": session,
                                         "seq": state.cursors[key]}, ["run_id", "rank", "session"])
    state.dirty.clear()


def _flush_touched(conn: Connection, state: _BatchState) -> None:
    _flush_cursors(conn, state)
    revive = sa.case((s.runs.c.status == "stale", "running"), else_=s.runs.c.status)  # data again: it goes on
    for run_id, seen in state.touched.items():
        conn.execute(sa.update(s.runs).where(s.runs.c.id == run_id).values(last_seen_at=seen, status=revive))


# ------------------------------------------------------------------------------------------ writer

Callback = Callable[[Outcome], None]


class _Work(NamedTuple):
    """One queued message: what `submit` was given."""

    msg: tpb.ClientMessage
    kind: Kind
    callback: Callback
    refusal: str  # non-empty: its body was refused, the refusal is recorded in its place

NEW_WORK_SLICE_S = 0.05
MAX_BATCH_SAMPLES = 65_536
MAX_KNOWN_RUNS = 100_000


class Writer:
    """The single writing thread: batches queued messages into one transaction; acks after commit.

    `submit` never blocks (callers bound what they queue); `shutdown` drains what is queued first. A batch that
    fails on a transient store error is refused whole with `StoreUnavailable`; one that fails otherwise is applied
    message by message, so the one message the store cannot hold is refused alone (`Outcome.refused`)."""

    def __init__(self, store: Any, *, max_batch: int = 512, on_commit: Callable[[list[Outcome]], None] | None = None,
                 alerts: Any = None):
        self._store = store
        self._alerts = alerts
        self._max_batch = max_batch
        self._on_commit = on_commit
        # Two classes of work: messages of streams that already have a committed message (a run under way) and
        # those of streams that have none yet (new runs). Each round commits the first in one transaction, then as
        # much of the second as fits in about `NEW_WORK_SLICE_S` in another, so a flood of new runs holds a running
        # trainer's acks back by about that much at most.
        self._new_cost_s = 0.001  # seconds per new-stream message, measured (a RunStart costs several queries)
        # Established work is kept per source (a stream) and taken round-robin, one message of each in turn, so
        # a stream that floods holds another stream's next message back by one round at most.
        self._established: dict[Any, collections.deque[_Work]] = {}
        self._new: collections.deque[tuple[Any, _Work]] = collections.deque()  # (source, work)
        self._pending_new: dict[Any, int] = {}  # source -> its messages queued as new
        self._known_runs: dict[str, None] = {}  # runs whose RunStart this writer committed (bounded, oldest out)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="atlas-writer", daemon=True)
        self._stopped = False
        self._unavailable_since: float | None = None
        self._backoff = 0.0
        self.unavailable_batches = 0
        self._thread.start()

    def submit(self, msg: tpb.ClientMessage, kind: Kind, callback: Callback, refusal: str = "", *,
               source: Any = None) -> None:
        """Queue one message of `source` (its stream: its messages keep their order; established work of
        different sources takes turns). New work is the RunStart of a run not yet stored, and whatever its stream
        sends after it until it is stored (the order of a stream is kept); everything else is established.
        `source=None`: established (a lone caller)."""
        with self._cond:
            item = _Work(msg, kind, callback, refusal)
            if source is not None and (self._pending_new.get(source) or (
                    kind == Kind.RUN_START and msg.run_id not in self._known_runs)):
                self._new.append((source, item))
                self._pending_new[source] = self._pending_new.get(source, 0) + 1
            else:
                self._established.setdefault(source, collections.deque()).append(item)
            self._cond.notify()

    def _take_established(self) -> list[_Work]:
        """Up to a batch of established work, one message of each source in turn (caller holds `_cond`); at most
        `MAX_BATCH_SAMPLES` step samples, so a round stays short under a flood of large batches."""
        out: list[_Work] = []
        samples = 0
        while self._established and len(out) < self._max_batch and samples < MAX_BATCH_SAMPLES:
            for source in list(self._established):
                queue_ = self._established[source]
                item = queue_.popleft()
                out.append(item)
                if item.kind == Kind.STEP_BATCH:
                    samples += len(item.msg.step_batch.samples)
                if not queue_:
                    del self._established[source]
                if len(out) >= self._max_batch or samples >= MAX_BATCH_SAMPLES:
                    break
        return out

    def _settle(self, done: list[tuple[Any, _Work]], outcomes: list[Outcome]) -> None:
        """After new work is committed: its runs are known; each of its sources' messages still queued as new move,
        in order, to established work up to the next RunStart of a run not yet stored."""
        with self._cond:
            for (src, item), outcome in zip(done, outcomes):
                if item.kind == Kind.RUN_START and outcome.error is None:
                    self._known_runs[item.msg.run_id] = None
                    while len(self._known_runs) > MAX_KNOWN_RUNS:
                        self._known_runs.pop(next(iter(self._known_runs)))
                self._pending_new[src] -= 1
            sources = {src for src, _ in done}
            blocked: set[Any] = set()
            keep: collections.deque[Any] = collections.deque()
            for src, item in self._new:
                if src in sources and src not in blocked and not (
                        item.kind == Kind.RUN_START and item.msg.run_id not in self._known_runs):
                    self._established.setdefault(src, collections.deque()).append(item)
                    self._pending_new[src] -= 1
                else:
                    if src in sources:
                        blocked.add(src)
                    keep.append((src, item))
            self._new = keep
            for src in sources:
                if not self._pending_new.get(src):
                    self._pending_new.pop(src, None)

    def shutdown(self, timeout: float = 10.0) -> bool:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _take(self) -> tuple[list[_Work], list[tuple[Any, _Work]], bool]:
        """The next established and new work; the new work is bounded while the established has any."""
        with self._cond:
            while not self._established and not self._new and not self._stopped:
                self._cond.wait()
            established = self._take_established()
            room = min(self._max_batch, max(16, int(NEW_WORK_SLICE_S / max(self._new_cost_s, 1e-6))))
            new = [self._new.popleft() for _ in range(min(len(self._new), room))]
            return established, new, self._stopped and not self._established and not self._new

    def _run(self) -> None:
        while True:
            established, new, last = self._take()
            if established:  # its own transaction: a run under way is acked before new runs land
                self._write(established)
            if new:
                started = time.perf_counter()
                outcomes = self._write([item for _, item in new])
                self._settle(new, outcomes)
                cost = (time.perf_counter() - started) / len(new)
                self._new_cost_s = 0.7 * self._new_cost_s + 0.3 * cost
            if last:
                return
            if self._backoff and not self._stopped:
                time.sleep(self._backoff)  # the store is failing: let it breathe (the clients back off too)

    def _write(self, work: list[_Work]) -> list[Outcome]:
        try:
            outcomes = self._apply_all(work)
        except Exception as exc:  # noqa: BLE001 - every message of the batch gets an answer below
            if is_transient(exc):
                outcomes = self._unavailable(work, exc)
            else:  # one message broke the batch: apply them one by one to isolate it
                log.debug("batch of %d failed; retrying one by one", len(work), exc_info=True)
                outcomes = [self._write_one(item) for item in work]
        else:
            self._available()
        if self._on_commit is not None:  # before the acks: a client that saw its ack finds the work queued
            try:
                self._on_commit(outcomes)
            except Exception:  # noqa: BLE001 - post-commit work never breaks ingest
                log.exception("post-commit hook failed")
        for item, outcome in zip(work, outcomes):
            try:
                item.callback(outcome)
            except Exception:  # noqa: BLE001 - a closed stream must not stop the writer
                log.debug("ack callback failed", exc_info=True)
        return outcomes

    def _write_one(self, item: _Work) -> Outcome:
        msg, kind = item.msg, item.kind
        try:
            outcome = self._apply_all([item])[0]
        except Exception as exc:  # noqa: BLE001 - reported to that message's stream
            if is_transient(exc):
                return self._unavailable([item], exc)[0]
            if isinstance(exc, (RunNotStarted, SequenceGap, InvalidMessage)):
                return Outcome(msg.run_id, msg.rank, msg.session, error=exc, kind=kind)
            reason = f"INVALID_ARGUMENT: the store cannot hold this {kind}: {error_line(exc)}"
            log.warning("run=%s rank=%d %s seq %d refused by the store: %s", msg.run_id, msg.rank, kind, msg.seq,
                        error_line(exc))
            if kind in UNSEQUENCED:
                return Outcome(msg.run_id, msg.rank, msg.session, error=InvalidMessage(reason), kind=kind)
            try:  # the refusal takes the message's place: recorded, acked, the run goes on
                return self._apply_all([item._replace(refusal=reason)])[0]
            except Exception as again:  # noqa: BLE001
                if is_transient(again):
                    return self._unavailable([item], again)[0]
                return Outcome(msg.run_id, msg.rank, msg.session, error=again, kind=kind)
        self._available()
        return outcome

    def _unavailable(self, work: list[_Work],
                     exc: BaseException) -> list[Outcome]:
        now = time.monotonic()
        self.unavailable_batches += 1
        if self._unavailable_since is None:
            self._unavailable_since = now
            log.error("the store cannot write (%s): refusing messages with UNAVAILABLE, nothing is acked; the "
                      "trainers keep their records and resend", error_line(exc))
        self._backoff = min(max(self._backoff * 2, 0.1), 2.0)
        error = StoreUnavailable(f"the collector's store cannot write right now ({error_line(exc)}); nothing was "
                                 "acked past what is committed: resend later")
        return [Outcome(w.msg.run_id, w.msg.rank, w.msg.session, error=error, kind=w.kind) for w in work]

    def _available(self) -> None:
        if self._unavailable_since is not None:
            log.warning("the store writes again after %.1f s unavailable", time.monotonic() - self._unavailable_since)
            self._unavailable_since = None
        self._backoff = 0.0

    def _apply_all(self, work: list[_Work]) -> list[Outcome]:
        state = _BatchState(alerts=self._alerts)
        now = time.time()
        with self._store.begin() as conn:
            outcomes = [apply_message(conn, w.msg, w.kind, state, now, w.refusal) for w in work]
            _flush_touched(conn, state)
        return outcomes
