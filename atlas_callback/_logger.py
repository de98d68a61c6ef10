"""`AtlasLogger`: Atlas as a Lightning logger, over the same run as `AtlasCallback`.

    trainer = Trainer(logger=AtlasLogger(project="mnist", run_name="baseline"))

Alone, it gives what `AtlasCallback` gives (it adds one to the trainer, with its own arguments, when Lightning first
hands it the module), plus every metric Lightning hands a logger: `log_metrics` at every `log_every_n_steps` for
``on_step`` metrics and at each epoch's end for ``on_epoch`` ones, each kept per step (`atlas metrics RUN`).
Hyperparameters from `log_hyperparams` go into the run's RunStart. Used together with an `AtlasCallback` in the
same Trainer, the logger writes into that callback's run: one run, not two.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from typing_extensions import override

from ._config import AtlasConfig
from ._lightning import AtlasCallback
from ._options import RunOptions

log = logging.getLogger(__name__)

_NOT_METRICS = frozenset({"epoch"})  # Lightning adds the epoch to every dict it logs: the run's own epoch column


def _logger_bases() -> tuple[type, ...]:
    bases: list[type] = []
    try:
        from lightning.pytorch.loggers import Logger as _LLogger

        bases.append(_LLogger)
    except ImportError:
        pass
    try:
        from pytorch_lightning.loggers import Logger as _PLLogger

        if _PLLogger not in bases:
            bases.append(_PLLogger)
    except ImportError:
        pass
    if not bases:
        raise ImportError("AtlasLogger needs `lightning` or `pytorch_lightning`: pip install lightning")
    return tuple(bases)


class AtlasLogger(*_logger_bases()):  # type: ignore[misc]
    """A Lightning logger that streams the run to an Atlas collector.

    Example::

        trainer = Trainer(logger=AtlasLogger(project="mnist", run_name="baseline"))

    Arguments are those of :class:`AtlasCallback`.
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
        # validates every argument now; added to the Trainer when the module is first seen (`_attach`)
        self._callback = AtlasCallback(**vars(RunOptions.of(locals())))
        self._trainer: Any = None
        self._late_warned = False

    # ----------------------------------------------------------------------------- Logger API

    @property
    @override
    def name(self) -> str:
        return self._callback._core.project

    @property
    @override
    def version(self) -> str:
        return self._callback._core.run_id or ""

    @property
    def run_id(self) -> str | None:
        return self._callback._core.run_id

    @property
    def callback(self) -> AtlasCallback:
        """The AtlasCallback whose run this logger writes to (its own, or one the Trainer already had)."""
        return self._callback

    @property
    def experiment(self) -> "AtlasLogger":
        return self

    def alert(self, title: str, text: str = "", level: str = "warning") -> None:
        """An alert from the training code, as `AtlasCallback.alert` (`atlas issues`, the alert routes)."""
        self._callback.alert(title, text, level)

    @override
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        values = _as_dict(params)
        core = self._callback._core
        if not core.started:
            self._callback.extra_hyperparameters.update(values)
            return
        stored = self._callback.extra_hyperparameters
        new = {k: v for k, v in values.items() if k not in stored}
        if new and not self._late_warned and not _known(self._trainer, new):
            self._late_warned = True
            log.warning("atlas: hyperparameters logged after the run started are not recorded: %s",
                        ", ".join(sorted(new))[:200])

    @override
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        values = {k: v for k, v in metrics.items() if k not in _NOT_METRICS}
        if values:
            self._callback._core.log_metrics(values, step)

    @override
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Lightning calls this with the module at the start of fitting: the run's architecture comes from the module
        (with its shapes from the first real batch), so this is where the logger joins the Trainer."""
        self._attach(model)

    @override
    def save(self) -> None:
        return None

    @override
    def finalize(self, status: str) -> None:
        return None  # the run ends with the callback's on_fit_end (or on_exception: failed)

    # ------------------------------------------------------------------------------- internals

    def _attach(self, module: Any) -> None:
        trainer = getattr(module, "_trainer", None)
        if trainer is None or self._trainer is trainer:
            return
        self._trainer = trainer
        callbacks = trainer.callbacks
        existing = next((c for c in callbacks if isinstance(c, AtlasCallback)), None)
        if existing is not None:  # used together with an AtlasCallback: its run is the one
            if existing is not self._callback:
                existing.extra_hyperparameters.update(self._callback.extra_hyperparameters)
                self._callback = existing
            return
        callbacks.append(self._callback)
        # Lightning has run the fit's `setup` and `on_fit_start` hooks already (it hands the logger the module
        # right after them): run the callback's now, on every rank at this same point.
        fn = getattr(getattr(trainer, "state", None), "fn", None)
        if str(getattr(fn, "value", fn)) == "fit":
            self._callback.setup(trainer, module, "fit")
            self._callback.on_fit_start(trainer, module)


def _as_dict(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if isinstance(params, Mapping):
        return dict(params)
    if hasattr(params, "__dict__"):  # argparse.Namespace
        return dict(vars(params))
    return {"params": params}


def _known(trainer: Any, values: Mapping[str, Any]) -> bool:
    """Whether `values` are the module's own hparams (the callback read them at the run's start)."""
    module = getattr(trainer, "lightning_module", None)
    hparams = getattr(module, "hparams", None) if module is not None else None
    return hparams is not None and all(k in hparams for k in values)
