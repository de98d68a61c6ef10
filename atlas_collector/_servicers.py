"""The gRPC servicers (asyncio), thin: `TelemetryServicer` takes trainer streams and hands their messages to
`_ingest.Writer` (acks after commit, with per-stream and global bounds on what is in flight); `QueryServicer`
dispatches each QueryService RPC to a plain function of `_queries`, `_reports` or `_alerts_rpc` on a thread.

Also here: the registration helpers that make undecodable request bytes an INVALID_ARGUMENT answer (gRPC's own is
UNKNOWN, or a silently ended stream), and the bearer-token interceptor. `_server.Collector` wires them up.

How to add an RPC: declare it in `proto/atlas_proto/v1/query.proto` (then `python scripts/gen_proto.py`), write the
plain function `(store, request) -> response` in `_queries.py` (or `(services, request)` in `_reports.py`), add one
line to `QueryServicer` below (`_unary`/`_unary_sv`), and its typed method to `atlas_cli/_client.py` (the web UI's
in-process client maps method names to the same functions in `_web/_local.py`)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any, AsyncIterator, Callable

import grpc

from atlas_proto.v1 import query_pb2_grpc, telemetry_pb2 as tpb, telemetry_pb2_grpc

from . import _alerts_rpc, _commands, _queries, _reports
from ._alerts import Alerts
from ._driver import DiagnosticsDriver
from ._exceptions import CollectorError, InvalidMessage, grpc_status
from ._fanout import CommandHub, note_holder
from ._ingest import Outcome, Writer
from ._kinds import Kind
from ._store import Store
from ._validate import BodyInvalid, validate

log = logging.getLogger(__name__)

SERVICES = ("atlas.v1.TelemetryService", "atlas.v1.QueryService")


class _Undecodable:
    """Request bytes that are not a ClientMessage (garbage, a truncated message): `_read` refuses the stream with
    INVALID_ARGUMENT. (gRPC's own deserialisation error would end the request stream as if the client had closed
    it: the client would get OK and never learn its message was dropped.)"""

    __slots__ = ("size", "error")

    def __init__(self, size: int, error: Exception) -> None:
        self.size, self.error = size, error


def _decode_client_message(data: bytes) -> tpb.ClientMessage | _Undecodable:
    try:
        return tpb.ClientMessage.FromString(data)
    except Exception as exc:  # noqa: BLE001 - google.protobuf.message.DecodeError and kin
        return _Undecodable(len(data), exc)


def _tolerant(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode_or_mark(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # noqa: BLE001 - answered INVALID_ARGUMENT by the handler
            return _Undecodable(len(data), exc)

    return decode_or_mark


class _HandlerSink:
    """Takes the handlers a generated `add_*Servicer_to_server` registers, so they can be changed first."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, _handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, _service: str, handlers: dict[str, Any]) -> None:
        self.handlers = handlers


def add_query_service(servicer: "QueryServicer", server: Any) -> None:
    """`query_pb2_grpc.add_QueryServiceServicer_to_server` with deserialisers that never raise: undecodable bytes
    get INVALID_ARGUMENT from the handler (gRPC's own answer is UNKNOWN with a traceback in the log)."""
    sink = _HandlerSink()
    query_pb2_grpc.add_QueryServiceServicer_to_server(servicer, sink)
    handlers = {name: h._replace(request_deserializer=_tolerant(h.request_deserializer))
                for name, h in sink.handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICES[1], handlers),))
    server.add_registered_method_handlers(SERVICES[1], handlers)


async def _refuse_undecodable(request: Any, context: Any, name: str) -> None:
    if isinstance(request, _Undecodable):
        log.info("QueryService.%s: %d request bytes are not a valid request (%s)", name, request.size, request.error)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"a request of {request.size} bytes is not a valid atlas.v1.QueryService request "
                            f"(protobuf decoding failed: {request.error})")


def add_telemetry_service(servicer: "TelemetryServicer", server: Any) -> None:
    """`telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server`, with a deserialiser that never raises."""
    handlers = {"Stream": grpc.stream_stream_rpc_method_handler(
        servicer.Stream, request_deserializer=_decode_client_message,
        response_serializer=tpb.ServerMessage.SerializeToString)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICES[0], handlers),))
    server.add_registered_method_handlers(SERVICES[0], handlers)


class _StreamConn:
    """One trainer stream: its outbound queue (acks, commands, a closing error) and its pending count.

    Two bounds on what is received but not yet committed: `inflight`, over all streams, and `own`, this stream's
    share (a sixteenth of the total): one client that floods the collector holds at most its share of the writer's
    queue, so the other streams' messages wait behind at most that much of it; gRPC's flow control slows the
    flooding client down to what the collector commits."""

    def __init__(self, loop: asyncio.AbstractEventLoop, inflight: asyncio.Semaphore, own_limit: int,
                 on_joined: Callable[[str, "_StreamConn"], None] | None = None,
                 new_inflight: asyncio.Semaphore | None = None) -> None:
        self.loop = loop
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.inflight = inflight
        # Until the stream has a committed message its messages are "new" (`Writer.submit`) and count against
        # `new_inflight`, a quarter of the bound: a flood of new runs cannot take the room of runs under way.
        self.new_inflight = new_inflight if new_inflight is not None else inflight
        self.established = False
        self.pending_new = 0
        self.own = asyncio.Semaphore(own_limit)
        self.throttled = False
        self.pending = 0
        self.reading_done = False
        self.runs: set[str] = set()
        self.joined: set[str] = set()  # runs with a committed message on this stream (registered in the hub)
        self.on_joined = on_joined
        self.closed = False

    def push(self, msg: tpb.ServerMessage) -> None:
        """Queue a server message (a command) from any thread."""
        try:
            self.loop.call_soon_threadsafe(self._push, msg)
        except RuntimeError:  # loop closed at shutdown; the command stays pending in the store
            pass

    def _push(self, msg: tpb.ServerMessage) -> None:
        if not self.closed:
            self.out.put_nowait(msg)

    def writer_callback(self, outcome: Outcome) -> None:  # writer thread, for an established stream's message
        try:
            self.loop.call_soon_threadsafe(self._on_outcome, outcome, True)
        except RuntimeError:  # loop closed at shutdown; the client resends what was not acked
            pass

    def new_writer_callback(self, outcome: Outcome) -> None:  # writer thread, for a message sent before that
        try:
            self.loop.call_soon_threadsafe(self._on_outcome, outcome, False)
        except RuntimeError:
            pass

    async def admit(self) -> bool:
        """Wait for room for one more message; True when it goes as an established stream's message."""
        established = self.established and self.pending_new == 0  # all "new" ones first: the order is kept
        await self.own.acquire()
        await (self.inflight if established else self.new_inflight).acquire()
        self.pending += 1
        if not established:
            self.pending_new += 1
        return established

    def _on_outcome(self, outcome: Outcome, established: bool) -> None:  # event loop
        (self.inflight if established else self.new_inflight).release()
        self.own.release()
        self.pending -= 1
        if not established:
            self.pending_new -= 1
        if outcome.error is None:
            self.established = True
        if outcome.error is None and outcome.run_id not in self.joined and not self.closed:
            self.joined.add(outcome.run_id)
            if self.on_joined is not None:
                self.on_joined(outcome.run_id, self)
        if outcome.error is not None:
            self.close(outcome.error)
        elif outcome.ack_seq is not None and not self.closed:
            self.out.put_nowait(tpb.ServerMessage(ack=tpb.Ack(run_id=outcome.run_id, rank=outcome.rank,
                                                             seq=outcome.ack_seq, session=outcome.session,
                                                             refused=outcome.refused)))
        self.maybe_finish()

    def maybe_finish(self) -> None:
        if self.reading_done and self.pending == 0:
            self.close(None)

    def close(self, error: BaseException | None) -> None:
        if not self.closed:
            self.closed = True
            self.out.put_nowait(error)


class TelemetryServicer(telemetry_pb2_grpc.TelemetryServiceServicer):
    def __init__(self, writer: Writer, max_inflight: int, hub: CommandHub | None = None,
                 store: Store | None = None, driver: DiagnosticsDriver | None = None) -> None:
        self._writer = writer
        self._driver = driver
        self._max_inflight = max_inflight
        self._inflight: asyncio.Semaphore | None = None
        self._new_inflight: asyncio.Semaphore | None = None
        self._hub = hub
        self._store = store
        self.streams: set[_StreamConn] = set()
        # Joins and releases of runs run on one thread, in the order the streams saw them (a release never
        # overtakes the join it undoes).
        self.control = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="atlas-streams")

    def _joined(self, run_id: str, conn: _StreamConn) -> None:  # event loop
        """A run's first committed message on this stream: hold it in the hub, send what is pending for it."""
        if self._hub is None or not self._hub.register(run_id, conn):
            return
        log.info("run=%s stream joined (%d stream(s) open)", run_id, len(self.streams))
        if self._store is not None:
            self.control.submit(self._deliver_pending, run_id, conn)

    def _deliver_pending(self, run_id: str, conn: _StreamConn) -> None:  # executor
        try:
            note_holder(self._store, run_id, self._hub.replica_id, True)  # type: ignore[union-attr]
            with self._store.connect() as db:  # type: ignore[union-attr]
                rows = _commands.pending_commands(db, run_id)
        except Exception:  # noqa: BLE001 - the commands stay pending for the next connect
            log.exception("run=%s could not read pending commands", run_id)
            rows = []
        for row in rows:
            log.info("run=%s command=%s kind=%s delivered on reconnect", run_id, row["id"], row["kind"])
            conn.push(tpb.ServerMessage(command=_commands.to_message(row)))
        if self._driver is not None:
            self._driver.forget(run_id)  # rebuilt from the store: it may have streamed to another replica

    async def Stream(self, request_iterator: AsyncIterator[tpb.ClientMessage], context: Any) -> AsyncIterator[Any]:
        if self._inflight is None:
            self._inflight = asyncio.Semaphore(self._max_inflight)
            self._new_inflight = asyncio.Semaphore(max(16, self._max_inflight // 4))
        conn = _StreamConn(asyncio.get_running_loop(), self._inflight, max(16, self._max_inflight // 16),
                           self._joined, self._new_inflight)
        self.streams.add(conn)
        reader = asyncio.create_task(self._read(request_iterator, conn))
        try:
            while True:
                item = await conn.out.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    log.info("run=%s stream refused: %s", ",".join(sorted(conn.runs)) or "-", item)
                    await context.abort(grpc_status(item), str(item))
                yield item
        finally:
            reader.cancel()
            self.streams.discard(conn)
            if self._hub is not None:
                released = self._hub.unregister(conn)
                if released and self._store is not None and self._store.dialect == "postgresql":
                    for run_id in released:
                        self.control.submit(self._release, run_id)

    def _release(self, run_id: str) -> None:  # executor
        try:
            note_holder(self._store, run_id, self._hub.replica_id, False)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - a stale holder row only makes `delivered` optimistic for a while
            log.debug("run=%s could not release the stream holder row", run_id, exc_info=True)

    async def _read(self, request_iterator: AsyncIterator[tpb.ClientMessage], conn: _StreamConn) -> None:
        try:
            async for msg in request_iterator:
                if conn.closed:
                    return
                if isinstance(msg, _Undecodable):
                    conn.close(InvalidMessage(
                        f"a message of {msg.size} bytes is not an atlas.v1.ClientMessage (protobuf decoding failed: "
                        f"{msg.error}); the stream is closed, the messages before it were kept"))
                    return
                refusal = ""
                try:
                    kind = validate(msg)
                except BodyInvalid as exc:  # recorded and acked in the message's place: the run goes on
                    kind, refusal = Kind.of(msg), f"INVALID_ARGUMENT: {exc}"
                except CollectorError as exc:
                    conn.close(exc)
                    return
                conn.runs.add(msg.run_id)
                if conn.own.locked() and not conn.throttled:
                    conn.throttled = True
                    log.warning("run=%s stream throttled: it sends faster than the collector commits (%d of its "
                                "messages waiting); the client is slowed down, other streams go on",
                                msg.run_id, conn.pending)
                established = await conn.admit()
                self._writer.submit(msg, kind, conn.writer_callback if established else conn.new_writer_callback,
                                    refusal, source=conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the client went away; nothing to answer
            log.debug("stream ended: %r", exc)
        conn.reading_done = True
        conn.maybe_finish()

    async def drain(self, timeout: float) -> None:
        """Stop reading every stream, wait (bounded) for what they queued to be committed and acked."""
        for conn in list(self.streams):
            conn.reading_done = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(c.pending for c in self.streams) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.streams):
            conn.maybe_finish()
        await asyncio.sleep(0.05)  # let the last acks go out


def _unary(fn: Callable[[Store, Any], Any]) -> Callable[..., Any]:
    async def handler(self: "QueryServicer", request: Any, context: Any) -> Any:
        await _refuse_undecodable(request, context, fn.__name__)
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn, self._store, request)
        except CollectorError as exc:
            await context.abort(grpc_status(exc), str(exc))

    handler.__name__ = fn.__name__
    return handler


def _unary_sv(fn: Callable[[_reports.Services, Any], Any]) -> Callable[..., Any]:
    """Like `_unary`, for the functions that need the collector's services (driver, hub, config)."""
    async def handler(self: "QueryServicer", request: Any, context: Any) -> Any:
        await _refuse_undecodable(request, context, fn.__name__)
        if self._services is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{fn.__name__} needs a full collector")
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn, self._services, request)
        except CollectorError as exc:
            await context.abort(grpc_status(exc), str(exc))

    handler.__name__ = fn.__name__
    return handler


def _unary_alerts(fn: Callable[[Any, Store, Any], Any]) -> Callable[..., Any]:
    """Like `_unary`, for the alert queries (they need the collector's `Alerts`)."""
    async def handler(self: "QueryServicer", request: Any, context: Any) -> Any:
        await _refuse_undecodable(request, context, fn.__name__)
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn, self.alerts, self._store, request)
        except CollectorError as exc:
            await context.abort(grpc_status(exc), str(exc))

    handler.__name__ = fn.__name__
    return handler


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    def __init__(self, store: Store, services: _reports.Services | None = None, alerts: Alerts | None = None) -> None:
        self._store = store
        self._services = services
        self.alerts = alerts

    ListRuns = _unary(_queries.list_runs)
    GetRun = _unary(_queries.get_run)
    DeleteRun = _unary(_queries.delete_run)
    GetEpochs = _unary(_queries.get_epochs)
    GetSteps = _unary(_queries.get_steps)
    GetLogs = _unary(_queries.get_logs)
    GetArchitecture = _unary(_queries.get_architecture)
    ListIssues = _unary_sv(_reports.list_issues)
    GetHealth = _unary_sv(_reports.get_health)
    GetSustainability = _unary_sv(_reports.sustainability)
    GetProjectTrend = _unary_sv(_reports.project_trend)
    CompareRuns = _unary_sv(_reports.compare_runs)
    SendCommand = _unary_sv(_reports.command)
    Diagnose = _unary_sv(_reports.diagnose)
    ListAlerts = _unary_alerts(_alerts_rpc.list_alerts)
    TestAlert = _unary_alerts(_alerts_rpc.test_alert)
    ListMetrics = _unary(_queries.list_metrics)
    GetMetricSeries = _unary(_queries.get_metric_series)

    http_url = ""  # the web UI's URL, set once it serves (`atlas ui` asks for it)

    async def GetServerInfo(self, request: Any, context: Any) -> Any:
        from importlib.metadata import PackageNotFoundError, version

        from atlas_proto.v1 import query_pb2 as qpb

        await _refuse_undecodable(request, context, "GetServerInfo")
        try:
            ver = version("atlas-observatory")
        except PackageNotFoundError:
            ver = ""
        token = bool(self._services is not None and self._services.config.token)
        return qpb.ServerInfo(version=ver, http_url=self.http_url, token_required=token)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Bearer token for every Atlas service (health stays open for probes). No detail leaked."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}"

        async def deny(request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid token")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_stream_rpc_method_handler(deny)

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        if not details.method.startswith("/atlas.v1."):
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        import hmac

        if hmac.compare_digest(metadata.get("authorization", ""), self._expected):
            return await continuation(details)
        return self._deny_stream if details.method.endswith("/Stream") else self._deny_unary
