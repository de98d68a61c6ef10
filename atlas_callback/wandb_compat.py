"""A one-line switch from Weights & Biases: ``from atlas_callback import wandb_compat as wandb``.

    run = wandb.init(project="mnist", name="baseline", config={"lr": 3e-4}, tags=["cnn"])
    wandb.watch(model)                                   # architecture and layer health
    for step in range(steps):
        ...
        wandb.log({"loss": loss.item(), "acc": acc}, step=step)
    wandb.summary["best_acc"] = best
    wandb.alert(title="done", text="training finished")
    wandb.finish()

What is covered, with W&B's semantics for the common cases:

- ``init(project=, name=, config=, tags=, id=, notes=, mode=)`` returns a run (also ``wandb.run``); a context manager
  (``with wandb.init(...) as run:``; an exception ends the run as failed). ``mode="disabled"`` records nothing.
  ``id`` is used when it is a UUID (an Atlas run id), else ignored.
- ``log(data, step=None, commit=True)``: every scalar (numbers, 0-d tensors and arrays; nested dicts flattened as
  ``a/b``) kept at its step (`atlas metrics RUN`); the step counts up by one per committed call unless given;
  ``commit=False`` gathers values into the current step. A ``loss`` key (or ``train/loss``, ``train_loss``) is also the
  step's loss (the loss curve, NaN detection, throughput); a STOP or PAUSE from Atlas applies there (``run.should_stop``
  tells the loop to end).
- ``config``: attribute and item access, ``update``; what is set before the first ``log`` is stored with the run.
- ``summary``: the last value of every logged key, and what you set; set values are stored as metrics at
  ``finish``.
- ``alert(title, text, level)``: an Atlas alert (``Observer.alert``: an issue of the run, check ``user_alert``, in
  `atlas issues RUN`, sent to the collector's alert routes); ``AlertLevel.INFO``/``WARN``/``ERROR``.
- ``watch(model)``: the architecture and layer-health channels; ``finish(exit_code=)``: ends the run (failed for a
  non-zero exit code).

Not covered (calling them raises AttributeError, or they are ignored as noted): media and rich objects (``Image``,
``Table``, ``Histogram``, ``Audio``, ``Video``, ``plot``: non-scalar values are skipped by ``log``), artifacts and
``save``/``restore``, sweeps and ``agent``, ``define_metric`` (ignored: step metrics are kept as logged),
``entity``/``group``/``job_type`` (ignored), resuming by a non-UUID id, offline sync (Atlas spools and syncs by itself:
`atlas sync`), the W&B web API (``wandb.Api``).
"""
from __future__ import annotations

import logging
import uuid
from types import TracebackType
from typing import Any, Iterator, Mapping, MutableMapping

_log = logging.getLogger(__name__)

__all__ = ["AlertLevel", "Config", "Run", "Summary", "alert", "config", "define_metric", "finish", "init", "log",
           "run", "summary", "watch"]

LOSS_KEYS = ("loss", "train/loss", "train_loss")
_LEVELS = {"INFO": "info", "WARN": "warning", "WARNING": "warning", "ERROR": "error"}


class AlertLevel:
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


class Config(MutableMapping[str, Any]):
    """``wandb.config``: a dict with attribute access."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", dict(values or {}))
        object.__setattr__(self, "_on_change", None)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[key] = value
        if self._on_change is not None:
            self._on_change(key)

    def __delitem__(self, key: str) -> None:
        del self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def update(self, values: Any = None, allow_val_change: bool | None = None, **kwargs: Any) -> None:  # type: ignore[override]
        if values is not None and not isinstance(values, Mapping):
            values = vars(values)  # argparse.Namespace, as W&B takes
        for key, value in {**(values or {}), **kwargs}.items():
            self[key] = value

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Config({self._values!r})"


class Summary(dict):  # type: ignore[type-arg]
    """``wandb.summary``: the last value of each logged key, and what the script set (stored at ``finish``)."""

    def __init__(self) -> None:
        super().__init__()
        self._set: dict[str, Any] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._set[key] = value

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def _logged(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            super().__setitem__(key, value)


class Run:
    """What ``wandb.init`` returns: ``log``, ``config``, ``summary``, ``alert``, ``watch``, ``finish``."""

    def __init__(self, *, project: str, name: str | None, config: Mapping[str, Any] | None, tags: list[str] | None,
                 run_id: str | None, notes: str | None, disabled: bool, atlas_kwargs: Mapping[str, Any]) -> None:
        self.project = project
        self.name = name
        self.notes = notes
        self.config = Config(config)
        self.summary = Summary()
        self.disabled = disabled
        self._step = 0  # the step the next committed log is at (W&B: starts at 0)
        self._pending: dict[str, Any] = {}  # commit=False values, for the current step
        self._finished = False
        self._warned_config = False
        self._observer: Any = None
        if not disabled:
            from ._observer import Observer

            hp = dict(config or {})
            if notes:
                hp.setdefault("notes", notes)
            self._observer = Observer(project=project, run_name=name, tags=tags, run_id=run_id,
                                      hyperparameters=hp, **atlas_kwargs)
            object.__setattr__(self.config, "_on_change", self._config_changed)

    # -------------------------------------------------------------------------------- W&B API

    @property
    def id(self) -> str | None:
        return self._observer.run_id if self._observer is not None else None

    @property
    def step(self) -> int:
        return self._step

    @property
    def should_stop(self) -> bool:
        """True once Atlas asked the run to stop (a STOP command, or a non-finite loss under on_critical='stop')."""
        return self._observer.should_stop if self._observer is not None else False

    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None,
            sync: bool | None = None) -> None:
        if not isinstance(data, Mapping):
            raise ValueError(f"wandb.log takes a dict of name -> value, got {type(data).__name__}")
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise ValueError(f"`step` must be an integer >= 0, got {step!r}")
            if step < self._step:
                _log.warning("atlas: wandb.log step %d is below the current step %d: ignored (as W&B does)", step,
                            self._step)
                return
            if step > self._step:
                self._commit()
                self._step = step
        values = _flatten(data)
        self.summary._logged(values)
        self._pending.update(values)
        if commit is None or commit:
            self._commit()

    def alert(self, title: str, text: str, level: str | None = None, wait_duration: Any = None) -> None:
        name = str(getattr(level, "value", level) or AlertLevel.INFO).upper()
        if name not in _LEVELS:
            raise ValueError(f"`level` must be one of AlertLevel.INFO, AlertLevel.WARN, AlertLevel.ERROR, got {level!r}")
        observer = self._observer
        send = getattr(observer, "alert", None) if observer is not None else None
        if send is not None:
            send(title, text, level=_LEVELS[name])
            return
        logging.getLogger("training.alert").warning("alert [%s] %s: %s", name, title, text)

    def watch(self, models: Any, *args: Any, **kwargs: Any) -> None:
        if self._observer is None:
            return
        model = models[0] if isinstance(models, (list, tuple)) else models
        self._observer.register_model(model)

    def define_metric(self, *args: Any, **kwargs: Any) -> None:
        return None

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        self._commit()
        if self._observer is None:
            return
        if self.summary._set:
            self._observer.log(self.summary._set, step=max(0, self._step - 1))
        exc = RuntimeError(f"the script finished with exit code {exit_code}") if exit_code else None
        if not self._observer._core.started:  # nothing logged: the run still exists, and ends
            self._observer._ensure_started()
        self._observer.close(exc)
        _forget(self)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None and self._observer is not None and not self._finished:
            self._finished = True
            self._commit()
            self._observer.close(exc)
            _forget(self)
            return
        self.finish()

    # ------------------------------------------------------------------------------- internals

    def _commit(self) -> None:
        values, self._pending = self._pending, {}
        if not values:
            return
        step = self._step
        self._step += 1
        observer = self._observer
        if observer is None:
            return
        if not observer._core.started:  # the run starts at the first log (or `watch`), with the config set so far
            observer._ensure_started()
        loss = next((values[k] for k in LOSS_KEYS if k in values), None)
        if loss is not None:
            observer.step(loss)
        observer.log(values, step=step)

    def _config_changed(self, key: str) -> None:
        core = self._observer._core if self._observer is not None else None
        if core is None:
            return
        if not core.started:
            self._observer._hyperparameters[key] = self.config[key]
        elif not self._warned_config:
            self._warned_config = True
            _log.warning("atlas: wandb.config changed after the run started (%r): not recorded", key)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "/"))
            continue
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if getattr(value, "ndim", 0) != 0:
            continue  # a tensor, array, image or table: not a scalar
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            continue
        out[name] = number
    return out


# ------------------------------------------------------------------------------------ module API

run: Run | None = None
config: Config = Config()
summary: Summary = Summary()


def init(project: str | None = None, name: str | None = None, config: Mapping[str, Any] | None = None,  # noqa: A002
         tags: list[str] | tuple[str, ...] | None = None, *, id: str | None = None,  # noqa: A002
         notes: str | None = None, mode: str | None = None, entity: str | None = None, group: str | None = None,
         job_type: str | None = None, reinit: Any = None, resume: Any = None, dir: str | None = None,  # noqa: A002
         **atlas_kwargs: Any) -> Run:
    """Start a run (W&B's ``wandb.init``). Extra keyword arguments go to Atlas (``collector``, ``on_critical``,
    ``config=AtlasConfig`` is spelled ``atlas_config``...)."""
    if mode not in (None, "online", "offline", "disabled", "shared"):
        raise ValueError(f"`mode` must be one of 'online', 'offline', 'disabled', got {mode!r}")
    if config is not None and not isinstance(config, Mapping):
        config = vars(config)  # argparse.Namespace
    if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
        raise ValueError(f"`tags` must be a list of strings, got {tags!r}")
    run_id = None
    if id is not None:
        try:
            run_id = str(uuid.UUID(str(id)))
        except ValueError:
            _log.warning("atlas: wandb.init id=%r is not a UUID (an Atlas run id): a new run is started", id)
    if "atlas_config" in atlas_kwargs:
        atlas_kwargs["config"] = atlas_kwargs.pop("atlas_config")
    if run is not None and not run._finished:
        run.finish()
    new = Run(project=project or "default", name=name, config=dict(config or {}), tags=list(tags or []) or None,
              run_id=run_id, notes=notes, disabled=mode == "disabled", atlas_kwargs=atlas_kwargs)
    _bind(new)
    return new


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None, sync: bool | None = None) -> None:
    _current("log").log(data, step=step, commit=commit)


def alert(title: str, text: str, level: str | None = None, wait_duration: Any = None) -> None:
    _current("alert").alert(title, text, level=level)


def watch(models: Any, *args: Any, **kwargs: Any) -> None:
    _current("watch").watch(models)


def define_metric(*args: Any, **kwargs: Any) -> None:
    return None


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    if run is not None:
        run.finish(exit_code)


def _current(what: str) -> Run:
    if run is None:
        raise RuntimeError(f"wandb_compat.{what}() needs a run: call wandb.init(project=...) first")
    return run


def _bind(new: Run) -> None:
    global run, config, summary
    run, config, summary = new, new.config, new.summary


def _forget(old: Run) -> None:
    global run
    if run is old:
        run = None
