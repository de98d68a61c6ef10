"""`atlas alerts`: the notifications the collector sent (or is retrying) to its alert routes; `atlas alerts test`."""
from __future__ import annotations

import json
from typing import Any

import click

from ._app import Ctx, cli, echo, render_table

COLUMNS = [("id", "ID"), ("created", "CREATED (UTC)"), ("route", "ROUTE"), ("event", "EVENT"),
           ("severity", "SEVERITY"), ("run_name", "RUN"), ("title", "TITLE"), ("state", "STATE"),
           ("attempts", "TRIES"), ("last_error", "LAST ERROR")]


def notification_dict(n: Any) -> dict[str, Any]:
    """A notification as `atlas alerts --json` prints it."""
    from ._client import iso

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
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def alerts(ctx: click.Context, run: str | None, limit: int, as_json: bool) -> None:
    """List the newest notifications the collector sent to its alert routes, with their delivery state
    (pending: being retried; sent; summarized: sent inside one summary message; failed: given up). Routes are
    set in the collector's config ([[alerts.routes]]) or with `atlas-collector --alert-webhook URL`.

    \b
    Examples:
      atlas alerts
      atlas alerts --run latest --json
      atlas alerts test ops-slack
    """
    if ctx.invoked_subcommand is not None:
        return
    from atlas_proto.v1 import query_pb2 as qpb

    obj: Ctx = ctx.obj
    resp = obj.client().call("ListAlerts", qpb.AlertsRequest(run=run or "", limit=limit))
    rows = [notification_dict(n) for n in resp.notifications]
    if as_json or obj.json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not resp.routes:
        echo("no alert routes configured (add [[alerts.routes]] to the collector's config, or --alert-webhook URL)")
    else:
        echo("routes: " + ", ".join(resp.routes))
    if not rows:
        echo("no notifications" + (" for this run" if run else "") + " yet")
        return
    render_table([_table_row(r) for r in rows], COLUMNS)


@alerts.command("test")
@click.argument("route")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def test_route(obj: Ctx, route: str, as_json: bool) -> None:
    """Send a test message to ROUTE (a route's name in the collector's config) now, and say whether it arrived.
    Exit status 1 when the route did not take it.

    \b
    Example:
      atlas alerts test webhook
    """
    from atlas_proto.v1 import query_pb2 as qpb

    resp = obj.client().call("TestAlert", qpb.TestAlertRequest(route=route))
    row = notification_dict(resp.notification)
    if as_json or obj.json:
        click.echo(json.dumps(row, indent=2))
    if row["state"] != "sent":
        raise click.ClickException(f"route {route!r} did not take the test message: {row['last_error'] or 'no answer'}")
    if not (as_json or obj.json):
        echo(f"route {route!r} took the test message (notification {row['id']})")
