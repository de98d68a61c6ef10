"""Alert messages on the wire: the generic webhook's JSON (signed), Slack Block Kit, Discord embeds, e-mail (plain
text and HTML), and the one function that sends one message to one route (blocking, bounded by the route's
timeout; the dispatcher calls it off the event loop).

Strings from a trainer (run name, project, alert text) are escaped for each medium: control characters shown as
escapes (``\\x1b``) in text; HTML-escaped in the HTML mail; Slack's `&`, `<`, `>` escaped (so `<!channel>` or
`<https://x|click>` is shown, never parsed) and Discord's markdown escaped with mentions disabled, so a run name
can neither ping a channel nor inject a link. The generic webhook's JSON carries the exact strings (JSON is exact;
the receiver decides). Webhook URLs are secrets (Slack's and Discord's are credentials): `redact` shows only the
scheme and host, and every error message passes through `scrub`."""
from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import time
import urllib.error
import urllib.request
from typing import Any, Mapping
from urllib.parse import urlsplit

USER_AGENT = "atlas-collector-alerts/1"
SIGNATURE_HEADER = "X-Atlas-Signature"
TIMESTAMP_HEADER = "X-Atlas-Timestamp"
_COLORS = {"critical": 0xD62728, "warning": 0xFF9F1C, "info": 0x1F77B4}
_EMOJI = {"critical": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}
_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


class SendError(Exception):
    """The route did not take the message; `retry_after` (seconds) when the receiver asked for a pause."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# ------------------------------------------------------------------------------------------ secrets

def redact(url: str) -> str:
    """What of a webhook URL may be shown: its scheme, host and port. The path (Slack's and Discord's tokens), the
    query string and any user:password are replaced by `…`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparsable URL)"
    if not parts.scheme or not host:
        return "(a URL)"
    tail = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{tail}"


def scrub(text: str, route: Any) -> str:
    """`text` without the route's secrets (URL, its path and query, user info, HMAC secret, SMTP password)."""
    secrets = []
    url = getattr(route, "url", "")
    if url:
        secrets.append(url)
        try:
            parts = urlsplit(url)
            secrets += [parts.path if len(parts.path) > 1 else "", parts.query, parts.username or "",
                        parts.password or "", parts.netloc if "@" in parts.netloc else ""]
        except ValueError:
            pass
    for attr in ("secret", "password"):
        secrets.append(getattr(route, attr, ""))
    if getattr(route, "password_env", ""):
        try:
            secrets.append(route.smtp_password())
        except Exception:  # noqa: BLE001
            pass
    for secret in sorted((x for x in secrets if x and len(x) >= 4), key=len, reverse=True):
        text = text.replace(secret, "…")
    return text


# ------------------------------------------------------------------------------------------ escaping

def plain(text: Any, *, lines: bool = True) -> str:
    """Control and bidi characters as escapes; tabs kept, newlines kept when `lines`."""
    text = "" if text is None else str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\t" or (ch == "\n" and lines):
            out.append(ch)
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif code in _BIDI:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def slack_text(text: Any, *, lines: bool = True) -> str:
    """For Slack mrkdwn: `&`, `<`, `>` escaped (no <!channel>, <@U…>, <url|label> can form); `@channel`-style words
    are not parsed in webhook messages (no link_names)."""
    return plain(text, lines=lines).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_DISCORD_MD = re.compile(r"([\\*_~`|>\[\]()<#:-])")


def discord_text(text: Any, *, lines: bool = True) -> str:
    """For Discord markdown: markdown characters escaped (no masked links, headers, code), `@` followed by a
    zero-width space (no @everyone/@here even where mentions were allowed); the message also disables mentions."""
    return _DISCORD_MD.sub(r"\\\1", plain(text, lines=lines)).replace("@", "@\u200b")


# ------------------------------------------------------------------------------------------ formats

def _run_line(payload: Mapping[str, Any], esc: Any) -> str:
    run = payload.get("run") or {}
    if not run:
        return ""
    return f"run {esc(run.get('name'), lines=False)} ({esc(run.get('project'), lines=False)}, {str(run.get('id'))[:8]})"


def _headline(payload: Mapping[str, Any]) -> str:
    sev = payload.get("severity") or "info"
    return f"[{sev}] {payload.get('title') or payload.get('event')}"


def _evidence_lines(payload: Mapping[str, Any], limit: int = 12) -> list[tuple[str, str]]:
    ev = payload.get("evidence") or {}
    out = []
    for key, value in list(ev.items())[:limit]:
        text = json.dumps(value, default=str) if not isinstance(value, str) else value
        out.append((str(key), text[:300]))
    return out


def webhook_body(payload: Mapping[str, Any], delivery_id: int) -> dict[str, Any]:
    """The generic webhook's documented JSON (README, "Alerts")."""
    run = payload.get("run") or None
    body = {"delivery_id": delivery_id, "event": payload.get("event"), "severity": payload.get("severity"),
            "check": payload.get("check"), "title": payload.get("title"), "explanation": payload.get("explanation"),
            "evidence": payload.get("evidence") or {}, "fix": payload.get("fix"), "insight": payload.get("insight"),
            "run": run, "url": run.get("url") if run else None, "time": payload.get("time")}
    if payload.get("items"):
        body["items"] = payload["items"]
    return body


def slack_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    sev = payload.get("severity") or "info"
    head = f"{_EMOJI.get(sev, '')} *{slack_text(_headline(payload), lines=False)}*"
    run_line = _run_line(payload, slack_text)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}]
    ctx = [x for x in (run_line, f"event: {payload.get('event')}",
                       f"check: {slack_text(payload.get('check'), lines=False)}" if payload.get("check") else "")
           if x]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(ctx)}]})
    for label, key in (("What", "explanation"), ("Insight", "insight"), ("Fix", "fix")):
        if payload.get(key):
            blocks.append({"type": "section",
                           "text": {"type": "mrkdwn", "text": f"*{label}:* {slack_text(payload[key])[:2800]}"}})
    ev = _evidence_lines(payload, 10)
    if ev:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{slack_text(k, lines=False)}*\n{slack_text(v)[:200]}"} for k, v in ev]})
    for item in (payload.get("items") or [])[:40]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "• " + slack_text(item)[:2800]}})
    url = (payload.get("run") or {}).get("url")
    if url:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open the run"}, "url": url}]})
    fallback = plain(_headline(payload), lines=False) + (f" — {plain(run_line, lines=False)}" if run_line else "")
    return {"text": slack_text(fallback, lines=False), "blocks": blocks[:50]}


def discord_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    sev = payload.get("severity") or "info"
    desc = []
    for label, key in (("What", "explanation"), ("Insight", "insight"), ("Fix", "fix")):
        if payload.get(key):
            desc.append(f"**{label}:** {discord_text(payload[key])}")
    for item in (payload.get("items") or [])[:40]:
        desc.append("• " + discord_text(item))
    fields = [{"name": discord_text(k, lines=False)[:256], "value": discord_text(v)[:1024] or "-", "inline": True}
              for k, v in _evidence_lines(payload, 10)]
    embed: dict[str, Any] = {"title": discord_text(_headline(payload), lines=False)[:256],
                             "description": "\n".join(desc)[:4000], "color": _COLORS.get(sev, 0x888888),
                             "fields": fields,
                             "footer": {"text": plain(_run_line(payload, plain), lines=False)  # no markdown here
                                        .replace("@", "@\u200b")[:2048] or "Atlas"}}
    url = (payload.get("run") or {}).get("url")
    if url:
        embed["url"] = url
    return {"username": "Atlas", "content": "", "embeds": [embed], "allowed_mentions": {"parse": []}}


def email_message(route: Any, payload: Mapping[str, Any]) -> Any:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = plain(f"Atlas: {_headline(payload)}", lines=False).replace("\n", " ")[:200]
    msg["From"] = route.smtp_from
    msg["To"] = ", ".join(route.to)
    run_line = _run_line(payload, plain)
    url = (payload.get("run") or {}).get("url")
    text = [plain(_headline(payload), lines=False)]
    if run_line:
        text.append(plain(run_line, lines=False))
    for label, key in (("What", "explanation"), ("Insight", "insight"), ("Fix", "fix")):
        if payload.get(key):
            text.append(f"{label}: {plain(payload[key])}")
    ev = _evidence_lines(payload, 20)
    if ev:
        text.append("Evidence:\n" + "\n".join(f"  {plain(k, lines=False)}: {plain(v)}" for k, v in ev))
    for item in payload.get("items") or []:
        text.append("- " + plain(item))
    if url:
        text.append(f"Open the run: {url}")
    msg.set_content("\n\n".join(text) + "\n")
    e = html.escape
    parts = [f"<h2>{e(plain(_headline(payload), lines=False))}</h2>"]
    if run_line:
        parts.append(f"<p>{e(run_line)}</p>")
    for label, key in (("What", "explanation"), ("Insight", "insight"), ("Fix", "fix")):
        if payload.get(key):
            parts.append(f"<p><b>{label}:</b> {e(plain(payload[key]))}</p>")
    if ev:
        rows = "".join(f"<tr><td>{e(plain(k))}</td><td>{e(plain(v))}</td></tr>" for k, v in ev)
        parts.append(f"<table>{rows}</table>")
    items = payload.get("items") or []
    if items:
        parts.append("<ul>" + "".join(f"<li>{e(plain(i))}</li>" for i in items) + "</ul>")
    if url:
        parts.append(f'<p><a href="{e(url, quote=True)}">Open the run</a></p>')
    msg.add_alternative("<html><body>" + "".join(parts) + "</body></html>", subtype="html")
    return msg


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Atlas-Signature value: `sha256=` + hex HMAC-SHA256 of `TIMESTAMP.` + body, keyed by the secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# ------------------------------------------------------------------------------------------ sending

def send(route: Any, payload: Mapping[str, Any], delivery_id: int) -> None:
    """Send one message to one route; raise `SendError` (secrets scrubbed) when it was not taken."""
    try:
        if route.kind == "email":
            _send_email(route, payload)
            return
        if route.kind == "slack":
            body = json.dumps(slack_body(payload)).encode()
        elif route.kind == "discord":
            body = json.dumps(discord_body(payload)).encode()
        else:
            body = json.dumps(webhook_body(payload, delivery_id), default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-Atlas-Event": str(payload.get("event")), "X-Atlas-Delivery": str(delivery_id)}
        if route.kind == "webhook" and route.secret:
            ts = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = ts
            headers[SIGNATURE_HEADER] = sign(route.secret, ts, body)
        _post(route, body, headers)
    except SendError as exc:
        raise SendError(scrub(str(exc), route), exc.retry_after) from None
    except Exception as exc:  # noqa: BLE001 - any failure is one line, secrets scrubbed
        raise SendError(scrub(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500],
                              route)) from None


def _post(route: Any, body: bytes, headers: dict[str, str]) -> None:
    request = urllib.request.Request(route.url, data=body, headers=headers, method="POST")
    where = redact(route.url)
    try:
        with urllib.request.urlopen(request, timeout=route.timeout_s) as response:  # noqa: S310 - http(s) only
            response.read(65536)
    except urllib.error.HTTPError as exc:
        retry_after = None
        if exc.code == 429:
            try:
                retry_after = float(exc.headers.get("Retry-After", ""))
            except ValueError:
                retry_after = None
        raise SendError(f"HTTP {exc.code} {exc.reason} from {where}", retry_after) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise SendError(f"cannot reach {where}: {reason}") from None
    except TimeoutError:
        raise SendError(f"no answer from {where} within {route.timeout_s:g} s") from None
    except OSError as exc:
        raise SendError(f"cannot reach {where}: {exc.strerror or exc}") from None


def _send_email(route: Any, payload: Mapping[str, Any]) -> None:
    import smtplib
    import ssl as ssl_

    msg = email_message(route, payload)
    port = route.smtp_port or (465 if route.ssl else 587 if route.starttls else 25)
    where = f"{route.smtp_host}:{port}"
    try:
        if route.ssl:
            client: Any = smtplib.SMTP_SSL(route.smtp_host, port, timeout=route.timeout_s,
                                           context=ssl_.create_default_context())
        else:
            client = smtplib.SMTP(route.smtp_host, port, timeout=route.timeout_s)
        with client:
            if route.starttls:
                client.starttls(context=ssl_.create_default_context())
            if route.username:
                client.login(route.username, route.smtp_password())
            client.send_message(msg)
    except smtplib.SMTPException as exc:
        raise SendError(f"SMTP server {where} refused the message: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}"[:400]) from None
    except TimeoutError:
        raise SendError(f"no answer from SMTP server {where} within {route.timeout_s:g} s") from None
    except OSError as exc:
        raise SendError(f"cannot reach SMTP server {where}: {exc.strerror or exc}") from None
