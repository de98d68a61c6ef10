"""Which Atlas channel costs what: AtlasCallback's step-time overhead with one channel switched off at a time.

    .venv/bin/python benchmarks/overhead_channels.py [--model CNN] [--rounds 3] [--steps 60]

Same harness as benchmarks/overhead.py (interleaved fits in one process, collector subprocess on loopback,
1 torch thread, first 5 steps of each fit skipped): no callback, AtlasCallback default, and the default
less one channel. Prints median/mean wall and process-CPU time per step and their ratios to no callback.
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
    home = tempfile.mkdtemp(prefix="atlas-bench-")
    os.environ["ATLAS_HOME"] = home
    o.ATLAS.clear()
    o.ATLAS["default"] = AtlasConfig()
    for name in OFF:
        o.ATLAS[f"default, {name}=False"] = dataclasses.replace(AtlasConfig(), **{name: False})
    names = [o.BASELINE, *o.ATLAS]
    model_cls = getattr(o, ns.model)
    proc, address = o.start_collector(f"sqlite:///{home}/bench.db")
    per: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    try:
        for r in range(ns.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                per[name].extend(o.fit_once(model_cls, name, address, ns.steps, home))
    finally:
        proc.terminate()
        proc.wait(20)
    base = {k: f([x[i] for x in per[o.BASELINE]]) for k, (f, i) in
            {"wall_med": (statistics.median, 0), "cpu_med": (statistics.median, 1), "cpu_mean": (statistics.fmean, 1)}.items()}
    print(f"{ns.model}, {ns.rounds} interleaved rounds x {ns.steps} steps, {os.cpu_count()} CPUs\n")
    print("| configuration | median step (ms) | ratio | median CPU/step (ms) | ratio | mean CPU/step (ms) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, times in per.items():
        w, c = [x[0] for x in times], [x[1] for x in times]
        wm, cm, ca = statistics.median(w), statistics.median(c), statistics.fmean(c)
        print(f"| {name} | {wm * 1e3:.2f} | {wm / base['wall_med']:.3f}x | {cm * 1e3:.2f} | {cm / base['cpu_med']:.3f}x | "
              f"{ca * 1e3:.2f} | {ca / base['cpu_mean']:.3f}x |")


if __name__ == "__main__":
    main()
