"""The framework-agnostic core every adapter (Lightning, Accelerate, plain loops) is a thin shell over.

It owns one run for one rank: builds RunStart, turns per-step calls into step samples and per-epoch
summaries, hands records to the `Transport`, and applies commands from the collector. Every public
method is safe to call from the training loop: internal errors are logged (rate-limited) and swallowed,
so Atlas can never crash or block a training step."""
from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import traceback
import uuid
import weakref
from typing import Any, Callable, Mapping, TypeVar

from atlas_proto.v1 import telemetry_pb2 as tpb

from . import _notice
from ._config import (
    TLS_UNUSABLE,
    AtlasConfig,
    env_home,
    env_mode,
    error_once,
    offline_without_tls,
    resolve_collector,
    resolve_tls_ca,
)
from ._channel import REGISTRY, SPECS, Channel
from ._control import Control
from ._options import RunOptions
from ._spool import SpoolWriter, spool_root
from ._stats import EpochAccumulator
from ._transport import Transport, _RateLimitedLog

log = logging.getLogger(__name__)
_errors = _RateLimitedLog()

PROTOCOL_VERSION = tpb.PROTOCOL_VERSION_1
FRAMEWORKS = {"lightning": tpb.FRAMEWORK_LIGHTNING, "accelerate": tpb.FRAMEWORK_ACCELERATE,
              "pytorch": tpb.FRAMEWORK_PYTORCH, "transformers": tpb.FRAMEWORK_TRANSFORMERS}
_ON_CRITICAL = {"warn": tpb.ON_CRITICAL_WARN, "pause": tpb.ON_CRITICAL_PAUSE, "stop": tpb.ON_CRITICAL_STOP}

F = TypeVar("F", bound=Callable[..., Any])


def never_raises(fn: F) -> F:
    """Atlas must not crash training: log (rate-limited) and return None on any internal error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - the trainer comes first
            _errors.warning(fn.__qualname__, "atlas: internal error in %s (training continues)",
                            fn.__qualname__, exc_info=True)
            return None

    return wrapper  # type: ignore[return-value]


ALERT_LEVELS = ("info", "warning", "error")


def _check_alert(title: Any, text: Any, level: Any) -> str:
    """`alert()`'s arguments checked; returns the level, lower case ("warn" is read as "warning")."""
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"`title` must be a non-empty string, got {title!r}")
    if len(title) > 1000:
        raise ValueError(f"`title` must be at most 1000 characters, got {len(title)}")
    if not isinstance(text, str):
        raise ValueError(f"`text` must be a string, got {type(text).__name__}")
    if len(text) > 10_000:
        raise ValueError(f"`text` must be at most 10000 characters, got {len(text)}")
    name = getattr(level, "name", level)  # an enum such as wandb.AlertLevel.WARN
    key = name.strip().lower() if isinstance(name, str) else name
    key = {"warn": "warning"}.get(key, key)
    if key not in ALERT_LEVELS:
        raise ValueError(f"`level` must be one of 'info', 'warning', 'error', got {level!r}")
    return key


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else repr(float(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(value, "ndim", 1) == 0:
        try:
            return _jsonable(item())
        except Exception:  # noqa: BLE001
            pass
    return str(value)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist, key in (("torch", "torch"), ("lightning", "lightning"), ("pytorch-lightning", "pytorch_lightning"),
                      ("accelerate", "accelerate"), ("transformers", "transformers"),
                      ("atlas-observatory", "atlas")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _resolve_token(explicit: str | None) -> str | None:
    """The token: `token=` (checked by `RunOptions`), else ATLAS_TOKEN, which must be printable ASCII (a gRPC
    header holds nothing else): a bad one inside a training process is logged once and not used."""
    if explicit is not None:
        return explicit or None
    raw = os.environ.get("ATLAS_TOKEN") or None
    if raw is not None and not (raw.isascii() and raw.isprintable()):
        error_once(f"ATLAS_TOKEN={raw}", "atlas: ignoring ATLAS_TOKEN: it must be printable ASCII (it travels in a "
                                         "gRPC header); the run connects without a token")
        return None
    return raw


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2,
                              cwd=os.getcwd())
        return done.stdout.strip() if done.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


_live_cores: "weakref.WeakSet[RunCore]" = weakref.WeakSet()
_uncaught: list[BaseException] = []
_hooks_installed = False


def _install_exit_hooks() -> None:
    """At interpreter exit, end every run still open (bounded flush): failed if an exception escaped."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(exc_type: Any, exc: BaseException, tb: Any) -> None:
        _uncaught.append(exc)
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    atexit.register(_end_open_runs)


def _end_open_runs() -> None:
    exc = _uncaught[-1] if _uncaught else None
    for core in list(_live_cores):
        if core.started and not core.ended:
            core.end("failed" if exc is not None else "completed", exc)


class RunCore:
    """One run, one rank. Adapters call `start`, `attach_model`, `before_step`, `step`, `epoch_end`, `end`
    and apply `control` decisions at batch boundaries."""

    def __init__(self, framework: str, options: RunOptions) -> None:
        """`options` are checked already (`RunOptions`); the collector, token and TLS CA are resolved here against
        the environment (ATLAS_COLLECTOR, ATLAS_TOKEN, ATLAS_TLS_CA)."""
        self.tags = list(options.tags or ())
        self.framework = framework
        self.project = options.project
        self.run_name = options.run_name
        self.collector = resolve_collector(options.collector)
        self.token = _resolve_token(options.token)
        self.tls_ca = resolve_tls_ca(options.tls_ca)
        self.run_id = str(options.run_id) if options.run_id is not None else None
        self.on_critical = options.on_critical
        self.pause_timeout = float(options.pause_timeout)
        self.config = options.config or AtlasConfig()
        # the gradient norm is read on steps where (global_step + 1) % grad_every == 0; 0: never
        self.grad_every = self.config.grad_norm_every if self.config.track_gradients else 0
        self.mode = env_mode()
        if self.tls_ca == TLS_UNUSABLE:  # TLS was asked for and cannot be had: spool only, never plaintext
            self.tls_ca = None
            self.mode = offline_without_tls(self.mode, self.config.spool_max_mb, spool_root(env_home()))
        self.session = str(uuid.uuid4())
        self.rank = 0
        self.world_size = 1
        self.transport: Transport | None = None
        self.control = Control(self.pause_timeout, self._send_command_ack)
        self.started = False
        self.ended = False
        self.global_step = 0
        self.epoch = 0
        self._acc: EpochAccumulator | None = None
        self.device_kind = "cpu"  # the kind of device this rank trains on, known at `start`
        # The run's channels by name (see `_channel.REGISTRY`): each contributes to every epoch summary and is closed
        # at the end. Logs and carbon may be started before the run (`capture_logs_early`, `start_carbon_early`).
        self._channels: dict[str, Channel] = {}
        self._early_logs: list[Any] = []  # records captured before the run started (bounded), sent at its start
        self._model: Any = None
        self._model_info: Any = None
        self._tracer: Any = None  # ShapeTracer until the first step (not a channel: see `Channel`)
        # The channels that act around a step, reached directly on the hot path (see `Channel`); also in _channels.
        self._layers: Any = None
        self._profiler: Any = None
        self.facts: Any = None  # FactsProbe (rank zero, `track_facts`): how the run is set up
        self._facts_output = False  # the output hooks are on for the coming step
        self._step_in_epoch = 0
        self._armed = False  # something is instrumented for the coming step: undone after it
        self._early_metrics: list[Any] = []  # user metrics logged before the run started (bounded), sent at its start

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"

    @property
    def should_stop(self) -> bool:
        return self.control.decide()[0]

    def new_run_id(self) -> str:
        if self.run_id is None:
            self.run_id = str(uuid.uuid4())
        return self.run_id

    # ------------------------------------------------------------------------------------ run

    @never_raises
    def start(
        self,
        *,
        hyperparameters: Mapping[str, Any] | None = None,
        device_kind: str = "cpu",
        device_name: str = "",
        accelerator_available: bool = False,
        device_count: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if self.started or not self.enabled:
            return
        self.rank, self.world_size = rank, world_size
        self.new_run_id()
        rs = tpb.RunStart(
            protocol_version=PROTOCOL_VERSION,
            project=self.project,
            run_name=self.run_name or "",
            framework=FRAMEWORKS[self.framework],
            world_size=world_size,
            on_critical=_ON_CRITICAL[self.on_critical],
            pause_timeout_s=self.pause_timeout,
            git_commit=_git_commit(),
            pid=os.getpid(),
        )
        rs.started_at.GetCurrentTime()
        rs.tags.extend(self.tags)
        rs.versions.update(_versions())
        rs.device.kind = device_kind
        rs.device.name = device_name or platform.processor() or platform.machine()
        rs.device.count = device_count
        rs.device.accelerator_available = accelerator_available
        rs.device.hostname = socket.gethostname()
        if hyperparameters and self.config.track_hyperparameters:
            rs.hyperparameters.update(_jsonable(dict(hyperparameters)))
        self.transport = Transport(
            self.collector, rs, run_id=self.run_id, rank=rank, session=self.session, token=self.token,
            tls_ca=self.tls_ca, spool=self._open_spool(), max_queue=self.config.max_queue,
            on_command=self.control.on_command, connect=self.mode == "online",
        )
        self._acc = EpochAccumulator(self.config, on_samples=self._send_samples, on_nonfinite=self._nonfinite,
                                     track_loss=rank == 0)
        self._start_channels(device_kind)
        self.started = True
        self.control.run = self.run_id or ""
        for body in self.__dict__.pop("_early_alerts", ()):  # alert() called before the run started
            self.transport.send("alert", body)
        _notice.install(id(self), self.config.quiet)
        _live_cores.add(self)
        _install_exit_hooks()
        log.info("atlas: run %s (%s/%s) rank %d streaming to %s", self.run_id, self.project, self.run_name or "-",
                 rank, self.collector if self.mode == "online" else f"the spool only (ATLAS_MODE={self.mode})")

    def _start_channels(self, device_kind: str) -> None:
        self.device_kind = device_kind
        self._build_channels("run")
        early, self._early_logs = self._early_logs, []
        if "logs" in self._channels:
            for rec in early:  # what was logged between the adapter's start and the run's
                self.transport.send("log", rec)  # type: ignore[union-attr]
        early_metrics, self._early_metrics = self._early_metrics, []
        if early_metrics and self.rank == 0:
            self.transport.send_many("metric", early_metrics)  # type: ignore[union-attr]

    def _build_channels(self, stage: str) -> None:
        """Build this stage's channels of `_channel.REGISTRY` that the run has and lacks; close those started
        early that it does not have after all (logs on a rank other than zero, carbon on a CPU rank other than
        zero). A channel that fails to start is logged and left out: the others and the run go on."""
        for spec in REGISTRY:
            if spec.stage != stage:
                continue
            try:
                wanted = spec.wanted(self)
                if wanted and spec.name not in self._channels:
                    self._channels[spec.name] = spec.build(self)
                elif not wanted and spec.name in self._channels:
                    self._discard_early(spec.name)
            except Exception:  # noqa: BLE001 - the trainer comes first
                _errors.warning(f"start {spec.name}", "atlas: could not start the %s channel (training continues)",
                                spec.name, exc_info=True)

    def _discard_early(self, name: str) -> None:
        """Close a channel started before the run, for a run that does not have it (or never started)."""
        channel = self._channels.pop(name)
        try:
            if name == "carbon":  # no wait for CodeCarbon's start, which is still under way on its thread
                channel.close(0.0)  # type: ignore[call-arg]
            else:
                channel.close()
        except Exception:  # noqa: BLE001
            log.debug("atlas: closing %s failed", name, exc_info=True)
        if name == "logs":
            self._early_logs = []

    def channel(self, name: str) -> Channel | None:
        """The run's channel called `name` (see `_channel.REGISTRY`), if it has one now."""
        return self._channels.get(name)

    @never_raises
    def start_carbon_early(self) -> None:
        """Start the carbon meter now (CodeCarbon takes a second or more to start, on its own thread), before the
        run starts: an adapter whose run starts at its first step calls it when it is created."""
        if "carbon" in self._channels or not self.config.track_carbon or not self.enabled:
            return
        self._channels["carbon"] = SPECS["carbon"].build(self)

    @never_raises
    def capture_logs_early(self) -> None:
        """Capture log records from now on, before the run has started (an adapter whose run starts at its first
        step): they are kept (at most 1,000) and sent when it starts."""
        if "logs" in self._channels or not self.config.track_logs:
            return
        self._channels["logs"] = SPECS["logs"].build(self)

    def send_log(self, record: tpb.LogRecord) -> None:
        """A captured log record: sent, or kept (at most 1,000) until the run starts."""
        if self.transport is not None:
            self.transport.send("log", record)
        elif len(self._early_logs) < 1000:
            self._early_logs.append(record)

    @never_raises
    def attach_model(self, model: Any) -> None:
        """Architecture (rank zero), layer-health hooks and the profiler for `model`."""
        if not self.started or self._model is not None or self.rank != 0:
            return
        self._model = model
        if self.config.track_architecture:
            from ._architecture import ShapeTracer, describe_model

            self._model_info = describe_model(model)
            self._tracer = ShapeTracer(model)
            self._tracer.attach()
        self._build_channels("model")
        self._layers = self._channels.get("layers")
        self.facts = self._channels.get("facts")
        self._profiler = self._channels.get("profiler")

    @never_raises
    def epoch_start(self, epoch: int) -> None:
        if self._acc is not None:
            self.epoch = epoch
            self._step_in_epoch = 0
            self._acc.begin(epoch)

    @never_raises
    def before_step(self) -> None:
        """Before a training step's forward: arm the sampled layer hooks and the profiler for this step."""
        if self._armed:  # armed already for this step (an adapter calls this twice)
            return
        facts = self.facts
        if facts is not None and self._model is not None:
            facts.step(getattr(self._model, "training", None))
            if self._step_in_epoch == 0:
                facts.eval_layers()
            if not facts._output_done and not self._facts_output:
                facts.watch_output(self._model.named_modules())
                self._facts_output = self._armed = True  # undone after the step, with the rest
        step = self.global_step + 1
        layers = self._layers
        if layers is not None and step >= layers.due:  # the other steps are never sampled: no call at all
            times = self._acc.recent_step_times() if self._acc is not None else None
            if layers.arm(step, step_s=statistics.median(times) if times else None):
                self._armed = True
        if self._profiler is not None and self._profiler.should_profile(self.epoch, self._step_in_epoch):
            self._profiler.start()
            self._armed = True
        if self._tracer is not None:  # the first step: shapes
            self._armed = True

    def grad_due(self) -> bool:
        """Whether the coming step's gradient norm is sampled."""
        return bool(self.grad_every) and not (self.global_step + 1) % self.grad_every

    def grad_norm(self, parameters: Any) -> Any:
        """The global gradient norm on sampled steps, else None: on an accelerator a device tensor (read later, in
        a group), on the CPU a float (the per-parameter norms read at once: fewer operations)."""
        if not self.grad_due():
            return None
        try:
            import torch

            grads = [p.grad for p in parameters if getattr(p, "grad", None) is not None]
            if not grads:
                return None
            norms = torch._foreach_norm(grads)
            if all(n.is_cpu for n in norms):
                return math.hypot(*[n.item() for n in norms])
            return torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]))
        except Exception:  # noqa: BLE001
            _errors.warning("grad_norm", "atlas: could not compute the gradient norm", exc_info=True)
            return None

    def step(
        self,
        loss: Any = None,
        *,
        batch_size: int | None = None,
        seq_len: int | None = None,
        lr: float | None = None,
        global_step: int | None = None,
        metrics: Mapping[str, float] | None = None,
        grad_norm: Any = None,
        amp_skipped: bool = False,
    ) -> None:
        """Hot path: record one optimisation step (after the optimiser step). Never blocks, never raises."""
        acc = self._acc
        if acc is None:
            return
        try:
            self.global_step = global_step if global_step is not None else self.global_step + 1
            self._step_in_epoch += 1
            if self._armed:
                self._after_instrumented_step()
            acc.step(loss, self.global_step, batch_size, seq_len, lr, metrics, grad_norm, amp_skipped)
        except Exception:  # noqa: BLE001
            _errors.warning("step", "atlas: internal error while recording a step (training continues)",
                            exc_info=True)

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None, epoch: int | None = None) -> None:
        """User metrics: every scalar of `values` kept as one point at `step` (default: the current global step).

        The one entry point of every adapter's user metrics (Observer.log, accelerator.log, AtlasLogger, the
        Transformers callback, wandb_compat). Cheap: a plain tuple queued, the MetricPoint message is built on the
        sender thread (`metric_point`); no I/O here; values that are not scalars are skipped. Rank zero only (other
        ranks log the same values). Never raises."""
        if self.rank != 0 or not self.enabled:
            return
        try:
            out: dict[str, float] = {}
            for key, value in values.items():
                if type(value) is not float:
                    if isinstance(value, bool) or value is None or isinstance(value, str):
                        continue
                    try:
                        if getattr(value, "numel", None) is not None and value.numel() != 1:
                            continue
                        value = float(value)
                    except (TypeError, ValueError, RuntimeError, OverflowError):
                        continue
                out[key] = value
            if not out:
                return
            record = (self.global_step if step is None else step, self.epoch if epoch is None else epoch,
                      time.time_ns(), out)
            if self.transport is not None:
                self.transport.send("metric", record)
            elif not self.started and len(self._early_metrics) < 10_000:
                self._early_metrics.append(record)
        except Exception:  # noqa: BLE001
            _errors.warning("log_metrics", "atlas: could not record user metrics (training continues)",
                            exc_info=True)

    def alert(self, title: str, text: str = "", level: str = "warning") -> None:
        """An alert from the training code (as `wandb.alert` / `trackio.alert`): it travels with the telemetry
        (spool and replay included); the collector stores it as an issue of the run (`atlas issues`, check
        `user_alert`) and sends it to its alert routes. Bad arguments raise ValueError at once; otherwise it never
        raises and never blocks (one message queued for the sender thread)."""
        level = _check_alert(title, text, level)
        try:
            body = tpb.Alert(title=title, text=text, level=level, epoch=max(0, int(self.epoch)),
                             step=max(0, int(self.global_step)))
            body.time.GetCurrentTime()
            if self.transport is not None:
                self.transport.send("alert", body)
            elif not self.started:
                early = self.__dict__.setdefault("_early_alerts", [])
                if len(early) < 100:
                    early.append(body)
            else:
                _errors.warning("alert", "atlas: alert(%r) after the run ended: not sent", title[:80])
        except Exception:  # noqa: BLE001
            _errors.warning("alert", "atlas: could not record an alert (training continues)", exc_info=True)

    def _after_instrumented_step(self) -> None:
        self._armed = False
        if self._facts_output:
            self._facts_output = False
            self.facts.unwatch_output()
        if self._layers is not None and self._layers.armed:
            self._layers.disarm()
        if self._profiler is not None and self._profiler.active:
            self._profiler.finish_step()
        if self._tracer is not None:
            self._tracer.detach()
            self._tracer.fill(self._model_info)
            self._tracer = None
            if self.transport is not None:
                self.transport.send("model_info", self._model_info)

    @never_raises
    def epoch_end(
        self,
        epoch: int | None = None,
        *,
        val_metrics: Mapping[str, Any] | None = None,
        train_metrics: Mapping[str, Any] | None = None,
        lrs: list[float] | None = None,
    ) -> None:
        if self._acc is None or self.transport is None:
            return
        if self._armed:
            self._after_instrumented_step()
        if self._tracer is not None and self._model_info is not None:  # no step ran: send what we know
            self._tracer.detach()
            self._tracer = None
            self.transport.send("model_info", self._model_info)
        summary = self._acc.finish(
            self.epoch if epoch is None else epoch,
            global_step=self.global_step,
            val_metrics=val_metrics or {},
            train_metrics=train_metrics or {},
            lrs=lrs or [],
        )
        for name, channel in self._channels.items():
            try:
                channel.contribute(summary)
            except Exception:  # noqa: BLE001 - one channel's failure leaves the others' parts and the trainer alone
                _errors.warning(f"contribute {name}", "atlas: the %s channel failed at the epoch end (training "
                                "continues)", name, exc_info=True)
        self.transport.send("epoch_summary", summary)

    @never_raises
    def end(self, status: str = "completed", exc: BaseException | None = None) -> None:
        """Send RunEnd, stop the channels and flush (bounded by `config.flush_timeout_s`). Safe to call twice."""
        if self.ended or not self.started or self.transport is None:
            if not self.started:  # logs or carbon started early for a run that never started
                for name in list(self._channels):
                    self._discard_early(name)
            return
        self.ended = True
        if self.control.stopped and status == "completed":
            status = "stopped"
        if self._acc is not None:
            self._acc.flush_samples()
        self._close_channels()
        end = tpb.RunEnd(status={"completed": tpb.RUN_STATUS_COMPLETED, "failed": tpb.RUN_STATUS_FAILED,
                                 "stopped": tpb.RUN_STATUS_STOPPED}[status],
                         total_steps=self.global_step, epochs=self.epoch + 1)
        end.ended_at.GetCurrentTime()
        if exc is not None:
            end.error_type = type(exc).__qualname__
            end.error_message = str(exc)[:10_000]
            end.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-50_000:]
            # The crash is the run's last error log too (`atlas logs --errors`, the error_logs check).
            record = tpb.LogRecord(level="ERROR", logger="training", kind="error", epoch=self.epoch,
                                   message=f"training failed: {end.error_type}: {end.error_message}"[:10_000])
            record.time.GetCurrentTime()
            self.transport.send("log", record)
        elif status == "stopped":
            end.error_message = self.control.stop_reason
        self.transport.send("run_end", end)
        t0 = time.monotonic()
        flushed = self.transport.shutdown(self.config.flush_timeout_s)
        if not flushed and self.mode == "online" and not getattr(self.transport, "kept_in_spool", False):
            # (records kept in the spool were just named, with the command that uploads them)
            log.warning("atlas: could not deliver every record of run %s to %s within %.1fs",
                        self.run_id, self.collector, time.monotonic() - t0)
        _notice.forget(id(self))

    def _close_channels(self) -> None:
        """Close every channel (and the shape tracer if no step ran); one failing never stops the others."""
        closing = list(self._channels.items())
        self._channels = {}
        self._layers = self._profiler = self.facts = None
        if self._tracer is not None:
            closing.append(("tracer", self._tracer))
            self._tracer = None
        for name, channel in closing:
            try:
                if name == "tracer":
                    channel.detach()  # type: ignore[attr-defined]
                else:
                    channel.close()
            except Exception:  # noqa: BLE001
                log.debug("atlas: closing %s failed", name, exc_info=True)

    # ---------------------------------------------------------------------------------- control

    def apply_pause(self) -> bool:
        """Block while paused (this rank). True when the run must stop afterwards."""
        def heartbeat(paused: bool) -> None:
            if self.transport is not None:
                self.transport.paused_heartbeat = paused

        return self.control.wait_while_paused(self.global_step, heartbeat)

    def stop_applied(self) -> None:
        self.control.stopped = True
        self.control.flush_acks(self.global_step)

    def at_batch_boundary(self, agree: Callable[[bool, bool], tuple[bool, bool]] | None = None,
                          meet: Callable[[bool], bool] | None = None) -> str | None:
        """The one control point: every adapter calls it at a batch boundary, on every rank at the same point.

        Reads this rank's stop/pause, lets `agree` make every rank's answer the same (DDP), blocks while paused and
        then lets `meet` agree again (the ranks resume at different moments). Returns the reason the first time the
        run must stop here, after recording it (the RunEnd says "stopped", command acks are flushed); None
        otherwise. The adapter then stops its loop in its framework's way."""
        stop, pause = self.control.decide()
        if agree is not None:
            stop, pause = agree(stop, pause)
        if pause and not stop:
            stop = self.apply_pause()
            if meet is not None:
                stop = meet(stop)
        if not stop or self.control.stopped:
            return None
        self.stop_applied()
        return self.control.stop_reason or "another rank stopped"

    def start_on(self, device: Any, *, hyperparameters: Mapping[str, Any] | None = None, rank: int = 0,
                 world_size: int = 1) -> None:
        """`start`, with the device facts read from the torch device the model is on (a `torch.device` or its type
        name): what every adapter does once it knows its device and its rank."""
        import torch

        kind = device if isinstance(device, str) else getattr(device, "type", "cpu")
        cuda = torch.cuda.is_available()
        name = ""
        if kind == "cuda" and cuda:
            try:
                name = torch.cuda.get_device_name(None if isinstance(device, str) else device)
            except Exception:  # noqa: BLE001 - a name is a nicety
                name = ""
        self.start(hyperparameters=hyperparameters, device_kind=kind, device_name=name, accelerator_available=cuda,
                   device_count=torch.cuda.device_count() if cuda else 0, rank=rank, world_size=world_size)

    def _nonfinite(self, step: int, value: float) -> None:
        """Client-side fast path: the run's policy applies at once; the collector still records the issue."""
        if self.on_critical == "stop":
            self.control.request_stop(f"non-finite loss ({value}) at step {step}")
        elif self.on_critical == "pause":
            self.control.request_pause(f"non-finite loss ({value}) at step {step}")

    def _send_command_ack(self, command: tpb.Command, step: int) -> None:
        if self.transport is None:
            return
        ack = tpb.CommandAck(command_id=command.command_id, kind=command.kind, step=step)
        ack.applied_at.GetCurrentTime()
        self.transport.send("command_ack", ack)

    # ------------------------------------------------------------------------------- internals

    def _open_spool(self) -> SpoolWriter | None:
        if self.config.spool_max_mb == 0:
            return None
        try:
            return SpoolWriter(spool_root(env_home()), self.run_id or "", self.rank, self.session,
                               self.config.spool_max_mb * 2**20)
        except OSError as exc:
            log.warning("atlas: cannot open the spool under %s (%s); records live in memory only", env_home(), exc)
            return None

    def _send_samples(self, samples: list[tpb.StepSample]) -> None:
        if self.transport is not None:
            self.transport.send_many("step", samples)
