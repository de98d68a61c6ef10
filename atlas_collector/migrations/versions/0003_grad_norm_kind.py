"""Non-finite gradient norms survive the store: `step_samples.grad_norm_kind` ("nan", "inf", "-inf"), as
`loss_kind` does for losses (SQLite keeps no NaN), so an engine rebuilt from the store still sees them.

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("step_samples") as batch:
        batch.add_column(sa.Column("grad_norm_kind", sa.String(4)))


def downgrade() -> None:
    with op.batch_alter_table("step_samples") as batch:
        batch.drop_column("grad_norm_kind")
