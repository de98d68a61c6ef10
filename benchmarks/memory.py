"""Memory: trainer RSS over 10,000 steps with Atlas, and collector RSS after ingesting 1M step samples.

    .venv/bin/python benchmarks/memory.py [--steps 10000] [--samples 1000000]   # any venv with Atlas

1. Trainer: a plain PyTorch loop (tiny MLP, batch 16, SGD, 1 torch thread) with `Observer` (default channels:
   loss, throughput, system, gradient norm and layer health every 10 steps, carbon, logs, architecture), an epoch
   every 1,000 steps (`Observer.flush`), streaming to a collector subprocess on loopback. The same loop without
   Atlas runs as the baseline. Each runs in a fresh subprocess; RSS (psutil) is sampled every 500 steps (step 0:
   before the loop, after Atlas's carbon channel has made its first measurement: CodeCarbon's one-time
   ~80 MB).
   Growth after warm-up = RSS at the last sample minus RSS at step WARMUP; the slope is a least-squares fit over
   the samples after warm-up. Target: bounded, no growth after warm-up.
2. Collector: a fresh `atlas-collector` (SQLite file) ingests N step samples over 4 real gRPC streams in
   StepBatch messages of 1,000 (benchmarks/ingest.py's client; acks are durable). RSS before, peak during
   (sampled every 0.2 s), right after, and after 10 s idle (the diagnostics driver has caught up).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

WARMUP = 1000
EVERY = 500


def trainer_child(atlas: bool, steps: int, address: str) -> None:
    import logging

    import torch
    from torch import nn

    logging.getLogger("atlas_callback").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    xs, ys = torch.randn(64, 16, 32), torch.randn(64, 16, 1)
    proc = psutil.Process()
    obs = None
    if atlas:
        from atlas_callback import Observer

        obs = Observer(project="memory", run_name="rss", collector=address)
        obs.register_model(model)
        # CodeCarbon starts on a background thread and takes ~1.5 s and ~80 MB once (with track_carbon=False the
        # same run stays at ~324 MB): a one-time cost that would otherwise land at an arbitrary step of the loop;
        # wait for its first measurement
        carbon = getattr(obs._core, "_carbon", None)
        deadline = time.monotonic() + 30
        while (carbon is not None and not carbon._measured.is_set() and carbon.available
               and time.monotonic() < deadline):
            time.sleep(0.05)
    samples = [(0, proc.memory_info().rss / 2**20)]
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = xs[step % 64], ys[step % 64]
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if obs is not None:
            obs.step(loss, batch_size=16, optimizer=opt)
            if step % 1000 == 0:
                obs.flush(val_metrics={"val_loss": float(loss)})
        if step % EVERY == 0:
            samples.append((step, proc.memory_info().rss / 2**20))
    elapsed = time.perf_counter() - t0
    if obs is not None:
        obs.close()
    print(json.dumps({"samples": samples, "seconds": elapsed}))


def run_trainer(atlas: bool, steps: int, address: str, home: str) -> dict:
    env = dict(os.environ, ATLAS_HOME=home)
    out = subprocess.run([sys.executable, __file__, "--child", "atlas" if atlas else "none", "--steps", str(steps),
                          "--address", address], capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"trainer child failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    samples = result["samples"]
    after = [(s, r) for s, r in samples if s >= WARMUP]
    at_warm = after[0][1]
    xs, ys = [s for s, _ in after], [r for _, r in after]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return {"samples": samples, "seconds": result["seconds"], "rss_at_warmup_mb": at_warm,
            "rss_last_mb": samples[-1][1], "rss_max_mb": max(ys), "growth_after_warmup_mb": samples[-1][1] - at_warm,
            "slope_mb_per_1k_steps": slope * 1000}


def collector_rss(samples: int, home: str) -> dict:
    from ingest import bench_steps, start_collector

    proc, address = start_collector(f"sqlite:///{home}/memory-collector.db")
    p = psutil.Process(proc.pid)
    try:
        time.sleep(1.0)
        before = p.memory_info().rss / 2**20
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak.append(p.memory_info().rss / 2**20)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rate = bench_steps(address, samples, 1000, 4)
        after = p.memory_info().rss / 2**20
        time.sleep(10)
        idle = p.memory_info().rss / 2**20
        done.set()
        sampler.join()
    finally:
        proc.terminate()
        proc.wait(30)
    return {"samples": samples, "rate_per_s": rate, "rss_before_mb": before, "rss_peak_mb": max(peak),
            "rss_after_mb": after, "rss_after_10s_idle_mb": idle}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--json", type=pathlib.Path)
    ap.add_argument("--child", choices=("atlas", "none"), help=argparse.SUPPRESS)
    ap.add_argument("--address", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        trainer_child(args.child == "atlas", args.steps, args.address)
        return
    from ingest import start_collector

    home = tempfile.mkdtemp(prefix="atlas-bench-mem-")
    t0 = time.perf_counter()
    proc, address = start_collector(f"sqlite:///{home}/trainer-collector.db")
    try:
        trainers = {"no Atlas": run_trainer(False, args.steps, address, home),
                    "Observer (default channels)": run_trainer(True, args.steps, address, home)}
    finally:
        proc.terminate()
        proc.wait(30)
    collector = collector_rss(args.samples, home)
    wall = time.perf_counter() - t0
    print(f"{os.cpu_count()} CPUs; {args.steps:,} steps, RSS every {EVERY}, warm-up {WARMUP}; {wall:.0f} s\n")
    print("| trainer | RSS at step 1,000 (MB) | last (MB) | max after warm-up (MB) | growth after warm-up (MB) | "
          "slope (MB / 1k steps) | loop seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, t in trainers.items():
        print(f"| {name} | {t['rss_at_warmup_mb']:.1f} | {t['rss_last_mb']:.1f} | {t['rss_max_mb']:.1f} | "
              f"{t['growth_after_warmup_mb']:+.1f} | {t['slope_mb_per_1k_steps']:+.2f} | {t['seconds']:.1f} |")
    print("\nRSS samples (step: MB), Observer: " +
          ", ".join(f"{s}: {r:.0f}" for s, r in trainers["Observer (default channels)"]["samples"]))
    c = collector
    print(f"\ncollector, {c['samples']:,} step samples at {c['rate_per_s']:,.0f}/s: RSS before {c['rss_before_mb']:.0f} MB, "
          f"peak {c['rss_peak_mb']:.0f} MB, after {c['rss_after_mb']:.0f} MB, after 10 s idle "
          f"{c['rss_after_10s_idle_mb']:.0f} MB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"trainer": trainers, "collector": collector, "wall_s": wall}, indent=2))


if __name__ == "__main__":
    main()
