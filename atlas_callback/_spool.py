"""The on-disk spool: every sequenced record of a run, kept until the collector acknowledges it.

Torch-free on purpose: `atlas sync` reads spools with `SpoolReader` without importing torch.

Layout, under ``ATLAS_HOME/spool/<run_id>/``:
    ``<rank>-<session>.log``  frames of ``<uint32 little-endian length><serialized ClientMessage>``; the
                              first frame is the run's RunStart (seq 0), then seq 1, 2, ... in order.
    ``<rank>-<session>.ack``  the highest acknowledged sequence, as ASCII, replaced atomically.
A truncated last frame (a crash mid-write) is ignored. Files are removed once the run's RunEnd is acked.
"""
from __future__ import annotations

import logging
import os
import pathlib
import struct
import time
from dataclasses import dataclass
from typing import Iterator

from atlas_proto.v1 import telemetry_pb2 as tpb

log = logging.getLogger(__name__)

_LEN = struct.Struct("<I")
MAX_FRAME = 64 * 1024 * 1024


def spool_root(home: str | os.PathLike[str]) -> pathlib.Path:
    return pathlib.Path(home).expanduser() / "spool"


class SpoolWriter:
    """Append-only writer for one (run, rank, session). Used only by the sender thread."""

    def __init__(self, root: pathlib.Path, run_id: str, rank: int, session: str, max_bytes: int) -> None:
        self.dir = root / run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        stem = f"{rank}-{session}"
        self.path = self.dir / f"{stem}.log"
        self.ack_path = self.dir / f"{stem}.ack"
        self.max_bytes = max_bytes
        self._file = open(self.path, "ab")
        self._reader = open(self.path, "rb")
        self.size = self._file.tell()
        self.full = False
        self._acked_written = -1
        self._last_ack_write = 0.0

    def append(self, msg: tpb.ClientMessage) -> int | None:
        """Write one frame; return its offset, or None when the spool is full."""
        data = msg.SerializeToString()
        if self.size + _LEN.size + len(data) > self.max_bytes:
            if not self.full:
                self.full = True
                log.warning("atlas: spool %s is full (%d MB); newer records are kept in memory only and may be "
                            "lost if the collector stays away", self.path, self.max_bytes // 2**20)
            return None
        offset = self.size
        self._file.write(_LEN.pack(len(data)) + data)
        self._file.flush()  # in the OS: survives a crash of the trainer process
        self.size += _LEN.size + len(data)
        return offset

    def read_at(self, offset: int) -> tpb.ClientMessage:
        self._reader.seek(offset)
        (length,) = _LEN.unpack(self._reader.read(_LEN.size))
        return tpb.ClientMessage.FromString(self._reader.read(length))

    def mark_acked(self, seq: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if seq == self._acked_written or (not force and now - self._last_ack_write < 1.0):
            return
        tmp = self.ack_path.with_suffix(".ack.tmp")
        tmp.write_text(str(seq))
        os.replace(tmp, self.ack_path)
        self._acked_written = seq
        self._last_ack_write = now

    def close(self, *, remove: bool) -> None:
        self._file.close()
        self._reader.close()
        if remove:
            for path in (self.path, self.ack_path):
                path.unlink(missing_ok=True)
            try:
                self.dir.rmdir()
            except OSError:
                pass  # other ranks' or sessions' files remain


@dataclass
class SpooledStream:
    """One (run, rank, session) found on disk."""

    run_id: str
    rank: int
    session: str
    path: pathlib.Path
    ack_path: pathlib.Path

    @property
    def acked(self) -> int:
        try:
            return int(self.ack_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def messages(self) -> Iterator[tpb.ClientMessage]:
        """RunStart, then every record not yet acknowledged, in order."""
        acked = self.acked
        for msg in read_frames(self.path):
            if msg.seq == 0 or msg.seq > acked:
                yield msg

    def remove(self) -> None:
        for path in (self.path, self.ack_path):
            path.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()
        except OSError:
            pass


def read_frames(path: pathlib.Path) -> Iterator[tpb.ClientMessage]:
    with open(path, "rb") as f:
        while True:
            head = f.read(_LEN.size)
            if len(head) < _LEN.size:
                return
            (length,) = _LEN.unpack(head)
            if length > MAX_FRAME:
                log.warning("atlas: %s has a corrupt frame at offset %d; ignoring the rest", path, f.tell() - 4)
                return
            data = f.read(length)
            if len(data) < length:
                return  # truncated by a crash mid-write
            yield tpb.ClientMessage.FromString(data)


class SpoolReader:
    """Finds spooled runs under a spool directory (default ``ATLAS_HOME/spool``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = pathlib.Path(root).expanduser()

    def streams(self) -> list[SpooledStream]:
        out: list[SpooledStream] = []
        if not self.root.is_dir():
            return out
        for run_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for log_path in sorted(run_dir.glob("*.log")):
                rank, _, session = log_path.stem.partition("-")
                if not rank.isdigit() or not session:
                    continue
                out.append(SpooledStream(run_dir.name, int(rank), session, log_path, log_path.with_suffix(".ack")))
        return out
