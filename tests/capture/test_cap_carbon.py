"""The carbon channel (CodeCarbon offline): real energy figures, and no timer threads left competing for the GIL."""
from __future__ import annotations

import math
import threading
import time

import torch

from atlas_callback._carbon import CarbonMeter


def test_the_meter_measures_energy_without_codecarbons_timer_threads() -> None:
    meter = CarbonMeter("IRL", measure_every_s=0.5)
    meter.start()
    try:
        deadline = time.monotonic() + 30
        while meter._latest is None and meter.available and time.monotonic() < deadline:
            time.sleep(0.05)
        assert meter.available, "CodeCarbon did not start"
        first = meter.epoch_carbon()
        x = torch.randn(256, 256)
        busy_until = time.monotonic() + 2.0
        while time.monotonic() < busy_until:  # two seconds of work for the power samples to see
            x = torch.tanh(x @ x)
        # CodeCarbon's own schedulers would start a threading.Timer every second; the meter samples itself
        timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]
        assert timers == []
        second = meter.epoch_carbon()
        assert first is not None and second is not None
        assert second.cumulative_energy_kwh > first.cumulative_energy_kwh > 0
        assert second.epoch_energy_kwh > 0 and second.power_draw_watts > 0
        assert second.cumulative_co2_kg > 0 and second.country_iso == "IRL"
        # the epoch's energy by component: the CPU and RAM here, no GPU on this machine
        assert second.epoch_cpu_energy_kwh > 0 and second.epoch_ram_energy_kwh >= 0
        assert second.HasField("epoch_gpu_energy_kwh") and second.epoch_gpu_energy_kwh == 0.0
        parts = second.epoch_cpu_energy_kwh + second.epoch_gpu_energy_kwh + second.epoch_ram_energy_kwh
        assert math.isclose(parts, second.epoch_energy_kwh, rel_tol=0.05)
    finally:
        meter.close()
    assert meter._thread is not None and not meter._thread.is_alive()
