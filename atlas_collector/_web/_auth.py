"""Security of the web UI, as one ASGI middleware in front of every route.

- Session: with a collector token, `POST /api/login {"token"}` checks it (constant time) and sets `atlas_session`
  (HttpOnly, SameSite=Strict, Path=/): an HMAC of its issue time keyed by the token, so it survives a collector
  restart and dies when the token changes. Every `/api/*` request but `/api/info` and `/api/login` needs it (401).
- CSRF: every response sets a readable `atlas_csrf` cookie when the browser has none; every POST but the login
  must echo it in the `X-Atlas-CSRF` header (403), and a POST whose `Origin` is another site is refused (403).
- Without a token the UI only listens on loopback (the config refuses otherwise); the `Host` header must then
  name this machine, so a page on another site cannot reach it through DNS rebinding (403).
- Headers on every response: a Content-Security-Policy without inline scripts or styles, nosniff, no framing,
  no referrer."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from http.cookies import SimpleCookie
from typing import Any, Awaitable, Callable

SESSION_COOKIE = "atlas_session"
CSRF_COOKIE = "atlas_csrf"
CSRF_HEADER = "x-atlas-csrf"
SESSION_MAX_AGE_S = 7 * 24 * 3600
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
OPEN_PATHS = frozenset({"/api/info", "/api/login", "/api/logout"})

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def make_session(token: str, now: float | None = None) -> str:
    issued = str(int(time.time() if now is None else now))
    mac = hmac.new(token.encode(), f"atlas-ui-session:{issued}".encode(), hashlib.sha256).hexdigest()
    return f"{issued}.{mac}"


def session_ok(token: str, value: str, now: float | None = None) -> bool:
    issued, _, mac = value.partition(".")
    if not issued.isdigit() or not mac:
        return False
    now = time.time() if now is None else now
    if not 0 <= now - int(issued) <= SESSION_MAX_AGE_S:
        return False
    return hmac.compare_digest(make_session(token, int(issued)), value)


def cookies(scope: Scope) -> dict[str, str]:
    jar = SimpleCookie()
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header is no cookie
                continue
    return {k: m.value for k, m in jar.items()}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def cookie_header(name: str, value: str, *, http_only: bool, max_age: int | None = None) -> bytes:
    parts = [f"{name}={value}", "Path=/", "SameSite=Strict"]
    if http_only:
        parts.append("HttpOnly")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts).encode()


class Guard:
    """The middleware (see the module docstring). `hosts`: the Host values accepted without a token."""

    def __init__(self, app: ASGIApp, *, token: str, hosts: set[str], secure: bool = False) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        jar = cookies(scope)
        refusal = self._refuse(scope, path, jar)
        new_csrf = None if jar.get(CSRF_COOKIE) else secrets.token_urlsafe(24)

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() not in dict(SECURITY_HEADERS)]
                headers += SECURITY_HEADERS
                if new_csrf is not None:
                    headers.append((b"set-cookie", cookie_header(CSRF_COOKIE, new_csrf, http_only=False)))
                message["headers"] = headers
            await send(message)

        if refusal is not None:
            status, text = refusal
            body = json.dumps({"error": text}).encode()
            await send_with_headers({"type": "http.response.start", "status": status,
                                     "headers": [(b"content-type", b"application/json"),
                                                 (b"content-length", str(len(body)).encode()),
                                                 (b"cache-control", b"no-store")]})
            await send_with_headers({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_headers)

    def _refuse(self, scope: Scope, path: str, jar: dict[str, str]) -> tuple[int, str] | None:
        if not self.token:
            host = (_header(scope, b"host") or "").lower()
            if host not in self.hosts:
                return 403, (f"Host {host!r} is not this collector's address; open the UI at one of "
                             f"{', '.join(sorted(self.hosts))}")
        method = scope["method"]
        if method not in ("GET", "HEAD", "OPTIONS"):
            origin = _header(scope, b"origin")
            host = _header(scope, b"host") or ""
            if origin is not None and origin.split("://", 1)[-1].lower() != host.lower():
                return 403, f"cross-site request refused (Origin {origin!r})"
            if path not in OPEN_PATHS:
                sent, expected = _header(scope, CSRF_HEADER.encode()) or "", jar.get(CSRF_COOKIE) or ""
                if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
                    return 403, ("missing or wrong CSRF header: send X-Atlas-CSRF with the value of the atlas_csrf "
                                 "cookie")
        if self.token and path.startswith("/api/") and path not in OPEN_PATHS:
            if not session_ok(self.token, jar.get(SESSION_COOKIE, "")):
                return 401, "not logged in: POST /api/login with the collector's token first"
        return None
