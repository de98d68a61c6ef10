"""Commands to a run (PAUSE, RESUME, STOP) in the store: record, mark delivered, list pending.

Plain functions over a connection; `_fanout.CommandHub` puts them on the run's streams."""
from __future__ import annotations

import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from atlas_proto.v1 import telemetry_pb2 as tpb

from . import _schema as s
from atlas_proto.convert import COMMAND_NAMES, COMMAND_VALUES, ENDED_STATUSES, float_to_ts
from ._exceptions import InvalidMessage, RunEnded

MAX_REASON = 2000


def record_command(conn: Connection, run_id: str, kind: str, *, reason: str = "", sender: str = "",
                   issue_check: str | None = None, now: float | None = None,
                   record_if_ended: bool = False) -> dict[str, Any]:
    """Store a new command for `run_id` and return its row. A run that has ended takes no command, unless
    `record_if_ended` (the policy's command for a run the trainer's NaN fast path already stopped: it is
    recorded as for any other critical issue, and never delivered)."""
    if kind not in COMMAND_VALUES:
        raise InvalidMessage(f"command kind must be one of {', '.join(COMMAND_VALUES)}, got {kind!r}")
    status = conn.execute(sa.select(s.runs.c.status).where(s.runs.c.id == run_id)).scalar_one()
    if status in ENDED_STATUSES and not record_if_ended:
        raise RunEnded(f"run {run_id} is {status}; it takes no {kind} command")
    row = {
        "id": str(uuid.uuid4()), "run_id": run_id, "kind": kind, "reason": (reason or "")[:MAX_REASON] or None,
        "sender": (sender or "")[:200] or None, "issue_check": issue_check or None,
        "issued_at": time.time() if now is None else now, "delivered_at": None, "delivered_step": None,
    }
    conn.execute(sa.insert(s.commands).values(**row))
    return row


def mark_delivered(conn: Connection, run_id: str, command_id: str, applied_at: float, step: int | None) -> bool:
    """Record the trainer's CommandAck (the first one wins); False for a command id this run never had."""
    c = s.commands.c
    result = conn.execute(
        sa.update(s.commands).where(c.id == command_id, c.run_id == run_id, c.delivered_at.is_(None))
        .values(delivered_at=applied_at, delivered_step=step)
    )
    return bool(result.rowcount)


def pending_commands(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Commands of a live run that no trainer has acknowledged yet, oldest first."""
    status = conn.execute(sa.select(s.runs.c.status).where(s.runs.c.id == run_id)).scalar()
    if status is None or status in ENDED_STATUSES:
        return []
    c = s.commands.c
    rows = conn.execute(sa.select(s.commands).where(c.run_id == run_id, c.delivered_at.is_(None))
                        .order_by(c.issued_at, c.id))
    return [dict(r._mapping) for r in rows]


def list_commands(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    c = s.commands.c
    return [dict(r._mapping) for r in conn.execute(sa.select(s.commands).where(c.run_id == run_id)
                                                   .order_by(c.issued_at, c.id))]


def to_message(row: dict[str, Any]) -> tpb.Command:
    """The wire form of a stored command."""
    out = tpb.Command(command_id=row["id"], run_id=row["run_id"], kind=COMMAND_VALUES[row["kind"]],
                      reason=row["reason"] or "", issue_check=row["issue_check"] or "", sender=row["sender"] or "")
    float_to_ts(row["issued_at"], out.issued_at)
    return out


def from_message(cmd: tpb.Command) -> dict[str, Any]:
    return {"id": cmd.command_id, "run_id": cmd.run_id, "kind": COMMAND_NAMES.get(cmd.kind, ""),
            "reason": cmd.reason or None, "issue_check": cmd.issue_check or None, "sender": cmd.sender or None,
            "issued_at": cmd.issued_at.seconds + cmd.issued_at.nanos / 1e9}
