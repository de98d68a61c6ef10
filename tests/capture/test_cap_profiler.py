"""Profiler channel: real torch.profiler runs over one training step of small CPU models."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch
from _models_cap import SmallCNN, TinyLSTM, TinyTransformer, all_hooks, train_step
from torch import nn

from atlas_callback._architecture import describe_model
from atlas_callback._profiler import StepProfiler


def _profiled(model: nn.Module, make_batch: Callable[[], Any], *, defer: bool = False) -> tuple[Any, StepProfiler]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    train_step(model, opt, make_batch())  # step 0: warm-up, as the default schedule skips it
    profiler = StepProfiler(model, strict=True)
    assert profiler.start(step=1) and profiler.active
    train_step(model, opt, make_batch())
    summary = profiler.stop(defer=defer)
    return summary, profiler


@pytest.mark.parametrize(("epoch", "step", "expected"), [
    (0, 1, True), (0, 0, False), (0, 2, False), (5, 1, True), (10, 1, True), (3, 1, False), (4, 1, False),
])
def test_default_schedule_is_step_1_of_every_fifth_epoch(epoch: int, step: int, expected: bool) -> None:
    assert StepProfiler(nn.Linear(2, 2)).should_profile(epoch, step) is expected


def test_custom_schedule() -> None:
    profiler = StepProfiler(nn.Linear(2, 2), steps_in_epoch={0, 3}, every_n_epochs=2)
    assert [profiler.should_profile(e, s) for e, s in [(0, 0), (0, 3), (2, 3), (1, 0), (2, 1)]] == [
        True, True, True, False, False]


@pytest.mark.parametrize(("factory", "must_name"), [
    (SmallCNN, {"conv1", "conv2", "fc1", "fc2"}),
    (TinyTransformer, {"embed", "encoder.self_attn", "encoder.linear1", "head"}),
    (TinyLSTM, {"lstm", "head"}),
])
def test_summary_has_forward_backward_ops_and_layer_shares(factory: Callable[[], nn.Module],
                                                           must_name: set[str]) -> None:
    torch.manual_seed(0)
    model = factory()
    summary, _ = _profiled(model, model.batch)  # type: ignore[attr-defined]
    assert summary.step == 1
    assert summary.forward_ms > 0 and summary.backward_ms > 0
    assert summary.total_cpu_time_ms >= summary.forward_ms + summary.backward_ms
    assert summary.total_cuda_time_ms == 0.0
    assert summary.top_ops and all(op.calls >= 1 and op.cpu_time_ms >= 0 for op in summary.top_ops)
    assert not any(op.name.startswith("atlas::") for op in summary.top_ops)
    assert sum(op.pct_total for op in summary.top_ops) <= 100.0 + 1e-6
    assert [op.cpu_time_ms for op in summary.top_ops] == sorted((op.cpu_time_ms for op in summary.top_ops),
                                                                reverse=True)
    names = {lt.name for lt in summary.per_layer}
    assert must_name <= names <= {layer.name for layer in describe_model(model).layers}
    assert 0 < sum(lt.pct_total for lt in summary.per_layer) <= 100.0 + 1e-6
    assert all(lt.time_ms > 0 for lt in summary.per_layer)
    assert all_hooks(model) == 0


def test_backward_time_is_attributed_to_the_layers() -> None:
    model = SmallCNN()
    summary, _ = _profiled(model, SmallCNN.batch)
    layer_ms = sum(lt.time_ms for lt in summary.per_layer)
    assert layer_ms > summary.forward_ms * 0.5  # forward alone could not be this much with the loss outside


def test_deferred_summary_is_built_once_and_its_cost_is_printed() -> None:
    model = SmallCNN()
    nothing, profiler = _profiled(model, SmallCNN.batch, defer=True)
    assert nothing is None and not profiler.active
    t0 = time.perf_counter()
    summary = profiler.summarise()
    cost = time.perf_counter() - t0
    print(f"\nprofiler summarise (SmallCNN, one step): {cost * 1e3:.1f} ms")
    assert summary is not None and summary.per_layer
    assert profiler.summarise() is None


def test_stop_without_start_and_close_twice_are_harmless() -> None:
    model = SmallCNN()
    profiler = StepProfiler(model, strict=True)
    assert profiler.stop() is None
    assert profiler.start()
    profiler.close()
    profiler.close()
    assert not profiler.active and all_hooks(model) == 0


def test_a_running_user_profiler_makes_start_decline_quietly(caplog: pytest.LogCaptureFixture) -> None:
    model = SmallCNN()
    profiler = StepProfiler(model)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
        with caplog.at_level(logging.WARNING, logger="atlas_callback._profiler"):
            assert profiler.start() is False
        model(SmallCNN.batch()[0])
    assert "another torch profiler is running" in caplog.text
    assert all_hooks(model) == 0 and profiler.stop() is None


def test_a_forward_that_raises_leaves_no_hook_behind() -> None:
    model = SmallCNN()
    profiler = StepProfiler(model, strict=True)
    profiler.start()
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 3, 12, 12))  # wrong channel count
    summary = profiler.stop()
    assert summary is not None and all_hooks(model) == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"every_n_epochs": 0}, "`every_n_epochs` must be an integer >= 1, got 0"),
    ({"steps_in_epoch": set()}, "`steps_in_epoch` must be a non-empty set of integers >= 0, got set()"),
    ({"steps_in_epoch": {-1}}, r"`steps_in_epoch` must be a non-empty set of integers >= 0, got \{-1\}"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StepProfiler(nn.Linear(2, 2), **kwargs)
