"""`atlas epochs`, `atlas logs`, `atlas arch`, `atlas trend`, `atlas compare`: reading a run's telemetry."""
from __future__ import annotations

from typing import Any

import click

from ._app import Ctx, _fmt, cli, echo, output, render_kv, render_table

EPOCH_COLUMNS = [("epoch", "EPOCH"), ("loss_mean", "LOSS"), ("val_loss", "VAL_LOSS"), ("val_acc", "VAL_ACC"),
                 ("samples_per_sec", "SAMPLES/S"), ("duration_seconds", "SECONDS"), ("lr", "LR"),
                 ("co2_total", "CO2_TOTAL")]


def mass(kg: Any) -> str | None:
    """A CO2 mass in the unit that reads best: mg, g or kg (not 1.026e-06 kg)."""
    if not isinstance(kg, (int, float)) or kg != kg:
        return None
    if kg >= 1:
        return f"{kg:,.3g} kg"
    if kg >= 1e-3:
        return f"{kg * 1e3:.3g} g"
    return f"{kg * 1e6:.3g} mg"


def get_epochs(obj: Ctx, run: str, *, from_epoch: int | None = None, to_epoch: int | None = None,
               rank: int | None = None) -> tuple[str, list[dict[str, Any]]]:
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import epoch_row

    req = qpb.EpochsRequest(run=run)
    if from_epoch is not None:
        req.from_epoch = from_epoch
    if to_epoch is not None:
        req.to_epoch = to_epoch
    if rank is not None:
        req.rank = rank
    resp = obj.client().get_epochs(req)
    # raw numbers: a non-finite loss shows as nan/inf in the table (JSON prints it as null)
    return resp.run_id, [epoch_row(e.summary, e.rank) for e in resp.epochs]


def _print_epochs(rows: list[dict[str, Any]]) -> None:
    rows = [{**r, "co2_total": mass(r.get("cumulative_co2_kg"))} for r in rows]  # --json keeps kg
    cols = [c for c in EPOCH_COLUMNS if any(r.get(c[0]) is not None for r in rows)] or EPOCH_COLUMNS[:2]
    render_table(rows, cols)


@cli.command()
@click.argument("run")
@click.option("--from", "from_epoch", type=click.IntRange(0), help="First epoch (inclusive).")
@click.option("--to", "to_epoch", type=click.IntRange(0), help="Last epoch (inclusive).")
@click.option("--rank", type=click.IntRange(0), help="Rank to show (default 0).")
@output(text=_print_epochs)
def epochs(obj: Ctx, run: str, from_epoch: int | None, to_epoch: int | None, rank: int | None) -> Any:
    """Per-epoch telemetry: loss statistics, validation metrics, throughput, memory, GPU, carbon.

    \b
    Examples:
      atlas epochs latest
      atlas epochs baseline --from 5 --to 9 --json
    """
    return get_epochs(obj, run, from_epoch=from_epoch, to_epoch=to_epoch, rank=rank)[1]


def get_logs(obj: Ctx, run: str, *, errors_only: bool = False, limit: int = 1000) -> list[dict[str, Any]]:
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import iso

    resp = obj.client().get_logs(qpb.LogsRequest(run=run, errors_only=errors_only, limit=limit))
    return [{"time": iso(r.time), "level": r.level, "logger": r.logger or None, "epoch": r.epoch, "rank": r.rank,
             "kind": r.kind or None, "message": r.message} for r in resp.records]


def _print_logs(rows: list[dict[str, Any]]) -> None:
    if not rows:
        echo("(no log records)")
    for r in rows:
        rank = f" rank {r['rank']}" if r.get("rank") else ""
        echo(f"{r['time'] or '-'}  {r['level']:<8} epoch {r['epoch']}{rank}  "
             f"{r['logger'] or '-'}: {r['message']}")


@cli.command()
@click.argument("run")
@click.option("--errors", is_flag=True, help="Only ERROR and CRITICAL records (a failed run's exception is in `atlas runs show`).")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="At most this many records.")
@output(text=_print_logs)
def logs(obj: Ctx, run: str, errors: bool, limit: int) -> Any:
    """Console, warning and error records captured from the training process.

    \b
    Examples:
      atlas logs latest --errors
      atlas logs baseline --json | jq -r '.[].message'
    """
    return get_logs(obj, run, errors_only=errors, limit=limit)


def get_arch(obj: Ctx, run: str) -> dict[str, Any]:
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import clean_number, ordered

    from ._client import message_dict

    info = obj.client().get_architecture(qpb.RunRef(run=run))
    d = message_dict(info)
    layers = [{"name": x.get("name"), "type": x.get("type"), "parameters": x.get("parameters", 0),
               "pct_of_total": x.get("pct_of_total", 0.0),
               "trainable_parameters": x.get("trainable_parameters", 0),
               "attributes": ordered(x.get("attributes", {}))}
              for x in d.get("layers", [])]
    return clean_number({
        "model_class": d.get("model_class") or None,
        "total_parameters": d.get("total_parameters", 0),
        "trainable_parameters": d.get("trainable_parameters", 0),
        "layers": layers,
        "module_tree": d.get("module_tree") or None,
        "sequential_path": d.get("sequential_path", []),
        "dimension_flow": d.get("dimension_flow", []),
    })


def _tree_lines(node: dict[str, Any], params: dict[str, int], prefix: str = "", last: bool = True,
                path: str | None = None) -> list[str]:
    """The module tree drawn with box characters; each node with its parameter count."""
    root = path is None
    name, kind = node.get("name") or "", node.get("type") or ""
    full = "" if root else (f"{path}.{name}" if path else name)
    label = kind if root and name in ("", kind) else f"{name} ({kind})"
    count = node.get("parameters", params.get(full))
    if isinstance(count, (int, float)) and count:
        label += f"  {int(count):,} params"
    lines = [label if root else prefix + ("└── " if last else "├── ") + label]
    children = node.get("children") or []
    child_prefix = "" if root else prefix + ("    " if last else "│   ")
    for i, child in enumerate(children):
        lines += _tree_lines(child, params, child_prefix, i == len(children) - 1, full)
    return lines


def _print_arch(a: dict[str, Any]) -> None:
    if not a["layers"] and not a["module_tree"]:
        echo("(no architecture recorded for this run)")
        return
    echo(f"model {a['model_class'] or '-'}: {a['total_parameters']:,} parameters "
         f"({a['trainable_parameters']:,} trainable)\n")
    shapes = {f["layer"]: f.get("output_shape") for f in a.get("dimension_flow") or [] if f.get("layer")}
    rows = [{**x, "pct": f"{x['pct_of_total']:.1f}%",
             "output": "x".join(str(v) for v in shapes[x["name"]]) if shapes.get(x["name"]) else None,
             "attrs": ", ".join(f"{k}={_fmt(v)}" for k, v in (x["attributes"] or {}).items() if k != "category")}
            for x in a["layers"]]
    columns = [("name", "LAYER"), ("type", "TYPE"), ("parameters", "PARAMS"), ("pct", "SHARE")]
    if shapes:
        columns.append(("output", "OUTPUT"))
    render_table(rows, columns + [("attrs", "ATTRIBUTES")])
    if a["module_tree"]:
        echo("")
        for line in _tree_lines(a["module_tree"], {x["name"]: x["parameters"] for x in a["layers"]}):
            echo(line)


@cli.command()
@click.argument("run")
@output(text=_print_arch)
def arch(obj: Ctx, run: str) -> Any:
    """The model's architecture: a layer table (type, parameters, share) and the module tree.

    \b
    Example:
      atlas arch latest
    """
    return get_arch(obj, run)


def get_trend(obj: Ctx, project: str) -> dict[str, Any]:
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import struct_json

    return struct_json(obj.client().get_project_trend(qpb.ProjectRef(project=project)).report)


def print_report(report: dict[str, Any]) -> None:
    """A report object: scalars as key-value lines, lists of objects as tables (known columns first)."""
    scalars = {k: v for k, v in report.items() if not (isinstance(v, list) and v and isinstance(v[0], dict))}
    render_kv(scalars)
    for key, value in report.items():
        if key not in scalars:
            echo(f"\n{key}:")
            render_table([{k: (v[:8] if k in ("id", "run") and isinstance(v, str) else v) for k, v in row.items()}
                          for row in value], _columns(value[0]))


_PREFERRED = ("name", "id", "status", "epochs", "health_score", "best_val_loss", "best_train_loss", "total_co2_kg",
              "started_at", "checks")


def _columns(row: dict[str, Any]) -> list[tuple[str, str]]:
    keys = [k for k in _PREFERRED if k in row] + sorted(k for k in row if k not in _PREFERRED)
    return [(k, k.upper()) for k in keys if not isinstance(row[k], dict)]


@cli.command()
@click.argument("project")
@output(text=print_report)
def trend(obj: Ctx, project: str) -> Any:
    """How a project improves across runs: health, best validation loss and carbon per run.

    \b
    Example:
      atlas trend mnist
    """
    return get_trend(obj, project)


def get_comparison(obj: Ctx, run_a: str, run_b: str) -> dict[str, Any]:
    """The collector's comparison: `run_a`, `run_b` (facts of each) and `diff` (what differs)."""
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import struct_json

    return struct_json(obj.client().compare_runs(qpb.CompareRequest(run_a=run_a, run_b=run_b)).report)


_FACTS = ("name", "status", "epochs", "steps", "health_score", "best_val_loss", "best_train_loss", "training_seconds",
          "wall_seconds", "total_co2_kg", "started_at")


def _print_comparison(c: dict[str, Any]) -> None:
    a, b, diff = c.get("run_a") or {}, c.get("run_b") or {}, c.get("diff") or {}

    def row(field: str, x: Any, y: Any, delta: Any = None) -> dict[str, Any]:
        if delta is None:
            delta = "" if x == y else "≠"
        return {"field": field, "a": x, "b": y, "delta": delta}

    rows = [row("id", (a.get("id") or "")[:8], (b.get("id") or "")[:8], "")]
    for key in _FACTS:
        d = diff.get(key)
        if isinstance(d, dict) and "a" in d:
            rows.append(row(key, d.get("a"), d.get("b"), d.get("delta")))
        elif key in a or key in b:
            rows.append(row(key, a.get(key), b.get(key)))
    for key, d in (diff.get("final_metrics") or {}).items():
        if key != "epoch":
            rows.append(row(key, d.get("a"), d.get("b"), d.get("delta")))
    for key, d in (diff.get("hyperparameters") or {}).items():
        rows.append(row(key, d.get("a"), d.get("b"), "≠"))
    render_table(rows, [("field", "FIELD"), ("a", "A"), ("b", "B"), ("delta", "B - A")])
    for key, label in (("issues_only_a", "issues only in A"), ("issues_only_b", "issues only in B"),
                       ("issues_both", "issues in both")):
        if diff.get(key):
            echo(f"{label}: {', '.join(diff[key])}")


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@output(text=_print_comparison)
def compare(obj: Ctx, run_a: str, run_b: str) -> Any:
    """Two runs side by side: status, final metrics, hyperparameters, health, carbon.

    \b
    Example:
      atlas compare baseline latest
    """
    return get_comparison(obj, run_a, run_b)
