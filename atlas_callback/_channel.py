"""The trainer's channels: the `Channel` interface and the registry `RunCore` builds its channels from.

A channel measures one aspect of a run (GPU, carbon, logs, system, layer health, profiler, setup facts) and, at
every epoch end, writes its part into the `EpochSummary` proto. `RunCore` holds the run's channels in one ordered
mapping built from `REGISTRY`; at an epoch end it asks each to `contribute`, at the run's end it closes each. A
failing channel is logged (rate-limited) and skipped: it never stops the others, nor the trainer.

Adding a per-epoch channel: a new module with a class that has `contribute(summary)` and `close()`, one
`ChannelSpec` line in `REGISTRY` below (and its `track_*` switch in `AtlasConfig`), its field of `EpochSummary` in
`proto/atlas_proto/v1/telemetry.proto`, and its conversion to the diagnostics record in `proto/atlas_proto/convert.py`
(`epoch_record`) if a check reads it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, Protocol

from atlas_proto.v1 import telemetry_pb2 as tpb

from ._stats import system_snapshot

if TYPE_CHECKING:
    from ._core import RunCore


class Channel(Protocol):
    """One measuring channel of a run.

    Life cycle: built and started by its `ChannelSpec.build` (given the `RunCore`: its config, rank, device kind,
    model and transport), `contribute(summary)` at every epoch end, `close()` once at the run's end (it must be
    safe to call twice and never block for long).

    Per-step work is not part of this interface: the step is the trainer's hot path, and a call through a list of
    channels at every step would cost every run. The channels that act around a step (layer health arms its hooks
    on sampled steps, the profiler profiles chosen steps, the facts probe watches the first steps and the model's
    output) are reached there through direct attributes of `RunCore` (`_layers`, `_profiler`, `facts`) that are
    set when they are built and read once per step; the other channels work on their own threads (GPU, carbon),
    in logging handlers (logs) or only at epoch end (system).

    The shape tracer (`_architecture.ShapeTracer`) is not a channel: it is one-shot (the first forward pass), it
    writes the `ModelInfo` sent once at the run's start, not the epoch summary, and it is released after the first
    step; `RunCore` keeps it apart."""

    def contribute(self, summary: tpb.EpochSummary) -> None:
        """Write this channel's part of the epoch ending into `summary` (and reset its per-epoch state)."""

    def close(self) -> None:
        """Stop measuring and free what the channel holds (threads, hooks, handlers)."""


@dataclass(frozen=True)
class ChannelSpec:
    """How a channel is made: `stage` "run" channels are built when the run starts, "model" channels when the model
    is attached (rank zero only, the model is `core._model`); `wanted(core)` says whether this run has the channel;
    `build(core)` makes and starts it."""

    name: str
    stage: Literal["run", "model"]
    wanted: Callable[["RunCore"], bool]
    build: Callable[["RunCore"], Channel]


class SystemChannel:
    """Process memory, CPU and RAM use, read at the epoch end (`_stats.system_snapshot`)."""

    def contribute(self, summary: tpb.EpochSummary) -> None:
        system_snapshot(summary)

    def close(self) -> None:
        """Nothing held."""


def _gpu(core: "RunCore") -> Channel:
    from ._gpu import GpuMonitor

    monitor = GpuMonitor()
    monitor.start()
    return monitor


def _carbon(core: "RunCore") -> Channel:
    from ._carbon import CarbonMeter

    meter = CarbonMeter(core.config.carbon_country)
    meter.start()
    return meter


def _logs(core: "RunCore") -> Channel:
    from ._logs import LogCapture

    capture = LogCapture(core.send_log)
    capture.attach()
    return capture


def _layers(core: "RunCore") -> Channel:
    from ._layers import LayerHealthMonitor

    cfg = core.config
    return LayerHealthMonitor(core._model, every_n_steps=cfg.layer_health_every, max_layers=cfg.layer_health_max_layers,
                              cost_budget=cfg.layer_health_budget)


def _profiler(core: "RunCore") -> Channel:
    from ._profiler import StepProfiler

    return StepProfiler(core._model, every_n_epochs=core.config.profile_every_epochs)


def _facts(core: "RunCore") -> Channel:
    from ._facts import FactsProbe

    return FactsProbe(core._model)


# The order is the order of the contributions to the epoch summary (each writes its own fields).
REGISTRY: tuple[ChannelSpec, ...] = (
    ChannelSpec("system", "run", lambda core: core.config.track_system, lambda core: SystemChannel()),
    ChannelSpec("gpu", "run", lambda core: core.config.track_gpu, _gpu),
    # Logs are captured on rank zero only (the other ranks log the same lines); carbon is measured on rank zero and
    # on every rank that owns a GPU (each measures its own device).
    ChannelSpec("logs", "run", lambda core: core.config.track_logs and core.rank == 0, _logs),
    ChannelSpec("carbon", "run",
                lambda core: core.config.track_carbon and (core.rank == 0 or core.device_kind == "cuda"), _carbon),
    ChannelSpec("layers", "model", lambda core: core.config.track_layer_health, _layers),
    ChannelSpec("facts", "model", lambda core: core.config.track_facts, _facts),
    ChannelSpec("profiler", "model", lambda core: core.config.track_profiler, _profiler),
)

SPECS = {spec.name: spec for spec in REGISTRY}
