"""What the trainer plugin captures (`AtlasConfig`) and where it sends it (environment).

Inside a training process nothing may crash the run: a bad `ATLAS_*` environment value is logged once
and the default is used (as the OpenTelemetry SDK does). Explicit constructor arguments are validated
at once and raise `ValueError` naming the argument, what is allowed and what came."""
from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Any, Mapping

log = logging.getLogger(__name__)

DEFAULT_COLLECTOR = "localhost:50051"
MODES = ("online", "offline", "disabled")
ON_CRITICAL = ("warn", "pause", "stop")


@dataclasses.dataclass(frozen=True)
class AtlasConfig:
    """Per-channel switches and sampling. Every field is validated on construction.

    Attributes:
        track_loss: per-step loss samples and per-epoch mean/std/min/max/count, validation metrics.
        track_throughput: samples/s, batches/s, tokens/s (when a sequence length is known), step-time
            distribution (p50/p95/max) per epoch.
        track_system: process RSS, CPU %, RAM % (psutil), CUDA allocated/reserved/peak when present.
        track_hyperparameters: the module's/accelerator's hyperparameters in RunStart.
        track_gradients: the global gradient norm, every `grad_norm_every` optimisation steps.
        track_gpu: NVML utilisation, memory, power, temperature per device (averaged over the epoch).
        track_carbon: CodeCarbon (offline) energy and CO2 per epoch for `carbon_country` (ISO 3166 alpha-3).
        track_logs: Python logging records (>= INFO) and warnings during the run, with counts per epoch.
        track_architecture: layers, module tree, layer graph attributes and tensor shapes of the first batch.
        track_layer_health: per-layer activation/gradient/weight statistics from hooks, every
            `layer_health_every` steps (no hook runs on the other steps), at most `layer_health_max_layers`.
            Sampled less often (a multiple of `layer_health_every`, at least once per epoch) when a sampled
            step costs more than `layer_health_budget` of training time: small models on a CPU, whose steps
            take milliseconds; the interval in force is logged when it changes.
        track_facts: how the run is set up, for the diagnosis of programming bugs: optimizer settings and which
            parameters it holds, scheduler, clipping, the first batches' input and target statistics, the model's
            output on the first step, train/eval mode, gradients not cleared between the first steps, parameters
            that never receive a gradient (hooks for the first 16 optimizer steps only).
        track_profiler: torch.profiler summaries on step 1 of epoch 0 and of every `profile_every_epochs`-th
            epoch. Off by default: a profiled step costs several times a normal one.
        loss_sync_every: on an accelerator, per-step losses stay on the device and are copied to the
            host in groups of this many steps (one synchronisation per group). On the CPU every step
            is read at once (no synchronisation cost).
        step_flush_seconds: the longest a per-step sample waits on the trainer side before it is
            handed to the sender.
        flush_timeout_s: the most the end of training (or interpreter exit) waits for the collector to
            acknowledge what was sent.
        quiet: no stderr line when Atlas acts on the run (stop, pause, resume, lost or regained collector, spooled
            records). Off by default: those lines are printed whatever the logging setup (once: not when the
            application's own logging handlers show them already).
        max_queue: records buffered in memory before the oldest are dropped (and counted).
        spool_max_mb: size bound of the on-disk spool of one run and rank under ``ATLAS_HOME/spool``
            (every record not yet acknowledged by the collector); 0 disables the spool.
    """

    track_loss: bool = True
    track_throughput: bool = True
    track_system: bool = True
    track_hyperparameters: bool = True
    track_gradients: bool = True
    track_gpu: bool = True
    track_carbon: bool = True
    track_logs: bool = True
    track_architecture: bool = True
    track_layer_health: bool = True
    track_facts: bool = True
    track_profiler: bool = False
    quiet: bool = False
    grad_norm_every: int = 10
    layer_health_every: int = 10
    layer_health_max_layers: int = 64
    layer_health_budget: float = 0.002
    profile_every_epochs: int = 5
    carbon_country: str = "IRL"
    loss_sync_every: int = 16
    step_flush_seconds: float = 1.0
    flush_timeout_s: float = 10.0
    max_queue: int = 10_000
    spool_max_mb: int = 1024

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("bool", bool) and not isinstance(value, bool):
                raise ValueError(f"`AtlasConfig.{f.name}` must be True or False, got {value!r}")
        _positive_int("AtlasConfig.loss_sync_every", self.loss_sync_every, 1, 10_000)
        _positive_int("AtlasConfig.grad_norm_every", self.grad_norm_every, 1, 1_000_000)
        _positive_int("AtlasConfig.layer_health_every", self.layer_health_every, 1, 1_000_000)
        _positive_int("AtlasConfig.layer_health_max_layers", self.layer_health_max_layers, 1, 100_000)
        if (isinstance(self.layer_health_budget, bool) or not isinstance(self.layer_health_budget, (int, float))
                or not 0 < self.layer_health_budget <= 1):
            raise ValueError("`AtlasConfig.layer_health_budget` must be a share of training time in (0, 1], e.g. "
                             f"0.002 for 0.2 % (1 lifts the budget), got {self.layer_health_budget!r}")
        _positive_int("AtlasConfig.profile_every_epochs", self.profile_every_epochs, 1, 1_000_000)
        if not (isinstance(self.carbon_country, str) and len(self.carbon_country) == 3 and self.carbon_country.isalpha()):
            raise ValueError("`AtlasConfig.carbon_country` must be an ISO 3166 alpha-3 country code such as 'IRL', "
                             f"'FRA' or 'USA', got {self.carbon_country!r}")
        _positive_int("AtlasConfig.max_queue", self.max_queue, 100, 10_000_000)
        _positive_int("AtlasConfig.spool_max_mb", self.spool_max_mb, 0, 1_000_000)
        _positive_float("AtlasConfig.step_flush_seconds", self.step_flush_seconds)
        _positive_float("AtlasConfig.flush_timeout_s", self.flush_timeout_s)


def _positive_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"`{name}` must be an integer from {low} to {high}, got {value!r}")


def _positive_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a number > 0, got {value!r}")


_warned: set[str] = set()


def _warn_once(key: str, msg: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


def error_once(key: str, msg: str, *args: Any) -> None:
    """Like `_warn_once`, at ERROR: a setting that costs the run its telemetry, said once per process (and value:
    `key` names both)."""
    if key not in _warned:
        _warned.add(key)
        log.error(msg, *args)


def env_mode(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    raw = env.get("ATLAS_MODE", "").strip().lower()
    if not raw:
        return "online"
    if raw not in MODES:
        _warn_once("ATLAS_MODE", "ignoring ATLAS_MODE=%r: allowed values are %s; using 'online'", raw, ", ".join(MODES))
        return "online"
    return raw


def env_home(env: Mapping[str, str] | None = None) -> pathlib.Path:
    env = os.environ if env is None else env
    return pathlib.Path(env.get("ATLAS_HOME") or "~/.atlas").expanduser()


def check_target(target: str) -> str | None:
    """None when `target` looks like HOST:PORT, else the reason it does not."""
    host, sep, port = target.rpartition(":")
    if not sep or not host:
        return "must be HOST:PORT, e.g. localhost:50051"
    if not port.isdigit() or not 0 < int(port) <= 65535:
        return "its port must be a number from 1 to 65535"
    return None


def resolve_collector(explicit: str | None, env: Mapping[str, str] | None = None) -> str:
    """The collector target: the argument (validated, raises), else ATLAS_COLLECTOR (logged once if
    bad), else localhost:50051."""
    env = os.environ if env is None else env
    if explicit is not None:
        reason = check_target(explicit)
        if reason:
            raise ValueError(f"`collector` {reason}, got {explicit!r}")
        return explicit
    raw = env.get("ATLAS_COLLECTOR", "").strip()
    if raw:
        reason = check_target(raw)
        if reason is None:
            return raw
        _warn_once("ATLAS_COLLECTOR", "ignoring ATLAS_COLLECTOR=%r: it %s; using %s", raw, reason, DEFAULT_COLLECTOR)
    return DEFAULT_COLLECTOR


TLS_UNUSABLE = "\0tls-unusable"  # ATLAS_TLS_CA names no usable CA file: the run must not connect at all


def tls_ca_problem(path: str) -> str | None:
    """None when `path` is a readable file holding a PEM certificate, else what is wrong with it."""
    file = pathlib.Path(path).expanduser()
    try:
        with open(file, "rb") as f:
            head = f.read(1 << 20)
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "it is a folder"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if b"-----BEGIN" not in head or b"CERTIFICATE-----" not in head:
        return "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    return None


def resolve_tls_ca(explicit: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The CA file for TLS, None for plaintext, or `TLS_UNUSABLE` when the environment asked for TLS with a file that
    is not a readable PEM certificate (the caller keeps records offline then and says so: never plaintext). A
    `tls_ca=` argument like that raises at once."""
    env = os.environ if env is None else env
    if explicit is not None:
        problem = tls_ca_problem(explicit) if isinstance(explicit, (str, os.PathLike)) else "not a path"
        if problem:
            raise ValueError(f"`tls_ca` must be a readable PEM file with the CA certificate that signed the "
                             f"collector's, got {explicit!r}: {problem}")
        return str(explicit)
    raw = env.get("ATLAS_TLS_CA", "").strip()
    if raw and tls_ca_problem(raw):
        return TLS_UNUSABLE  # asked for TLS: never fall back to plaintext (the token would travel in clear)
    return raw or None


def offline_without_tls(mode: str, spool_max_mb: int, spool_dir: pathlib.Path) -> str:
    """The mode of a run whose ATLAS_TLS_CA names no usable CA file: offline (as ATLAS_MODE=offline: records kept in
    the spool, nothing sent), never plaintext; one error line says why and what to do."""
    if mode == "disabled":
        return mode
    raw = os.environ.get("ATLAS_TLS_CA", "").strip()
    if spool_max_mb == 0:
        kept = ("nothing is kept: the spool is off (AtlasConfig.spool_max_mb=0), so this run's telemetry is lost; "
                "fix the path or unset ATLAS_TLS_CA")
    else:
        kept = (f"this run's records are kept in the spool under {spool_dir} (upload them with `atlas sync` once "
                "ATLAS_TLS_CA names the right file)")
    error_once(f"ATLAS_TLS_CA={raw}",
               "atlas: ATLAS_TLS_CA=%r is not a readable file with a PEM CA certificate (%s): nothing is sent without "
               "the TLS that was asked for (the run is offline, as with ATLAS_MODE=offline); %s",
               raw, tls_ca_problem(raw), kept)
    return "offline"
