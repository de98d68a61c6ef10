"""`atlas watch RUN`: a live view of a run that polls the query service until the run ends.

On a terminal it redraws one screen (rich): the loss and validation curves drawn in characters, throughput, GPU,
CO2 so far, new issues, the status. Piped, it prints one plain line per new epoch, issue and status change."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import click

from ._app import Ctx, cli, echo, safe

ENDED = ("completed", "stopped", "failed", "stale")
MARKS = {"loss": "●", "val_loss": "◆"}


def line_chart(series: dict[str, list[float | None]], width: int = 60, height: int = 10) -> list[str]:
    """Series drawn on a character grid (one mark per point, later series on top), with a y axis."""
    values = [v for ys in series.values() for v in ys if v is not None and math.isfinite(v)]
    n = max((len(ys) for ys in series.values()), default=0)
    if not values or n == 0:
        return ["(waiting for the first epoch)"]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    grid = [[" "] * width for _ in range(height)]
    for name, ys in series.items():
        mark = MARKS.get(name, "*")
        points = []
        for i, y in enumerate(ys):
            if y is None or not math.isfinite(y):
                continue
            x = 0 if n == 1 else round(i * (width - 1) / (n - 1))
            points.append((x, (height - 1) - (y - lo) / (hi - lo) * (height - 1)))
        for (x0, r0), (x1, r1) in zip(points, points[1:]):  # a dotted line between consecutive epochs
            for x in range(x0 + 1, x1):
                row = round(r0 + (r1 - r0) * (x - x0) / (x1 - x0))
                if grid[row][x] == " ":
                    grid[row][x] = "·"
        for x, r in points:
            grid[round(r)][x] = mark
    label_w = max(len(f"{hi:.4g}"), len(f"{lo:.4g}"))
    lines = []
    for r, row in enumerate(grid):
        label = f"{hi:.4g}" if r == 0 else f"{lo:.4g}" if r == height - 1 else ""
        lines.append(f"{label:>{label_w}} │" + "".join(row).rstrip())
    lines.append(" " * label_w + " └" + "─" * width)
    lines.append(" " * label_w + f"  epoch 0{' ' * max(1, width - 8 - len(str(n - 1)))}{n - 1}")
    lines.append("  ".join(f"{MARKS.get(k, '*')} {k}" for k in series))
    return lines


@dataclass
class WatchState:
    run: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    issues: dict[tuple[str, Any], dict[str, Any]] = field(default_factory=dict)
    new_issues: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""

    @property
    def ended(self) -> bool:
        return self.run.get("status") in ENDED


def poll(obj: Ctx, state: WatchState, run_ref: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """One round: the run, epochs after the last one seen, issues. Returns new epochs, new issues, status changed."""
    from atlas_proto.v1 import query_pb2 as qpb

    from ._client import clean_number, epoch_row, issue_dict
    from ._runs import get_run

    client = obj.client()
    state.run = get_run(obj, state.run.get("id") or run_ref)
    req = qpb.EpochsRequest(run=state.run["id"])
    if state.epochs:
        req.from_epoch = state.epochs[-1]["epoch"] + 1
    new_epochs = [clean_number(epoch_row(e.summary, e.rank)) for e in client.call("GetEpochs", req).epochs]
    state.epochs += new_epochs
    new_issues = []
    resp = client.try_call("ListIssues", qpb.IssuesRequest(run=state.run["id"]))
    for i in resp.issues if resp is not None else ():
        issue = issue_dict(i)
        key = (issue["check"], issue["layer"])
        if key not in state.issues:
            new_issues.append(issue)
        state.issues[key] = issue
    state.new_issues = (state.new_issues + new_issues)[-8:]
    changed = state.run["status"] != state.status
    state.status = state.run["status"]
    return new_epochs, new_issues, changed


def _num(v: Any, fmt: str = ".4g", unit: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{unit}"


def epoch_line(e: dict[str, Any]) -> str:
    parts = [f"epoch {e['epoch']}", f"loss {_num(e.get('loss_mean'))}"]
    if e.get("val_loss") is not None:
        parts.append(f"val_loss {_num(e['val_loss'])}")
    parts.append(f"{_num(e.get('samples_per_sec'), ',.0f')} samples/s")
    if e.get("gpu_utilization_percent") is not None:
        parts.append(f"GPU {e['gpu_utilization_percent']:.0f}%")
    if e.get("cumulative_co2_kg") is not None:
        parts.append(f"CO2 {e['cumulative_co2_kg'] * 1000:.3g} g")
    return "  ".join(parts)


def issue_line(i: dict[str, Any]) -> str:
    where = f" ({i['layer']})" if i.get("layer") else ""
    return safe(f"! {i['severity']} {i['check']}{where}: {i['title']}", lines=False)


def _screen(state: WatchState) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    run = state.run
    last = state.epochs[-1] if state.epochs else {}
    style = {"running": "green", "paused": "yellow", "completed": "cyan", "failed": "red"}.get(run.get("status"), "")
    name = safe(str(run.get("name")), lines=False)
    head = Text.assemble((f"{name} ", "bold"), (f"{run.get('id', '')[:8]}  ", "dim"), (str(run.get("status")), style),
                         f"   epochs {run.get('epochs')}   steps {run.get('steps')}"
                         f"   health {'-' if run.get('health_score') is None else format(run['health_score'], 'g')}")
    series: dict[str, list[float | None]] = {"loss": [e.get("loss_mean") for e in state.epochs]}
    if any(e.get("val_loss") is not None for e in state.epochs):
        series["val_loss"] = [e.get("val_loss") for e in state.epochs]
    chart = Text("\n".join(line_chart(series)))
    co2_g = None if last.get("cumulative_co2_kg") is None else last["cumulative_co2_kg"] * 1000
    stats = Text(
        f"throughput {_num(last.get('samples_per_sec'), ',.0f', ' samples/s')}   "
        f"step p50 {_num(last.get('step_time_p50_s'), '.3g', ' s')}   "
        f"GPU {_num(last.get('gpu_utilization_percent'), '.0f', '%')} "
        f"{_num(last.get('gpu_memory_used_mb'), ',.0f', ' MB')}   "
        f"CO2 so far {_num(co2_g, '.3g', ' g')}"
    )
    issues = Text("\n".join(issue_line(i) for i in state.new_issues) or "no issues so far")
    return Group(head, Panel(chart, title="loss"), stats, Panel(issues, title="new issues"))


@cli.command()
@click.argument("run")
@click.option("--interval", type=click.FloatRange(0.1, 60), default=2.0, show_default=True,
              help="Seconds between polls of the collector.")
@click.option("--wait", type=click.FloatRange(0, 3600), default=0, show_default=True,
              help="Seconds to wait for RUN to appear (start `atlas watch` before the training).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per line (event: status, epoch, issue, end) instead of a view.")
@click.pass_obj
def watch(obj: Ctx, run: str, interval: float, wait: float, as_json: bool) -> None:
    """Follow a run live until it ends: loss and validation curves, throughput, GPU, CO2, new issues, status.

    Piped (not a terminal), prints one line per new epoch, issue and status change; with --json, one JSON
    object per line. Exits 0 when the run completes or is stopped, 1 when it failed or went stale.

    \b
    Examples:
      atlas watch latest
      atlas watch my-run --wait 60   # started before the training
      atlas watch baseline --interval 5 | tee watch.log
    """
    from ._client import NotFound
    from ._runs import get_run

    state = WatchState()
    deadline = time.monotonic() + wait
    while True:
        try:
            state.run = {"id": get_run(obj, run)["id"]}
            break
        except NotFound:
            if time.monotonic() >= deadline:
                raise
            time.sleep(min(interval, 0.5))
    try:
        if as_json or obj.json:
            _watch_plain(obj, state, run, interval, as_json=True)
        elif sys.stdout.isatty():
            _watch_live(obj, state, run, interval)
        else:
            _watch_plain(obj, state, run, interval)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    status = state.run.get("status")
    if status in ("failed", "stale"):
        error = (state.run.get("error") or {}).get("message")
        raise click.ClickException(safe(f"run {state.run['id']} {status}" + (f": {error}" if error else ""),
                                        lines=False))


def _watch_plain(obj: Ctx, state: WatchState, run: str, interval: float, *, as_json: bool = False) -> None:
    if as_json:
        return _watch_jsonl(obj, state, run, interval)
    while True:
        new_epochs, new_issues, changed = poll(obj, state, run)
        if changed and not state.ended:
            echo(f"run {state.run['id']} ({state.run['name']}) {state.status}")
        for e in new_epochs:
            echo(epoch_line(e))
        for i in new_issues:
            echo(issue_line(i))
        if state.ended:
            echo(f"run {state.run['id']} ended: {state.status} after {state.run['epochs']} epochs, "
                 f"{state.run['steps']} steps")
            return
        sys.stdout.flush()
        time.sleep(interval)


def _watch_jsonl(obj: Ctx, state: WatchState, run: str, interval: float) -> None:
    import json

    def emit(event: str, data: dict[str, Any]) -> None:
        echo(json.dumps({"event": event, **data}))
        sys.stdout.flush()

    while True:
        new_epochs, new_issues, changed = poll(obj, state, run)
        if changed and not state.ended:
            emit("status", {"run": state.run["id"], "status": state.status})
        for e in new_epochs:
            emit("epoch", {"run": state.run["id"], **e})
        for i in new_issues:
            emit("issue", i)
        if state.ended:
            emit("end", state.run)
            return
        time.sleep(interval)


def _watch_live(obj: Ctx, state: WatchState, run: str, interval: float) -> None:
    from rich.live import Live

    poll(obj, state, run)
    with Live(_screen(state), refresh_per_second=4, transient=False) as live:
        while not state.ended:
            time.sleep(interval)
            poll(obj, state, run)
            live.update(_screen(state))
    echo(f"run {state.run['id']} ended: {state.status}")
