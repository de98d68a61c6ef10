"""The alert queries (QueryService.ListAlerts, TestAlert): plain functions over the collector's `Alerts`."""
from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa

from atlas_proto.v1 import query_pb2 as qpb

from . import _schema as s
from ._alerts_send import scrub
from atlas_proto.convert import float_to_ts
from ._exceptions import InvalidMessage

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000


def notification_message(row: Mapping[str, Any], alerts: Any, out: qpb.Notification) -> qpb.Notification:
    payload = row.get("payload") or {}
    run = payload.get("run") or {}
    out.id = int(row["id"])
    out.run_id = row["run_id"] or ""
    out.run_name = row.get("run_name") or run.get("name") or ""
    out.project = row.get("project") or run.get("project") or ""
    out.route, out.event = row["route"], row["event"]
    out.check = row["check_id"] or ""
    out.severity = row["severity"] or ""
    out.title = row["title"]
    out.state = row["state"]
    out.attempts = int(row["attempts"] or 0)
    float_to_ts(row["created_at"], out.created_at)
    if row["sent_at"] is not None:
        float_to_ts(row["sent_at"], out.sent_at)
    if row["state"] == "pending":
        float_to_ts(row["next_attempt_at"], out.next_attempt_at)
    error = row["last_error"] or ""
    route = alerts.settings.route(row["route"]) if alerts is not None else None
    out.last_error = scrub(error, route) if route is not None else error  # already scrubbed when written; twice safe
    return out


def list_alerts(alerts: Any, store: Any, req: qpb.AlertsRequest) -> qpb.AlertsResponse:
    if req.limit > MAX_LIMIT:
        raise InvalidMessage(f"limit must be at most {MAX_LIMIT} (0 for the default {DEFAULT_LIMIT}), got {req.limit}")
    n, r, p = s.notifications.c, s.runs.c, s.projects.c
    q = (sa.select(s.notifications, r.name.label("run_name"), p.name.label("project"))
         .select_from(s.notifications.outerjoin(s.runs, r.id == n.run_id).outerjoin(s.projects, p.id == r.project_id)))
    with store.connect() as conn:
        if req.run:
            q = q.where(n.run_id == store.resolve_run(conn, req.run))
        rows = conn.execute(q.order_by(n.id.desc()).limit(req.limit or DEFAULT_LIMIT)).all()
    resp = qpb.AlertsResponse()
    for row in rows:
        notification_message(row._mapping, alerts, resp.notifications.add())
    if alerts is not None:
        resp.routes.extend(route.label() for route in alerts.settings.routes)
    return resp


def test_alert(alerts: Any, store: Any, req: qpb.TestAlertRequest) -> qpb.TestAlertResponse:
    from ._exceptions import RunNotFound

    routes = alerts.settings.routes if alerts is not None else ()
    route = next((x for x in routes if x.name == req.route), None)
    if route is None:
        names = ", ".join(x.name for x in routes) or "none: add [[alerts.routes]] to the config or --alert-webhook"
        raise RunNotFound(f"no alert route named {req.route!r}; configured: {names}")
    if alerts.dispatcher is None:
        alerts.start()
    row = alerts.dispatcher.test(route)
    resp = qpb.TestAlertResponse()
    notification_message(row, alerts, resp.notification)
    return resp
