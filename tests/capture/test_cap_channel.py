"""The trainer's channels (`atlas_callback._channel`): RunCore builds them from the registry, asks each for its
part of every epoch summary and closes each at the end; a failing channel never stops the others nor the run."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from atlas_callback import AtlasConfig
from atlas_callback import _channel
from atlas_callback._channel import REGISTRY, ChannelSpec
from atlas_callback._core import RunCore
from atlas_callback._options import RunOptions

QUIET = AtlasConfig(track_gpu=False, track_carbon=False, track_logs=False, track_layer_health=False,
                    track_profiler=False, track_facts=False, track_architecture=False)


class _Probe:
    """A channel that writes one fact, or fails at every call when `fail`."""

    def __init__(self, key: str, fail: bool = False) -> None:
        self.key, self.fail, self.closed, self.epochs = key, fail, 0, []

    def contribute(self, summary) -> None:
        if self.fail:
            raise RuntimeError(f"{self.key} broke")
        self.epochs.append(summary.epoch)
        summary.facts.update({self.key: {"epoch": summary.epoch}})

    def close(self) -> None:
        self.closed += 1
        if self.fail:
            raise RuntimeError(f"{self.key} broke closing")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_MODE", "offline")
    monkeypatch.setenv("ATLAS_HOME", str(tmp_path))


def _run(monkeypatch, specs, config=QUIET):
    monkeypatch.setattr("atlas_callback._core.REGISTRY", tuple(specs))
    core = RunCore("pytorch", RunOptions(project="channels", config=config))
    sent = []
    core.start()
    original = core.transport.send
    monkeypatch.setattr(core.transport, "send", lambda kind, body: (sent.append((kind, body)), original(kind, body)))
    return core, sent


def test_every_channel_contributes_and_a_failing_one_stops_nothing(offline, monkeypatch) -> None:
    good, bad, late = _Probe("good"), _Probe("bad", fail=True), _Probe("late")
    core, sent = _run(monkeypatch, [
        ChannelSpec("good", "run", lambda core: True, lambda core: good),
        ChannelSpec("bad", "run", lambda core: True, lambda core: bad),
        ChannelSpec("off", "run", lambda core: False, lambda core: pytest.fail("an unwanted channel was built")),
        ChannelSpec("late", "model", lambda core: True, lambda core: late),
    ])
    assert core.channel("good") is good and core.channel("late") is None  # model channels wait for the model
    core.attach_model(nn.Linear(2, 1))
    assert core.channel("late") is late
    for epoch in range(2):
        core.epoch_start(epoch)
        core.step(torch.tensor(1.0))
        core.epoch_end()
    summaries = [body for kind, body in sent if kind == "epoch_summary"]
    assert [dict(s.facts) for s in summaries] == [
        {"good": {"epoch": float(e)}, "late": {"epoch": float(e)}} for e in range(2)]
    core.end()
    assert (good.closed, bad.closed, late.closed) == (1, 1, 1)
    assert core.channel("good") is None
    assert [kind for kind, _ in sent][-1] == "run_end"


def test_a_channel_that_cannot_start_is_left_out(offline, monkeypatch) -> None:
    def broken(core):
        raise OSError("no such device")

    good = _Probe("good")
    core, sent = _run(monkeypatch, [ChannelSpec("broken", "run", lambda core: True, broken),
                                    ChannelSpec("good", "run", lambda core: True, lambda core: good)])
    assert core.started and core.channel("broken") is None and core.channel("good") is good
    core.epoch_end(0)
    core.end()
    assert [dict(body.facts) for kind, body in sent if kind == "epoch_summary"] == [{"good": {"epoch": 0.0}}]


def test_the_registry_follows_the_config(offline, monkeypatch) -> None:
    everything = AtlasConfig(track_gpu=True, track_carbon=False, track_logs=True, track_layer_health=True,
                             track_profiler=True, track_facts=True, track_system=True)
    core = RunCore("pytorch", RunOptions(project="channels", config=everything))
    core.start()
    assert {"system", "gpu", "logs"} <= set(core._channels) and "carbon" not in core._channels
    core.attach_model(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)))
    # the channels that act around a step are reached directly on the hot path, and are the registry's
    assert core._layers is core.channel("layers") is not None
    assert core.facts is core.channel("facts") is not None
    assert core._profiler is core.channel("profiler") is not None
    core.end()
    assert core._channels == {} and core._layers is core.facts is core._profiler is None


def test_logs_captured_early_are_dropped_on_a_run_that_never_starts(offline) -> None:
    core = RunCore("pytorch", RunOptions(config=dataclasses.replace(QUIET, track_logs=True)))
    core.capture_logs_early()
    capture = core.channel("logs")
    import logging

    assert capture in logging.getLogger().handlers
    core.end()
    assert capture not in logging.getLogger().handlers and core.channel("logs") is None


def test_every_registered_channel_has_the_interface() -> None:
    names = [spec.name for spec in REGISTRY]
    assert names == ["system", "gpu", "logs", "carbon", "layers", "facts", "profiler"]
    assert _channel.SPECS.keys() == set(names)
    from atlas_callback._carbon import CarbonMeter
    from atlas_callback._facts import FactsProbe
    from atlas_callback._gpu import GpuMonitor
    from atlas_callback._layers import LayerHealthMonitor
    from atlas_callback._logs import LogCapture
    from atlas_callback._profiler import StepProfiler

    for cls in (_channel.SystemChannel, GpuMonitor, LogCapture, CarbonMeter, LayerHealthMonitor, FactsProbe,
                StepProfiler):
        assert callable(getattr(cls, "contribute", None)) and callable(getattr(cls, "close", None)), cls
