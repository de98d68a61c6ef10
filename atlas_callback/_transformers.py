"""`AtlasTransformersCallback`: the Hugging Face Transformers ``Trainer`` adapter, a thin shell over `RunCore`.

    from atlas_callback import AtlasTransformersCallback
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      callbacks=[AtlasTransformersCallback(project="nlp", run_name="bert-small")])

A step is an optimizer step (``state.global_step``), whatever ``gradient_accumulation_steps`` is: its loss is its
micro-batches' losses (read from the model's output, so a NaN is seen at once) combined as the Trainer combines them
for its logged ``loss`` (their mean, or their sum where the Trainer takes the loss as already scaled for gradient
accumulation), its learning rate the one the optimizer step used, its batch size and tokens the sums of its
micro-batches'. Every value the Trainer logs (``loss``,
``grad_norm``, ``learning_rate``, ``eval_*``, throughput) is kept as a user metric at its step; the Trainer's
``grad_norm`` (before clipping) is the step's gradient norm; ``eval_*`` metrics are the epoch's validation metrics
(``eval_loss`` as ``val_loss``). STOP sets ``control.should_training_stop``; PAUSE blocks at the end of the step.
Under ``torchrun`` every process is one rank of the same run (rank zero makes the run id and broadcasts it).

This module imports neither transformers nor torch at import time: the Trainer calls its callbacks by their hook
names, so the class needs no Transformers base class, and ``from atlas_callback import
AtlasTransformersCallback`` stays cheap.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from ._config import AtlasConfig
from ._core import RunCore, _errors, never_raises
from ._options import RunOptions

log = logging.getLogger(__name__)

# TrainerCallback's hooks this adapter does not need: the Trainer calls every hook of every callback.
_UNUSED = ("on_init_end", "on_pre_optimizer_step", "on_optimizer_step", "on_substep_end", "on_predict", "on_save",
           "on_prediction_step", "on_push_begin")
# Keys of the Trainer's logs that are not metrics of a step.
_NOT_METRICS = frozenset({"epoch", "step"})
_TIMING = ("_runtime", "_per_second")  # eval_runtime, eval_samples_per_second: user metrics, not validation ones
_INPUT_KEYS = ("input_ids", "inputs_embeds", "pixel_values", "input_values", "input_features", "x")


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


def _val_name(key: str) -> str:
    """``eval_loss`` -> ``val_loss``: the names the diagnostics read (val_loss, val_acc, val_accuracy)."""
    return "val_" + key[5:] if key.startswith("eval_") else key


class AtlasTransformersCallback:
    """Stream a Hugging Face ``Trainer`` run's telemetry to an Atlas collector.

    Example::

        Trainer(..., callbacks=[AtlasTransformersCallback(project="nlp", run_name="bert-small")])

    Arguments are those of :class:`AtlasCallback`. Hyperparameters are ``TrainingArguments.to_dict()`` and the model's
    config (``model.<key>``).
    """

    def __init__(
        self,
        project: str = "default",
        run_name: str | None = None,
        collector: str | None = None,
        *,
        token: str | None = None,
        tls_ca: str | None = None,
        run_id: str | None = None,
        tags: list[str] | None = None,
        on_critical: str = "warn",
        pause_timeout: float = 3600.0,
        config: AtlasConfig | None = None,
    ) -> None:
        self._core = RunCore("transformers", RunOptions.of(locals()))
        self._agreement: Any = None
        self._distributed = False
        self._hooks: list[Any] = []
        self._losses: list[Any] = []  # this step's micro-batch losses (detached: no device synchronisation)
        self._batch_n = 0  # this step's samples and tokens, over its micro-batches
        self._tokens = 0
        self._optimizer: Any = None
        self._pending: list[Any] | None = None  # a step kept until the Trainer logs it (its grad_norm): see on_log
        self._val: dict[str, float] = {}
        self._epoch = 0
        self._epoch_open = False  # an epoch ended in the Trainer, its summary waits for the evaluation after it
        self._ended = False
        self._control_due = False  # the step's stop/pause check waits for its log (`on_log`)
        self._sum_losses = False  # the Trainer takes micro-batch losses as scaled for accumulation: their sum
        self._lr: Any = None

    @property
    def run_id(self) -> str | None:
        return self._core.run_id

    @property
    def should_stop(self) -> bool:
        return self._core.should_stop

    def alert(self, title: str, text: str = "", level: str = "warning") -> None:
        """An alert from the training code, as `AtlasCallback.alert` (`atlas issues`, the alert routes)."""
        self._core.alert(title, text, level)

    # ------------------------------------------------------------------------------------ hooks

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._begin(args, state, model)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._close_epoch()
        self._core.epoch_start(self._epoch)

    def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        if self._control_due:  # the log the last step waited for never came
            self._flush_step()
            self._control(control)
        self._flush_step()
        self._core.before_step()
        self._read_lr(optimizer)

    def on_step_end(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        if not self._core.started:
            return
        self._keep_step(state, optimizer)
        if control.should_log:  # the Trainer logs this step next (its grad_norm): recorded, then controlled, there
            self._control_due = True
            return
        self._flush_step()
        self._control(control)

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
               **kwargs: Any) -> None:
        self._log(state, logs or {})
        if self._control_due:
            self._control(control)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> None:
        for key, value in (metrics or {}).items():
            number = _float(value)
            if number is not None and key.startswith("eval_") and not key.endswith(_TIMING):
                self._val[_val_name(key)] = number
        if self._epoch_open:  # the evaluation that follows an epoch's end: the epoch closes with it
            self._close_epoch()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._flush_step()
        self._epoch_open = True  # closed by the evaluation that follows, the next epoch or the end

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._end()

    def __getattr__(self, name: str) -> Any:
        if name in _UNUSED:
            return _noop
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---------------------------------------------------------------------------------- workers

    @never_raises
    def _begin(self, args: Any, state: Any, model: Any) -> None:
        core = self._core
        if core.started or not core.enabled:
            return
        self._ended = False
        rank = int(getattr(args, "process_index", 0) or 0)
        world = int(getattr(args, "world_size", 1) or 1)
        self._distributed = world > 1
        if self._distributed:
            self._share_run_id(rank)
            from ._lightning import _Agreement  # the ranks agree on stop/pause as Lightning's DDP ranks do

            self._agreement = _Agreement.create(None)  # collective: every rank, here
        else:
            core.new_run_id()
        hparams: dict[str, Any] = {}
        try:
            hparams.update(args.to_dict())
        except Exception:  # noqa: BLE001 - hyperparameters are a nicety
            pass
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            try:
                hparams.update({f"model.{k}": v for k, v in model_config.to_dict().items()})
            except Exception:  # noqa: BLE001
                pass
        device: Any = getattr(args, "device", "cpu")
        core.start_on(device, hyperparameters=hparams, rank=rank, world_size=world)
        self._sum_losses = _sums_losses(_calling_trainer(self))
        if model is not None:
            core.attach_model(model)
            self._hook(model)
            if core.facts is not None:
                core.facts.setup(grad_clip=float(getattr(args, "max_grad_norm", 0.0) or 0.0),
                                 max_epochs=int(getattr(args, "num_train_epochs", 0) or 0) or None,
                                 manual=False)
        core.epoch_start(self._epoch)

    @never_raises
    def _share_run_id(self, rank: int) -> None:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            self._core.new_run_id()
            return
        box = [self._core.new_run_id() if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        self._core.run_id = box[0]

    def _hook(self, model: Any) -> None:
        """Per micro-batch: its samples and tokens (a forward pre-hook) and its loss (a forward hook)."""
        if not hasattr(model, "register_forward_pre_hook"):
            return
        facts = self._core.facts

        def before(module: Any, args: Any, kwargs: Any) -> None:
            if not module.training:
                return
            try:
                count(args, kwargs)
            except Exception:  # noqa: BLE001 - an exotic input: no batch size, never a failed step
                _errors.warning("hf.before", "atlas: could not read a batch size (training continues)",
                                exc_info=True)

        def count(args: Any, kwargs: Any) -> None:
            ids = kwargs.get("input_ids")  # the common case first: one lookup (this runs on every micro-batch)
            if ids is not None:
                shape = ids.shape
                if len(shape) > 1:
                    self._tokens += shape[0] * shape[1]
            else:
                x = next((kwargs[k] for k in _INPUT_KEYS if kwargs.get(k) is not None), args[0] if args else None)
                shape = getattr(x, "shape", None)
            if shape:
                self._batch_n += shape[0]
            if facts is not None and facts._batches < 3:
                facts.batch(kwargs or args)

        def after(module: Any, args: Any, output: Any) -> None:
            if not module.training:
                return
            try:
                loss = getattr(output, "loss", None)  # a ModelOutput; else a dict with "loss"
                if loss is None and isinstance(output, Mapping):
                    loss = output.get("loss")
                if loss is not None and getattr(loss, "ndim", 1) == 0:
                    self._losses.append(loss.detach())
            except Exception:  # noqa: BLE001 - the trainer comes first
                _errors.warning("hf.after", "atlas: could not read the loss (training continues)", exc_info=True)

        self._hooks.append(model.register_forward_pre_hook(before, with_kwargs=True))
        self._hooks.append(model.register_forward_hook(after))

    @never_raises
    def _keep_step(self, state: Any, optimizer: Any) -> None:
        """The step the Trainer just took, kept until it is recorded (`_flush_step`)."""
        losses, self._losses = self._losses, []
        loss: Any = None
        if len(losses) == 1:
            loss = losses[0]
        elif losses:
            import torch

            loss = torch.stack(losses).sum() if self._sum_losses else torch.stack(losses).mean()
        lr, self._lr = self._lr, None
        if lr is None:
            self._read_lr(optimizer)
            lr, self._lr = self._lr, None
        amp_skipped = bool(getattr(self._optimizer, "step_was_skipped", False))
        n, tokens = self._batch_n, self._tokens
        self._batch_n = self._tokens = 0
        self._pending = [loss, n or None, (tokens // n) if n and tokens else None, lr, int(state.global_step),
                         amp_skipped, None]

    def _read_lr(self, optimizer: Any) -> None:
        """The first param group's learning rate before the step (the one the optimizer step uses)."""
        if optimizer is not None and optimizer is not self._optimizer:
            self._optimizer = optimizer
            if self._core.facts is not None:
                self._core.facts.watch_optimizers([optimizer])
        try:
            self._lr = self._optimizer.param_groups[0].get("lr") if self._optimizer is not None else None
        except (AttributeError, IndexError, TypeError):
            self._lr = None

    def _flush_step(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        loss, n, seq, lr, step, amp_skipped, grad_norm = pending
        self._core.step(loss, batch_size=n, seq_len=seq, lr=lr, global_step=step, grad_norm=grad_norm,
                        amp_skipped=amp_skipped)

    @never_raises
    def _log(self, state: Any, logs: Mapping[str, Any]) -> None:
        core = self._core
        if not core.started:
            return
        if self._pending is not None:
            grad_norm = _float(logs.get("grad_norm"))
            if grad_norm is not None:
                self._pending[6] = grad_norm
            self._flush_step()
        values = {k: v for k, v in logs.items() if k not in _NOT_METRICS}
        if values:
            core.log_metrics(values, int(state.global_step))

    @never_raises
    def _control(self, control: Any) -> None:
        """Every rank at the same point (the end of a step): agree on stop/pause under torchrun, then apply."""
        self._control_due = False
        if not self._distributed and self._core.control.quiet:  # alone and nothing asked: nothing to do
            return
        agreement = self._agreement
        agree: Any = None
        meet: Any = None
        if agreement is not None:
            agree = agreement.exchange
            meet = lambda stop: agreement.now(stop, False)[0]  # noqa: E731 - the ranks resume at different moments
        reason = self._core.at_batch_boundary(agree, meet)
        if reason is not None:
            log.info("atlas: stopping training at step %d: %s", self._core.global_step, reason)
            control.should_training_stop = True

    @never_raises
    def _close_epoch(self) -> None:
        if not self._epoch_open or not self._core.started:
            return
        self._epoch_open = False
        self._flush_step()
        val, self._val = self._val, {}
        lrs: list[float] = []
        if self._optimizer is not None:
            try:
                lrs = [float(g["lr"]) for g in self._optimizer.param_groups if "lr" in g]
            except (AttributeError, KeyError, TypeError, ValueError):
                lrs = []
        self._core.epoch_end(self._epoch, val_metrics=val, lrs=lrs)
        self._epoch += 1

    @never_raises
    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._flush_step()
        self._close_epoch()
        if self._agreement is not None:
            self._agreement.close()
            self._agreement = None
        self._core.end("completed")  # "stopped" when Atlas stopped it
        hooks, self._hooks = self._hooks, []
        for h in hooks:
            h.remove()


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _calling_trainer(callback: Any) -> Any:
    """The Trainer whose `on_train_begin` is calling (no other handle reaches a callback), or None."""
    import inspect

    frame = inspect.currentframe()
    for _ in range(12):
        frame = frame.f_back if frame is not None else None
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        handler = getattr(candidate, "callback_handler", None)
        if handler is not None and callback in getattr(handler, "callbacks", ()):
            return candidate
    return None


def _sums_losses(trainer: Any) -> bool:
    """Whether the Trainer sums its micro-batch losses for its logged loss (it takes each as already scaled for
    gradient accumulation), as `Trainer.training_step` decides; else it averages them."""
    if trainer is None:
        return False
    scaled = getattr(trainer, "loss_is_scaled_for_ga", None)
    if scaled is not None:
        return bool(scaled)
    return bool(getattr(trainer, "model_accepts_loss_kwargs", False)) or \
        getattr(trainer, "compute_loss_func", None) is not None
