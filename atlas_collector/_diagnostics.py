"""The collector's side of `atlas_diagnostics`: stored rows in, diagnostics records out; issues to rows and back.

Store-specific work only. Each stored row becomes the atlas.v1 message it came from and `atlas_proto.convert`
makes the record, the same function the offline `atlas diagnose` uses, so a run diagnosed as it streams, a run
rebuilt from the store after a restart and an exported run see the same records. The epoch and architecture payloads
(protobuf JSON) are read with `_queries.fill`, as the QueryService answers them, so a row an older collector let in
is repaired the same way on both paths; step and log rows are columns. Time-based checks get `now` from the caller;
nothing here reads a clock."""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from atlas_diagnostics import (
    Architecture,
    DiagnosticsError,
    EpochRecord,
    Issue,
    LogRecord,
    Thresholds,
    category_counts,
    severity_counts,
)
from atlas_proto import convert
from atlas_proto.convert import issue_key
from atlas_proto.v1 import telemetry_pb2 as tpb

from . import _schema as s
from ._queries import fill

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ records

def epoch_record(row: Mapping[str, Any]) -> EpochRecord:
    """An `epochs` row (its EpochSummary payload) as an `EpochRecord`; the row's `ended_at` (when the collector
    received it) stands in for an end time the trainer did not send."""
    msg = fill(row["payload"], tpb.EpochSummary(), "epoch summary", row["run_id"])
    return convert.epoch_record(msg, int(row["rank"]), ended_at=row.get("ended_at"))


def log_record(row: Mapping[str, Any]) -> LogRecord:
    """A `logs` row as a `LogRecord`."""
    msg = tpb.LogRecord(level=row["level"], message=row["message"], epoch=row["epoch"] or 0, kind=row.get("kind") or "")
    convert.float_to_ts(row["time"], msg.time)
    return convert.log_record(msg, int(row["rank"]))


def architecture(payload: Mapping[str, Any] | None, run_id: str = "") -> Architecture | None:
    """A stored ModelInfo payload as an `Architecture` (None when nothing was stored)."""
    if not payload:
        return None
    return convert.architecture(fill(payload, tpb.ModelInfo(), "architecture", run_id))


def run_thresholds(overrides: Mapping[str, Any] | None, base: Thresholds) -> Thresholds:
    """The collector's thresholds with the run's RunStart overrides. A bad override is logged and ignored, never
    fatal (the offline `atlas diagnose` refuses it instead: there a person reads the message)."""
    try:
        return convert.thresholds(overrides, base)
    except DiagnosticsError as exc:
        log.warning("ignoring the run's threshold overrides: %s", exc)
        return base


# ------------------------------------------------------------------------------------------- issues

def save_issues(conn: Connection, run_id: str, issues: Iterable[Issue], now: float) -> set[tuple[str, str]]:
    """Upsert the run's issues (one row per (check, key)); returns the idents that became active with this save
    (new, or inactive before) — what the `on_critical` policy acts on, so a rebuilt engine re-finding an issue
    the store already holds as active does not act twice."""
    c = s.issues.c
    before = {(r.check_id, r.key): bool(r.active) for r in
              conn.execute(sa.select(c.check_id, c.key, c.active).where(c.run_id == run_id))}
    became_active: set[tuple[str, str]] = set()
    for issue in issues:
        ident = (issue.check, issue_key(issue))
        row = convert.issue_row(run_id, issue, now)
        if ident not in before:
            conn.execute(sa.insert(s.issues).values(created_at=now, **row))
        else:
            conn.execute(sa.update(s.issues).where(c.run_id == run_id, c.check_id == ident[0], c.key == ident[1])
                         .values(**row))
        if issue.active and not before.get(ident, False):
            became_active.add(ident)
    return became_active


def load_issues(conn: Connection, run_id: str) -> list[Issue]:
    rows = conn.execute(sa.select(s.issues).where(s.issues.c.run_id == run_id).order_by(s.issues.c.id))
    return [convert.row_issue(r._mapping) for r in rows]


def save_diagnostic_run(conn: Connection, run_id: str, issues: list[Issue], *, trigger: str, epoch: int | None,
                        arch_type: str, score: float, now: float) -> int:
    summary = {"severity_breakdown": severity_counts(issues), "category_breakdown": category_counts(issues)}
    result = conn.execute(sa.insert(s.diagnostic_runs).values(
        run_id=run_id, created_at=now, trigger=trigger, epoch=epoch, health_score=score,
        issue_count=sum(1 for i in issues if i.active), arch_type=arch_type, summary=summary,
    ))
    return int(result.inserted_primary_key[0])
