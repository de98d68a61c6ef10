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
DAMAGED_DIR = "damaged"


class _Gap(Exception):
    """The collector holds less of this stream than the spool's ack file says (another collector acked it)."""


def _outgoing(messages: list[Any], from_seq: int, where: str) -> list[Any]:
    """RunStart, then the records from `from_seq` on; a span of sequences missing from the file (damaged frames)
    goes as one `Dropped` message, so the collector records the loss and takes the rest."""
    from atlas_proto.v1 import telemetry_pb2 as tpb

    start, records = messages[0], [m for m in messages[1:] if m.seq >= from_seq]
    out, expected = [start], from_seq
    for m in records:
        if m.seq > expected:
            lost = tpb.ClientMessage(run_id=m.run_id, rank=m.rank, session=m.session, seq=m.seq - 1)
            lost.dropped.first_seq = expected
            lost.dropped.reason = f"damaged spool frames in {where}"
            out.append(lost)
        out.append(m)
        expected = m.seq + 1
    return out


def _send(obj: Ctx, stream: Any, outgoing: list[Any]) -> tuple[int, int]:
    """Stream `outgoing`; wait until the last sequence is acked. Returns (the highest ack, records refused)."""
    import grpc

    from atlas_proto.v1 import telemetry_pb2_grpc

    from ._client import CollectorClient

    last = max((m.seq for m in outgoing), default=0)
    client = obj.client()
    assert isinstance(client, CollectorClient)
    stub = telemetry_pb2_grpc.TelemetryServiceStub(client._channel)
    outbox: queue.Queue[Any] = queue.Queue()
    for m in outgoing:
        outbox.put(m)
    if last == 0:
        outbox.put(None)
    acked, refused = [0], [0]

    def requests() -> Any:
        while True:
            item = outbox.get()
            if item is None:
                return
            yield item

    call = stub.Stream(requests(), metadata=client._metadata)
    try:
        for response in call:
            if not response.HasField("ack") or response.ack.session != stream.session:
                continue
            if response.ack.refused:
                refused[0] += 1
                click.echo(f"warning: the collector refused record {response.ack.seq} of run {stream.run_id}: "
                           f"{response.ack.refused}", err=True)
            if response.ack.seq > acked[0]:
                acked[0] = response.ack.seq
                if acked[0] >= last:
                    outbox.put(None)  # half-close: everything is stored
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.ABORTED and "sequence gap" in (exc.details() or ""):
            raise _Gap(exc.details()) from None
        raise client._explain(exc) from None
    return acked[0], refused[0]


def _upload(obj: Ctx, stream: Any, scanned: Any) -> dict[str, Any]:
    """Send one spooled (run, rank, session): every intact record not yet acknowledged."""
    messages = scanned.messages
    if not messages or not messages[0].HasField("run_start"):
        raise click.ClickException(f"{stream.path} has no readable RunStart: nothing of it can be uploaded")
    last = max(m.seq for m in messages)
    try:
        acked, refused = _send(obj, stream, _outgoing(messages, stream.acked + 1, str(stream.path)))
    except _Gap:  # this collector lacks what another acked: send the whole file (it stores each record once)
        acked, refused = _send(obj, stream, _outgoing(messages, 1, str(stream.path)))
    if acked < last:
        raise click.ClickException(f"the collector acknowledged {acked} of {last} records of run {stream.run_id}; "
                                   "run `atlas sync` again")
    return {"records": len(messages) - 1, "refused": refused}


def _damage_text(scanned: Any) -> list[dict[str, Any]]:
    spans = list(scanned.damage) + ([scanned.partial_tail] if scanned.partial_tail else [])
    return [{"offset": d.offset, "bytes": d.length, "reason": d.reason} for d in spans]


def _move_aside(root: pathlib.Path, stream: Any) -> pathlib.Path:
    """Keep a damaged file (and its ack file) under ROOT/damaged/RUN/: never deleted, never synced again."""
    target = root / DAMAGED_DIR / stream.run_id
    target.mkdir(parents=True, exist_ok=True)
    for path in (stream.path, stream.ack_path):
        if path.exists():
            path.replace(target / path.name)
    try:
        stream.path.parent.rmdir()
    except OSError:
        pass
    return target / stream.path.name


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=pathlib.Path))
@click.option("--keep", is_flag=True, help="Keep the spool files after a successful upload.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def sync(obj: Ctx, directory: pathlib.Path | None, keep: bool, as_json: bool) -> None:
    """Upload spooled runs to the collector, then remove their spool files.

    DIRECTORY defaults to ATLAS_HOME/spool (~/.atlas/spool). Uploading twice is harmless: the collector
    stores every record once. A damaged file is uploaded as far as it is intact (every intact record, the
    damaged spans declared lost), named, and moved to DIRECTORY/damaged/; then, and when a file could not be
    uploaded, the command exits 1. The other files are uploaded whatever happens to one.

    \b
    Examples:
      atlas sync
      atlas --collector gpu-box:50051 sync /mnt/laptop/.atlas/spool
    """
    from atlas_callback._spool import SpoolReader, spool_root

    root = directory or spool_root(os.environ.get("ATLAS_HOME") or "~/.atlas")
    if directory is not None and not directory.is_dir():
        raise click.BadParameter(f"{directory} is not a directory", param_hint="DIRECTORY")
    rows, problems = [], []
    for stream in SpoolReader(root).streams():
        row: dict[str, Any] = {"run": stream.run_id, "rank": stream.rank, "session": stream.session,
                               "records": 0, "refused": 0, "damaged": [], "moved_to": None, "error": None}
        rows.append(row)
        try:
            scanned = stream.scan()
        except OSError as exc:
            row["error"] = f"cannot read {stream.path}: {exc}"
            problems.append(row["error"])
            continue
        row["damaged"] = _damage_text(scanned)
        try:
            row.update(_upload(obj, stream, scanned))
        except click.ClickException as exc:
            row["error"] = exc.format_message()
            problems.append(f"{stream.path}: {row['error']}")
            if scanned.messages and scanned.messages[0].HasField("run_start"):
                continue  # kept where it is: the next `atlas sync` tries again
        if row["damaged"]:
            row["moved_to"] = str(_move_aside(root, stream))
            spans = "; ".join(f"{d['bytes']} bytes at byte {d['offset']}: {d['reason']}" for d in row["damaged"])
            problems.append(f"{stream.path} is damaged ({spans}); {row['records']} intact records uploaded, the "
                            f"file is kept at {row['moved_to']}")
        elif not keep and row["error"] is None:
            stream.remove()
    if as_json or obj.json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"nothing to sync in {root}")
    else:
        for row in rows:
            if row["error"] is None:
                refused = f" ({row['refused']} refused by the collector, see `atlas logs`)" if row["refused"] else ""
                click.echo(f"synced run {row['run']} rank {row['rank']}: {row['records']} records{refused}")
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        raise click.ClickException(f"{len(problems)} spool file(s) could not be uploaded whole; nothing was deleted")
