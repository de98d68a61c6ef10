"""The epoch accumulator: the epoch's statistics are exactly those of the steps it recorded, however the steps were
grouped into hand-offs (the statistics are folded in at each hand-off, not on the step)."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time

import pytest
import torch

from atlas_callback import AtlasConfig
from atlas_callback._stats import EpochAccumulator

LOSSES = [2.5, 2.25, float("nan"), 1.75, 1.5, float("inf"), 1.25, 1.0, 0.75, 0.5]
BATCHES = [32, 32, 32, 32, 32, 32, 32, 32, 32, 7]  # the last batch is short


def _run(flush_s: float, as_tensors: bool) -> tuple[object, list[object], list[tuple[int, float]]]:
    sent: list[object] = []
    nonfinite: list[tuple[int, float]] = []
    config = dataclasses.replace(AtlasConfig(), step_flush_seconds=flush_s)
    acc = EpochAccumulator(config, sent.extend, on_nonfinite=lambda step, loss: nonfinite.append((step, loss)))
    acc.begin(3)
    before = time.time_ns()
    for i, (loss, batch) in enumerate(zip(LOSSES, BATCHES)):
        value = torch.tensor(loss) if as_tensors else loss
        grad_norm = torch.tensor(float(i)) if as_tensors and i % 2 == 0 else (float(i) if i % 2 == 0 else None)
        acc.step(value, 100 + i, batch, 16, 0.1 / (i + 1), None, grad_norm)
    summary = acc.finish(3, global_step=109, val_metrics={}, train_metrics={}, lrs=[0.01])
    after = time.time_ns()
    for sample in sent:
        assert before <= sample.time.ToNanoseconds() <= after  # wall-clock times, from the step's perf_counter
    return summary, sent, nonfinite


@pytest.mark.parametrize("flush_s", [1e-9, 3600.0], ids=["a hand-off every step", "one hand-off at epoch end"])
@pytest.mark.parametrize("as_tensors", [False, True], ids=["floats", "CPU tensors"])
def test_the_epoch_statistics_are_those_of_its_steps(flush_s: float, as_tensors: bool) -> None:
    summary, sent, nonfinite = _run(flush_s, as_tensors)
    finite = [x for x in LOSSES if math.isfinite(x)]
    loss = summary.loss
    assert (loss.count, loss.nonfinite_count) == (len(finite), 2)
    assert math.isnan(loss.mean)  # an epoch with a non-finite loss has no mean to show
    assert loss.std == pytest.approx(statistics.pstdev(finite), rel=1e-12)
    assert (loss.min, loss.max) == (min(finite), max(finite))
    assert summary.grad_norm == pytest.approx(statistics.fmean([0.0, 2.0, 4.0, 6.0, 8.0]))
    t = summary.throughput
    assert (t.batches, t.samples_processed) == (10, sum(BATCHES))
    assert t.tokens_per_sec == pytest.approx(t.samples_per_sec * 16, rel=1e-9)
    assert 0 < t.step_time_p50_s <= t.step_time_p95_s <= t.step_time_max_s
    # every step handed off once, in order, with its own numbers; the non-finite ones reported at once
    assert [s.step for s in sent] == list(range(100, 110)) and {s.epoch for s in sent} == {3}
    got = [s.loss for s in sent]
    assert [x for x in got if math.isfinite(x)] == finite and sum(math.isnan(x) for x in got) == 1
    assert [s.batch_size for s in sent] == BATCHES and sent[9].lr == pytest.approx(0.01)
    assert [s.step for s in sent if s.HasField("grad_norm")] == [100, 102, 104, 106, 108]
    times = [s.time.ToNanoseconds() for s in sent]
    assert times == sorted(times) and not sent[0].HasField("step_time_s") and sent[1].step_time_s > 0
    assert [step for step, _ in nonfinite] == [102, 105]


def test_a_tensor_learning_rate_is_read_at_its_step_and_an_unreadable_loss_still_counts_the_step() -> None:
    sent: list[object] = []
    acc = EpochAccumulator(dataclasses.replace(AtlasConfig(), step_flush_seconds=3600.0), sent.extend)
    lr = torch.tensor(0.1)  # schedulers with a tensor lr change it in place
    for i, value in enumerate([0.1, 0.2, 0.3]):
        lr.fill_(value)
        loss: object = torch.ones(4) if i == 1 else float(i)  # step 1: a loss vector, not a scalar
        acc.step(loss, i + 1, 16, None, lr, None)
    summary = acc.finish(0, global_step=3, val_metrics={}, train_metrics={}, lrs=[])
    assert [s.lr for s in sent] == pytest.approx([0.1, 0.2, 0.3])
    assert [s.HasField("loss") for s in sent] == [True, False, True]
    assert summary.throughput.samples_processed == 48 and summary.loss.count == 2
