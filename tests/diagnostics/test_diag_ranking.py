"""Root cause first: the cause map is acyclic and names real checks, and a run's issues are ranked cause first
with `rank`, `explains` and `evidence` (ARCHITECTURE.md, `atlas issues --json`)."""

from __future__ import annotations

from typing import Any

from diag_synth import epochs

from atlas_diagnostics import CAUSES, CHECK_IDS, Issue, diagnose, rank_issues
from atlas_diagnostics._ranking import TIER


def issue(check: str, severity: str = "warning", *, first: int = 0, active: bool = True) -> Issue:
    return Issue(check=check, severity=severity, category="loss", title=check, description=check, suggestion="fix",
                 first_seen_epoch=first, last_seen_epoch=first, active=active)


def test_the_cause_map_names_only_real_checks_and_has_no_cycle_but_mutual_pairs() -> None:
    """Mutual pairs (lr_too_high <-> loss_explosion) are resolved by which began first; nothing longer loops."""
    for cause, symptoms in CAUSES.items():
        assert cause in CHECK_IDS, cause
        assert set(symptoms) <= set(CHECK_IDS), set(symptoms) - set(CHECK_IDS)
        assert cause not in symptoms
    assert set(TIER) <= set(CHECK_IDS)
    state: dict[str, int] = {}

    def visit(check: str, path: tuple[str, ...]) -> None:
        assert state.get(check) != 1, f"cycle: {' -> '.join(path + (check,))}"
        if state.get(check) == 2:
            return
        state[check] = 1
        for s in CAUSES.get(check, ()):
            if check not in CAUSES.get(s, ()):
                visit(s, path + (check,))
        state[check] = 2

    for check in CAUSES:
        visit(check, ())


def test_a_warning_that_explains_a_critical_ranks_first() -> None:
    # forgotten zero_grad: the bug is a warning, the loss explosion it causes is critical
    ranked = rank_issues([issue("loss_explosion", "critical"), issue("gradient_instability"),
                          issue("missing_zero_grad", first=0), issue("device_underutilization", "info")])
    assert [i.check for i in ranked] == ["missing_zero_grad", "loss_explosion", "gradient_instability",
                                        "device_underutilization"]
    assert [i.rank for i in ranked] == [1, 2, 3, 4]
    assert ranked[0].explains == ("gradient_instability", "loss_explosion")
    assert ranked[1].explains == ("gradient_instability",)


def test_a_cleared_issue_still_explains_and_is_ranked() -> None:
    ranked = rank_issues([issue("early_stopping_missed"), issue("loss_explosion", "critical", active=False)])
    assert ranked[0].check == "loss_explosion" and not ranked[0].active
    assert ranked[0].explains == ("early_stopping_missed",)


def test_unrelated_causes_rank_by_what_they_account_for() -> None:
    ranked = rank_issues([issue("memory_growth"), issue("loss_at_chance"), issue("loss_plateau"),
                          issue("early_stopping_missed"), issue("wasted_carbon", "info")])
    assert ranked[0].check == "loss_at_chance"
    assert set(ranked[0].explains) == {"loss_plateau", "early_stopping_missed", "wasted_carbon"}
    assert [i.check for i in ranked][1:4] == ["loss_plateau", "early_stopping_missed", "wasted_carbon"]
    assert ranked[4].check == "memory_growth"  # the other cause, after the first and what it explains


def test_what_began_later_explains_nothing_earlier() -> None:
    # inputs scaled 1e4 at epoch 3: the gradient spike (step 49) comes before the loss swings read as lr_too_high
    spike = Issue(check="exploding_gradients", severity="critical", category="loss", title="t", description="d",
                  suggestion="s", step=49, first_seen_epoch=3, last_seen_epoch=3)
    ranked = rank_issues([issue("lr_too_high", first=4), spike])
    assert [i.check for i in ranked] == ["exploding_gradients", "lr_too_high"]
    assert ranked[0].explains == ("lr_too_high",) and ranked[1].explains == ()
    # a NaN batch: the NaN loss and the NaN gradient of the same step; the loss is the cause
    nan = Issue(check="nan_loss", severity="critical", category="loss", title="t", description="d", suggestion="s",
                step=49, first_seen_epoch=3, last_seen_epoch=3)
    assert rank_issues([spike, nan])[0].check == "nan_loss"
    # a program bug is a fact from the first step, whenever it was judged
    late = rank_issues([spike, issue("missing_grad_clipping", first=5)])
    assert late[0].check == "missing_grad_clipping" and late[0].explains == ("exploding_gradients",)


def test_the_engine_and_its_json_carry_rank_explains_and_evidence() -> None:
    facts = {"grads_not_cleared": {"steps": 15, "watched_steps": 15, "parameter": "fc.bias"},
             "manual_optimization": True}
    found = diagnose(epochs(3, train_mean=[1.0, 0.9, 2.5], facts=lambda e: facts if e == 0 else {}))
    first = found[0].to_dict()
    assert first["check"] == "missing_zero_grad" and first["rank"] == 1
    assert "loss_explosion" in first["explains"]
    assert first["evidence"] == {"uncleared_steps": 15, "watched_steps": 15, "manual_optimization": True}
    assert [i.rank for i in found] == list(range(1, len(found) + 1))
    explosion: dict[str, Any] = next(i.to_dict() for i in found if i.check == "loss_explosion")
    assert explosion["evidence"]  # defaults to the metric behind it
