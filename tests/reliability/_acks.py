"""Shared by the durability tests and `benchmarks/durability.py`: a paced Observer run against a collector that
faults, and the count of what the store holds afterwards (sent, stored, lost, duplicated)."""
from __future__ import annotations

import collections
import os
import pathlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from atlas_callback import AtlasConfig, Observer
from _wait import wait_for


@dataclass
class Tally:
    sent: int = 0
    acked: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    status: str = ""
    errors: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {"sent": self.sent, "acked": self.acked, "stored": self.stored, "lost": self.lost,
                "duplicated": self.duplicated, "status": self.status}


class PacedTrainer(threading.Thread):
    """An Observer plain loop sending `steps` float losses at about `rate` steps/s, then ending the run."""

    def __init__(self, address: str, steps: int, rate: float = 4000.0, flush_timeout: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.address, self.steps, self.rate, self.flush_timeout = address, steps, rate, flush_timeout
        self.run_id = ""
        self.acked = 0
        self.flushed = False
        self.error: BaseException | None = None
        self.started_steps = threading.Event()
        self.progress = 0  # steps handed to the Observer so far (the tests wait on it, not on the clock)

    def advance(self, steps: int, timeout: float = 60.0) -> None:
        """Return once the trainer has taken `steps` more steps than now (it is paced, so about steps / rate s)."""
        mark = self.progress
        wait_for(lambda: self.progress >= min(self.steps, mark + steps) or not self.is_alive(), timeout,
                 f"the trainer's next {steps} steps")

    def run(self) -> None:
        try:
            config = AtlasConfig(track_carbon=False, track_gpu=False, track_system=False, step_flush_seconds=0.02,
                                 flush_timeout_s=self.flush_timeout)
            with Observer(project="durability", run_name="paced", collector=self.address, config=config) as obs:
                t0 = time.monotonic()
                for i in range(self.steps):
                    obs.step(1.0 / (i + 1), batch_size=4)
                    self.progress = i + 1
                    if i % 200 == 199:
                        self.started_steps.set()
                        ahead = (i + 1) / self.rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
                transport = obs._core.transport
                self.run_id = obs.run_id
            self.acked = transport._acked if transport is not None else 0
            self.flushed = transport is not None and transport._end_seq is not None \
                and transport._acked >= transport._end_seq
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def tally(store: Any, run_id: str, sent: int) -> Tally:
    """What the store holds of the run's steps (rank 0): every step 0..sent-1 once is the bar."""
    import sqlalchemy as sa

    from atlas_collector import _schema as s

    with store.connect() as conn:
        steps = [r["step"] for r in store.steps(conn, run_id, limit=10**9)]
        status = conn.execute(sa.select(s.runs.c.status).where(s.runs.c.id == run_id)).scalar()
    counts = collections.Counter(steps)
    expected = set(range(sent)) if min(counts, default=0) == 0 else set(range(1, sent + 1))
    return Tally(sent=sent, stored=len(counts), lost=len(expected - set(counts)),
                 duplicated=sum(c - 1 for c in counts.values()), status=status or "")


def hold_sqlite_lock(path: pathlib.Path, seconds: float) -> None:
    """Another process takes SQLite's write lock on `path` and holds it for `seconds` (returns when released)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         "c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(float(sys.argv[2]))\n"
         "c.execute('COMMIT')", str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "locked":
        holder.kill()
        raise RuntimeError(f"could not lock {path}")
    if holder.wait(seconds + 60) != 0:
        raise RuntimeError(f"the lock holder on {path} failed")


def _fill(f: object) -> None:
    try:
        while f.write(b"\0" * 16384):  # type: ignore[attr-defined]
            pass
    except OSError:
        pass


def fill_disk_with_room_now_and_then(mount: pathlib.Path, seconds: float = 6.0) -> None:
    """Eat every free byte of the file system at `mount`, then for `seconds` give a little room back now and then
    (as a WAL checkpoint frees some) and take it again; at the end free it all."""
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as f:
        _fill(f)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            f.truncate(max(0, f.tell() - 192 * 1024))
            f.seek(0, os.SEEK_END)
            time.sleep(0.03)
            _fill(f)
            time.sleep(0.05)
    filler.unlink()


def mount_small_tmpfs(mount: pathlib.Path, size: str = "12m") -> str | None:
    """Mount a tmpfs of `size` at `mount`; None when done, else why it could not be (not root, no permission)."""
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount exited {done.returncode}")


def unmount(mount: pathlib.Path) -> None:
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)
