"""A flood of new runs beside a run under way: the running trainer's send -> durable-ack latency.

    .venv/bin/python benchmarks/flood.py [--runs 10000] [--streams 50 1000] [--json FILE]

A collector subprocess on loopback (SQLite in a temp dir). One `Observer` trainer in this process starts first
and sends a step every 10 ms (flushing 20 times a second); once it has its first ack, a separate process opens
`--streams` gRPC streams that between them send `--runs` RunStarts of new runs as fast as the collector takes
them. Reported per flood size: the trainer's ack latencies while the flood lasts (p50 / p95 / max), the same
trainer with no flood beside it, and how long the flood took to land. A flood is throttled, not refused (a sweep
of many runs starting at once is legitimate), so the figure to watch is the running trainer's latency.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
import uuid


def _start_collector(db: str) -> tuple[subprocess.Popen[str], str]:
    exe = pathlib.Path(sys.executable).parent / "atlas-collector"
    proc = subprocess.Popen([str(exe), "--listen", "127.0.0.1:0", "--db", db, "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline().strip()  # type: ignore[union-attr]
    if not first.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"collector did not start: {first!r}")
    return proc, first.removeprefix("listening on ")


def _flood(address: str, runs: int, streams: int, done: "multiprocessing.Queue[float]") -> None:
    import grpc

    from atlas_proto.v1 import telemetry_pb2 as tpb

    def start(run_id: str) -> bytes:
        m = tpb.ClientMessage(run_id=run_id)
        m.run_start.protocol_version = tpb.PROTOCOL_VERSION_1
        m.run_start.project, m.run_start.run_name = "flood", "flood"
        return m.SerializeToString()

    def one(n: int) -> None:
        channel = grpc.insecure_channel(address)
        call = channel.stream_stream("/atlas.v1.TelemetryService/Stream", request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
        for _ in call(iter([start(str(uuid.uuid4())) for _ in range(n)]), timeout=600):
            pass
        channel.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(runs // streams,)) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.put(time.monotonic() - t0)


def _trainer(address: str, runs: int, streams: int) -> dict[str, float]:
    from atlas_callback import AtlasConfig, Observer

    obs = Observer(project="healthy", run_name="beside-the-flood", collector=address,
                   config=AtlasConfig(track_carbon=False, track_gpu=False, step_flush_seconds=0.05))
    obs.__enter__()
    for _ in range(30):
        obs.step(1.0, batch_size=8)
        time.sleep(0.01)
    obs.flush()
    transport = obs._core.transport
    before = len(transport.ack_latencies())
    spawn = multiprocessing.get_context("spawn")  # a fresh process: no gRPC state or threads of this one
    done: multiprocessing.Queue[float] = spawn.Queue()
    flooder = None
    if runs:
        flooder = spawn.Process(target=_flood, args=(address, runs, streams, done))
        flooder.start()
    t0 = time.monotonic()
    while True:
        obs.step(0.5, batch_size=8)
        time.sleep(0.01)
        if flooder is None and time.monotonic() - t0 > 5:
            break
        if flooder is not None and not flooder.is_alive():
            break
    obs.flush()
    lat = sorted(transport.ack_latencies()[before:])
    obs.__exit__(None, None, None)
    flood_s = done.get(timeout=5) if flooder is not None else 0.0
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    return {"runs": runs, "streams": streams, "acks": len(lat), "p50_ms": pick(0.5), "p95_ms": pick(0.95),
            "max_ms": lat[-1] * 1000, "flood_s": flood_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--streams", type=int, nargs="+", default=[50, 1000])
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ATLAS_HOME"] = tmp  # the trainer's spool, if any, stays out of ~/.atlas
        for i, streams in enumerate([0, *args.streams]):
            proc, address = _start_collector(f"sqlite:///{tmp}/flood{i}.db")
            try:
                rows.append(_trainer(address, args.runs if streams else 0, streams))
            finally:
                proc.terminate()
                proc.wait(30)
    print("| flood beside the run | acks | p50 ms | p95 ms | max ms | flood landed in |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        what = f"{r['runs']:,} new runs over {r['streams']} streams" if r["runs"] else "none"
        print(f"| {what} | {r['acks']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['max_ms']:.0f} | "
              f"{r['flood_s']:.1f} s |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
