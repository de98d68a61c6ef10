"""`atlas alerts`: the notifications the collector sent (or is retrying) to its alert routes; `atlas alerts test`."""
from __future__ import annotations

from typing import Any

import click

from ._app import Ctx, Result, cli, echo, output, render_table

COLUMNS = [("id", "ID"), ("created", "CREATED (UTC)"), ("route", "ROUTE"), ("event", "EVENT"),
           ("severity", "SEVERITY"), ("run_name", "RUN"), ("title", "TITLE"), ("state", "STATE"),
           ("attempts", "TRIES"), ("last_error", "LAST ERROR")]


def notification_dict(n: Any) -> dict[str, Any]:
    """A notification as `atlas alerts --json` prints it."""
    from atlas_proto.convert import iso

    return {
        "id": n.id, "run_id": n.run_id or None, "run_name": n.run_name or None, "project": n.project or None,
        "route": n.route, "event": n.event, "check": n.check or None, "severity": n.severity or None,
        "title": n.title, "state": n.state, "attempts": n.attempts, "created_at": iso(n.created_at),
        "sent_at": iso(n.sent_at), "next_attempt_at": iso(n.next_attempt_at), "last_error": n.last_error or None,
    }


def _table_row(d: dict[str, Any]) -> dict[str, Any]:
    created = (d["created_at"] or "").replace("T", " ")[:19] or None
    title = d["title"] if len(d["title"]) <= 60 else d["title"][:59] + "…"
    error = d["last_error"]
    if error and len(error) > 60:
        error = error[:59] + "…"
    return {**d, "created": created, "title": title, "last_error": error}


@cli.group(invoke_without_command=True)
@click.option("--run", "run", help="Only this run's notifications (an id, a unique prefix, a name or `latest`).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="How many of the newest notifications.")
@output(clean_numbers=False)
def alerts(obj: Ctx, run: str | None, limit: int) -> Result:
    """List the newest notifications the collector sent to its alert routes, with their delivery state
    (pending: being retried; sent; summarized: sent inside one summary message; failed: given up). Routes are
    set in the collector's config ([[alerts.routes]]) or with `atlas-collector --alert-webhook URL`.

    \b
    Examples:
      atlas alerts
      atlas alerts --run latest --json
      atlas alerts test ops-slack
    """
    from atlas_proto.v1 import query_pb2 as qpb

    resp = obj.client().list_alerts(qpb.AlertsRequest(run=run or "", limit=limit))
    rows = [notification_dict(n) for n in resp.notifications]
    routes = list(resp.routes)

    def text() -> None:
        if not routes:
            echo("no alert routes configured (add [[alerts.routes]] to the collector's config, or --alert-webhook URL)")
        else:
            echo("routes: " + ", ".join(routes))
        if not rows:
            echo("no notifications" + (" for this run" if run else "") + " yet")
            return
        render_table([_table_row(r) for r in rows], COLUMNS)

    return Result(rows, text=text)


@alerts.command("test")
@click.argument("route")
@output(clean_numbers=False, json_help="Print JSON instead of text.")
def test_route(obj: Ctx, route: str) -> Result:
    """Send a test message to ROUTE (a route's name in the collector's config) now, and say whether it arrived.
    Exit status 1 when the route did not take it.

    \b
    Example:
      atlas alerts test webhook
    """
    from atlas_proto.v1 import query_pb2 as qpb

    resp = obj.client().test_alert(qpb.TestAlertRequest(route=route))
    row = notification_dict(resp.notification)
    if row["state"] != "sent":
        return Result(row, text=lambda: None,
                      fail=f"route {route!r} did not take the test message: {row['last_error'] or 'no answer'}")
    return Result(row, text=lambda: echo(f"route {route!r} took the test message (notification {row['id']})"))
