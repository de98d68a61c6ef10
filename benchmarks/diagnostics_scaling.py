"""Cost of one incremental diagnostics update as the run grows.

Feeds a synthetic run with full telemetry (loss, throughput, memory, GPU, profiler, layer health, carbon, and
steps) into one :class:`atlas_diagnostics.Engine`, and at 10, 100, 1,000 and 10,000 epochs times the next updates
(one epoch record plus its steps each). The target is a flat cost: the 10,000-epoch update within 1.5x of the
10-epoch one.

    python benchmarks/diagnostics_scaling.py [--probe 200] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atlas_diagnostics import (  # noqa: E402
    CarbonRecord,
    CorrelationRecord,
    Engine,
    EpochRecord,
    GpuRecord,
    LayerHealthRecord,
    LayerTime,
    ProfilerRecord,
    RunInfo,
    StepRecord,
)

LAYERS = tuple(f"block{i}" for i in range(12))


def epoch_record(e: int) -> EpochRecord:
    loss = 0.5 + 1.5 / (1 + 0.01 * e)
    wobble = (e * 7) % 3 - 1
    return EpochRecord(
        epoch=e, duration_seconds=30.0 + wobble, end_time=1e9 + 30.0 * e,
        train_mean=loss, train_std=0.1 * loss, train_min=0.8 * loss, train_max=1.4 * loss, count=500,
        val={"val_loss": loss * 1.05, "val_acc": 0.8}, samples_per_sec=2000.0 + 10 * wobble,
        samples_processed=60_000, step_time_p50=0.05, step_time_p95=0.06, step_time_max=0.1,
        process_rss_mb=3000.0, cuda_allocated_mb=8000.0, cpu_percent=60.0, ram_percent=40.0,
        gpus=(GpuRecord(0, utilization_percent=90.0, power_watts=300.0),), lr=(1e-3,), grad_norm=1.0,
        profiler=ProfilerRecord(per_layer=tuple(LayerTime(n, 100.0 / len(LAYERS)) for n in LAYERS),
                                total_cpu_time_us=1e7, total_cuda_time_us=8e6, total_fwd_us=3e6, total_bwd_us=4e6),
        layers={n: LayerHealthRecord(activation_mean=0.1, activation_std=0.5, activation_var_of_means=0.01,
                                     zero_fraction=0.1, saturated_fraction=0.01, gradient_norm_mean=1e-3,
                                     weight_sparsity=0.01, update_ratio=1e-3) for n in LAYERS},
        correlations=tuple(CorrelationRecord(a, b, 0.5) for a, b in zip(LAYERS, LAYERS[1:])),
        carbon=CarbonRecord(epoch_co2_kg=1e-3, epoch_energy_kwh=4e-3, power_draw_watts=350.0,
                            cpu_energy_kwh=1e-3, gpu_energy_kwh=3e-3),
        log_error_count=0,
    )


def steps(e: int, n: int) -> list[StepRecord]:
    return [StepRecord(step=e * n + k, epoch=e, loss=1.0, lr=1e-3, grad_norm=1.0 + 0.01 * k, time=1e9 + 30.0 * e)
            for k in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", type=int, default=200, help="updates timed at each size")
    parser.add_argument("--steps", type=int, default=20, help="step records per update")
    args = parser.parse_args()

    engine = Engine(run_info=RunInfo(device="cuda", cuda_available=True))
    fed = 0
    rows = []
    for size in (10, 100, 1_000, 10_000):
        while fed < size:
            engine.update(epochs=[epoch_record(fed)], steps=steps(fed, args.steps))
            fed += 1
        timings = []
        for _ in range(args.probe):
            rec, st = epoch_record(fed), steps(fed, args.steps)
            t0 = time.perf_counter()
            engine.update(epochs=[rec], steps=st)
            timings.append(time.perf_counter() - t0)
            fed += 1
        rows.append((size, statistics.median(timings), statistics.quantiles(timings, n=20)[18]))

    base = rows[0][1]
    print(f"{'epochs':>8} {'median update':>14} {'p95 update':>11} {'vs 10':>6}")
    for size, med, p95 in rows:
        print(f"{size:>8,} {med * 1e3:>11.3f} ms {p95 * 1e3:>8.3f} ms {med / base:>5.2f}x")
    worst = max(r[1] for r in rows) / base
    print(f"flat within {worst:.2f}x (target 1.5x): {'ok' if worst <= 1.5 else 'NOT FLAT'}")


if __name__ == "__main__":
    main()
