"""The collector's wiring: `Collector` builds the store, the diagnostics driver and its `Policy`, the writer, the
OTel exporter, the servicers (`_servicers.py`), the timer (`_timer.py`) and the web UI, starts them in order and
stops them under one deadline.

The data flow it wires: a stream's message -> `_validate.validate` (its `Kind`) -> `_ingest.Writer` (one
transaction per batch, acks after commit) -> `on_commit`: the diagnostics driver (`_driver`, which hands new
critical issues to `_policy.Policy`), the OTel exporter (`_otel`), the alerts and the UI's event hub.

`run_server(config)` runs a collector in a background thread and yields it (tests, `atlas demo`)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any, Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from . import _reports
from ._alerts import Alerts
from ._config import CollectorConfig
from ._driver import DiagnosticsDriver
from ._fanout import CommandHub, PgListener
from ._ingest import Writer
from ._otel import OtelExporter, chain
from ._policy import Policy
from ._servicers import (
    SERVICES,
    QueryServicer,
    TelemetryServicer,
    TokenInterceptor,
    add_query_service,
    add_telemetry_service,
)
from ._store import Store
from ._timer import Timer
from ._web import EventHub

log = logging.getLogger(__name__)


class Collector:
    """The daemon: store, writer, gRPC server. `start()` binds and returns the port; `stop()` drains."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.store = Store(config.db_url)
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._writer: Writer | None = None
        self._telemetry: TelemetryServicer | None = None
        self._health = HealthServicer()
        self.hub = CommandHub()
        self.driver: DiagnosticsDriver | None = None
        self.alerts = Alerts(config.alert_settings, self.store)
        self._listener: PgListener | None = None
        self.otel: OtelExporter | None = None
        self.timer: Timer | None = None
        self._timer_task: asyncio.Task[None] | None = None
        self.events = EventHub()  # live updates for the web UI: told what is committed
        self.services: _reports.Services | None = None
        self.web: Any = None  # the web UI's server (`_web.WebServer`), None when --http off

    @property
    def http_url(self) -> str | None:
        return self.web.url if self.web is not None else None

    @property
    def address(self) -> str:
        host = self.config.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.create_schema)
        policy = Policy(self.store, self.hub, self.alerts, live_after=self.config.stale_after_s)
        self.driver = DiagnosticsDriver(self.store, thresholds=self.config.thresholds,
                                        disabled_checks=self.config.disabled_checks, policy=policy,
                                        alerts=self.alerts)
        self.otel = OtelExporter.from_config(self.config, self.store, driver=self.driver)
        self._writer = Writer(self.store, on_commit=chain(self.driver.notify, self.otel.notify if self.otel else None,
                                                          self.alerts.after_commit, self.events.notify),
                              alerts=self.alerts)
        self.events.bind(loop)
        self.driver.on_persist = lambda run_id: self.events.changed(run_id, "issues")
        self._telemetry = TelemetryServicer(self._writer, self.config.max_inflight, self.hub, self.store,
                                            self.driver)
        if self.store.dialect == "postgresql":
            self._listener = PgListener(self.store, self.hub)
            await loop.run_in_executor(None, self._listener.wait_ready, 10.0)
        services = self.services = _reports.Services(store=self.store, hub=self.hub, driver=self.driver,
                                                     config=self.config)
        limit = self.config.max_message_mb * 1024 * 1024
        interceptors = [TokenInterceptor(self.config.token)] if self.config.token else []
        self._server = grpc.aio.server(
            interceptors=interceptors,
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", 64 * 1024 * 1024),
                     ("grpc.so_reuseport", 0)],
        )
        add_telemetry_service(self._telemetry, self._server)
        self._query = QueryServicer(self.store, services, self.alerts)
        add_query_service(self._query, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if self.config.tls_cert:
            with open(self.config.tls_cert, "rb") as f_cert, open(self.config.tls_key, "rb") as f_key:
                creds = grpc.ssl_server_credentials([(f_key.read(), f_cert.read())])
            self.port = self._server.add_secure_port(self.config.listen, creds)
        else:
            self.port = self._server.add_insecure_port(self.config.listen)
        await self._server.start()
        for service in ("", *SERVICES):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.timer = Timer(self.config, self.store, self.driver, self.alerts, self.events)
        self._timer_task = asyncio.create_task(self.timer.run_forever())
        if self.config.http_listen is not None:
            from ._web import WebServer

            web = WebServer(self, self.config.http_listen)
            try:
                await web.start()
            except BaseException:
                await self.stop(1.0)
                raise
            self.web = web
            self._query.http_url = web.url
        self.alerts.ui_url = self.alerts.ui_url or _alerts_ui_url(self)
        self.alerts.start()  # its own thread: sending never blocks ingest or acks
        log.info("collector listening on %s store=%s tls=%s token=%s", self.address, self.store.url,
                 "on" if self.config.tls_cert else "off", "set" if self.config.token else "none")
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, stop reading, commit and ack what is in flight, close the store: one deadline."""
        grace = self.config.shutdown_grace_s if grace is None else grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self._health.enter_graceful_shutdown()
        if self.web is not None:  # first: its event streams end, and no page sends commands any more
            await self.web.stop(max(0.1, (deadline - loop.time()) * 0.2))
            self.web = None
        if self._timer_task is not None:
            self._timer_task.cancel()
        if self._telemetry is not None:
            await self._telemetry.drain(max(0.1, (deadline - loop.time()) * 0.6))
        if self._server is not None:
            await self._server.stop(max(0.1, (deadline - loop.time()) * 0.5))
        if self._writer is not None:
            await loop.run_in_executor(None, self._writer.shutdown, max(0.1, deadline - loop.time()))
        if self._telemetry is not None:
            self._telemetry.control.shutdown(wait=False, cancel_futures=True)
        if self.otel is not None:  # before the driver: its last spans wait for the last diagnoses
            await loop.run_in_executor(None, self.otel.shutdown, max(0.1, (deadline - loop.time()) * 0.5))
        if self.driver is not None:
            await loop.run_in_executor(None, self.driver.shutdown, max(0.1, deadline - loop.time()))
        if self._listener is not None:
            await loop.run_in_executor(None, self._listener.shutdown, max(0.1, deadline - loop.time()))
        await loop.run_in_executor(None, self.alerts.shutdown, max(0.1, min(2.0, deadline - loop.time())))
        self.store.close()
        log.info("collector stopped")


def _alerts_ui_url(collector: "Collector") -> str:
    """The base of run links in notifications: the web UI's address (`--http`) when it is served."""
    url = str(getattr(collector, "http_url", None) or "").rstrip("/")
    if not url:
        return ""
    scheme, _, rest = url.partition("://")
    host, _, port = rest.partition("/")[0].rpartition(":")
    if host in ("0.0.0.0", "::", "[::]"):  # served on every interface: name this machine
        import socket

        return f"{scheme}://{socket.gethostname()}:{port}"
    return url


class RunningCollector:
    """A `Collector` on its own event-loop thread (tests, `atlas demo`)."""

    def __init__(self, config: CollectorConfig) -> None:
        self.collector = Collector(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="atlas-collector", daemon=True)

    @property
    def address(self) -> str:
        return self.collector.address

    @property
    def port(self) -> int:
        return self.collector.port

    @property
    def http_url(self) -> str | None:
        """The web UI's URL (None with http off)."""
        return self.collector.http_url

    @property
    def store(self) -> Store:
        return self.collector.store

    def start(self) -> "RunningCollector":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.collector.start(), self._loop).result(30)
        return self

    def stop(self, grace: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.collector.stop(grace), self._loop).result(grace + 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


@contextlib.contextmanager
def run_server(config: CollectorConfig | None = None, **overrides: Any) -> Iterator[RunningCollector]:
    """Start a collector (default: 127.0.0.1:0, i.e. a free port) and stop it on exit."""
    if config is None:
        overrides.setdefault("listen", "127.0.0.1:0")
        config = CollectorConfig(**overrides)
    running = RunningCollector(config).start()
    try:
        yield running
    finally:
        running.stop()
