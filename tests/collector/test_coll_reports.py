"""Issues, health, sustainability, project trend, comparison and diagnose-now through the QueryService."""
from __future__ import annotations

import math

import grpc
import pytest
from google.protobuf import json_format

from atlas_collector import run_server
from atlas_collector import _schema as s
from atlas_proto.v1 import query_pb2 as qpb

from coll_support import Trainer, query, rows

OVERFIT = [(2.0, 2.1), (1.5, 1.6), (1.0, 1.2), (0.8, 1.3), (0.6, 1.45), (0.5, 1.6), (0.4, 1.8)]
HEALTHY = [(2.0, 2.1), (1.4, 1.5), (1.0, 1.1), (0.8, 0.9)]


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    """One collector with three runs of project `reports`: healthy, overfitting (with carbon), and NaN."""
    db = tmp_path_factory.mktemp("reports") / "c.db"
    with run_server(db=f"sqlite:///{db}") as c:
        runs = {}
        for name, series, hp in (("healthy", HEALTHY, {"lr": 0.01}), ("overfit", OVERFIT, {"lr": 0.1})):
            t = Trainer(c.address).start(project="reports", name=name, hyperparameters=hp)
            for n, (train, val) in enumerate(series):
                t.epoch(n, train, val_loss=val, co2=0.01)
            t.end()
            t.wait_acked()
            t.finish()
            runs[name] = t.run_id
        nan = Trainer(c.address).start(project="reports", name="nan", hyperparameters={"lr": 10.0})
        nan.steps([1.0, math.nan])
        nan.wait_acked()
        runs["nan"] = nan.run_id
        c.runs = runs
        yield c
        nan.finish()


def _dict(msg) -> dict:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def test_list_issues_filters_by_severity_and_spans_runs(collector) -> None:
    q = query(collector.address)
    overfit = q.ListIssues(qpb.IssuesRequest(run="overfit"), timeout=10).issues
    checks = [i.check for i in overfit]
    assert {"overfitting", "early_stopping_missed", "wasted_carbon"} <= set(checks)
    assert all(i.run == collector.runs["overfit"] and i.active for i in overfit)
    [of] = [i for i in overfit if i.check == "overfitting"]
    assert (of.severity, of.category, of.first_seen_epoch, of.last_seen_epoch) == ("warning", "loss", 4, 6)
    assert of.title and of.suggestion and of.metric_key and of.HasField("metric_value")
    assert dict(of.thresholds)  # the thresholds it was judged by

    critical = q.ListIssues(qpb.IssuesRequest(all_runs=True, severity="critical"), timeout=10).issues
    assert [(i.run, i.check) for i in critical] == [(collector.runs["nan"], "nan_loss")]
    everything = q.ListIssues(qpb.IssuesRequest(all_runs=True, project="reports"), timeout=10).issues
    assert {i.run for i in everything} == set(collector.runs.values())
    by_run: dict[str, list[int]] = {}
    for i in everything:  # each run's issues together, root cause first: ranks 1, 2, ... in order
        by_run.setdefault(i.run, []).append(i.rank)
    assert all(ranks == list(range(1, len(ranks) + 1)) for ranks in by_run.values()), by_run
    [nan] = [i for i in everything if i.check == "nan_loss"]
    assert nan.rank == 1 and nan.evidence  # the run's root cause, with the numbers behind it
    [device] = [i for i in overfit if i.check == "device_underutilization"]  # a CPU-only run: one info
    assert (device.severity, device.metric_text, device.HasField("metric_value")) == ("info", "cpu", False)
    with pytest.raises(grpc.RpcError) as bad:
        q.ListIssues(qpb.IssuesRequest(run="overfit", severity="fatal"), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "critical, warning, info" in bad.value.details()


def test_health_counts_active_issues_once_each(collector) -> None:
    h = query(collector.address).GetHealth(qpb.RunRef(run="overfit"), timeout=10)
    active = query(collector.address).ListIssues(qpb.IssuesRequest(run="overfit"), timeout=10).issues
    weights = {"critical": 20, "warning": 7, "info": 2}
    assert h.run == collector.runs["overfit"]
    assert h.health_score == max(0, 100 - sum(weights[i.severity] for i in active))
    assert dict(h.severity_counts) == {sev: sum(i.severity == sev for i in active) for sev in weights}
    assert h.top_issues[0].severity == "warning" and len(h.top_issues) <= 5
    assert rows(collector.store, s.runs, id=collector.runs["overfit"])[0]["health_score"] == h.health_score
    nan = query(collector.address).GetHealth(qpb.RunRef(run="nan"), timeout=10)
    assert nan.severity_counts["critical"] == 1 and nan.top_issues[0].check == "nan_loss"


def test_sustainability_has_grade_costs_and_equivalents(collector) -> None:
    green = _dict(query(collector.address).GetSustainability(qpb.RunRef(run="overfit"), timeout=10).report)
    assert green["run"] == collector.runs["overfit"]
    assert (green["optimal_stop_epoch"], green["wasted_epochs"], green["grade"]) == (2, 4, "F")
    assert green["total_co2_kg"] == pytest.approx(0.07)
    assert green["wasted_energy_kwh"] == pytest.approx(0.16)
    assert green["total_cost_eur"] == pytest.approx(0.07 * 50 / 1000)
    assert green["wasted_cost_eur"] == pytest.approx(0.04 * 50 / 1000)
    assert set(green["co2_equivalents"]) >= {"km_driven_by_car", "smartphone_charges"}
    assert "dead_layers" in green and green["parameter_efficiency_score"] is None  # null, not omitted
    healthy = _dict(query(collector.address).GetSustainability(qpb.RunRef(run="healthy"), timeout=10).report)
    assert healthy["wasted_epochs"] == 0 and healthy["grade"] == "A"


def test_project_trend_and_compare(collector) -> None:
    trend = _dict(query(collector.address).GetProjectTrend(qpb.ProjectRef(project="reports"), timeout=10).report)
    assert trend["run_count"] == 3
    assert [r["name"] for r in trend["runs"]] == ["healthy", "overfit", "nan"]  # oldest first
    assert trend["best_run"] == collector.runs["healthy"]
    assert trend["health_change"] == trend["latest_health_score"] - trend["first_health_score"] < 0
    assert trend["improving"] is False
    assert trend["recurring_checks"]["device_underutilization"] >= 2  # CPU-only runs, each says so once

    cmp_ = _dict(query(collector.address).CompareRuns(qpb.CompareRequest(run_a="healthy", run_b="overfit"),
                                                      timeout=10).report)
    assert (cmp_["run_a"]["id"], cmp_["run_b"]["id"]) == (collector.runs["healthy"], collector.runs["overfit"])
    assert cmp_["diff"]["hyperparameters"] == {"lr": {"a": 0.01, "b": 0.1}}
    assert "overfitting" in cmp_["diff"]["issues_only_b"]
    assert cmp_["diff"]["epochs"] == {"a": 4, "b": 7, "delta": 3}
    assert cmp_["diff"]["final_metrics"]["val_loss"]["delta"] == pytest.approx(1.8 - 0.9)
    with pytest.raises(grpc.RpcError) as missing:
        query(collector.address).GetProjectTrend(qpb.ProjectRef(project="nope"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_diagnose_now_stores_a_diagnostic_run(collector) -> None:
    before = len(rows(collector.store, s.diagnostic_runs, run_id=collector.runs["healthy"]))
    h = query(collector.address).Diagnose(qpb.RunRef(run="healthy"), timeout=10)
    after = rows(collector.store, s.diagnostic_runs, run_id=collector.runs["healthy"])
    assert len(after) == before + 1 and max(after, key=lambda d: d["id"])["trigger"] == "manual"
    assert h.run == collector.runs["healthy"] and h.health_score >= 90
