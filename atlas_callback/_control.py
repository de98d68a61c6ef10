"""Commands from the collector (PAUSE, RESUME, STOP) as state the training loop reads at batch boundaries.

The sender thread calls `on_command`; adapters call `decide()` at a batch boundary (on every rank at the
same point), combine it across ranks when the job is distributed, and then `apply()` the agreed decision:
STOP sets the framework's stop flag, PAUSE blocks in `wait_while_paused()` until RESUME, STOP, or the
effective timeout (the smaller of `pause_timeout` and the process group's timeout minus a margin, since a
longer pause would kill a DDP job), after which the run stops."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from atlas_proto.v1 import telemetry_pb2 as tpb

log = logging.getLogger(__name__)

PG_TIMEOUT_MARGIN_S = 60.0


class Control:
    def __init__(self, pause_timeout: float, ack: Callable[[tpb.Command, int], None]) -> None:
        self.pause_timeout = pause_timeout
        self.pg_timeout: float | None = None  # set by adapters under DDP
        self._ack = ack
        self._lock = threading.Lock()
        self._resumed = threading.Condition(self._lock)
        self._stop = False
        self._pause = False
        # Neither a stop nor a pause is pending: read by the trainer at every batch boundary, so a plain attribute.
        # Lowered before a flag is raised, raised again only after both are down: whoever sees a flag set sees
        # `quiet` False (a reader does not take the lock).
        self.quiet = True
        self.stop_reason = ""
        self.pause_reason = ""
        self._pending_acks: list[tpb.Command] = []
        self._seen: set[str] = set()  # the collector re-sends unacknowledged commands after a reconnect
        self.stopped = False  # a stop was applied (for RunEnd's status)
        self.run = ""  # the run's id, for the messages

    def _name(self) -> str:
        return f"run {self.run[:8]}" if self.run else "the run"

    def _see(self) -> str:
        return f"`atlas issues {self.run[:8]}`" if self.run else "`atlas issues latest`"

    # ------------------------------------------------------------------------------ sender side

    def on_command(self, command: tpb.Command) -> None:
        with self._lock:
            if command.command_id:
                if command.command_id in self._seen:
                    return
                self._seen.add(command.command_id)
            if command.kind == tpb.COMMAND_KIND_STOP:
                self.quiet = False
                self._stop = True
                self.stop_reason = command.reason or "stopped from the collector"
                log.warning("atlas: %s stops at the next batch, STOP from the collector: %s (why: %s)",
                            self._name(), self.stop_reason, self._see())
            elif command.kind == tpb.COMMAND_KIND_PAUSE:
                self.quiet = False
                self._pause = True
                self.pause_reason = command.reason or "paused from the collector"
                log.warning("atlas: %s pauses at the next batch, PAUSE from the collector: %s (go on: `atlas resume "
                            "%s`)", self._name(), self.pause_reason, self.run[:8] or "latest")
            elif command.kind == tpb.COMMAND_KIND_RESUME:
                self._pause = False
                self.quiet = not self._stop
                log.warning("atlas: %s resumes, RESUME from the collector", self._name())
            self._pending_acks.append(command)
            self._resumed.notify_all()

    def request_stop(self, reason: str) -> None:
        """A local decision (the client-side fast path for a non-finite loss)."""
        with self._lock:
            if not self._stop:
                self.quiet = False
                self._stop = True
                self.stop_reason = reason
                log.warning("atlas: stopping %s: %s (why: %s)", self._name(), reason, self._see())

    def request_pause(self, reason: str) -> None:
        with self._lock:
            if not self._pause:
                self.quiet = False
                self._pause = True
                self.pause_reason = reason
                log.warning("atlas: pausing %s: %s (go on: `atlas resume %s`)", self._name(), reason,
                            self.run[:8] or "latest")

    # ---------------------------------------------------------------------------- trainer side

    def decide(self) -> tuple[bool, bool]:
        """(stop, pause) as this rank sees them now. Cheap: read at every batch boundary."""
        return self._stop, self._pause and not self._stop

    def effective_pause_timeout(self) -> float:
        if self.pg_timeout is None:
            return self.pause_timeout
        return max(1.0, min(self.pause_timeout, self.pg_timeout - PG_TIMEOUT_MARGIN_S))

    def wait_while_paused(self, step: int, heartbeat: Callable[[bool], None] | None = None) -> bool:
        """Block until RESUME or STOP or the timeout. Returns True when the run must stop."""
        timeout = self.effective_pause_timeout()
        deadline = time.monotonic() + timeout
        log.warning("atlas: training paused at step %d (%s); waiting up to %.0fs for RESUME", step,
                    self.pause_reason, timeout)
        if heartbeat is not None:
            heartbeat(True)
        self.flush_acks(step)
        try:
            with self._lock:
                while self._pause and not self._stop:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self.quiet = False
                        self._stop = True
                        self._pause = False
                        self.stop_reason = f"paused for longer than {timeout:.0f}s without RESUME"
                        log.warning("atlas: %s; stopping", self.stop_reason)
                        break
                    self._resumed.wait(min(left, 1.0))
                must_stop = self._stop
        finally:
            if heartbeat is not None:
                heartbeat(False)
        if not must_stop:
            log.warning("atlas: training resumed at step %d", step)
        self.flush_acks(step)
        return must_stop

    def flush_acks(self, step: int) -> None:
        """Tell the collector which commands this rank has applied (it records their delivery)."""
        with self._lock:
            pending, self._pending_acks = self._pending_acks, []
        for command in pending:
            self._ack(command, step)
