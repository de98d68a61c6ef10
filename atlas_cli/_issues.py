"""`atlas issues`, `atlas health`, `atlas green`: what the diagnostics found, and the Green-AI account."""
from __future__ import annotations

import math
from typing import Any

import click

from ._app import Ctx, Result, cli, echo, output, render_table

SEVERITIES = ("critical", "warning", "info")
ISSUE_COLUMNS = [("run", "RUN"), ("rank", "#"), ("severity", "SEVERITY"), ("check", "CHECK"),
                 ("category", "CATEGORY"), ("epochs", "EPOCHS"), ("layer", "LAYER"), ("title", "TITLE")]
EQUIVALENT_NAMES = {
    "km_driven_by_car": "km driven by an average car",
    "smartphone_charges": "smartphone charges",
    "litres_of_gasoline": "litres of gasoline burned",
    "tree_seedlings_grown_10_years": "tree seedlings grown for 10 years to absorb it",
}
GRADE_BANDS = "A < 5 %, B < 15 %, C < 30 %, D < 50 %, F >= 50 % of compute after the optimal stop"


def list_issues(obj: Ctx, run: str | None, *, severity: str = "", all_runs: bool = False,
                include_inactive: bool = False, project: str = "") -> list[dict[str, Any]]:
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import issue_dict

    req = qpb.IssuesRequest(run="" if all_runs else (run or "latest"), severity=severity or "", all_runs=all_runs,
                            include_inactive=include_inactive, project=project or "")
    return [issue_dict(i) for i in obj.client().list_issues(req).issues]


def get_health(obj: Ctx, run: str) -> dict[str, Any]:
    from atlas_proto.v1 import query_pb2 as qpb

    from ._client import health_dict

    return health_dict(obj.client().get_health(qpb.RunRef(run=run)))


def get_green(obj: Ctx, run: str, *, raw: bool = False) -> dict[str, Any]:
    """The green report as `atlas green --json` prints it: numbers or null (a figure that overflowed is null, and
    `notes` says which). With `raw`, overflowed figures stay inf/nan, for the text view."""
    from json import loads

    from google.protobuf import json_format

    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import clean_number, ordered

    report = obj.client().get_sustainability(qpb.RunRef(run=run)).report
    green = ordered(_numbers_deep(loads(json_format.MessageToJson(report))))
    green.setdefault("notes", [])
    return green if raw else clean_number(green)


_NONFINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan, "inf": math.inf, "-inf": -math.inf,
              "nan": math.nan}


def _numbers_deep(value: Any, key: str = "") -> Any:
    """Struct numbers as ints where whole; "Infinity"/"NaN" (how a report writes a float that overflowed) as floats
    in the numeric parts of the report (not in names or notes)."""
    if isinstance(value, dict):
        return {k: _numbers_deep(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_deep(v, key) for v in value] if key not in ("notes",) else value
    if isinstance(value, str) and value in _NONFINITE and key not in _TEXT_KEYS:
        return _NONFINITE[value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


_TEXT_KEYS = frozenset({"run", "grade", "optimal_stop_basis", "dead_layers", "vanishing_gradient_layers",
                        "frozen_output_layers", "redundant_layer_pairs", "layer_a", "layer_b", "notes"})


def _span(issue: dict[str, Any]) -> str:
    first, last = issue.get("first_seen_epoch"), issue.get("last_seen_epoch")
    if first is None:
        return "-"
    return str(first) if last in (None, first) else f"{first}-{last}"


def folded(issues: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
    """The issues in rank order with each cause's symptoms right under it: ``(issue, folded)``, where ``folded``
    marks a symptom another listed issue of its run explains (`explains`)."""
    out: list[tuple[dict[str, Any], bool]] = []
    done: set[int] = set()
    by_run: dict[str, list[int]] = {}
    for n, i in enumerate(issues):
        by_run.setdefault(i.get("run") or "", []).append(n)
    for n, i in enumerate(issues):
        if n in done:
            continue
        run = by_run[i.get("run") or ""]
        explained = {c for m in run for c in issues[m].get("explains") or ()}
        if i["check"] in explained and any(i["check"] in (issues[m].get("explains") or ()) and m not in done
                                           for m in run if m != n):
            continue  # shown under its cause
        done.add(n)
        out.append((i, False))
        for m in run:
            if m not in done and issues[m]["check"] in (i.get("explains") or ()):
                done.add(m)
                out.append((issues[m], True))
    out.extend((issues[n], False) for n in range(len(issues)) if n not in done)
    return out


def issue_rows(issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**i, "run": (i.get("run") or "")[:8], "epochs": _span(i), "rank": i.get("rank") or "",
             "check": ("  └ " if under else "") + i["check"],
             "severity": i["severity"] if i.get("active", True) else f"{i['severity']} (cleared)"}
            for i, under in folded(issues)]


def print_issues(issues: list[dict[str, Any]], *, suggestions: bool = True) -> None:
    render_table(issue_rows(issues), ISSUE_COLUMNS)
    if suggestions and issues:
        for i, under in folded(issues):
            if under:
                continue
            echo("")
            rank = f"{i['rank']}. " if i.get("rank") else "- "
            cleared = "" if i.get("active", True) else " (cleared)"
            echo(f"{rank}{i['check']}{cleared}: {i.get('description') or i.get('title')}")
            if i.get("explains"):
                echo(f"   explains: {', '.join(i['explains'])}")
            if i.get("suggestion"):
                echo(f"   fix: {i['suggestion']}")


@cli.command()
@click.argument("run", required=False)
@click.option("--severity", type=click.Choice(SEVERITIES), help="Only issues of this severity.")
@click.option("--all-runs", is_flag=True, help="Issues of every run (newest runs first).")
@click.option("--project", help="With --all-runs: only runs of this project.")
@click.option("--active-only", is_flag=True, help="Hide issues whose condition has cleared.")
@click.option("--include-cleared", is_flag=True, hidden=True, help="Kept for old scripts: cleared issues are shown.")
@output(clean_numbers=False)
def issues(obj: Ctx, run: str | None, severity: str | None, all_runs: bool, project: str | None,
           active_only: bool, include_cleared: bool) -> Result:
    """List the issues the diagnostics found in a run (default: the latest run), the most likely root cause
    first (`#` is the rank), each cause's symptoms folded under it. Issues whose condition has cleared stay as
    history, marked "(cleared)"; --active-only hides them.

    RUN is an id, a unique id prefix, a run name (the latest of that name) or `latest`.

    \b
    Examples:
      atlas issues latest --severity critical
      atlas issues --all-runs --json | jq '.[].check'
    """
    if run and all_runs:
        raise click.UsageError("give either RUN or --all-runs, not both")
    rows = list_issues(obj, run, severity=severity or "", all_runs=all_runs, include_inactive=not active_only,
                       project=project or "")

    def text() -> None:
        if not rows:
            echo("no issues" + (f" of severity {severity}" if severity else "") + " found")
        else:
            print_issues(rows)

    return Result(rows, text=text)


@cli.command()
@click.argument("run")
@output(text=lambda data: print_health(data))
def health(obj: Ctx, run: str) -> Any:
    """Health score (0-100), issue counts by severity, the top issues and the most troubled layers.

    The score is 100 - 20 per critical - 7 per warning - 2 per info active issue, floor 0.

    \b
    Example:
      atlas health latest
    """
    return get_health(obj, run)


def print_health(data: dict[str, Any]) -> None:
    score = data["health_score"]
    counts = data["severity_counts"]
    echo(f"run {data['run']}")
    echo(f"health score  {'-' if score is None else score} / 100   "
         f"({counts['critical']} critical, {counts['warning']} warning, {counts['info']} info)")
    if data["top_issues"]:
        echo("\ntop issues:")
        print_issues(data["top_issues"], suggestions=True)
    if data["top_layers"]:
        echo("\nmost troubled layers:")
        render_table(data["top_layers"], [("layer", "LAYER"), ("severity_score", "SCORE"), ("checks", "CHECKS")])


def _number(value: Any) -> Any:
    """Protobuf JSON writes non-finite doubles as "Infinity"/"NaN": numbers again, for formatting."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _g(value: Any, unit: str = "") -> str:
    value = _number(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}{unit}"
    return f"{value}{unit}"


def _mass(kg: Any) -> str:
    kg = _number(kg)
    if kg is None:
        return "-"
    if isinstance(kg, str):
        return kg
    from ._inspect import mass

    return mass(kg) or "-"


def print_green(g: dict[str, Any]) -> None:
    grade = g.get("grade")
    echo(f"grade              {grade or '-'}   ({GRADE_BANDS})")
    stop = g.get("optimal_stop_epoch")
    basis = g.get("optimal_stop_basis")
    echo(f"optimal stop epoch {_g(stop)}" + (f"  (by {basis})" if basis and stop is not None else ""))
    echo(f"wasted epochs      {_g(g.get('wasted_epochs'))}   "
         f"({_g(g.get('wasted_compute_pct'), ' %')} of compute, {_g(g.get('wasted_duration_seconds'), ' s')})")
    echo(f"CO2 total          {_mass(g.get('total_co2_kg'))}   wasted {_mass(g.get('wasted_co2_kg'))}")
    echo(f"energy total       {_g(g.get('total_energy_kwh'), ' kWh')}   "
         f"wasted {_g(g.get('wasted_energy_kwh'), ' kWh')}")
    price = g.get("eur_per_tonne", 50)
    echo(f"cost (EU ETS {_g(price)} EUR/t)  total {_g(g.get('total_cost_eur'), ' EUR')}   "
         f"wasted {_g(g.get('wasted_cost_eur'), ' EUR')}")
    echo(f"parameter efficiency {_g(g.get('parameter_efficiency_score'), ' / 100')}")
    for key, label in (("dead_layers", "dead layers"), ("vanishing_gradient_layers", "vanishing gradients"),
                       ("frozen_output_layers", "frozen outputs")):
        if g.get(key):
            echo(f"{label:<19}{', '.join(g[key])}")
    eq = {k: v for k, v in (g.get("co2_equivalents") or {}).items() if v is not None}
    if eq:
        echo("\nthe CO2 of this run equals:")
        for key, value in eq.items():
            echo(f"  {_g(value)} {EQUIVALENT_NAMES.get(key, key.replace('_', ' '))}")
    notes = [n for n in g.get("notes") or [] if isinstance(n, str)]
    if notes:
        echo("")
    for note in notes:
        echo(f"note: {note}")
    if g.get("total_co2_kg") is None and not any("total_co2_kg" in n for n in notes):
        echo("\n(no carbon data: the run did not report CodeCarbon measurements)")


@cli.command()
@click.argument("run")
@output(text=print_green, json_help="Print JSON instead of text.")
def green(obj: Ctx, run: str) -> Any:
    """The run's Green-AI account: grade, wasted epochs, CO2, energy, cost in EUR and CO2 equivalents.

    Grade bands, on the share of compute spent after the optimal stopping epoch: A < 5 %, B < 15 %,
    C < 30 %, D < 50 %, F otherwise; one grade lower when under half the parameters are used well
    (parameter efficiency < 50). Cost prices CO2 at the EU ETS allowance (EUR 50 per tonne by default).

    \b
    Example:
      atlas green latest --json | jq .grade
    """
    return get_green(obj, run, raw=True)  # a figure that overflowed shows as inf in text; JSON prints it as null
