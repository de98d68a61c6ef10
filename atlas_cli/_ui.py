"""`atlas ui [RUN]`: open the collector's web UI in a browser (or print its URL where there is none)."""
from __future__ import annotations

import os
import sys

import click

from ._app import Ctx, cli


def _has_display() -> bool:
    """A graphical browser can open here (a text browser would take over the terminal: not that)."""
    if sys.platform in ("darwin", "win32") or os.environ.get("BROWSER"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def ui_url(obj: Ctx, run: str | None) -> tuple[str, bool]:
    """The UI's URL (of RUN's page when given) and whether the UI asks for a token."""
    from urllib.parse import quote, urlsplit, urlunsplit

    from atlas_proto.v1 import query_pb2 as qpb

    client = obj.client()
    info = client.if_served(client.get_server_info, qpb.ServerInfoRequest())
    if info is None:
        raise click.ClickException(f"the collector at {obj.collector} is older than this CLI and serves no web UI; "
                                   "upgrade atlas-collector")
    if not info.http_url:
        raise click.ClickException(f"the collector at {obj.collector} serves no web UI (it was started with "
                                   "--http off); restart it with --http HOST:PORT")
    url = info.http_url
    parts = urlsplit(url)
    target_host = obj.collector.rpartition(":")[0].strip("[]")
    if parts.hostname in ("127.0.0.1", "localhost", "::1") and target_host not in (
            "127.0.0.1", "localhost", "::1", ""):
        # the collector names itself by loopback; from here it is reached by the name --collector gives
        netloc = f"{target_host}:{parts.port}" if ":" not in target_host else f"[{target_host}]:{parts.port}"
        url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if run:
        from ._runs import get_run

        url = url.rstrip("/") + "/runs/" + quote(get_run(obj, run)["id"], safe="")
    return url, info.token_required


@cli.command()
@click.argument("run", required=False)
@click.option("--no-browser", is_flag=True, help="Only print the URL.")
@click.pass_obj
def ui(obj: Ctx, run: str | None, no_browser: bool) -> None:
    """Open the collector's web UI (RUN's page when given); print its URL where no browser can open.

    RUN is an id, a unique id prefix (6+ characters), a run name (the latest of that name) or `latest`.

    \b
    Examples:
      atlas ui                 # the runs list
      atlas ui latest          # the newest run's live page
      atlas ui baseline --no-browser
    """
    url, token_required = ui_url(obj, run)
    click.echo(url)
    if token_required:
        click.echo("(the UI asks once for the collector's token)", err=True)
    if no_browser or not _has_display():
        return
    import webbrowser

    try:
        opened = webbrowser.open(url)
    except webbrowser.Error:
        opened = False
    if not opened:
        click.echo("no browser could be opened here: open the URL above", err=True)
