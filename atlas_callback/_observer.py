"""`Observer`: Atlas for plain PyTorch loops, a thin shell over `RunCore`.

    with Observer(project="mnist", run_name="plain") as obs:
        obs.register_model(model)
        for epoch in range(epochs):
            for x, y in loader:
                loss = loss_fn(model(x), y)
                optimizer.zero_grad(); loss.backward(); optimizer.step()
                obs.step(loss, batch_size=len(x), optimizer=optimizer)
                if obs.should_stop:
                    break
            obs.flush(val_metrics={"val_loss": evaluate(model)})
"""
from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Mapping

from ._config import AtlasConfig
from ._core import RunCore, never_raises
from ._options import RunOptions

log = logging.getLogger(__name__)


def _dist() -> tuple[int, int]:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except Exception:  # noqa: BLE001
        pass
    return 0, 1


class Observer:
    """Stream a plain PyTorch training loop's telemetry to an Atlas collector.

    Args are those of :class:`AtlasCallback`, plus ``hyperparameters`` (a dict stored with the run).
    The run starts at `register_model` (or the first `step`), an epoch ends at `flush`, the run ends at
    `close` (or leaving the ``with`` block: ``failed`` with the exception if one escapes it).
    Under ``torch.distributed`` each process is one rank of the same run when all pass the same
    ``run_id``.
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
        hyperparameters: Mapping[str, Any] | None = None,
    ) -> None:
        if hyperparameters is not None and not isinstance(hyperparameters, Mapping):
            raise ValueError(f"`hyperparameters` must be a dict, got {type(hyperparameters).__name__}")
        self._core = RunCore("pytorch", RunOptions.of(locals()))
        self._hyperparameters = dict(hyperparameters or {})
        self._model: Any = None
        self._optimizer: Any = None  # the last optimizer `step` was given (its facts are read once)
        self._metrics: dict[str, float] = {}
        self._epoch = 0

    @property
    def run_id(self) -> str | None:
        return self._core.run_id

    @property
    def should_stop(self) -> bool:
        """True once the collector (or the non-finite-loss policy) asked the run to stop."""
        return self._core.should_stop

    # ---------------------------------------------------------------------------------- public

    def register_model(self, model: Any) -> None:
        """Start the run on the model's device, install the architecture and layer-health channels."""
        self._model = model
        self._ensure_started()
        self._core.attach_model(model)
        if self._core.facts is not None:
            self._core.facts.hook_inputs()
        self._core.before_step()

    def step(
        self,
        loss: Any = None,
        *,
        batch_size: int | None = None,
        seq_len: int | None = None,
        optimizer: Any = None,
        lr: float | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Record one optimisation step; call it after ``optimizer.step()``. Blocks only while paused."""
        core = self._core
        if not core.started:
            self._ensure_started()
        if optimizer is not None:
            if lr is None:
                lr = _first_lr(optimizer)
            if optimizer is not self._optimizer:
                self._optimizer = optimizer
                if core.facts is not None:
                    core.facts.watch_optimizers([optimizer])
        grad_norm = core.grad_norm(self._model.parameters()) if self._model is not None else None
        core.step(loss, batch_size=batch_size, seq_len=seq_len, lr=lr, metrics=metrics, grad_norm=grad_norm)
        self._control()
        core.before_step()  # instrument the next step (sampled steps only)

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Any other metric: every scalar kept at `step` (default: the current step; `atlas metrics RUN`), and the
        last value of the epoch kept for the epoch summary (`val*` keys as validation metrics)."""
        if not isinstance(metrics, Mapping):
            raise ValueError(f"`metrics` must be a dict of name -> number, got {type(metrics).__name__}")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise ValueError(f"`step` must be an integer >= 0 or None, got {step!r}")
        for key, value in metrics.items():  # (before the run starts, the points wait for it: no device known yet)
            try:
                self._metrics[str(key)] = float(value)
            except (TypeError, ValueError, RuntimeError):
                continue
        self._core.log_metrics(metrics, step)

    def alert(self, title: str, text: str = "", level: str = "warning") -> None:
        """Tell people now (as `wandb.alert`): the alert goes with the run's telemetry to the collector, which shows
        it in `atlas issues` and sends it to its alert routes (Slack, e-mail, webhooks). `level`: "info",
        "warning" (default) or "error". Example: ``obs.alert("val loss spiked", f"val_loss={v:.3f}")``."""
        self._core.alert(title, text, level)

    def flush(self, val_metrics: Mapping[str, Any] | None = None) -> None:
        """End the current epoch: send its summary with `val_metrics` (and metrics given to `log`)."""
        if not self._core.started:
            self._ensure_started()
        val = {k: v for k, v in self._metrics.items() if k.startswith("val")}
        val.update(val_metrics or {})
        train = {k: v for k, v in self._metrics.items() if not k.startswith("val")}
        self._metrics = {}
        lrs: list[float] = []
        if self._optimizer is not None:  # the optimizer `step` was given: its LR per param group, as Lightning's
            try:
                lrs = [float(g["lr"]) for g in self._optimizer.param_groups if "lr" in g]
            except (AttributeError, TypeError, ValueError):
                lrs = []
        self._core.epoch_end(self._epoch, val_metrics=val, train_metrics=train, lrs=lrs)
        self._epoch += 1
        self._core.epoch_start(self._epoch)

    def close(self, exc: BaseException | None = None) -> None:
        """End the run (completed, stopped, or failed with `exc`) and flush, bounded. Safe to call twice."""
        self._core.end("failed" if exc is not None else "completed", exc)

    def __enter__(self) -> "Observer":
        if _dist()[0] == 0:  # the run starts at the model or the first step; what is logged from here on is kept
            self._core.capture_logs_early()
            self._core.start_carbon_early()  # and CodeCarbon starts while the script loads its data
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(exc)

    # ------------------------------------------------------------------------------- internals

    @never_raises
    def _ensure_started(self) -> None:
        if self._core.started:
            return
        device: Any = "cpu"
        if self._model is not None:
            first = next(iter(self._model.parameters()), None)
            if first is not None:
                device = first.device
        rank, world = _dist()
        self._core.start_on(device, hyperparameters=self._hyperparameters, rank=rank, world_size=world)
        self._core.epoch_start(0)

    @never_raises
    def _control(self) -> None:
        reason = self._core.at_batch_boundary()
        if reason is not None:
            log.warning("atlas: stop requested: %s (the loop should check `observer.should_stop`)", reason)


def _first_lr(optimizer: Any) -> float | None:
    try:
        return float(optimizer.param_groups[0]["lr"])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
