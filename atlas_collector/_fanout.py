"""Command fan-out: which streams of this process hold which run, and how a command reaches them.

`CommandHub` is the registry (run id -> the `_StreamConn`s of this process that streamed it). `send_command`
records a command and puts it on every local stream of the run; on PostgreSQL it also `NOTIFY`s the other
collector replicas in the same transaction, and each replica's `PgListener` thread (`LISTEN`) puts it on the
streams it holds, so a STOP sent through replica B reaches a trainer streaming to replica A."""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any, Protocol

import sqlalchemy as sa

from atlas_proto.v1 import telemetry_pb2 as tpb

from . import _commands
from . import _schema as s

log = logging.getLogger(__name__)

CHANNEL = "atlas_commands"


class _Pushable(Protocol):
    def push(self, msg: tpb.ServerMessage) -> None: ...


class CommandHub:
    """Thread-safe registry of this process's streams by run id."""

    def __init__(self) -> None:
        self.replica_id = str(uuid.uuid4())
        self._lock = threading.Lock()
        self._streams: dict[str, set[Any]] = {}

    def register(self, run_id: str, stream: _Pushable) -> bool:
        """Note that `stream` carries `run_id`; True the first time for this pair."""
        with self._lock:
            held = self._streams.setdefault(run_id, set())
            if stream in held:
                return False
            held.add(stream)
            return True

    def unregister(self, stream: _Pushable) -> list[str]:
        """Forget `stream`; returns the runs this process no longer holds any stream of."""
        released = []
        with self._lock:
            for run_id in [r for r, held in self._streams.items() if stream in held]:
                self._streams[run_id].discard(stream)
                if not self._streams[run_id]:
                    del self._streams[run_id]
                    released.append(run_id)
        return released

    def holds(self, run_id: str) -> bool:
        with self._lock:
            return bool(self._streams.get(run_id))

    def deliver_local(self, cmd: tpb.Command) -> int:
        """Put `cmd` on every stream of its run held here; returns how many."""
        with self._lock:
            streams = list(self._streams.get(cmd.run_id, ()))
        for stream in streams:
            stream.push(tpb.ServerMessage(command=cmd))
        return len(streams)


def note_holder(store: Any, run_id: str, replica_id: str, held: bool) -> None:
    """Record (PostgreSQL) that this replica holds, or no longer holds, a stream of the run."""
    if store.dialect != "postgresql":
        return
    from sqlalchemy.dialects.postgresql import insert

    with store.begin() as conn:
        if held:
            conn.execute(insert(s.run_streams).values(run_id=run_id, replica_id=replica_id, since=time.time())
                         .on_conflict_do_nothing())
        else:
            conn.execute(sa.delete(s.run_streams).where(s.run_streams.c.run_id == run_id,
                                                        s.run_streams.c.replica_id == replica_id))


def send_command(store: Any, hub: CommandHub, run_id: str, kind: str, *, reason: str = "", sender: str = "",
                 issue_check: str | None = None, live_after: float | None = None,
                 record_if_ended: bool = False) -> tuple[dict[str, Any], bool]:
    """Record a command and deliver it to every stream of the run, on this replica and (PostgreSQL) the others.

    Returns the command's row and whether it was delivered: a stream of the run is held here, or (PostgreSQL)
    another replica holds one (`run_streams`) and the run is live (data within `live_after` seconds), so that
    replica got the NOTIFY. A command nobody received stays pending and goes out when a stream of the run
    connects."""
    shared = store.dialect == "postgresql"
    with store.begin() as conn:
        row = _commands.record_command(conn, run_id, kind, reason=reason, sender=sender, issue_check=issue_check,
                                       record_if_ended=record_if_ended)
        live = False
        if shared:
            payload = json.dumps({"id": row["id"], "run_id": run_id, "origin": hub.replica_id})
            conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload})
            if live_after is not None:
                holders = sa.select(s.run_streams.c.run_id).where(s.run_streams.c.run_id == run_id,
                                                                  s.run_streams.c.replica_id != hub.replica_id)
                seen = conn.execute(sa.select(s.runs.c.last_seen_at, s.runs.c.status)
                                    .where(s.runs.c.id == run_id, s.runs.c.id.in_(holders))).first()
                live = seen is not None and seen.status in ("running", "paused", "stale") \
                    and seen.last_seen_at >= time.time() - live_after
    local = hub.deliver_local(_commands.to_message(row))
    log.info("run=%s command=%s kind=%s sender=%s issue=%s local_streams=%d", run_id, row["id"], kind,
             sender or "-", issue_check or "-", local)
    return row, bool(local) or live


class PgListener:
    """One thread per collector on PostgreSQL: LISTEN for commands sent through other replicas, deliver them to
    the streams held here. Reconnects with back-off; `shutdown` is bounded and safe to call twice."""

    def __init__(self, store: Any, hub: CommandHub) -> None:
        self._store = store
        self._hub = hub
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="atlas-pg-listen", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        return self._ready.wait(timeout)

    def shutdown(self, timeout: float = 5.0) -> bool:
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        import psycopg

        dsn = self._store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    backoff = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._on_notify(note.payload)
            except Exception as exc:  # noqa: BLE001 - thread boundary: log, back off, reconnect
                if self._stop.is_set():
                    return
                log.warning("command listener lost its PostgreSQL connection (%s); reconnecting in %.1f s",
                            type(exc).__name__, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _on_notify(self, payload: str) -> None:
        try:
            note = json.loads(payload)
        except ValueError:
            return
        if note.get("origin") == self._hub.replica_id or not self._hub.holds(note.get("run_id", "")):
            return
        with self._store.connect() as conn:
            row = conn.execute(sa.select(s.commands).where(s.commands.c.id == note.get("id"))).first()
        if row is not None:
            n = self._hub.deliver_local(_commands.to_message(dict(row._mapping)))
            log.info("run=%s command=%s kind=%s delivered from another replica to %d stream(s)",
                     row.run_id, row.id, row.kind, n)
