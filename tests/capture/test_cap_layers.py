"""Layer-health channel: real training steps on CPU, facts a user would notice in the numbers."""

from __future__ import annotations

import logging
import math
import statistics
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest
import torch
from _models_cap import (SmallCNN, TinyLSTM, TinyTransformer, all_hooks, mlp_batch, relu_mlp, run_epoch,
                         sigmoid_mlp, train_step)
from torch import nn

from atlas_callback._architecture import describe_model
from atlas_callback._layers import LayerHealthMonitor


def _epoch(model: nn.Module, make_batch: Callable[[], Any], steps: int = 10, every: int = 2, lr: float = 0.01,
           **kw: Any) -> Any:
    monitor = LayerHealthMonitor(model, every_n_steps=every, strict=True, **kw)
    run_epoch(model, monitor.arm, monitor.disarm, make_batch, steps, lr=lr)
    health = monitor.epoch_end()
    monitor.close()
    return {s.name: s for s in health.layers}, health


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_a_dead_relu_layer_shows_all_units_zero_and_a_healthy_one_none() -> None:
    dead = relu_mlp()
    with torch.no_grad():
        dead[0].bias.fill_(-100.0)
    rows, _ = _epoch(dead, mlp_batch)
    assert rows["0"].zero_fraction == 1.0  # named by the Linear: the ReLU after it is folded into it
    assert rows["0"].activation_std == 0.0
    assert "1" not in rows  # no separate row for the folded ReLU
    healthy, _ = _epoch(relu_mlp(), mlp_batch)
    assert healthy["0"].zero_fraction <= 0.1 and healthy["2"].zero_fraction <= 0.1
    assert healthy["4"].zero_fraction == 0.0  # the logits layer: raw outputs are never exactly zero


def test_dead_units_are_per_epoch_and_revive() -> None:
    model = relu_mlp()
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    monitor = LayerHealthMonitor(model, every_n_steps=1, strict=True)
    opt = run_epoch(model, monitor.arm, monitor.disarm, mlp_batch, 3)
    assert {s.name: s for s in monitor.epoch_end().layers}["0"].zero_fraction == 1.0
    with torch.no_grad():
        model[0].bias.zero_()
    run_epoch(model, monitor.arm, monitor.disarm, mlp_batch, 3, opt=opt)
    assert {s.name: s for s in monitor.epoch_end().layers}["0"].zero_fraction <= 0.1
    assert not monitor.epoch_end().layers  # nothing sampled since: empty, not stale numbers


@pytest.mark.parametrize(("scale", "low", "high"), [(1.0, 0.0, 0.0), (100.0, 0.4, 1.0)])
def test_sigmoid_stack_saturates_when_weights_are_scaled_up(scale: float, low: float, high: float) -> None:
    model = sigmoid_mlp()
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(scale)
    rows, _ = _epoch(model, mlp_batch, lr=1e-4)
    hidden = [rows[str(i)] for i in (0, 2, 4, 6)]
    assert all(low <= s.saturated_fraction <= high for s in hidden), [s.saturated_fraction for s in hidden]
    assert not rows["8"].HasField("saturated_fraction")  # the logits layer is no sigmoid


def test_update_ratio_grows_with_the_learning_rate() -> None:
    small, _ = _epoch(relu_mlp(), mlp_batch, lr=1e-4)
    torch.manual_seed(0)
    large, _ = _epoch(relu_mlp(), mlp_batch, lr=1.0)
    for name in ("0", "2", "4"):
        assert large[name].update_ratio > 100 * small[name].update_ratio > 0
        assert large[name].gradient_norm_mean > 0


def test_no_update_ratio_without_an_optimiser_step() -> None:
    model = relu_mlp()
    monitor = LayerHealthMonitor(model, every_n_steps=1, strict=True)
    for _ in range(2):
        assert monitor.arm(0)
        x, y = mlp_batch()
        nn.functional.cross_entropy(model(x), y).backward()  # accumulation: no optimiser step
        monitor.disarm()
    rows = {s.name: s for s in monitor.epoch_end().layers}
    assert not rows["0"].HasField("update_ratio") and rows["0"].gradient_norm_mean > 0


@pytest.mark.parametrize(("factory", "expected"), [
    (SmallCNN, ["conv1", "conv2", "fc1", "fc2"]),
    (TinyTransformer, ["embed", "encoder.self_attn", "encoder.linear1", "encoder.linear2", "encoder.norm1",
                       "encoder.norm2", "head"]),
    (TinyLSTM, ["lstm", "head"]),
    (lambda: sigmoid_mlp(2), ["0", "2", "4"]),
])
def test_every_model_kind_reports_its_layers(factory: Callable[[], nn.Module], expected: list[str]) -> None:
    model = factory()
    make_batch = getattr(model, "batch", mlp_batch)
    rows, _ = _epoch(model, make_batch, steps=6)
    assert list(rows) == expected
    assert set(rows) <= {layer.name for layer in describe_model(model).layers}
    for s in rows.values():
        assert s.samples == 3  # steps 0, 2, 4
        assert s.activation_std > 0 and s.HasField("activation_var_of_means")
        assert s.gradient_norm_mean > 0 and 0 < s.update_ratio < 1
        assert 0 <= s.weight_sparsity < 0.01 and 0 <= s.zero_fraction <= 1
        assert all(math.isfinite(v) for _, v in s.ListFields() if isinstance(v, float))


def test_conv_units_are_channels() -> None:
    model = SmallCNN()
    with torch.no_grad():
        model.conv1.bias[:2] = -100.0  # 2 of 4 channels dead after relu1
    rows, _ = _epoch(model, SmallCNN.batch, steps=4)
    assert rows["conv1"].zero_fraction == 0.5


def test_weight_sparsity_counts_zeroed_weights() -> None:
    model = relu_mlp()
    with torch.no_grad():
        model[2].weight[:4] = 0.0  # 4 of 16 rows
        model[2].weight.requires_grad_(False)
    rows, _ = _epoch(model, mlp_batch, steps=3)
    assert rows["2"].weight_sparsity == 0.25
    assert rows["0"].weight_sparsity == 0.0


def test_an_identity_layer_is_correlated_with_the_one_before() -> None:
    model = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(16))
        model[1].bias.zero_()
    model[1].requires_grad_(False)
    _, health = _epoch(model, mlp_batch, lr=1e-3)
    corr = {(c.layer_a, c.layer_b): c.correlation for c in health.correlations}
    assert set(corr) == {("0", "1"), ("1", "2")}  # equal widths only: 2 -> 4 differ
    assert corr[("0", "1")] > 0.999
    assert abs(corr[("1", "2")]) < 0.95


def test_one_sample_has_no_variance_of_means() -> None:
    rows, _ = _epoch(relu_mlp(), mlp_batch, steps=3, every=5)
    assert rows["0"].samples == 1 and not rows["0"].HasField("activation_var_of_means")


def test_two_forward_passes_in_one_step_count_as_one_sample() -> None:
    """R-Drop, SAM, consistency losses: the same batch twice per step is not two batches. One sampled step gives
    no variance of batch means (it used to read ~0 and call the layer frozen); two steps give a real one."""
    model = relu_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def twice(steps: int) -> Any:
        monitor = LayerHealthMonitor(model, every_n_steps=1, strict=True)
        for step in range(steps):
            monitor.arm(step)
            x, y = mlp_batch()
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y) + nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            monitor.disarm()
        rows = {r.name: r for r in monitor.epoch_end().layers}
        monitor.close()
        return rows

    one = twice(1)
    assert one["0"].samples == 1 and not one["0"].HasField("activation_var_of_means")
    two = twice(2)
    assert two["0"].samples == 2 and two["0"].activation_var_of_means > 1e-6


def test_hooks_exist_only_on_sampled_steps_and_nothing_is_kept_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    model = SmallCNN()
    monitor = LayerHealthMonitor(model, every_n_steps=5, strict=True)
    calls = {"_capture": 0, "_record": 0}
    for name in calls:
        def counting(self: LayerHealthMonitor, *args: Any, _name: str = name,
                     _original: Callable[..., None] = getattr(LayerHealthMonitor, name)) -> None:
            calls[_name] += 1
            _original(self, *args)

        monkeypatch.setattr(LayerHealthMonitor, name, counting)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    outputs: list[weakref.ref[torch.Tensor]] = []
    keep = model.fc1.register_forward_hook(lambda m, a, out: outputs.append(weakref.ref(out)))
    for step in range(1, 5):
        assert not monitor.arm(step)
        assert all_hooks(model) == 1  # only ours
        train_step(model, opt, SmallCNN.batch())
        monitor.disarm()
    assert calls == {"_capture": 0, "_record": 0}
    assert monitor.arm(5) and all_hooks(model) > 1
    train_step(model, opt, SmallCNN.batch())
    assert calls["_capture"] > 0 and calls["_record"] == 0  # the hooks copy; the statistics wait for disarm
    monitor.disarm()
    assert calls["_record"] > 0
    assert all_hooks(model) == 1
    keep.remove()
    assert all(ref() is None for ref in outputs)  # no activation outlives its step
    assert monitor.epoch_end().layers
    monitor.arm(10)
    monitor.close()
    monitor.close()
    assert all_hooks(model) == 0


def test_max_layers_spreads_over_the_model_keeping_first_and_last() -> None:
    model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(20)])
    rows, _ = _epoch(model, lambda: (torch.randn(4, 8), torch.randint(0, 8, (4,))), steps=2, max_layers=5)
    assert len(rows) == 5 and "0" in rows and "19" in rows


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"every_n_steps": 0}, "`every_n_steps` must be an integer >= 1, got 0"),
    ({"every_n_steps": 2.5}, "`every_n_steps` must be an integer >= 1, got 2.5"),
    ({"max_layers": 0}, "`max_layers` must be an integer >= 1, got 0"),
    ({"saturated_share": 1.5}, r"`saturated_share` must be in \(0, 1\], got 1.5"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LayerHealthMonitor(relu_mlp(), **kwargs)


def test_a_failing_hook_is_logged_once_and_training_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    def broken(self: LayerHealthMonitor, *args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(LayerHealthMonitor, "_record", broken)
    model = relu_mlp()
    monitor = LayerHealthMonitor(model, every_n_steps=1)
    with caplog.at_level(logging.WARNING, logger="atlas_callback._layers"):
        run_epoch(model, monitor.arm, monitor.disarm, mlp_batch, 4)
        health = monitor.epoch_end()
    failures = [r for r in caplog.records if "boom" in r.getMessage()]
    # once per recorded site, not once per step: the last Linear and the two ReLUs (the first two Linear layers are
    # described by their activated outputs, which the ReLUs' hooks capture)
    assert len(failures) == 3
    assert {s.name for s in health.layers} == {"0", "2", "4"}  # gradients and weights still measured
    assert all_hooks(model) == 0


def test_sampled_and_unsampled_step_cost_of_the_cnn() -> None:
    """Measured, not asserted (the machine is shared): printed with -s. Plain, unsampled and sampled steps are
    interleaved so that load from elsewhere hits all three alike."""
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = LayerHealthMonitor(model, every_n_steps=2)
    batch = SmallCNN.batch(32)
    times: dict[str, list[float]] = {"plain": [], "unsampled": [], "sampled": []}
    for i in range(40):
        for mode in ("plain", "unsampled", "sampled"):
            t0 = time.perf_counter()
            if mode != "plain":
                assert monitor.arm(2 * i + (mode == "unsampled")) == (mode == "sampled")
            train_step(model, opt, batch)
            monitor.disarm()
            times[mode].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    monitor.epoch_end()
    end = time.perf_counter() - t0
    med = {k: statistics.median(v[5:]) * 1e3 for k, v in times.items()}
    print(f"\nCNN step (batch 32), median ms: plain {med['plain']:.3f}, unsampled {med['unsampled']:.3f}, "
          f"sampled {med['sampled']:.3f}; epoch_end (40 sampled steps) {end * 1e3:.2f} ms")
    assert all(times.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_a_dead_layer_is_found_without_a_sync_per_step() -> None:
    model = relu_mlp().cuda()
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = LayerHealthMonitor(model, every_n_steps=1, strict=True)
    batches = [tuple(t.cuda() for t in mlp_batch()) for _ in range(4)]
    monitor.arm(0)  # the first sampled step builds cached index tensors (one host-to-device copy each)
    train_step(model, opt, batches[0])
    monitor.disarm()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any device synchronisation below raises
    try:
        for step, (x, y) in enumerate(batches[1:], start=1):
            monitor.arm(step)
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            monitor.disarm()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    rows = {s.name: s for s in monitor.epoch_end().layers}
    assert rows["0"].zero_fraction == 1.0 and rows["2"].gradient_norm_mean > 0
    monitor.close()
    assert all_hooks(model) == 0


class _SharedInplace(nn.Module):
    """One ``nn.ReLU(inplace=True)`` used after two layers of different widths."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(16, 16), nn.Linear(16, 32), nn.Linear(32, 10)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.act(self.b(self.act(self.a(x)))))


class _NormTanhGRU(nn.Module):
    """Conv2d -> BatchNorm2d -> Tanh, then a GRU over one spatial axis."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Tanh()
        self.gru, self.head = nn.GRU(4, 8, batch_first=True), nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.act(self.bn(self.conv(x))).mean(3).transpose(1, 2)
        return self.head(self.gru(seq)[0][:, -1])


def test_a_shared_inplace_activation_is_folded_into_each_layer_it_follows() -> None:
    model = _SharedInplace()
    with torch.no_grad():
        model.b.bias[:8] = -100.0  # 8 of b's 32 units dead after the shared ReLU
    rows, _ = _epoch(model, mlp_batch, steps=4)
    assert list(rows) == ["a", "b", "c"]
    assert rows["b"].zero_fraction == 0.25 and rows["a"].zero_fraction <= 0.1


class _ActAfterSecond(nn.Module):
    """The ReLU is registered right after `fc1` but applied to `fc2`'s output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 8)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(8, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc2(self.fc1(x))))


def test_a_layers_first_sample_describes_its_own_output_unless_an_activation_follows_it() -> None:
    # On a layer's first sampled step its output is held back until the next hook shows whether an activation
    # module follows it. One sampled step only: the numbers must be those of that very step.
    model = _ActAfterSecond()
    with torch.no_grad():
        model.fc1.bias.fill_(-5.0)  # fc1's raw outputs mostly negative: a ReLU after it would zero them
    rows, _ = _epoch(model, mlp_batch, steps=2, every=2)
    assert rows["fc1"].samples == 1 and rows["fc1"].activation_mean < -1.0  # its own (raw) output
    assert rows["fc1"].zero_fraction == 0.0
    assert rows["fc2"].activation_mean >= 0.0  # the in-place ReLU's output describes fc2
    assert "act" not in rows and rows["head"].samples == 1


def test_batchnorm_then_tanh_reports_saturation_on_the_norm_layer() -> None:
    model = _NormTanhGRU()
    with torch.no_grad():
        model.bn.weight.fill_(50.0)  # normalised outputs scaled far into tanh's flat region
    rows, _ = _epoch(model, SmallCNN.batch, steps=4, lr=1e-4)
    assert list(rows) == ["conv", "bn", "gru", "head"]
    assert rows["bn"].saturated_fraction == 1.0
    assert not rows["conv"].HasField("saturated_fraction") and rows["gru"].gradient_norm_mean > 0


def test_a_costly_sampled_step_is_sampled_less_often_and_every_epoch_keeps_a_sample(
        caplog: pytest.LogCaptureFixture) -> None:
    model = SmallCNN()
    # A budget of 0.01 % of training time: a sampled step (hooks on every layer) costs far more than that against
    # these millisecond CPU steps, so the monitor must stretch its interval, as it does for small models.
    monitor = LayerHealthMonitor(model, every_n_steps=2, cost_budget=1e-4, strict=True)
    sampled: list[int] = []

    def arm(step: int) -> bool:
        if monitor.arm(step):
            sampled.append(step)
        return True
    with caplog.at_level(logging.INFO, logger="atlas_callback._layers"):
        opt = run_epoch(model, arm, monitor.disarm, model.batch, 60)
    assert sampled[0] == 0 and len(sampled) <= 3, sampled  # not 30 samples: the interval stretched at once
    assert monitor.interval > 2 and monitor.interval % 2 == 0
    assert any("sampling every" in r.getMessage() for r in caplog.records)
    assert monitor.epoch_end().layers  # the epoch still has its statistics
    before = len(sampled)
    run_epoch(model, arm, monitor.disarm, model.batch, 4, start=60, opt=opt)
    assert sampled[before:] == [60]  # a new epoch: its first eligible step is sampled whatever the interval


def test_without_a_budget_or_with_it_lifted_every_nth_step_is_sampled() -> None:
    for budget in (None, 1.0):
        model = relu_mlp()
        monitor = LayerHealthMonitor(model, every_n_steps=3, cost_budget=budget, strict=True)
        sampled = []
        run_epoch(model, lambda step: sampled.append(step) if monitor.arm(step) else None, monitor.disarm,
                  mlp_batch, 30)
        assert sampled == list(range(0, 30, 3)) and monitor.interval == 3


@pytest.mark.parametrize("budget", [0, -0.1, 1.5, "0.01", True])
def test_a_nonsense_cost_budget_is_refused(budget: Any) -> None:
    with pytest.raises(ValueError, match="cost_budget"):
        LayerHealthMonitor(relu_mlp(), cost_budget=budget)


def test_a_step_counter_that_jumps_does_not_stop_the_sampling() -> None:
    # An Accelerate tracker's watch() arms at step 1 before a resumed loop logs step 5,000 onwards: the step time
    # must not be taken as (wall time) / (5,000 steps), which would stretch the interval past the epoch.
    model = relu_mlp()
    monitor = LayerHealthMonitor(model, every_n_steps=10, cost_budget=0.003, strict=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor.arm(1)
    sampled = []
    for step in range(5001, 5301):
        if step >= monitor.due and monitor.arm(step):
            sampled.append(step)
        train_step(model, opt, mlp_batch())
        time.sleep(0.002)  # steps of a few milliseconds, as a small model's on a CPU
        monitor.disarm()
    assert len(sampled) >= 2 and monitor.interval < 1000, (sampled, monitor.interval)


def test_evaluation_passes_between_arm_and_disarm_are_not_read() -> None:
    # Observer and AtlasTracker arm the next step at the end of the previous one: an evaluation in between (no
    # gradients) must neither enter the numbers nor pile up copies until disarm.
    def epoch(with_eval: bool) -> Any:
        torch.manual_seed(0)
        model = relu_mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        monitor = LayerHealthMonitor(model, every_n_steps=1, strict=True)
        x, y = mlp_batch()
        assert monitor.arm(1)
        if with_eval:
            with torch.no_grad():
                for _ in range(50):
                    model(x * 1000.0)
            assert monitor._captured == []
        train_step(model, opt, (x, y))
        monitor.disarm()
        health = monitor.epoch_end()
        monitor.close()
        return {s.name: s for s in health.layers}

    plain, evaluated = epoch(False), epoch(True)
    assert evaluated["0"].samples == 1
    assert evaluated["0"].activation_mean == pytest.approx(plain["0"].activation_mean, rel=1e-6)


class _InplaceAfter(nn.Module):
    """`a`'s output is changed in place by a function (not a hooked module) before `b` reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 8)
        self.b = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        torch.relu_(h)
        return self.b(h)


def test_an_output_changed_in_place_after_its_layer_is_never_reported_as_the_layers_own() -> None:
    model = _InplaceAfter()
    with torch.no_grad():
        model.a.bias.fill_(-5.0)  # raw outputs mostly negative; after the in-place ReLU mostly zero
    rows, _ = _epoch(model, mlp_batch, steps=4, every=2)  # sampled steps 2 and 4
    # the first sampled step held `a`'s output and saw it changed: no numbers that step; the second copied it at once
    assert rows["a"].samples == 1 and rows["a"].activation_mean < -1.0 and rows["a"].zero_fraction == 0.0


class _Scale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def test_an_activation_followed_by_another_keeps_its_row() -> None:
    model = nn.Sequential(nn.Linear(16, 16), _Scale(), nn.GELU(), nn.Tanh(), nn.Linear(16, 10))
    rows, _ = _epoch(model, mlp_batch, steps=2, every=1)
    assert set(rows) == {"0", "2", "4"}  # the Tanh folded into the GELU's row: its input is the GELU's output
    assert rows["2"].HasField("saturated_fraction")  # the row describes the Tanh's (saturating) output


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.mid = nn.Linear(16, 16)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mid(self.emb(x)))


def test_a_weight_two_layers_share_reports_its_true_gradient_norm() -> None:
    model = _Tied()
    monitor = LayerHealthMonitor(model, every_n_steps=1, strict=True)
    x = torch.randint(0, 50, (8, 5))
    assert monitor.arm(1)
    model(x).logsumexp(-1).sum().backward()
    true_norm = model.emb.weight.grad.norm().item()
    monitor.disarm()
    rows = {s.name: s for s in monitor.epoch_end().layers}
    monitor.close()
    assert rows["emb"].gradient_norm_mean == pytest.approx(true_norm, rel=1e-5)
    assert rows["head"].gradient_norm_mean == pytest.approx(true_norm, rel=1e-5)


@pytest.mark.parametrize(("shape", "unit_dim", "most"), [
    ((32, 16, 28, 28), 1, 16384),  # a convolution's channels
    ((4096, 1, 1024), 2, 32 * 1024),  # an inner dimension of size 1: the samples are strided instead
    ((512, 2048, 1, 1), 1, 32 * 2048),
    ((8, 512, 1000), 2, 32 * 1000),  # a vocabulary head: at least 32 positions per unit
    ((10, 16), 1, 160),  # small: copied whole
])
def test_a_captured_output_is_bounded(shape: tuple[int, ...], unit_dim: int, most: int) -> None:
    from atlas_callback._layers import _bounded

    y = torch.randn(*shape)
    copy = _bounded(y, unit_dim)
    assert copy.is_contiguous() and copy.dtype == torch.float32 and copy.shape[unit_dim] == shape[unit_dim]
    assert copy.numel() <= most and copy.data_ptr() != y.data_ptr()
