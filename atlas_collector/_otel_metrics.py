"""Atlas's OpenTelemetry metrics: instruments fed by the exporter's worker thread.

Gauges are observable: each collection reports the latest value of every live run (and of a run that ended
less than `retain_s` ago), so a long-lived collector does not keep reporting the runs of last month.
Histograms and counters are recorded as data arrives. Every point carries `atlas.run.id`, `atlas.run.name`
and `atlas.project`; the GPU gauges follow the `hw.*` semantic conventions (`hw.type=gpu`, `hw.id`, `hw.name`).
Names, types and units are documented in deploy/OTEL.md."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider

from ._otel_spans import SCOPE, finite

# Bucket boundaries chosen for the values they hold (upper bounds, inclusive).
LOSS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
STEP_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
EPOCH_SECONDS_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
                         14400.0, 28800.0, 86400.0)
SEVERITIES = ("critical", "warning", "info")
MAX_USER_KEYS = 256
_MB = 1024 * 1024


class RunMetrics:
    """The instruments on one meter of `provider`, and the per-run state the observable gauges read."""

    def __init__(self, provider: MeterProvider, *, retain_s: float = 120.0) -> None:
        self._retain_s = retain_s
        self._lock = threading.Lock()
        self._runs: dict[str, dict[str, Any]] = {}  # run id -> {"attrs", "values", "gpus", "issues", "until"}
        meter = provider.get_meter(SCOPE.name, SCOPE.version, SCOPE.schema_url)
        gauge = self._gauge
        for name, unit, desc in (
            ("atlas.train.loss", "1", "Latest training loss of the run (last step sample, else the epoch mean)"),
            ("atlas.train.global_step", "{step}", "Latest global step of the run"),
            ("atlas.val.loss", "1", "Validation loss of the run's last epoch"),
            ("atlas.train.throughput", "{sample}/s", "Training samples per second over the run's last epoch"),
            ("atlas.run.health_score", "1", "Health score of the run, 0 (bad) to 100 (no active issue)"),
            ("atlas.run.power", "W", "Power drawn by the run's devices (CodeCarbon estimate), last epoch"),
        ):
            meter.create_observable_gauge(name, [gauge(name)], unit=unit, description=desc)
        meter.create_observable_gauge("atlas.run.issues", [self._observe_issues], unit="{issue}",
                                      description="Active issues of the run, by `atlas.issue.severity`")
        meter.create_observable_gauge("atlas.user.metric", [self._observe_user], unit="1",
                                      description="Latest value of each metric the training code logged, by "
                                                  "`atlas.metric.key` (at most 256 keys a run)")
        for name, unit, desc in (
            ("hw.gpu.utilization", "1", "GPU utilisation, ratio 0..1 (hw semantic conventions)"),
            ("hw.gpu.memory.usage", "By", "GPU memory used"),
            ("hw.gpu.memory.limit", "By", "GPU memory size"),
            ("hw.power", "W", "GPU power draw (`hw.type=gpu`)"),
            ("hw.temperature", "Cel", "GPU temperature (`hw.type=gpu`)"),
        ):
            meter.create_observable_gauge(name, [self._gpu(name)], unit=unit, description=desc)
        meter.create_observable_counter("atlas.run.co2", [gauge("atlas.run.co2")], unit="kg",
                                        description="Cumulative CO2-equivalent emitted by the run")
        meter.create_observable_counter("atlas.run.energy", [gauge("atlas.run.energy")], unit="kW.h",
                                        description="Cumulative energy used by the run")
        self.step_loss = meter.create_histogram(
            "atlas.train.step.loss", unit="1", description="Training loss of each sampled step",
            explicit_bucket_boundaries_advisory=LOSS_BUCKETS)
        self.step_duration = meter.create_histogram(
            "atlas.train.step.duration", unit="s", description="Duration of each sampled optimisation step",
            explicit_bucket_boundaries_advisory=STEP_SECONDS_BUCKETS)
        self.epoch_duration = meter.create_histogram(
            "atlas.train.epoch.duration", unit="s", description="Duration of each training epoch",
            explicit_bucket_boundaries_advisory=EPOCH_SECONDS_BUCKETS)
        self.epochs = meter.create_counter("atlas.train.epochs", unit="{epoch}", description="Epochs finished")
        self.runs_ended = meter.create_counter("atlas.runs.ended", unit="{run}",
                                               description="Runs that ended, by `atlas.run.status`")

    # ------------------------------------------------------------------------------------- feeding

    def _state(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        state = self._runs.get(attrs["atlas.run.id"])
        if state is None:
            state = self._runs[attrs["atlas.run.id"]] = {"attrs": dict(attrs), "values": {}, "gpus": [],
                                                         "issues": {}, "until": None}
        return state

    def on_steps(self, attrs: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> None:
        """Step samples, oldest first (a sample of the newest ones: the histograms are sampled)."""
        last = step = None
        for row in rows:
            step = row.get("step", step)
            loss = finite(row.get("loss"))
            if loss is not None:
                self.step_loss.record(loss, attrs)
                last = loss
            seconds = finite(row.get("step_time_s"))
            if seconds is not None and seconds >= 0:
                self.step_duration.record(seconds, attrs)
        with self._lock:
            values = self._state(attrs)["values"]
            if last is not None:
                values["atlas.train.loss"] = last
            if step is not None:
                values["atlas.train.global_step"] = int(step)

    def on_epoch(self, attrs: Mapping[str, Any], row: Mapping[str, Any]) -> None:
        p = row.get("payload") or {}
        self.epochs.add(1, attrs)
        global_step = row.get("global_step")
        duration = finite(row.get("duration_seconds"))
        if duration is not None and duration >= 0:
            self.epoch_duration.record(duration, attrs)
        carbon = p.get("carbon") or {}
        values = {
            "atlas.val.loss": finite(row.get("val_loss")),
            "atlas.train.throughput": finite(row.get("samples_per_sec")),
            "atlas.run.power": finite(carbon.get("power_draw_watts")) or None,
            "atlas.run.co2": finite(carbon.get("cumulative_co2_kg")),
            "atlas.run.energy": finite(carbon.get("cumulative_energy_kwh")),
        }
        with self._lock:
            state = self._state(attrs)
            if "atlas.train.loss" not in state["values"] and finite(row.get("loss_mean")) is not None:
                state["values"]["atlas.train.loss"] = finite(row.get("loss_mean"))
            state["values"].update({k: v for k, v in values.items() if v is not None})
            if global_step and global_step > state["values"].get("atlas.train.global_step", 0):
                state["values"]["atlas.train.global_step"] = int(global_step)
            state["gpus"] = list(p.get("gpus") or [])

    def on_health(self, attrs: Mapping[str, Any], score: float | None, active: Mapping[str, int]) -> None:
        with self._lock:
            state = self._state(attrs)
            if score is not None:
                state["values"]["atlas.run.health_score"] = float(score)
            state["issues"] = {sev: int(active.get(sev, 0)) for sev in SEVERITIES}

    def on_user_metrics(self, attrs: Mapping[str, Any], values: Mapping[str, float]) -> None:
        """The latest value of each user metric of the run (non-finite values are left out)."""
        with self._lock:
            user = self._state(attrs).setdefault("user", {})
            for key, value in values.items():
                v = finite(value)
                if v is not None and (key in user or len(user) < MAX_USER_KEYS):
                    user[key] = v

    def _observe_user(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(v, {**st["attrs"], "atlas.metric.key": k})
                for st in self._live() for k, v in (st.get("user") or {}).items()]

    def on_end(self, attrs: Mapping[str, Any], status: str) -> None:
        self.runs_ended.add(1, {**attrs, "atlas.run.status": status})
        with self._lock:
            self._state(attrs)["until"] = time.monotonic() + self._retain_s

    # ---------------------------------------------------------------------------------- observing

    def _live(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            for run_id in [r for r, st in self._runs.items() if st["until"] is not None and st["until"] < now]:
                del self._runs[run_id]
            return [dict(st, values=dict(st["values"]), user=dict(st.get("user") or {})) for st in self._runs.values()]

    def _gauge(self, name: str) -> Callable[[CallbackOptions], list[Observation]]:
        def observe(options: CallbackOptions) -> list[Observation]:
            return [Observation(st["values"][name], st["attrs"]) for st in self._live() if name in st["values"]]

        return observe

    def _observe_issues(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(count, {**st["attrs"], "atlas.issue.severity": sev})
                for st in self._live() for sev, count in st["issues"].items()]

    def _gpu(self, name: str) -> Callable[[CallbackOptions], list[Observation]]:
        def value(gpu: Mapping[str, Any]) -> float | None:
            if name == "hw.gpu.utilization":
                v = finite(gpu.get("utilization_percent"))
                return None if v is None else v / 100.0
            if name == "hw.gpu.memory.usage":
                v = finite(gpu.get("memory_used_mb"))
                return None if v is None else v * _MB
            if name == "hw.gpu.memory.limit":
                v = finite(gpu.get("memory_total_mb"))
                return None if v is None else v * _MB
            if name == "hw.power":
                return finite(gpu.get("power_watts"))
            return finite(gpu.get("temperature_c"))

        def observe(options: CallbackOptions) -> list[Observation]:
            out = []
            for st in self._live():
                for gpu in st["gpus"]:
                    v = value(gpu)
                    if v is not None:
                        attrs = {**st["attrs"], "hw.type": "gpu", "hw.id": str(gpu.get("index", 0))}
                        if gpu.get("name"):
                            attrs["hw.name"] = gpu["name"]
                        out.append(Observation(v, attrs))
            return out

        return observe
