"""Durability under faults: records sent, acked, stored, lost and duplicated, per fault and store.

    .venv/bin/python benchmarks/durability.py [--steps 20000] [--json FILE]     # as root for the full-disk row

Each row is one real `Observer` run (a paced plain loop, float losses, `tests/reliability/_acks.py`) against an
`atlas-collector` subprocess on loopback while a fault happens: four graceful restarts (SIGTERM, restart at once
on the same port); four SIGKILL restarts; another process holding SQLite's write lock for 12 s (past the 10 s busy
timeout); the store's disk (a 12 MB tmpfs) full, then with a little room now and then for 6 s. "acked" counts the
steps the trainer saw acknowledged (all of them when the run's end was acked); "stored" the distinct steps in the
store; "lost" the steps sent and not stored; "duplicated" the extra copies. The bar is 0 lost and 0 duplicated.
PostgreSQL: a scratch database on the local server (ATLAS_BENCH_PG), dropped afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "reliability"))
sys.path.insert(0, str(ROOT / "tests"))

sys.path.insert(0, str(ROOT / "benchmarks"))

from _acks import (PacedTrainer, fill_disk_with_room_now_and_then, hold_sqlite_lock,  # noqa: E402
                   mount_small_tmpfs, tally, unmount)
from atlas_collector import Store  # noqa: E402
from ingest import fresh_pg_database  # noqa: E402  (ATLAS_BENCH_PG names the server)


def _collector(db: str, listen: str = "127.0.0.1:0") -> tuple[subprocess.Popen[str], str]:
    exe = pathlib.Path(sys.executable).parent / "atlas-collector"
    proc = subprocess.Popen([str(exe), "--listen", listen, "--db", db, "--log-level", "ERROR"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = proc.stdout.readline().strip()  # type: ignore[union-attr]
    if not first.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"collector did not start: {first!r}")
    return proc, first.removeprefix("listening on ")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _restarts(db: str, steps: int, sig: int) -> tuple[PacedTrainer, str]:
    listen = f"127.0.0.1:{_free_port()}"
    proc, address = _collector(db, listen)
    trainer = PacedTrainer(address, steps=steps, rate=3000.0)
    trainer.start()
    trainer.started_steps.wait(30)
    for _ in range(4):
        time.sleep(1.0)
        proc.send_signal(sig)
        proc.wait(30)
        proc, _ = _collector(db, listen)
    trainer.join(180)
    proc.terminate()
    proc.wait(30)
    return trainer, db


def _lock(db_path: pathlib.Path, steps: int) -> tuple[PacedTrainer, str]:
    db = f"sqlite:///{db_path}"
    proc, address = _collector(db)
    trainer = PacedTrainer(address, steps=steps, rate=600.0)
    trainer.start()
    trainer.started_steps.wait(30)
    time.sleep(1.0)
    hold_sqlite_lock(db_path, 12.0)
    trainer.join(180)
    proc.terminate()
    proc.wait(30)
    return trainer, db


def _disk(tmp: pathlib.Path, steps: int) -> tuple[PacedTrainer, str] | None:
    mount = tmp / "disk"
    if mount_small_tmpfs(mount) is not None:
        return None
    try:
        db = f"sqlite:///{mount / 'store.db'}"
        proc, address = _collector(db)
        trainer = PacedTrainer(address, steps=steps, rate=1500.0)
        trainer.start()
        trainer.started_steps.wait(30)
        time.sleep(1.0)
        fill_disk_with_room_now_and_then(mount, 6.0)
        trainer.join(180)
        proc.terminate()
        proc.wait(30)
        store = Store(db)
        try:
            trainer.counted = tally(store, trainer.run_id, trainer.steps)  # type: ignore[attr-defined]
        finally:
            store.close()
        return trainer, db
    finally:
        unmount(mount)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = pathlib.Path(tmp_name)
        os.environ["ATLAS_HOME"] = str(tmp / "home")
        for store in ("sqlite", "postgresql"):
            for fault, sig in (("4 graceful restarts (SIGTERM)", signal.SIGTERM), ("4 SIGKILL restarts", signal.SIGKILL)):
                drop = None
                if store == "sqlite":
                    db = f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}"
                else:
                    db, drop = fresh_pg_database()
                try:
                    trainer, _ = _restarts(db, args.steps, sig)
                    s = Store(db)
                    try:
                        counted = tally(s, trainer.run_id, trainer.steps)
                    finally:
                        s.close()
                finally:
                    if drop is not None:
                        drop()
                rows.append((fault, store, trainer, counted))
        trainer, db = _lock(tmp / "locked.db", args.steps // 2)
        s = Store(db)
        rows.append(("SQLite write lock held 12 s by another process", "sqlite", trainer,
                     tally(s, trainer.run_id, trainer.steps)))
        s.close()
        disk = _disk(tmp, args.steps)
        if disk is not None:
            rows.append(("disk full, then a little room now and then for 6 s (12 MB tmpfs)", "sqlite", disk[0],
                         disk[0].counted))  # type: ignore[attr-defined]
    print("| fault | store | sent | acked | stored | lost | duplicated | run status |")
    print("|---|---|---|---|---|---|---|---|")
    out = []
    for fault, store, trainer, c in rows:
        acked = trainer.steps if trainer.flushed else f"< {trainer.steps} (end not acked)"
        print(f"| {fault} | {store} | {c.sent:,} | {acked if isinstance(acked, str) else f'{acked:,}'} | "
              f"{c.stored:,} | {c.lost:,} | {c.duplicated:,} | {c.status} |")
        out.append({"fault": fault, "store": store, **c.row(), "end_acked": trainer.flushed})
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
