"""The profiler channel: ``torch.profiler`` on chosen steps, summarised into top ops, per-layer time and the
forward/backward split.

``StepProfiler(model)`` profiles whole training steps: ``start(step)`` before the step's forward pass enters a
``torch.profiler.profile`` (CPU, plus CUDA when the model has parameters on a CUDA device; no shapes, no stacks) and
labels each layer's forward with ``record_function("atlas::layer::<name>")`` through forward pre/post hooks;
``stop()`` after the optimiser step exits the profiler, removes the hooks and summarises (``stop(defer=True)`` keeps
the raw profile and ``summarise()`` builds the summary later, off the hot path: parsing the events costs about
1-20 ms for a small CNN here, roughly proportional to the number of ops recorded).

Definitions (CPU times are the profiler's ``cpu_time_total`` in milliseconds):

- ``forward_ms``: top-level work that is neither backward nor the optimiser: the model's forward pass and the loss.
- ``backward_ms``: the autograd engine's outermost ``autograd::engine::evaluate_function: ...Backward0`` events
  (at top level, or inside ``Optimizer.step`` when the optimiser runs a closure, as Lightning does).
- ``total_cpu_time_ms``: every top-level event of the step (forward, backward, optimiser step, anything else).
- ``total_cuda_time_ms``: the summed self device time of all events (0 on CPU).
- ``top_ops``: operators by self CPU time (our labels left out), ``pct_total`` of the summed self CPU time.
- ``per_layer``: each labelled layer's forward time plus the backward time of the autograd nodes its forward ops
  created (matched by the profiler's sequence numbers); ``pct_total`` is its share of ``forward_ms + backward_ms``,
  so the shares sum to at most 100 %. Layers are ``_architecture.iter_layers`` leaves (``nn.MultiheadAttention``
  as one layer); containers are not labelled, so no time is counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile
from torch.utils.hooks import RemovableHandle

from atlas_proto.v1 import telemetry_pb2 as tpb

from ._architecture import iter_layers

__all__ = ["StepProfiler"]

logger = logging.getLogger(__name__)

_LABEL = "atlas::layer::"
_BACKWARD = "autograd::engine::evaluate_function"
_OPTIMIZER = "Optimizer."


class StepProfiler:
    """Profiles chosen training steps of ``model`` (see the module docstring for every definition).

    ``should_profile(epoch, step_in_epoch)``: ``step_in_epoch`` in ``steps_in_epoch`` (default ``{1}``: the
    second step, past the first step's warm-up) of epoch 0 and every ``every_n_epochs``-th epoch.
    Errors are logged once and never raised (``strict=True``, for tests, raises them).
    """

    def __init__(self, model: nn.Module, steps_in_epoch: set[int] | frozenset[int] | tuple[int, ...] = frozenset({1}),
                 every_n_epochs: int = 5, *, top_k: int = 15, strict: bool = False) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"`every_n_epochs` must be an integer >= 1, got {every_n_epochs!r}")
        steps = frozenset(steps_in_epoch)
        if not steps or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in steps):
            raise ValueError(f"`steps_in_epoch` must be a non-empty set of integers >= 0, got {steps_in_epoch!r}")
        self._model = model
        self.steps_in_epoch = steps
        self.every_n_epochs = every_n_epochs
        self.top_k = top_k
        self.strict = strict
        self._prof: Any = None
        self._saved: Any = None
        self._summary: tpb.ProfilerSummary | None = None  # the last profiled step's, until the epoch's contribute
        self._step = 0
        self._handles: list[RemovableHandle] = []
        self._open: dict[str, list[record_function]] = {}
        self._logged: set[str] = set()

    @property
    def active(self) -> bool:
        return self._prof is not None

    def should_profile(self, epoch: int, step_in_epoch: int) -> bool:
        return epoch % self.every_n_epochs == 0 and step_in_epoch in self.steps_in_epoch

    def _fail(self, where: str, exc: BaseException) -> None:
        if self.strict:
            raise exc
        if where not in self._logged:
            self._logged.add(where)
            logger.warning("atlas profiler: %s failed (%s: %s)", where, type(exc).__name__, exc, exc_info=True)

    # ------------------------------------------------------------------------------------------ start
    def start(self, step: int = 0) -> bool:
        """Enter the profiler and label the layers; call before the step's forward. Returns whether it started
        (False when another profiler is already running, for example)."""
        if self._prof is not None:
            return True
        if torch.autograd._profiler_enabled():  # the user's own profiler runs: leave it alone
            if "busy" not in self._logged:
                self._logged.add("busy")
                logger.warning("atlas profiler: start skipped, another torch profiler is running")
            return False
        try:
            activities = [ProfilerActivity.CPU]
            if torch.cuda.is_available() and any(p.is_cuda for p in self._model.parameters()):
                activities.append(ProfilerActivity.CUDA)
            for name, module, recursive in iter_layers(self._model):
                if module is self._model or not recursive:
                    continue
                self._handles.append(module.register_forward_pre_hook(self._enter(name)))
                self._handles.append(module.register_forward_hook(self._exit(name), always_call=True))
            prof = profile(activities=activities, record_shapes=False, with_stack=False)
            prof.__enter__()
            self._prof = prof
            self._saved = None
            self._step = step
            return True
        except Exception as exc:
            self._remove_hooks()
            self._fail("start", exc)
            return False

    def _enter(self, name: str) -> Callable[..., None]:
        label = _LABEL + name

        def hook(module: nn.Module, args: Any) -> None:
            try:
                rf = record_function(label)
                rf.__enter__()
                self._open.setdefault(name, []).append(rf)
            except Exception as exc:
                self._fail("label", exc)
        return hook

    def _exit(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            stack = self._open.get(name)
            if not stack:
                return
            try:
                stack.pop().__exit__(None, None, None)
            except Exception as exc:
                self._fail("label", exc)
        return hook

    def _remove_hooks(self) -> None:
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()
        opened, self._open = self._open, {}
        for stack in opened.values():  # a forward that raised left its label open
            for rf in reversed(stack):
                try:
                    rf.__exit__(None, None, None)
                except Exception:
                    pass

    # ------------------------------------------------------------------------------------------- stop
    def stop(self, *, defer: bool = False) -> tpb.ProfilerSummary | None:
        """Exit the profiler, remove the hooks and return the summary (``None`` when not started or it failed).
        With ``defer=True`` the raw profile is kept and ``summarise()`` builds the summary later."""
        prof, self._prof = self._prof, None
        self._remove_hooks()
        if prof is None:
            return None
        try:
            prof.__exit__(None, None, None)
        except Exception as exc:
            self._fail("stop", exc)
            return None
        self._saved = prof
        return None if defer else self.summarise()

    def summarise(self) -> tpb.ProfilerSummary | None:
        """Summarise the last stopped profile (once: the raw profile is freed afterwards)."""
        prof, self._saved = self._saved, None
        if prof is None:
            return None
        try:
            return _summarise(prof.events(), self._step, self.top_k)
        except Exception as exc:
            self._fail("summarise", exc)
            return None

    def finish_step(self) -> None:
        """After a profiled step: stop and keep its summary for the epoch's `contribute`."""
        self._summary = self.stop()

    def contribute(self, summary: tpb.EpochSummary) -> None:
        """The `Channel` epoch contribution: the summary of the step profiled in this epoch, if one was."""
        if self._summary is not None:
            summary.profiler.CopyFrom(self._summary)
            self._summary = None

    def close(self) -> None:
        """Stop without summarising and free everything (safe to call twice)."""
        self._summary = None
        prof, self._prof = self._prof, None
        self._remove_hooks()
        self._saved = None
        if prof is not None:
            try:
                prof.__exit__(None, None, None)
            except Exception as exc:
                self._fail("close", exc)


def _device_self(event: Any) -> float:
    value = getattr(event, "self_device_time_total", None)
    if value is None:
        value = getattr(event, "self_cuda_time_total", 0.0)
    return float(value or 0.0)


def _walk(event: Any) -> Any:
    stack = list(event.cpu_children)
    while stack:
        child = stack.pop()
        yield child
        stack.extend(child.cpu_children)


def _split(event: Any, inside_optimizer: bool = False) -> tuple[float, float]:
    """(forward µs, backward µs) of a top-level event.

    Plain loops run forward and backward at top level, the optimiser step after them. Lightning (and any
    closure-based optimiser) runs both *inside* ``Optimizer.step``: there the outermost backward events
    are backward, the Atlas layer labels (and what encloses them) are forward, and the rest is the
    optimiser's own work."""
    name = event.name
    total = float(event.cpu_time_total)
    if name.startswith(_BACKWARD):
        return 0.0, total
    if name.startswith(_OPTIMIZER):
        fwd = bwd = 0.0
        for child in event.cpu_children:
            f, b = _split(child, True)
            fwd, bwd = fwd + f, bwd + b
        return fwd, bwd
    if not inside_optimizer:
        return total, 0.0
    if name.startswith(_LABEL):
        return total, 0.0
    fwd = bwd = 0.0
    for child in event.cpu_children:  # e.g. the closure: find the forward labels and backward inside it
        f, b = _split(child, True)
        fwd, bwd = fwd + f, bwd + b
    return fwd, bwd


def _summarise(events: Any, step: int, top_k: int) -> tpb.ProfilerSummary:
    summary = tpb.ProfilerSummary(step=step)
    forward_us = backward_us = total_us = 0.0
    backward_by_seq: dict[int, float] = {}
    labels: list[Any] = []
    ops: dict[str, list[float]] = {}  # name -> [calls, self cpu us, self device us]
    self_total = device_total = 0.0
    for ev in events:
        name = ev.name
        self_cpu = float(ev.self_cpu_time_total)
        dev = _device_self(ev)
        device_total += dev
        if name.startswith(_LABEL):
            labels.append(ev)
        else:
            self_total += self_cpu
            if not name.startswith(_BACKWARD):
                row = ops.setdefault(name, [0.0, 0.0, 0.0])
                row[0] += 1
                row[1] += self_cpu
                row[2] += dev
        if name.startswith(_BACKWARD):
            seq = getattr(ev, "sequence_nr", -1)
            if seq is not None and seq >= 0:
                backward_by_seq[seq] = backward_by_seq.get(seq, 0.0) + float(ev.cpu_time_total)
        if ev.cpu_parent is not None:
            continue
        total_us += float(ev.cpu_time_total)
        fwd, bwd = _split(ev)
        forward_us += fwd
        backward_us += bwd
    summary.forward_ms = forward_us / 1e3
    summary.backward_ms = backward_us / 1e3
    summary.total_cpu_time_ms = total_us / 1e3
    summary.total_cuda_time_ms = device_total / 1e3
    for name, (calls, cpu, dev) in sorted(ops.items(), key=lambda kv: -kv[1][1])[:top_k]:
        summary.top_ops.add(name=name, calls=int(calls), cpu_time_ms=cpu / 1e3, cuda_time_ms=dev / 1e3,
                            pct_total=100.0 * cpu / self_total if self_total else 0.0)
    per_layer: dict[str, float] = {}
    for ev in labels:
        layer = ev.name[len(_LABEL):]
        seqs = {c.sequence_nr for c in _walk(ev) if getattr(c, "sequence_nr", -1) is not None
                and c.sequence_nr >= 0 and not c.name.startswith(_LABEL)}
        bwd = sum(backward_by_seq.pop(s, 0.0) for s in seqs)  # pop: a node is counted for one layer only
        per_layer[layer] = per_layer.get(layer, 0.0) + float(ev.cpu_time_total) + bwd
    denominator = forward_us + backward_us
    for layer, us in sorted(per_layer.items(), key=lambda kv: -kv[1]):
        summary.per_layer.add(name=layer, time_ms=us / 1e3,
                              pct_total=min(100.0, 100.0 * us / denominator) if denominator else 0.0)
    return summary
