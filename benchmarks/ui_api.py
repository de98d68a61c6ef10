"""The web UI's steps endpoint on a run of 1,000,000 step samples, through a real collector.

Starts `atlas-collector --http 127.0.0.1:0` on a SQLite file, streams one run of --steps samples over real gRPC
(StepBatch messages of 2,000, as a trainer's transport sends them), then times what the run page asks for:

  1. the first open after the collector started (cold: the series cache decodes every stored batch once),
  2. the same again (warm: the cache is kept and brought up to date by reading only newer batches),
  3. one more batch committed, then the view again (incremental),
  4. zooms: a 100,000-step window (downsampled) and a 1,500-step window (full resolution),
  5. the run's detail and its epochs endpoints,
  6. a second run of the same size streamed while a page is open (the UI keeps live runs' series decoded in the
     background): its first open,
and checks that the downsampled view kept the run's extremes (a spike of 50 at one step, a NaN at another).

    .venv/bin/python benchmarks/ui_api.py                  # 1,000,000 steps
    .venv/bin/python benchmarks/ui_api.py --steps 200000 --json benchmarks/results/ui_api.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import httpx

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from atlas_proto.v1 import telemetry_pb2 as tpb  # noqa: E402
from ingest import BenchStream, run_start  # noqa: E402

BIN = pathlib.Path(sys.executable).parent
BATCH = 2000
SPIKE_STEP, NAN_STEP = 777_777, 123_457


def start(db_url: str) -> tuple[subprocess.Popen[str], str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    proc = subprocess.Popen([str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                             "--db", db_url, "--log-level", "WARNING"], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first, second = proc.stdout.readline().strip(), proc.stdout.readline().strip()
    if not first.startswith("listening on ") or not second.startswith("web UI on "):
        proc.kill()
        raise SystemExit(f"collector did not start: {first!r} {second!r}")
    return proc, first.removeprefix("listening on "), second.removeprefix("web UI on ").rstrip("/")


SESSION = str(uuid.uuid4())


def batch(run_id: str, seq: int, first: int, n: int) -> tpb.ClientMessage:
    m = tpb.ClientMessage(run_id=run_id, session=SESSION, seq=seq)
    t0 = 1_700_000_000.0
    for step in range(first, first + n):
        loss = 50.0 if step == SPIKE_STEP else (math.nan if step == NAN_STEP else 2.0 / (1 + 1e-5 * step)
                                                + 0.05 * math.sin(step / 50))
        x = m.step_batch.samples.add(step=step, epoch=step // 10_000, loss=loss, lr=1e-3, grad_norm=1.0 + step % 3,
                                     step_time_s=0.01, batch_size=64)
        x.time.FromNanoseconds(int((t0 + step * 0.01) * 1e9))
    return m


def send_run(stream: BenchStream, run_id: str, steps: int) -> int:
    """A RunStart and `steps` samples in batches; returns the last sequence number (acked)."""
    stream.send(run_start(run_id))
    seq = 0
    for first in range(0, steps, BATCH):
        seq += 1
        stream.send(batch(run_id, seq, first, min(BATCH, steps - first)))
        if seq > 64:
            stream.wait(seq - 64)
    stream.wait(seq)
    return seq


def rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def timed(client: httpx.Client, path: str, **params: object) -> tuple[float, dict, int]:
    t0 = time.perf_counter()
    resp = client.get(path, params=params)
    elapsed = time.perf_counter() - t0
    resp.raise_for_status()
    return elapsed, resp.json(), len(resp.content)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()
    rows: dict[str, object] = {"steps": args.steps, "points": args.points}
    with tempfile.TemporaryDirectory() as tmp:
        proc, address, url = start(f"sqlite:///{tmp}/ui.db")
        try:
            run_id = str(uuid.uuid4())
            stream = BenchStream(address)
            t0 = time.perf_counter()
            seq = send_run(stream, run_id, args.steps)
            rows["ingest_s"] = round(time.perf_counter() - t0, 2)
            rows["rss_before_mb"] = round(rss_mb(proc.pid), 1)
            with httpx.Client(base_url=url, timeout=120) as client:
                steps = f"/api/runs/{run_id}/steps"
                cold, view, size = timed(client, steps, points=args.points)
                rows["cold_s"], rows["response_kb"] = round(cold, 3), round(size / 1024, 1)
                assert view["total"] == args.steps and view["downsampled"] and len(view["step"]) <= args.points
                loss = view["series"]["loss"]
                spike_kept = args.steps <= SPIKE_STEP or max(v for v in loss["max"] if v is not None) == 50.0
                nan_kept = args.steps <= NAN_STEP or NAN_STEP in loss["nonfinite"]
                rows["extremes_kept"] = bool(spike_kept and nan_kept)
                warm = [timed(client, steps, points=args.points)[0] for _ in range(5)]
                rows["warm_median_s"] = round(statistics.median(warm), 3)
                rows["rss_after_mb"] = round(rss_mb(proc.pid), 1)
                seq += 1
                stream.send(batch(run_id, seq, args.steps, BATCH))
                stream.wait(seq)
                rows["after_one_more_batch_s"] = round(timed(client, steps, points=args.points)[0], 3)
                mid = args.steps // 2
                zoom_s, zoom, _ = timed(client, steps, points=args.points, **{"from": mid, "to": mid + 99_999})
                rows["zoom_100k_s"], rows["zoom_100k_downsampled"] = round(zoom_s, 3), zoom["downsampled"]
                raw_s, raw, _ = timed(client, steps, points=args.points, **{"from": mid, "to": mid + 1499})
                assert not raw["downsampled"] and raw["step"] == list(range(mid, mid + 1500))
                rows["zoom_1500_full_resolution_s"] = round(raw_s, 3)
                rows["run_detail_s"] = round(timed(client, f"/api/runs/{run_id}")[0], 3)
                rows["epochs_s"] = round(timed(client, f"/api/runs/{run_id}/epochs")[0], 3)
                live_id = str(uuid.uuid4())
                live = BenchStream(address)
                client.get("/api/runs").raise_for_status()  # a page is open
                send_run(live, live_id, args.steps)
                time.sleep(3.0)
                live_s, live_view, _ = timed(client, f"/api/runs/{live_id}/steps", points=args.points)
                assert live_view["total"] == args.steps
                rows["first_open_streamed_while_ui_open_s"] = round(live_s, 3)
                live.close()
            stream.close()
        finally:
            proc.terminate()
            proc.wait(30)
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        print(f"{key.ljust(width)}  {value}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
