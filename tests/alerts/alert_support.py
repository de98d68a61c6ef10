"""Helpers of the alert tests: a real HTTP receiver on loopback (the stand-in for a webhook, Slack or Discord), a
real SMTP server (aiosmtpd), and a collector with alert routes."""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import pathlib
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "collector"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "cli"))

from atlas_collector import CollectorConfig, run_server  # noqa: E402

from coll_support import Trainer, query, rows, wait_for  # noqa: E402,F401


class Receiver:
    """Records every POST. `statuses`: the answers to the first requests (then 200); `delay`: seconds before each
    answer (a slow receiver); `held`: answer nothing until `release` is set (a receiver stuck for as long as the
    test needs)."""

    def __init__(self, statuses: tuple[int, ...] = (), delay: float = 0.0, port: int = 0, held: bool = False) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.release = threading.Event()
        if not held:
            self.release.set()
        self.waiting = 0  # requests being held now
        self.requests: list[dict[str, Any]] = []
        self.answered = 0
        me = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if me.delay:
                    time.sleep(me.delay)
                if not me.release.is_set():
                    me.waiting += 1
                    me.release.wait(60)
                    me.waiting -= 1
                status = me.statuses.pop(0) if me.statuses else 200
                me.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                    "body": body, "status": status})
                data = b"ok" if status < 300 else b"scripted failure"
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["status"] < 300]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.ok()]

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()  # a held request answers, so the server's threads end
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def verify(secret: str, request: dict[str, Any]) -> bool:
    """What a receiver does (README, "Alerts"): recompute the HMAC of `TIMESTAMP.BODY` and compare."""
    ts = request["headers"]["x-atlas-timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request["headers"]["x-atlas-signature"])


@contextlib.contextmanager
def smtp_server() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on a free loopback port; yields (controller, received messages)."""
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            import email
            import email.policy

            received.append((envelope, email.message_from_bytes(envelope.content, policy=email.policy.default)))
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller, received
    finally:
        controller.stop()


@contextlib.contextmanager
def alert_collector(db_url: str, routes: list[dict[str, Any]], config: dict[str, Any] | None = None,
                    **settings: Any) -> Iterator[Any]:
    settings.setdefault("retry_base_s", 0.2)
    settings.setdefault("retry_max_s", 1.0)
    extra = dict(config or {})
    if "http" in CollectorConfig.__dataclass_fields__:
        extra.setdefault("http", "off")
    config = CollectorConfig(listen="127.0.0.1:0", db=db_url, alerts={"routes": routes, **settings}, **extra)
    with run_server(config) as collector:
        yield collector


def notifications(store: Any, **where: Any) -> list[dict[str, Any]]:
    from atlas_collector import _schema as s

    return sorted(rows(store, s.notifications, **where), key=lambda r: r["id"])
