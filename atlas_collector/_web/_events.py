"""Live updates for the UI: the collector tells `EventHub` what it committed; open event streams read it.

Pushed, never polled: the writer's post-commit hook (`notify`, on the writer thread, right after the commit), the
diagnostics driver (`changed(run, "issues")` after it stored a run's issues) and the stale timer call the hub;
the hub wakes the streams that watch those runs on the event loop. A stream then reads what is new since it last
sent (steps from the series cache, epochs, issues, status, logs) and sends it as server-sent events. Wake-ups
coalesce: a stream that is busy sending gets one read for everything committed meanwhile, so a flood of commits
costs a page a few reads a second, not one per commit."""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Iterable

log = logging.getLogger(__name__)

# Writer kinds and what a page may want to hear about them.
_KINDS = {"step_batch": "step", "epoch_summary": "epoch", "log_batch": "log", "run_start": "status",
          "run_end": "status", "command_ack": "status", "heartbeat": "status", "model_info": "status"}


class Subscription:
    """What one event stream waits for: the runs it watches (None: every run) and what changed since it read."""

    def __init__(self, run_id: str | None) -> None:
        self.run_id = run_id
        self.pending: dict[str, set[str]] = {}
        self.wake = asyncio.Event()
        self.closed = False

    def take(self) -> dict[str, set[str]]:
        pending, self.pending = self.pending, {}
        self.wake.clear()
        return pending


class EventHub:
    """Thread-safe: `notify`/`changed` from any thread; subscriptions live on the event loop given to `bind`."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self.closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # ---------------------------------------------------------------------------------- producers

    def notify(self, outcomes: Iterable[Any]) -> None:
        """The writer's post-commit hook: which runs got which kind of data."""
        if not self._subs:
            return
        touched: dict[str, set[str]] = {}
        for o in outcomes:
            kind = _KINDS.get(o.kind)
            if kind is not None and o.error is None and (o.applied or kind == "status"):
                touched.setdefault(o.run_id, set()).add(kind)
        if touched:
            self._post(touched)

    def changed(self, run_id: str, kind: str) -> None:
        """Something other than ingest changed a run: "issues" (the driver), "status" (stale timer, a command)."""
        if self._subs:
            self._post({run_id: {kind}})

    def _post(self, touched: dict[str, set[str]]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._dispatch, touched)
        except RuntimeError:  # the loop is closing
            pass

    def _dispatch(self, touched: dict[str, set[str]]) -> None:  # event loop
        for sub in list(self._subs):
            for run_id, kinds in touched.items():
                if sub.run_id is None or sub.run_id == run_id:
                    sub.pending.setdefault(run_id, set()).update(kinds)
                    sub.wake.set()

    # ---------------------------------------------------------------------------------- consumers

    def subscribe(self, run_id: str | None) -> Subscription:  # event loop
        sub = Subscription(run_id)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def close(self) -> None:  # event loop: every open stream ends
        self.closed = True
        for sub in list(self._subs):
            sub.closed = True
            sub.wake.set()

    @property
    def subscribers(self) -> int:
        return len(self._subs)
