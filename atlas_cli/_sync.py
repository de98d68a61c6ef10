"""`atlas sync [DIR]`: upload spooled runs (offline runs, or records a collector never acknowledged)."""
from __future__ import annotations

import json
import os
import pathlib
import queue
import threading
from typing import Any

import click

from ._app import Ctx, cli

ACK_TIMEOUT_S = 60.0


def _upload(obj: Ctx, stream: Any) -> int:
    """Send one spooled (run, rank, session); return how many records the collector now holds."""
    import grpc

    from atlas_proto.v1 import telemetry_pb2_grpc

    from ._client import CollectorClient

    messages = list(stream.messages())
    if not messages or not messages[0].HasField("run_start"):
        raise click.ClickException(f"{stream.path} does not start with a RunStart; it is not an Atlas spool")
    last = max((m.seq for m in messages), default=0)
    client = obj.client()
    assert isinstance(client, CollectorClient)
    stub = telemetry_pb2_grpc.TelemetryServiceStub(client._channel)
    outbox: queue.Queue[Any] = queue.Queue()
    for m in messages:
        outbox.put(m)
    acked = [stream.acked]
    done = threading.Event()

    def requests() -> Any:
        while True:
            item = outbox.get()
            if item is None:
                return
            yield item

    call = stub.Stream(requests(), metadata=client._metadata)
    try:
        for response in call:
            if response.HasField("ack") and response.ack.session == stream.session:
                acked[0] = max(acked[0], response.ack.seq)
                if acked[0] >= last and not done.is_set():
                    done.set()
                    outbox.put(None)  # half-close: everything is stored
    except grpc.RpcError as exc:
        raise client._explain(exc) from None
    if acked[0] < last:
        raise click.ClickException(f"the collector acknowledged {acked[0]} of {last} records of run {stream.run_id}; "
                                   "run `atlas sync` again")
    return len(messages) - 1


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=pathlib.Path))
@click.option("--keep", is_flag=True, help="Keep the spool files after a successful upload.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def sync(obj: Ctx, directory: pathlib.Path | None, keep: bool, as_json: bool) -> None:
    """Upload spooled runs to the collector, then remove their spool files.

    DIRECTORY defaults to ATLAS_HOME/spool (~/.atlas/spool). Uploading twice is harmless: the collector
    stores every record once.

    \b
    Examples:
      atlas sync
      atlas --collector gpu-box:50051 sync /mnt/laptop/.atlas/spool
    """
    from atlas_callback._spool import SpoolReader, spool_root

    root = directory or spool_root(os.environ.get("ATLAS_HOME") or "~/.atlas")
    if directory is not None and not directory.is_dir():
        raise click.BadParameter(f"{directory} is not a directory", param_hint="DIRECTORY")
    rows = []
    for stream in SpoolReader(root).streams():
        sent = _upload(obj, stream)
        if not keep:
            stream.remove()
        rows.append({"run": stream.run_id, "rank": stream.rank, "session": stream.session, "records": sent})
    if as_json or obj.json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"nothing to sync in {root}")
    else:
        for row in rows:
            click.echo(f"synced run {row['run']} rank {row['rank']}: {row['records']} records")
