"""Carbon and energy through CodeCarbon's OfflineEmissionsTracker (no network at run time).

CodeCarbon's start takes a second or more (hardware detection), so it starts on a daemon thread: step 0
never waits for it. Its measurements run on the same thread; an epoch's summary takes the latest
cumulative figures and reports the difference from the previous epoch.

CodeCarbon's own schedulers are stopped once it has started: left running, they start a new `threading.Timer`
thread every second to sample the CPU's load-based power (~2.4 ms of Python each time, here) and measure energy
every `measure_power_secs` besides, all competing with the training thread for the GIL. This thread does both
at its own cadence instead (every `measure_every_s`): the power samples are weighted by the time they cover, so
the average stays an average, at a tenth of the cost.

Adapters whose run starts at its first step (Observer, AtlasTracker) start the meter when they are created, so
CodeCarbon has usually measured by the end of the first epoch (Lightning starts it at setup). An epoch that ends
before the first measurement has no carbon: its summary is not held back for it, since the diagnosis of that epoch
must reach the collector in time to stop a short run."""
from __future__ import annotations

import logging
import threading
from typing import Any

from atlas_proto.v1 import telemetry_pb2 as tpb

log = logging.getLogger(__name__)


class CarbonMeter:
    def __init__(self, country_iso: str = "IRL", measure_every_s: float = 5.0) -> None:
        self.country_iso = country_iso
        self.measure_every_s = measure_every_s
        self._tracker: Any = None
        self._lock = threading.Lock()
        # cumulative co2 kg, energy kWh, power W, intensity g/kWh, and the CPU, GPU and RAM energy kWh
        self._latest: tuple[float, ...] | None = None
        self._reported: tuple[float, ...] = (0.0,) * 5  # co2, energy, cpu, gpu, ram at the previous epoch
        self._wake = threading.Event()
        self._measured = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sample_power: Any = None
        self.available = True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="atlas-carbon", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            from codecarbon import OfflineEmissionsTracker

            logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after import: it sets its level then
            self._tracker = OfflineEmissionsTracker(
                country_iso_code=self.country_iso, output_methods=[], log_level="error",
                measure_power_secs=self.measure_every_s, allow_multiple_runs=True, tracking_mode="process",
            )
            self._tracker.start()
            self._own_scheduling()
        except Exception as exc:  # noqa: BLE001 - the channel is optional
            self.available = False
            log.info("atlas: carbon channel unavailable (%s: %s)", type(exc).__name__, exc)
            return
        while not self._stop.is_set():
            self._measure()
            self._wake.wait(self.measure_every_s)
            self._wake.clear()
        self._measure()
        try:
            self._tracker.stop()
        except Exception:  # noqa: BLE001
            pass

    def _own_scheduling(self) -> None:
        """Stop CodeCarbon's timer threads; `_measure` samples the power and measures the energy instead."""
        self._sample_power = None
        try:
            for name in ("_scheduler_monitor_power", "_scheduler"):
                scheduler = getattr(self._tracker, name, None)
                if scheduler is not None:
                    scheduler.stop()
            self._sample_power = self._tracker._monitor_power
        except Exception:  # noqa: BLE001 - another CodeCarbon version: leave its scheduling as it is
            log.debug("atlas: kept CodeCarbon's own scheduling", exc_info=True)

    def _measure(self) -> None:
        try:
            if self._sample_power is not None:
                self._sample_power()
            self._tracker._measure_power_and_energy_if_stale()
            data = self._tracker._prepare_emissions_data()
            power = float(data.cpu_power or 0) + float(data.gpu_power or 0) + float(data.ram_power or 0)
            energy = float(data.energy_consumed or 0)
            co2 = float(data.emissions or 0)
            intensity = co2 / energy * 1000.0 if energy > 0 else 0.0  # kg/kWh -> g/kWh
            parts = (float(data.cpu_energy or 0), float(data.gpu_energy or 0), float(data.ram_energy or 0))
            with self._lock:
                self._latest = (co2, energy, power, intensity, *parts)
        except Exception:  # noqa: BLE001 - worker boundary
            log.debug("atlas: carbon measurement failed", exc_info=True)
        finally:
            self._measured.set()

    def epoch_carbon(self) -> tpb.Carbon | None:
        """This epoch's CO2 and energy (delta since the previous call) and the cumulative totals."""
        if self._tracker is not None:  # a fresh measurement, waited for briefly (it takes milliseconds)
            self._measured.clear()
            self._wake.set()
            self._measured.wait(0.2)
        with self._lock:
            latest = self._latest
        if latest is None:
            return None
        co2, energy, power, intensity, cpu, gpu, ram = latest
        prev_co2, prev_energy, prev_cpu, prev_gpu, prev_ram = self._reported
        self._reported = (co2, energy, cpu, gpu, ram)
        out = tpb.Carbon(epoch_co2_kg=max(0.0, co2 - prev_co2), epoch_energy_kwh=max(0.0, energy - prev_energy),
                         power_draw_watts=power, cumulative_co2_kg=co2, cumulative_energy_kwh=energy,
                         country_iso=self.country_iso, epoch_cpu_energy_kwh=max(0.0, cpu - prev_cpu),
                         epoch_gpu_energy_kwh=max(0.0, gpu - prev_gpu), epoch_ram_energy_kwh=max(0.0, ram - prev_ram))
        if intensity > 0:
            out.carbon_intensity_g_per_kwh = intensity
        return out

    def contribute(self, summary: tpb.EpochSummary) -> None:
        """The `Channel` epoch contribution: this epoch's carbon, once a measurement has landed."""
        carbon = self.epoch_carbon()
        if carbon is not None:
            summary.carbon.CopyFrom(carbon)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
