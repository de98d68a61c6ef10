"""The carbon channel (CodeCarbon offline): real energy figures, and no timer threads left competing for the GIL."""
from __future__ import annotations

import math
import threading
import time

import pytest
import torch

from _query import Query
from atlas_callback import AtlasTracker, Observer
from atlas_callback._carbon import CarbonMeter
from atlas_collector import run_server


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



@pytest.fixture
def collector(tmp_path):
    with run_server(db=f"sqlite:///{tmp_path / 'carbon.db'}") as c:
        yield c


def _loading_data(meter_owner: object) -> None:
    """What a script does between creating the adapter and its first step (here: until CodeCarbon has measured,
    at most 30 s on a loaded machine)."""
    carbon = meter_owner._core.channel("carbon")  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while carbon is not None and carbon._latest is None and carbon.available and time.monotonic() < deadline:
        time.sleep(0.05)


def _observer(address: str) -> str:
    with Observer(project="carbon", run_name="observer", collector=address) as obs:
        _loading_data(obs)
        for epoch in range(3):
            for step in range(3):
                obs.step(torch.tensor(1.0 / (1 + step + 3 * epoch)), batch_size=4)
            obs.flush()
    return obs.run_id  # type: ignore[return-value]


def _accelerate(address: str) -> str:
    from accelerate import Accelerator

    tracker = AtlasTracker(project="carbon", run_name="accelerate", collector=address)
    acc = Accelerator(cpu=True, log_with=[tracker])
    acc.init_trackers("carbon")
    _loading_data(tracker)
    for epoch in range(3):
        for step in range(3):
            acc.log({"loss": 1.0 / (1 + step + 3 * epoch)}, step=3 * epoch + step)
        tracker.epoch_end()
    acc.end_training()
    return tracker.run_id  # type: ignore[return-value]


@pytest.mark.slow
@pytest.mark.parametrize("adapter", [_observer, _accelerate], ids=["observer", "accelerate"])
def test_a_first_epoch_shorter_than_codecarbons_start_still_has_its_carbon(collector, adapter) -> None:
    """Observer and Accelerate runs had no CO2 for epoch 0 (issue 17): their run starts at the first step, and
    CodeCarbon (a second or more to start) started with it, so a first epoch of seconds ended before its first
    measurement. The meter now starts when the adapter is created, while the script loads its data."""
    t0 = time.perf_counter()
    run_id = adapter(collector.address)
    q = Query(collector.address)
    try:
        epochs = q.epochs(run_id)
    finally:
        q.close()
    assert [e.epoch for e in epochs] == [0, 1, 2]
    assert epochs[0].HasField("carbon"), "epoch 0 has no carbon"
    assert epochs[0].carbon.cumulative_energy_kwh > 0 and epochs[0].carbon.epoch_co2_kg > 0
    assert all(e.HasField("carbon") for e in epochs)
    assert time.perf_counter() - t0 < 30

