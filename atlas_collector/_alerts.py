"""Alerts: tell people when a run needs them (issue 15).

Routes come from the collector config (`[[alerts.routes]]`, or `--alert-webhook URL`); each names a `kind`
(webhook, slack, discord, email), where to send, which events and from which severity. A notification is a row of
the `notifications` outbox, written in the same transaction as what causes it (an issue opening, a training-code
alert, a run's failure, a policy's pause or stop, a run going stale), one row per matching route. The dispatcher
(`_alerts_dispatch.py`) sends the rows after commit on its own thread, retries with backoff and survives restarts;
the message formats, signing and escaping are in `_alerts_send.py`.

Events: issue, alert, failed, stopped, paused, stalled, completed (off by default). A route's `min_severity` applies
to issues and training-code alerts; the run events are chosen by the route's `events` alone."""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import _schema as s
from ._exceptions import ConfigError

log = logging.getLogger(__name__)

KINDS = ("webhook", "slack", "discord", "email")
EVENTS = ("issue", "alert", "failed", "stopped", "paused", "stalled", "completed")
DEFAULT_EVENTS = ("issue", "alert", "failed", "stopped", "paused", "stalled")
SEVERITIES = ("info", "warning", "critical")
LEVELS = {"info": "info", "warning": "warning", "error": "critical"}  # alert(level=...) -> issue severity
EVENT_SEVERITY = {"failed": "critical", "stopped": "critical", "paused": "critical", "stalled": "warning",
                  "completed": "info"}
USER_ALERT_CHECK = "user_alert"
INSIGHT_MODES = ("auto", "off")
_RANK = {name: i for i, name in enumerate(SEVERITIES)}


@dataclasses.dataclass(frozen=True)
class Route:
    """One destination. `url` for webhook/slack/discord; the `smtp_*`/`to` fields for email."""

    name: str
    kind: str
    url: str = ""
    secret: str = ""  # webhook: HMAC-SHA256 key of the X-Atlas-Signature header
    min_severity: str = "warning"
    projects: tuple[str, ...] = ()  # empty: every project
    events: tuple[str, ...] = DEFAULT_EVENTS
    timeout_s: float = 10.0
    max_per_minute: int = 20  # beyond it (and for bursts), one summary message
    smtp_host: str = ""
    smtp_port: int = 0  # 0: 465 with ssl, else 587 with starttls, else 25
    smtp_from: str = ""
    to: tuple[str, ...] = ()
    username: str = ""
    password: str = ""
    password_env: str = ""
    starttls: bool = False
    ssl: bool = False

    def wants(self, event: str, severity: str | None, project: str | None) -> bool:
        if event not in self.events and event != "test":
            return False
        if self.projects and project not in self.projects:
            return False
        if event in ("issue", "alert"):
            return _RANK.get(severity or "info", 0) >= _RANK[self.min_severity]
        return True

    def label(self) -> str:
        return f"{self.name} ({self.kind})"

    def smtp_password(self) -> str:
        import os

        return os.environ.get(self.password_env, "") if self.password_env else self.password


@dataclasses.dataclass(frozen=True)
class AlertSettings:
    routes: tuple[Route, ...] = ()
    retry_base_s: float = 2.0  # first retry after this; doubles each attempt up to retry_max_s
    retry_max_s: float = 300.0
    max_attempts: int = 10  # then the notification is `failed` (and logged)
    summary_after: int = 5  # more notifications than this due at once for a route: one summary message
    insight: str = "auto"  # auto: an LLM when the environment configures one (as `atlas ask`), else the evidence
    insight_timeout_s: float = 20.0
    insight_max_tokens: int = 300
    ui_url: str = ""  # base of run links (http://HOST:PORT); empty: the collector's --http address when set

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)


_ROUTE_KEYS = {f.name for f in dataclasses.fields(Route)}
_SETTING_KEYS = {f.name for f in dataclasses.fields(AlertSettings)} - {"routes"}


def parse_alerts(table: Mapping[str, Any] | None, webhook: str = "") -> AlertSettings:
    """The `[alerts]` table (with its `[[alerts.routes]]`) and the `--alert-webhook` shortcut, checked. A bad route
    is refused with one message naming it."""
    if table is not None and not isinstance(table, Mapping):
        raise ConfigError(f"[alerts] must be a table, got {table!r}")
    table = dict(table or {})
    raw_routes = table.pop("routes", [])
    unknown = sorted(set(table) - _SETTING_KEYS)
    if unknown:
        raise ConfigError(f"[alerts]: unknown key {unknown[0]!r}; allowed: routes, {', '.join(sorted(_SETTING_KEYS))}")
    settings: dict[str, Any] = {}
    for key, value in table.items():
        settings[key] = _setting(key, value)
    if not isinstance(raw_routes, list):
        raise ConfigError("[alerts] routes must be an array of tables ([[alerts.routes]]), got "
                          f"{type(raw_routes).__name__}")
    routes: list[Route] = []
    for i, raw in enumerate(raw_routes):
        route = parse_route(raw, i)
        if any(r.name == route.name for r in routes):
            raise ConfigError(f"alert route {route.name!r}: the name is used twice; each route needs its own name")
        routes.append(route)
    if webhook:
        if any(r.name == "webhook" for r in routes):
            raise ConfigError("--alert-webhook / ATLAS_ALERT_WEBHOOK makes a route named 'webhook', and the config "
                              "has one of that name already: rename it")
        routes.append(parse_route({"name": "webhook", "kind": "webhook", "url": webhook}, -1,
                                  where="--alert-webhook / ATLAS_ALERT_WEBHOOK"))
    return AlertSettings(routes=tuple(routes), **settings)


def _setting(key: str, value: Any) -> Any:
    where = f"[alerts] {key}"
    if key == "insight":
        if value not in INSIGHT_MODES:
            raise ConfigError(f"{where} must be one of {', '.join(INSIGHT_MODES)}, got {value!r}")
        return value
    if key == "ui_url":
        if not isinstance(value, str) or value and not value.startswith(("http://", "https://")):
            raise ConfigError(f"{where} must be an http:// or https:// address, got {value!r}")
        return value.rstrip("/")
    if key in ("max_attempts", "summary_after", "insight_max_tokens"):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
            raise ConfigError(f"{where} must be a whole number from 1 to 100000, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{where} must be a number of seconds > 0, got {value!r}")
    return float(value)


def parse_route(raw: Any, index: int, *, where: str = "") -> Route:
    """One `[[alerts.routes]]` table as a `Route`; ConfigError naming the route (or its position) otherwise."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[[alerts.routes]] #{index + 1} must be a table, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100 or not name.isprintable():
        raise ConfigError(f"[[alerts.routes]] #{index + 1}: `name` must be 1 to 100 printable characters, got "
                          f"{name!r}")
    label = where or f"alert route {name!r}"

    def bad(message: str) -> ConfigError:
        return ConfigError(f"{label}: {message}")

    unknown = sorted(set(raw) - _ROUTE_KEYS)
    if unknown:
        raise bad(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_ROUTE_KEYS))}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise bad(f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}")
    values: dict[str, Any] = {"name": name, "kind": kind}
    for key in ("url", "secret", "smtp_host", "smtp_from", "username", "password", "password_env"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise bad(f"`{key}` must be a string")
            values[key] = raw[key]
    for key in ("starttls", "ssl"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise bad(f"`{key}` must be true or false, got {raw[key]!r}")
            values[key] = raw[key]
    if "min_severity" in raw:
        if raw["min_severity"] not in SEVERITIES:
            raise bad(f"`min_severity` must be one of {', '.join(SEVERITIES)}, got {raw['min_severity']!r}")
        values["min_severity"] = raw["min_severity"]
    for key, allowed in (("events", EVENTS), ("projects", None), ("to", None)):
        if key in raw:
            items = raw[key]
            if isinstance(items, str):
                items = [items]
            if not isinstance(items, list) or not all(isinstance(x, str) and x for x in items):
                raise bad(f"`{key}` must be a list of strings, got {raw[key]!r}")
            if allowed is not None and any(x not in allowed for x in items):
                wrong = next(x for x in items if x not in allowed)
                raise bad(f"`{key}` may hold {', '.join(allowed)}; got {wrong!r}")
            values[key] = tuple(dict.fromkeys(items))
    if "timeout_s" in raw:
        t = raw["timeout_s"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 300:
            raise bad(f"`timeout_s` must be a number of seconds from 0 to 300, got {t!r}")
        values["timeout_s"] = float(t)
    for key, lo, hi in (("max_per_minute", 1, 10_000), ("smtp_port", 1, 65535)):
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise bad(f"`{key}` must be a whole number from {lo} to {hi}, got {v!r}")
            values[key] = v
    route = Route(**values)
    if kind == "email":
        if not route.smtp_host:
            raise bad("an email route needs `smtp_host` (and `smtp_from`, `to`)")
        if not route.smtp_from or "@" not in route.smtp_from:
            raise bad(f"`smtp_from` must be an e-mail address, got {route.smtp_from!r}")
        if not route.to or any("@" not in x for x in route.to):
            raise bad(f"`to` must list one or more e-mail addresses, got {list(route.to)!r}")
        if route.ssl and route.starttls:
            raise bad("`ssl` (SMTPS, port 465) and `starttls` exclude each other: choose one")
        if route.url or route.secret:
            raise bad("`url` and `secret` are for webhook, slack and discord routes, not email")
    else:
        from ._alerts_send import redact

        url = route.url
        if not url.startswith(("http://", "https://")):
            shown = redact(url) if "://" in url else "(not a URL)" if url else "(empty)"
            raise bad(f"`url` must be an http:// or https:// address, got {shown}")
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            _ = parts.port
        except ValueError:
            raise bad(f"`url` is not a valid address: {redact(url)}") from None
        if not parts.hostname:
            raise bad(f"`url` has no host: {redact(url)}")
        if route.secret and kind != "webhook":
            raise bad("`secret` (HMAC signing) is for webhook routes; Slack and Discord URLs are secrets themselves")
        if route.smtp_host or route.to:
            raise bad("`smtp_host` and `to` are for email routes")
    return route


# ------------------------------------------------------------------------------------------ the core

class Alerts:
    """Writes notifications into the outbox (inside the caller's transaction) and owns the dispatcher."""

    def __init__(self, settings: AlertSettings, store: Any, *, ui_url: str = "") -> None:
        self.settings = settings
        self.store = store
        self.ui_url = (settings.ui_url or ui_url).rstrip("/")
        self.dispatcher: Any = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.routes)

    # ----------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self.dispatcher is None:
            from ._alerts_dispatch import Dispatcher

            self.dispatcher = Dispatcher(self)
            if self.enabled:
                log.info("alerts: %d route(s): %s", len(self.settings.routes),
                         ", ".join(r.label() for r in self.settings.routes))

    def wake(self) -> None:
        """After a commit that may have written notifications: send them now."""
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def after_commit(self, outcomes: Iterable[Any]) -> None:
        """The writer's post-commit hook: training-code alerts and run ends may have written notifications."""
        if self.enabled and any(o.error is None and o.applied and o.kind in ("alert", "run_end") for o in outcomes):
            self.wake()

    def shutdown(self, timeout: float = 5.0) -> bool:
        if self.dispatcher is None:
            return True
        return self.dispatcher.shutdown(timeout)

    # ----------------------------------------------------------------------------- outbox writes

    def run_facts(self, conn: Connection, run_id: str) -> dict[str, Any] | None:
        r, p = s.runs.c, s.projects.c
        row = conn.execute(sa.select(r.id, r.name, r.status, p.name.label("project"))
                           .select_from(s.runs.join(s.projects, s.projects.c.id == r.project_id))
                           .where(r.id == run_id)).first()
        if row is None:
            return None
        return {"id": row.id, "name": row.name, "project": row.project, "status": row.status,
                "url": f"{self.ui_url}/runs/{row.id}" if self.ui_url else None}

    def enqueue(self, conn: Connection, run_id: str | None, event: str, *, severity: str | None, title: str,
                explanation: str = "", fix: str = "", check: str | None = None, issue_id: int | None = None,
                evidence: Mapping[str, Any] | None = None, insight: str | None = None,
                now: float | None = None, routes: Iterable[Route] | None = None,
                run: dict[str, Any] | None = None) -> int:
        """One outbox row per route that wants this event; returns how many."""
        if not self.settings.routes and routes is None:
            return 0
        now = time.time() if now is None else now
        if run is None and run_id is not None:
            run = self.run_facts(conn, run_id)
        project = run["project"] if run else None
        chosen = [r for r in (routes if routes is not None else self.settings.routes)
                  if routes is not None or r.wants(event, severity, project)]
        if not chosen:
            return 0
        payload = {
            "event": event, "run": run, "check": check, "severity": severity, "title": title,
            "explanation": explanation, "evidence": dict(evidence or {}), "fix": fix, "insight": insight,
            "time": now,
        }
        conn.execute(sa.insert(s.notifications), [
            {"run_id": run_id, "route": r.name, "event": event, "issue_id": issue_id, "check_id": check,
             "severity": severity, "title": title[:2000], "payload": payload, "state": "pending", "attempts": 0,
             "next_attempt_at": now, "created_at": now}
            for r in chosen])
        return len(chosen)

    def issues_opened(self, conn: Connection, run_id: str, opened: Iterable[Any], now: float) -> int:
        """Issues (atlas_diagnostics.Issue) that became active in this transaction: their insight (from the
        evidence; the dispatcher may replace it with an LLM's) and one notification per route that wants them."""
        from ._alerts_insight import summary

        opened = [i for i in opened if i.active]
        if not opened:
            return 0
        run = self.run_facts(conn, run_id)
        c = s.issues.c
        count = 0
        for issue in opened:
            key = (issue.key or "")[:300]
            issue_id = conn.execute(sa.select(c.id).where(c.run_id == run_id, c.check_id == issue.check,
                                                          c.key == key)).scalar()
            text = summary(issue)
            if _RANK.get(issue.severity, 0) >= _RANK["warning"] and issue_id is not None:
                conn.execute(sa.update(s.issues).where(c.id == issue_id).values(insight=text))
            count += self.enqueue(conn, run_id, "issue", severity=issue.severity, title=issue.title,
                                  explanation=issue.description, fix=issue.suggestion, check=issue.check,
                                  issue_id=issue_id, evidence=_evidence(issue), insight=text, now=now, run=run)
        return count

    def run_event(self, conn: Connection, run_id: str, event: str, reason: str = "", *, check: str | None = None,
                  now: float | None = None) -> int:
        """A run's status event (failed, stopped, paused, stalled, completed)."""
        run = self.run_facts(conn, run_id)
        if run is None:
            return 0
        name = run["name"]
        titles = {"failed": f"run {name} failed", "stopped": f"run {name} was stopped by the on_critical policy",
                  "paused": f"run {name} was paused by the on_critical policy",
                  "stalled": f"run {name} stalled: no data or heartbeat", "completed": f"run {name} completed"}
        fixes = {"failed": "atlas runs show RUN, atlas logs RUN --level ERROR",
                 "stopped": "atlas issues RUN", "paused": "atlas issues RUN; atlas resume RUN to let it go on",
                 "stalled": "check the training process and its host", "completed": ""}
        return self.enqueue(conn, run_id, event, severity=EVENT_SEVERITY[event], title=titles[event],
                            explanation=reason, fix=fixes[event].replace("RUN", run_id[:8]), check=check, now=now,
                            run=run)

    def on_message(self, conn: Connection, msg: Any, kind: str, extra: Any, now: float) -> None:
        """Writer, inside the batch's transaction, after a message was applied."""
        if kind == "alert" and extra is not None:
            issue_id, severity, title, text = extra
            self.enqueue(conn, msg.run_id, "alert", severity=severity, title=title, explanation=text,
                         check=USER_ALERT_CHECK, issue_id=issue_id, now=now)
        elif kind == "run_end" and msg.rank == 0:
            from atlas_proto.convert import STATUS_NAMES

            status = STATUS_NAMES.get(msg.run_end.status)
            if status == "failed":
                m = msg.run_end
                reason = f"{m.error_type}: {m.error_message}" if m.error_type else (m.error_message or "")
                self.run_event(conn, msg.run_id, "failed", reason[:2000], now=now)
            elif status == "completed":
                self.run_event(conn, msg.run_id, "completed", now=now)


def _evidence(issue: Any) -> dict[str, Any]:
    from atlas_diagnostics._codec import encode

    out = dict(encode(dict(issue.evidence or {})))
    if issue.metric_key is not None:
        out.setdefault("metric", issue.metric_key)
        out.setdefault("value", encode(issue.metric_value))
    if issue.thresholds:
        out.setdefault("thresholds", encode(dict(issue.thresholds)))
    if issue.epoch is not None:
        out.setdefault("epoch", issue.epoch)
    if issue.layer:
        out.setdefault("layer", issue.layer)
    return out


# ------------------------------------------------------------------------------ training-code alerts

def store_alert(conn: Connection, msg: Any, m: Any, now: float) -> tuple[int, str, str, str]:
    """An `Alert` from training code as an issue of the run (check `user_alert`, one per alert), so `atlas issues`
    and the UI show it; returns (issue id, severity, title, text) for the notification."""
    from atlas_proto.convert import ts_to_float

    severity = LEVELS.get(m.level or "warning", "warning")
    when = ts_to_float(m.time) or now
    epoch = m.epoch if m.HasField("epoch") else None
    title = m.title[:1000]
    row = {
        "run_id": msg.run_id, "check_id": USER_ALERT_CHECK, "key": f"{msg.rank}:{msg.session}:{msg.seq}"[:300],
        "severity": severity, "category": "logs", "title": title, "description": m.text[:10_000],
        "suggestion": "raised by the training code with alert(); see its text", "epoch": epoch,
        "step": m.step if m.HasField("step") else None, "layer": None, "metric_key": None, "metric_value": None,
        "thresholds": {}, "evidence": {"level": m.level or "warning", "rank": msg.rank, "time": when},
        "first_seen_epoch": epoch, "last_seen_epoch": epoch, "active": True, "created_at": now, "updated_at": now,
        "insight": None,
    }
    issue_id = conn.execute(sa.insert(s.issues).values(**row)).inserted_primary_key[0]
    log.info("run=%s alert level=%s %r", msg.run_id, m.level or "warning", title[:200])
    return int(issue_id), severity, title, m.text[:10_000]
