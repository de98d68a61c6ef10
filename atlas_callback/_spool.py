"""The on-disk spool: every sequenced record of a run, kept until the collector acknowledges it.

Torch-free on purpose: `atlas sync` reads spools with `SpoolReader` without importing torch.

Layout, under ``ATLAS_HOME/spool/<run_id>/``:
    ``<rank>-<session>.log``  frames of ``<uint32 little-endian length><serialized ClientMessage>``; the
                              first frame is the run's RunStart (seq 0), then seq 1, 2, ... in order.
    ``<rank>-<session>.ack``  the highest acknowledged sequence, as ASCII, replaced atomically.
Files are removed once the run's RunEnd is acked. `scan` reads a file that may be damaged: it keeps every intact
frame, finds the next intact frame after a bad one (every frame of a stream starts with the same bytes: field 1,
the run id), and reports each damaged span and a partial last frame (a crash mid-write).
"""
from __future__ import annotations

import logging
import mmap
import os
import pathlib
import struct
import time
from dataclasses import dataclass, field
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
        """RunStart, then every record not yet acknowledged, in order (intact frames only: see `scan`)."""
        acked = self.acked
        for msg in self.scan().messages:
            if msg.seq == 0 or msg.seq > acked:
                yield msg

    def scan(self) -> "Scan":
        return scan(self.path, self.run_id, self.session)

    def remove(self) -> None:
        for path in (self.path, self.ack_path):
            path.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()
        except OSError:
            pass


def _marker(run_id: str) -> bytes:
    """The first bytes of every message of the run: field 1 (the run id, a 36-character UUID), as protobuf writes it."""
    return b"\x0a" + bytes([len(run_id)]) + run_id.encode()


@dataclass
class Damage:
    """A span of a spool file that holds no intact frame."""

    offset: int
    length: int
    reason: str


@dataclass
class Scan:
    messages: list[tpb.ClientMessage] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)
    partial_tail: Damage | None = None  # the last frame cut short (a crash while writing it)

    @property
    def intact(self) -> bool:
        return not self.damage and self.partial_tail is None


def _frame_at(data: "mmap.mmap | bytes", pos: int, run_id: str, session: str, last_seq: int) -> tuple[tpb.ClientMessage | None, str]:
    """The frame at `pos` if it is intact and belongs here (its run, its session, a sequence after `last_seq`)."""
    (length,) = _LEN.unpack_from(data, pos)
    if length > MAX_FRAME:
        return None, f"a frame length of {length} bytes (at most {MAX_FRAME})"
    end = pos + _LEN.size + length
    if end > len(data):
        return None, f"a frame of {length} bytes where {len(data) - pos - _LEN.size} remain"
    try:
        msg = tpb.ClientMessage.FromString(data[pos + _LEN.size:end])
    except Exception as exc:  # noqa: BLE001 - google.protobuf.message.DecodeError and kin
        return None, f"undecodable bytes ({exc})"
    if msg.run_id != run_id or (session and msg.session != session):
        return None, "a frame of another run or session"
    if msg.WhichOneof("body") is None:
        return None, "a frame without a body"
    if data.find(_marker(run_id), pos + _LEN.size + 1, end) != -1:  # a wrong length that swallowed the next frame
        return None, "a frame length that runs into the next frame"
    if msg.seq == 0 and not msg.HasField("run_start") or (msg.seq != 0 and msg.seq <= last_seq):
        return None, f"an out-of-order sequence {msg.seq} after {last_seq}"
    return msg, ""


def scan(path: pathlib.Path, run_id: str, session: str = "") -> Scan:
    """Every intact frame of a spool file, and where it is damaged. Never raises on bad bytes."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return Scan()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _scan(data, run_id, session)


def _scan(data: "mmap.mmap | bytes", run_id: str, session: str) -> Scan:
    out = Scan()
    marker = _marker(run_id)
    pos, last_seq = 0, -1
    while pos < len(data):
        if pos + _LEN.size > len(data):
            out.partial_tail = Damage(pos, len(data) - pos, "a partial frame header at the end")
            break
        msg, why = _frame_at(data, pos, run_id, session, last_seq)
        if msg is not None:
            out.messages.append(msg)
            last_seq = max(last_seq, msg.seq)
            pos += _LEN.size + _LEN.unpack_from(data, pos)[0]
            continue
        nxt = data.find(marker, pos + 1 + _LEN.size)
        while nxt != -1:  # the next intact frame: its length prefix stands just before the marker
            if _frame_at(data, nxt - _LEN.size, run_id, session, last_seq)[0] is not None:
                break
            nxt = data.find(marker, nxt + 1)
        if nxt == -1:
            if why.startswith("a frame of") and "remain" in why:
                out.partial_tail = Damage(pos, len(data) - pos, f"the last frame is cut short: {why}")
            else:
                out.damage.append(Damage(pos, len(data) - pos, why))
            break
        out.damage.append(Damage(pos, nxt - _LEN.size - pos, why))
        pos = nxt - _LEN.size
    return out


class SpoolReader:
    """Finds spooled runs under a spool directory (default ``ATLAS_HOME/spool``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = pathlib.Path(root).expanduser()

    def streams(self) -> list[SpooledStream]:
        out: list[SpooledStream] = []
        if not self.root.is_dir():
            return out
        for run_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != "damaged"):
            for log_path in sorted(run_dir.glob("*.log")):
                rank, _, session = log_path.stem.partition("-")
                if not rank.isdigit() or not session:
                    continue
                out.append(SpooledStream(run_dir.name, int(rank), session, log_path, log_path.with_suffix(".ack")))
        return out
