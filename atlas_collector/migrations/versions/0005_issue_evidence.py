"""Issues keep their evidence (the numbers and facts behind each finding; `atlas issues --json` `evidence`).
Rank and `explains` are computed when issues are read (atlas_diagnostics.rank_issues), so they need no column.

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("evidence", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("evidence")
