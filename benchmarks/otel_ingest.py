"""Collector ingest rate with OTLP export on vs off, interleaved in the same run (target: within 5%).

Each trial starts a fresh `atlas-collector` subprocess (SQLite file in a temp dir, or `--db URL`), then STREAMS
concurrent trainer streams each send a whole run as fast as a window of unacked messages allows: RunStart,
then per epoch BATCHES StepBatch messages of SAMPLES samples and one EpochSummary, then RunEnd. The rate is
records (step samples + epoch summaries) per second from the first send to the last ack; acks are durable.
"on" trials export to a real OTLP/gRPC receiver in its own process (built on opentelemetry-proto), with
metrics every second; "off" trials have no endpoint. Trials alternate off/on so drift hits both alike.

    python benchmarks/otel_ingest.py                        # 5 trials of each
    python benchmarks/otel_ingest.py --trials 7 --streams 8 --epochs 20 --db postgresql+psycopg://...
"""
from __future__ import annotations

import argparse
import os
import pathlib
import queue
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid

import grpc
import psutil

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from atlas_proto.v1 import telemetry_pb2 as tpb  # noqa: E402
from atlas_proto.v1 import telemetry_pb2_grpc  # noqa: E402

BIN = pathlib.Path(sys.executable).parent

RECEIVER = textwrap.dedent("""
    import sys, threading
    from concurrent import futures
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as t, trace_service_pb2_grpc as tg
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as m, metrics_service_pb2_grpc as mg
    counts = {"spans": 0, "metric_requests": 0}
    class T(tg.TraceServiceServicer):
        def Export(self, request, context):
            counts["spans"] += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            return t.ExportTraceServiceResponse()
    class M(mg.MetricsServiceServicer):
        def Export(self, request, context):
            counts["metric_requests"] += 1
            return m.ExportMetricsServiceResponse()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    tg.add_TraceServiceServicer_to_server(T(), server)
    mg.add_MetricsServiceServicer_to_server(M(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    print(counts["spans"], counts["metric_requests"], flush=True)
""")


def start_collector(db_url: str, otlp: str | None, config: pathlib.Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATLAS_", "OTEL_"))}
    env["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
    args = [str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--db", db_url, "--log-level", "WARNING",
            "--config", str(config)]
    if otlp:
        args += ["--otlp-endpoint", otlp]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    if not first.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"collector did not start: {first!r}")
    return proc, first.removeprefix("listening on ")


def build_run(epochs: int, batches: int, samples: int) -> tuple[list[tpb.ClientMessage], int]:
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    msgs, seq, step, records = [], 0, 0, 0

    def msg() -> tpb.ClientMessage:
        nonlocal seq
        seq += 1
        return tpb.ClientMessage(run_id=run_id, rank=0, session=session, seq=seq)

    start = tpb.ClientMessage(run_id=run_id, rank=0, session=session)
    rs = start.run_start
    rs.protocol_version, rs.project, rs.run_name = tpb.PROTOCOL_VERSION_1, "bench", f"otel-{run_id[:6]}"
    rs.framework, rs.world_size = tpb.FRAMEWORK_PYTORCH, 1
    rs.device.kind = "cpu"
    rs.hyperparameters.update({"lr": 0.01, "batch_size": 64})
    rs.started_at.GetCurrentTime()
    msgs.append(start)
    now = time.time()
    for epoch in range(epochs):
        for _ in range(batches):
            m = msg()
            for _ in range(samples):
                step += 1
                x = m.step_batch.samples.add(step=step, epoch=epoch, loss=2.0 / (1 + step * 0.01), lr=0.01,
                                             step_time_s=0.02, batch_size=64)
                x.time.FromNanoseconds(int((now + step * 0.02) * 1e9))
            msgs.append(m)
            records += samples
        m = msg()
        e = m.epoch_summary
        e.epoch, e.duration_seconds, e.global_step = epoch, batches * samples * 0.02, step
        e.ended_at.FromNanoseconds(int((now + step * 0.02) * 1e9))
        e.loss.mean, e.loss.std, e.loss.min, e.loss.max, e.loss.count = 1.0, 0.1, 0.8, 1.2, batches * samples
        e.val_metrics["val_loss"] = 1.1
        e.throughput.samples_per_sec, e.throughput.samples_processed = 3200.0, batches * samples * 64
        e.memory.process_rss_mb = 900.0
        e.carbon.epoch_co2_kg, e.carbon.cumulative_co2_kg, e.carbon.power_draw_watts = 1e-5, 1e-5 * (epoch + 1), 60.0
        msgs.append(m)
        records += 1
    end = msg()
    end.run_end.status = tpb.RUN_STATUS_COMPLETED
    end.run_end.ended_at.FromNanoseconds(int((now + step * 0.02 + 1) * 1e9))
    msgs.append(end)
    return msgs, records


def stream_run(address: str, msgs: list[tpb.ClientMessage], window: int, started: threading.Barrier) -> float:
    """Send one run with at most `window` unacked messages; returns when the last one is acked."""
    outbox: queue.Queue[tpb.ClientMessage | None] = queue.Queue()
    permits = threading.Semaphore(window)
    last = msgs[-1].seq
    done = threading.Event()
    with grpc.insecure_channel(address) as channel:
        call = telemetry_pb2_grpc.TelemetryServiceStub(channel).Stream(iter(outbox.get, None))

        def read() -> None:
            acked = 0
            for reply in call:
                if reply.HasField("ack") and reply.ack.seq > acked:
                    for _ in range(reply.ack.seq - acked):
                        permits.release()
                    acked = reply.ack.seq
                    if acked >= last:
                        done.set()
                        return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        started.wait()
        for m in msgs:
            if m.seq:
                permits.acquire()
            outbox.put(m)
        if not done.wait(300):
            raise SystemExit("a stream was never fully acked")
        outbox.put(None)
        reader.join(10)
    return time.perf_counter()


def trial(db_url: str, otlp: str | None, args: argparse.Namespace, config: pathlib.Path) -> tuple[float, float]:
    """Records/s of one trial and the collector's CPU time per record (µs, from the first send to the last
    ack). The collector then stops gracefully, exporting what it
    still holds."""
    proc, address = start_collector(db_url, otlp, config)
    try:
        runs = [build_run(args.epochs, args.batches, args.samples) for _ in range(args.streams)]
        records = sum(r for _, r in runs)
        barrier = threading.Barrier(args.streams + 1)
        ends: list[float] = []
        threads = [threading.Thread(target=lambda m=m: ends.append(stream_run(address, m, args.window, barrier)))
                   for m, _ in runs]
        for t in threads:
            t.start()
        collector = psutil.Process(proc.pid)
        before = collector.cpu_times()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        after = collector.cpu_times()
        used = (after.user - before.user) + (after.system - before.system)
        return records / (max(ends) - t0), used / records * 1e6
    finally:
        proc.terminate()
        proc.wait(120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5, help="trials of each mode (alternating off/on)")
    parser.add_argument("--streams", type=int, default=4, help="concurrent trainer streams (one run each)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run")
    parser.add_argument("--batches", type=int, default=20, help="StepBatch messages per epoch")
    parser.add_argument("--samples", type=int, default=100, help="step samples per StepBatch")
    parser.add_argument("--window", type=int, default=32, help="unacked messages per stream")
    parser.add_argument("--db", default="", help="store URL (default: a fresh SQLite file per trial)")
    args = parser.parse_args()

    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
    assert receiver.stdout is not None and receiver.stdin is not None
    otlp = f"127.0.0.1:{receiver.stdout.readline().strip()}"
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "collector.toml"
        config.write_text("shutdown_grace_s = 90.0\n")  # time to export everything at the end of a trial
        for i in range(args.trials * 2):
            mode = "off" if i % 2 == 0 else "on"
            db_url = args.db or f"sqlite:///{pathlib.Path(tmp) / f'trial{i}.db'}"
            rate, us = trial(db_url, otlp if mode == "on" else None, args, config)
            rates[mode].append(rate)
            cpu[mode].append(us)
            print(f"trial {i + 1:2d} export {mode:3s}: {rate:12,.0f} records/s  collector CPU {us:6.1f} µs/record",
                  flush=True)
    receiver.stdin.close()
    spans, metric_requests = receiver.stdout.read().split()
    receiver.wait(10)
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(f"\nstreams={args.streams} epochs={args.epochs} batches/epoch={args.batches} samples/batch={args.samples}"
          f" window={args.window} store={'--db' if args.db else 'sqlite'}")
    print(f"median export off: {off:12,.0f} records/s  (min {min(rates['off']):,.0f}, max {max(rates['off']):,.0f})")
    print(f"median export on : {on:12,.0f} records/s  (min {min(rates['on']):,.0f}, max {max(rates['on']):,.0f})")
    ratios = [b / a for a, b in zip(rates["off"], rates["on"])]  # each "on" trial against the "off" just before
    print(f"export on / off  : {on / off:.3f} of the medians ({(on / off - 1) * 100:+.1f}%); median of paired "
          f"ratios {statistics.median(ratios):.3f} ({(statistics.median(ratios) - 1) * 100:+.1f}%); "
          f"target: within -5%")
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    print(f"collector CPU per record: off {cpu_off:.1f} µs, on {cpu_on:.1f} µs ({(cpu_on / cpu_off - 1) * 100:+.1f}%)")
    print(f"receiver got {spans} spans and {metric_requests} metric exports "
          f"(expected spans: {args.trials * args.streams * (args.epochs + 1)})")


if __name__ == "__main__":
    main()
