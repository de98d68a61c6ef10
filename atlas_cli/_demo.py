"""`atlas demo`: an embedded collector, a real Lightning training in a subprocess, then `atlas runs`."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import click

from ._app import Ctx, cli, render_table


@cli.command()
@click.option("--epochs", type=click.IntRange(1, 50), default=3, show_default=True, help="Epochs to train.")
@click.option("--db", help="Store URL for the embedded collector. [default: the collector's own default, sqlite file "
                           "atlas.db under ATLAS_HOME]")
@click.option("--serve", is_flag=True, help="Keep serving the web UI (and gRPC) after the demo, until Ctrl-C.")
@click.pass_obj
def demo(obj: Ctx, epochs: int, db: str | None, serve: bool) -> None:
    """Train two small Lightning models on the CPU against an embedded collector, then show what Atlas saw.

    The first run is healthy. The second has a bug people write (the optimizer is built over a copy of the
    network, so no weight ever changes) and runs with on_critical="stop": Atlas names the bug and stops it.
    The runs are stored where `atlas-collector` keeps them by default (ATLAS_HOME, default ~/.atlas), so
    `atlas-collector &` then `atlas runs` shows them.

    \b
    Examples:
      atlas demo --epochs 3
      atlas demo --serve         # then open the printed URL; Ctrl-C stops
    """
    from atlas_collector import CollectorConfig, run_server

    from ._client import CollectorClient
    from ._issues import list_issues, print_issues
    from ._runs import RUN_COLUMNS, get_run, list_runs, table_rows

    home = pathlib.Path(os.environ.get("ATLAS_HOME") or "~/.atlas").expanduser()
    url = db or f"sqlite:///{home / 'atlas.db'}"
    with run_server(CollectorConfig(listen="127.0.0.1:0", db=url, http=_ui_address())) as collector:
        click.echo(f"collector listening on {collector.address} (store: {url})")
        if collector.http_url:
            click.echo(f"web UI on {collector.http_url}")
        for bug in (False, True):
            t0 = time.monotonic()
            cmd = [sys.executable, "-m", "atlas_callback._demo", "--collector", collector.address,
                   "--epochs", str(epochs)] + (["--bug"] if bug else [])
            done = subprocess.run(cmd, env={**os.environ, "ATLAS_MODE": "online"})
            if done.returncode != 0:
                raise click.ClickException(f"the demo training exited with status {done.returncode}")
            click.echo(f"  ({time.monotonic() - t0:.1f}s)")
        click.echo("")
        local = Ctx(collector=collector.address, token=None, tls_ca=None, json=obj.json)
        local._client = CollectorClient(collector.address)
        try:
            rows = list_runs(local, project="demo", limit=2)
            render_table(table_rows(rows), RUN_COLUMNS)
            for name in ("demo-mlp", "demo-bug"):
                detail = get_run(local, name, "demo")
                final = detail["final_metrics"] or {}
                shown = ", ".join(f"{k} {final[k]:.4g}" for k in ("loss_mean", "val_loss", "val_acc")
                                  if isinstance(final.get(k), (int, float)))
                score = detail["health_score"]
                click.echo(f"\n{name} ({detail['id'][:8]}): {detail['status']} after {detail['epochs']} epochs, health "
                           f"{'-' if score is None else round(score)}; {shown}")
                if collector.http_url:
                    click.echo(f"UI: {collector.http_url}runs/{detail['id']}")
                issues = list_issues(local, detail["id"])
                if not issues:
                    click.echo("diagnostics: no issues")
                    continue
                click.echo("diagnostics, the most likely cause first:")
                print_issues(issues)
        finally:
            local._client.close()
        if serve and collector.http_url:
            click.echo(f"\nServing the web UI at {collector.http_url} (and gRPC at {collector.address}); Ctrl-C stops.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                click.echo("")
    click.echo(f"\nThe runs are stored in {url}. Serve them with `atlas-collector`"
               + (f" --db {url}" if db else "") + " and explore: `atlas runs`, `atlas issues demo-bug`.")


def _ui_address() -> str:
    """127.0.0.1:8765 (the collector's default) when free, else a free port."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", 8765))
        except OSError:
            return "127.0.0.1:0"
    return "127.0.0.1:8765"
