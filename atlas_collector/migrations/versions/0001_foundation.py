"""The foundation schema: projects, runs, tags, ingest cursors, architectures, epochs, step samples, logs.

A store created before migrations existed (by `metadata.create_all`) holds exactly this; it is stamped at this
revision and upgraded from here.

Revision ID: 0001
Revises:
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", BigId, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("framework", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.Column("on_critical", sa.String(8), nullable=False, server_default="warn"),
        sa.Column("world_size", sa.Integer, nullable=False, server_default="1"),
        sa.Column("pause_timeout_s", sa.Float),
        sa.Column("epochs", sa.Integer, nullable=False, server_default="0"),
        sa.Column("steps", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("health_score", sa.Float),
        sa.Column("hyperparameters", sa.JSON),
        sa.Column("versions", sa.JSON),
        sa.Column("device", sa.JSON),
        sa.Column("thresholds", sa.JSON),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("error_type", sa.String(200)),
        sa.Column("error_message", sa.Text),
        sa.Column("traceback", sa.Text),
    )
    op.create_index("ix_runs_project_started", "runs", ["project_id", "started_at"])
    op.create_index("ix_runs_name_started", "runs", ["name", "started_at"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_started", "runs", ["started_at"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(200), primary_key=True),
    )
    op.create_index("ix_run_tags_tag", "run_tags", ["tag"])
    op.create_table(
        "ingest_cursors",
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("rank", sa.Integer, primary_key=True),
        sa.Column("session", sa.String(36), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "architectures",
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_class", sa.String(200)),
        sa.Column("total_parameters", sa.BigInteger),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_table(
        "epochs",
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("rank", sa.Integer, primary_key=True),
        sa.Column("epoch", sa.Integer, primary_key=True),
        sa.Column("ended_at", sa.Float),
        sa.Column("duration_seconds", sa.Float),
        sa.Column("global_step", sa.BigInteger),
        sa.Column("loss_mean", sa.Float),
        sa.Column("loss_min", sa.Float),
        sa.Column("loss_max", sa.Float),
        sa.Column("val_loss", sa.Float),
        sa.Column("samples_per_sec", sa.Float),
        sa.Column("process_rss_mb", sa.Float),
        sa.Column("cumulative_co2_kg", sa.Float),
        sa.Column("payload", sa.JSON, nullable=False),
    )
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
    )
    op.create_index("ix_step_samples_run_step", "step_samples", ["run_id", "rank", "step"])
    op.create_table(
        "logs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("time", sa.Float),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("logger", sa.String(200)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("epoch", sa.Integer),
        sa.Column("kind", sa.String(16)),
    )
    op.create_index("ix_logs_run", "logs", ["run_id", "id"])
    op.create_index("ix_logs_run_level", "logs", ["run_id", "level"])


def downgrade() -> None:
    for table in ("logs", "step_samples", "epochs", "architectures", "ingest_cursors", "run_tags", "runs",
                  "projects"):
        op.drop_table(table)
