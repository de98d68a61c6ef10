"""`atlas metrics RUN [KEY]`: the metrics a run's training code logged (every point, per step)."""
from __future__ import annotations

from typing import Any

import click

from ._app import Ctx, Result, cli, echo, output, render_table

KEY_COLUMNS = [("key", "KEY"), ("count", "POINTS"), ("last_value", "LAST"), ("last_step", "STEP"),
               ("last_epoch", "EPOCH")]
SERIES_COLUMNS = [("step", "STEP"), ("epoch", "EPOCH"), ("value", "VALUE"), ("time", "TIME")]


def list_keys(obj: Ctx, run: str) -> tuple[str, list[dict[str, Any]]]:
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import iso

    resp = obj.client().list_metrics(qpb.RunRef(run=run))
    return resp.run_id, [{"key": m.key, "count": m.count, "last_value": m.last_value, "last_step": m.last_step,
                          "last_epoch": m.last_epoch, "last_time": iso(m.last_time)} for m in resp.metrics]


def get_series(obj: Ctx, run: str, key: str, limit: int = 0) -> tuple[str, list[dict[str, Any]]]:
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import iso

    resp = obj.client().get_metric_series(qpb.MetricSeriesRequest(run=run, key=key, limit=limit))
    return resp.run_id, [{"step": p.step, "epoch": p.epoch, "value": p.value, "time": iso(p.time)}
                         for p in resp.points]


def _print_series(rows: list[dict[str, Any]]) -> None:
    if not rows:
        echo("(no points: `atlas metrics RUN` lists the run's metric keys)")
        return
    render_table([{**r, "time": (r["time"] or "")[:19].replace("T", " ") or None} for r in rows], SERIES_COLUMNS)


def _print_keys(rows: list[dict[str, Any]]) -> None:
    if not rows:
        echo("(no user metrics: log them with self.log(...), Observer.log, accelerator.log, AtlasLogger or the "
             "Transformers Trainer)")
        return
    render_table(rows, KEY_COLUMNS)


@cli.command()
@click.argument("run")
@click.argument("key", required=False)
@click.option("--limit", type=click.IntRange(0, 1_000_000), default=0,
              help="At most this many points, the newest (default: up to 100,000).")
@output()
def metrics(obj: Ctx, run: str, key: str | None, limit: int) -> Result:
    """The metrics the training code logged: every key with its count and last value, or one key's series.

    \b
    Examples:
      atlas metrics latest
      atlas metrics latest val_acc
      atlas metrics baseline train_loss --json     # [{"step", "epoch", "value", "time"}, ...]
    """
    if key is None:
        keys = list_keys(obj, run)[1]
        return Result(keys, text=lambda: _print_keys(keys))
    points = get_series(obj, run, key, limit)[1]
    return Result(points, text=lambda: _print_series(points))
