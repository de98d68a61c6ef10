"""`atlas watch RUN`: a live view of a run that polls the query service until the run ends.

On a terminal it redraws one screen (rich): the loss and validation curves drawn in characters, the user metrics the
run logged (by step), throughput, GPU, CO2 so far, new issues, the status. Charts use a log y axis where the values
span decades and a distinct mark per series (✱ where two meet). Piped, it prints one plain line per new epoch, metrics
update, issue and status change."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import click

from ._app import Ctx, Result, cli, echo, output
from ._terminal import safe

ENDED = ("completed", "stopped", "failed", "stale")
MARKS = {"loss": "●", "val_loss": "◆"}
PALETTE = ("●", "◆", "▲", "■", "✚", "○", "◇", "△", "□", "×")  # one distinct mark per series, in order
OVERLAP = "✱"  # a cell where two series' points meet
LOG_SPAN = 100.0  # a log y axis when every value is > 0 and the largest is at least this many times the smallest


def marks_for(names: list[str]) -> dict[str, str]:
    """A distinct mark for each series: loss ●, val_loss ◆ (as always), the others the next unused ones."""
    out = {n: MARKS[n] for n in names if n in MARKS}
    free = [m for m in PALETTE if m not in out.values()]
    for n in names:
        if n not in out:
            out[n] = free.pop(0) if free else "*"
    return out


def use_log(values: list[float], scale: str = "auto") -> bool:
    if scale != "auto":
        return scale == "log"
    return bool(values) and min(values) > 0 and max(values) / min(values) >= LOG_SPAN


def line_chart(series: dict[str, list[Any]], width: int = 60, height: int = 10, *, scale: str = "auto",
               x_label: str = "epoch") -> list[str]:
    """Series drawn on a character grid (one distinct mark per series; ✱ where two meet), with a y axis: logarithmic
    where the values span decades (`scale` "auto"; or "log", "linear"). A series is a list of y values (x = its
    index: epochs) or of (x, y) pairs (e.g. steps)."""
    pairs: dict[str, list[tuple[float, float]]] = {}
    for name, ys in series.items():
        pts = []
        for i, item in enumerate(ys):
            x, y = item if isinstance(item, tuple) else (i, item)
            if y is not None and x is not None and math.isfinite(y):
                pts.append((float(x), float(y)))
        pairs[name] = pts
    values = [y for pts in pairs.values() for _, y in pts]
    xs = [x for pts in pairs.values() for x, _ in pts]
    if not values:
        return [f"(waiting for the first {x_label})"]
    log = use_log(values, scale) and min(values) > 0
    fy = math.log10 if log else (lambda v: v)
    lo, hi = fy(min(values)), fy(max(values))
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    if all(not isinstance(item, tuple) for ys in series.values() for item in ys):  # epochs: 0..n-1 across
        x_lo, x_hi = 0.0, float(max((len(ys) for ys in series.values()), default=1) - 1)
    else:
        x_lo, x_hi = min(xs), max(xs)
    grid = [[" "] * width for _ in range(height)]
    owner: dict[tuple[int, int], str] = {}
    marks = marks_for(list(series))
    overlap = False
    for name, pts in pairs.items():
        mark = marks[name]
        cells = []
        for x, y in pts:
            col = 0 if x_hi <= x_lo else round((x - x_lo) * (width - 1) / (x_hi - x_lo))
            cells.append((col, (height - 1) - (fy(y) - lo) / (hi - lo) * (height - 1)))
        for (x0, r0), (x1, r1) in zip(cells, cells[1:]):  # a dotted line between consecutive points
            for x in range(x0 + 1, x1):
                row = round(r0 + (r1 - r0) * (x - x0) / (x1 - x0))
                if grid[row][x] == " ":
                    grid[row][x] = "·"
        for x, r in cells:
            cell = (round(r), x)
            if owner.get(cell, name) != name:
                grid[cell[0]][x] = OVERLAP
                overlap = True
            elif grid[cell[0]][x] != OVERLAP:
                grid[cell[0]][x] = mark
                owner[cell] = name
    top = 10 ** hi if log else hi
    bottom = 10 ** lo if log else lo
    label_w = max(len(f"{top:.4g}"), len(f"{bottom:.4g}"))
    lines = []
    for r, row in enumerate(grid):
        label = f"{top:.4g}" if r == 0 else f"{bottom:.4g}" if r == height - 1 else ""
        if log and 0 < r < height - 1 and r == (height - 1) // 2:
            label = f"{10 ** (hi - (hi - lo) * r / (height - 1)):.2g}"
        lines.append(f"{label:>{label_w}} │" + "".join(row).rstrip())
    lines.append(" " * label_w + " └" + "─" * width)
    first, last = f"{x_label} {x_lo:g}", f"{x_hi:g}"
    lines.append(" " * label_w + f"  {first}{' ' * max(1, width - len(first) - len(last))}{last}")
    legend = "  ".join(f"{marks[k]} {safe(k, lines=False)}" for k in series)
    if overlap:
        legend += f"  {OVERLAP} overlap"
    if log:
        legend += "  (log scale)"
    lines.append(legend)
    return lines


@dataclass
class WatchState:
    run: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    issues: dict[tuple[str, Any], dict[str, Any]] = field(default_factory=dict)
    new_issues: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""
    wanted: tuple[str, ...] = ()  # --metric keys; empty: up to MAX_CHARTED chosen from what the run logged
    scale: str = "auto"
    metrics: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # charted key -> (step, value)
    last_metrics: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (last step, last value)
    new_metrics: dict[str, tuple[int, float]] = field(default_factory=dict)  # keys with a new last point this round

    @property
    def ended(self) -> bool:
        return self.run.get("status") in ENDED


def poll(obj: Ctx, state: WatchState, run_ref: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """One round: the run, epochs after the last one seen, issues. Returns new epochs, new issues, status changed."""
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import clean_number, epoch_row, issue_dict
    from ._runs import get_run

    client = obj.client()
    state.run = get_run(obj, state.run.get("id") or run_ref)
    req = qpb.EpochsRequest(run=state.run["id"])
    if state.epochs:
        req.from_epoch = state.epochs[-1]["epoch"] + 1
    new_epochs = [clean_number(epoch_row(e.summary, e.rank)) for e in client.get_epochs(req).epochs]
    state.epochs += new_epochs
    new_issues = []
    resp = client.if_served(client.list_issues, qpb.IssuesRequest(run=state.run["id"]))
    for i in resp.issues if resp is not None else ():
        issue = issue_dict(i)
        key = (issue["check"], issue["layer"])
        if key not in state.issues:
            new_issues.append(issue)
        state.issues[key] = issue
    state.new_issues = (state.new_issues + new_issues)[-8:]
    poll_metrics(obj, state)
    changed = state.run["status"] != state.status
    state.status = state.run["status"]
    return new_epochs, new_issues, changed


MAX_CHARTED = 3
SERIES_POINTS = 2000  # the newest points of each charted key, per poll


def pick_metrics(keys: list[str], wanted: tuple[str, ...] = ()) -> list[str]:
    """The user metrics to chart: those asked for (that exist), else up to MAX_CHARTED: validation ones first, then
    accuracies, then the rest by name (the loss is charted already)."""
    if wanted:
        return [k for k in wanted if k in keys]

    def rank(key: str) -> tuple[int, str]:
        low = key.lower()
        if low.startswith(("val", "eval")):
            return 0, key
        if "acc" in low:
            return 1, key
        return 2, key

    skip = {"loss", "train_loss", "epoch"}
    return sorted((k for k in keys if k not in skip), key=rank)[:MAX_CHARTED]


def poll_metrics(obj: Ctx, state: WatchState) -> None:
    """The run's user metrics: the last point of each (`state.new_metrics`: those that moved) and the series of the
    charted ones. A collector without user metrics (older) is not an error."""
    from atlas_proto.v1 import query_pb2 as qpb

    client = obj.client()
    resp = client.if_served(client.list_metrics, qpb.RunRef(run=state.run["id"]))
    state.new_metrics = {}
    if resp is None:
        return
    last = {m.key: (int(m.last_step), m.last_value) for m in resp.metrics}
    for key, point in last.items():
        if state.last_metrics.get(key) != point:
            state.new_metrics[key] = point
    state.last_metrics = last
    for key in pick_metrics(sorted(last), state.wanted):
        if key not in state.new_metrics and key in state.metrics:
            continue
        series = client.if_served(client.get_metric_series,
                                  qpb.MetricSeriesRequest(run=state.run["id"], key=key, limit=SERIES_POINTS))
        if series is not None:
            state.metrics[key] = [(float(p.step), p.value) for p in series.points]


def metrics_line(state: WatchState) -> str | None:
    """One line of the charted (or asked-for) metrics that moved this round, or None."""
    keys = pick_metrics(sorted(state.last_metrics), state.wanted)
    moved = [(k, state.new_metrics[k]) for k in keys if k in state.new_metrics]
    if not moved:
        return None
    return safe("metrics  " + "  ".join(f"{k} {_num(v)} (step {s})" for k, (s, v) in moved), lines=False)


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
    chart = Text("\n".join(line_chart(series, scale=state.scale)))
    charted = {k: state.metrics[k] for k in pick_metrics(sorted(state.last_metrics), state.wanted)
               if state.metrics.get(k)}
    co2_g = None if last.get("cumulative_co2_kg") is None else last["cumulative_co2_kg"] * 1000
    stats = Text(
        f"throughput {_num(last.get('samples_per_sec'), ',.0f', ' samples/s')}   "
        f"step p50 {_num(last.get('step_time_p50_s'), '.3g', ' s')}   "
        f"GPU {_num(last.get('gpu_utilization_percent'), '.0f', '%')} "
        f"{_num(last.get('gpu_memory_used_mb'), ',.0f', ' MB')}   "
        f"CO2 so far {_num(co2_g, '.3g', ' g')}"
    )
    issues = Text("\n".join(issue_line(i) for i in state.new_issues) or "no issues so far")
    parts: list[Any] = [head, Panel(chart, title="loss")]
    if charted:
        parts.append(Panel(Text("\n".join(line_chart(charted, height=8, scale=state.scale, x_label="step"))),
                           title="metrics"))
    return Group(*parts, stats, Panel(issues, title="new issues"))


@cli.command()
@click.argument("run")
@click.option("--interval", type=click.FloatRange(0.1, 60), default=2.0, show_default=True,
              help="Seconds between polls of the collector.")
@click.option("--wait", type=click.FloatRange(0, 3600), default=0, show_default=True,
              help="Seconds to wait for RUN to appear (start `atlas watch` before the training).")
@click.option("--metric", "metrics", multiple=True, metavar="KEY",
              help="A user metric to chart (repeatable; default: up to 3 the run logged, validation ones first).")
@click.option("--scale", type=click.Choice(["auto", "log", "linear"]), default="auto", show_default=True,
              help="The charts' y axis: auto is logarithmic where the values span two decades or more.")
@output(stream=True, clean_numbers=False,
        json_help="Print one JSON object per line (event: status, epoch, metrics, issue, end) instead of a view.")
def watch(obj: Ctx, run: str, interval: float, wait: float, metrics: tuple[str, ...] = (),
          scale: str = "auto") -> Iterator[Result]:
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

    state = WatchState(wanted=tuple(metrics), scale=scale)
    deadline = time.monotonic() + wait
    while True:
        try:
            state.run = {"id": get_run(obj, run)["id"]}
            break
        except NotFound:
            if time.monotonic() >= deadline:
                raise
            time.sleep(min(interval, 0.5))
    if obj.json or not sys.stdout.isatty():
        yield from _events(obj, state, run, interval)
    else:
        _watch_live(obj, state, run, interval)
    status = state.run.get("status")
    if status in ("failed", "stale"):
        error = (state.run.get("error") or {}).get("message")
        raise click.ClickException(safe(f"run {state.run['id']} {status}" + (f": {error}" if error else ""),
                                        lines=False))


def _events(obj: Ctx, state: WatchState, run: str, interval: float) -> Iterator[Result]:
    """What changed in each poll until the run ends, as events: their JSON (`{"event": ..., ...}`) and the plain
    line each prints piped."""
    while True:
        new_epochs, new_issues, changed = poll(obj, state, run)
        run_id = state.run["id"]
        if changed and not state.ended:
            line = f"run {run_id} ({state.run['name']}) {state.status}"
            yield Result({"event": "status", "run": run_id, "status": state.status}, text=lambda line=line: echo(line))
        for e in new_epochs:
            yield Result({"event": "epoch", "run": run_id, **e}, text=lambda e=e: echo(epoch_line(e)))
        if state.new_metrics:
            from atlas_proto.convert import clean_number

            line = metrics_line(state)  # piped, only the charted (or asked-for) keys that moved are printed
            yield Result({"event": "metrics", "run": run_id,
                          "metrics": {k: {"step": s, "value": clean_number(v)}
                                      for k, (s, v) in sorted(state.new_metrics.items())}},
                         text=lambda line=line: None if line is None else echo(line))
        for i in new_issues:
            yield Result({"event": "issue", **i}, text=lambda i=i: echo(issue_line(i)))
        if state.ended:
            line = (f"run {run_id} ended: {state.status} after {state.run['epochs']} epochs, "
                    f"{state.run['steps']} steps")
            yield Result({"event": "end", **state.run}, text=lambda line=line: echo(line))
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
