"""User metrics: every scalar a trainer logged (Observer.log, accelerator.log, AtlasLogger, the Transformers
Trainer's logs, wandb_compat), one row per point and key (`atlas metrics RUN`).

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "metric_points",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("time", sa.Float),
        sa.Column("value", sa.Float),
        sa.Column("nonfinite", sa.String(9)),
    )
    op.create_index("ix_metric_points_run_key_step", "metric_points", ["run_id", "key", "step"])
    op.create_index("ix_metric_points_time", "metric_points", ["time"])


def downgrade() -> None:
    op.drop_index("ix_metric_points_time", table_name="metric_points")
    op.drop_index("ix_metric_points_run_key_step", table_name="metric_points")
    op.drop_table("metric_points")
