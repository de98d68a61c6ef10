"""`AtlasCallback`: the Lightning adapter, a thin shell over `RunCore`.

It derives from the Callback class of every Lightning package that is installed (`lightning.pytorch`
and `pytorch_lightning`), so either package's Trainer accepts it."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from typing_extensions import override

from ._config import AtlasConfig
from ._core import RunCore, never_raises
from ._options import RunOptions

log = logging.getLogger(__name__)


def _callback_bases() -> tuple[type, ...]:
    bases: list[type] = []
    try:
        from lightning.pytorch import Callback as _LCallback

        bases.append(_LCallback)
    except ImportError:
        pass
    try:
        from pytorch_lightning import Callback as _PLCallback

        if _PLCallback not in bases:
            bases.append(_PLCallback)
    except ImportError:
        pass
    if not bases:
        raise ImportError("AtlasCallback needs `lightning` or `pytorch_lightning`: pip install lightning")
    return tuple(bases)


def _batch_size(batch: Any) -> int | None:
    try:
        return _find_batch_size(batch)
    except Exception:  # noqa: BLE001 - an exotic batch type: no batch size, never a failed step
        return None


def _find_batch_size(batch: Any) -> int | None:
    if type(batch) in (list, tuple) and batch:  # the common (inputs, targets) first, in one call
        shape = getattr(batch[0], "shape", None)
        if shape:
            return int(shape[0])
    shape = getattr(batch, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else None
    if isinstance(batch, (list, tuple)):
        for item in batch:
            size = _find_batch_size(item)
            if size is not None:
                return size
    elif isinstance(batch, Mapping):
        for item in batch.values():
            size = _find_batch_size(item)
            if size is not None:
                return size
    return None


def _step_counter(trainer: Any) -> Any:
    """The progress counter whose ``completed`` is ``trainer.global_step``, found as that property finds it, or None
    where this Lightning lays its loops out otherwise. Read at every step: the property walks five others."""
    try:
        loop = trainer.fit_loop.epoch_loop
        module = trainer.lightning_module
        if module is None or module.automatic_optimization:
            counter = loop.automatic_optimization.optim_progress.optimizer.step.total
        else:
            counter = loop.manual_optimization.optim_step_progress.total
        if counter.completed == trainer.global_step:
            return counter
    except Exception:  # noqa: BLE001 - another layout: read `trainer.global_step` instead
        pass
    return None


def _schedulers(trainer: Any) -> list[dict[str, Any]]:
    out = []
    for config in getattr(trainer, "lr_scheduler_configs", None) or ():
        out.append({"type": type(config.scheduler).__name__, "interval": str(config.interval),
                    "frequency": int(config.frequency)})
    return out


def _sampler(trainer: Any) -> str | None:
    """The training sampler's class (a DistributedSampler says whether it shuffles), or None."""
    try:
        loader = trainer.train_dataloader
        sampler = getattr(loader, "sampler", None)
        if sampler is None:
            return None
        name = type(sampler).__name__
        if hasattr(sampler, "shuffle"):
            name += f"(shuffle={bool(sampler.shuffle)})"
        return name
    except Exception:  # noqa: BLE001
        return None


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if getattr(value, "numel", lambda: 1)() != 1:
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError, RuntimeError):
            continue
    return out


class _Agreement:
    """Stop and pause agreed by every DDP rank, without a device synchronisation on the step path.

    Each rank's flags are summed by an all-reduce on a gloo (CPU) process group of their own, started
    asynchronously at the end of step n and read at the end of step n+1, when it has long completed: every rank
    then acts on the same agreed flags at the same step, one step after the first rank raised one (a STOP, a
    PAUSE, a NaN loss: within one batch still). An all-reduce on the training device read back at once would
    stall the host until the GPU had finished the step, every step."""

    def __init__(self, group: Any) -> None:
        self._group = group
        self._work: Any = None
        self._flags: Any = None

    @classmethod
    def create(cls, trainer: Any) -> _Agreement | None:
        """A gloo group for the flags (the default group when it is gloo already); None without torch.distributed
        (e.g. a strategy that is not process-group based): the ranks then agree through the strategy, blocking."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return None
        group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
        return cls(group)

    def exchange(self, stop: bool, pause: bool) -> tuple[bool, bool]:
        """Send this step's flags; return the flags agreed at the previous step."""
        import torch
        import torch.distributed as dist

        agreed = self._result()
        self._flags = torch.tensor([float(stop), float(pause)])
        self._work = dist.all_reduce(self._flags, group=self._group, async_op=True)
        return agreed

    def now(self, stop: bool, pause: bool) -> tuple[bool, bool]:
        """Agree at once (blocking): after a pause, where the ranks resume at different moments."""
        import torch
        import torch.distributed as dist

        self._result()
        flags = torch.tensor([float(stop), float(pause)])
        dist.all_reduce(flags, group=self._group)
        return bool(flags[0] > 0), bool(flags[1] > 0)

    def _result(self) -> tuple[bool, bool]:
        if self._work is None:
            return False, False
        self._work.wait()
        self._work = None
        stop, pause = self._flags.tolist()
        return stop > 0, pause > 0

    def close(self) -> None:
        """Complete the exchange every rank started at the last step."""
        self._result()


class AtlasCallback(*_callback_bases()):  # type: ignore[misc]
    """Stream a Lightning run's telemetry to an Atlas collector.

    Example::

        trainer = Trainer(callbacks=[AtlasCallback(project="mnist", run_name="baseline")])

    Args:
        project: the project the run belongs to (created on first use).
        run_name: a human name for the run; several runs may share it.
        collector: HOST:PORT of the collector (default: ``ATLAS_COLLECTOR`` or ``localhost:50051``).
        token: bearer token (default: ``ATLAS_TOKEN``).
        tls_ca: PEM file of the CA that signed the collector's certificate (default: ``ATLAS_TLS_CA``).
        run_id: a UUID to name the run explicitly or to continue an existing run.
        tags: labels to filter runs by.
        on_critical: what a critical issue does: ``"warn"`` (default), ``"pause"`` or ``"stop"``.
        pause_timeout: seconds a paused run waits for RESUME before it stops.
        config: an :class:`AtlasConfig` (which channels to capture).
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
        super().__init__()
        self._core = RunCore("lightning", RunOptions.of(locals()))
        self._val_metrics: dict[str, float] = {}
        self._val_keys: set[str] = set()
        self._agreement: _Agreement | None = None
        self._optimizer: Any = None  # the first optimizer (its first group's lr is the step's lr); False: none
        self._counter: Any = None  # Lightning's optimizer-step counter (see `_step_counter`), found once per epoch
        self._params: list[Any] | None = None  # the module's parameters, listed once per epoch
        self._distributed = False
        self._grad_norm: Any = None
        self._grad_due = False  # the coming step's gradient norm is sampled (set at the step before: one test here)
        self._batch_n: int | None = None  # read at the batch's start, where the batch is still in the caches
        self.extra_hyperparameters: dict[str, Any] = {}  # what an AtlasLogger got from `log_hyperparams` first

    @property
    def run_id(self) -> str | None:
        return self._core.run_id

    @property
    def state_key(self) -> str:
        # Lightning reads this on every hook dispatch: build it once.
        key = self.__dict__.get("_state_key")
        if key is None:
            key = self.__dict__["_state_key"] = self._generate_state_key(project=self._core.project,
                                                                         run_name=self._core.run_name)
        return key

    # ------------------------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit" and self._core.enabled:
            self._share_run_id(trainer)
            self._distributed = trainer.world_size > 1
            if self._distributed:
                self._agreement = _Agreement.create(trainer)  # collective: every rank, here

    @override
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._start(trainer, pl_module)

    @override
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._optimizer = None  # looked up again at the first step of each epoch
        self._params = None
        self._counter = _step_counter(trainer)
        self._core.epoch_start(trainer.current_epoch)
        self._grad_due = self._core.grad_due()
        if self._core.facts is not None and self._core.global_step == 0:
            self._core.facts.setup(sampler=_sampler(trainer))

    @override
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._batch_n = _batch_size(batch)
        facts = self._core.facts
        if facts is not None:
            facts.batch(batch)
        self._core.before_step()

    @override
    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self._grad_due:  # the sampled steps only
            core = self._core
            if self._params is None:  # once per epoch: walking the module tree costs more than the norm here
                self._params = list(pl_module.parameters())
            self._grad_norm = core.grad_norm(self._params)

    @override
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        # The hot path, once per step after the step's own work has been through the caches: as few Python calls
        # and objects as it takes (each costs several times its warm cost here).
        core = self._core
        if not core.started:
            return
        # a dict first: an ABC isinstance check costs several microseconds on the cold path after a step
        loss = outputs.get("loss") if type(outputs) is dict or isinstance(outputs, Mapping) else outputs
        optimizer = self._optimizer
        if optimizer is None:
            optimizers = trainer.optimizers
            optimizer = self._optimizer = optimizers[0] if optimizers else False
        lr = optimizer.param_groups[0].get("lr") if optimizer else None
        grad_norm, self._grad_norm = self._grad_norm, None
        counter = self._counter
        core.step(loss, batch_size=self._batch_n, lr=lr, grad_norm=grad_norm,
                  global_step=trainer.global_step if counter is None else counter.completed)
        self._grad_due = core.grad_due()
        if self._distributed or not core.control.quiet:  # the ranks exchange flags at every step; alone, only if set
            self._control(trainer, pl_module)

    @override
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._capture_validation(trainer)

    @override
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._epoch_end(trainer)

    @override
    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self._agreement is not None:
            self._agreement.close()
            self._agreement = None
        self._core.end("completed")  # "stopped" when Atlas stopped it

    @override
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._agreement = None  # no wait: the other ranks may be gone
        self._core.end("failed", exception)

    def alert(self, title: str, text: str = "", level: str = "warning") -> None:
        """Tell people now (as `wandb.alert`): the alert goes with the run's telemetry to the collector, which shows
        it in `atlas issues` and sends it to its alert routes (Slack, e-mail, webhooks). `level`: "info",
        "warning" (default) or "error". Example: ``atlas.alert("val loss spiked", f"val_loss={v:.3f}")``."""
        self._core.alert(title, text, level)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self._core.run_id, "global_step": self._core.global_step}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        run_id = state_dict.get("run_id")
        if run_id and not self._core.started:
            self._core.run_id = run_id
        self._core.global_step = int(state_dict.get("global_step", self._core.global_step))

    # ---------------------------------------------------------------------------------- workers

    @never_raises
    def _share_run_id(self, trainer: Any) -> None:
        run_id = self._core.new_run_id() if trainer.is_global_zero else None
        if trainer.world_size > 1:
            run_id = trainer.strategy.broadcast(run_id, src=0)
        self._core.run_id = run_id

    @never_raises
    def _start(self, trainer: Any, pl_module: Any) -> None:
        hparams: dict[str, Any] = {}
        if getattr(pl_module, "hparams", None):
            hparams.update(dict(pl_module.hparams))
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "hparams", None):
            hparams.update({f"datamodule.{k}": v for k, v in dict(datamodule.hparams).items()})
        hparams.update(self.extra_hyperparameters)
        self._core.start_on(pl_module.device, hyperparameters=hparams, rank=trainer.global_rank,
                            world_size=trainer.world_size)
        timeout = getattr(trainer.strategy, "_timeout", None)
        if trainer.world_size > 1 and timeout is not None:
            self._core.control.pg_timeout = timeout.total_seconds()
        self._core.attach_model(pl_module)
        if self._core.facts is not None:
            self._core.facts.setup(
                optimizers=trainer.optimizers, schedulers=_schedulers(trainer),
                manual=not pl_module.automatic_optimization, grad_clip=trainer.gradient_clip_val or 0.0,
                grad_clip_algorithm=str(getattr(trainer, "gradient_clip_algorithm", None) or "norm"),
                max_epochs=trainer.max_epochs if (trainer.max_epochs or 0) > 0 else None)

    @never_raises
    def _control(self, trainer: Any, pl_module: Any) -> None:
        """Every rank at the same point: agree on stop/pause (under DDP, see `_Agreement`), then apply."""
        agreement = self._agreement
        agree: Any = None
        meet: Any = None
        if agreement is not None:
            agree = agreement.exchange
            meet = lambda stop: agreement.now(stop, False)[0]  # noqa: E731 - the ranks resume at different moments
        elif self._distributed:  # a strategy without torch.distributed: agree through it, blocking
            agree = lambda stop, pause: self._any(trainer, pl_module, stop, pause)  # noqa: E731
            meet = lambda stop: self._any(trainer, pl_module, stop, False)[0]  # noqa: E731
        reason = self._core.at_batch_boundary(agree, meet)
        if reason is not None:
            log.info("atlas: stopping training at step %d: %s", trainer.global_step, reason)  # said on receipt
            trainer.should_stop = True

    @staticmethod
    def _any(trainer: Any, pl_module: Any, stop: bool, pause: bool) -> tuple[bool, bool]:
        import torch

        flags = torch.tensor([float(stop), float(pause)], device=pl_module.device)
        total = trainer.strategy.reduce(flags, reduce_op="sum")
        return bool(total[0] > 0), bool(total[1] > 0)

    @never_raises
    def _capture_validation(self, trainer: Any) -> None:
        if trainer.sanity_checking or not self._core.started:
            return
        results = getattr(trainer, "_results", None)  # the validation loop's own results: exactly its metrics
        metrics = results.metrics(False)["callback"] if results is not None else {}
        if not metrics:
            metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val")}
        self._val_metrics = _scalars(metrics)
        self._val_keys.update(self._val_metrics)

    @never_raises
    def _epoch_end(self, trainer: Any) -> None:
        if not self._core.started:
            return
        val = self._val_metrics
        self._val_metrics = {}
        train = {k: v for k, v in _scalars(trainer.callback_metrics).items() if k not in self._val_keys}
        lrs = [group.get("lr", 0.0) for opt in trainer.optimizers for group in opt.param_groups]
        self._core.epoch_end(trainer.current_epoch, val_metrics=val, train_metrics=train, lrs=lrs)
