"""Which Atlas channel costs what: AtlasCallback's step-time overhead with one channel switched off at a time.

    .venv/bin/python benchmarks/overhead_channels.py [--model CNN] [--rounds 3] [--steps 60]

Same harness as benchmarks/overhead.py (interleaved fits in one process, collector subprocess on loopback,
1 torch thread, first 5 steps of each fit skipped): no callback, AtlasCallback default, and the default
less one channel. Prints median wall time per step and its ratio to no callback (noisy on a shared machine),
and the cost accounting of benchmarks/overhead.py: Atlas's CPU time on the training thread per step and the CPU
time of the other threads beyond the no-callback run's; a channel's cost is what switching it off removes.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead as o  # noqa: E402  (benchmarks/overhead.py)
import torch  # noqa: E402

from atlas_callback import AtlasConfig  # noqa: E402

OFF = ("track_layer_health", "track_gradients", "track_system", "track_carbon", "track_logs",
       "track_throughput", "track_architecture", "track_loss")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("CNN", "Transformer"), default="CNN")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ns = ap.parse_args()
    torch.set_num_threads(1)
    o._instrument_layer_hooks()
    home = tempfile.mkdtemp(prefix="atlas-bench-")
    os.environ["ATLAS_HOME"] = home
    o.ATLAS.clear()
    o.ATLAS["default"] = AtlasConfig()
    for name in OFF:
        o.ATLAS[f"default, {name}=False"] = dataclasses.replace(AtlasConfig(), **{name: False})
    names = [o.BASELINE, *o.ATLAS]
    model_cls = getattr(o, ns.model)
    proc, address = o.start_collector(f"sqlite:///{home}/bench.db")
    per: dict[str, list[tuple[float, ...]]] = {n: [] for n in names}
    try:
        for r in range(ns.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                per[name].extend(o.fit_once(model_cls, name, address, ns.steps, home))
    finally:
        proc.terminate()
        proc.wait(20)
    base_wall = statistics.median(x[0] for x in per[o.BASELINE])
    base_main = statistics.fmean(x[2] for x in per[o.BASELINE])
    base_other = statistics.fmean(x[1] - x[2] for x in per[o.BASELINE])
    print(f"{ns.model}, {ns.rounds} interleaved rounds x {ns.steps} steps, {os.cpu_count()} CPUs; no callback: "
          f"median step {base_wall * 1e3:.2f} ms, training-thread CPU {base_main * 1e3:.2f} ms/step\n")
    print("| configuration | median step (ms) | ratio | Atlas on the training thread (us/step) "
          "| other threads beyond no callback (us/step) | implied step ratio |")
    print("|---|---|---|---|---|---|")
    for name, times in per.items():
        wm = statistics.median(x[0] for x in times)
        atlas = statistics.fmean(x[3] for x in times)
        other = statistics.fmean(x[1] - x[2] for x in times) - base_other
        print(f"| {name} | {wm * 1e3:.2f} | {wm / base_wall:.3f}x | {atlas * 1e6:.1f} | {other * 1e6:.1f} | "
              f"{(base_main + atlas) / base_main:.4f}x |")

if __name__ == "__main__":
    main()
