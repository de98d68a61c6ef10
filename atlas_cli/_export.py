"""`atlas export RUN` (the run as facts: events.jsonl and scalars.csv) and `atlas diagnose DIR` (re-diagnose an
export offline with atlas_diagnostics, no collector).

events.jsonl holds one JSON object per line, in order: `{"type": "run", "data": <atlas runs show --json>}`,
`{"type": "architecture", "data": <ModelInfo>}`, then the steps, logs and epoch summaries of each epoch in the order
the diagnostics engine reads them (`{"type": "step"|"log"|"epoch", "rank": R, "data": <message>}`, messages in
protobuf JSON with the .proto field names) and `{"type": "end", "data": {...}}`. A message holding a time that
protobuf JSON cannot write (past the year 9999) has that time left out and a `"notes"` list saying so. scalars.csv
has one row per epoch (rank 0). metrics.csv has one row per user metric point (key, step, epoch, value, time).
issues.json, when the collector has diagnosed the run, holds its issues for
comparison."""
from __future__ import annotations

import csv
import json
import pathlib
from typing import Any, Iterator

import click

from ._app import Ctx, Result, cli, echo, output

STEP_PAGE = 10_000
PHASE = {"step": 0, "log": 0, "epoch": 1}


def as_dict(msg: Any) -> tuple[dict[str, Any], list[str]]:
    """A message in protobuf JSON (the .proto field names), and notes on what could not be written: a time outside
    the years 1 to 9999 (which protobuf JSON cannot write) is left out (null) and named in a note."""
    from google.protobuf import json_format

    try:
        return json_format.MessageToDict(msg, preserving_proto_field_name=True), []
    except json_format.SerializeToJsonError:
        copy = type(msg)()
        copy.CopyFrom(msg)
        notes: list[str] = []
        _clear_bad_times(copy, "", notes)
        return json_format.MessageToDict(copy, preserving_proto_field_name=True), notes


def _clear_bad_times(msg: Any, path: str, notes: list[str]) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    for fd, value in msg.ListFields():
        where = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type is None or fd.message_type.GetOptions().map_entry:
            continue
        for i, item in enumerate(value if fd.is_repeated else [value]):
            here = f"{where}[{i}]" if fd.is_repeated else where
            if isinstance(item, Timestamp):
                if not (_TS_MIN <= item.seconds <= _TS_MAX and 0 <= item.nanos < 1_000_000_000):
                    notes.append(f"{here} = {item.seconds} s {item.nanos} ns is not a valid time (protobuf JSON "
                                 "writes the years 1 to 9999); left out")
                    if fd.is_repeated:
                        item.Clear()
                    else:
                        msg.ClearField(fd.name)
            elif fd.message_type.full_name.startswith("atlas."):
                _clear_bad_times(item, here, notes)


_TS_MIN, _TS_MAX = -62135596800, 253402300799  # 0001-01-01 and 9999-12-31T23:59:59, what protobuf JSON can write


def _event(kind: str, msg: Any, rank: int | None = None) -> dict[str, Any]:
    data, notes = as_dict(msg)
    event: dict[str, Any] = {"type": kind}
    if rank is not None:
        event["rank"] = rank
    event["data"] = data
    if notes:
        event["notes"] = notes
    return event


def _ts(ts: Any) -> float:
    return ts.seconds + ts.nanos / 1e9


def _events(obj: Ctx, run: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]] | None, list[Any]]:
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import issue_dict
    from ._runs import get_run

    client = obj.client()
    detail = get_run(obj, run)
    run_id = detail["id"]
    body: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    epochs: list[Any] = []
    # Ranks 0..world_size-1, until one that sent nothing: a stored world size is not trusted to be small (one of
    # 2^31 would mean 2^31 round trips).
    for rank in range(max(1, detail.get("world_size") or 1)):
        found = 0
        resp = client.get_epochs(qpb.EpochsRequest(run=run_id, rank=rank))
        for e in resp.epochs:
            found += 1
            body.append(((e.summary.epoch, PHASE["epoch"], e.rank, _ts(e.summary.ended_at)),
                         _event("epoch", e.summary, e.rank)))
            if e.rank == 0:
                epochs.append(e.summary)
        next_step: int | None = None
        while True:
            req = qpb.StepsRequest(run=run_id, rank=rank, limit=STEP_PAGE)
            if next_step is not None:
                req.from_step = next_step
            samples = client.get_steps(req).samples
            found += len(samples)
            for x in samples:
                body.append(((x.epoch, PHASE["step"], _ts(x.time), x.step), _event("step", x, rank)))
            if len(samples) < STEP_PAGE:
                break
            next_step = samples[-1].step + 1
        if rank > 0 and not found:
            break
    for r in client.get_logs(qpb.LogsRequest(run=run_id, limit=1_000_000)).records:
        body.append(((r.epoch, PHASE["log"], _ts(r.time), 0), _event("log", r, 0)))
    body.sort(key=lambda item: item[0])
    arch = client.get_architecture(qpb.RunRef(run=run_id))
    events = [{"type": "run", "data": detail}, _event("architecture", arch)]
    events += [e for _, e in body]
    events.append({"type": "end", "data": {k: detail.get(k) for k in ("status", "ended_at", "epochs", "steps",
                                                                         "error")}})
    issues = client.if_served(client.list_issues, qpb.IssuesRequest(run=run_id, include_inactive=True))
    return detail, events, ([issue_dict(i) for i in issues.issues] if issues is not None else None), epochs


def write_export(obj: Ctx, run: str, out: pathlib.Path) -> dict[str, Any]:
    from atlas_proto.convert import clean_number, epoch_row

    detail, events, issues, epochs = _events(obj, run)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "events.jsonl", "w", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":"), allow_nan=False) + "\n")
    rows = [clean_number(epoch_row(s)) for s in epochs]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(out / "scalars.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns or ["epoch"], restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    if issues is not None:
        (out / "issues.json").write_text(json.dumps(issues, indent=2) + "\n", encoding="utf-8")
    points = write_metrics(obj, detail["id"], out / "metrics.csv")
    counts: dict[str, int] = {}
    for e in events:
        counts[e["type"]] = counts.get(e["type"], 0) + 1
    return {"run": detail["id"], "name": detail["name"], "dir": str(out), "events": len(events),
            "steps": counts.get("step", 0), "epochs": counts.get("epoch", 0), "logs": counts.get("log", 0),
            "metric_points": points,
            "files": ["events.jsonl", "scalars.csv"] + (["issues.json"] if issues is not None else [])
            + (["metrics.csv"] if points is not None else [])}


def write_metrics(obj: Ctx, run_id: str, path: pathlib.Path) -> int | None:
    """The run's user metrics, one row per point: key, step, epoch, value (nan/inf as written), time (ISO 8601).
    Returns how many points; None (no file) when the collector keeps no user metrics (an older one)."""
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import iso

    client = obj.client()
    keys = client.if_served(client.list_metrics, qpb.RunRef(run=run_id))
    if keys is None:
        return None
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "step", "epoch", "value", "time"])
        for m in keys.metrics:
            series = client.get_metric_series(qpb.MetricSeriesRequest(run=run_id, key=m.key, limit=1_000_000))
            for p in series.points:
                writer.writerow([m.key, p.step, p.epoch, repr(p.value), iso(p.time) or ""])
                n += 1
    return n


def _print_export(summary: dict[str, Any]) -> None:
    echo(f"exported run {summary['run']} ({summary['name']}) to {summary['dir']}: {summary['epochs']} "
         f"epochs, {summary['steps']} steps, {summary['logs']} log records, "
         f"{summary['metric_points'] or 0} metric points "
         f"({', '.join(summary['files'])})")


@cli.command()
@click.argument("run")
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Directory to write (created). [default: atlas-export-<id prefix>]")
@output(text=_print_export, clean_numbers=False,
        json_help="Print a JSON summary of what was written.")
def export(obj: Ctx, run: str, out: pathlib.Path | None) -> dict[str, Any]:
    """Export a run as facts: events.jsonl (every record, in order) and scalars.csv (one row per epoch).

    The export is enough to re-diagnose the run offline: `atlas diagnose DIR`.

    \b
    Examples:
      atlas export latest -o runs/baseline
      atlas diagnose runs/baseline
    """
    if out is None:
        from ._runs import get_run

        out = pathlib.Path(f"atlas-export-{get_run(obj, run)['id'][:8]}")
    try:
        return write_export(obj, run, out)
    except OSError as exc:
        raise click.ClickException(f"cannot write the export to {out}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------------------------------ offline diagnose

def read_events(directory: pathlib.Path) -> Iterator[dict[str, Any]]:
    path = directory / "events.jsonl"
    if not path.is_file():
        raise click.ClickException(f"no events.jsonl in {directory} (write one with `atlas export RUN -o {directory}`)")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise click.ClickException(f"{path}:{n}: not JSON ({exc.msg})") from None
            if not isinstance(event, dict) or "type" not in event or "data" not in event:
                raise click.ClickException(f"{path}:{n}: expected an object with `type` and `data`")
            yield {**event, "_line": n}


def diagnose_dir(directory: pathlib.Path) -> tuple[dict[str, Any], Any]:
    """The run detail and the atlas_diagnostics Engine after one update with every exported record."""
    from google.protobuf import json_format

    import atlas_diagnostics as d
    from atlas_proto import convert as r
    from atlas_proto.v1 import telemetry_pb2 as tpb

    detail: dict[str, Any] = {}
    arch = None
    epochs, steps, logs = [], [], []
    kinds = {"epoch": (tpb.EpochSummary, r.epoch_record, epochs), "step": (tpb.StepSample, r.step_record, steps),
             "log": (tpb.LogRecord, r.log_record, logs)}
    for event in read_events(directory):
        kind, data = event["type"], event["data"]
        try:
            if kind == "run":
                detail = data
            elif kind == "end" and isinstance(data, dict) and data.get("status"):
                detail = {**detail, "status": data["status"]}
            elif kind == "architecture":
                arch = r.architecture(json_format.ParseDict(data, tpb.ModelInfo(), ignore_unknown_fields=True))
            elif kind in kinds:
                msg_type, convert, into = kinds[kind]
                msg = json_format.ParseDict(data, msg_type(), ignore_unknown_fields=True)
                into.append(convert(msg, int(event.get("rank", 0))))
        except (json_format.ParseError, d.DiagnosticsError, TypeError, ValueError) as exc:
            raise click.ClickException(f"events.jsonl:{event['_line']}: bad {kind} record ({exc})") from None
    try:
        limits = r.thresholds(detail.get("thresholds"))
    except d.DiagnosticsError as exc:
        raise click.ClickException(f"events.jsonl: the run's thresholds are not valid ({exc})") from None
    engine = d.Engine(run_info=r.run_info(detail), thresholds=limits)
    engine.update(epochs=epochs, steps=steps, logs=logs, architecture=arch)
    return detail, engine


@cli.command("diagnose")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path))
@click.option("--report", is_flag=True, help="Print the whole diagnostic report (issues, trends, layers, green).")
@output(clean_numbers=False, json_help="Print JSON (the issues, as `atlas issues --json`).")
def diagnose_cmd(obj: Ctx, directory: pathlib.Path, report: bool) -> Result:
    """Re-diagnose an exported run offline with atlas_diagnostics (no collector needed).

    \b
    Examples:
      atlas export latest -o runs/baseline && atlas diagnose runs/baseline
      atlas diagnose runs/baseline --json | jq '.[].check'
    """
    import atlas_diagnostics as d

    detail, engine = diagnose_dir(directory)
    run_id = detail.get("id")
    issues = [{"run": run_id, **i.to_dict()} for i in engine.issues()]
    if report:  # JSON, with or without --json
        whole = {"run": run_id, **d.run_report(engine)}
        return Result(whole, text=lambda: echo(json.dumps(whole, indent=2)))
    return Result(issues, text=lambda: _print_diagnosis(directory, detail, engine, issues))


def _print_diagnosis(directory: pathlib.Path, detail: dict[str, Any], engine: Any,
                     issues: list[dict[str, Any]]) -> None:
    import atlas_diagnostics as d

    from ._issues import print_green, print_issues

    run_id = detail.get("id")
    health = d.health_report(engine.issues(), status=detail.get("status"))
    counts = health["severity_counts"]
    echo(f"run {run_id} ({detail.get('name')}), {engine.state.epochs_seen} epochs: health score "
         f"{health['health_score']} / 100 ({counts['critical']} critical, {counts['warning']} warning, "
         f"{counts['info']} info)\n")
    if issues:
        print_issues(issues)
    else:
        echo("no issues")
    echo("")
    print_green(d.green_insight(engine).to_dict())
    stored = directory / "issues.json"
    if stored.is_file():
        theirs = {(i["check"], i.get("layer"), i["active"]) for i in json.loads(stored.read_text(encoding="utf-8"))}
        ours = {(i["check"], i.get("layer"), i["active"]) for i in issues}
        verdict = "the same issues as the collector" if theirs == ours else (
            f"differs from the collector's issues.json: only offline {sorted(ours - theirs)}, "
            f"only collector {sorted(theirs - ours)}")
        echo(f"\n{verdict}")
