"""Retention of step samples: the only table that grows with every batch. Epochs, issues, commands and logs stay.

`apply_retention` deletes step samples older than `days`, and per (run, rank) all but the newest
`steps_per_run`; it only looks at runs that got data since `since` (the previous pass), so a pass costs what
changed, not the whole table."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import _schema as s
from . import _metrics, _steps

log = logging.getLogger(__name__)


def apply_retention(conn: Connection, *, steps_per_run: int = 0, days: float = 0.0, now: float,
                    since: float | None = None) -> int:
    """Delete old step samples inside the caller's transaction; returns how many."""
    deleted = 0
    if days > 0:
        deleted += _steps.delete_before_time(conn, now - days * 86400.0)
        _metrics.delete_before_time(conn, now - days * 86400.0)  # user metrics: bounded as the step samples
    if steps_per_run > 0:
        runs = sa.select(s.runs.c.id)
        if since is not None:
            runs = runs.where(s.runs.c.last_seen_at >= since)
        for run_id in [r[0] for r in conn.execute(runs)]:
            for rank in _steps.ranks(conn, run_id):
                deleted += _steps.keep_newest(conn, run_id, rank, steps_per_run)
            _metrics.keep_newest(conn, run_id, steps_per_run)
    if deleted:
        log.info("retention deleted %d step samples (keep %d per run and rank, %g days)", deleted, steps_per_run,
                 days)
    return deleted


def mark_stale(conn: Connection, *, now: float, stale_after_s: float) -> list[str]:
    """Runs with no data (heartbeats count) for `stale_after_s` and no RunEnd become `stale`; returns their ids."""
    r = s.runs.c
    cond = sa.and_(r.status.in_(("running", "paused")), r.last_seen_at < now - stale_after_s)
    ids = [row[0] for row in conn.execute(sa.select(r.id).where(cond))]
    if ids:
        conn.execute(sa.update(s.runs).where(r.id.in_(ids), cond).values(status="stale"))
    return ids


def live_runs(conn: Connection, limit: int = 256) -> list[str]:
    """Runs whose time-based checks the timer drives: running or stale (paused runs are waiting on purpose)."""
    r = s.runs.c
    return [row[0] for row in conn.execute(sa.select(r.id).where(r.status.in_(("running", "stale")))
                                           .order_by(r.last_seen_at.desc()).limit(limit))]
