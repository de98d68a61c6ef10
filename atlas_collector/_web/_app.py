"""The Starlette application: pages (one static index.html, routed in the browser), assets, the JSON API,
server-sent events, and the login. Routes are listed in API.md; handlers are in `_api`, live streams in
`_streams`, security in `_auth`."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import mimetypes
import pathlib
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import _auth, _streams
from ._api import Api, HttpError, blocking
from ._http import error_response, json_response, read_json

STATIC = pathlib.Path(__file__).parent / "static"
WRONG_TOKEN_DELAY_S = 0.5


class Assets:
    """The page's files, answered from memory in the event loop: a first visit asks for its scripts and styles
    while its data requests keep the thread pool busy, and a thread-pool hop and a file read per request (what
    Starlette's StaticFiles does) made them wait behind those. A file is read once, and again when its size
    or modification time changes (an edited file is served without a restart). A versioned URL (`?v=...`) is
    cached for a year; others are revalidated (ETag)."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory.resolve()
        self._files: dict[str, tuple[tuple[int, int], bytes, str, str]] = {}

    def get(self, name: str) -> tuple[bytes, str, str] | None:
        """(content, media type, ETag) of static/`name`, or None when there is no such file."""
        path = (self.directory / name).resolve()
        if not path.is_relative_to(self.directory):
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        if not path.is_file():
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        known = self._files.get(name)
        if known is None or known[0] != stamp:
            body = path.read_bytes()
            media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if media.startswith("text/") or media in ("application/javascript", "image/svg+xml"):
                media += "; charset=utf-8"
            known = self._files[name] = (stamp, body, media, f'"{hashlib.sha256(body).hexdigest()[:20]}"')
        return known[1], known[2], known[3]

    def response(self, name: str, request: Request, cache: str | None = None) -> Response:
        found = self.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, media, etag = found
        versioned = "v" in request.query_params
        headers = {"etag": etag, "cache-control": cache or (
            "public, max-age=31536000, immutable" if versioned else "no-cache")}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(b"" if request.method == "HEAD" else body, media_type=media, headers=headers)

    async def endpoint(self, request: Request) -> Response:
        """GET /static/{name:path}."""
        return self.response(request.path_params["name"], request)


def build_app(api: Api, hub: Any, *, token: str, hosts: set[str]) -> Any:
    """The ASGI app, wrapped in the security guard."""

    def handler(fn: Any, *names: str, params: bool = False) -> Any:
        """A GET route: path parameters `names` (and with `params` the query string) to `fn`, in the thread
        pool."""
        call = blocking(fn)

        async def endpoint(request: Request) -> Response:
            api.last_request = start = time.monotonic()
            args: list[Any] = [request.path_params[n] for n in names]
            if params:
                args.append(request.query_params)
            try:
                response = json_response(await call(*args))
            except Exception as exc:  # noqa: BLE001 - every failure is one JSON line
                response = error_response(exc)
            # the server's share of the request's time, as the browser's developer tools (and the load benchmark)
            # read it: the rest is the network and the browser
            response.headers["server-timing"] = f"app;dur={(time.monotonic() - start) * 1000:.1f}"
            return response

        return endpoint

    assets = Assets(STATIC)

    async def page(request: Request) -> Response:
        if assets.get("index.html") is None:
            return Response("The Atlas UI's files are missing from this installation (atlas_collector/_web/static).",
                            status_code=503, media_type="text/plain")
        return assets.response("index.html", request, cache="no-cache")

    async def run_page(request: Request) -> Response:
        """A run's page: its step series start decoding now (a million stored samples take the server about half
        a second the first time), while the browser loads the page's scripts, rather than when they ask. Only for
        a browser the API would answer: the page itself is public, and no one else makes the server decode."""
        if not token or _auth.session_ok(token, _auth.cookies(request.scope).get(_auth.SESSION_COOKIE, "")):
            api.prefetch_ref(request.path_params["run"])
        return await page(request)

    async def info(request: Request) -> Response:
        return json_response(api.info)

    async def login(request: Request) -> Response:
        try:
            body = await read_json(request)
        except HttpError as exc:
            return error_response(exc)
        sent = body.get("token") if isinstance(body, dict) else None
        if not token:
            return json_response({"ok": True, "token_required": False})
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), token.encode()):
            await asyncio.sleep(WRONG_TOKEN_DELAY_S)  # guessing tokens over HTTP goes slowly
            return json_response({"error": "wrong token"}, 401)
        response = json_response({"ok": True, "token_required": True})
        response.headers.append("set-cookie", _auth.cookie_header(
            _auth.SESSION_COOKIE, _auth.make_session(token), http_only=True,
            max_age=_auth.SESSION_MAX_AGE_S).decode())
        return response

    async def logout(request: Request) -> Response:
        response = json_response({"ok": True})
        response.headers.append("set-cookie", _auth.cookie_header(_auth.SESSION_COOKIE, "", http_only=True,
                                                                  max_age=0).decode())
        return response

    async def command(request: Request) -> Response:
        try:
            body = await read_json(request)
            return json_response(await blocking(api.command)(request.path_params["run"], body))
        except Exception as exc:  # noqa: BLE001
            return error_response(exc)

    async def not_found(request: Request) -> Response:
        return json_response({"error": f"no API route {request.method} {request.url.path} (see API.md)"}, 404)

    routes = [
        Route("/", page), Route("/runs/{run}", run_page), Route("/compare", page), Route("/projects/{name:path}", page),
        Route("/login", page),
        Route("/api/info", info),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        Route("/api/runs", handler(api.runs, params=True)),
        Route("/api/events", _streams.runs_stream(api, hub)),
        Route("/api/compare", handler(api.compare, params=True)),
        Route("/api/projects/{name}/trend", handler(api.trend, "name")),
        Route("/api/runs/{run}", handler(api.run, "run", params=True)),
        Route("/api/runs/{run}/steps", handler(api.steps, "run", params=True)),
        Route("/api/runs/{run}/epochs", handler(api.epochs, "run", params=True)),
        Route("/api/runs/{run}/issues", handler(api.issues, "run", params=True)),
        Route("/api/runs/{run}/health", handler(api.health, "run")),
        Route("/api/runs/{run}/green", handler(api.green, "run")),
        Route("/api/runs/{run}/layers", handler(api.layers, "run", params=True)),
        Route("/api/runs/{run}/architecture", handler(api.architecture, "run")),
        Route("/api/runs/{run}/logs", handler(api.logs, "run", params=True)),
        Route("/api/runs/{run}/metrics", handler(api.metrics, "run", params=True)),
        Route("/api/runs/{run}/events", _streams.run_stream(api, hub)),
        Route("/api/runs/{run}/command", command, methods=["POST"]),
        Route("/api/runs/{run}/ask", _streams.ask_stream(api), methods=["POST"]),
        Route("/api/{rest:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/static/{name:path}", assets.endpoint),
    ]
    app = Starlette(routes=routes)
    return _auth.Guard(app, token=token, hosts=hosts)
