"""User metrics in the store: every scalar a trainer logged (MetricBatch), one `metric_points` row per point and key.

Writes: `insert` (one executemany per MetricBatch). Reads: `keys` (each key with its count and last value, for
`atlas metrics RUN`) and `series` (one key's points in step order, for `atlas metrics RUN KEY`, `atlas export`,
`atlas watch`, the UI's /api/runs/{id}/metrics and the OTel exporter). Bounded as step samples are: retention
keeps the newest `steps_per_run` points per run and key, and deletes points older than its `days`.

A value is a float; NaN and Inf are valid data, kept in `nonfinite` (SQLite stores a NaN float as NULL)."""
from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from atlas_proto.v1 import telemetry_pb2 as tpb

from . import _schema as s

_T = s.metric_points
_C = _T.c
DEFAULT_SERIES_LIMIT = 100_000
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _split(value: float) -> tuple[float | None, str | None]:
    if math.isfinite(value):
        return value, None
    return None, "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _join(value: float | None, nonfinite: str | None) -> float:
    if nonfinite:
        return _NONFINITE.get(nonfinite, math.nan)
    return math.nan if value is None else float(value)


def insert(conn: Connection, run_id: str, rank: int, batch: tpb.MetricBatch) -> int:
    """Store every (point, key) of `batch`; returns how many rows."""
    rows = []
    for point in batch.points:
        t = point.time.seconds + point.time.nanos / 1e9 if point.HasField("time") else None
        for key, raw in point.values.items():
            value, nonfinite = _split(raw)
            rows.append({"run_id": run_id, "rank": rank, "key": key, "step": point.step, "epoch": point.epoch,
                         "time": t, "value": value, "nonfinite": nonfinite})
    if rows:
        conn.execute(sa.insert(_T), rows)
    return len(rows)


def keys(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Each metric key of the run, by name: {key, count, last_value, last_step, last_epoch, last_time} (the last
    value is the point logged last)."""
    counts = conn.execute(sa.select(_C.key, sa.func.count(), sa.func.max(_C.id)).where(_C.run_id == run_id)
                          .group_by(_C.key)).all()
    if not counts:
        return []
    last_ids = [row[2] for row in counts]
    last: dict[str, Any] = {}
    for i in range(0, len(last_ids), 500):
        for row in conn.execute(sa.select(_C.key, _C.step, _C.epoch, _C.time, _C.value, _C.nonfinite)
                                .where(_C.id.in_(last_ids[i:i + 500]))):
            last[row.key] = row
    out = []
    for key, count, _ in sorted(counts, key=lambda r: r[0]):
        row = last[key]
        out.append({"key": key, "count": int(count), "last_value": _join(row.value, row.nonfinite),
                    "last_step": int(row.step), "last_epoch": int(row.epoch), "last_time": row.time})
    return out


def series(conn: Connection, run_id: str, key: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The newest `limit` points of one key (default 100,000), in (step, logging) order: {step, epoch, value, time}."""
    limit = DEFAULT_SERIES_LIMIT if not limit else limit
    rows = conn.execute(sa.select(_C.step, _C.epoch, _C.time, _C.value, _C.nonfinite)
                        .where(_C.run_id == run_id, _C.key == key)
                        .order_by(_C.step.desc(), _C.id.desc()).limit(limit)).all()
    return [{"step": int(r.step), "epoch": int(r.epoch), "value": _join(r.value, r.nonfinite), "time": r.time}
            for r in reversed(rows)]


def all_series(conn: Connection, run_id: str, limit_per_key: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every key's series (see `series`), by key."""
    return {k["key"]: series(conn, run_id, k["key"], limit_per_key) for k in keys(conn, run_id)}


# ------------------------------------------------------------------------------------------ retention

def keep_newest(conn: Connection, run_id: str, n: int) -> int:
    """Delete all but the newest `n` points (by step) of each key of the run; returns how many."""
    deleted = 0
    for key, count in conn.execute(sa.select(_C.key, sa.func.count()).where(_C.run_id == run_id).group_by(_C.key)):
        if count <= n:
            continue
        cutoff = conn.execute(sa.select(_C.step).where(_C.run_id == run_id, _C.key == key)
                              .order_by(_C.step.desc(), _C.id.desc()).offset(n - 1).limit(1)).scalar()
        if cutoff is None:
            continue
        deleted += conn.execute(sa.delete(_T).where(_C.run_id == run_id, _C.key == key, _C.step < cutoff)).rowcount
    return deleted


def delete_before_time(conn: Connection, before: float) -> int:
    return conn.execute(sa.delete(_T).where(_C.time < before)).rowcount or 0
