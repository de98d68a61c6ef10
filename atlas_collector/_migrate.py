"""Schema migrations (Alembic): `upgrade(engine)` brings any store to the newest revision.

The migration environment lives in `atlas_collector/migrations/` and ships with the package. A store created
before migrations existed (the foundation's `create_all`) has the tables of revision 0001 but no
`alembic_version`: it is stamped at 0001 first, then upgraded. Concurrent starts against one PostgreSQL are
serialised by an advisory lock, so two replicas starting at once do not both create the tables."""
from __future__ import annotations

import logging
import pathlib

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"
_PG_LOCK = 0x41544C4153  # "ATLAS": advisory lock key held while migrating


def _config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def head() -> str:
    """The newest revision this collector knows."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    rev = ScriptDirectory.from_config(cfg).get_current_head()
    assert rev is not None
    return rev


def current(conn: Connection) -> str | None:
    """The revision the store is at (None: empty or pre-migration)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply every missing migration; returns (revision before, revision after)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
            conn.commit()
        try:
            before = current(conn)
            conn.commit()
            cfg = _config(conn)
            if before is None and sa.inspect(conn).has_table("runs"):
                log.info("store has the pre-migration schema; stamping revision %s", BASELINE)
                command.stamp(cfg, BASELINE)
                conn.commit()
            command.upgrade(cfg, "head")
            conn.commit()
            after = current(conn)
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
                conn.commit()
    if before != after:
        log.info("store migrated from %s to %s", before or "empty", after)
    return before, after or ""
