"""Step samples in the store: one `step_batches` row per ingested StepBatch, holding the batch itself.

A trainer sends its per-step samples in StepBatch messages of up to a few thousand samples. The store keeps each
message as one row: the run, the rank, the range of steps, epochs and times it covers, the sample count, and the
serialized StepBatch (protobuf keeps NaN and Inf as they are, and every field of a sample). Ingest is then one
insert per message instead of one per sample (the per-sample insert was most of the collector's CPU time), and a
range read decodes whole batches in C. Reads go through this module: `samples` (a step range, in step order),
`latest` (the newest samples of a rank), `as_row` (a sample as a plain dict, for the store's readers and the OTel
exporter), and retention trims batches at a step or time boundary by rewriting the boundary batch.

`CommittedSteps` is what ingest hands the diagnostics driver for a batch it just committed (`Outcome.steps`), so
the driver need not read back what was just written.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from atlas_proto.v1 import telemetry_pb2 as tpb

from . import _schema as s

_T = s.step_batches
_C = _T.c


class CommittedSteps(NamedTuple):
    """A StepBatch just stored, as ingest hands it to the diagnostics driver (`Outcome.steps`): its rank and its
    samples, the wire's `StepSample`s, read by field name (NaN and Inf kept; `HasField` tells an absent loss, lr,
    gradient norm or time). Ingest makes no record per sample (a Python object per sample costs its allocation and
    the garbage collector's visits on the hot path); the driver reads what it needs from the samples it keeps."""

    rank: int
    samples: Sequence[tpb.StepSample]
    last_step: int  # the highest step of the batch


def insert(conn: Connection, run_id: str, rank: int, batch: tpb.StepBatch) -> int | None:
    """Store one StepBatch; returns its highest step (None for an empty batch)."""
    samples = batch.samples
    if not samples:
        return None
    values = _covers(samples)
    conn.execute(_T.insert(), {"run_id": run_id, "rank": rank, **values, "samples": batch.SerializeToString()})
    return values["last_step"]


def _covers(samples: Any) -> dict[str, Any]:
    """The range columns of a batch: steps by min/max; epochs and times from its first and last sample (a trainer
    sends them in order, and reading two samples keeps ingest free of more per-sample work)."""
    steps = [x.step for x in samples]
    first, last = samples[0], samples[-1]
    return {"first_step": min(steps), "last_step": max(steps),
            "first_epoch": min(first.epoch, last.epoch), "last_epoch": max(first.epoch, last.epoch),
            "first_time": _seconds(first) if first.HasField("time") else None,
            "last_time": _seconds(last) if last.HasField("time") else None, "count": len(samples)}


def _seconds(sample: tpb.StepSample) -> float:
    return sample.time.seconds + sample.time.nanos / 1e9


def _decode(blob: bytes) -> tpb.StepBatch:
    return tpb.StepBatch.FromString(blob)


def _batches(conn: Connection, run_id: str, rank: int | None, from_step: int | None, to_step: int | None,
             newest_first: bool = False) -> Iterator[Any]:
    q = sa.select(_C.id, _C.rank, _C.first_step, _C.last_step, _C.samples).where(_C.run_id == run_id)
    if rank is not None:
        q = q.where(_C.rank == rank)
    if from_step is not None:
        q = q.where(_C.last_step >= from_step)
    if to_step is not None:
        q = q.where(_C.first_step <= to_step)
    order = (_C.last_step.desc(), _C.id.desc()) if newest_first else (_C.first_step, _C.id)
    return conn.execute(q.order_by(*order)).yield_per(64)


def samples(conn: Connection, run_id: str, *, rank: int | None = 0, from_step: int | None = None,
            to_step: int | None = None, limit: int | None = None) -> list[tuple[int, tpb.StepSample]]:
    """(rank, sample) of the run in (step, rank) order within [from_step, to_step], at most `limit` of them."""
    if limit is not None and limit <= 0:
        return []
    out: list[tuple[int, int, int, tpb.StepSample]] = []  # (step, rank, arrival, sample): arrival keeps ties stable
    horizon: int | None = None  # with a limit: the limit-th smallest step so far; later batches past it are skipped
    arrival = 0
    for row in _batches(conn, run_id, rank, from_step, to_step):
        if horizon is not None and row.first_step > horizon:
            break  # batches come in first-step order: none after this one can enter the first `limit`
        for x in _decode(row.samples).samples:
            step = x.step
            if (from_step is None or step >= from_step) and (to_step is None or step <= to_step):
                out.append((step, row.rank, arrival, x))
                arrival += 1
        if limit is not None and len(out) >= limit:
            out = heapq.nsmallest(limit, out)  # only these can stay: memory and work stay bounded by `limit`
            horizon = out[-1][0]
    out.sort(key=lambda t: (t[0], t[1], t[2]))
    if limit is not None:
        del out[limit:]
    return [(r, x) for _, r, _, x in out]


def latest(conn: Connection, run_id: str, rank: int, n: int) -> list[tpb.StepSample]:
    """The newest `n` samples of one rank (by step), oldest first."""
    if n <= 0:
        return []
    got: list[tuple[int, int, tpb.StepSample]] = []  # (step, arrival, sample), at most the n largest steps so far
    arrival = 0
    for row in _batches(conn, run_id, rank, None, None, newest_first=True):
        if len(got) >= n and got[0][0] >= row.last_step:
            break  # batches come in last-step order: nothing further can be among the newest n
        for x in _decode(row.samples).samples:
            got.append((x.step, arrival, x))
            arrival += 1
        if len(got) > n:
            got = heapq.nlargest(n, got)
        got.sort()  # got[0]: the smallest step kept
    return [x for _, _, x in sorted(got)]


def ranks(conn: Connection, run_id: str) -> list[int]:
    return [r[0] for r in conn.execute(sa.select(_C.rank).where(_C.run_id == run_id).distinct().order_by(_C.rank))]


def after(conn: Connection, run_id: str, rank: int, batch_id: int, n: int) -> tuple[int, list[tpb.StepSample]]:
    """The newest `n` samples of the batches stored after `batch_id` (oldest first), and the newest batch id."""
    rows = conn.execute(sa.select(_C.id, _C.samples).where(_C.run_id == run_id, _C.rank == rank, _C.id > batch_id)
                        .order_by(_C.id.desc())).yield_per(16)
    newest = batch_id
    parts: list[list[tpb.StepSample]] = []
    have = 0
    for row in rows:
        newest = max(newest, row.id)
        part = list(_decode(row.samples).samples)
        parts.append(part)
        have += len(part)
        if have >= n:
            break
    rows.close()
    got = [x for part in reversed(parts) for x in part]
    return newest, got[-n:] if n else []


def count(conn: Connection, run_id: str | None = None, rank: int | None = None) -> int:
    q = sa.select(sa.func.coalesce(sa.func.sum(_C.count), 0))
    if run_id is not None:
        q = q.where(_C.run_id == run_id)
    if rank is not None:
        q = q.where(_C.rank == rank)
    return int(conn.execute(q).scalar_one())


def last_epoch(conn: Connection, run_id: str, rank: int = 0) -> int | None:
    return conn.execute(sa.select(sa.func.max(_C.last_epoch)).where(_C.run_id == run_id, _C.rank == rank)).scalar()


def as_row(run_id: str, rank: int, x: tpb.StepSample) -> dict[str, Any]:
    """A sample as a plain dict (NaN and Inf kept as floats; absent fields None)."""
    has = x.HasField
    return {
        "run_id": run_id, "rank": rank, "step": x.step, "epoch": x.epoch,
        "time": _seconds(x) if has("time") else None,
        "loss": x.loss if has("loss") else None,
        "lr": x.lr if has("lr") else None,
        "grad_norm": x.grad_norm if has("grad_norm") else None,
        "step_time_s": x.step_time_s if has("step_time_s") else None,
        "batch_size": x.batch_size or None,
        "amp_skipped": x.amp_skipped,
        "metrics": dict(x.metrics) if x.metrics else None,
    }


# ------------------------------------------------------------------------------------------------ retention

def delete_before_time(conn: Connection, cutoff: float) -> int:
    """Delete every sample older than `cutoff` (seconds since the epoch); returns how many."""
    deleted = 0
    whole = sa.and_(_C.last_time.is_not(None), _C.last_time < cutoff)
    deleted += int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(_C.count), 0)).where(whole)).scalar_one())
    conn.execute(sa.delete(_T).where(whole))
    boundary = conn.execute(sa.select(_C.id, _C.samples).where(_C.first_time < cutoff, _C.last_time >= cutoff)).all()
    for row in boundary:
        deleted += _rewrite(conn, row.id, row.samples, lambda x: not x.HasField("time") or _seconds(x) >= cutoff)
    return deleted


def keep_newest(conn: Connection, run_id: str, rank: int, keep: int) -> int:
    """Delete all but the newest `keep` samples (by arrival) of one run and rank; returns how many."""
    kept = 0
    deleted = 0
    rows = conn.execute(sa.select(_C.id, _C.count).where(_C.run_id == run_id, _C.rank == rank)
                        .order_by(_C.id.desc())).all()
    doomed: list[int] = []
    for row in rows:
        if kept >= keep:
            doomed.append(row.id)
            deleted += row.count
        elif kept + row.count > keep:  # the boundary batch: keep its newest `keep - kept` samples
            blob = conn.execute(sa.select(_C.samples).where(_C.id == row.id)).scalar_one()
            n = keep - kept
            deleted += _rewrite(conn, row.id, blob, None, keep_last=n)
            kept = keep
        else:
            kept += row.count
    for i in range(0, len(doomed), 500):
        conn.execute(sa.delete(_T).where(_C.id.in_(doomed[i:i + 500])))
    return deleted


def _rewrite(conn: Connection, row_id: int, blob: bytes, keep_if: Any = None, keep_last: int | None = None) -> int:
    """Rewrite one batch with only the samples kept; returns how many were dropped."""
    batch = _decode(blob)
    old = list(batch.samples)
    new = old[len(old) - keep_last:] if keep_last is not None else [x for x in old if keep_if(x)]
    if len(new) == len(old):
        return 0
    if not new:
        conn.execute(sa.delete(_T).where(_C.id == row_id))
        return len(old)
    kept = tpb.StepBatch(samples=new)
    conn.execute(sa.update(_T).where(_C.id == row_id).values(**_covers(new), samples=kept.SerializeToString()))
    return len(old) - len(new)
