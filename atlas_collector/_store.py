"""The store: one SQLAlchemy engine over SQLite (WAL) or PostgreSQL, and the reads of runs, epochs, logs and
architectures that the queries, the diagnostics driver and the OTel exporter share (step samples: `_steps`; user
metrics: `_metrics`; issues and diagnostic runs: `_diagnostics`; commands: `_commands`).

Writes happen in `_ingest.py` (the writer thread), inside `Store.begin()` transactions; `is_transient` tells the
writer which store errors say nothing about the message (resend later) and which refuse it."""
from __future__ import annotations

import difflib
import logging
import os
import pathlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from . import _schema as s
from . import _steps
from ._exceptions import AmbiguousRun, ConfigError, RunNotFound, StoreUnusable

log = logging.getLogger(__name__)

MIN_PREFIX = 6


def default_db_url(atlas_home: str | os.PathLike[str]) -> str:
    path = pathlib.Path(atlas_home).expanduser() / "atlas.db"
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed (and therefore acked) transaction survives a crash of the process and of the OS.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache: index pages of step samples stay hot
    cur.close()


class Store:
    """Owns the engine. Thread-safe: every call checks out its own connection."""

    def __init__(self, url: str) -> None:
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise ConfigError(
                f"`--db` / ATLAS_DB must be a SQLAlchemy URL such as 'sqlite:///path/atlas.db' or "
                f"'postgresql+psycopg://user@host/db', got {url!r}"
            ) from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"`--db` must use sqlite or postgresql, got {parsed.drivername!r} in {url!r}")
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                path = parsed.database
                if path.startswith("file:"):  # a SQLite URI (sqlite:///file:/x/atlas.db?mode=ro&uri=true)
                    path = path.removeprefix("file:").partition("?")[0]
                folder = pathlib.Path(path).expanduser().parent
                try:
                    if not folder.is_dir():
                        folder.mkdir(parents=True, exist_ok=True)
                        log.info("created the folder %s for the store %s (it did not exist)", folder, url)
                except OSError as exc:
                    raise StoreUnusable(f"cannot use the store {url}: its folder {folder} cannot be created "
                                        f"({exc.strerror or exc})") from None
            self.engine: Engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)
        # The URL as given (render_as_string would write sqlite:///file:x.db as file%3Ax.db), the password hidden.
        self.url = url if parsed.password is None else parsed.render_as_string(hide_password=True)
        self._sqlite_path = (parsed.database if self.dialect == "sqlite" and parsed.database
                             and parsed.database != ":memory:" else None)

    def create_schema(self) -> tuple[str | None, str]:
        """Apply the Alembic migrations (see `_migrate`), then check that the store takes writes (a read-only file
        whose schema is already current would otherwise start and then fail every write); returns (revision
        before, revision after). Raises `StoreUnusable`, one line naming the URL and the reason."""
        from ._migrate import upgrade

        try:
            revisions = upgrade(self.engine)
            self._check_writable()
        except (sa.exc.DBAPIError, OSError) as exc:
            raise StoreUnusable(f"cannot use the store {self.url}: {self._reason(exc)}") from None
        return revisions

    def _check_writable(self) -> None:
        """A write that changes nothing, rolled back: refused by a read-only SQLite file (or `?mode=ro`) and by a
        PostgreSQL session or server that is read-only."""
        with self.engine.connect() as conn:
            tx = conn.begin()
            try:
                conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num WHERE 1 = 0"))
            finally:
                tx.rollback()

    def _reason(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) or exc
        reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        if "read-only" in reason or "readonly" in reason:
            reason = f"it is read-only ({reason}); the collector must write to its store"
        path = self._sqlite_path
        if path and not path.startswith("file:") and pathlib.Path(path).expanduser().is_dir():
            reason = f"{pathlib.Path(path).expanduser()} is a folder, not a database file ({reason})"
        return reason

    def close(self) -> None:
        self.engine.dispose()

    def begin(self) -> Any:
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()

    # ------------------------------------------------------------------------------------ resolve

    def resolve_run(self, conn: Connection, ref: str, project: str = "") -> str:
        """The id of the run `ref` names: exact id, unique prefix (>= 6 chars), name (latest), `latest`."""
        ref = ref.strip()
        if not ref:
            raise RunNotFound("no run given: name a run by id, id prefix, name or 'latest'")
        base = sa.select(s.runs.c.id).select_from(s.runs.join(s.projects))
        if project:
            base = base.where(s.projects.c.name == project)
        if ref == "latest":
            row = conn.execute(base.order_by(s.runs.c.started_at.desc()).limit(1)).first()
            if row is None:
                raise RunNotFound("no runs yet" + (f" in project {project!r}" if project else ""))
            return row[0]
        row = conn.execute(base.where(s.runs.c.id == ref)).first()
        if row is not None:
            return row[0]
        if len(ref) >= MIN_PREFIX:
            ids = [r[0] for r in conn.execute(base.where(s.runs.c.id.startswith(ref, autoescape=True)).limit(5))]
            if len(ids) == 1:
                return ids[0]
            if len(ids) > 1:
                raise AmbiguousRun(f"run prefix {ref!r} matches several runs ({', '.join(ids)}); give more characters")
        row = conn.execute(
            base.where(s.runs.c.name == ref).order_by(s.runs.c.started_at.desc()).limit(1)
        ).first()
        if row is not None:
            return row[0]
        names = [r[0] for r in conn.execute(sa.select(s.runs.c.name).distinct().limit(10_000))]
        close = difflib.get_close_matches(ref, names, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        if len(ref) < MIN_PREFIX and all(c in "0123456789abcdef-" for c in ref.lower()):
            starts = conn.execute(base.where(s.runs.c.id.startswith(ref.lower(), autoescape=True)).limit(1)).first()
            if starts is not None:  # an id prefix that is too short (and perhaps a name's start too)
                names_hint = f"; or, for a name, did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise RunNotFound(f"no run named {ref!r}; an id prefix needs at least {MIN_PREFIX} characters "
                                  f"({len(ref)} given), e.g. {starts[0][:MIN_PREFIX]!r}{names_hint}", close)
        raise RunNotFound(f"no run matches {ref!r} (by id, id prefix, name or 'latest'){hint}", close)

    # --------------------------------------------------------------------------------------- runs

    def list_runs(
        self,
        conn: Connection,
        *,
        project: str = "",
        status: str = "",
        name: str = "",
        tag: str = "",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        r = s.runs.c
        # The summary's columns only: the JSON columns (hyperparameters, ...) cost a decode per row.
        q = sa.select(r.id, r.name, r.status, r.started_at, r.ended_at, r.epochs, r.steps, r.health_score,
                      r.framework, s.projects.c.name.label("project")).select_from(s.runs.join(s.projects))
        conds = []
        if project:
            conds.append(s.projects.c.name == project)
        if status:
            conds.append(s.runs.c.status == status)
        if name:
            conds.append(s.runs.c.name == name)
        if tag:
            conds.append(s.runs.c.id.in_(sa.select(s.run_tags.c.run_id).where(s.run_tags.c.tag == tag)))
        if conds:
            q = q.where(*conds)
        total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
        rows = conn.execute(q.order_by(s.runs.c.started_at.desc(), s.runs.c.id).limit(limit).offset(offset))
        out = [dict(r._mapping) for r in rows]
        self._attach_tags(conn, out)
        return out, total

    def run_row(self, conn: Connection, run_id: str) -> dict[str, Any] | None:
        """The run's own row, without its project or tags (the diagnostics read it on every update)."""
        row = conn.execute(sa.select(s.runs).where(s.runs.c.id == run_id)).first()
        return dict(row._mapping) if row is not None else None

    def get_run(self, conn: Connection, run_id: str) -> dict[str, Any]:
        row = conn.execute(
            sa.select(s.runs, s.projects.c.name.label("project"))
            .select_from(s.runs.join(s.projects))
            .where(s.runs.c.id == run_id)
        ).first()
        if row is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        out = [dict(row._mapping)]
        self._attach_tags(conn, out)
        return out[0]

    def _attach_tags(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        by_id: dict[str, list[str]] = {r["id"]: [] for r in rows}
        q = sa.select(s.run_tags.c.run_id, s.run_tags.c.tag).where(s.run_tags.c.run_id.in_(list(by_id)))
        for run_id, tag in conn.execute(q.order_by(s.run_tags.c.tag)):
            by_id[run_id].append(tag)
        for r in rows:
            r["tags"] = by_id[r["id"]]

    def delete_run(self, conn: Connection, run_id: str) -> None:
        for table in (s.step_batches, s.metric_points, s.logs, s.epochs, s.architectures, s.ingest_cursors, s.run_tags, s.issues,
                      s.diagnostic_runs, s.commands, s.run_streams):
            conn.execute(sa.delete(table).where(table.c.run_id == run_id))
        conn.execute(sa.delete(s.runs).where(s.runs.c.id == run_id))

    # ------------------------------------------------------------------------------------- epochs

    def epochs(
        self,
        conn: Connection,
        run_id: str,
        *,
        rank: int | None = 0,
        from_epoch: int | None = None,
        to_epoch: int | None = None,
    ) -> list[dict[str, Any]]:
        q = sa.select(s.epochs).where(s.epochs.c.run_id == run_id)
        if rank is not None:
            q = q.where(s.epochs.c.rank == rank)
        if from_epoch is not None:
            q = q.where(s.epochs.c.epoch >= from_epoch)
        if to_epoch is not None:
            q = q.where(s.epochs.c.epoch <= to_epoch)
        return [dict(r._mapping) for r in conn.execute(q.order_by(s.epochs.c.epoch, s.epochs.c.rank))]

    def last_epoch(self, conn: Connection, run_id: str) -> dict[str, Any] | None:
        row = conn.execute(
            sa.select(s.epochs)
            .where(s.epochs.c.run_id == run_id, s.epochs.c.rank == 0)
            .order_by(s.epochs.c.epoch.desc())
            .limit(1)
        ).first()
        return dict(row._mapping) if row is not None else None

    def steps(
        self,
        conn: Connection,
        run_id: str,
        *,
        rank: int | None = 0,
        from_step: int | None = None,
        to_step: int | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """The run's step samples in (step, rank) order as plain dicts (`_steps.as_row`: NaN and Inf as floats)."""
        return [_steps.as_row(run_id, r, x) for r, x in _steps.samples(conn, run_id, rank=rank, from_step=from_step,
                                                                      to_step=to_step, limit=limit)]

    def logs(self, conn: Connection, run_id: str, *, errors_only: bool = False, limit: int = 1000) -> list[dict[str, Any]]:
        q = sa.select(s.logs).where(s.logs.c.run_id == run_id)
        if errors_only:
            q = q.where(s.logs.c.level.in_(("ERROR", "CRITICAL")))
        rows = conn.execute(q.order_by(s.logs.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in reversed(list(rows))]

    def logs_after(self, conn: Connection, run_id: str, after_id: int) -> list[dict[str, Any]]:
        """The run's log records stored after the one with id `after_id`, oldest first (an id cursor)."""
        c = s.logs.c
        return [dict(r._mapping) for r in conn.execute(sa.select(s.logs).where(c.run_id == run_id, c.id > after_id)
                                                       .order_by(c.id))]

    def architecture(self, conn: Connection, run_id: str) -> dict[str, Any] | None:
        row = conn.execute(sa.select(s.architectures.c.payload).where(s.architectures.c.run_id == run_id)).first()
        return row[0] if row is not None else None


# ------------------------------------------------------------------------------------------- store errors

def is_transient(exc: BaseException) -> bool:
    """A store error that says nothing about the message: the disk is full, the database is locked, the server went
    away. Retrying the same message later can succeed."""
    import sqlite3

    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError,
                        sa.exc.DisconnectionError, sqlite3.OperationalError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError) and type(exc.orig).__module__.startswith("psycopg"):
        import psycopg

        return isinstance(exc.orig, psycopg.OperationalError)
    return isinstance(exc, OSError)


def error_line(exc: BaseException) -> str:
    """One line naming what the store said, without the SQL statement."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return text[:300]
