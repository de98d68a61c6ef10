"""The outbox dispatcher: one thread that sends the due notifications after they were committed.

A row is claimed (its next attempt moved a lease ahead, so another replica or a restart does not send it while it
is in flight), sent, then marked `sent`; a failure is retried with exponential backoff (`retry_base_s` doubling
up to `retry_max_s`, or the receiver's Retry-After) until `max_attempts`, then marked `failed` and logged. Rows
still pending when the collector dies are sent by the next one (at least once; `X-Atlas-Delivery` lets a receiver
drop a repeat). Per route, at most `max_per_minute` messages a minute; when more than `summary_after` (or more than
the minute's room) are due at once, they go as one summary message and are marked `summarized`.

It never touches the event loop: gRPC ingest and acks go on whatever a receiver does."""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

import sqlalchemy as sa

from . import _schema as s
from ._alerts_send import SendError, send

log = logging.getLogger(__name__)

BATCH = 500
IDLE_WAIT_S = 5.0  # the longest the thread sleeps without a wake (rows written by another replica)
_RANK = {"info": 0, "warning": 1, "critical": 2}


class Dispatcher:
    def __init__(self, alerts: Any) -> None:
        self.alerts = alerts
        self.settings = alerts.settings
        self.store = alerts.store
        self._wake = threading.Event()
        self._stopping = False
        self._sent: dict[str, collections.deque[float]] = {}
        self._failing: set[str] = set()
        self._insights: dict[int, str | None] = {}
        self._errors = 0
        self._thread = threading.Thread(target=self._loop, name="atlas-alerts", daemon=True)
        if self.settings.routes:
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def shutdown(self, timeout: float = 5.0) -> bool:
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stopping:
            try:
                delay = self.deliver_due()
            except Exception:  # noqa: BLE001 - worker boundary: the store may be down for a while
                if self._stopping:
                    return
                self._errors += 1
                if self._errors <= 3 or self._errors % 100 == 0:
                    log.exception("alerts: the dispatcher could not read the outbox (%d)", self._errors)
                delay = IDLE_WAIT_S
            self._wake.wait(delay)
            self._wake.clear()

    # ------------------------------------------------------------------------------------ one pass

    def deliver_due(self, now: float | None = None) -> float:
        """Send what is due; return the seconds until the next row is due (at most IDLE_WAIT_S)."""
        now = time.time() if now is None else now
        n = s.notifications.c
        with self.store.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                sa.select(s.notifications).where(n.state == "pending", n.next_attempt_at <= now)
                .order_by(n.id).limit(BATCH))]
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(row["route"], []).append(row)
        for name, group in groups.items():
            if self._stopping:
                break
            route = self.settings.route(name)
            if route is None:
                self._finish(group, "failed", error=f"route {name!r} is no longer configured")
                continue
            self._deliver_route(route, group)
        with self.store.connect() as conn:
            nxt = conn.execute(sa.select(sa.func.min(n.next_attempt_at)).where(n.state == "pending")).scalar()
        if nxt is None:
            return IDLE_WAIT_S
        return min(IDLE_WAIT_S, max(0.05, nxt - time.time()))

    def _room(self, route: Any, now: float) -> int:
        sent = self._sent.setdefault(route.name, collections.deque())
        while sent and sent[0] <= now - 60.0:
            sent.popleft()
        return route.max_per_minute - len(sent)

    def _deliver_route(self, route: Any, rows: list[dict[str, Any]]) -> None:
        now = time.time()
        room = self._room(route, now)
        if room <= 0:  # wait for the minute's room: no attempt counted
            free_at = self._sent[route.name][0] + 60.0
            self._postpone(rows, free_at)
            return
        if len(rows) > self.settings.summary_after or len(rows) > room:
            claimed = self._claim(rows, route, now)
            if claimed:
                self._send_summary(route, claimed)
            return
        for row in rows:
            if self._stopping:
                return
            if not self._claim([row], route, time.time()):
                continue
            self._send_one(route, row)

    def _claim(self, rows: list[dict[str, Any]], route: Any, now: float) -> list[dict[str, Any]]:
        """Move each row's next attempt a lease ahead, if no one else did: the rows this process now owns."""
        lease = now + 2 * route.timeout_s + self.settings.insight_timeout_s + 30.0
        n = s.notifications.c
        out = []
        with self.store.begin() as conn:
            for row in rows:
                got = conn.execute(sa.update(s.notifications)
                                   .where(n.id == row["id"], n.state == "pending",
                                          n.next_attempt_at == row["next_attempt_at"])
                                   .values(next_attempt_at=lease)).rowcount
                if got:
                    out.append(row)
        return out

    def _postpone(self, rows: list[dict[str, Any]], when: float) -> None:
        n = s.notifications.c
        with self.store.begin() as conn:
            conn.execute(sa.update(s.notifications).where(n.id.in_([r["id"] for r in rows]), n.state == "pending")
                         .values(next_attempt_at=when))

    # ------------------------------------------------------------------------------------ sending

    def _send_one(self, route: Any, row: dict[str, Any]) -> None:
        payload = dict(row["payload"] or {})
        if row["event"] == "issue":
            payload = self._with_insight(row, payload)
        try:
            send(route, payload, row["id"])
        except SendError as exc:
            self._failed(route, [row], str(exc), exc.retry_after)
            return
        self._delivered(route, [row], "sent")

    def _send_summary(self, route: Any, rows: list[dict[str, Any]]) -> None:
        worst = max((r["severity"] or "info" for r in rows), key=lambda x: _RANK.get(x, 0))
        runs = {r["run_id"] for r in rows if r["run_id"]}
        items = []
        for r in rows[:50]:
            run = (r["payload"] or {}).get("run") or {}
            items.append(f"[{r['severity'] or 'info'}] {r['event']}: {r['title']}"
                         + (f" (run {run.get('name')})" if run else ""))
        if len(rows) > 50:
            items.append(f"... and {len(rows) - 50} more (atlas alerts)")
        first_run = next(((r["payload"] or {}).get("run") for r in rows if (r["payload"] or {}).get("run")), None)
        payload = {"event": "summary", "severity": worst, "check": None,
                   "title": f"{len(rows)} alerts at once from {len(runs)} run(s)",
                   "explanation": f"{len(rows)} notifications were due together for this route; they are listed "
                                  "below in one message (rate limit and burst summary). `atlas alerts` shows each.",
                   "evidence": {"count": len(rows), "runs": len(runs)}, "fix": "atlas alerts; atlas issues",
                   "insight": None, "run": first_run if len(runs) == 1 else None, "items": items,
                   "time": time.time()}
        try:
            send(route, payload, rows[0]["id"])
        except SendError as exc:
            self._failed(route, rows, str(exc), exc.retry_after)
            return
        log.info("alerts: route %s got one summary of %d notifications", route.name, len(rows))
        self._delivered(route, rows, "summarized")

    def _delivered(self, route: Any, rows: list[dict[str, Any]], state: str) -> None:
        now = time.time()
        self._sent.setdefault(route.name, collections.deque()).append(now)
        if route.name in self._failing:
            self._failing.discard(route.name)
            log.info("alerts: route %s delivers again", route.label())
        self._finish(rows, state, now=now)

    def _finish(self, rows: list[dict[str, Any]], state: str, *, error: str | None = None,
                now: float | None = None) -> None:
        n = s.notifications.c
        with self.store.begin() as conn:
            conn.execute(sa.update(s.notifications).where(n.id.in_([r["id"] for r in rows])).values(
                state=state, attempts=n.attempts + 1, last_error=error,
                sent_at=(now or time.time()) if state != "failed" else None))
        if state == "failed" and error:
            log.warning("alerts: %d notification(s) failed for good: %s", len(rows), error)

    def _failed(self, route: Any, rows: list[dict[str, Any]], error: str, retry_after: float | None) -> None:
        settings = self.settings
        n = s.notifications.c
        now = time.time()
        if route.name not in self._failing:
            self._failing.add(route.name)
            log.warning("alerts: route %s did not take notification %d: %s (retrying with backoff)",
                        route.label(), rows[0]["id"], error)
        else:
            log.debug("alerts: route %s failed again: %s", route.label(), error)
        given_up = []
        with self.store.begin() as conn:
            for row in rows:
                attempts = int(row["attempts"]) + 1
                if attempts >= settings.max_attempts:
                    given_up.append(row["id"])
                    conn.execute(sa.update(s.notifications).where(n.id == row["id"]).values(
                        state="failed", attempts=attempts, last_error=error))
                    continue
                delay = min(settings.retry_max_s, settings.retry_base_s * 2 ** (attempts - 1))
                if retry_after is not None:
                    delay = max(delay, min(retry_after, settings.retry_max_s))
                conn.execute(sa.update(s.notifications).where(n.id == row["id"]).values(
                    attempts=attempts, last_error=error, next_attempt_at=now + delay))
        if given_up:
            log.warning("alerts: route %s: gave up on notification(s) %s after %d attempts: %s", route.label(),
                        ", ".join(map(str, given_up)), settings.max_attempts, error)

    # ------------------------------------------------------------------------------------ insight

    def _with_insight(self, row: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """An LLM's insight for an issue at warning or above, once per issue (kept in the issue and in the other
        pending notifications of it); the evidence summary stays when there is no LLM or it does not answer."""
        from ._alerts_insight import context, llm_configured, llm_insight

        issue_id = row["issue_id"]
        if (self.settings.insight != "auto" or issue_id is None or payload.get("insight_source") == "llm"
                or _RANK.get(row["severity"] or "info", 0) < 1 or not llm_configured()):
            return payload
        if issue_id not in self._insights:
            with self.store.connect() as conn:
                prompt = context(conn, row["run_id"], issue_id, payload)
            started = time.monotonic()
            text = llm_insight(prompt, timeout_s=self.settings.insight_timeout_s,
                               max_tokens=self.settings.insight_max_tokens)
            self._insights[issue_id] = text
            if len(self._insights) > 10_000:
                self._insights.pop(next(iter(self._insights)))
            if text:
                log.info("alerts: LLM insight for issue %d in %.1f s", issue_id, time.monotonic() - started)
                self._store_insight(issue_id, text)
        text = self._insights.get(issue_id)
        if text:
            payload = {**payload, "insight": text, "insight_source": "llm"}
        return payload

    def _store_insight(self, issue_id: int, text: str) -> None:
        n = s.notifications.c
        with self.store.begin() as conn:
            conn.execute(sa.update(s.issues).where(s.issues.c.id == issue_id).values(insight=text))
            for r in conn.execute(sa.select(n.id, n.payload).where(n.issue_id == issue_id, n.state == "pending")).all():
                conn.execute(sa.update(s.notifications).where(n.id == r.id).values(
                    payload={**(r.payload or {}), "insight": text, "insight_source": "llm"}))

    # ------------------------------------------------------------------------------------ test

    def test(self, route: Any) -> dict[str, Any]:
        """`atlas alerts test ROUTE`: record a test message and send it now (blocking, bounded by the route's
        timeout); the row says whether the route took it."""
        now = time.time()
        payload = {"event": "test", "severity": "info", "check": None,
                   "title": f"Atlas test message for route {route.name}",
                   "explanation": "If you can read this, the collector reaches this route.", "evidence": {},
                   "fix": "", "insight": None, "run": None, "time": now}
        with self.store.begin() as conn:
            row_id = conn.execute(sa.insert(s.notifications).values(
                run_id=None, route=route.name, event="test", issue_id=None, check_id=None, severity="info",
                title=payload["title"], payload=payload, state="pending", attempts=0,
                next_attempt_at=now + 3600.0, created_at=now)).inserted_primary_key[0]
        try:
            send(route, payload, int(row_id))
        except SendError as exc:
            with self.store.begin() as conn:
                conn.execute(sa.update(s.notifications).where(s.notifications.c.id == row_id).values(
                    state="failed", attempts=1, last_error=str(exc)))
        else:
            self._sent.setdefault(route.name, collections.deque()).append(time.time())
            with self.store.begin() as conn:
                conn.execute(sa.update(s.notifications).where(s.notifications.c.id == row_id).values(
                    state="sent", attempts=1, sent_at=time.time()))
        with self.store.connect() as conn:
            return dict(conn.execute(sa.select(s.notifications).where(s.notifications.c.id == row_id)).one()._mapping)
