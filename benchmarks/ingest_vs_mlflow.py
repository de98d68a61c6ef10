"""Ingest rate of the Atlas collector (SQLite and PostgreSQL) against an MLflow tracking server, same workload.

    bash benchmarks/peers_env.sh        # once: mlflow (and Atlas) in benchmarks/.peers-venv
    benchmarks/.peers-venv/bin/python benchmarks/ingest_vs_mlflow.py [--records 400000] [--mlflow-records 8000]

The workload, for every system: STREAMS concurrent clients (one run each) send RECORDS step records in batches
of 1,000 as fast as the server takes them; the clock runs from the first send to the last durable answer.
- Atlas: real gRPC streams of StepBatch messages (each sample: step, epoch, loss, lr, grad_norm, step time,
  batch size, timestamp), at most 32 batches unacknowledged per stream; an Ack means committed
  (benchmarks/ingest.py's client). Stores: a SQLite file, and a scratch database on the local PostgreSQL
  (created and dropped).
- MLflow: `mlflow server --backend-store-uri sqlite:///...` on loopback (its default workers), each client
  calling `MlflowClient.log_batch` with 1,000 metric points (one `train_loss` point per step record: MLflow
  gets the lighter payload); `log_batch` returns after the server stored the batch.
MLflow is also measured with a single client (its SQLite store serialises writers, so concurrency may not
help it), and Atlas is compared with the faster of MLflow's two figures. The systems are measured in the
same run, interleaved ROUNDS times (Atlas SQLite, MLflow 4 clients, MLflow 1 client, Atlas PostgreSQL, ...),
and the median per system is reported. MLflow gets fewer records per measurement (it is ~20x slower; a
rate over its batches is what is compared). Also reported: records per CPU-second of the server process
(and its children), a figure less sensitive to the other load on a shared machine than the wall-clock rate.
Target: Atlas >= 20x MLflow.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from ingest import bench_steps, fresh_pg_database, start_collector  # noqa: E402  (benchmarks/ingest.py)

BIN = pathlib.Path(sys.executable).parent
BATCH = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="false")
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
                             "--default-artifact-root", f"{tmp}/mlflow-artifacts", "--host", "127.0.0.1",
                             "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/mlflow-server.log", "wb"), env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow server exited; see {tmp}/mlflow-server.log")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("mlflow server did not answer /health within 180 s")


def stop_mlflow(proc: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: the group this script started
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def bench_mlflow(url: str, total: int, streams: int) -> float:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    exp = client.create_experiment(f"bench-{uuid.uuid4().hex[:8]}")
    per_stream = total // streams
    runs = [client.create_run(exp).info.run_id for _ in range(streams)]
    now_ms = int(time.time() * 1000)
    batches = [[[Metric("train_loss", 2.0 / (1 + 0.001 * s), now_ms, s)
                 for s in range(first, min(first + BATCH, per_stream + 1))]
                for first in range(1, per_stream + 1, BATCH)] for _ in runs]
    errors: list[BaseException] = []

    def pump(run_id: str, mine: list[list[Metric]]) -> None:
        try:
            for metrics in mine:
                client.log_batch(run_id, metrics=metrics)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=pump, args=(r, b)) for r, b in zip(runs, batches)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"mlflow log_batch failed: {errors[0]!r}")
    stored = len(client.get_metric_history(runs[0], "train_loss"))
    if stored != per_stream:
        raise SystemExit(f"mlflow stored {stored} points of run 0, expected {per_stream}")
    return streams * per_stream / elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a server process and its children (MLflow's workers)."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def measured(pid: int, records: int, fn, *args) -> tuple[float, float]:
    """(records/s wall, records per server CPU-second) of one measurement."""
    before = cpu_seconds(pid)
    rate = fn(*args)
    return rate, records / max(1e-9, cpu_seconds(pid) - before)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=400_000, help="step records per Atlas measurement, all streams")
    ap.add_argument("--mlflow-records", type=int, default=8_000, help="step records per MLflow measurement")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="atlas-bench-ingest-")
    m4, m1 = f"MLflow server (SQLite), {args.streams} clients", "MLflow server (SQLite), 1 client"
    rates: dict[str, list[float]] = {"Atlas SQLite": [], m4: [], m1: [], "Atlas PostgreSQL": []}
    per_cpu_s: dict[str, list[float]] = {k: [] for k in rates}
    t_start = time.perf_counter()
    mlflow_proc, mlflow_url = start_mlflow(tmp)
    pg_url, drop_pg = fresh_pg_database()
    sqlite_proc, sqlite_addr = start_collector(f"sqlite:///{tmp}/atlas.db")
    pg_proc, pg_addr = start_collector(pg_url)
    print(f"servers up after {time.perf_counter() - t_start:.0f} s", flush=True)
    try:
        for r in range(args.rounds):
            for key, pid, n, fn, fargs in (
                    ("Atlas SQLite", sqlite_proc.pid, args.records, bench_steps,
                     (sqlite_addr, args.records, BATCH, args.streams)),
                    (m4, mlflow_proc.pid, args.mlflow_records, bench_mlflow,
                     (mlflow_url, args.mlflow_records, args.streams)),
                    (m1, mlflow_proc.pid, args.mlflow_records, bench_mlflow, (mlflow_url, args.mlflow_records, 1)),
                    ("Atlas PostgreSQL", pg_proc.pid, args.records, bench_steps,
                     (pg_addr, args.records, BATCH, args.streams))):
                rate, per_cpu = measured(pid, n, fn, *fargs)
                rates[key].append(rate)
                per_cpu_s[key].append(per_cpu)
            print(f"round {r + 1} ({time.perf_counter() - t_start:.0f} s): " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()), flush=True)
    finally:
        for proc in (sqlite_proc, pg_proc):
            proc.terminate()
            proc.wait(30)
        stop_mlflow(mlflow_proc)
        drop_pg()
    wall = time.perf_counter() - t_start
    import mlflow

    med = {k: statistics.median(v) for k, v in rates.items()}
    base = max(med[m4], med[m1])
    cpu_med = {k: statistics.median(v) for k, v in per_cpu_s.items()}
    cpu_base = max(cpu_med[m4], cpu_med[m1])
    print(f"\n{os.cpu_count()} CPUs, mlflow {mlflow.__version__}; {args.streams} streams, batches of {BATCH}, "
          f"{args.records:,} records per Atlas measurement, {args.mlflow_records:,} per MLflow; "
          f"{args.rounds} rounds; {wall:.0f} s\n")
    print("| system | median records/s | rounds | vs MLflow (the faster MLflow figure) | "
          "records per server CPU-second (median) | vs MLflow |")
    print("|---|---|---|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:,.0f} | {', '.join(f'{x:,.0f}' for x in rates[k])} | {v / base:.1f}x | "
              f"{cpu_med[k]:,.0f} | {cpu_med[k] / cpu_base:.1f}x |")
    for k in ("Atlas SQLite", "Atlas PostgreSQL"):
        print(f"{k}: {med[k] / base:.1f}x MLflow (target >= 20x: {'met' if med[k] / base >= 20 else 'MISSED'})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rounds": rates, "median": med, "per_server_cpu_s": per_cpu_s, "streams": args.streams,
                                         "records": args.records, "wall_s": wall}, indent=2))


if __name__ == "__main__":
    main()
