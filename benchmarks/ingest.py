"""Collector ingest rate through real gRPC, on SQLite and PostgreSQL.

Starts `atlas-collector` as a subprocess, then from this process:
  1. step records/s: STREAMS concurrent trainer streams each send StepBatch messages of BATCH samples
     (like MLflow's log_batch of 1,000) as fast as acks allow; the clock runs from the first send to the last ack;
  2. epoch summaries/s: the same with EpochSummary messages (one epoch each, realistic payload);
  3. ack latency at 20 concurrent streams, once the collector is idle again (its diagnostics catch up with the
     epoch burst of 2. first): each stream sends a batch of 100 samples every --latency-period seconds;
     p50/p99 of send -> ack (acks are durable: after commit).

    python benchmarks/ingest.py                       # SQLite file in a temp dir, and the local PostgreSQL
    python benchmarks/ingest.py --stores sqlite --steps 2000000
    ATLAS_BENCH_PG=postgresql+psycopg://postgres@127.0.0.1:5432/test python benchmarks/ingest.py
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
import threading
import time
import uuid

import grpc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from atlas_proto.v1 import telemetry_pb2 as tpb  # noqa: E402
from atlas_proto.v1 import telemetry_pb2_grpc  # noqa: E402

BIN = pathlib.Path(sys.executable).parent
PG_ADMIN = os.environ.get("ATLAS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def start_collector(db_url: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    proc = subprocess.Popen([str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--db", db_url,
                             "--log-level", "WARNING"], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    if not first.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"collector did not start: {first!r}")
    return proc, first.removeprefix("listening on ")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (Linux /proc)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, timeout: float = 30.0) -> None:
    """Wait until the collector is idle (< 5 % of a core over a second), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = cpu_seconds(pid)
        if now - before < 0.05:
            return
        before = now


def run_start(run_id: str) -> tpb.ClientMessage:
    m = tpb.ClientMessage(run_id=run_id)
    rs = m.run_start
    rs.protocol_version, rs.project, rs.run_name = tpb.PROTOCOL_VERSION_1, "bench", f"bench-{run_id[:6]}"
    rs.framework, rs.world_size = tpb.FRAMEWORK_PYTORCH, 1
    rs.started_at.GetCurrentTime()
    return m


def step_batch(run_id: str, session: str, seq: int, first: int, n: int) -> tpb.ClientMessage:
    m = tpb.ClientMessage(run_id=run_id, session=session, seq=seq)
    now = time.time()
    for i in range(n):
        x = m.step_batch.samples.add(step=first + i, epoch=0, loss=2.0 / (1 + 0.001 * (first + i)), lr=0.01,
                                     grad_norm=1.0, step_time_s=0.01, batch_size=64)
        x.time.FromNanoseconds(int(now * 1e9))
    return m


def epoch_summary(run_id: str, session: str, seq: int, epoch: int) -> tpb.ClientMessage:
    m = tpb.ClientMessage(run_id=run_id, session=session, seq=seq)
    e = m.epoch_summary
    e.epoch, e.duration_seconds, e.global_step = epoch, 12.5, (epoch + 1) * 100
    e.ended_at.GetCurrentTime()
    e.loss.mean, e.loss.std, e.loss.min, e.loss.max, e.loss.count = 1.0 / (epoch + 1), 0.05, 0.5, 1.5, 100
    e.val_metrics["val_loss"], e.val_metrics["val_acc"] = 1.1 / (epoch + 1), 0.9
    e.throughput.samples_per_sec, e.throughput.samples_processed = 5000.0, 6400
    e.memory.process_rss_mb, e.system.cpu_percent, e.system.ram_percent = 1200.0, 95.0, 40.0
    e.lr.append(0.01)
    e.carbon.epoch_co2_kg, e.carbon.epoch_energy_kwh = 0.001, 0.004
    e.carbon.cumulative_co2_kg, e.carbon.cumulative_energy_kwh = 0.001 * (epoch + 1), 0.004 * (epoch + 1)
    for i in range(8):
        e.layer_health.layers.add(name=f"layer{i}", activation_mean=0.1, activation_std=0.5, zero_fraction=0.1,
                                  gradient_norm_mean=0.01, update_ratio=1e-3, samples=10)
    return m


class BenchStream:
    """One stream: messages in, acks out; remembers when each seq was sent and when it was acked."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)])
        self.outbox: queue.Queue[tpb.ClientMessage | None] = queue.Queue()
        self.sent_at: dict[int, float] = {}
        self.latencies: list[float] = []
        self.acked = 0
        self.acked_event = threading.Condition()
        self.call = telemetry_pb2_grpc.TelemetryServiceStub(self.channel).Stream(iter(self.outbox.get, None))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def send(self, m: tpb.ClientMessage) -> None:
        if m.seq:
            self.sent_at[m.seq] = time.perf_counter()
        self.outbox.put(m)

    def _read(self) -> None:
        try:
            for msg in self.call:
                if msg.HasField("ack") and msg.ack.seq > self.acked:
                    now = time.perf_counter()
                    for seq in range(self.acked + 1, msg.ack.seq + 1):
                        if seq in self.sent_at:
                            self.latencies.append(now - self.sent_at.pop(seq))
                    with self.acked_event:
                        self.acked = msg.ack.seq
                        self.acked_event.notify_all()
        except grpc.RpcError as exc:
            print("stream error:", exc.code(), exc.details(), file=sys.stderr)

    def wait(self, seq: int, timeout: float = 600) -> None:
        with self.acked_event:
            self.acked_event.wait_for(lambda: self.acked >= seq, timeout)

    def close(self) -> None:
        self.outbox.put(None)
        self.reader.join(10)
        self.channel.close()


def saturate(address: str, streams: int, messages: list[list[tpb.ClientMessage]], window: int) -> float:
    """Send every stream's messages (at most `window` unacked each); seconds from first send to last ack."""
    conns = [BenchStream(address) for _ in range(streams)]
    for conn, msgs in zip(conns, messages):
        conn.send(msgs[0])  # RunStart
    time.sleep(0.3)

    def pump(conn: BenchStream, msgs: list[tpb.ClientMessage]) -> None:
        for m in msgs[1:]:
            if m.seq > window:
                conn.wait(m.seq - window)
            conn.send(m)
        conn.wait(msgs[-1].seq)

    threads = [threading.Thread(target=pump, args=(c, m)) for c, m in zip(conns, messages)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return elapsed


def bench_steps(address: str, total: int, batch: int, streams: int) -> float:
    per_stream = total // streams
    messages = []
    for _ in range(streams):
        run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
        msgs = [run_start(run_id)]
        for seq, first in enumerate(range(1, per_stream + 1, batch), start=1):
            msgs.append(step_batch(run_id, session, seq, first, min(batch, per_stream - first + 1)))
        messages.append(msgs)
    elapsed = saturate(address, streams, messages, window=32)
    return streams * per_stream / elapsed


def bench_epochs(address: str, total: int, streams: int) -> float:
    per_stream = total // streams
    messages = []
    for _ in range(streams):
        run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
        messages.append([run_start(run_id)] + [epoch_summary(run_id, session, e + 1, e) for e in range(per_stream)])
    elapsed = saturate(address, streams, messages, window=256)
    return streams * per_stream / elapsed


def bench_latency(address: str, streams: int = 20, seconds: float = 5.0, batch: int = 100,
                  period: float = 0.02) -> tuple[float, float, float]:
    conns = [BenchStream(address) for _ in range(streams)]
    ids = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in conns]
    for conn, (run_id, _) in zip(conns, ids):
        conn.send(run_start(run_id))
    time.sleep(0.3)

    def pace(conn: BenchStream, run_id: str, session: str) -> None:
        seq, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            seq += 1
            conn.send(step_batch(run_id, session, seq, seq * batch, batch))
            time.sleep(period)
        conn.wait(seq)

    threads = [threading.Thread(target=pace, args=(c, *i)) for c, i in zip(conns, ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(x for c in conns for x in c.latencies)
    for c in conns:
        c.close()
    rate = len(lat) * batch / seconds
    return statistics.median(lat) * 1000, lat[int(0.99 * (len(lat) - 1))] * 1000, rate


def fresh_pg_database() -> tuple[str, callable]:
    import sqlalchemy as sa

    name = f"atlas_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--steps", type=int, default=1_000_000, help="step records per measurement")
    ap.add_argument("--batch", type=int, default=1000, help="samples per StepBatch message")
    ap.add_argument("--streams", type=int, default=4, help="concurrent streams for the rate measurements")
    ap.add_argument("--epochs", type=int, default=4000, help="epoch summaries per measurement")
    ap.add_argument("--latency-seconds", type=float, default=5.0)
    ap.add_argument("--latency-period", type=float, default=0.1, help="seconds between a stream's batches")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; {args.streams} streams; StepBatch of {args.batch}")
    for store in args.stores.split(","):
        cleanup = None
        if store == "sqlite":
            tmp = tempfile.mkdtemp(prefix="atlas-bench-")
            url = f"sqlite:///{tmp}/bench.db"
        else:
            url, cleanup = fresh_pg_database()
        proc, address = start_collector(url)
        try:
            cpu0 = cpu_seconds(proc.pid)
            steps = bench_steps(address, args.steps, args.batch, args.streams)
            cpu1 = cpu_seconds(proc.pid)
            epochs = bench_epochs(address, args.epochs, args.streams)
            cpu2 = cpu_seconds(proc.pid)
            settle(proc.pid)  # the diagnostics catch up with the epoch burst first (~2 s after 4,000 epochs)
            p50, p99, rate = bench_latency(address, seconds=args.latency_seconds, period=args.latency_period)
            per_cpu_steps = (args.steps // args.streams * args.streams) / max(cpu1 - cpu0, 1e-9)
            per_cpu_epochs = (args.epochs // args.streams * args.streams) / max(cpu2 - cpu1, 1e-9)
            print(f"{store:9s} step records/s: {steps:10,.0f} ({per_cpu_steps:,.0f} per collector CPU-second)   "
                  f"epoch summaries/s: {epochs:8,.0f} ({per_cpu_epochs:,.0f} per CPU-second)")
            print(f"{'':9s} ack latency, 20 streams sending {rate:,.0f} records/s in batches of 100: "
                  f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        finally:
            proc.terminate()
            proc.wait(30)
            if cleanup:
                cleanup()


if __name__ == "__main__":
    main()
