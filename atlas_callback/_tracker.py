"""`AtlasTracker`: Atlas for Hugging Face Accelerate, a thin shell over `RunCore`.

    tracker = AtlasTracker(project="nlp", run_name="bert-small")
    accelerator = Accelerator(log_with=[tracker])
    accelerator.init_trackers("nlp", config={"lr": 3e-4})
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    tracker.watch(model)
    for epoch in range(epochs):
        for batch in loader:
            ...; accelerator.backward(loss); optimizer.step(); optimizer.zero_grad()
            accelerator.log({"loss": loss.item()}, step=step)   # a PAUSE blocks here
            if accelerator.check_trigger():                      # a STOP sets the trigger
                break
        tracker.epoch_end(val_metrics={"val_loss": val_loss})
    accelerator.end_training()

`accelerator.log` runs on the main process only, so per-step records come from rank zero; call
`tracker.epoch_end` on every process so each rank reports its own throughput, memory and GPU.
"""
from __future__ import annotations

import inspect
import logging
import os
from typing import Any, Mapping

from accelerate.tracking import GeneralTracker

from ._config import AtlasConfig
from ._core import RunCore, never_raises
from ._options import RunOptions

log = logging.getLogger(__name__)

LOSS_KEYS = ("loss", "train_loss")


class AtlasTracker(GeneralTracker):
    """An Accelerate tracker: ``Accelerator(log_with=[AtlasTracker(project=...)])``.

    Arguments are those of :class:`AtlasCallback`. A key ``loss`` or ``train_loss`` in
    ``accelerator.log`` is the step's loss; other keys are kept as step metrics and, averaged, in the
    epoch summary (``val*`` keys as validation metrics).
    """

    name = "atlas"
    requires_logging_directory = False
    main_process_only = False

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
        super().__init__()
        self._core = RunCore("accelerate", RunOptions.of(locals()))
        self._accelerator: Any = None
        self._model: Any = None
        self._hparams: dict[str, Any] = {}
        self._epoch = 0
        self._epoch_metrics: dict[str, list[float]] = {}
        self._batch_n: int | None = None  # the last training forward's batch size (a forward pre-hook, `watch`)
        self._grad: Any = None  # the gradient norm read before the last optimizer step (sampled steps)
        self._hooks: list[Any] = []
        self._step_hooked = False
        if os.environ.get("RANK", "0") == "0":  # the run starts with the Accelerator: CodeCarbon starts now
            self._core.start_carbon_early()

    @property
    def tracker(self) -> "AtlasTracker":
        return self

    @property
    def run_id(self) -> str | None:
        return self._core.run_id

    @property
    def should_stop(self) -> bool:
        return self._core.should_stop

    # ------------------------------------------------------------------------- Accelerate API

    def start(self) -> None:
        """Called by ``accelerator.init_trackers``: find the Accelerator. The run itself starts at the
        first `store_init_configuration`, `watch`, `log` or `epoch_end`, so RunStart carries the config."""
        self._accelerator = self._accelerator or _calling_accelerator()

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        if self._core.started:
            log.warning("atlas: hyperparameters given after the run started are not recorded")
            return
        self._hparams.update(values or {})
        self._start()

    def alert(self, title: str, text: str = "", level: str = "warning") -> None:
        """Tell people now (as `wandb.alert`): the alert goes with the run's telemetry to the collector, which shows
        it in `atlas issues` and sends it to its alert routes (Slack, e-mail, webhooks). `level`: "info",
        "warning" (default) or "error". Example: ``tracker.alert("val loss spiked", f"val_loss={v:.3f}")``."""
        self._core.alert(title, text, level)

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """One step: the loss (``loss``/``train_loss``) and any other metrics; a PAUSE blocks here."""
        if not self._core.started:
            self._start()
        loss = None
        metrics: dict[str, float] = {}
        for key, value in values.items():
            if key in LOSS_KEYS and loss is None:
                loss = value
                continue
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError):
                continue
        for key, value in metrics.items():
            self._epoch_metrics.setdefault(key, []).append(value)
        self._core.log_metrics(values, step)  # every scalar kept at the step it was logged at (`atlas metrics`)
        optimizer_lr = metrics.get("lr", metrics.get("learning_rate"))
        if optimizer_lr is None:
            optimizer_lr = self._first_lr()
        grad_norm, self._grad = self._grad, None
        if grad_norm is None and not self._step_hooked and self._model is not None:  # no optimizer hook: read here
            grad_norm = self._core.grad_norm(self._model.parameters())
        self._core.step(loss, lr=optimizer_lr, global_step=step + 1 if step is not None else None,
                        metrics=metrics, grad_norm=grad_norm, batch_size=self._batch_n)
        self._control()
        self._core.before_step()

    def finish(self) -> None:
        self._core.end("completed")
        hooks, self._hooks = self._hooks, []
        for h in hooks:
            h.remove()

    # --------------------------------------------------------------------------------- Atlas API

    def watch(self, model: Any, accelerator: Any = None) -> None:
        """Install the architecture and layer-health channels on `model` (after ``accelerator.prepare``)."""
        if accelerator is not None:
            self._accelerator = accelerator
        self._model = model
        if not self._core.started:
            self._start()
        unwrapped = model
        if self._accelerator is not None:
            try:
                unwrapped = self._accelerator.unwrap_model(model)
            except Exception:  # noqa: BLE001
                unwrapped = model
        self._core.attach_model(unwrapped)
        self._hook(unwrapped)
        facts = self._core.facts
        if facts is not None:
            facts.hook_inputs()
            acc = self._accelerator
            if acc is not None:
                facts.setup(optimizers=list(getattr(acc, "_optimizers", [])),
                            schedulers=[{"type": type(getattr(s, "scheduler", s)).__name__, "interval": "unknown",
                                         "frequency": 1} for s in getattr(acc, "_schedulers", [])],
                            manual=True)
        self._core.before_step()

    def epoch_end(self, val_metrics: Mapping[str, Any] | None = None) -> None:
        """Close an epoch: its summary with `val_metrics` and the averages of the metrics logged during it."""
        if not self._core.started:
            self._start()
        averaged = {k: sum(v) / len(v) for k, v in self._epoch_metrics.items() if v}
        self._epoch_metrics = {}
        val = {k: v for k, v in averaged.items() if k.startswith("val")}
        val.update(val_metrics or {})
        train = {k: v for k, v in averaged.items() if not k.startswith("val")}
        lrs = []
        if self._accelerator is not None:
            for opt in getattr(self._accelerator, "_optimizers", []):
                lrs.extend(group.get("lr", 0.0) for group in opt.param_groups)
        self._core.epoch_end(self._epoch, val_metrics=val, train_metrics=train, lrs=lrs)
        self._epoch += 1
        self._core.epoch_start(self._epoch)

    @never_raises
    def _hook(self, model: Any) -> None:
        """The batch size from each training forward (for throughput), and the gradient norm just before each
        optimizer step (the documented loop clears the gradients before `accelerator.log`)."""
        if self._hooks:
            return

        def batch(module: Any, args: Any) -> None:
            if module.training and args:
                shape = getattr(args[0], "shape", None)
                if shape:
                    self._batch_n = int(shape[0])

        if hasattr(model, "register_forward_pre_hook"):
            self._hooks.append(model.register_forward_pre_hook(batch))
        params = list(model.parameters()) if hasattr(model, "parameters") else []

        def before_step(optimizer: Any, args: Any, kwargs: Any) -> None:
            if self._core.grad_due():
                self._grad = self._core.grad_norm(params)

        for opt in getattr(self._accelerator, "_optimizers", []) if self._accelerator is not None else []:
            real = getattr(opt, "optimizer", opt)
            register = getattr(real, "register_step_pre_hook", None)
            if register is not None:
                self._hooks.append(register(before_step))
                self._step_hooked = True

    def _first_lr(self) -> float | None:
        try:
            opts = getattr(self._accelerator, "_optimizers", []) if self._accelerator is not None else []
            return float(opts[0].param_groups[0]["lr"]) if opts else None
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            return None

    def fail(self, exc: BaseException) -> None:
        """End the run as failed with `exc` (call from your ``except`` block)."""
        self._core.end("failed", exc)

    # ------------------------------------------------------------------------------- internals

    @never_raises
    def _start(self) -> None:
        if self._core.started:
            return
        from accelerate.state import PartialState

        state = PartialState()
        self._core.start_on(state.device, hyperparameters=self._hparams, rank=state.process_index,
                            world_size=state.num_processes)
        self._core.epoch_start(0)

    @never_raises
    def _control(self) -> None:
        reason = self._core.at_batch_boundary()
        if reason is None:
            return
        if self._accelerator is not None:
            self._accelerator.set_trigger()
            log.warning("atlas: stop requested (%s): accelerator.set_trigger() called; "
                        "`accelerator.check_trigger()` now returns True", reason)
        else:
            log.warning("atlas: stop requested (%s) but no Accelerator is known: check `tracker.should_stop`", reason)


def _calling_accelerator() -> Any:
    """The Accelerator whose ``init_trackers`` is calling ``start`` (no other handle reaches the tracker)."""
    try:
        from accelerate import Accelerator

        frame = inspect.currentframe()
        for _ in range(6):
            frame = frame.f_back if frame is not None else None
            if frame is None:
                break
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, Accelerator):
                return candidate
    except Exception:  # noqa: BLE001
        pass
    return None
