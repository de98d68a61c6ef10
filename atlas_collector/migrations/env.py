"""Alembic environment: always run on a connection handed in by `atlas_collector._migrate`."""
from __future__ import annotations

from alembic import context

from atlas_collector._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the collector always hands one in
    raise RuntimeError("run migrations through `atlas-collector migrate` (atlas_collector._migrate.upgrade)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
