"""Migration 0006 (the outbox and the issue's insight) goes up and down on both stores, keeping the issues."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from atlas_collector import Store
from atlas_collector._migrate import _config


def test_0006_upgrades_and_downgrades(db_url: str) -> None:
    store = Store(db_url)
    try:
        store.create_schema()
        with store.engine.connect() as conn:
            command.downgrade(_config(conn), "0005")
            conn.commit()
            inspector = sa.inspect(conn)
            assert "notifications" not in inspector.get_table_names()
            assert "insight" not in {c["name"] for c in inspector.get_columns("issues")}
            command.upgrade(_config(conn), "0006")
            conn.commit()
            inspector = sa.inspect(conn)
            assert "notifications" in inspector.get_table_names()
            assert "insight" in {c["name"] for c in inspector.get_columns("issues")}
            assert {"ix_notifications_state_next", "ix_notifications_run"} <= {
                i["name"] for i in inspector.get_indexes("notifications")}
            command.upgrade(_config(conn), "head")
            conn.commit()
    finally:
        store.close()
