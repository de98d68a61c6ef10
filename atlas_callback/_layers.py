"""The layer-health channel: sampled activation, gradient and weight statistics per layer.

``LayerHealthMonitor(model)`` costs nothing on steps that are not sampled: no hook exists then. On a sampled step
(``step % every_n_steps == 0``; see the cost budget below) ``arm(step)`` installs forward hooks on the chosen
layers, gradient hooks on their parameters and takes a copy of their weights; ``disarm()`` (after the backward pass
and the optimiser step) reads the weights again and removes every hook and copy. A forward hook only takes a bounded
copy of the output on the device (see ``_bounded``: 64 KB for most outputs, up to 6.4 MB for a 50,000-word head);
forward passes without gradients (an evaluation between steps) are not read;
``disarm`` computes every statistic of the step from those copies in one place, where each kind of operation runs
warm after its first use instead of cold after every layer's own kernels (on a CPU the first call of an operation
after a convolution costs ~20 us more than the next). The copies also keep in-place changes made later in the
forward pass (``ReLU(inplace=True)``) out of a layer's numbers. (On a layer's first sampled step only, its output
is held until the next hook shows whether an activation module follows it, see ``MAX_DEFERRED_ELEMENTS``: the
activated output then describes it and the raw one is never copied; an output changed in place before that has no
numbers that step.) A gradient hook keeps the gradient's norm only: holding the gradient itself would make autograd
store a copy of it in ``.grad``.
``disarm`` stacks the step's numbers into one small device vector; nothing is copied to the host during training:
``epoch_end()`` concatenates what the epoch gathered and copies it once, then aggregates (per-layer sums of
per-parameter norms included).

Cost budget: with ``cost_budget`` (a share of training time, e.g. 0.003) the monitor measures what a sampled step
costs it (the CPU time of the training thread inside ``arm``, the hooks and ``disarm``) against the wall time of the
steps that are not sampled, and samples less often than every ``every_n_steps`` steps (a multiple of it) when
sampling that often would take more than the budget: a small model on a CPU, whose steps take milliseconds, is then
sampled every few dozen steps, a large one on a GPU every ``every_n_steps``. The first eligible step of every epoch
is always sampled, so every epoch has its statistics. The interval in force is ``interval``; changes are logged.
A budget of 1 (or None) lifts the limit: every ``every_n_steps``-th step is sampled whatever it costs.

Which layers: every layer (``_architecture.iter_layers``) that holds parameters, except dropout, at most
``max_layers`` of them, evenly spread over the model when there are more (the first and the last are always kept),
plus activation modules (``nn.ReLU``, ``nn.Sigmoid``, ``nn.Tanh``, ``nn.GELU``...). An activation module whose input
is the output of the hooked layer that ran just before it (``fc1 -> relu1``, a shared ``self.relu`` too) is folded
into that layer: the layer's row then describes its activated output (so a dead ReLU names ``fc1``, the layer to
re-initialise). An activation whose input comes from elsewhere gets a row of its own.

Definitions (over the sampled batches of one epoch):

- units: the output's channels (dim 1) for convolution, batch/instance/group norm and pooling outputs, the last
  dimension otherwise (features, embedding dimensions, hidden units); every other dimension is a sample.
- ``activation_mean``: mean of the batch means. ``activation_std``: pooled standard deviation,
  sqrt(mean of the within-batch variances + variance of the batch means). ``activation_var_of_means``: the
  (population) variance of the batch means, absent with fewer than 2 sampled steps. A layer that runs several
  times in one step (two forward passes per step) contributes the mean of its passes, once per step.
- ``zero_fraction``: fraction of units whose output was exactly 0 for every sample of every sampled batch (a
  per-unit count of non-zero outputs, kept on the device).
- ``saturated_fraction`` (sigmoid and tanh outputs only): fraction of units in the flat region (``|tanh| > 0.99``,
  ``sigmoid < 0.01`` or ``> 0.99``, where the gradient is below 1 % of its peak) for at least ``saturated_share``
  (default 90 %) of their samples: pinned units that barely learn. (With 99 % even a stack whose weights were scaled
  up 100x read almost unsaturated: a unit's inputs spread widely, so it leaves the flat region now and then.)
- ``gradient_norm_mean``: mean over sampled steps of the L2 norm of the gradient of the layer's own parameters in
  that step's backward pass (root mean square over backward passes when there are several, e.g. accumulation);
  absent for layers without trainable parameters.
- ``weight_sparsity``: fraction of the layer's weights (parameters whose name contains "weight", else all its
  parameters) with ``|w| < 1e-8`` (``sparsity_eps``), read from the weights as they are at ``epoch_end``.
- ``update_ratio``: mean over sampled steps of ``||w_after - w_before|| / ||w_before||`` over the layer's trainable
  parameters, before = at ``arm``, after = at ``disarm``. The copy of the weights lives only between the two calls
  and is bounded by ``update_copy_bytes`` (layers past the budget have no ratio). ``update_ratio_max``: the largest
  of those per-step ratios in the epoch (a weight-norm jump that a mean hides). A sampled step in which no weight
  of any layer changed (no optimiser step, e.g. gradient accumulation) is left out.
- correlations: Pearson correlation between the per-unit mean outputs of two consecutive (in execution order)
  linear, convolution, attention, recurrent or embedding layers of equal width, averaged over sampled steps.
  Normalisation and activation modules are left out: a LayerNorm's unit profile copies its input's by design.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from atlas_proto.v1 import telemetry_pb2 as tpb

from ._architecture import _first_tensor, iter_layers, layer_category
from ._layers_aggregate import Units, aggregate
from ._layers_schedule import SamplingSchedule

__all__ = ["LayerHealthMonitor"]

logger = logging.getLogger(__name__)

_SATURATING: tuple[tuple[type[nn.Module], str], ...] = ((nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh"))
_CHANNEL_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.GroupNorm,
                  nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                  nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
_CORRELATED = frozenset({"linear", "convolution", "attention", "recurrent", "embedding"})
_SAT_BOUND = 0.99
# Bounded cost: a sampled output is read at no more than this many positions per unit (a conv channel's
# batch x height x width, a transformer feature's batch x tokens), and at no more than MAX_ELEMENTS_PER_SITE
# values in all (a wide output, e.g. a 50,000-token vocabulary head, is read at fewer positions per unit, never
# fewer than MIN_POSITIONS_PER_UNIT); larger outputs are read on an evenly strided grid. A dead unit is zero
# everywhere, so it stays zero on the grid; per-unit counts accumulate over the epoch's sampled steps.
MAX_POSITIONS_PER_UNIT = 256
MAX_ELEMENTS_PER_SITE = 16384
MIN_POSITIONS_PER_UNIT = 32
# A layer not yet seen in a sampled step may turn out to be followed by an activation module, whose output then
# describes it: its own output (up to this many values) is held until the next hook tells, and copied only if not.
MAX_DEFERRED_ELEMENTS = 1 << 20
# The copies a sampled step holds until disarm; past this, the statistics of what is held are taken at once.
MAX_CAPTURED_BYTES = 64 * 2**20


def _bounded(y: torch.Tensor, unit_dim: int) -> torch.Tensor:
    """A contiguous float32 copy of `y`, or of an evenly strided view of it within the bounds above: at most
    max(MAX_ELEMENTS_PER_SITE, MIN_POSITIONS_PER_UNIT x units) values (64 KB, or 6.4 MB for a 50,000-word head)."""
    width = max(1, y.shape[unit_dim])
    cap = max(MIN_POSITIONS_PER_UNIT, min(MAX_POSITIONS_PER_UNIT, MAX_ELEMENTS_PER_SITE // width))
    if y.numel() // width > cap:
        # the inner dimensions first (keep every sample row where possible), then the samples if still too many
        inner = [d for d in range(1, y.dim()) if d != unit_dim and y.shape[d] > 1]
        if inner:
            step = math.ceil((y.numel() // width / cap) ** (1.0 / len(inner)))
            index: list[Any] = [slice(None)] * y.dim()
            for d in inner:
                index[d] = slice(None, None, step)
            y = y[tuple(index)]
        positions = y.numel() // width
        if positions > cap and unit_dim != 0:
            y = y[::math.ceil(positions / cap)]
    # one copy: the dtype and the layout every reduction after it wants
    return y.to(torch.float32, memory_format=torch.contiguous_format, copy=True)


@dataclass
class _Layer:
    name: str
    module: nn.Module
    category: str
    channel_first: bool
    params: list[tuple[str, nn.Parameter]] = field(default_factory=list)
    sat_kind: str | None = None


class LayerHealthMonitor:
    """Sampled per-layer health statistics of ``model`` (see the module docstring for every definition).

    Usage per training step: ``if monitor.arm(step): ...`` before the forward pass, ``monitor.disarm()`` after the
    optimiser step; ``monitor.epoch_end()`` returns the epoch's ``LayerHealth``; ``monitor.close()`` at the end.
    Errors inside hooks are logged once and switch the failing part off; ``strict=True`` (tests) raises them.
    """

    def __init__(self, model: nn.Module, every_n_steps: int = 10, max_layers: int = 64, *,
                 saturated_share: float = 0.9, sparsity_eps: float = 1e-8,
                 update_copy_bytes: int = 256 * 2**20, cost_budget: float | None = None,
                 strict: bool = False) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"`every_n_steps` must be an integer >= 1, got {every_n_steps!r}")
        if isinstance(max_layers, bool) or not isinstance(max_layers, int) or max_layers < 1:
            raise ValueError(f"`max_layers` must be an integer >= 1, got {max_layers!r}")
        if not 0.0 < saturated_share <= 1.0:
            raise ValueError(f"`saturated_share` must be in (0, 1], got {saturated_share!r}")
        if cost_budget is not None and (isinstance(cost_budget, bool) or not isinstance(cost_budget, (int, float))
                                        or not 0.0 < cost_budget <= 1.0):
            raise ValueError(f"`cost_budget` must be a share of training time in (0, 1] or None, got {cost_budget!r}")
        self._model: nn.Module | None = model
        self.max_layers = max_layers
        self.saturated_share = saturated_share
        self.sparsity_eps = sparsity_eps
        self.update_copy_bytes = update_copy_bytes
        self.strict = strict
        self.schedule = SamplingSchedule(every_n_steps, cost_budget)  # which steps are sampled
        self._spent = 0.0  # training-thread CPU seconds spent by the current sampled step
        self._layers: list[_Layer] | None = None
        self._by_name: dict[str, _Layer] = {}
        self._acts: list[tuple[str, nn.Module, str | None]] = []
        self._fused: set[str] = set()  # layers known to be followed by an activation module
        self._known: set[str] = set()  # layers seen in a sampled step (whether they are fused is known)
        self._deferred_lock = threading.Lock()
        self._handles: list[RemovableHandle] = []
        self._armed = False
        self._step = 0
        self._logged: set[str] = set()
        self._disabled: set[str] = set()
        self._reset_step()
        self._reset_epoch()
        try:
            self._select()  # at setup, not in the first sampled step
        except Exception:  # noqa: BLE001 - `arm` tries again and reports it
            self._layers = None

    # ------------------------------------------------------------------------------------------- state
    def _reset_step(self) -> None:
        self._vals: list[torch.Tensor] = []
        self._keys: list[tuple[str, str]] = []  # (site, field) for each value
        self._order: list[tuple[str, torch.Tensor]] = []  # (site, per-unit means) of correlated sites
        self._last: tuple[weakref.ReferenceType[torch.Tensor], str] | None = None
        self._deferred: tuple[_Layer, torch.Tensor, int] | None = None  # see MAX_DEFERRED_ELEMENTS
        self._ran: set[str] = set()  # layers that ran in this step
        # bounded copies of this step's outputs: (hook owner, key, site, copy, unit dim, saturation kind, category)
        self._captured: list[tuple[str, str, str, torch.Tensor, int, str | None, str]] = []
        self._captured_bytes = 0
        self._grads: list[tuple[int, torch.Tensor]] = []  # (layer index, a gradient's norm), this step only
        self._gcalls: dict[tuple[int, int], int] = {}  # (layer index, id(param)) -> backward calls this step
        self._snap: list[tuple[int, nn.Parameter, torch.Tensor]] = []  # (layer index, parameter, copy)

    def _reset_epoch(self) -> None:
        self.schedule.new_epoch()
        self._pending: list[tuple[torch.Tensor, list[tuple[str, str]]]] = []
        self._units: dict[str, Units | None] = {}  # None: the site changed width, no per-unit statistics

    @property
    def armed(self) -> bool:
        return self._armed

    @property
    def interval(self) -> int:
        """The sampling interval in force (a multiple of `every_n_steps`; see the cost budget)."""
        return self.schedule.interval

    @property
    def due(self) -> int:
        """`arm` need not be called before this step: no step before it can be sampled."""
        return self.schedule.due

    def _fail(self, where: str, exc: BaseException) -> None:
        if self.strict:
            raise exc
        self._disabled.add(where)
        if where not in self._logged:
            self._logged.add(where)
            logger.warning("atlas layer health: %s failed and is switched off (%s: %s)", where,
                           type(exc).__name__, exc, exc_info=True)

    # ------------------------------------------------------------------------------------------ layers
    def _select(self) -> list[_Layer]:
        if self._layers is not None:
            return self._layers
        assert self._model is not None
        ordered = list(iter_layers(self._model))
        with_params: list[int] = []
        for i, (_, module, recursive) in enumerate(ordered):
            if layer_category(module) == "dropout":
                continue
            if next(module.parameters(recurse=recursive), None) is not None:
                with_params.append(i)
        if len(with_params) > self.max_layers:
            n = len(with_params)
            picks = sorted({round(k * (n - 1) / (self.max_layers - 1)) for k in range(self.max_layers)}
                           if self.max_layers > 1 else {0})
            chosen = {with_params[k] for k in picks}
        else:
            chosen = set(with_params)
        layers: list[_Layer] = []
        acts: list[tuple[str, nn.Module, str | None]] = []
        subsampled = len(chosen) < len(with_params)
        for i, (name, module, recursive) in enumerate(ordered):
            category = layer_category(module)
            if i in chosen:
                layer = _Layer(name, module, category, isinstance(module, _CHANNEL_FIRST))
                layer.params = list(module.named_parameters(recurse=recursive))
                layer.sat_kind = _sat_kind(module)
                layers.append(layer)
            elif category == "activation" and (not subsampled or (i - 1) in chosen):
                acts.append((name, module, _sat_kind(module)))
        self._layers = layers
        self._by_name = {layer.name: layer for layer in layers}
        self._acts = acts[: self.max_layers]
        return layers

    # --------------------------------------------------------------------------------------- arm/disarm
    def should_sample(self, step: int) -> bool:
        return self.schedule.should_sample(step)

    def arm(self, step: int, step_s: float | None = None) -> bool:
        """Install the hooks when ``step`` is sampled; returns whether it is. Call before the step's forward (on
        every step, or only from step ``due`` on: the steps before it are never sampled). ``step_s``: the
        trainer's recent step time, when it measures one (the cost budget's denominator); without it the monitor
        estimates it from the wall time between its own calls."""
        if self._armed:
            self.disarm()
        if not self.schedule.start(step, step_s, possible=self._model is not None):
            return False
        self._spent = 0.0
        t0 = time.thread_time()
        try:
            self._step = step
            self._reset_step()
            layers = self._select()
            for layer in layers:
                self._handles.append(layer.module.register_forward_hook(self._layer_hook(layer)))
            for name, module, sat in self._acts:
                self._handles.append(module.register_forward_hook(self._act_hook(name, sat)))
            if "gradients" not in self._disabled:
                for index, layer in enumerate(layers):
                    for _, p in layer.params:
                        if p.requires_grad:
                            self._handles.append(p.register_hook(self._grad_hook(index, p)))
            if "updates" not in self._disabled:
                self._snapshot(layers)
            self._armed = True
        except Exception as exc:
            self._remove_hooks()
            self._reset_step()
            self._fail("arm", exc)
            return False
        finally:
            self._spent += time.thread_time() - t0
        return True

    def disarm(self) -> None:
        """Read the weights, remove every hook and copy; call after the optimiser step of a sampled step."""
        if not self._armed:
            return
        t0 = time.thread_time()
        self._armed = False
        self._remove_hooks()
        try:
            with torch.no_grad():
                self._settle_deferred()
                self._known |= self._ran
                self._finish_step()
        except Exception as exc:
            self._fail("disarm", exc)
        finally:
            self._reset_step()
            self._spent += time.thread_time() - t0
            self.schedule.finish(self._step, self._spent)

    def _remove_hooks(self) -> None:
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()

    def _push(self, site: str, key: str, value: torch.Tensor) -> None:
        """One 0-d float32 value of this step."""
        self._vals.append(value if value.dtype == torch.float32 else value.float())
        self._keys.append((site, key))

    # -------------------------------------------------------------------------------------------- hooks
    def _layer_hook(self, layer: _Layer) -> Callable[..., None]:
        name = layer.name

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if name in self._disabled or not torch.is_grad_enabled():  # an evaluation pass between steps
                return
            t0 = time.thread_time()
            try:
                y = _first_tensor(output)
                if y is None:
                    return
                self._settle_deferred()
                self._ran.add(name)
                if name not in self._fused:
                    if name in self._known or y.numel() > MAX_DEFERRED_ELEMENTS:
                        self._capture(name, name, name, y, layer.channel_first, layer.sat_kind, layer.category)
                    else:
                        self._deferred = (layer, y, y._version)
                self._last = (weakref.ref(y), name)
            except Exception as exc:
                self._fail(name, exc)
            finally:
                self._spent += time.thread_time() - t0
        return hook

    def _act_hook(self, act_name: str, sat_kind: str | None) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if act_name in self._disabled or not torch.is_grad_enabled():
                return
            t0 = time.thread_time()
            try:
                y = _first_tensor(output)
                inp = _first_tensor(args)
                if y is None:
                    return
                last = self._last
                deferred = self._deferred
                if last is not None and inp is not None and last[0]() is inp:
                    site = last[1]
                    self._fused.add(site)
                    if deferred is not None and deferred[0].name == site:
                        self._deferred = None  # the activated output describes the layer
                    self._settle_deferred()
                    layer = self._by_name.get(site)
                    channel_first = layer.channel_first if layer is not None else y.dim() >= 4
                    category = layer.category if layer is not None else "activation"
                    self._capture(act_name, site + "\0act", site, y, channel_first, sat_kind, category)
                else:
                    self._settle_deferred()
                    site = act_name
                    self._capture(act_name, site, site, y, y.dim() >= 4, sat_kind, "activation")
                self._last = (weakref.ref(y), site)
            except Exception as exc:
                self._fail(act_name, exc)
            finally:
                self._spent += time.thread_time() - t0
        return hook

    def _grad_hook(self, index: int, p: nn.Parameter) -> Callable[[torch.Tensor], None]:
        key = (index, id(p))  # per layer: a weight two layers share (tied embeddings) is hooked by each

        def hook(grad: torch.Tensor) -> None:
            if "gradients" in self._disabled:
                return
            t0 = time.thread_time()
            try:
                if self._deferred is not None:
                    self._settle_deferred()
                self._gcalls[key] = self._gcalls.get(key, 0) + 1
                g = grad.coalesce().values() if grad.is_sparse else grad
                # the norm, not the gradient: a reference held here would make autograd store a copy in .grad
                with torch.no_grad():
                    self._grads.append((index, torch.linalg.vector_norm(g, dtype=torch.float32)))
            except Exception as exc:
                self._fail("gradients", exc)
            finally:
                self._spent += time.thread_time() - t0
        return hook

    def _settle_deferred(self) -> None:
        """Copy the output held back for a layer no activation module followed (see MAX_DEFERRED_ELEMENTS). If it
        was changed in place since (an in-place op after the layer that is not a hooked module), this step has no
        numbers for the layer: they would not be its own; from the next sampled step on it is copied at once."""
        with self._deferred_lock:  # grad hooks may run on autograd's threads (one per device)
            deferred, self._deferred = self._deferred, None
        if deferred is None:
            return
        layer, y, version = deferred
        try:
            if y._version != version:
                self._known.add(layer.name)
                return
            self._capture(layer.name, layer.name, layer.name, y, layer.channel_first, layer.sat_kind, layer.category)
        except Exception as exc:
            self._fail(layer.name, exc)

    def _capture(self, owner: str, key: str, site: str, y: torch.Tensor, channel_first: bool,
                 sat_kind: str | None, category: str) -> None:
        """In a forward hook: a bounded copy of one output, whose statistics `disarm` takes (`_record`)."""
        if not y.is_floating_point() or y.numel() == 0:
            return
        if y.dim() < 2:  # a vector is one sample's features; a scalar one sample of one unit
            y = y.reshape(1, -1)
        unit_dim = 1 if channel_first and y.dim() >= 3 else y.dim() - 1
        with torch.no_grad():
            copy = _bounded(y, unit_dim)
        self._captured.append((owner, key, site, copy, unit_dim, sat_kind, category))
        self._captured_bytes += copy.numel() * 4
        if self._captured_bytes > MAX_CAPTURED_BYTES:  # e.g. a module applied many times in one forward pass
            with torch.no_grad():
                self._record_captured()

    def _record_captured(self) -> None:
        """The statistics of the copies held, in execution order (the correlations pair consecutive ones)."""
        captured, self._captured = self._captured, []
        self._captured_bytes = 0
        for owner, key, site, y, unit_dim, sat_kind, category in captured:
            # a layer an activation module follows is described by its activated output (captured as well)
            if owner in self._disabled or (key == site and site in self._fused and site in self._by_name):
                continue
            try:
                self._record(key, site, y, unit_dim, sat_kind, category)
            except Exception as exc:
                self._fail(owner, exc)

    def _record(self, key: str, site: str, y: torch.Tensor, unit_dim: int, sat_kind: str | None,
                category: str) -> None:
        """Batch statistics of one captured output into the step's values; per-unit state into the epoch's."""
        var, mean = _var_mean(y)
        self._push(key, "mean", mean)
        self._push(key, "var", var)
        dims = tuple(d for d in range(y.dim()) if d != unit_dim)
        width = y.shape[unit_dim]
        units = self._units.get(key, False)
        if units is False:
            units = Units(width, torch.zeros(width, dtype=torch.long, device=y.device))
            self._units[key] = units
        if units is not None and units.width != width:
            self._units[key] = units = None
        if units is not None:
            units.nonzero.add_(torch.count_nonzero(y, dim=dims))
            if sat_kind is not None:
                sat = y.abs() > _SAT_BOUND if sat_kind == "tanh" else (y - 0.5).abs() > _SAT_BOUND - 0.5
                counts = sat.sum(dim=dims, dtype=torch.float32)
                units.sat_count = counts if units.sat_count is None else units.sat_count.add_(counts)
                units.positions += y.numel() // width
        if category in _CORRELATED and width >= 3:
            means = y.mean(dim=dims)
            if self._order and self._order[-1][0] == site:
                self._order[-1] = (site, means)  # the activated output replaces the layer's raw one
            else:
                self._order.append((site, means))

    # --------------------------------------------------------------------------------------- weights
    def _snapshot(self, layers: list[_Layer]) -> None:
        budget = self.update_copy_bytes
        chosen: list[tuple[int, nn.Parameter]] = []
        for index, layer in enumerate(layers):
            trainable = [p for _, p in layer.params if p.requires_grad]
            size = sum(p.numel() * p.element_size() for p in trainable)
            if not trainable or size > budget:
                continue
            budget -= size
            chosen.extend((index, p) for p in trainable)
        if not chosen:
            return
        with torch.no_grad():
            tensors = [p.detach() for _, p in chosen]
            try:
                copies = list(torch._foreach_mul(tensors, 1.0))
            except Exception:  # mixed devices or dtypes the fused kernel refuses
                copies = [t.clone() for t in tensors]
        self._snap = [(index, p, copy) for (index, p), copy in zip(chosen, copies)]

    def _finish_step(self) -> None:
        layers = self._layers or []
        self._record_captured()
        for (a, ua), (b, ub) in zip(self._order, self._order[1:]):
            if a != b and ua.shape == ub.shape:
                self._push(f"{a}\0{b}", "corr", _pearson(ua, ub.to(ua.device)))
        # per-parameter norms; the per-layer sums are taken on the host at epoch end
        parts: list[torch.Tensor] = []
        keys: list[tuple[str, str]] = []
        if self._vals:
            parts.append(_stack(self._vals))
            keys.extend(self._keys)
        if self._grads:
            parts.append(_stack([n for _, n in self._grads]))
            passes: dict[int, int] = {}  # backward passes of each layer this step
            for i, _ in self._grads:
                if i not in passes:
                    passes[i] = max((self._gcalls.get((i, id(p)), 0) for _, p in layers[i].params), default=1) or 1
                keys.append((layers[i].name, f"g:{passes[i]}"))
        if self._snap:
            olds = [old for _, _, old in self._snap]
            parts.append(_norms(_foreach_sub([p.detach() for _, p, _ in self._snap], olds) + olds))
            keys.extend((layers[i].name, "dw") for i, _, _ in self._snap)
            keys.extend((layers[i].name, "w") for i, _, _ in self._snap)
        if parts:
            self._pending.append((_cat(parts), keys))

    def _sparsity(self) -> tuple[list[torch.Tensor], list[tuple[str, str]]]:
        """Fraction of near-zero weights per selected layer, from the weights as they are now (epoch end)."""
        vals: list[torch.Tensor] = []
        keys: list[tuple[str, str]] = []
        with torch.no_grad():
            for layer in self._layers or []:
                weights = [p for n, p in layer.params if "weight" in n] or [p for _, p in layer.params]
                numel = sum(p.numel() for p in weights)
                if not numel:
                    continue
                small = sum((p.detach().abs() < self.sparsity_eps).sum() for p in weights)
                vals.append(torch.as_tensor(small).float() / numel)
                keys.append((layer.name, "sparsity"))
        return vals, keys

    # ------------------------------------------------------------------------------------------ epochs
    def epoch_end(self) -> tpb.LayerHealth:
        """The epoch's aggregate over its sampled steps; resets the per-epoch state. Never raises (unless strict)."""
        if self._armed:
            self.disarm()
        try:
            return self._aggregate()
        except Exception as exc:
            self._fail("epoch_end", exc)
            return tpb.LayerHealth()
        finally:
            self._reset_epoch()

    def _aggregate(self) -> tpb.LayerHealth:
        try:
            sparse_vals, sparse_keys = self._sparsity() if self._pending else ([], [])
        except Exception as exc:
            self._fail("sparsity", exc)
            sparse_vals, sparse_keys = [], []
        return aggregate(self._pending, self._units, [layer.name for layer in self._layers or []],
                         self.saturated_share, sparse_vals, sparse_keys)

    def contribute(self, summary: tpb.EpochSummary) -> None:
        """The `Channel` epoch contribution: `epoch_end()`'s aggregate."""
        summary.layer_health.CopyFrom(self.epoch_end())

    def close(self) -> None:
        """Remove every hook and free all state (safe to call twice)."""
        self._armed = False
        self._remove_hooks()
        self._reset_step()
        self._reset_epoch()
        self._layers = None
        self._acts = []
        self._model = None


def _var_mean(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Population variance and mean, two passes: several times faster than `torch.var_mean` (Welford) on the CPU,
    and as stable (the sum of squares is taken around the mean)."""
    mean = y.mean()
    d = (y - mean).reshape(-1)
    return torch.dot(d, d) / d.numel(), mean


def _sat_kind(module: nn.Module) -> str | None:
    for cls, kind in _SATURATING:
        if isinstance(module, cls):
            return kind
    return None


def _norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of each tensor as one vector (one fused kernel where possible)."""
    try:
        return torch.stack(torch._foreach_norm(tensors))
    except Exception:  # mixed devices or dtypes
        device = tensors[0].device
        return torch.stack([torch.linalg.vector_norm(t).float().to(device) for t in tensors])


def _stack(values: list[torch.Tensor]) -> torch.Tensor:
    try:
        return torch.stack(values)
    except Exception:  # a model spread over devices
        return torch.stack([v.to(values[0].device) for v in values])


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    if len(parts) == 1:
        return parts[0]
    try:
        return torch.cat(parts)
    except Exception:  # a model spread over devices
        return torch.cat([p.to(parts[0].device) for p in parts])


def _foreach_sub(a: list[torch.Tensor], b: list[torch.Tensor]) -> list[torch.Tensor]:
    try:
        return list(torch._foreach_sub(a, b))
    except Exception:
        return [x - y for x, y in zip(a, b)]


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean()
    b = b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm())  # NaN when either is constant: dropped at epoch end
