"""The sender: a bounded in-memory queue, an on-disk spool, and one background thread per run.

Modelled on OpenTelemetry's BatchProcessor. The training step only calls `send()`, which appends to a
deque and sets an Event: it never blocks on the network or the disk and never raises.

The worker thread moves queued records into the sequenced log: it coalesces consecutive step samples
and log records into one message, numbers messages per (run, rank, session), appends them to the spool
(so a collector outage or a trainer crash loses nothing) and keeps recent ones in memory. While
connected, a request generator streams the log from the first unacknowledged sequence; acks trim it.
On reconnect the stream resumes from the last ack (the collector deduplicates). `force_flush(timeout)`
waits for acks; `shutdown(timeout)` is bounded by one deadline and safe to call twice. After `fork()`
the child's copy is inert (DataLoader workers fork the trainer)."""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Iterator, Mapping

import grpc

from atlas_proto.v1 import telemetry_pb2 as tpb
from atlas_proto.v1 import telemetry_pb2_grpc

from ._spool import SpoolWriter

log = logging.getLogger(__name__)

MAX_SAMPLES_PER_MESSAGE = 2000
MAX_MEMORY_BYTES = 64 * 2**20   # unacked messages kept in memory; older ones are re-read from the spool
PERMANENT = frozenset({
    grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED,
})

_live: "weakref.WeakSet[Transport]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for transport in list(_live):
        transport._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _RateLimitedLog:
    """Log a repeated failure at most once per `interval` seconds, with the count of the rest."""

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: collections.Counter[str] = collections.Counter()

    def warning(self, key: str, msg: str, *args: Any, exc_info: bool = False) -> None:
        self._emit(logging.WARNING, key, msg, *args, exc_info=exc_info)

    def error(self, key: str, msg: str, *args: Any) -> None:
        self._emit(logging.ERROR, key, msg, *args)

    def _emit(self, level: int, key: str, msg: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self._interval:
            self._suppressed[key] += 1
            return
        self._last[key] = now
        extra = self._suppressed.pop(key, 0)
        log.log(level, msg + (f" ({extra} more like this suppressed)" if extra else ""), *args, exc_info=exc_info)


def metric_point(record: tuple[Any, Any, int, Mapping[Any, float]]) -> tpb.MetricPoint:
    """A MetricPoint from a `RunCore.log_metrics` record (step, epoch, time in ns, values), on the sender thread;
    names are text of 1 to 200 characters."""
    step, epoch, time_ns, values = record
    point = tpb.MetricPoint(step=max(0, int(step)), epoch=max(0, int(epoch)))
    point.time.FromNanoseconds(time_ns)
    out = point.values
    for key, value in values.items():
        name = str(key)[:200]
        if name:
            out[name] = value
    return point


class Transport:
    """Streams one run's records for one rank to the collector at `target`."""

    def __init__(
        self,
        target: str,
        run_start: tpb.RunStart,
        *,
        run_id: str,
        rank: int,
        session: str,
        token: str | None = None,
        tls_ca: str | None = None,
        spool: SpoolWriter | None = None,
        max_queue: int = 10_000,
        heartbeat_s: float = 10.0,
        on_command: Callable[[tpb.Command], None] | None = None,
        connect: bool = True,
    ) -> None:
        self.target = target
        self.run_id = run_id
        self.rank = rank
        self.session = session
        self._token = token
        self._tls_ca = tls_ca
        self._heartbeat_s = heartbeat_s
        self._on_command = on_command
        self._connect = connect
        self._spool = spool
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._max_queue = max_queue
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closing = False
        self.kept_in_spool = False  # shutdown left records in the spool (and said so)
        self._dead = False
        # The sequenced log, guarded by _cond.
        self._start_msg = tpb.ClientMessage(run_id=run_id, rank=rank, session=session)
        self._start_msg.run_start.CopyFrom(run_start)
        self._next_seq = 1
        self._stream_gen = 0  # the stream now open; a request generator of an older stream sends nothing more
        self._acked = 0
        self.refused = 0  # messages the collector refused (recorded with the run, acked: `Ack.refused`)
        self._mem: collections.OrderedDict[int, tpb.ClientMessage] = collections.OrderedDict()
        self._mem_bytes = 0
        self._offsets: dict[int, int] = {}
        self._end_seq: int | None = None
        # send -> ack latency of the messages sent on this stream (seconds), for `ack_latency()`
        self._sent_at: dict[int, float] = {}
        self._latencies: collections.deque[float] = collections.deque(maxlen=10_000)
        self.paused_heartbeat = False
        self.connected = threading.Event()
        self.ever_connected = False
        self.dropped = 0
        self._failed_connects = 0
        self._log = _RateLimitedLog()
        self._call: Any = None
        self._channel: grpc.Channel | None = None
        if spool is not None:
            spool.append(self._start_msg)
        _live.add(self)
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name=f"atlas-sender-{run_id[:8]}", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------------------- trainer side

    def send(self, kind: str, body: Any) -> None:
        """Queue one record (`kind`: "step", "log", "metric" or a ClientMessage body field). Never blocks/raises."""
        if self._closing:
            return
        if len(self._queue) >= self._max_queue:
            try:
                self._queue.popleft()
            except IndexError:
                pass
            self.dropped += 1
            self._log.warning("queue", "atlas: send queue full (%d records); dropping the oldest", self._max_queue)
        self._queue.append((kind, body))
        self._wake.set()

    def send_many(self, kind: str, bodies: list[Any]) -> None:
        """Queue several records of one kind with one wake-up of the sender. Never blocks or raises."""
        if self._closing or not bodies:
            return
        overflow = len(self._queue) + len(bodies) - self._max_queue
        if overflow > 0:
            for _ in range(min(overflow, len(self._queue))):
                try:
                    self._queue.popleft()
                except IndexError:
                    break
            self.dropped += overflow
            self._log.warning("queue", "atlas: send queue full (%d records); dropping the oldest", self._max_queue)
        self._queue.extend((kind, body) for body in bodies[-self._max_queue:])
        self._wake.set()

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is acknowledged. False on timeout or without a collector."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._cond:
            while True:
                if not self._queue and self._acked >= self._next_seq - 1:
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self._dead or not self._connect:
                    return False
                self._cond.wait(min(left, 0.05))

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Flush (bounded), close the stream, spool what is left, stop the thread. Safe to call twice."""
        if self._thread is None:
            return True
        deadline = time.monotonic() + timeout
        if self.ever_connected:
            flush_for = max(0.0, deadline - time.monotonic())
        else:  # a first connection may be under way; once one has failed there is nothing to wait for
            flush_for = 0.0 if self._failed_connects else min(1.0, timeout)
        flushed = self.force_flush(flush_for)
        with self._cond:
            self._closing = True
            self._take_all()
            self._cond.notify_all()
        self._stop.set()
        self._wake.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._thread = None
        if self._channel is not None:
            self._channel.close()
        if self._spool is not None:
            with self._cond:
                complete = self._end_seq is not None and self._acked >= self._end_seq
                self._spool.mark_acked(self._acked, force=True)
                self._spool.close(remove=complete)
                if not complete:
                    self.kept_in_spool = True
                    log.warning("atlas: run %s has %d unsent records kept in %s; upload them with `atlas sync`",
                                self.run_id, self._next_seq - 1 - self._acked, self._spool.path)
        _live.discard(self)
        return flushed

    def _forked(self) -> None:
        # The child has no sender thread and must not touch the parent's channel or files.
        self._closing = True
        self._thread = None
        self._channel = None
        self._call = None
        self._spool = None
        self._queue = collections.deque()
        self._cond = threading.Condition()

    # --------------------------------------------------------------------------- sequenced log

    def _take_all(self) -> None:
        """Move queued records into the sequenced log (spool + memory). Caller holds _cond."""
        moved = False
        while self._queue:
            kind, body = self._queue.popleft()
            msg = tpb.ClientMessage(run_id=self.run_id, rank=self.rank, session=self.session, seq=self._next_seq)
            if kind in ("step", "log", "metric"):
                items = [body]
                while self._queue and self._queue[0][0] == kind and len(items) < MAX_SAMPLES_PER_MESSAGE:
                    items.append(self._queue.popleft()[1])
                if kind == "metric":  # plain tuples from RunCore.log_metrics: the messages are built here
                    items = [metric_point(item) if isinstance(item, tuple) else item for item in items]
                (msg.step_batch.samples if kind == "step" else msg.log_batch.records if kind == "log"
                 else msg.metric_batch.points).extend(items)
            else:
                getattr(msg, kind).CopyFrom(body)
                if kind == "run_end":
                    self._end_seq = self._next_seq
            if self._spool is not None:
                offset = self._spool.append(msg)
                if offset is not None:
                    self._offsets[self._next_seq] = offset
            self._mem[self._next_seq] = msg
            self._mem_bytes += msg.ByteSize()
            self._next_seq += 1
            moved = True
        while self._mem_bytes > MAX_MEMORY_BYTES and self._mem:
            seq, old = self._mem.popitem(last=False)
            self._mem_bytes -= old.ByteSize()
            if seq not in self._offsets:
                self.dropped += 1
                self._log.warning("memory", "atlas: dropping unsent records of run %s (no spool room)", self.run_id)
        if moved:
            self._cond.notify_all()

    def _get(self, seq: int) -> tpb.ClientMessage | None:
        msg = self._mem.get(seq)
        if msg is None and seq in self._offsets and self._spool is not None:
            try:
                msg = self._spool.read_at(self._offsets[seq])
            except Exception:  # noqa: BLE001 - a damaged spool frame: sent as a declared loss, never a silent gap
                self._log.warning("spool-read", "atlas: cannot read record %d of run %s back from %s", seq,
                                  self.run_id, self._spool.path, exc_info=True)
                self._offsets.pop(seq, None)
        return msg

    def _have(self, seq: int) -> bool:
        return seq in self._mem or seq in self._offsets

    def _on_ack(self, ack: tpb.Ack) -> None:
        if ack.session != self.session or ack.rank != self.rank or ack.run_id != self.run_id:
            return
        with self._cond:
            if ack.seq <= self._acked:
                return
            now = time.monotonic()
            for seq in range(self._acked + 1, ack.seq + 1):
                sent = self._sent_at.pop(seq, None)
                if sent is not None:
                    self._latencies.append(now - sent)
                msg = self._mem.pop(seq, None)
                if msg is not None:
                    self._mem_bytes -= msg.ByteSize()
                self._offsets.pop(seq, None)
            self._acked = ack.seq
            if self._spool is not None:
                self._spool.mark_acked(ack.seq)
            self._cond.notify_all()
        if ack.refused:
            self.refused += 1
            self._log.error("refused", "atlas: the collector refused record %d of run %s: %s; the refusal is "
                            "recorded with the run and training goes on", ack.seq, self.run_id, ack.refused)

    def ack_latencies(self) -> list[float]:
        """Send -> durable-ack latency, in seconds, of the messages acked so far on this run's streams (the newest
        10,000). A message resent after a reconnect counts from its first send."""
        with self._cond:
            return list(self._latencies)

    # ------------------------------------------------------------------------------ worker side

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            if not self._connect or self._dead:
                self._idle(1.0)
                continue
            error = self._stream_once()
            self.connected.clear()
            if self._stop.is_set() or self._closing:
                return
            if error is None:
                backoff = 0.2
                continue
            code = error.code() if hasattr(error, "code") else None
            if code in PERMANENT:
                log.error("atlas: the collector at %s refused run %s: %s (%s); records are kept %s",
                          self.target, self.run_id, error.details() if hasattr(error, "details") else error,
                          code.name if code else "?", "in the spool" if self._spool is not None else "in memory only")
                self._dead = True
                with self._cond:
                    self._cond.notify_all()
                continue
            if not self.ever_connected:
                self._failed_connects += 1
                self._log.warning("connect", "atlas: no collector reachable at %s (%s); training goes on, records "
                                  "are %s and sent when it is back", self.target, code.name if code else error,
                                  "spooled" if self._spool is not None else "kept in memory (no spool)")
            else:
                self._log.warning("stream", "atlas: lost the collector at %s (%s); reconnecting",
                                  self.target, code.name if code else error)
            self._idle(backoff)
            backoff = min(backoff * 2, 5.0)

    def _idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._wake.wait(max(0.0, min(0.25, deadline - time.monotonic())))
            self._wake.clear()
            with self._cond:
                self._take_all()

    def _open_channel(self) -> grpc.Channel:
        if self._channel is None:
            options = [("grpc.max_send_message_length", 16 * 2**20), ("grpc.keepalive_time_ms", 30_000),
                       ("grpc.keepalive_timeout_ms", 10_000), ("grpc.enable_retries", 0)]
            if self._tls_ca:
                with open(self._tls_ca, "rb") as f:
                    creds = grpc.ssl_channel_credentials(root_certificates=f.read())
                self._channel = grpc.secure_channel(self.target, creds, options=options)
            else:
                self._channel = grpc.insecure_channel(self.target, options=options)
        return self._channel

    def _stream_once(self) -> grpc.RpcError | None:
        """One stream's life: a reader thread takes responses; this thread keeps filling the log."""
        with self._cond:
            self._stream_gen += 1
            generation = self._stream_gen
            self._cond.notify_all()  # an older stream's generator still waiting wakes up and ends
        try:
            stub = telemetry_pb2_grpc.TelemetryServiceStub(self._open_channel())
            metadata = [("authorization", f"Bearer {self._token}")] if self._token else None
            call = stub.Stream(self._requests(generation), metadata=metadata)
        except Exception:  # noqa: BLE001 - worker boundary
            self._log.warning("open", "atlas: cannot open a stream to %s", self.target, exc_info=True)
            return None
        self._call = call
        result: list[grpc.RpcError | None] = [None]
        reader = threading.Thread(target=self._read, args=(call, result), name="atlas-acks", daemon=True)
        reader.start()
        while reader.is_alive():
            self._wake.wait(0.25)
            self._wake.clear()
            with self._cond:
                self._take_all()
            if self._stop.is_set():
                call.cancel()
                break
        reader.join(1.0)
        self._call = None
        return result[0]

    def _read(self, call: Any, result: list[grpc.RpcError | None]) -> None:
        try:
            for response in call:
                if not self.connected.is_set():
                    if self.ever_connected:
                        log.warning("atlas: reconnected to the collector at %s; sending what was kept", self.target)
                    self.ever_connected = True
                    self.connected.set()
                which = response.WhichOneof("body")
                if which == "ack":
                    self._on_ack(response.ack)
                elif which == "command" and self._on_command is not None:
                    try:
                        self._on_command(response.command)
                    except Exception:  # noqa: BLE001
                        log.exception("atlas: command handler failed")
        except grpc.RpcError as exc:
            result[0] = exc
        except Exception:  # noqa: BLE001 - worker boundary
            log.exception("atlas: stream reader failed")

    def _requests(self, generation: int) -> Iterator[tpb.ClientMessage]:
        """What one stream sends: RunStart, then the log from the first unacked sequence, heartbeats.

        The position in the log is this generator's own: a generator of an older stream (gRPC may still pull from
        it after the collector went away) never moves the new stream past a sequence it has not sent. A sequence
        whose record is gone (no spool room) is sent as a `Dropped` message, so the collector records the loss
        and never waits for it."""
        yield self._start_msg
        with self._cond:
            sent_upto = self._acked
        last_sent = time.monotonic()
        while True:
            with self._cond:
                while True:
                    if self._stop.is_set() or self._stream_gen != generation:
                        return
                    if sent_upto < self._next_seq - 1:
                        sent_upto += 1
                        msg = self._get(sent_upto)
                        if len(self._sent_at) < 100_000:
                            self._sent_at.setdefault(sent_upto, time.monotonic())  # a resend keeps the first
                        if msg is None:
                            first = sent_upto
                            while sent_upto < self._next_seq - 1 and not self._have(sent_upto + 1):
                                sent_upto += 1
                            msg = tpb.ClientMessage(run_id=self.run_id, rank=self.rank, session=self.session,
                                                    seq=sent_upto)
                            msg.dropped.first_seq = first
                            msg.dropped.reason = ("gone from the trainer's memory and spool before delivery (spool "
                                                  "full or unreadable, memory bound reached)")
                        break
                    if self._closing and not self._queue:
                        return  # half-close: the collector acks what it has and ends the stream
                    left = self._heartbeat_s - (time.monotonic() - last_sent)
                    if left <= 0:
                        msg = tpb.ClientMessage(run_id=self.run_id, rank=self.rank, session=self.session)
                        msg.heartbeat.time.GetCurrentTime()
                        msg.heartbeat.paused = self.paused_heartbeat
                        break
                    self._cond.wait(min(left, 1.0))
            last_sent = time.monotonic()
            yield msg
