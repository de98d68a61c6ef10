"""Interactive queries on a big store, through real gRPC: listing 10,000 runs, reading 100,000 step samples.

Fills a fresh store (SQLite file, and a fresh database on the local PostgreSQL) directly — 10,000 runs in 20
projects with tags, and one run with 100,000 step samples — then starts `atlas-collector` on it and times, as the
CLI makes them: `atlas runs` (first page of 50), the same filtered by project / status / tag, a listing of all
10,000 runs (limit 10,000), the run detail by name, and GetSteps of all 100,000 samples of one run (and a
1,000-step range). Each timing is the median of --repeat calls.

    python benchmarks/collector_queries.py [--stores sqlite,postgres] [--runs 10000] [--steps 100000]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

import grpc
import sqlalchemy as sa

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from atlas_collector import Store  # noqa: E402
from atlas_collector import _schema as s  # noqa: E402
from atlas_collector._ingest import apply_message  # noqa: E402
from atlas_proto.v1 import query_pb2 as qpb  # noqa: E402
from atlas_proto.v1 import query_pb2_grpc  # noqa: E402
from atlas_proto.v1 import telemetry_pb2 as tpb  # noqa: E402

from ingest import fresh_pg_database, start_collector, step_batch  # noqa: E402


def fill(url: str, runs: int, steps: int) -> str:
    """`runs` runs (20 projects, tags) and one more run with `steps` step samples; returns that run's id."""
    store = Store(url)
    store.create_schema()
    now = time.time()
    with store.begin() as conn:
        conn.execute(sa.insert(s.projects), [{"name": f"project-{p}", "created_at": now} for p in range(20)])
        pids = [r[0] for r in conn.execute(sa.select(s.projects.c.id).order_by(s.projects.c.id))]
        statuses = ("completed", "completed", "completed", "failed", "stopped", "running")
        rows, tags = [], []
        for i in range(runs):
            run_id = str(uuid.uuid4())
            rows.append({"id": run_id, "project_id": pids[i % 20], "name": f"run-{i}", "status": statuses[i % 6],
                         "framework": "lightning", "started_at": now - (runs - i) * 60.0,
                         "ended_at": now - (runs - i) * 60.0 + 50, "last_seen_at": now, "on_critical": "warn",
                         "world_size": 1, "epochs": 10, "steps": 1000, "health_score": 100.0 - i % 40,
                         "hyperparameters": {"lr": 0.01, "batch_size": 64}, "versions": {"torch": "2.5"},
                         "device": {"kind": "cpu"}})
            tags.append({"run_id": run_id, "tag": f"tag-{i % 50}"})
        for chunk in range(0, runs, 2000):
            conn.execute(sa.insert(s.runs), rows[chunk:chunk + 2000])
            conn.execute(sa.insert(s.run_tags), tags[chunk:chunk + 2000])
    big, session = str(uuid.uuid4()), str(uuid.uuid4())
    start = tpb.ClientMessage(run_id=big)
    start.run_start.protocol_version, start.run_start.project = tpb.PROTOCOL_VERSION_1, "project-0"
    start.run_start.run_name = "big"
    start.run_start.started_at.FromSeconds(int(now))
    with store.begin() as conn:
        apply_message(conn, start, "run_start")
        for seq, first in enumerate(range(1, steps + 1, 1000), start=1):
            apply_message(conn, step_batch(big, session, seq, first, min(1000, steps - first + 1)), "step_batch")
    store.close()
    return big


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; {args.runs:,} runs; {args.steps:,} step samples in one run; "
          f"median of {args.repeat} calls over real gRPC")
    for store_kind in args.stores.split(","):
        cleanup = None
        if store_kind == "sqlite":
            url = f"sqlite:///{tempfile.mkdtemp(prefix='atlas-qbench-')}/q.db"
        else:
            url, cleanup = fresh_pg_database()
        t0 = time.perf_counter()
        big = fill(url, args.runs, args.steps)
        fill_s = time.perf_counter() - t0
        proc, address = start_collector(url)
        try:
            stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(
                address, options=[("grpc.max_receive_message_length", 256 << 20)]))
            cases = [
                ("runs, first page (50)", lambda: stub.ListRuns(qpb.ListRunsRequest(), timeout=60)),
                ("runs --project (50)", lambda: stub.ListRuns(qpb.ListRunsRequest(project="project-7"), timeout=60)),
                ("runs --status failed (50)", lambda: stub.ListRuns(
                    qpb.ListRunsRequest(status=tpb.RUN_STATUS_FAILED), timeout=60)),
                ("runs --tag (50)", lambda: stub.ListRuns(qpb.ListRunsRequest(tag="tag-3"), timeout=60)),
                (f"all {args.runs:,} runs (limit {args.runs:,})", lambda: stub.ListRuns(
                    qpb.ListRunsRequest(limit=args.runs), timeout=60)),
                ("runs show NAME", lambda: stub.GetRun(qpb.RunRef(run="run-5000"), timeout=60)),
                (f"steps: all {args.steps:,} of one run", lambda: stub.GetSteps(
                    qpb.StepsRequest(run=big, limit=args.steps), timeout=120)),
                ("steps: a 1,000-step range", lambda: stub.GetSteps(
                    qpb.StepsRequest(run=big, from_step=50_000, to_step=50_999), timeout=60)),
            ]
            print(f"{store_kind} (filled in {fill_s:.1f} s)")
            for name, fn in cases:
                ms, out = timed(fn, args.repeat)
                size = len(getattr(out, "runs", None) or getattr(out, "samples", None) or [1])
                print(f"  {name:34s} {ms:9.1f} ms   ({size:,} rows)")
        finally:
            proc.terminate()
            proc.wait(30)
            if cleanup:
                cleanup()


if __name__ == "__main__":
    main()
