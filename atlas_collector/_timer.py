"""The collector's timer: what happens because time passes, not because a message came.

Every `tick_s` (a quarter of `stale_after_s`, between 0.05 and 5 s) one tick, on a thread of the event loop's
executor: runs silent for `stale_after_s` become "stale" (with their "stalled" alert event and a UI status
event), the live runs get their time-based checks (`DiagnosticsDriver.tick`: stalled_training, with the
collector's clock), and retention is applied at most once a minute when it is configured."""
from __future__ import annotations

import asyncio
import logging
import time

from . import _retention
from ._alerts import Alerts
from ._config import CollectorConfig
from ._driver import DiagnosticsDriver
from ._store import Store
from ._web import EventHub

log = logging.getLogger(__name__)


class Timer:
    """`run_forever` is the event-loop task (cancel it to stop); `tick` and `apply_retention` are plain calls."""

    def __init__(self, config: CollectorConfig, store: Store, driver: DiagnosticsDriver, alerts: Alerts,
                 events: EventHub) -> None:
        self._config = config
        self._store = store
        self._driver = driver
        self._alerts = alerts
        self._events = events
        self._retention_since: float | None = None
        self._last_retention = 0.0

    @property
    def tick_s(self) -> float:
        return min(max(self._config.stale_after_s / 4.0, 0.05), 5.0)

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await loop.run_in_executor(None, self.tick, time.time())
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the timer outlives any one failure
                log.exception("collector timer tick failed")

    def tick(self, now: float) -> None:
        """Mark silent runs stale, drive the time-based checks, apply retention (at most once a minute)."""
        config, alerts = self._config, self._alerts
        with self._store.begin() as conn:
            stale = _retention.mark_stale(conn, now=now, stale_after_s=config.stale_after_s)
            for run_id in stale if alerts.enabled else ():
                alerts.run_event(conn, run_id, "stalled", f"no data or heartbeat for {config.stale_after_s:.0f} s",
                                 now=now)
        if stale and alerts.enabled:
            alerts.wake()
        for run_id in stale:
            log.info("run=%s status=stale (no data for %.0f s)", run_id, config.stale_after_s)
            self._events.changed(run_id, "status")
        with self._store.connect() as conn:
            live = _retention.live_runs(conn)
        self._driver.tick(now, live)
        every = min(60.0, 10 * self.tick_s)
        if (config.retention_steps_per_run or config.retention_days) and now - self._last_retention >= every:
            self.apply_retention(now)

    def apply_retention(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._store.begin() as conn:
            deleted = _retention.apply_retention(conn, steps_per_run=self._config.retention_steps_per_run,
                                                 days=self._config.retention_days, now=now,
                                                 since=self._retention_since)
        # The next pass looks at runs seen since this one, with a margin for batches in flight right now
        # (their last_seen_at is their start time, which may be a little older than their commit).
        self._retention_since, self._last_retention = now - 30.0, now
        return deleted
