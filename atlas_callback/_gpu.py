"""GPU channel through NVML (nvidia-ml-py): utilisation %, memory, power, temperature per device.

A daemon thread samples every `interval` seconds and averages over the epoch. Without NVML or a GPU the
channel says "unavailable" once (INFO) and nothing else happens."""
from __future__ import annotations

import logging
import threading
from typing import Any

from atlas_proto.v1 import telemetry_pb2 as tpb

log = logging.getLogger(__name__)


class GpuMonitor:
    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.available = False
        self.reason = ""
        self._nvml: Any = None
        self._handles: list[tuple[int, Any, str]] = []
        self._lock = threading.Lock()
        self._sums: dict[int, dict[str, float]] = {}
        self._counts: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            if count == 0:
                raise RuntimeError("no NVIDIA GPU")
            self._nvml = pynvml
            for i in range(count):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = pynvml.nvmlDeviceGetName(handle)
                self._handles.append((i, handle, name.decode() if isinstance(name, bytes) else str(name)))
        except Exception as exc:  # noqa: BLE001 - absent NVML or GPU is a normal state
            self.reason = f"{type(exc).__name__}: {exc}"
            log.info("atlas: GPU channel unavailable (%s)", self.reason)
            return
        self.available = True
        self._sample()
        self._thread = threading.Thread(target=self._run, name="atlas-gpu", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except Exception:  # noqa: BLE001 - worker boundary
                log.debug("atlas: NVML sample failed", exc_info=True)

    def _sample(self) -> None:
        nv = self._nvml
        for index, handle, _ in self._handles:
            values: dict[str, float] = {}
            for key, read in (
                ("util", lambda h: float(nv.nvmlDeviceGetUtilizationRates(h).gpu)),
                ("mem", lambda h: nv.nvmlDeviceGetMemoryInfo(h).used / 2**20),
                ("total", lambda h: nv.nvmlDeviceGetMemoryInfo(h).total / 2**20),
                ("power", lambda h: nv.nvmlDeviceGetPowerUsage(h) / 1000.0),
                ("temp", lambda h: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))),
            ):
                try:
                    values[key] = read(handle)
                except Exception:  # noqa: BLE001 - some readings are unsupported on some GPUs
                    continue
            with self._lock:
                sums = self._sums.setdefault(index, {})
                for key, value in values.items():
                    sums[key] = sums.get(key, 0.0) + value
                    sums[f"n_{key}"] = sums.get(f"n_{key}", 0.0) + 1

    def epoch_stats(self) -> list[tpb.GpuStats]:
        """Averages since the previous call, per device; [] when unavailable."""
        if not self.available:
            return []
        try:
            self._sample()
        except Exception:  # noqa: BLE001
            pass
        out = []
        with self._lock:
            sums, self._sums = self._sums, {}
        for index, _, name in self._handles:
            s = sums.get(index, {})
            g = tpb.GpuStats(index=index, name=name)
            for key, field in (("util", "utilization_percent"), ("mem", "memory_used_mb"),
                               ("total", "memory_total_mb"), ("power", "power_watts"), ("temp", "temperature_c")):
                if s.get(f"n_{key}"):
                    setattr(g, field, s[key] / s[f"n_{key}"])
            out.append(g)
        return out

    def contribute(self, summary: tpb.EpochSummary) -> None:
        """The `Channel` epoch contribution: one GpuStats per device."""
        summary.gpus.extend(self.epoch_stats())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass
