"""Step series for the UI: a per-run column cache over the store's step batches, and min/max downsampling.

A run's step samples live in `step_batches` as serialized StepBatch messages (`_steps`). The UI keeps each open
run's rank-0 samples as numpy columns (steps, loss, lr, grad norm, step time, samples/s) and brings them up to
date by reading only the batches stored since (by batch id). A cache entry is rebuilt when the stored count no
longer matches (retention trimmed the run). The cache holds at most `CACHE_SAMPLES` samples over all runs (least
recently used out).

Decoding: the stored blobs are read as protobuf wire format by `_wire`, vectorised over every sample at once (one
numpy pass per field position instead of Python work per sample): a million samples decode in well under a
second. A blob the fast reader does not expect (a field it does not know in a form it cannot skip, a truncated
message) is decoded by protobuf itself instead (`_decode_slow`), so the answer never depends on the reader.

`view` answers a step range with at most `points` buckets per series (numpy's `reduceat` over the columns): each
bucket's first step, mean (`y`), minimum and maximum, so a spike survives any zoom level; non-finite values
(NaN/Inf losses) are listed by step in `nonfinite`, never averaged in. Within `points` the samples come back as
they are (`downsampled: false`). The last few answers per run are kept until the run's columns change."""
from __future__ import annotations

import collections
import concurrent.futures
import threading
from typing import Any

import numpy as np
import sqlalchemy as sa

from atlas_proto.v1 import telemetry_pb2 as tpb

from .. import _schema as s

SERIES = ("loss", "lr", "grad_norm", "step_time", "samples_per_sec")
DEFAULT_POINTS = 2000
MAX_POINTS = 100_000
CACHE_SAMPLES = 3_000_000  # over all cached runs (a million samples: about 60 MB of numpy columns)
MAX_NONFINITE = 1000  # steps listed per series and answer
READ_BATCHES = 64  # stored batches fetched from the store at a time
DECODE_BYTES = 8 << 20  # stored batches decoded together, by size: a million samples (about 55 MB) are ~7 chunks,
# decoded by DECODE_THREADS while the next are read (numpy releases the GIL): a cold read of a million samples
# took 0.50 s as one 32 MB-wide decode and 0.17 s as 8 chunks on two threads (2 cores)
DECODE_THREADS = 2
MEMO_VIEWS = 8  # answers kept per run until its columns change

_T = s.step_batches
_C = _T.c
_OPTIONAL = (("loss", 3, "loss"), ("lr", 4, "lr"), ("grad_norm", 5, "grad_norm"), ("step_time", 7, "step_time_s"))


class Clean(list):  # type: ignore[type-arg]
    """A list already fit for JSON (finite floats, None, ints): `_api.dumps` passes it through unwalked."""


# ------------------------------------------------------------------------------------------ decoding

class _Unexpected(Exception):
    """The fast reader met something it does not handle: protobuf decodes the blobs instead."""


def _varint(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varints starting at each of `pos` (vectorised): (values as uint64, the position after each)."""
    first = buf[pos]
    if (first < 0x80).all():  # one byte each (lengths, epochs, batch sizes): the usual case
        return first.astype(np.uint64), pos + 1
    val = np.zeros(len(pos), np.uint64)
    cur = pos.copy()
    idx = np.arange(len(pos))
    for k in range(10):
        byte = buf[cur[idx]]
        val[idx] |= (byte & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        cur[idx] += 1
        idx = idx[(byte & 0x80) != 0]
        if not idx.size:
            return val, cur
    raise _Unexpected("varint longer than 10 bytes")


def _spans(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (start, end) of every StepSample in the StepBatch messages at buf[starts[i]:ends[i]], in order: every
    batch is walked at once, one sample position per numpy step."""
    if len(starts) <= 4:  # a few batches (a live run's newest): a plain walk beats thousands of numpy steps
        return _spans_few(buf[:-16].tobytes(), starts.tolist(), ends.tolist())
    got_start: list[np.ndarray] = []
    got_end: list[np.ndarray] = []
    got_batch: list[np.ndarray] = []
    pos = starts.astype(np.int64)
    lanes = np.flatnonzero(pos < ends)
    while lanes.size:
        p = pos[lanes]
        if (buf[p] != 0x0A).any():  # StepBatch has one field: 1, length-delimited
            raise _Unexpected("a StepBatch field other than samples")
        short = buf[p + 1]
        if (short < 0x80).all():  # a sample under 128 bytes: a one-byte length (the usual case)
            q, end = p + 2, p + 2 + short
        else:
            length, q = _varint(buf, p + 1)
            end = q + length.astype(np.int64)
        if (end > ends[lanes]).any():
            raise _Unexpected("a sample runs past its batch")
        got_start.append(q)
        got_end.append(end)
        got_batch.append(lanes)
        pos[lanes] = end
        lanes = lanes[end < ends[lanes]]
    if not got_start:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    batch = np.concatenate(got_batch)
    order = np.argsort(batch, kind="stable")  # batch order, then sample order within a batch (appended in order)
    return np.concatenate(got_start)[order], np.concatenate(got_end)[order]


def _spans_few(raw: bytes, starts: list[int], ends: list[int]) -> tuple[np.ndarray, np.ndarray]:
    lo: list[int] = []
    hi: list[int] = []
    for i, end in zip(starts, ends):
        while i < end:
            if raw[i] != 0x0A:
                raise _Unexpected("a StepBatch field other than samples")
            length, i, shift = 0, i + 1, 0
            while True:
                byte = raw[i]
                i += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
                if shift > 63:
                    raise _Unexpected("varint longer than 10 bytes")
            lo.append(i)
            i += length
            hi.append(i)
        if i > end:
            raise _Unexpected("a sample runs past its batch")
    return np.array(lo, np.int64), np.array(hi, np.int64)


def _wire(blobs: list[bytes]) -> dict[str, Any]:
    """Decode StepBatch blobs from the wire format, vectorised (see the module docstring)."""
    sizes = np.fromiter((len(b) for b in blobs), np.int64, len(blobs))
    ends = np.cumsum(sizes)
    starts = ends - sizes
    buf = np.frombuffer(b"".join(blobs) + bytes(16), np.uint8)  # padding: reads past the end stay in the buffer
    lo, hi = _spans(buf, starts, ends)
    n = len(lo)
    step = np.zeros(n, np.uint64)
    size = np.zeros(n, np.uint64)
    dbl = {f: np.zeros(n, np.float64) for _, f, _ in _OPTIONAL}
    has = {f: np.zeros(n, bool) for _, f, _ in _OPTIONAL}
    win = np.lib.stride_tricks.as_strided(buf, shape=(len(buf) - 8, 8), strides=(1, 1))  # 8 bytes from each
    pos = lo.copy()
    lanes: np.ndarray | None = None if n else np.zeros(0, np.int64)  # None: every sample (no gathering)
    if n and not (pos < hi).all():
        lanes = np.flatnonzero(pos < hi)
    while lanes is None or lanes.size:
        p = pos if lanes is None else pos[lanes]
        end = hi if lanes is None else hi[lanes]
        tag = buf[p]
        first = int(tag[0])
        if (tag == first).all():  # every sample has the same field here (a trainer sends them alike): no masks
            nxt = _field(buf, win, p, first, lanes, step, size, dbl, has)
        else:
            nxt = np.empty_like(p)
            for value in np.flatnonzero(np.bincount(tag, minlength=256)).tolist():
                m = tag == value
                nxt[m] = _field(buf, win, p[m], value, np.flatnonzero(m) if lanes is None else lanes[m],
                                step, size, dbl, has)
        if (nxt > end).any():
            raise _Unexpected("a field runs past its sample")
        if lanes is None:
            pos = nxt
            more = nxt < end
            if not more.all():
                lanes = np.flatnonzero(more)
        else:
            pos[lanes] = nxt
            lanes = lanes[nxt < end]
    if n and int(step.max()) >= 2**63:
        raise _Unexpected("a step over 2**63")
    return _columns(step.astype(np.int64), {name: (dbl[f], has[f]) for name, f, _ in _OPTIONAL},
                    size.astype(np.float64))


def _field(buf: np.ndarray, win: np.ndarray, p: np.ndarray, tag: int, lanes: np.ndarray | None, step: np.ndarray,
           size: np.ndarray, dbl: dict[int, np.ndarray], has: dict[int, np.ndarray]) -> np.ndarray:
    """Read field `tag` at positions `p` of the samples `lanes` (None: all); returns the positions after it."""
    if tag & 0x80 or tag < 8:
        raise _Unexpected("a field number over 15 or 0")
    wire, number = tag & 7, tag >> 3
    at = slice(None) if lanes is None else lanes
    if wire == 0:
        v, q = _varint(buf, p + 1)
        if number == 1:
            step[at] = v
        elif number == 8:
            size[at] = v
        return q
    if wire == 1:
        if number in dbl:
            dbl[number][at] = win[p + 1].view("<f8").ravel()
            has[number][at] = True
        return p + 9
    if wire == 2:
        length, q = _varint(buf, p + 1)
        return q + length.astype(np.int64)
    if wire == 5:
        return p + 5
    raise _Unexpected("a group or an unknown wire type")


def _decode_slow(blobs: list[bytes]) -> dict[str, Any]:
    """The same as `_wire`, by protobuf (one tuple per sample)."""
    rows: list[tuple[Any, ...]] = []
    samples: list[Any] = []
    for blob in blobs:
        xs = tpb.StepBatch.FromString(blob).samples
        samples.extend(xs)
    rows = [(x.loss, x.lr, x.grad_norm, x.step_time_s, x.batch_size) for x in samples]
    table = np.array(rows, dtype=np.float64).reshape(len(rows), 5)
    step = np.array([x.step for x in samples], dtype=np.int64)
    fields: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for j, (name, _, attr) in enumerate(_OPTIONAL):
        vals = np.ascontiguousarray(table[:, j])
        present = vals != 0.0  # an absent optional field reads 0.0: only those samples are asked
        zero = np.flatnonzero(~present)
        if zero.size:
            present[zero] = [samples[i].HasField(attr) for i in zero.tolist()]
        fields[name] = (vals, present)
    return _columns(step, fields, np.ascontiguousarray(table[:, 4]))


def _columns(step: np.ndarray, fields: dict[str, tuple[np.ndarray, np.ndarray]], size: np.ndarray) -> dict[str, Any]:
    """Decoded samples as the cache's columns: NaN where a series is absent or not finite; the non-finite values'
    steps listed per series."""
    cols: dict[str, np.ndarray] = {}
    present: dict[str, int] = {}
    bad: dict[str, np.ndarray] = {}
    for name, (vals, has) in fields.items():
        finite = np.isfinite(vals)
        bad[name] = step[has & ~finite]
        cols[name] = np.where(has & finite, vals, np.nan)
        present[name] = int(has.sum())
    time_ok = fields["step_time"][1] & np.isfinite(fields["step_time"][0]) & (fields["step_time"][0] > 0)
    ok = time_ok & (size > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sps = np.where(ok, size / np.where(ok, fields["step_time"][0], 1.0), np.nan)
    cols["samples_per_sec"] = sps
    present["samples_per_sec"] = int(ok.sum())
    bad["samples_per_sec"] = step[ok & ~np.isfinite(sps)]  # an overflow: listed, as any non-finite value
    cols["samples_per_sec"] = np.where(np.isfinite(sps), sps, np.nan)
    return {"step": step, "cols": cols, "present": present, "bad": bad}


def _joined(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Decoded chunks (in their order) as one: the columns are concatenated once, not once per chunk."""
    if len(parts) == 1:
        return parts[0]
    return {"step": np.concatenate([p["step"] for p in parts]),
            "cols": {n: np.concatenate([p["cols"][n] for p in parts]) for n in SERIES},
            "present": {n: sum(p["present"][n] for p in parts) for n in SERIES},
            "bad": {n: np.concatenate([p["bad"][n] for p in parts]) for n in SERIES}}


def decode(blobs: list[bytes]) -> dict[str, Any]:
    """StepBatch blobs (in order) as columns: the vectorised reader, or protobuf where it cannot."""
    if not blobs:
        return _columns(np.zeros(0, np.int64), {name: (np.zeros(0), np.zeros(0, bool)) for name, _, _ in _OPTIONAL},
                        np.zeros(0))
    try:
        return _wire(blobs)
    except (_Unexpected, IndexError):
        return _decode_slow(blobs)


# ------------------------------------------------------------------------------------------ the cache

_DECODER = concurrent.futures.ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="atlas-ui-decode")

class Columns:
    """One run's (and rank's) samples in step order, as numpy columns."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.steps = np.zeros(0, np.int64)
        self.cols = {name: np.zeros(0, np.float64) for name in SERIES}
        self.present = dict.fromkeys(SERIES, 0)  # how many samples have the series
        self.bad = {name: np.zeros(0, np.int64) for name in SERIES}  # steps of present non-finite values, sorted
        self.last_id = 0
        self.count = 0
        self.memo: collections.OrderedDict[tuple[Any, ...], dict[str, Any]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, batch: tpb.StepBatch) -> bool:
        """Append a batch's samples (sorted by step afterwards when needed)."""
        return self.extend([batch.SerializeToString()])

    def extend(self, blobs: list[bytes]) -> bool:
        """Append decoded StepBatch blobs; keeps the columns in step order. True when they were already in order."""
        return self.extend_decoded(decode(blobs))

    def extend_decoded(self, got: dict[str, Any]) -> bool:
        """Append what `decode` made of some blobs (see `extend`)."""
        if not len(got["step"]):
            return True
        step = got["step"]
        ordered = bool((np.diff(step) >= 0).all()) and (not len(self.steps) or step[0] >= self.steps[-1])
        self.steps = np.concatenate((self.steps, step))
        for name in SERIES:
            self.cols[name] = np.concatenate((self.cols[name], got["cols"][name]))
            self.present[name] += got["present"][name]
            self.bad[name] = np.concatenate((self.bad[name], got["bad"][name]))
        self.count += len(step)
        if not ordered:
            order = np.argsort(self.steps, kind="stable")
            self.steps = self.steps[order]
            self.cols = {n: c[order] for n, c in self.cols.items()}
        self.bad = {n: np.sort(b, kind="stable") if not ordered else b for n, b in self.bad.items()}
        self.memo.clear()
        return ordered


class SeriesCache:
    """Columns of recently viewed runs, kept up to date from the store. Thread-safe."""

    def __init__(self, store: Any, budget: int = CACHE_SAMPLES) -> None:
        self._store = store
        self._budget = budget
        self._lock = threading.Lock()
        self._runs: collections.OrderedDict[tuple[str, int], Columns] = collections.OrderedDict()

    def columns(self, run_id: str, rank: int = 0) -> Columns:
        """The run's columns, with every batch committed so far. Call under nothing; returns the entry (read it
        under `entry.lock`)."""
        key = (run_id, rank)
        with self._lock:
            entry = self._runs.get(key)
            if entry is None:
                entry = self._runs[key] = Columns()
            self._runs.move_to_end(key)
        with entry.lock:
            self._refresh(entry, run_id, rank)
        self._evict()
        return entry

    def forget(self, run_id: str) -> None:
        with self._lock:
            for key in [k for k in self._runs if k[0] == run_id]:
                del self._runs[key]

    def _refresh(self, entry: Columns, run_id: str, rank: int) -> None:
        with self._store.connect() as conn:
            stored, newest = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(_C.count), 0), sa.func.coalesce(sa.func.max(_C.id), 0))
                .where(_C.run_id == run_id, _C.rank == rank)).one()
            if newest == entry.last_id and stored == entry.count:
                return
            fresh = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(_C.count), 0))
                .where(_C.run_id == run_id, _C.rank == rank, _C.id > entry.last_id)).scalar_one()
            if entry.count + int(fresh) != int(stored):  # retention rewrote or deleted batches: start over
                entry.reset()
            rows = conn.execute(sa.select(_C.id, _C.samples).where(_C.run_id == run_id, _C.rank == rank,
                                                                  _C.id > entry.last_id)
                                .order_by(_C.id)).yield_per(READ_BATCHES)
            blobs: list[bytes] = []
            size = 0
            last = entry.last_id
            decoding: list[concurrent.futures.Future[dict[str, Any]]] = []  # in the stored order
            for row in rows:
                blobs.append(bytes(row.samples))
                size += len(blobs[-1])
                last = max(last, row.id)
                if size >= DECODE_BYTES:
                    decoding.append(_DECODER.submit(decode, blobs))
                    blobs, size = [], 0
            decoding.append(_DECODER.submit(decode, blobs))
            entry.extend_decoded(_joined([chunk.result() for chunk in decoding]))
            entry.last_id = last
            entry.memo.clear()

    def _evict(self) -> None:
        with self._lock:
            total = sum(len(e) for e in self._runs.values())
            while total > self._budget and len(self._runs) > 1:
                _, old = self._runs.popitem(last=False)
                total -= len(old)


# ------------------------------------------------------------------------------------------ views

def view(entry: Columns, series: tuple[str, ...], lo: int | None, hi: int | None, points: int) -> dict[str, Any]:
    """The samples with lo <= step <= hi, as at most `points` buckets per series (see the module docstring)."""
    key = (series, lo, hi, points)
    with entry.lock:
        got = entry.memo.get(key)
        if got is None:
            got = _view(entry, series, lo, hi, points)
            entry.memo[key] = got
            while len(entry.memo) > MEMO_VIEWS:
                entry.memo.popitem(last=False)
        else:
            entry.memo.move_to_end(key)
        return dict(got, series=dict(got["series"]))


def _view(entry: Columns, series: tuple[str, ...], lo: int | None, hi: int | None, points: int) -> dict[str, Any]:
    steps = entry.steps
    a = 0 if lo is None else int(np.searchsorted(steps, lo, "left"))
    b = len(steps) if hi is None else int(np.searchsorted(steps, hi, "right"))
    n = max(0, b - a)
    out: dict[str, Any] = {"total": n, "downsampled": n > points, "series": {},
                           "first_step": int(steps[0]) if len(steps) else None,
                           "last_step": int(steps[-1]) if len(steps) else None}
    if n <= points:
        out["step"] = Clean(steps[a:b].tolist())
        for name in series:
            if not entry.present[name]:
                out["series"][name] = None
                continue
            col = entry.cols[name][a:b]
            out["series"][name] = {"y": _nullable(col, np.isnan(col)),
                                   "nonfinite": _bad_in(entry.bad[name], lo, hi)}
        return out
    bounds = (np.arange(points, dtype=np.int64) * n) // points  # equal sample counts per bucket
    out["step"] = Clean(steps[a + bounds].tolist())
    for name in series:
        if not entry.present[name]:
            out["series"][name] = None
            continue
        col = entry.cols[name][a:b]  # absent and non-finite values are NaN: left out of every bucket
        finite = ~np.isnan(col)
        counts = np.add.reduceat(finite.astype(np.int64), bounds)
        sums = np.add.reduceat(np.where(finite, col, 0.0), bounds)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / counts
            mins = np.fmin.reduceat(col, bounds)
            maxs = np.fmax.reduceat(col, bounds)
        empty = counts == 0
        out["series"][name] = {"y": _nullable(means, empty | ~np.isfinite(means)), "min": _nullable(mins, empty),
                               "max": _nullable(maxs, empty), "nonfinite": _bad_in(entry.bad[name], lo, hi)}
    return out


def _nullable(values: np.ndarray, empty: np.ndarray) -> Clean:
    listed = values.tolist()
    if empty.any():
        for i in np.flatnonzero(empty).tolist():
            listed[i] = None
    return Clean(listed)


def _bad_in(bad: np.ndarray, lo: int | None, hi: int | None) -> Clean:
    i = 0 if lo is None else int(np.searchsorted(bad, lo, "left"))
    j = len(bad) if hi is None else int(np.searchsorted(bad, hi, "right"))
    return Clean(bad[i:min(j, i + MAX_NONFINITE)].tolist())


def after(entry: Columns, series: tuple[str, ...], step: int, points: int = DEFAULT_POINTS) -> dict[str, Any]:
    """The samples after `step` (for the live stream), downsampled like `view` when there are many."""
    return view(entry, series, step + 1, None, points)
