"""The Atlas web UI, served by the collector in its own event loop (uvicorn + Starlette; see API.md).

`EventHub` is created with the collector (ingest and diagnostics tell it what they committed, cheaply, even
when the UI is off); `WebServer` is started by `Collector.start()` when `--http` is not `off`. Starlette and
uvicorn are imported only here, when the collector serves: `atlas --help` and the trainer never load them."""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from .._exceptions import ConfigError
from ._events import EventHub

__all__ = ["EventHub", "WebServer"]

log = logging.getLogger(__name__)

WARM_EVERY_S = 2.0  # how often the series of live runs are brought up to date while a page is open
WARM_WHILE_S = 600.0  # ... and for this long after the last API request


def _hosts(host: str, port: int) -> set[str]:
    """The Host header values a loopback UI answers to."""
    names = {host, "localhost", "127.0.0.1", "[::1]"}
    if ":" in host and not host.startswith("["):
        names.add(f"[{host}]")
    return {f"{n}:{port}".lower() for n in names} | ({"localhost", "127.0.0.1"} if port == 80 else set())


class _QuietShutdown(logging.Filter):
    """uvicorn's log at shutdown, for the requests still running after its grace period (a page's event stream
    reading its baseline, a Green-AI report being computed): it cancels them and logs an ERROR with a traceback
    for each. A collector stopped with a page open is not an error: those become one INFO line."""

    def __init__(self, server: Any) -> None:
        super().__init__()
        self.server = server

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.server.should_exit:
            return True
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            return False  # a request cancelled by the shutdown: the line below has said so
        if record.msg == "Cancel %s running task(s), timeout graceful shutdown exceeded":
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = "web UI: %s request(s) still running at shutdown were cancelled"
        return True


class WebServer:
    """uvicorn serving the UI app on a socket bound here (so port 0 works and the URL is known at once)."""

    def __init__(self, collector: Any, listen: str) -> None:
        self.collector = collector
        self.listen = listen
        self.port = 0
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def url(self) -> str:
        host = self.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
        return f"http://{shown}:{self.port}/"

    def _bind(self) -> socket.socket:
        host, port = self.host, int(self.listen.rpartition(":")[2])
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot serve the web UI on {self.listen}: {exc.strerror or exc} (choose another "
                              "--http HOST:PORT, or --http off)") from None
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        import contextlib

        import uvicorn

        from . import _downsample
        from ._api import Api
        from ._app import build_app
        from ._local import local_ctx

        c = self.collector
        self._sock = self._bind()
        self.port = self._sock.getsockname()[1]
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("atlas-observatory")
        except PackageNotFoundError:
            ver = "unknown"
        info = {"version": ver, "token_required": bool(c.config.token), "listen": c.address, "http": self.url}
        api = Api(c.services, local_ctx(c.services), _downsample.SeriesCache(c.store), info)
        self.api = api
        app = build_app(api, c.events, token=c.config.token, hosts=_hosts(self.host, self.port))

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # type: ignore[no-untyped-def] - the collector owns the signals
                yield

        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", proxy_headers=False,
                                server_header=False, timeout_graceful_shutdown=1, log_level="warning")
        self._server = _Server(config)
        self._quiet = _QuietShutdown(self._server)
        logging.getLogger("uvicorn.error").addFilter(self._quiet)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise ConfigError(f"the web UI on {self.listen} did not start")
            await asyncio.sleep(0.01)
        log.info("web UI on %s token=%s", self.url, "set" if c.config.token else "none")
        import importlib

        self._warm_task = asyncio.create_task(self._warm(api))

        # numpy (the steps endpoint's downsampling) loads in the background: the first chart opens without it
        asyncio.get_running_loop().run_in_executor(None, importlib.import_module, "numpy")

    async def _warm(self, api: Any) -> None:
        """While someone uses the UI, keep the step series of runs that are training decoded, so their page opens
        from the cache (decoding a million stored samples at once takes seconds)."""
        import time

        from ._api import POOL

        hub = self.collector.events
        sub = hub.subscribe(None)
        loop = asyncio.get_running_loop()
        try:
            while not sub.closed:
                await sub.wake.wait()
                await asyncio.sleep(WARM_EVERY_S)
                pending = sub.take()
                if hub.subscribers <= 1 and time.monotonic() - api.last_request > WARM_WHILE_S:
                    continue  # nobody looks: no work
                for run_id, kinds in pending.items():
                    if "step" in kinds:
                        await loop.run_in_executor(POOL, api.series.columns, run_id)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - warming is an optimisation: never fatal
            log.exception("web UI: warming the step series failed")
        finally:
            hub.unsubscribe(sub)

    async def stop(self, timeout: float = 3.0) -> None:
        if self._server is None or self._task is None:
            return
        if getattr(self, "_warm_task", None) is not None:
            self._warm_task.cancel()
        self.collector.events.close()  # every event stream ends
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - shutting down: never hang or raise here
            self._server.force_exit = True
            self._task.cancel()
        if self._sock is not None:
            self._sock.close()
        logging.getLogger("uvicorn.error").removeFilter(self._quiet)
        self._server = None
