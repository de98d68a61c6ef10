"""`atlas demo`: an embedded collector, a real Lightning training in a subprocess, then `atlas runs`."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import click

from ._app import Ctx, cli, render_kv, render_table


@cli.command()
@click.option("--epochs", type=click.IntRange(1, 50), default=3, show_default=True, help="Epochs to train.")
@click.option("--db", help="Store URL for the embedded collector. [default: the collector's own default, sqlite file "
                           "atlas.db under ATLAS_HOME]")
@click.pass_obj
def demo(obj: Ctx, epochs: int, db: str | None) -> None:
    """Train two small Lightning models on the CPU against an embedded collector, then show what Atlas saw.

    The first run is healthy. The second has a bug people write (the optimizer is built over a copy of the
    network, so no weight ever changes) and runs with on_critical="stop": Atlas names the bug and stops it.
    The runs are stored where `atlas-collector` keeps them by default (ATLAS_HOME, default ~/.atlas), so
    `atlas-collector &` then `atlas runs` shows them.

    \b
    Example:
      atlas demo --epochs 3
    """
    from atlas_collector import CollectorConfig, run_server

    from ._client import CollectorClient
    from ._issues import list_issues, print_issues
    from ._runs import RUN_COLUMNS, get_run, list_runs, table_rows

    home = pathlib.Path(os.environ.get("ATLAS_HOME") or "~/.atlas").expanduser()
    url = db or f"sqlite:///{home / 'atlas.db'}"
    with run_server(CollectorConfig(listen="127.0.0.1:0", db=url)) as collector:
        click.echo(f"collector listening on {collector.address} (store: {url})")
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
                issues = list_issues(local, detail["id"])
                if not issues:
                    click.echo("diagnostics: no issues")
                    continue
                click.echo("diagnostics, the most likely cause first:")
                print_issues(issues)
        finally:
            local._client.close()
    click.echo(f"\nThe runs are stored in {url}. Serve them with `atlas-collector`"
               + (f" --db {url}" if db else "") + " and explore: `atlas runs`, `atlas issues demo-bug`.")
