"""Alerts: the notification outbox (one row per message to one route: pending, sent or failed, with its
attempts and the time of the next one), and the issue's `insight` (a short explanation written when it opened).

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id", ondelete="CASCADE")),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("issue_id", _BigId),
        sa.Column("check_id", sa.String(64)),
        sa.Column("severity", sa.String(8)),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
    )
    op.create_index("ix_notifications_state_next", "notifications", ["state", "next_attempt_at"])
    op.create_index("ix_notifications_run", "notifications", ["run_id", "id"])
    op.create_index("ix_notifications_created", "notifications", ["created_at"])
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("insight", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("insight")
    op.drop_index("ix_notifications_created", table_name="notifications")
    op.drop_index("ix_notifications_run", table_name="notifications")
    op.drop_index("ix_notifications_state_next", table_name="notifications")
    op.drop_table("notifications")
