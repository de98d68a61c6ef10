"""Step samples stored per ingested batch: `step_batches` (one row per StepBatch, the batch serialized) replaces
`step_samples` (one row per sample). Existing samples are carried over, in batches of up to 1,000 per run and rank in
the order they arrived; the downgrade expands them back into rows.

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from atlas_proto.v1 import telemetry_pb2 as tpb

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHUNK = 1000
_KINDS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}

_samples = sa.table(
    "step_samples", sa.column("id"), sa.column("run_id"), sa.column("rank"), sa.column("step"), sa.column("epoch"),
    sa.column("time"), sa.column("loss"), sa.column("loss_kind"), sa.column("lr"), sa.column("grad_norm"),
    sa.column("grad_norm_kind"), sa.column("step_time_s"), sa.column("batch_size"), sa.column("amp_skipped"),
    sa.column("metrics"),
)
_batches = sa.table(
    "step_batches", sa.column("run_id"), sa.column("rank"), sa.column("first_step"), sa.column("last_step"),
    sa.column("first_epoch"), sa.column("last_epoch"), sa.column("first_time"), sa.column("last_time"),
    sa.column("count"), sa.column("samples"),
)


def upgrade() -> None:
    op.create_table(
        "step_batches",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("first_step", sa.BigInteger, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("first_epoch", sa.Integer, nullable=False),
        sa.Column("last_epoch", sa.Integer, nullable=False),
        sa.Column("first_time", sa.Float),
        sa.Column("last_time", sa.Float),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("samples", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_step_batches_run_rank_step", "step_batches", ["run_id", "rank", "first_step"])
    op.create_index("ix_step_batches_last_time", "step_batches", ["last_time"])
    conn = op.get_bind()
    keys = conn.execute(sa.select(_samples.c.run_id, _samples.c.rank).distinct()).all()
    for run_id, rank in keys:
        rows = conn.execute(sa.select(_samples).where(_samples.c.run_id == run_id, _samples.c.rank == rank)
                            .order_by(_samples.c.id)).mappings()
        chunk: list[tpb.StepSample] = []
        for row in rows:
            chunk.append(_sample(row))
            if len(chunk) == CHUNK:
                _write(conn, run_id, rank, chunk)
                chunk = []
        if chunk:
            _write(conn, run_id, rank, chunk)
    op.drop_index("ix_step_samples_run_step", table_name="step_samples")
    op.drop_table("step_samples")


def _sample(row: Any) -> tpb.StepSample:
    x = tpb.StepSample(step=int(row["step"]), epoch=int(row["epoch"]), amp_skipped=bool(row["amp_skipped"]),
                       batch_size=int(row["batch_size"] or 0))
    if row["time"] is not None:
        x.time.FromNanoseconds(int(row["time"] * 1e9))
    loss = _KINDS[row["loss_kind"]] if row["loss_kind"] else row["loss"]
    if loss is not None:
        x.loss = loss
    grad = _KINDS[row["grad_norm_kind"]] if row["grad_norm_kind"] else row["grad_norm"]
    if grad is not None:
        x.grad_norm = grad
    for name in ("lr", "step_time_s"):
        if row[name] is not None:
            setattr(x, name, row[name])
    metrics = row["metrics"]
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    for key, value in (metrics or {}).items():
        x.metrics[key] = float(value)
    return x


def _write(conn: Any, run_id: str, rank: int, chunk: list[tpb.StepSample]) -> None:
    times = [x.time.seconds + x.time.nanos / 1e9 for x in chunk if x.HasField("time")]
    conn.execute(_batches.insert().values(
        run_id=run_id, rank=rank, first_step=min(x.step for x in chunk), last_step=max(x.step for x in chunk),
        first_epoch=min(x.epoch for x in chunk), last_epoch=max(x.epoch for x in chunk),
        first_time=min(times) if times else None, last_time=max(times) if times else None, count=len(chunk),
        samples=tpb.StepBatch(samples=chunk).SerializeToString()))


def downgrade() -> None:
    op.create_table(
        "step_samples",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("time", sa.Float),
        sa.Column("loss", sa.Float),
        sa.Column("loss_kind", sa.String(4)),
        sa.Column("lr", sa.Float),
        sa.Column("grad_norm", sa.Float),
        sa.Column("step_time_s", sa.Float),
        sa.Column("batch_size", sa.Integer),
        sa.Column("amp_skipped", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("metrics", sa.JSON),
        sa.Column("grad_norm_kind", sa.String(4)),
    )
    op.create_index("ix_step_samples_run_step", "step_samples", ["run_id", "rank", "step"])
    conn = op.get_bind()
    target = sa.table("step_samples", *(sa.column(c) for c in (
        "run_id", "rank", "step", "epoch", "time", "loss", "loss_kind", "lr", "grad_norm", "grad_norm_kind",
        "step_time_s", "batch_size", "amp_skipped")), sa.column("metrics", sa.JSON))
    batches = sa.table("step_batches", sa.column("id"), sa.column("run_id"), sa.column("rank"), sa.column("samples"))
    for row in conn.execute(sa.select(batches).order_by(batches.c.id)).all():
        rows = [_row(row.run_id, row.rank, x) for x in tpb.StepBatch.FromString(row.samples).samples]
        if rows:
            conn.execute(target.insert(), rows)
    op.drop_table("step_batches")


def _row(run_id: str, rank: int, x: tpb.StepSample) -> dict[str, Any]:
    def split(field: str) -> tuple[float | None, str | None]:
        if not x.HasField(field):
            return None, None
        v = getattr(x, field)
        if v != v:
            return None, "nan"
        if v in (float("inf"), float("-inf")):
            return None, "inf" if v > 0 else "-inf"
        return v, None
    loss, loss_kind = split("loss")
    grad, grad_kind = split("grad_norm")
    return {"run_id": run_id, "rank": rank, "step": x.step, "epoch": x.epoch,
            "time": x.time.seconds + x.time.nanos / 1e9 if x.HasField("time") else None,
            "loss": loss, "loss_kind": loss_kind, "lr": x.lr if x.HasField("lr") else None, "grad_norm": grad,
            "grad_norm_kind": grad_kind, "step_time_s": x.step_time_s if x.HasField("step_time_s") else None,
            "batch_size": x.batch_size or None, "amp_skipped": x.amp_skipped,
            "metrics": dict(x.metrics) if x.metrics else None}
