"""`atlas stop`, `atlas pause`, `atlas resume`: commands to a running trainer through the collector."""
from __future__ import annotations

from typing import Any

import click

from ._app import Ctx, cli, echo, output
from ._terminal import safe

ENDED = ("completed", "stopped", "failed")


def send_command(obj: Ctx, run: str, kind: str, reason: str = "", sender: str | None = None) -> dict[str, Any]:
    """Send PAUSE/RESUME/STOP to a run; the collector records it and forwards it to the trainer's streams."""
    from atlas_proto.v1 import query_pb2 as qpb
    from atlas_proto.v1 import telemetry_pb2 as tpb

    from atlas_proto.convert import iso
    from ._runs import get_run

    detail = get_run(obj, run)
    if detail["status"] in ENDED:
        raise click.ClickException(f"run {detail['id']} ({safe(detail['name'], lines=False)}) has already ended "
                                   f"({detail['status']}); there is nothing to {kind}")
    run = detail["id"]
    kinds = {"pause": tpb.COMMAND_KIND_PAUSE, "resume": tpb.COMMAND_KIND_RESUME, "stop": tpb.COMMAND_KIND_STOP}
    if sender is None:
        import getpass
        import socket

        try:
            sender = f"atlas-cli:{getpass.getuser()}@{socket.gethostname()}"
        except Exception:  # noqa: BLE001 - no user name in some containers
            sender = "atlas-cli"
    resp = obj.client().send_command(qpb.CommandRequest(run=run, kind=kinds[kind], reason=reason, sender=sender))
    return {"command_id": resp.command_id, "run_id": resp.run_id, "kind": kind, "reason": reason or None,
            "delivered": resp.delivered, "issued_at": iso(resp.issued_at)}


def _print(result: dict[str, Any]) -> None:
    where = ("delivered to the trainer" if result["delivered"]
             else "queued: no trainer stream is connected now; it is delivered when the run reconnects")
    echo(f"{result['kind']} sent to run {result['run_id']} ({where})")


def _command(kind: str, summary: str, example: str) -> None:
    @click.argument("run")
    @click.option("--reason", default="", help="Why; stored with the command and shown to the trainer.")
    @output(text=_print)
    def command(obj: Ctx, run: str, reason: str) -> Any:
        return send_command(obj, run, kind, reason)

    command.__doc__ = f"{summary}\n\n    \\b\n    Example:\n      {example}\n"
    cli.command(kind, help=f"{summary}\n\n\b\nExample:\n  {example}")(command)


_command("stop", "Stop a running run at its next batch boundary (every rank agrees on the step).",
         "atlas stop latest --reason 'val loss diverging'")
_command("pause", "Pause a run at its next batch boundary until `atlas resume` (or its pause timeout).",
         "atlas pause baseline --reason 'inspect memory'")
_command("resume", "Resume a paused run.", "atlas resume baseline")
