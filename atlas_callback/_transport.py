"""The sender: a bounded in-memory queue and one background thread that owns the gRPC stream.

Modelled on OpenTelemetry's BatchProcessor. The training step only calls `send()`, which appends to a
deque and sets an Event: it never blocks on the network and never raises. The worker coalesces
consecutive step samples and log records into one message, numbers messages per (run, rank, session),
keeps what the collector has not acknowledged for resend after a reconnect, and reconnects with
backoff. `force_flush(timeout)` waits for acks; `shutdown(timeout)` is bounded by one deadline and safe
to call twice. After `fork()` the child's copy is inert (DataLoader workers fork the trainer)."""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Iterator

import grpc

from atlas_proto.v1 import telemetry_pb2 as tpb
from atlas_proto.v1 import telemetry_pb2_grpc

log = logging.getLogger(__name__)

MAX_SAMPLES_PER_MESSAGE = 2000
MAX_UNACKED = 512                # messages in flight before the worker stops taking more from the queue
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

    def warning(self, key: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self._interval:
            self._suppressed[key] += 1
            return
        self._last[key] = now
        extra = self._suppressed.pop(key, 0)
        log.warning(msg + (f" ({extra} more like this suppressed)" if extra else ""), *args)


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
        max_queue: int = 10_000,
        heartbeat_s: float = 10.0,
        on_command: Callable[[tpb.Command], None] | None = None,
        connect: bool = True,
    ) -> None:
        self.target = target
        self.run_id = run_id
        self.rank = rank
        self.session = session
        self._run_start = run_start
        self._token = token
        self._tls_ca = tls_ca
        self._heartbeat_s = heartbeat_s
        self._on_command = on_command
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._max_queue = max_queue
        self._unacked: collections.OrderedDict[int, tpb.ClientMessage] = collections.OrderedDict()
        self._next_seq = 1
        self._acked = 0
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._closing = False
        self._stopped = threading.Event()
        self._dead = False                 # permanent refusal: stop trying, keep nothing more
        self.connected = threading.Event()
        self.ever_connected = False
        self.dropped = 0
        self._log = _RateLimitedLog()
        self._call: Any = None
        self._channel: grpc.Channel | None = None
        self._thread: threading.Thread | None = None
        _live.add(self)
        if connect:
            self._thread = threading.Thread(target=self._run, name=f"atlas-sender-{run_id[:8]}", daemon=True)
            self._thread.start()

    # ----------------------------------------------------------------------------- trainer side

    def send(self, kind: str, body: Any) -> None:
        """Queue one record (`kind` is a ClientMessage body field). Never blocks, never raises."""
        if self._dead or self._closing:
            return
        if len(self._queue) >= self._max_queue:
            self._queue.popleft()
            self.dropped += 1
            self._log.warning("queue", "atlas: send queue full (%d records); dropping the oldest", self._max_queue)
        self._queue.append((kind, body))
        self._wake.set()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._unacked)

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is acknowledged. False on timeout or without a collector."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._cond:
            while True:
                done = not self._queue and not self._unacked
                if done or self._dead:
                    return done
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Flush (bounded), close the stream, stop the thread. Safe to call twice."""
        deadline = time.monotonic() + timeout
        flushed = True
        if not self._closing and self._thread is not None and not self._dead:
            flushed = self.force_flush(max(0.0, deadline - time.monotonic()) if self.ever_connected
                                       else min(0.5, timeout))
        self._closing = True
        self._stopped.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._channel is not None:
            self._channel.close()
        _live.discard(self)
        return flushed

    def _forked(self) -> None:
        # The child has no sender thread and must not touch the parent's channel.
        self._dead = True
        self._closing = True
        self._thread = None
        self._channel = None
        self._call = None
        self._queue = collections.deque()
        self._cond = threading.Condition()

    # ------------------------------------------------------------------------------ worker side

    def _run(self) -> None:
        backoff = 0.2
        while not self._stopped.is_set():
            try:
                self._stream_once()
                backoff = 0.2
                if self._closing:
                    return
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                self.connected.clear()
                if self._stopped.is_set():
                    return
                if code in PERMANENT:
                    log.error("atlas: the collector at %s refused run %s: %s (%s); telemetry is no longer sent",
                              self.target, self.run_id, exc.details() if hasattr(exc, "details") else exc,
                              code.name if code else "?")
                    self._dead = True
                    with self._cond:
                        self._cond.notify_all()
                    return
                if not self.ever_connected:
                    self._log.warning("connect", "atlas: no collector reachable at %s (%s); training goes on, "
                                      "retrying in the background", self.target, code.name if code else exc)
                else:
                    self._log.warning("stream", "atlas: lost the collector at %s (%s); reconnecting",
                                      self.target, code.name if code else exc)
            except Exception:  # noqa: BLE001 - worker boundary: never let the sender die silently
                self.connected.clear()
                log.exception("atlas: sender error; reconnecting")
            self._stopped.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _open_channel(self) -> grpc.Channel:
        if self._channel is None:
            options = [("grpc.max_send_message_length", 16 * 1024 * 1024),
                       ("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 10_000),
                       ("grpc.enable_retries", 0)]
            if self._tls_ca:
                with open(self._tls_ca, "rb") as f:
                    creds = grpc.ssl_channel_credentials(root_certificates=f.read())
                self._channel = grpc.secure_channel(self.target, creds, options=options)
            else:
                self._channel = grpc.insecure_channel(self.target, options=options)
        return self._channel

    def _stream_once(self) -> None:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(self._open_channel())
        metadata = [("authorization", f"Bearer {self._token}")] if self._token else None
        call = stub.Stream(self._requests(), metadata=metadata, wait_for_ready=False)
        self._call = call
        for response in call:
            if not self.connected.is_set():
                self.connected.set()
                if self.ever_connected:
                    log.info("atlas: reconnected to the collector at %s", self.target)
                self.ever_connected = True
            which = response.WhichOneof("body")
            if which == "ack":
                self._on_ack(response.ack)
            elif which == "command" and self._on_command is not None:
                try:
                    self._on_command(response.command)
                except Exception:  # noqa: BLE001
                    log.exception("atlas: command handler failed")
        self.connected.clear()

    def _on_ack(self, ack: tpb.Ack) -> None:
        if ack.session != self.session or ack.rank != self.rank:
            return
        with self._cond:
            while self._unacked and next(iter(self._unacked)) <= ack.seq:
                self._unacked.popitem(last=False)
            self._acked = max(self._acked, ack.seq)
            self._cond.notify_all()

    def _envelope(self, seq: int = 0) -> tpb.ClientMessage:
        return tpb.ClientMessage(run_id=self.run_id, rank=self.rank, session=self.session, seq=seq)

    def _requests(self) -> Iterator[tpb.ClientMessage]:
        """What one stream sends: RunStart, the unacked backlog, then new records and heartbeats."""
        start = self._envelope()
        start.run_start.CopyFrom(self._run_start)
        yield start
        with self._cond:
            backlog = list(self._unacked.values())
        yield from backlog
        last_sent = time.monotonic()
        while True:
            if self._stopped.is_set():
                return
            msg = self._next_message()
            if msg is not None:
                last_sent = time.monotonic()
                yield msg
                continue
            if self._closing:
                return  # half-close: the collector acks what it has and ends the stream
            self._wake.wait(min(self._heartbeat_s, 1.0))
            self._wake.clear()
            if time.monotonic() - last_sent >= self._heartbeat_s:
                hb = self._envelope()
                hb.heartbeat.time.GetCurrentTime()
                last_sent = time.monotonic()
                yield hb

    def _next_message(self) -> tpb.ClientMessage | None:
        with self._cond:
            if not self._queue or len(self._unacked) >= MAX_UNACKED:
                return None
            kind, body = self._queue.popleft()
            msg = self._envelope(self._next_seq)
            if kind in ("step", "log"):
                items = [body]
                while self._queue and self._queue[0][0] == kind and len(items) < MAX_SAMPLES_PER_MESSAGE:
                    items.append(self._queue.popleft()[1])
                if kind == "step":
                    msg.step_batch.samples.extend(items)
                else:
                    msg.log_batch.records.extend(items)
            else:
                getattr(msg, kind).CopyFrom(body)
            self._unacked[self._next_seq] = msg
            self._next_seq += 1
            return msg
