"""Diagnostics queries as plain functions: issues, health, sustainability, project trend, comparison, diagnose
now, and sending a command. Each takes the collector's `Services` and a request; the servicer only dispatches.

Report objects (green, trend, compare) are JSON objects in a Struct; their field names are contracts
(ARCHITECTURE.md, "JSON the CLI prints"): absent values are null, never omitted; timestamps ISO 8601 UTC."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from atlas_diagnostics import SEVERITIES, Issue, green_insight, health_report, rank_issues

from atlas_proto.convert import (
    COMMAND_NAMES,
    dict_to_struct,
    float_to_ts,
    issue_message,
    iso,
    jsonable,
    row_issue,
)
from atlas_proto.v1 import query_pb2 as qpb

from . import _diagnostics as d
from . import _schema as s
from ._config import CollectorConfig
from ._diagnosed import Diagnoser
from ._exceptions import InvalidMessage, RunNotFound
from ._fanout import CommandHub, send_command
from ._queries import final_metrics
from ._store import Store

MAX_ISSUES = 10_000
SETTLE_S = 3.0  # how long a diagnostics query waits for the diagnosis of data already acked
TREND_RUNS = 200


@dataclass(frozen=True)
class Services:
    """What the diagnostics queries need besides the store."""

    store: Store
    hub: CommandHub
    driver: Diagnoser  # `_driver.DiagnosticsDriver`; queries wait on it (`settle`) before reading issues
    config: CollectorConfig


# ------------------------------------------------------------------------------------------- issues

def list_issues(sv: Services, req: qpb.IssuesRequest) -> qpb.IssuesResponse:
    if req.severity and req.severity not in SEVERITIES:
        raise InvalidMessage(f"severity must be one of {', '.join(SEVERITIES)} (or empty for all), "
                             f"got {req.severity!r}")
    c = s.issues.c
    q = sa.select(s.issues)
    with sv.store.connect() as conn:
        if req.all_runs:
            sv.driver.settle(None, SETTLE_S)
            if req.project:
                q = q.where(c.run_id.in_(sa.select(s.runs.c.id).select_from(s.runs.join(s.projects))
                                         .where(s.projects.c.name == req.project)))
        else:
            run_id = sv.store.resolve_run(conn, req.run or "latest", req.project)
            sv.driver.settle(run_id, SETTLE_S)
            q = q.where(c.run_id == run_id)
        # every issue of the run(s), cleared ones included: they count in the ranking (root cause first)
        rows = conn.execute(q.join(s.runs, s.runs.c.id == c.run_id)
                            .order_by(s.runs.c.started_at.desc(), c.run_id, c.id).limit(MAX_ISSUES)).all()
    by_run: dict[str, list[Issue]] = {}
    insights = {(row.run_id, row.check_id, row.key or ""): row.insight for row in rows if row.insight}  # alerts
    for row in rows:
        by_run.setdefault(row.run_id, []).append(row_issue(row._mapping))
    resp = qpb.IssuesResponse()
    for run_id, issues in by_run.items():
        for issue in rank_issues(issues):
            if (req.severity and issue.severity != req.severity) or (not req.include_inactive and not issue.active):
                continue
            insight = insights.get((run_id, issue.check, issue.key or ""))
            issue_message(run_id, issue, resp.issues.add(), insight=insight)
    return resp


# ------------------------------------------------------------------------------------------- health

def _health(conn: Any, run_id: str) -> qpb.HealthResponse:
    issues = d.load_issues(conn, run_id)
    score, status = conn.execute(sa.select(s.runs.c.health_score, s.runs.c.status)
                                 .where(s.runs.c.id == run_id)).one()
    report = health_report(issues, status=status)
    resp = qpb.HealthResponse(run=run_id)
    if score is not None:
        resp.health_score = float(report["health_score"])
    resp.severity_counts.update(report["severity_counts"])
    active = [i for i in rank_issues(issues) if i.active]
    for issue in active[:len(report["top_issues"])]:
        issue_message(run_id, issue, resp.top_issues.add())
    for layer in report["top_layers"]:
        resp.top_layers.add(layer=layer["layer"], severity_score=float(layer["severity_score"]),
                            checks=layer["checks"])
    return resp


def get_health(sv: Services, req: qpb.RunRef) -> qpb.HealthResponse:
    with sv.store.connect() as conn:
        run_id = sv.store.resolve_run(conn, req.run, req.project)
    sv.driver.settle(run_id, SETTLE_S)
    with sv.store.connect() as conn:
        return _health(conn, run_id)


def diagnose(sv: Services, req: qpb.RunRef) -> qpb.HealthResponse:
    """Diagnose the run now (new data, time-based checks for a live run), store a diagnostic run, report."""
    with sv.store.connect() as conn:
        run_id = sv.store.resolve_run(conn, req.run, req.project)
        status = conn.execute(sa.select(s.runs.c.status).where(s.runs.c.id == run_id)).scalar_one()
    now = time.time() if status in ("running", "stale") else None
    sv.driver.update_run(run_id, trigger="manual", now=now, record=True)
    with sv.store.connect() as conn:
        return _health(conn, run_id)


# --------------------------------------------------------------------------------------------- green

def sustainability(sv: Services, req: qpb.RunRef) -> qpb.ReportResponse:
    with sv.store.connect() as conn:
        run_id = sv.store.resolve_run(conn, req.run, req.project)
    sv.driver.settle(run_id, SETTLE_S)
    with sv.driver.locked():
        insight = green_insight(sv.driver.engine(run_id), eur_per_tonne=sv.config.eur_per_tonne).to_dict()
    return qpb.ReportResponse(report=dict_to_struct({"run": run_id, **insight}))


# ----------------------------------------------------------------------------------- trend, compare

def _run_facts(conn: Any, run_id: str) -> dict[str, Any]:
    """One run as the trend and the comparison show it."""
    row = conn.execute(sa.select(s.runs, s.projects.c.name.label("project")).select_from(s.runs.join(s.projects))
                       .where(s.runs.c.id == run_id)).first()
    if row is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    r = row._mapping
    last = conn.execute(sa.select(s.epochs).where(s.epochs.c.run_id == run_id, s.epochs.c.rank == 0)
                        .order_by(s.epochs.c.epoch.desc()).limit(1)).first()
    e = s.epochs.c
    agg = conn.execute(sa.select(sa.func.min(e.val_loss), sa.func.min(e.loss_mean), sa.func.sum(e.duration_seconds),
                                 sa.func.max(e.cumulative_co2_kg))
                       .where(e.run_id == run_id, e.rank == 0)).first()
    issues = [i for i in d.load_issues(conn, run_id) if i.active]
    counts = dict.fromkeys(SEVERITIES, 0)
    for i in issues:
        counts[i.severity] += 1
    end = r["ended_at"] if r["ended_at"] is not None else r["last_seen_at"]
    return {
        "id": run_id, "name": r["name"], "project": r["project"], "status": r["status"],
        "started_at": iso(r["started_at"]), "ended_at": iso(r["ended_at"]),
        "wall_seconds": (end - r["started_at"]) if end is not None else None,
        "epochs": r["epochs"], "steps": r["steps"], "health_score": r["health_score"],
        "framework": r["framework"], "on_critical": r["on_critical"],
        "final_metrics": final_metrics(dict(last._mapping) if last is not None else None),
        "best_val_loss": agg[0], "best_train_loss": agg[1], "training_seconds": agg[2], "total_co2_kg": agg[3],
        "severity_counts": counts, "checks": sorted({i.check for i in issues}),
        "hyperparameters": r["hyperparameters"] or {},
    }


def project_trend(sv: Services, req: qpb.ProjectRef) -> qpb.ReportResponse:
    """How a project's runs went, oldest first: health, losses, issues; and whether it is improving."""
    if not req.project:
        raise InvalidMessage("ProjectRef.project is empty: name a project")
    sv.driver.settle(None, 1.0)
    with sv.store.connect() as conn:
        ids = [r[0] for r in conn.execute(
            sa.select(s.runs.c.id).select_from(s.runs.join(s.projects)).where(s.projects.c.name == req.project)
            .order_by(s.runs.c.started_at.desc()).limit(TREND_RUNS))]
        if not ids:
            raise RunNotFound(f"no project {req.project!r} (or it has no runs)")
        facts = [_run_facts(conn, i) for i in reversed(ids)]
    runs = [{k: f[k] for k in ("id", "name", "status", "started_at", "epochs", "health_score", "best_val_loss",
                               "best_train_loss", "total_co2_kg", "severity_counts", "checks")} for f in facts]
    scored = [f for f in facts if f["health_score"] is not None]
    recurring: dict[str, int] = {}
    for f in facts:
        for check in f["checks"]:
            recurring[check] = recurring.get(check, 0) + 1
    first = scored[0]["health_score"] if scored else None
    latest = scored[-1]["health_score"] if scored else None
    with_val = [f for f in facts if f["best_val_loss"] is not None]
    report = {
        "project": req.project,
        "run_count": len(facts),
        "runs": runs,
        "first_health_score": first,
        "latest_health_score": latest,
        "health_change": (latest - first) if scored else None,
        "improving": (latest > first) if len(scored) > 1 else None,
        "best_run": max(scored, key=lambda f: (f["health_score"], f["started_at"] or ""))["id"] if scored else None,
        "best_val_loss_run": min(with_val, key=lambda f: f["best_val_loss"])["id"] if with_val else None,
        # check id -> how many of the runs have it active, for checks in more than one run (most frequent first)
        "recurring_checks": {c: n for c, n in sorted(recurring.items(), key=lambda kv: (-kv[1], kv[0])) if n > 1},
    }
    return qpb.ReportResponse(report=dict_to_struct(report))


def _delta(a: Any, b: Any) -> Any:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool) and math.isfinite(a) and math.isfinite(b):
        return b - a
    return None


def compare_runs(sv: Services, req: qpb.CompareRequest) -> qpb.ReportResponse:
    """Two runs side by side: facts of each, and what differs (hyperparameters, metrics, issues)."""
    with sv.store.connect() as conn:
        ids = sv.store.resolve_run(conn, req.run_a), sv.store.resolve_run(conn, req.run_b)
    for run_id in ids:
        sv.driver.settle(run_id, SETTLE_S)
    with sv.store.connect() as conn:
        a, b = _run_facts(conn, ids[0]), _run_facts(conn, ids[1])
    hp_keys = sorted(set(a["hyperparameters"]) | set(b["hyperparameters"]))
    hp = {k: {"a": a["hyperparameters"].get(k), "b": b["hyperparameters"].get(k)} for k in hp_keys
          if a["hyperparameters"].get(k) != b["hyperparameters"].get(k)}
    metric_keys = sorted(set(a["final_metrics"]) | set(b["final_metrics"]))
    metrics = {k: {"a": a["final_metrics"].get(k), "b": b["final_metrics"].get(k),
                   "delta": _delta(a["final_metrics"].get(k), b["final_metrics"].get(k))} for k in metric_keys}
    scalars = {k: {"a": a[k], "b": b[k], "delta": _delta(a[k], b[k])}
               for k in ("health_score", "epochs", "steps", "best_val_loss", "best_train_loss", "training_seconds",
                         "wall_seconds", "total_co2_kg")}
    report = {
        "run_a": a, "run_b": b,
        "diff": {
            "hyperparameters": hp, "final_metrics": metrics, **scalars,
            "issues_only_a": sorted(set(a["checks"]) - set(b["checks"])),
            "issues_only_b": sorted(set(b["checks"]) - set(a["checks"])),
            "issues_both": sorted(set(a["checks"]) & set(b["checks"])),
        },
    }
    return qpb.ReportResponse(report=dict_to_struct(jsonable(report)))


# ------------------------------------------------------------------------------------------ command

def command(sv: Services, req: qpb.CommandRequest) -> qpb.CommandResponse:
    kind = COMMAND_NAMES.get(req.kind)
    if kind is None:
        raise InvalidMessage("CommandRequest.kind must be PAUSE, RESUME or STOP")
    with sv.store.connect() as conn:
        run_id = sv.store.resolve_run(conn, req.run)
    row, delivered = send_command(sv.store, sv.hub, run_id, kind, reason=req.reason, sender=req.sender or "user",
                                  live_after=sv.config.stale_after_s)
    resp = qpb.CommandResponse(command_id=row["id"], run_id=run_id, delivered=delivered)
    float_to_ts(row["issued_at"], resp.issued_at)
    return resp

