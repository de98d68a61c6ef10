"""Facts: how a run is set up, learned once and cheaply, for the diagnosis of programming bugs.

Optimizer and param groups, scheduler, clipping, manual or automatic optimization (given by the adapter at the
start); the first batches' inputs and targets (statistics of ``FIRST_BATCHES`` batches); the model's output on the
first training step (the last layer that ran, its width, whether its rows sum to one); train or eval mode on the
training steps; and, from one hook on one parameter and the optimizers' step hooks over the first
``WATCHED_STEPS`` optimizer steps: gradients that were not cleared between steps, parameters that never received a
gradient, parameters that received one but sit in no optimizer. Each epoch summary carries the keys that are new or
changed since the last one (``take``). ARCHITECTURE.md lists the keys; ``atlas_diagnostics`` reads them.

The cost is bounded: after the first ``WATCHED_STEPS`` steps every hook is removed and a step costs one attribute
read (``model.training``).
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from atlas_proto.v1 import telemetry_pb2 as tpb

log = logging.getLogger(__name__)

FIRST_BATCHES = 8  # batches whose inputs and targets are summarised
WATCHED_STEPS = 16  # optimizer steps watched for uncleared gradients and parameters without gradients
_MAX_CLASSES = 4096  # a target with more distinct values than this is not a class label


def _tensor(value: Any) -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return value if isinstance(value, torch.Tensor) else None


def _split_batch(batch: Any) -> tuple[Any, Any]:
    """(inputs, targets) of the common batch layouts: ``(x, y)``, ``[x, y, ...]``, ``{"input"...: x, "label"...: y}``,
    a bare tensor. Either may be None."""
    if _tensor(batch) is not None:
        return batch, None
    if isinstance(batch, (list, tuple)) and batch:
        x = _tensor(batch[0])
        y = _tensor(batch[1]) if len(batch) > 1 else None
        return x, y
    if isinstance(batch, Mapping):
        x = y = None
        for key, value in batch.items():
            t = _tensor(value)
            if t is None:
                continue
            k = str(key).lower()
            if y is None and ("label" in k or "target" in k or k == "y"):
                y = t
            elif x is None and ("input" in k or "pixel" in k or k in ("x", "image", "images", "features")):
                x = t
        return x, y
    return None, None


def _optimizer_facts(optimizer: Any) -> dict[str, Any]:
    groups = []
    for g in getattr(optimizer, "param_groups", ()):
        group: dict[str, Any] = {"params": len(g.get("params", ()))}
        for key in ("lr", "initial_lr", "momentum", "weight_decay", "nesterov", "eps"):
            value = g.get(key)
            if isinstance(value, bool):
                group[key] = value
            elif isinstance(value, (int, float)) and math.isfinite(float(value)):
                group[key] = float(value)
        betas = g.get("betas")
        if isinstance(betas, (tuple, list)) and all(isinstance(b, (int, float)) for b in betas):
            group["betas"] = [float(b) for b in betas]
        groups.append(group)
    inner = getattr(optimizer, "optimizer", None)  # LightningOptimizer / AcceleratedOptimizer wrap the real one
    name = type(inner if inner is not None and hasattr(inner, "param_groups") else optimizer).__name__
    return {"type": name, "groups": groups}


class FactsProbe:
    """Learns the facts of one run (see the module docstring). Every method is cheap and never raises."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._facts: dict[str, Any] = {}
        self._sent: dict[str, Any] = {}
        self._batches = 0
        self._x_sum = self._x_sq = 0.0
        self._x_n = 0
        self._x_min = math.inf
        self._x_max = -math.inf
        self._classes: set[int] = set()
        self._batch_classes: list[int] = []
        self._batch_sizes: list[int] = []
        self._target_ok = True
        self._steps = 0
        self._eval_steps = 0
        self._checked_steps = 0
        self._optimizers: list[Any] = []
        self._handles: list[Any] = []
        self._watched: Any = None
        self._after_step = False
        self._not_cleared = 0
        self._watched_param: Any = None
        self._grad_since_step = False  # the watched parameter received a gradient since the last optimizer step
        self._cleared_before_step = 0  # ... and had none when the optimizer stepped (cleared in between)
        self._not_cleared_first: int | None = None
        self._opt_steps = 0
        self._with_grad: set[int] = set()
        self._params: list[tuple[str, Any]] = []
        self._output_hooks: list[Any] = []
        self._output_done = False
        self._output_tries = 0  # watched steps that saw no training forward (at most 3)
        self._last: Any = None
        self._calls: dict[str, int] = {}
        self._watch_done = False

    # --------------------------------------------------------------------------------------- what it learns --
    def setup(self, *, optimizers: Iterable[Any] = (), schedulers: Iterable[Mapping[str, Any]] = (),
              manual: bool | None = None, grad_clip: float | None = None, grad_clip_algorithm: str | None = None,
              max_epochs: int | None = None, sampler: str | None = None) -> None:
        """What the adapter knows at the start. ``schedulers``: ``{"type", "interval", "frequency"}`` each."""
        try:
            self._setup(list(optimizers), list(schedulers), manual, grad_clip, grad_clip_algorithm, max_epochs,
                        sampler)
        except Exception:  # noqa: BLE001 - a fact is never worth a failed run
            log.debug("atlas: could not read the run's setup", exc_info=True)

    def _setup(self, optimizers: list[Any], schedulers: list[Mapping[str, Any]], manual: bool | None,
               grad_clip: float | None, grad_clip_algorithm: str | None, max_epochs: int | None,
               sampler: str | None) -> None:
        f = self._facts
        if manual is not None:
            f["manual_optimization"] = bool(manual)
        if grad_clip is not None:
            f["grad_clip"] = {"value": float(grad_clip or 0.0), "algorithm": grad_clip_algorithm or "norm"}
        if max_epochs is not None and max_epochs > 0:
            f["max_epochs"] = int(max_epochs)
        if sampler:
            f["sampler"] = sampler
        if schedulers:
            f["schedulers"] = [dict(s) for s in schedulers]
        if optimizers:
            self.watch_optimizers(optimizers)

    def watch_optimizers(self, optimizers: Iterable[Any]) -> None:
        """The run's optimizers: their settings, whether they hold the model's parameters, and step hooks for the
        first ``WATCHED_STEPS`` steps. Called again with the same optimizers, it does nothing."""
        try:
            fresh = [o for o in optimizers if all(o is not k for k in self._optimizers)]
            if not fresh:
                return
            self._optimizers.extend(fresh)
            self._facts["optimizers"] = [_optimizer_facts(o) for o in self._optimizers]
            self._membership()
            if not self._watch_done:
                self._attach_step_hooks(fresh)
        except Exception:  # noqa: BLE001
            log.debug("atlas: could not read the optimizers", exc_info=True)

    def _real(self, optimizer: Any) -> Any:
        inner = getattr(optimizer, "optimizer", None)
        return inner if inner is not None and hasattr(inner, "param_groups") else optimizer

    def _membership(self) -> None:
        model = self._model
        if model is None:
            return
        held = {id(p) for o in self._optimizers for g in o.param_groups for p in g.get("params", ())}
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._params = trainable
        model_ids = {id(p) for _, p in trainable}
        in_opt = [n for n, p in trainable if id(p) in held]
        self._facts["parameters"] = {
            "trainable": len(trainable),
            "trainable_numel": int(sum(p.numel() for _, p in trainable)),
            "in_optimizer": len(in_opt),
            "in_optimizer_numel": int(sum(p.numel() for _, p in trainable if id(p) in held)),
            "foreign_in_optimizer": len(held - model_ids),
            **_frozen_at_init(model),
        }

    def _attach_step_hooks(self, optimizers: list[Any]) -> None:
        for o in optimizers:
            real = self._real(o)
            pre = getattr(real, "register_step_pre_hook", None)
            post = getattr(real, "register_step_post_hook", None)
            if pre is None or post is None:
                continue
            self._handles.append(pre(self._before_optimizer_step))
            self._handles.append(post(self._after_optimizer_step))
        held = {id(p) for o in self._optimizers for g in o.param_groups for p in g.get("params", ())}
        candidates = [(n, p) for n, p in self._params if id(p) in held]  # zero_grad clears what an optimizer holds
        if self._watched is None and candidates:
            name, p = min(candidates, key=lambda item: item[1].numel())  # the smallest: a bias, as a rule
            self._watched, self._watched_param = name, p
            self._handles.append(p.register_hook(self._incoming_grad(p)))

    def _incoming_grad(self, p: Any) -> Any:
        def hook(grad: Any) -> None:
            # Called with a new gradient before it is added to p.grad: right after an optimizer step p.grad is
            # None or zero unless nobody cleared it.
            self._grad_since_step = True
            if not self._after_step:
                return
            self._after_step = False
            try:
                old = p.grad
                if old is not None and bool(old.ne(0).any()):
                    self._not_cleared += 1
                    if self._not_cleared_first is None:
                        self._not_cleared_first = self._opt_steps
            except Exception:  # noqa: BLE001
                pass
            return None
        return hook

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        try:
            for i, (_, p) in enumerate(self._params):
                if p.grad is not None:
                    self._with_grad.add(i)
            watched = self._watched_param
            if self._grad_since_step and watched is not None and (watched.grad is None
                                                                  or not bool(watched.grad.ne(0).any())):
                self._cleared_before_step += 1  # backward reached it, and its gradient was gone at the step
            self._grad_since_step = False
        except Exception:  # noqa: BLE001
            pass

    def _after_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._opt_steps += 1
        self._after_step = True
        if self._opt_steps >= WATCHED_STEPS:
            self._finish_watch()

    def _finish_watch(self) -> None:
        if self._watch_done:
            return
        self._watch_done = True
        for h in self._handles:
            try:
                h.remove()
            except Exception:  # noqa: BLE001
                pass
        self._handles = []
        self._record_watch()

    def _record_watch(self) -> None:
        if not self._opt_steps:
            return
        f = self._facts
        f["grads_not_cleared"] = {"steps": self._not_cleared, "watched_steps": max(0, self._opt_steps - 1),
                                  "first_step": self._not_cleared_first, "parameter": self._watched}
        if self._watched is not None:
            f["grads_cleared_before_step"] = {"steps": self._cleared_before_step, "watched_steps": self._opt_steps,
                                              "parameter": self._watched}
        if self._params:
            held = {id(p) for o in self._optimizers for g in o.param_groups for p in g.get("params", ())}
            unused = [(n, p) for i, (n, p) in enumerate(self._params) if i not in self._with_grad]
            orphans = [(n, p) for i, (n, p) in enumerate(self._params) if i in self._with_grad and id(p) not in held]
            f["unused_parameters"] = {"count": len(unused), "numel": int(sum(p.numel() for _, p in unused)),
                                      "names": [n for n, _ in unused[:8]], "watched_steps": self._opt_steps}
            f["grad_without_optimizer"] = {"count": len(orphans),
                                           "numel": int(sum(p.numel() for _, p in orphans)),
                                           "names": [n for n, _ in orphans[:8]]}

    def batch(self, batch: Any) -> None:
        """A training batch, before its step (the first ``FIRST_BATCHES`` are summarised)."""
        if self._batches >= FIRST_BATCHES:
            return
        self._batches += 1
        try:
            x, y = _split_batch(batch)
            self._inputs(x)
            self._targets(y)
        except Exception:  # noqa: BLE001
            log.debug("atlas: could not summarise a batch", exc_info=True)
        if self._batches == FIRST_BATCHES:
            self._record_batches()

    def hook_inputs(self) -> None:
        """For adapters that never see the batch (plain loops, Accelerate): the model's first argument on its first
        ``FIRST_BATCHES`` training forward passes, from a forward pre-hook that then removes itself."""
        model = self._model
        if model is None or not hasattr(model, "register_forward_pre_hook"):
            return
        handle: list[Any] = []

        def hook(module: Any, args: Any) -> None:
            if not module.training:
                return
            if self._batches >= FIRST_BATCHES:
                if handle:
                    handle.pop().remove()
                return
            self._batches += 1
            try:
                self._inputs(_tensor(args[0]) if args else None)
            except Exception:  # noqa: BLE001
                pass
            if self._batches == FIRST_BATCHES:
                self._record_batches()

        handle.append(model.register_forward_pre_hook(hook))
        self._handles.append(handle[0])

    def _inputs(self, x: Any) -> None:
        if x is None or not x.numel():
            return
        self._facts.setdefault("inputs", {})
        info = self._facts["inputs"]
        info.setdefault("dtype", str(x.dtype).replace("torch.", ""))
        info.setdefault("shape", [int(v) for v in x.shape])
        if not x.is_floating_point():
            return
        import torch

        with torch.no_grad():
            v = x.detach().double()
            stats = torch.stack([v.sum(), (v * v).sum(), v.min(), v.max()]).tolist()
            if not all(math.isfinite(s) for s in stats):  # NaN or Inf in the data itself: counted, not averaged
                bad = int((~torch.isfinite(v)).sum())
                info["nonfinite_values"] = int(info.get("nonfinite_values", 0)) + bad
                info["nonfinite_batches"] = int(info.get("nonfinite_batches", 0)) + 1
                info.setdefault("first_nonfinite_batch", self._batches - 1)
                info.setdefault("nonfinite_batch_size", int(x.shape[0]) if x.dim() else 1)
                return
        self._x_sum += stats[0]
        self._x_sq += stats[1]
        self._x_n += x.numel()
        self._x_min = min(self._x_min, stats[2])
        self._x_max = max(self._x_max, stats[3])

    def _targets(self, y: Any) -> None:
        if y is None or not self._target_ok:
            return
        if y.is_floating_point() or y.dim() != 1 or y.dtype == __import__("torch").bool:
            self._target_ok = False  # regression, one-hot, sequences, masks: not a class per sample
            return
        values = y.detach().unique().tolist()
        if len(self._classes) + len(values) > _MAX_CLASSES or min(values, default=0) < 0:
            self._target_ok = False
            return
        self._classes.update(int(v) for v in values)
        self._batch_classes.append(len(values))
        self._batch_sizes.append(int(y.shape[0]))

    def _record_batches(self) -> None:
        f = self._facts
        if self._x_n:
            mean = self._x_sum / self._x_n
            var = max(0.0, self._x_sq / self._x_n - mean * mean)
            f.setdefault("inputs", {}).update({"mean": mean, "std": math.sqrt(var), "min": self._x_min,
                                               "max": self._x_max, "batches": self._batches})
        if self._target_ok and self._batch_classes:
            f["targets"] = {"classes_seen": len(self._classes), "max_label": max(self._classes),
                            "batch_classes": list(self._batch_classes), "batch_sizes": list(self._batch_sizes)}

    def watch_output(self, modules: Iterable[tuple[str, Any]]) -> None:
        """Hook the model's modules (containers and the model itself included) for one training forward pass.
        Forward hooks fire as each module's forward returns: the first to fire is the first layer (its input is
        what the network is fed), and the last one whose output is a 2-D float tensor is the outermost module
        called, whose output is the model's (a softmax applied as a function in `forward` included). Only that
        one output is held, until `unwatch_output`."""
        if self._output_done or self._output_hooks:
            return
        last: list[Any] = [None, None, None]
        calls: dict[str, int] = {}

        def make(name: str, leaf: bool) -> Any:
            def hook(module: Any, args: Any, output: Any) -> None:
                if not module.training:
                    return
                if not calls and leaf:  # the first layer that runs: what the network itself is fed
                    self._first_layer_input(name, module, args)
                calls[name] = calls.get(name, 0) + 1
                out = output if _tensor(output) is not None else (
                    output[0] if isinstance(output, (tuple, list)) and output else None)
                t = _tensor(out)
                if t is not None and t.dim() == 2 and t.is_floating_point():
                    last[0], last[1], last[2] = name, module, t
            return hook

        try:
            for name, module in modules:
                leaf = next(iter(module.children()), None) is None
                self._output_hooks.append(module.register_forward_hook(make(name or "(model)", leaf)))
        except Exception:  # noqa: BLE001
            self.unwatch_output()
            return
        self._last, self._calls = last, calls

    def _first_layer_input(self, name: str, module: Any, args: Any) -> None:
        """Statistics of the first layer's input on the first training step (the data as the network sees it,
        after whatever the model does to the batch before its first layer)."""
        try:
            x = _tensor(args[0]) if args else None
            info: dict[str, Any] = {"layer": name, "type": type(module).__name__}
            if x is not None:
                info["shape"] = [int(v) for v in x.shape]
            if x is not None and x.is_floating_point() and x.numel():
                import torch

                with torch.no_grad():
                    v = x.detach().double()
                    stats = torch.stack([v.mean(), v.std() if v.numel() > 1 else v.new_zeros(()), v.min(),
                                         v.max()]).tolist()
                if all(math.isfinite(t) for t in stats):
                    info.update({"mean": stats[0], "std": stats[1], "min": stats[2], "max": stats[3],
                                 "dtype": str(x.dtype).replace("torch.", "")})
            elif x is not None:
                info["dtype"] = str(x.dtype).replace("torch.", "")
            self._facts["first_layer_input"] = info
        except Exception:  # noqa: BLE001
            pass

    def unwatch_output(self) -> None:
        """After the step that the output hooks watched: remove them and record the output."""
        hooks, self._output_hooks = self._output_hooks, []
        for h in hooks:
            try:
                h.remove()
            except Exception:  # noqa: BLE001
                pass
        last, calls = getattr(self, "_last", None), getattr(self, "_calls", {})
        self._last, self._calls = None, {}
        self._output_tries += 1
        if calls or self._output_tries >= 3:
            self._output_done = True  # one watched training forward is all it takes: never hooked again
        if not last or last[0] is None:
            return  # no 2-D float output (a sequence model's [B, T, V], a dict): nothing to record
        try:
            name, module, output = last
            if _tensor(output) is None and isinstance(output, (tuple, list)) and output:
                output = output[0]
            out = _tensor(output)
            info: dict[str, Any] = {"layer": name, "type": type(module).__name__, "calls": calls.get(name, 1)}
            if out is not None and out.is_floating_point() and out.dim() == 2 and out.numel():
                import torch

                with torch.no_grad():
                    o = out.detach().float()
                    sums = o.sum(dim=-1)
                    stats = torch.stack([(sums - 1).abs().le(1e-3).float().mean(), o.min(), o.max()]).tolist()
                info.update({"width": int(o.shape[-1]), "rows_sum_to_one": stats[0], "min": stats[1],
                             "max": stats[2]})
            self._facts["output"] = info
        except Exception:  # noqa: BLE001
            log.debug("atlas: could not read the model's output", exc_info=True)

    def step(self, training: bool | None) -> None:
        """One training step: the model's train/eval mode on it."""
        if training is None:
            return
        self._steps += 1
        if not training:
            self._eval_steps += 1

    def eval_layers(self) -> None:
        """Dropout and normalisation layers left in eval mode (read at an epoch's first step)."""
        model = self._model
        if model is None:
            return
        try:
            kinds = ("Dropout", "BatchNorm", "InstanceNorm", "SyncBatchNorm")
            names = [n for n, m in model.named_modules() if any(k in type(m).__name__ for k in kinds)]
            if not names:
                self._facts["mode_layers"] = {"count": 0, "eval": 0}
                return
            modules = dict(model.named_modules())
            evals = [n for n in names if not modules[n].training]
            self._facts["mode_layers"] = {"count": len(names), "eval": len(evals), "names": evals[:8]}
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------------------------------- reading --
    def take(self) -> dict[str, Any]:
        """The facts that are new or changed since the last call (for the epoch summary)."""
        if self._batches and self._batches < FIRST_BATCHES:
            self._record_batches()  # an epoch shorter than FIRST_BATCHES batches
        if self._opt_steps and not self._watch_done:
            self._record_watch()
        if self._steps:  # this epoch's steps
            self._facts["training_mode"] = {"steps": self._steps, "eval_steps": self._eval_steps}
            self._steps = self._eval_steps = 0
        out = {k: v for k, v in self._facts.items() if self._sent.get(k) != v}
        self._sent.update({k: _copy(v) for k, v in out.items()})
        return out

    def contribute(self, summary: tpb.EpochSummary) -> None:
        """The `Channel` epoch contribution: the facts new or changed since the previous epoch."""
        facts = self.take()
        if facts:
            summary.facts.update(facts)

    def close(self) -> None:
        for h in self._handles + self._output_hooks:
            try:
                h.remove()
            except Exception:  # noqa: BLE001
                pass
        self._handles = []
        self._output_hooks = []


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


FROZEN_CHECK_VALUES = 20_000_000  # at most this many frozen weights are read (once, when the optimizer is known)


def _frozen_at_init(model: Any) -> dict[str, int]:
    """How many frozen weight values were checked, and how many of them lie in tensors still inside PyTorch's
    default initialisation bound (Linear and Conv: uniform within 1/sqrt(fan_in)). Pretrained or trained weights
    leave that bound; a backbone frozen before its weights were loaded does not (frozen_backbone). Matrices and
    kernels only (a bias's bound depends on its layer), the first FROZEN_CHECK_VALUES values; one abs-max per
    tensor, read once."""
    import torch

    checked = at_init = 0
    with torch.no_grad():
        for _, p in model.named_parameters():
            try:
                if p.requires_grad or p.dim() < 2 or p.numel() == 0:
                    continue
                n = p.numel()
                if checked + n > FROZEN_CHECK_VALUES:
                    break
                bound = 1.0 / math.sqrt(p[0].numel())
                if float(p.detach().abs().amax()) <= bound * (1 + 1e-4):
                    at_init += n
                checked += n
            except (RuntimeError, ValueError):  # an uninitialised (lazy) parameter has no values yet
                continue
    return {"frozen_checked_numel": checked, "frozen_at_init_numel": at_init}
