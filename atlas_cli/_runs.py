"""`atlas runs`, `atlas runs show`, `atlas runs delete`."""
from __future__ import annotations

from typing import Any

import click

from ._app import Ctx, Result, cli, echo, output, render_table
from ._terminal import safe

RUN_COLUMNS = [("id", "ID"), ("name", "NAME"), ("project", "PROJECT"), ("status", "STATUS"), ("epochs", "EPOCHS"),
               ("steps", "STEPS"), ("health_score", "HEALTH"), ("framework", "FRAMEWORK"),
               ("started_at", "STARTED (UTC)"), ("duration", "DURATION"), ("tags", "TAGS")]


def _parse(ts: str | None) -> Any:
    import datetime as dt

    if not ts:
        return None
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs as the table shows them: a short id, the start to the second, the duration (so far, while running),
    the health as a whole number. `--json` keeps the exact fields."""
    import datetime as dt

    out = []
    for r in rows:
        start, end = _parse(r.get("started_at")), _parse(r.get("ended_at"))
        if start is not None and end is None and r.get("status") in ("running", "paused"):
            end = dt.datetime.now(dt.timezone.utc)
        score = r.get("health_score")
        out.append({**r, "id": r["id"][:8],
                    "started_at": start.strftime("%Y-%m-%d %H:%M:%S") if start is not None else None,
                    "duration": _duration((end - start).total_seconds()) if start and end else None,
                    "health_score": round(score) if isinstance(score, (int, float)) else score,
                    "tags": ", ".join(r.get("tags") or []) or None})
    return out
STATUSES = ("running", "paused", "stopped", "completed", "failed", "stale")


def list_runs(obj: Ctx, *, project: str = "", status: str = "", tag: str = "", limit: int = 50) -> list[dict[str, Any]]:
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import STATUS_VALUES

    from ._client import run_row

    rows: list[dict[str, Any]] = []
    page_token = ""
    while len(rows) < limit:  # the collector pages a large answer (many runs, or big ones): follow its pages
        req = qpb.ListRunsRequest(project=project or "", tag=tag or "", limit=limit - len(rows), page_token=page_token,
                                  status=STATUS_VALUES[status] if status else 0)
        resp = obj.client().list_runs(req)
        rows += [run_row(r) for r in resp.runs]
        page_token = resp.next_page_token
        if not page_token or not resp.runs:
            break
    return rows[:limit]


@cli.group(invoke_without_command=True)
@click.option("--project", help="Only runs of this project.")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option("--tag", help="Only runs with this tag.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="At most this many runs.")
@output(clean_numbers=False)
def runs(obj: Ctx, project: str | None, status: str | None, tag: str | None, limit: int) -> Result:
    """List runs, newest first.

    \b
    Examples:
      atlas runs --project mnist --status running
      atlas runs --json | jq '.[0].id'
    """
    rows = list_runs(obj, project=project or "", status=status or "", tag=tag or "", limit=limit)
    return Result(rows, text=lambda: render_table(table_rows(rows), RUN_COLUMNS))


def get_run(obj: Ctx, run: str, project: str = "") -> dict[str, Any]:
    from atlas_proto.v1 import query_pb2 as qpb

    from ._client import run_detail

    return run_detail(obj.client().get_run(qpb.RunRef(run=run, project=project or "")))


@runs.command("show")
@click.argument("run")
@click.option("--project", help="Resolve a run name within this project.")
@output(kv=True)
def show(obj: Ctx, run: str, project: str | None) -> dict[str, Any]:
    """Show one run: status, hyperparameters, device, versions, final metrics.

    RUN is an id, a unique id prefix (6+ characters), a run name (the latest of that name) or `latest`.

    \b
    Example:
      atlas runs show latest --json
    """
    return get_run(obj, run, project or "")


@runs.command("delete")
@click.argument("run")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete(obj: Ctx, run: str, yes: bool) -> None:
    """Delete a run and everything stored for it.

    \b
    Example:
      atlas runs delete 3f2a9c1b --yes
    """
    from atlas_proto.v1 import query_pb2 as qpb

    from ._client import NotFound

    if not yes:  # the run is described before asking; one that cannot be read can still be deleted
        try:
            detail = get_run(obj, run)
            what = f"run {detail['id']} ({detail['name']}, {detail['epochs']} epochs)"
        except NotFound:
            raise
        except click.ClickException as exc:
            what = f"run {run} (it cannot be read: {exc.format_message()})"
        click.confirm(safe(f"Delete {what}?", lines=False), abort=True)
    deleted = obj.client().delete_run(qpb.RunRef(run=run))  # the collector resolves RUN as everywhere
    echo(f"deleted run {deleted.id}")
