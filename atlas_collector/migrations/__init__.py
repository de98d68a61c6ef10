"""Alembic migration environment of the collector's store (shipped as package data).

`atlas_collector._migrate.upgrade(engine)` applies it; `atlas-collector migrate` and the daemon's start call that."""
