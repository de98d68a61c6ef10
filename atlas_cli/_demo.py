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
@click.option("--db", help="Store URL for the embedded collector. [default: sqlite file demo.db under ATLAS_HOME]")
@click.pass_obj
def demo(obj: Ctx, epochs: int, db: str | None) -> None:
    """Train a small Lightning model on the CPU against an embedded collector, then list the run.

    Starts a collector on a free loopback port with a SQLite store (ATLAS_HOME, default ~/.atlas),
    trains a small classifier on synthetic data for a few seconds in a subprocess with AtlasCallback,
    and prints the run as `atlas runs` and `atlas runs show` see it.

    \b
    Example:
      atlas demo --epochs 3
    """
    from atlas_collector import CollectorConfig, run_server

    from ._client import CollectorClient
    from ._runs import RUN_COLUMNS, get_run, list_runs

    home = pathlib.Path(os.environ.get("ATLAS_HOME") or "~/.atlas").expanduser()
    url = db or f"sqlite:///{home / 'demo.db'}"
    with run_server(CollectorConfig(listen="127.0.0.1:0", db=url)) as collector:
        click.echo(f"collector listening on {collector.address} (store: {url})")
        t0 = time.monotonic()
        cmd = [sys.executable, "-m", "atlas_callback._demo", "--collector", collector.address, "--epochs", str(epochs)]
        done = subprocess.run(cmd, env={**os.environ, "ATLAS_MODE": "online"})
        if done.returncode != 0:
            raise click.ClickException(f"the demo training exited with status {done.returncode}")
        click.echo(f"training finished in {time.monotonic() - t0:.1f}s\n")
        local = Ctx(collector=collector.address, token=None, tls_ca=None, json=obj.json)
        local._client = CollectorClient(collector.address)
        try:
            rows = list_runs(local, project="demo", limit=5)
            render_table([{**r, "id": r["id"][:8]} for r in rows], RUN_COLUMNS)
            click.echo("")
            detail = get_run(local, "latest", "demo")
            render_kv({k: detail[k] for k in ("id", "status", "epochs", "steps", "health_score", "hyperparameters",
                                              "final_metrics")})
            from atlas_proto.v1 import query_pb2 as qpb

            issues = local.client().call("ListIssues", qpb.IssuesRequest(run=detail["id"])).issues
            click.echo("\ndiagnostics:" if issues else "\ndiagnostics: no issues")
            for issue in issues:
                click.echo(f"  {issue.severity:<8} {issue.check}: {issue.description}")
        finally:
            local._client.close()
    click.echo(f"\nThe run is stored in {url}. Serve it with `atlas-collector --db {url}` and explore with `atlas runs`.")
