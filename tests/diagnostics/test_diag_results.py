"""Health score, summaries, layer highlights, the Green-AI account, and what an issue tells the user."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from diag_synth import epochs, layers, mlp, steps_for

from atlas_diagnostics import (
    CO2_FACTORS_KG,
    CarbonRecord,
    Engine,
    Issue,
    diagnose,
    green_grade,
    green_insight,
    health_report,
    health_score,
    layer_highlights,
    run_report,
    severity_counts,
)


def issue(check: str, severity: str, *, layer: str | None = None, active: bool = True, first: int = 0) -> Issue:
    return Issue(check=check, severity=severity, category="loss", title=check, description="d", suggestion="s",
                 layer=layer, active=active, first_seen_epoch=first, last_seen_epoch=first, key=layer)


@pytest.mark.parametrize("severities, expected", [
    ((), 100),
    (("critical", "warning", "warning"), 66),  # the guide's example
    (("info",) * 3, 94),
    (("critical",) * 5, 0),
    (("critical",) * 6, 0),  # floor at zero
])
def test_health_score_formula(severities: tuple[str, ...], expected: int) -> None:
    assert health_score([issue(f"c{i}", s) for i, s in enumerate(severities)]) == expected


def test_inactive_issues_do_not_count() -> None:
    issues = [issue("a", "critical", active=False), issue("b", "warning")]
    assert health_score(issues) == 93
    assert severity_counts(issues) == {"critical": 0, "warning": 1, "info": 0}


def test_layer_highlights_sorted_by_severity_score() -> None:
    issues = [issue("dead_layers", "critical", layer="fc2"), issue("saturated_activation", "warning", layer="fc1"),
              issue("redundant_layers", "info", layer="fc1"), issue("vanishing_gradients", "warning", layer="fc3"),
              issue("loss_plateau", "warning")]
    hl = layer_highlights(issues, {"fc1": "Linear"})
    assert [(h["layer"], h["severity_score"]) for h in hl] == [("fc2", 20), ("fc1", 9), ("fc3", 7)]
    assert hl[1]["checks"] == ["redundant_layers", "saturated_activation"] and hl[1]["layer_type"] == "Linear"


def test_health_report_matches_the_cli_json() -> None:
    # a whole layer dead while the loss stands still, then the loss explodes past where it started: two criticals
    eps = epochs(4, deep=True, layers=layers(fc2={"zero_fraction": 1.0}), train_mean=[2.0, 2.0, 2.0, 4.5],
                 val={"val_loss": 2.1})
    report = health_report(diagnose(eps))
    assert set(report) == {"health_score", "severity_counts", "top_issues", "top_layers"}
    assert report["severity_counts"]["critical"] == 2
    # neither explains the other: both are root causes; the one that accounts for more comes first
    top = [i["check"] for i in report["top_issues"]]
    assert top[0] == "loss_explosion" and "dead_layers" in top
    assert [i["rank"] for i in report["top_issues"]] == sorted(i["rank"] for i in report["top_issues"])
    assert report["top_layers"] == [{"layer": "fc2", "severity_score": 20, "checks": ["dead_layers"]}]
    json.dumps(report, allow_nan=False)


ISSUE_FIELDS = ["check", "severity", "category", "title", "description", "epoch", "step", "layer", "metric_key",
                "metric_value", "thresholds", "suggestion", "first_seen_epoch", "last_seen_epoch", "active", "rank",
                "explains", "evidence", "insight"]


def test_issue_json_has_exactly_the_contract_fields() -> None:
    (nan,) = diagnose(epochs(2, train_mean=[2.0, math.nan]))
    d = nan.to_dict()
    assert sorted(d) == sorted(ISSUE_FIELDS)
    assert d["metric_value"] == "NaN"
    json.dumps(d, allow_nan=False)


def test_issue_says_the_numbers_and_the_fix_prompt_carries_them() -> None:
    (explosion,) = [i for i in diagnose(epochs(3, train_mean=[1.0, 0.9, 2.25], train_max=[1.1, 1.0, 2.5]))
                    if i.check == "loss_explosion"]
    assert "0.9" in explosion.description and "2.25" in explosion.description and "2.5x" in explosion.description
    assert "clip_grad_norm_" in explosion.suggestion
    prompt = explosion.fix_prompt(context="ResNet-18 on CIFAR-10, Adam lr=1e-2")
    for text in ("loss_explosion", "critical", "epoch 2", "train_mean = 2.25", "loss_explosion_ratio=2",
                 "ResNet-18", "PyTorch"):
        assert text in prompt, text


def test_run_report_shape() -> None:
    engine = Engine()
    eps = epochs(6, deep=True, layers=layers(fc3={"zero_fraction": 0.9}))  # dead units, the loss still improving
    engine.update(epochs=eps, steps=steps_for(eps), architecture=mlp())
    report = run_report(engine)
    assert report["arch_type"] == "generic" and report["issue_count"] == 1
    assert report["summary_json"]["severity_breakdown"] == {"critical": 0, "warning": 0, "info": 1}
    assert report["summary_json"]["category_breakdown"] == {"sustainability": 1}
    assert report["epoch_trends"] == [{"epoch": 1, "issue_count": 1, "severity_counts":
                                       {"critical": 0, "warning": 0, "info": 1}, "checks": ["dead_layers"]}]
    assert report["layer_highlights"][0]["layer"] == "fc3" and report["layer_highlights"][0]["layer_type"] == "Linear"
    assert report["sustainability"]["dead_layers"] == ["fc3"]
    json.dumps(report, allow_nan=False)


# ------------------------------------------------------------------------------------------ green AI -------
def wasteful_engine(eur: float | None = None) -> Engine:
    # val_loss best at epoch 5 of 10; each epoch 10 s, 1 g CO2, 4 Wh, 10,000 samples
    val = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.51, 0.52, 0.53, 0.54]
    carbon = lambda e: CarbonRecord(epoch_co2_kg=1e-3, epoch_energy_kwh=4e-3, power_draw_watts=50.0)  # noqa: E731
    eps = epochs(10, duration_seconds=10.0, carbon=carbon, val=lambda e: {"val_loss": val[e]})
    engine = Engine()
    engine.update(epochs=eps)
    return engine


def test_green_insight_accounts_for_the_wasted_epochs() -> None:
    g = green_insight(wasteful_engine())
    assert (g.optimal_stop_epoch, g.optimal_stop_basis, g.wasted_epochs) == (5, "val_loss", 4)
    assert g.wasted_duration_seconds == pytest.approx(40.0) and g.wasted_compute_pct == pytest.approx(40.0)
    assert g.total_training_duration_seconds == pytest.approx(100.0) and g.total_samples_processed == 100_000
    assert g.total_co2_kg == pytest.approx(0.01) and g.wasted_co2_kg == pytest.approx(0.004)
    assert g.total_energy_kwh == pytest.approx(0.04) and g.wasted_energy_kwh == pytest.approx(0.016)
    assert g.co2_per_epoch_avg_kg == pytest.approx(1e-3) and g.co2_per_1k_samples_kg == pytest.approx(1e-4)
    assert g.avg_power_draw_watts == pytest.approx(50.0)
    assert g.total_cost_eur == pytest.approx(0.01 / 1000 * 50) and g.wasted_cost_eur == pytest.approx(0.004 / 1000 * 50)
    assert g.grade == "D"  # 40 % wasted: 30-50 % is D
    assert g.co2_equivalents["km_driven_by_car"] == pytest.approx(0.01 / 0.2442, rel=1e-3)
    assert g.co2_equivalents["smartphone_charges"] == pytest.approx(0.01 / 0.0124)
    assert set(g.co2_equivalents) == set(CO2_FACTORS_KG)
    d = g.to_dict()
    for key in ("optimal_stop_epoch", "wasted_epochs", "wasted_compute_pct", "wasted_duration_seconds",
                "total_co2_kg", "total_energy_kwh", "wasted_co2_kg", "parameter_efficiency_score", "dead_layers",
                "wasted_energy_kwh", "total_cost_eur", "wasted_cost_eur", "grade", "co2_equivalents"):
        assert key in d


def test_green_price_is_configurable_and_validated() -> None:
    engine = wasteful_engine()
    assert green_insight(engine, eur_per_tonne=80.0).total_cost_eur == pytest.approx(0.01 / 1000 * 80)
    with pytest.raises(ValueError, match="`eur_per_tonne` must be a non-negative number, got -5"):
        green_insight(engine, eur_per_tonne=-5)


def test_green_insight_of_a_healthy_and_an_empty_run() -> None:
    empty = green_insight(Engine())
    assert empty.grade is None and empty.total_co2_kg is None and empty.co2_equivalents == {}
    engine = Engine()
    engine.update(epochs=epochs(8, deep=True), architecture=mlp())
    g = green_insight(engine)
    assert (g.optimal_stop_epoch, g.wasted_epochs, g.wasted_compute_pct, g.grade) == (None, 0, 0.0, "A")
    assert g.parameter_efficiency_score == 100.0


def test_parameter_efficiency_drops_with_dead_layers() -> None:
    engine = Engine()
    engine.update(epochs=epochs(3, deep=True, layers=layers(fc1={"zero_fraction": 0.9}, fc2={"zero_fraction": 0.9})),
                  architecture=mlp())
    g = green_insight(engine)
    assert g.dead_layers == ["fc1", "fc2"]
    assert g.parameter_efficiency_score == pytest.approx(50.0, abs=0.1)


@pytest.mark.parametrize("wasted, efficiency, grade", [
    (0.0, None, "A"), (4.9, 100.0, "A"), (5.0, None, "B"), (14.9, None, "B"), (15.0, None, "C"),
    (29.9, None, "C"), (30.0, None, "D"), (49.9, None, "D"), (50.0, None, "F"), (99.0, None, "F"),
    (0.0, 40.0, "B"), (60.0, 10.0, "F"), (None, None, None),
])
def test_grade_bands(wasted: float | None, efficiency: float | None, grade: str | None) -> None:
    assert green_grade(wasted, efficiency) == grade


def test_wasted_without_validation_uses_the_training_loss() -> None:
    engine = Engine()
    engine.update(epochs=[replace(r, val={}) for r in epochs(7, train_mean=[2.0, 1.5, 1.2, 1.21, 1.22, 1.23, 1.24])])
    g = green_insight(engine)
    assert (g.optimal_stop_epoch, g.optimal_stop_basis, g.wasted_epochs) == (2, "train_loss", 4)


def test_issue_roundtrips_through_its_json() -> None:
    eps = epochs(4, deep=True, train_mean=[2.0, 1.9, math.nan, 1.7], layers=layers(fc2={"zero_fraction": 0.8}))
    for i in diagnose(eps):
        back = Issue.from_dict(json.loads(json.dumps({"run": "r1", **i.to_dict()}, allow_nan=False)))
        assert back.to_dict() == i.to_dict()


def test_issue_from_dict_names_the_bad_field() -> None:
    from atlas_diagnostics import RecordError
    with pytest.raises(RecordError, match="Issue has no field 'sev'"):
        Issue.from_dict({"check": "nan_loss", "sev": "critical"})
    with pytest.raises(RecordError, match="Issue.severity must be one of critical, warning, info, got 'fatal'"):
        Issue.from_dict({"check": "nan_loss", "severity": "fatal", "category": "loss", "title": "t",
                         "description": "d", "suggestion": "s"})


def test_health_reflects_a_diverged_failed_or_stopped_run() -> None:
    from atlas_diagnostics import Issue, health_score

    def make(check: str, severity: str, active: bool = True) -> Issue:
        return Issue(check=check, severity=severity, category="loss", title="t", description="d", suggestion="s",
                     active=active)

    info = [make("device_underutilization", "info")]
    assert health_score(info) == 98 and health_score(info, "completed") == 98
    assert health_score(info, "failed") == 50  # a crash is not a healthy run
    assert health_score([make("nan_loss", "critical")] + info) == 30  # the loss went to inf: at most 30
    assert health_score([make("loss_explosion", "critical", active=False)]) == 30  # even once it came back
    assert health_score([make("loss_explosion", "warning")]) == 93  # below where it started: not diverged
    stopped = [make("optimizer_not_stepping_model", "critical")]
    assert health_score(stopped, "stopped") == 60 and health_score(stopped) == 80
    assert health_score(info, "stopped") == 98  # stopped by a person, nothing critical: no cap


def test_a_diverged_run_is_graded_f() -> None:
    from atlas_diagnostics import Engine, green_insight

    eng = Engine()
    eng.update(epochs=epochs(4, train_mean=[2.0, 1.0, 0.9, float("nan")]))
    g = green_insight(eng)
    assert g.grade == "F" and any("diverged" in n for n in g.notes)
    healthy = Engine()
    healthy.update(epochs=epochs(4))
    assert green_insight(healthy).grade != "F"
