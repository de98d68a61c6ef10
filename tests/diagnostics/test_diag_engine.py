"""The incremental engine: healthy runs read healthy, issues persist as one and clear, deltas, incremental equals
batch, bounded state."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from diag_synth import CUDA, epochs, mlp, steps_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas_diagnostics import (
    Engine,
    EpochRecord,
    LogRecord,
    StepRecord,
    Thresholds,
    UnknownCheckError,
    diagnose,
    health_score,
)


def test_healthy_run_has_no_issue_at_all() -> None:
    for deep, cuda in ((False, False), (True, False), (True, True)):
        eps = epochs(12, deep=deep, cuda=cuda)
        issues = diagnose(eps, steps_for(eps), architecture=mlp(), run_info=CUDA if cuda else None, now=1125.0)
        assert issues == (), [(i.check, i.description) for i in issues]


def test_converging_healthy_run_scores_high_without_warnings() -> None:
    # exponential convergence over 20 epochs, validation tracking training: info at most
    eps = epochs(20, deep=True, train_mean=lambda e: 0.2 + 2 * 0.8 ** e,
                 val=lambda e: {"val_loss": 0.25 + 2 * 0.8 ** e, "val_acc": 0.9 - 0.5 * 0.8 ** e})
    issues = diagnose(eps, steps_for(eps), architecture=mlp())
    assert not [i for i in issues if i.severity in ("critical", "warning")], issues
    assert health_score(issues) >= 80


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=-0.01, max_value=0.01), min_size=60, max_size=60))
def test_noisy_healthy_run_reads_healthy(noise: list[float]) -> None:
    # 15 epochs of exponential convergence with +-1 % jitter on every epoch-level number: no warning, no critical
    n = 15
    train = [(0.2 + 2 * 0.85 ** e) * (1 + noise[e]) for e in range(n)]
    val = [(0.3 + 2 * 0.85 ** e) * (1 + noise[n + e]) for e in range(n)]
    eps = epochs(n, deep=True, train_mean=train, val=lambda e: {"val_loss": val[e]},
                 train_std=lambda e: 0.1 * train[e], train_max=lambda e: 1.3 * train[e],
                 duration_seconds=lambda e: 10 * (1 + 5 * noise[2 * n + e]),
                 samples_per_sec=lambda e: 1000 * (1 + 5 * noise[3 * n + e]))
    issues = diagnose(eps, steps_for(eps), architecture=mlp())
    assert [i.check for i in issues if i.severity != "info"] == []
    assert health_score(issues) >= 90


def test_persistent_issue_is_one_issue_with_first_and_last_epoch() -> None:
    engine = Engine()
    rss = [900.0, 1000, 1100, 1300, 1400, 1500, 1600]
    for rec in epochs(7, process_rss_mb=rss):
        engine.update(epochs=[rec])
    found = [i for i in engine.issues() if i.check == "memory_growth"]
    assert len(found) == 1
    assert (found[0].first_seen_epoch, found[0].last_seen_epoch, found[0].active) == (3, 6, True)
    assert health_score(engine.issues()) == 93


def test_issue_clears_and_comes_back() -> None:
    engine = Engine()
    sps = [1000.0, 1000, 1000, 700, 700, 1000, 1000, 600, 600]
    deltas = [engine.update(epochs=[rec]) for rec in epochs(9, samples_per_sec=sps)]
    assert [i.check for i in deltas[4].new] == ["throughput_degradation"]
    assert [i.check for i in deltas[5].cleared] == ["throughput_degradation"]
    assert not deltas[5].cleared[0].active
    assert health_score(engine.issues()) == 93
    assert [i.check for i in deltas[8].new] == ["throughput_degradation"]  # active again: new for the policy
    issue = engine.issues()[0]
    assert (issue.first_seen_epoch, issue.last_seen_epoch, issue.active) == (4, 8, True)


def test_cleared_issue_does_not_count_in_the_score() -> None:
    engine = Engine()
    engine.update(epochs=epochs(6, samples_per_sec=[1000.0, 1000, 1000, 700, 700, 1000]))
    assert [i.active for i in engine.issues()] == [False]
    assert health_score(engine.issues()) == 100
    assert engine.issues(active_only=True) == ()


def test_delta_reports_new_critical_and_updates() -> None:
    engine = Engine()
    eps = epochs(4)
    engine.update(epochs=eps[:2])
    delta = engine.update(steps=[StepRecord(step=30, epoch=2, loss=math.nan)])
    assert [i.check for i in delta.new_critical] == ["nan_loss"]
    assert delta.new[0].step == 30
    delta = engine.update(steps=[StepRecord(step=31, epoch=2, loss=math.nan)])
    assert not delta  # the same fault on the next batch: the issue keeps its first step
    delta = engine.update(epochs=[replace(eps[2], train_mean=math.nan)])
    assert not delta.new and not delta.cleared  # the NaN epoch mean is the step-level fault, not a second issue
    assert [(i.check, i.step) for i in engine.issues()] == [("nan_loss", 30)]
    delta = engine.update(epochs=[eps[3]])
    assert [i.check for i in delta.cleared] == ["nan_loss"]
    assert not engine.update()  # nothing new: an empty delta is falsy


def test_a_later_epochs_step_is_not_cleared_by_an_earlier_epoch() -> None:
    engine = Engine()
    eps = epochs(3)
    engine.update(epochs=eps[:1])
    engine.update(steps=[StepRecord(step=50, epoch=2, loss=math.inf)])  # epoch 2's step arrives early
    engine.update(epochs=[eps[1]])  # epoch 1 was fine
    assert [(i.check, i.active) for i in engine.issues()] == [("nan_loss", True)]


def test_replayed_epoch_is_judged_once() -> None:
    engine = Engine()
    eps = epochs(5, process_rss_mb=[900.0, 1000, 1100, 1200, 1300])
    engine.update(epochs=eps)
    before = engine.issues()
    delta = engine.update(epochs=[replace(eps[2], process_rss_mb=5000.0), eps[4]])
    assert not delta and engine.issues() == before
    assert engine.state.epochs_seen == 5


@pytest.mark.parametrize("accumulation, fires", [(1, True), (8, False)])
def test_gradient_accumulation_is_not_an_exploding_gradient(accumulation: int, fires: bool) -> None:
    # grad_norm measured on 8 accumulated micro-batches is 8x larger; judged per micro-batch it is unchanged
    th = Thresholds.from_mapping({"exploding_grad_ratio": 5.0})
    eps = epochs(5, grad_norm=[1.0, 1.1, 0.9, 1.0, 8.0], grad_accumulation=[1, 1, 1, 1, accumulation])
    assert ("exploding_gradients" in {i.check for i in diagnose(eps, thresholds=th)}) is fires


def test_stalled_training_uses_the_callers_clock() -> None:
    engine = Engine(thresholds=Thresholds.from_mapping({"stalled_seconds": 600}))
    eps = epochs(3)  # last end_time 1030
    engine.update(epochs=eps[:2], now=1030.0)
    delta = engine.update(now=1020.0 + 601)
    assert [i.check for i in delta.new] == ["stalled_training"]
    assert "601 s" in delta.new[0].description
    delta = engine.update(logs=[LogRecord("INFO", "alive", epoch=2, time=1700.0)], now=1710.0)
    assert [i.check for i in delta.cleared] == ["stalled_training"]


def test_error_logs_are_sticky_and_counted_once() -> None:
    engine = Engine()
    eps = epochs(4, log_error_count=[0, 2, 0, 0])
    logs = [LogRecord("ERROR", "CUDA out of memory", epoch=1), LogRecord("CRITICAL", "worker died", epoch=1)]
    engine.update(epochs=eps[:2], logs=logs)
    engine.update(epochs=eps[2:])
    (issue,) = engine.issues()
    assert issue.check == "error_logs" and issue.active and issue.metric_value == 2
    assert "CUDA out of memory" in issue.description and "worker died" in issue.description


def test_architecture_detection_and_rerun_on_change() -> None:
    from diag_synth import cnn, conv
    engine = Engine()
    engine.update(architecture=cnn(conv("c1"), conv("c2"), conv("c3")))
    assert engine.arch_type == "cnn"
    assert [i.check for i in engine.issues()] == ["missing_pooling"]
    assert engine.issues()[0].first_seen_epoch is None  # session-level
    delta = engine.update(architecture=mlp())
    assert engine.arch_type == "generic"
    assert [i.check for i in delta.cleared] == ["missing_pooling"]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epochs=[{"epoch": 0}]), TypeError, "`epochs` must hold EpochRecord"),
    (dict(steps=[EpochRecord(epoch=0)]), TypeError, "`steps` must hold StepRecord"),
    (dict(architecture={"layers": []}), TypeError, "`architecture` must be an Architecture"),
    (dict(now=math.nan), TypeError, "`now` must be a finite number"),
])
def test_update_rejects_wrong_input(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Engine().update(**kwargs)


def test_engine_arguments_are_validated() -> None:
    with pytest.raises(UnknownCheckError, match="unknown check 'nan_los'"):
        Engine(disabled_checks=["nan_los"])
    with pytest.raises(TypeError, match="`thresholds` must be a Thresholds"):
        Engine(thresholds={"loss_explosion_ratio": 3})  # type: ignore[arg-type]
    engine = Engine(disabled_checks=["loss_explosion"])
    engine.update(epochs=epochs(3, train_mean=[1.0, 0.9, 2.0]))
    assert "loss_explosion" not in {i.check for i in engine.issues()}


def test_state_stays_bounded() -> None:
    engine = Engine()
    eps = epochs(15)
    for k in range(400):
        rec = replace(eps[k % 15], epoch=k, end_time=1000.0 + 10 * k)
        engine.update(epochs=[rec], steps=[StepRecord(step=k, epoch=k, loss=1.0, grad_norm=1.0)])
    s = engine.state
    assert len(s.window) == s.window.maxlen and s.window.maxlen < 30
    assert len(s.step_fired) <= 8 and len(s.steps_seen) <= 9 and len(s.rank_durations) <= 9
    assert len(s.grad_history) <= engine.thresholds.exploding_grad_history


# ------------------------------------------------------------------------------- incremental == batch ---------
finite_loss = st.floats(min_value=0.01, max_value=5.0)
loss_value = st.one_of(finite_loss, finite_loss, finite_loss, st.just(math.nan))


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[EpochRecord], list[StepRecord], list[LogRecord], list[int]]:
    n = draw(st.integers(min_value=1, max_value=10))
    losses = draw(st.lists(loss_value, min_size=n, max_size=n))
    vals = draw(st.lists(finite_loss, min_size=n, max_size=n))
    sps = draw(st.lists(st.floats(min_value=100, max_value=1000), min_size=n, max_size=n))
    rss = draw(st.lists(st.floats(min_value=500, max_value=2000), min_size=n, max_size=n))
    dur = draw(st.lists(st.floats(min_value=1, max_value=30), min_size=n, max_size=n))
    zero = draw(st.lists(st.sampled_from([0.1, 0.6]), min_size=n, max_size=n))
    eps = epochs(n, deep=True, train_mean=losses, val=lambda e: {"val_loss": vals[e]}, samples_per_sec=sps,
                 process_rss_mb=rss, duration_seconds=dur)
    eps = [replace(r, layers={**r.layers, "fc2": replace(r.layers["fc2"], zero_fraction=zero[r.epoch])})
           for r in eps]
    steps = []
    for r in eps:
        for k in range(draw(st.integers(min_value=0, max_value=3))):
            steps.append(StepRecord(step=len(steps), epoch=r.epoch, loss=draw(loss_value),
                                    grad_norm=draw(st.sampled_from([1.0, 1.2, 5e5, math.inf])),
                                    amp_skipped=draw(st.booleans())))
    logs = [LogRecord(draw(st.sampled_from(["INFO", "ERROR"])), "msg", epoch=r.epoch) for r in eps
            if draw(st.booleans())]
    cuts = sorted(set(draw(st.lists(st.integers(min_value=0, max_value=n), max_size=4))))
    return eps, steps, logs, cuts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_incremental_equals_batch(run: tuple[list[EpochRecord], list[StepRecord], list[LogRecord], list[int]]) -> None:
    eps, steps, logs, cuts = run
    batch = diagnose(eps, steps, logs, architecture=mlp())
    engine = Engine()
    engine.update(architecture=mlp())
    bounds = [0, *cuts, len(eps)]
    for lo, hi in zip(bounds, bounds[1:]):
        chunk = set(range(lo, hi))
        # records arrive in the order the trainer sends them: an epoch's steps and logs before its summary
        engine.update(epochs=[r for r in eps if r.epoch in chunk], steps=[s for s in steps if s.epoch in chunk],
                      logs=[g for g in logs if g.epoch in chunk])
    assert [i.to_dict() for i in engine.issues()] == [i.to_dict() for i in batch]


@settings(max_examples=30, deadline=None)
@given(runs())
def test_one_record_at_a_time_equals_batch(run: Any) -> None:
    eps, steps, logs, _ = run
    batch = diagnose(eps, steps, logs)
    engine = Engine()
    for r in eps:
        for s in (s for s in steps if s.epoch == r.epoch):
            engine.update(steps=[s])
        engine.update(logs=[g for g in logs if g.epoch == r.epoch])
        engine.update(epochs=[r])
    assert [i.to_dict() for i in engine.issues()] == [i.to_dict() for i in batch]
