"""The on-disk spool: every sequenced record of a run, kept until the collector acknowledges it.

Torch-free on purpose: `atlas sync` reads spools with `SpoolReader` without importing torch.

Layout, under ``ATLAS_HOME/spool/<run_id>/``:
    ``<rank>-<session>.log``  frames of ``<uint32 little-endian length | CHECKED><serialized ClientMessage>
                              <uint32 little-endian CRC-32 of the message>``; the first frame is the run's
                              RunStart (seq 0), then seq 1, 2, ... in order. (Spools written before the checksum
                              have frames without the CHECKED bit and without the CRC; they are read as before.)
    ``<rank>-<session>.ack``  the highest acknowledged sequence, as ASCII, replaced atomically.
Files are removed once the run's RunEnd is acked.

`scan` reads a file that may be damaged and never raises on bad bytes. It keeps every intact frame; after a bad
one it finds the next intact frame (every frame of a stream starts with the same bytes, field 1: the run id; a
candidate counts only if it decodes whole as a message of this run, rank and session with a sequence after the
last one read). A frame whose only fault is its length prefix is read whole (`Scan.repaired`). Every other span
of bad bytes is a `Damage` naming the sequences it held. What a crash leaves at the end of a file whose RunEnd
was never written (one frame cut short, perhaps followed by zeros) is `Scan.partial_tail`, not damage.
The CRC makes damage inside a frame visible even where the bytes still decode (a flipped bit in a loss value, a
byte slipped into a float): such a frame is damage, never data; and a frame read whole past a wrong length prefix
must match its CRC too.
"""
from __future__ import annotations

import logging
import mmap
import os
import pathlib
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Iterator

from atlas_proto.v1 import telemetry_pb2 as tpb

log = logging.getLogger(__name__)

_LEN = struct.Struct("<I")
_NONZERO = re.compile(rb"[^\0]")
MAX_FRAME = 64 * 1024 * 1024
CHECKED = 0x80000000  # the length's high bit: a CRC-32 of the message follows it


def frame(data: bytes) -> bytes:
    """One spool frame for a serialized message: length (with the CHECKED bit), the message, its CRC-32."""
    return _LEN.pack(len(data) | CHECKED) + data + _LEN.pack(zlib.crc32(data))


def _prefix(data: "mmap.mmap | bytes", pos: int) -> tuple[int, bool, int]:
    """The frame at `pos`: (message length, whether it carries a CRC, the frame's whole size)."""
    (raw,) = _LEN.unpack_from(data, pos)
    checked = bool(raw & CHECKED)
    length = raw & ~CHECKED
    return length, checked, _LEN.size + length + (_LEN.size if checked else 0)


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
        data = frame(msg.SerializeToString())
        if self.size + len(data) > self.max_bytes:
            if not self.full:
                self.full = True
                log.warning("atlas: spool %s is full (%d MB); newer records are kept in memory only and may be "
                            "lost if the collector stays away", self.path, self.max_bytes // 2**20)
            return None
        offset = self.size
        self._file.write(data)
        self._file.flush()  # in the OS: survives a crash of the trainer process
        self.size += len(data)
        return offset

    def read_at(self, offset: int) -> tpb.ClientMessage:
        self._reader.seek(offset)
        (raw,) = _LEN.unpack(self._reader.read(_LEN.size))
        return tpb.ClientMessage.FromString(self._reader.read(raw & ~CHECKED))

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
        return scan(self.path, self.run_id, self.session, self.rank)

    def remove(self) -> None:
        for path in (self.path, self.ack_path):
            path.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()
        except OSError:
            pass


def _marker(run_id: str) -> bytes:
    """The first bytes of every message of the run: field 1 (the run id), as protobuf writes it."""
    return tpb.ClientMessage(run_id=run_id).SerializeToString()


@dataclass
class Damage:
    """A span of a spool file that holds no intact frame, and the sequences it held.

    `first_lost..last_lost` (inclusive; empty when `last_lost < first_lost`) are the sequences missing between the
    frames read on either side. `to_end`: the span runs to the end of a file whose RunEnd was not read, so how many
    records it held is unknown (those after `first_lost - 1`)."""

    offset: int
    length: int
    reason: str
    first_lost: int = 0
    last_lost: int = -1
    to_end: bool = False

    @property
    def lost(self) -> int:
        """How many sequences the span is known to have held (0: none, or unknown when `to_end`)."""
        return max(0, self.last_lost - self.first_lost + 1)


@dataclass
class Scan:
    messages: list[tpb.ClientMessage] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # the byte offset of each message's frame
    damage: list[Damage] = field(default_factory=list)
    repaired: list[Damage] = field(default_factory=list)  # a wrong length prefix; the frame was read whole
    partial_tail: Damage | None = None  # a crash while appending: the last frame cut short (RunEnd never written)

    @property
    def intact(self) -> bool:
        return not self.damage and not self.repaired and self.partial_tail is None

    @property
    def ended(self) -> bool:
        return any(m.HasField("run_end") for m in self.messages)

    @property
    def started(self) -> bool:
        return bool(self.messages) and self.messages[0].HasField("run_start")

    @property
    def records_lost(self) -> bool:
        """A record the trainer wrote is not among `messages` (RunStart aside: the collector may know the run)."""
        return any(d.to_end or d.last_lost >= max(1, d.first_lost) for d in self.damage)

    def _add(self, msg: tpb.ClientMessage, pos: int) -> None:
        self.messages.append(msg)
        self.offsets.append(pos)


def _belongs(msg: tpb.ClientMessage, run_id: str, session: str, rank: int | None, last_seq: int) -> str:
    """Why `msg` cannot be the next frame of this stream ("" when it can)."""
    if msg.run_id != run_id or (session and msg.session != session) or (rank is not None and msg.rank != rank):
        return "a frame of another run, rank or session"
    if msg.WhichOneof("body") is None:
        return "a frame without a body"
    if (msg.seq == 0) != msg.HasField("run_start"):
        return f"a {msg.WhichOneof('body')} at sequence {msg.seq} (the RunStart and only it is sequence 0)"
    if msg.seq <= last_seq:
        return f"an out-of-order sequence {msg.seq} after {last_seq}"
    return ""


def _frame_at(data: "mmap.mmap | bytes", pos: int, run_id: str, session: str, rank: int | None,
              last_seq: int) -> tuple[tpb.ClientMessage | None, str]:
    """The frame at `pos` if it is intact and belongs here (its run, its session, a sequence after `last_seq`)."""
    if pos + _LEN.size > len(data):
        return None, f"a partial frame header ({len(data) - pos} of {_LEN.size} bytes)"
    length, checked, size = _prefix(data, pos)
    if length > MAX_FRAME:
        return None, f"a frame length of {length} bytes (at most {MAX_FRAME})"
    end = pos + size
    if end > len(data):
        return None, f"a frame of {length} bytes where {len(data) - pos - _LEN.size} remain"
    marker = _marker(run_id)
    # A length that runs into the next frame (even by one byte) swallows that frame's run id; the next frame's own
    # run id, just after its 4-byte length prefix at `end`, is past the window.
    if data.find(marker, pos + _LEN.size + 1, end + _LEN.size - 1 + len(marker)) != -1:
        return None, f"a frame length ({length}) that runs into the next frame"
    body = data[pos + _LEN.size:pos + _LEN.size + length]
    if checked and zlib.crc32(body) != _LEN.unpack_from(data, end - _LEN.size)[0]:
        return None, "a frame whose bytes do not match its CRC-32"
    try:
        msg = tpb.ClientMessage.FromString(body)
    except Exception as exc:  # noqa: BLE001 - google.protobuf.message.DecodeError and kin
        return None, f"undecodable bytes ({exc})"
    why = _belongs(msg, run_id, session, rank, last_seq)
    return (None, why) if why else (msg, "")


def _whole_record(data: "mmap.mmap | bytes", pos: int, stop: int, run_id: str, session: str, rank: int | None,
                  last_seq: int, checked: bool) -> tpb.ClientMessage | None:
    """The bytes between a bad length prefix at `pos` and the next intact frame (or the end), when they are exactly
    the next record of the stream: its only fault was the length prefix. In a file of checked frames the bytes
    must end in the CRC-32 of the rest."""
    body, marker = data[pos + _LEN.size:stop], _marker(run_id)
    if checked:
        if len(body) < _LEN.size or zlib.crc32(body[:-_LEN.size]) != _LEN.unpack_from(body, len(body) - _LEN.size)[0]:
            return None
        body = body[:-_LEN.size]
    if len(body) > MAX_FRAME or bytes(body[:len(marker)]) != marker:
        return None
    try:
        msg = tpb.ClientMessage.FromString(body)
    except Exception:  # noqa: BLE001 - not a record
        return None
    if _belongs(msg, run_id, session, rank, last_seq) or msg.seq != last_seq + 1 or msg.ByteSize() != len(body):
        return None
    return msg


def _cut_short(data: "mmap.mmap | bytes", pos: int, run_id: str) -> bool:
    """The bytes from `pos` on are what a crash while appending leaves: the start of one frame of this run (a
    length prefix, then the first bytes of the message), perhaps followed by zeros (a lost page)."""
    if pos + _LEN.size > len(data):
        return True
    length, _, size = _prefix(data, pos)
    end = pos + size
    if length > MAX_FRAME or _NONZERO.search(data, end - 1) is not None:  # the whole frame is there: not cut
        return False
    marker = _marker(run_id)
    return marker.startswith(bytes(data[pos + _LEN.size:min(end, pos + _LEN.size + len(marker))]).rstrip(b"\0"))


def scan(path: pathlib.Path, run_id: str, session: str = "", rank: int | None = None) -> Scan:
    """Every intact frame of a spool file, and where it is damaged. Never raises on bad bytes (OSError may)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return Scan()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _scan(data, run_id, session, rank)


def _scan(data: "mmap.mmap | bytes", run_id: str, session: str, rank: int | None = None) -> Scan:
    out = Scan()
    marker = _marker(run_id)
    pos, last_seq = 0, -1
    checked = False  # the file's frames carry CRCs (known from its first intact frame)
    while pos < len(data):
        msg, why = _frame_at(data, pos, run_id, session, rank, last_seq)
        if msg is not None:
            checked = checked or _prefix(data, pos)[1]
            if msg.seq > last_seq + 1:  # frames gone without a trace (a span cut out of the file)
                out.damage.append(Damage(pos, 0, f"sequences {last_seq + 1}..{msg.seq - 1} are missing (no bytes "
                                                 "hold them)", last_seq + 1, msg.seq - 1))
            out._add(msg, pos)
            last_seq = msg.seq
            pos += _prefix(data, pos)[2]
            continue
        nxt = data.find(marker, pos + 1 + _LEN.size)
        while nxt != -1:  # the next intact frame: its length prefix stands just before the marker
            if _frame_at(data, nxt - _LEN.size, run_id, session, rank, last_seq)[0] is not None:
                break
            nxt = data.find(marker, nxt + 1)
        stop = nxt - _LEN.size if nxt != -1 else len(data)
        flagged = pos + _LEN.size <= len(data) and _prefix(data, pos)[1]
        whole = _whole_record(data, pos, stop, run_id, session, rank, last_seq, checked or flagged)
        if whole is not None:
            out.repaired.append(Damage(pos, _LEN.size, f"{why}: the length prefix is wrong; record {whole.seq} "
                                                       f"was read whole ({stop - pos - _LEN.size} bytes)"))
            out._add(whole, pos)
            last_seq, pos = whole.seq, stop
            continue
        if nxt != -1:
            after = _frame_at(data, stop, run_id, session, rank, last_seq)[0]
            assert after is not None  # found just above
            out.damage.append(Damage(pos, stop - pos, why, last_seq + 1, after.seq - 1))
            out._add(after, stop)
            checked = checked or _prefix(data, stop)[1]
            last_seq = after.seq
            pos = stop + _prefix(data, stop)[2]
            continue
        if out.ended:
            out.damage.append(Damage(pos, len(data) - pos, f"bytes after the run's end: {why}", last_seq + 1,
                                     last_seq))
        elif _cut_short(data, pos, run_id):
            out.partial_tail = Damage(pos, len(data) - pos, f"the last frame is cut short: {why}", last_seq + 1,
                                      last_seq)
        else:
            out.damage.append(Damage(pos, len(data) - pos, why, last_seq + 1, last_seq, to_end=True))
        break
    return out


class SpoolReader:
    """Finds spooled runs under a spool directory (default ``ATLAS_HOME/spool``); a ``damaged`` folder is skipped."""

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
