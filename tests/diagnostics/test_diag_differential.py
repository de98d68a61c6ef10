"""Differential diagnosis: each check against its look-alikes, on synthetic series (fires / near miss / empty).

The series marked "real" are the epoch numbers of runs in tests/faults (issue 19): the program's name says which.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from diag_synth import classifier, epochs, layers, mlp, step_losses
from hypothesis import given, settings
from hypothesis import strategies as st

from atlas_diagnostics import Engine, EpochRecord, StepRecord, diagnose


def active(**kwargs: Any) -> dict[str, Any]:
    return {i.check: i for i in diagnose(**kwargs) if i.active}


def run(train: list[float], val: list[float], **kw: Any) -> dict[str, Any]:
    return active(epochs=epochs(len(train), train_mean=train, val=lambda e: {"val_loss": val[e]}), **kw)


# ------------------------------------------------------------------------------ overfitting vs divergence -------

@pytest.mark.parametrize("train, val, expect, absent", [
    # real "tiny_train_big_model": train keeps falling, validation climbs from its best at epoch 3
    ([1.017, 0.619, 0.446, 0.234, 0.19, 0.16], [0.85, 0.674, 0.651, 0.615, 0.70, 0.98], "overfitting",
     "loss_divergence"),
    # flat-low: training has converged (memorised) and stays there while validation rises
    ([1.0, 0.3, 0.05, 0.05, 0.05, 0.05], [1.0, 0.5, 0.4, 0.5, 0.6, 0.7], "overfitting", "loss_divergence"),
    # real "adam_lr_far_too_high" (Adam lr=0.2): train loss rises 1.23 -> 1.84 while validation rises: divergence
    ([1.743, 1.228, 1.394, 1.541, 1.844], [0.989, 1.636, 1.778, 3.486, 3.5], "loss_divergence", "overfitting"),
])
def test_overfitting_needs_a_falling_or_flat_low_training_loss(train: list[float], val: list[float], expect: str,
                                                             absent: str) -> None:
    found = run(train, val)
    assert expect in found and absent not in found, sorted(found)


def test_a_training_loss_rising_with_validation_is_never_overfitting() -> None:
    # both rise from epoch 2 on; the training loss at epoch 5 sits 10 % above its lowest since the best val epoch
    found = {i.check for i in diagnose(epochs(6, train_mean=[2.0, 1.0, 1.02, 1.05, 1.08, 1.1],
                                              val=lambda e: {"val_loss": [2.0, 1.0, 1.1, 1.3, 1.5, 1.7][e]}))}
    assert "overfitting" not in found


@pytest.mark.parametrize("name, train, val", [
    ("atlas demo, 3 epochs, +4 %", [0.4844, 0.3445, 0.3331], [0.3727, 0.3764, 0.3879]),
    ("real healthy_adam_5class, +4 % one epoch after its best", [1.094, 0.37, 0.254, 0.234, 0.228, 0.213],
     [0.581, 0.321, 0.309, 0.312, 0.303, 0.317]),
    ("real healthy_cosine_wd: +10 % of a tiny best, within its own wobble", [0.366, 0.145, 0.052, 0.038, 0.018, 0.016],
     [0.0375, 0.1026, 0.0439, 0.048, 0.0407, 0.0411]),
    ("one bad epoch, then back", [2.0, 1.6, 1.3, 1.1, 1.0, 0.9], [2.0, 1.7, 1.4, 1.8, 1.38, 1.39]),
])
def test_a_small_or_noisy_rise_of_validation_is_not_overfitting(name: str, train: list[float],
                                                               val: list[float]) -> None:
    assert "overfitting" not in run(train, val), name


def test_overfitting_rise_is_judged_against_the_curves_own_wobble() -> None:
    # the same 15 % rise over two epochs: a smooth curve fires, a curve that swings 20 % epoch to epoch does not
    smooth = [1.0, 0.8, 0.7, 0.65, 0.6, 0.64, 0.69]
    wobbly = [1.0, 0.75, 0.9, 0.62, 0.6, 0.64, 0.69]
    train = [2.0, 1.6, 1.3, 1.1, 1.0, 0.9, 0.8]
    assert run(train, smooth)["overfitting"].first_seen_epoch == 6
    assert "overfitting" not in run(train, wobbly)
    assert "overfitting" not in active(epochs=epochs(6, val={}))  # no validation loss: nothing to judge


# ------------------------------------------------------------------------------------------- chance level -------

AT_CHANCE = dict(train_mean=[1.39, 1.388, 1.387, 1.386], val={"val_loss": 1.388, "val_acc": 0.25})


def test_a_plateau_at_the_chance_level_is_not_a_learning_rate_problem() -> None:
    found = active(architecture=classifier(4), epochs=epochs(4, **AT_CHANCE))  # ln(4) = 1.386
    assert "loss_at_chance" in found and found["loss_at_chance"].first_seen_epoch == 1
    assert not {"loss_plateau", "lr_too_low", "lr_too_high"} & set(found)
    assert "learning rate" not in found["loss_at_chance"].suggestion


@pytest.mark.parametrize("why, kwargs", [
    ("a regression of 4 values: no accuracy, no classes", dict(architecture=classifier(4), epochs=epochs(
        4, train_mean=AT_CHANCE["train_mean"], val={"val_loss": 1.388}))),
    ("accuracy well above 1/4", dict(architecture=classifier(4), epochs=epochs(
        4, train_mean=AT_CHANCE["train_mean"], val={"val_loss": 1.388, "val_acc": 0.5}))),
    ("a plateau away from ln(classes)", dict(architecture=classifier(10), epochs=epochs(4, **AT_CHANCE))),
    ("no architecture", dict(epochs=epochs(4, **AT_CHANCE))),
])
def test_loss_at_chance_near_misses_are_plateaus(why: str, kwargs: dict[str, Any]) -> None:
    found = active(**kwargs)
    assert "loss_at_chance" not in found and "loss_plateau" in found, why


def test_at_chance_with_weights_that_do_not_move_is_the_learning_rate() -> None:
    still = layers(**{n: {"update_ratio": 1e-8} for n in ("fc1", "fc2", "fc3", "fc4")})
    found = active(architecture=classifier(4), epochs=epochs(4, deep=True, layers=still, lr=(1e-7,), **AT_CHANCE))
    assert "loss_at_chance" not in found and "lr_too_low" in found


# ----------------------------------------------------------------------------------------------- leakage --------

def test_data_leakage_hints_are_info_never_warnings() -> None:
    # validation at 0.3x the training loss every epoch and 100 % accuracy from the first: easy data, dropout and the
    # epoch mean's lag do both; they are hints
    hints = [i for i in diagnose(epochs(4, val=lambda e: {"val_loss": 0.3 * (2.0 - 0.1 * e), "val_acc": 1.0}))
             if i.check == "data_leakage"]
    assert sorted((i.metric_key, i.severity) for i in hints) == [("val_accuracy", "info"),
                                                                 ("val_loss/train_mean", "info")]
    assert "data_leakage" not in active(epochs=epochs(4, val=lambda e: {"val_loss": 1.05 * (2.0 - 0.1 * e),
                                                                        "val_acc": 0.99}))


# ---------------------------------------------------------------------------------- dead units, gradients -------

def test_vanishing_gradients_behind_a_dead_layer_are_the_dead_layers_issue() -> None:
    kill = layers(fc3={"zero_fraction": 1.0, "gradient_norm_mean": 0.0}, fc1={"gradient_norm_mean": 0.0},
                  fc2={"gradient_norm_mean": 0.0})
    found = active(epochs=epochs(3, deep=True, layers=kill))
    assert "dead_layers" in found and "vanishing_gradients" not in found
    after = layers(fc4={"gradient_norm_mean": 1e-9}, fc2={"zero_fraction": 1.0})  # fc4 is after the dead fc2
    assert active(epochs=epochs(3, deep=True, layers=after))["vanishing_gradients"].layer == "fc4"


@pytest.mark.parametrize("norms, severity", [
    ([2e5] * 12, "warning"),  # large from the first step and steady: unnormalised targets, not an overflow
    ([1.0] * 11 + [5000.0], "critical"),  # 5,000x its own recent median: a spike
    ([1.0] * 11 + [math.inf], "critical"),  # non-finite
])
def test_exploding_gradients_is_critical_only_for_overflows(norms: list[float], severity: str) -> None:
    eps = epochs(2)
    steps = [StepRecord(step=k, epoch=k // 6, loss=2.0 - 0.1 * (k // 6), grad_norm=g) for k, g in enumerate(norms)]
    assert active(epochs=eps, steps=steps)["exploding_gradients"].severity == severity


def test_dead_units_are_info_while_the_loss_improves_and_a_dead_layer_escalates_when_it_stops() -> None:
    """The delta reports the escalation: on_critical acts on an issue that became critical, not only on new ones."""
    train = [2.0, 1.5, 1.2, 1.2, 1.2, 1.2]
    eps = epochs(6, deep=True, layers=layers(fc2={"zero_fraction": 1.0}), train_mean=train,
                 val=lambda e: {"val_loss": train[e] + 0.1})
    engine = Engine()
    deltas = [engine.update(epochs=[rec]) for rec in eps]
    assert [i.severity for i in deltas[1].new if i.check == "dead_layers"] == ["info"]
    assert not [i for d in deltas[:5] for i in d.new_critical]
    assert [(i.check, i.severity) for i in deltas[5].escalated] == [("dead_layers", "critical")]
    assert [i.check for i in deltas[5].new_critical] == ["dead_layers"]


# ------------------------------------------------------------------------------ the step-level loss level -------

def falling(n: int, start: float = 2.3, end: float = 0.5) -> list[float]:
    return [start + (end - start) * k / (n - 1) for k in range(n)]


def test_an_explosion_inside_an_epoch_is_raised_inside_it() -> None:
    """A forgotten zero_grad (real "forgotten_zero_grad"): the step loss climbs 1.5 -> thousands inside one epoch,
    while epoch means may later fall; the issue is raised from the steps, before the epoch's summary."""
    engine = Engine()
    e0 = falling(30)
    e1 = [0.5, 0.4, 0.3] + [0.3 * 3 ** k for k in range(1, 12)] + [2874.0] * 6
    steps = step_losses([e0, e1])
    engine.update(epochs=epochs(1, train_mean=[sum(e0) / 30]), steps=steps[:30])
    delta = engine.update(steps=steps[30:])  # epoch 1's steps; its summary has not arrived
    (issue,) = [i for i in delta.new_critical if i.check == "loss_explosion"]
    assert issue.first_seen_epoch == 1 and 30 <= issue.step < 50 and "step" in issue.description
    # the epoch mean then falls (the model shoots back): the issue is judged at the epoch's end on where it is
    engine.update(epochs=epochs(2, train_mean=[1.4, 800.0])[1:])
    assert [i.active for i in engine.issues() if i.check == "loss_explosion"] == [True]


@pytest.mark.parametrize("why, e1", [
    ("one batch 100x the others", [0.5] * 10 + [50.0] + [0.5] * 10),
    ("two batches 50x in one window", [0.5] * 10 + [25.0, 0.5, 25.0] + [0.5] * 10),
    ("near convergence: 0.01 -> 0.05 is 5x, and 2 % of where the run started", [0.01] * 12 + [0.05] * 12),
    ("AMP-skipped steps with an inf or scaled loss", [0.5] * 10 + [math.inf, 1e4, 1e4, 1e4] + [0.5] * 10),
])
def test_a_spike_or_a_wobble_is_not_an_explosion(why: str, e1: list[float]) -> None:
    over = {str(30 + k): {"amp_skipped": True} for k in range(10, 14)} if "AMP" in why else {}
    steps = step_losses([falling(30), e1], **over)
    found = active(epochs=epochs(2, train_mean=[1.4, 0.5]), steps=steps)
    assert "loss_explosion" not in found, why


def test_an_explosion_that_recovers_is_a_warning_and_stays_as_history() -> None:
    # from a best level of 0.5 up to 1.6 (3x, but below the 2.3 the run started from), then back
    e1 = [0.5] * 10 + [1.6] * 12 + [0.5] * 12
    engine = Engine()
    steps = step_losses([falling(30), e1])
    engine.update(epochs=epochs(1, train_mean=[1.4]), steps=steps[:52])
    (issue,) = [i for i in engine.issues() if i.check == "loss_explosion"]
    assert issue.severity == "warning" and issue.active and issue.first_seen_epoch == 1
    delta = engine.update(epochs=epochs(2, train_mean=[1.4, 0.9])[1:], steps=steps[52:])
    assert [i.check for i in delta.cleared] == ["loss_explosion"]
    kept = [i for i in engine.issues() if i.check == "loss_explosion"]
    assert [(i.active, i.severity, i.first_seen_epoch) for i in kept] == [(False, "warning", 1)]
    assert [i.check for i in diagnose(epochs(2, train_mean=[1.4, 0.9]), steps)] == ["loss_explosion"]


def test_a_warning_explosion_that_passes_the_starting_loss_escalates_for_on_critical() -> None:
    engine = Engine()
    steps = step_losses([falling(30), [0.5] * 10 + [1.6] * 12 + [40.0] * 12])
    engine.update(epochs=epochs(1, train_mean=[1.4]), steps=steps[:52])
    delta = engine.update(steps=steps[52:])
    assert [(i.check, i.severity) for i in delta.escalated] == [("loss_explosion", "critical")]
    assert [i.check for i in delta.new_critical] == ["loss_explosion"]


def means(train: list[float]) -> list[EpochRecord]:
    """Epochs with these training means; each epoch's worst batch 10 % above its mean."""
    return epochs(len(train), train_mean=train, train_max=[1.1 * x for x in train])


def test_without_steps_the_epoch_means_judge_explosions_and_recovery() -> None:
    # 0.3 -> 2.5 is past the 2.2 it started from (epoch 0's worst batch): critical, active while the loss stays up
    found = active(epochs=means([2.0, 0.3, 2.5, 2.4]))
    assert found["loss_explosion"].severity == "critical" and found["loss_explosion"].first_seen_epoch == 2
    assert active(epochs=means([2.0, 0.3, 1.5, 1.5]))["loss_explosion"].severity == "warning"  # below the start
    recovered = [i for i in diagnose(means([2.0, 0.3, 2.5, 0.35])) if i.check == "loss_explosion"]
    assert [(i.active, i.last_seen_epoch) for i in recovered] == [(False, 2)]
    assert "loss_explosion" not in active(epochs=means([2.0, 0.01, 0.05]))  # 5x of a tiny loss


# ----------------------------------------------------------------------------- a healthy run is never stopped ---

@st.composite
def healthy_runs(draw: st.DrawFn) -> tuple[list[EpochRecord], list[StepRecord]]:
    """Converging runs with everything a healthy run does: noisy batches (log-normal, occasional 1.5-3x hard
    batches), a validation curve that wobbles and drifts up near the end, dead units short of a whole layer,
    a learning-rate schedule, the loss starting anywhere from a fine-tune's 0.3 to an LM's 10."""
    n = draw(st.integers(min_value=2, max_value=10))
    start = draw(st.floats(min_value=0.3, max_value=10.0))
    floor = draw(st.floats(min_value=0.001, max_value=0.5)) * start
    rate = draw(st.floats(min_value=0.3, max_value=0.95))
    per_epoch = draw(st.integers(min_value=5, max_value=40))
    sigma = draw(st.floats(min_value=0.05, max_value=0.5))
    rng = random.Random(draw(st.integers(min_value=0, max_value=2**32)))
    steps, train = [], []
    total = n * per_epoch
    for e in range(n):
        losses = []
        for k in range(per_epoch):
            t = (e * per_epoch + k) / total * n
            loss = (floor + (start - floor) * rate ** t) * math.exp(rng.gauss(0, sigma))
            if rng.random() < 0.03:
                loss *= rng.uniform(1.5, 3.0)
            losses.append(loss)
            steps.append(StepRecord(step=len(steps), epoch=e, loss=loss, grad_norm=rng.uniform(0.5, 2.0)))
        train.append(sum(losses) / len(losses))
    val = [x * rng.uniform(0.9, 1.3) + (0.02 * start * max(0, e - n + 3)) for e, x in enumerate(train)]
    dead = draw(st.floats(min_value=0.0, max_value=0.99))
    eps = epochs(n, deep=True, train_mean=train, val=lambda e: {"val_loss": val[e], "val_acc": 0.9},
                 lr=lambda e: (1e-3 * 0.5 ** e,), layers=layers(fc2={"zero_fraction": dead}))
    return eps, steps


@settings(max_examples=150, deadline=None)
@given(healthy_runs())
def test_a_healthy_run_never_gets_a_critical_issue(r: tuple[list[EpochRecord], list[StepRecord]]) -> None:
    eps, steps = r
    criticals = [(i.check, i.description) for i in diagnose(eps, steps, architecture=mlp()) if i.severity == "critical"]
    assert not criticals
