"""`atlas sync [DIR]`: upload spooled runs (offline runs, or records a collector never acknowledged).

Each spool file is read by `atlas_callback._spool.scan`, which never gives up on bad bytes. What happens to a file:
- intact, or only harmless faults (a length prefix that was wrong but the record read whole, bad bytes that held no
  record, a last frame cut short by a crash of the trainer): uploaded, named when it had a fault, removed once the
  collector acknowledged its last record;
- records lost (a damaged frame, a span gone, a damaged end): every intact record is uploaded, each run of lost
  sequences goes as one `Dropped` message (the collector records the loss with the run and moves on), the file is
  named with the byte offsets and moved to DIR/damaged/RUN/ (never deleted), and the command exits 1;
- the upload failed (collector away): the file stays where it is for the next `atlas sync`, exit 1.
One file's trouble never stops the others. `--json` prints one row a file: its `status` ("synced", "repaired": bad
bytes but every record read, "damaged": moved aside, "failed": kept in place), the spans (`damaged`, `repaired`,
`cut_short`: byte offset, bytes, reason, the sequences lost), the records refused by the collector and where the
file went."""
from __future__ import annotations

import os
import pathlib
import queue
import threading
import time
from typing import Any

import click

from ._app import Ctx, Result, cli, output

ACK_TIMEOUT_S = 60.0  # no acknowledgement for this long while records are outstanding: the upload failed
DAMAGED_DIR = "damaged"


class _Gap(Exception):
    """The collector holds less of this stream than the spool's ack file says (another collector acked it)."""


class _NotStarted(Exception):
    """The collector has never seen the run (and the file's RunStart is unreadable)."""


def _outgoing(scanned: Any, from_seq: int, where: pathlib.Path) -> list[Any]:
    """RunStart (when readable), then the records from `from_seq` on; each run of sequences missing from the file
    goes as one `Dropped` message in their place, so the collector records the loss and takes the rest."""
    from atlas_proto.v1 import telemetry_pb2 as tpb

    spans = {d.last_lost: d for d in scanned.damage if d.lost}
    out = [m for m in scanned.messages[:1] if m.HasField("run_start")]
    expected = max(1, from_seq)
    for m in scanned.messages:
        if m.HasField("run_start") or m.seq < expected:
            continue
        if m.seq > expected:
            d = spans.get(m.seq - 1)
            lost = tpb.ClientMessage(run_id=m.run_id, rank=m.rank, session=m.session, seq=m.seq - 1)
            lost.dropped.first_seq = expected
            lost.dropped.reason = (f"damaged spool frame at byte {d.offset} of {where} ({d.length} bytes unreadable: "
                                   f"{d.reason})" if d is not None else f"missing from {where}")
            out.append(lost)
        out.append(m)
        expected = m.seq + 1
    return out


def _send(obj: Ctx, stream: Any, outgoing: list[Any]) -> tuple[int, list[tuple[int, str]]]:
    """Stream `outgoing`; wait until its last sequence is acked. Returns (the highest ack, the refusals)."""
    import grpc

    last = max((m.seq for m in outgoing), default=0)
    client = obj.client()
    outbox: queue.Queue[Any] = queue.Queue()
    for m in outgoing:
        outbox.put(m)
    if last == 0:
        outbox.put(None)  # a RunStart alone: its ack is the collector's cursor, perhaps 0
    acked, refusals = 0, []
    progress, finished, timed_out = [time.monotonic()], threading.Event(), threading.Event()

    def requests() -> Any:
        while True:
            item = outbox.get()
            if item is None:
                return
            yield item

    call = client.stream_telemetry(requests())

    def watchdog() -> None:  # a collector that stops acknowledging must not hold `atlas sync` forever
        while not finished.wait(max(0.0, progress[0] + ACK_TIMEOUT_S - time.monotonic())):
            if time.monotonic() - progress[0] >= ACK_TIMEOUT_S:
                timed_out.set()
                call.cancel()
                return

    threading.Thread(target=watchdog, name="atlas-sync-watchdog", daemon=True).start()
    try:
        for response in call:
            if not response.HasField("ack") or response.ack.session != stream.session:
                continue
            progress[0] = time.monotonic()
            if response.ack.refused:
                refusals.append((response.ack.seq, response.ack.refused))
            if response.ack.seq > acked:
                acked = response.ack.seq
                if acked >= last:
                    outbox.put(None)  # half-close: everything is stored
    except grpc.RpcError as exc:
        details = exc.details() or ""
        if exc.code() == grpc.StatusCode.ABORTED and "sequence gap" in details:
            raise _Gap(details) from None
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "never started" in details:
            raise _NotStarted(details) from None
        if timed_out.is_set():
            raise click.ClickException(f"the collector at {client.target} acknowledged nothing for "
                                       f"{ACK_TIMEOUT_S:.0f} s; run `atlas sync` again") from None
        raise client.explain(exc) from None
    finally:
        finished.set()
        outbox.put(None)
    return acked, refusals


def _upload(obj: Ctx, stream: Any, scanned: Any) -> dict[str, Any]:
    """Send one spooled (run, rank, session): every intact record not yet acknowledged."""
    last = max(m.seq for m in scanned.messages)
    try:
        acked, refusals = _send(obj, stream, _outgoing(scanned, stream.acked + 1, stream.path))
    except _Gap:
        acked, refusals = -1, []
    if acked < last and stream.acked > 0:  # this collector lacks what another acked: send the whole file
        acked, more = _send(obj, stream, _outgoing(scanned, 1, stream.path))  # (it stores each record once)
        refusals += more
    if acked < last:
        raise click.ClickException(f"the collector acknowledged {acked} of {last} records of run {stream.run_id}; "
                                   "run `atlas sync` again")
    return {"records": sum(1 for m in scanned.messages if not m.HasField("run_start")), "refused": len(refusals),
            "refusals": [{"seq": seq, "reason": why} for seq, why in refusals]}


def _span(d: Any) -> dict[str, Any]:
    return {"offset": d.offset, "bytes": d.length, "reason": d.reason, "first_lost": d.first_lost,
            "last_lost": d.last_lost, "lost": d.lost, "to_end": d.to_end}


def _lost_text(d: dict[str, Any]) -> str:
    if d["to_end"]:
        if d["first_lost"] == 0:
            return "nothing of it could be read"
        return f"the records after seq {d['first_lost'] - 1} are lost (how many is unknown)"
    first, last = max(1, d["first_lost"]), d["last_lost"]
    if last < first:
        return "the RunStart is unreadable" if d["first_lost"] == 0 and d["last_lost"] == 0 else "no record lost"
    return f"seq {first} lost (1 record)" if first == last else f"seq {first}..{last} lost ({last - first + 1} records)"


def _spans_text(spans: list[dict[str, Any]]) -> str:
    return "; ".join(f"{d['bytes']} bytes at byte {d['offset']} ({d['reason']}): {_lost_text(d)}" for d in spans)


def _move_aside(root: pathlib.Path, stream: Any) -> pathlib.Path:
    """Keep a damaged file (and its ack file) under ROOT/damaged/RUN/: never deleted, never synced again by a plain
    `atlas sync`. A file synced from a damaged folder itself stays where it is."""
    if root.name == DAMAGED_DIR:
        return stream.path
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


def _sync_one(obj: Ctx, root: pathlib.Path, stream: Any, keep: bool, row: dict[str, Any]) -> list[str]:
    """Upload one file and decide what becomes of it; fills `row`, returns the lines for stderr."""
    try:
        scanned = stream.scan()
    except (OSError, ValueError) as exc:  # ValueError: a folder name that cannot be a run id
        row["error"], row["status"] = f"cannot read {stream.path}: {exc}", "failed"
        return [f"error: {row['error']}"]
    row["damaged"] = [_span(d) for d in scanned.damage]
    row["repaired"] = [_span(d) for d in scanned.repaired]
    row["cut_short"] = _span(scanned.partial_tail) if scanned.partial_tail else None
    lines = []
    if scanned.messages:
        try:
            row.update(_upload(obj, stream, scanned))
        except _NotStarted:
            row["error"] = (f"its RunStart is unreadable and the collector has never seen run {stream.run_id}: "
                            "none of its records can be uploaded")
        except click.ClickException as exc:  # the collector away, or a failure of its own: try again later
            row["error"], row["status"] = exc.format_message(), "failed"
            return [f"error: {stream.path}: {row['error']} (the file is kept where it is)"]
    elif scanned.damage:
        row["error"] = "no intact frame: none of its records can be uploaded"
    if row["refused"]:
        from ._terminal import safe  # the collector's reason may quote what a trainer sent

        seqs = ", ".join(str(r["seq"]) for r in row["refusals"][:5]) + (", ..." if row["refused"] > 5 else "")
        why = safe(row["refusals"][0]["reason"], lines=False)
        lines.append(f"warning: the collector refused {row['refused']} record(s) of run {stream.run_id} rank "
                     f"{stream.rank} ({stream.path}): seq {seqs}: {why} (recorded with the run; the other records "
                     "are stored)")
    if row["cut_short"]:
        cut = row["cut_short"]
        lines.append(f"note: {stream.path} ends in a record cut short ({cut['bytes']} bytes at byte {cut['offset']}): "
                     "the trainer stopped while writing it; the records before it are uploaded")
    if row["error"] is not None or scanned.records_lost:
        row["moved_to"], row["status"] = str(_move_aside(root, stream)), "damaged"
        what = row["error"] or (f"{row['records']} intact records uploaded, the lost ones recorded with the run "
                                f"(`atlas logs {stream.run_id}`)")
        lines.append(f"error: {stream.path} is damaged: {_spans_text(row['damaged'])}; {what}; the file is kept at "
                     f"{row['moved_to']}")
        return lines
    if row["damaged"] or row["repaired"]:
        row["status"] = "repaired"
        lines.append(f"warning: {stream.path} had damaged bytes but every record was read: "
                     f"{_spans_text(row['damaged'] + row['repaired'])}")
    if not keep:
        stream.remove()
        row["removed"] = True
    return lines


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=pathlib.Path))
@click.option("--keep", is_flag=True, help="Keep the spool files after a successful upload.")
@output(clean_numbers=False, json_help="Print JSON instead of text.")
def sync(obj: Ctx, directory: pathlib.Path | None, keep: bool) -> Result:
    """Upload spooled runs to the collector, then remove their spool files.

    DIRECTORY defaults to ATLAS_HOME/spool (~/.atlas/spool). Uploading twice is harmless: the collector
    stores every record once. A damaged file is uploaded as far as it is intact (every intact record; each
    span of lost records is recorded with the run), named with the byte offsets of the damage, and moved to
    DIRECTORY/damaged/RUN/, never deleted; then, and when a file could not be uploaded, the command exits 1.
    The other files are uploaded whatever happens to one. Records the collector refuses are named (warning).

    \b
    Examples:
      atlas sync
      atlas --collector gpu-box:50051 sync /mnt/laptop/.atlas/spool
      atlas sync ~/.atlas/spool/damaged     # try the damaged files again (they stay there)
    """
    from atlas_callback._spool import SpoolReader, spool_root

    root = directory or spool_root(os.environ.get("ATLAS_HOME") or "~/.atlas")
    if directory is not None and not directory.is_dir():
        raise click.BadParameter(f"{directory} is not a directory", param_hint="DIRECTORY")
    rows, messages = [], []
    for stream in SpoolReader(root).streams():
        row: dict[str, Any] = {"run": stream.run_id, "rank": stream.rank, "session": stream.session,
                               "path": str(stream.path), "records": 0, "refused": 0, "refusals": [], "damaged": [],
                               "repaired": [], "cut_short": None, "moved_to": None, "removed": False, "error": None,
                               "status": "synced"}
        rows.append(row)
        messages += _sync_one(obj, root, stream, keep, row)
    return Result(rows, text=lambda: _print_synced(rows, root), notes=messages, fail=_failure(rows, root))


def _print_synced(rows: list[dict[str, Any]], root: pathlib.Path) -> None:
    if not rows:
        click.echo(f"nothing to sync in {root}")
    for row in rows:
        if row["error"] is None and row["moved_to"] is None:
            refused = (f" ({row['refused']} refused by the collector, see `atlas logs {row['run']}`)"
                       if row["refused"] else "")
            click.echo(f"synced run {row['run']} rank {row['rank']}: {row['records']} records{refused}")


def _failure(rows: list[dict[str, Any]], root: pathlib.Path) -> str | None:
    """What the command exits 1 with when a file could not be uploaded whole; None when every one was."""
    failed = [row for row in rows if row["error"] is not None or row["moved_to"] is not None]
    if not failed:
        return None
    moved = sum(1 for row in failed if row["moved_to"] is not None)
    text = f"{len(failed)} of {len(rows)} spool file(s) could not be uploaded whole"
    if moved:
        text += f"; {moved} damaged file(s) kept in {root if root.name == DAMAGED_DIR else root / DAMAGED_DIR}"
    if moved < len(failed):
        text += f"; {'the others stay' if moved else 'they stay'} where they are: run `atlas sync` again"
    refused = sum(row["refused"] for row in rows)
    if refused:
        text += f"; {refused} record(s) refused by the collector"
    return text
