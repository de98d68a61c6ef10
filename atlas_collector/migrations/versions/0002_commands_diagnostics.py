"""Commands, diagnostic runs, persistent issues and stream holders; indexes for `atlas issues --all-runs` and `atlas runs`.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("sender", sa.String(200)),
        sa.Column("issue_check", sa.String(64)),
        sa.Column("issued_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float),
        sa.Column("delivered_step", sa.BigInteger),
    )
    op.create_index("ix_commands_run_issued", "commands", ["run_id", "issued_at"])
    op.create_table(
        "diagnostic_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("epoch", sa.Integer),
        sa.Column("health_score", sa.Float),
        sa.Column("issue_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("arch_type", sa.String(16)),
        sa.Column("summary", sa.JSON),
    )
    op.create_index("ix_diagnostic_runs_run", "diagnostic_runs", ["run_id", "id"])
    op.create_table(
        "issues",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(300), nullable=False, server_default=""),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("suggestion", sa.Text, nullable=False),
        sa.Column("epoch", sa.Integer),
        sa.Column("step", sa.BigInteger),
        sa.Column("layer", sa.String(300)),
        sa.Column("metric_key", sa.String(200)),
        sa.Column("metric_value", sa.JSON),
        sa.Column("thresholds", sa.JSON),
        sa.Column("first_seen_epoch", sa.Integer),
        sa.Column("last_seen_epoch", sa.Integer),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ux_issues_run_check_key", "issues", ["run_id", "check_id", "key"], unique=True)
    op.create_index("ix_issues_severity_active", "issues", ["severity", "active"])
    op.create_table(
        "run_streams",
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("replica_id", sa.String(36), primary_key=True),
        sa.Column("since", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("run_streams", "issues", "diagnostic_runs", "commands"):
        op.drop_table(table)
