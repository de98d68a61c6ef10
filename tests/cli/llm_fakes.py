"""Local stand-ins for LLM providers: HTTP servers on 127.0.0.1 that speak the OpenAI chat-completions and the
Anthropic messages wire formats (streaming SSE, tool calls), replaying a scripted conversation and recording every
request. The real `openai` and `anthropic` SDKs talk to them through OPENAI_BASE_URL / ANTHROPIC_BASE_URL."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


@dataclass
class Reply:
    """One scripted model turn: streamed text and/or tool calls, or an HTTP error."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200


def _pieces(text: str, size: int = 7) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i:i + size]


class FakeLLM:
    """`kind` is "openai" or "anthropic". Replies are used in order; the last one repeats."""

    def __init__(self, kind: str, replies: list[Reply]) -> None:
        assert kind in ("openai", "anthropic")
        self.kind = kind
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                fake.paths.append(self.path)
                reply = fake.replies[min(len(fake.requests) - 1, len(fake.replies) - 1)]
                if reply.status != 200:
                    payload = (json.dumps({"error": {"message": "scripted failure", "type": "server_error"}})
                               if fake.kind == "openai" else
                               json.dumps({"type": "error", "error": {"type": "api_error", "message": "scripted"}}))
                    data = payload.encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                events = fake._openai(reply, body) if fake.kind == "openai" else fake._anthropic(reply, body)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for event in events:
                    self.wfile.write(event.encode())
                    self.wfile.flush()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}" + ("/v1" if self.kind == "openai" else "")

    def __enter__(self) -> "FakeLLM":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    # ------------------------------------------------------------------------------------------ OpenAI
    def _openai(self, reply: Reply, body: dict[str, Any]) -> Iterator[str]:
        n = len(self.requests)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            return "data: " + json.dumps({
                "id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": 1700000000,
                "model": body.get("model"), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }) + "\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for piece in _pieces(reply.text):
            yield chunk({"content": piece})
        for k, (name, args) in enumerate(reply.tool_calls):
            raw = json.dumps(args)
            half = len(raw) // 2
            yield chunk({"tool_calls": [{"index": k, "id": f"call_{n}_{k}", "type": "function",
                                         "function": {"name": name, "arguments": raw[:half]}}]})
            yield chunk({"tool_calls": [{"index": k, "function": {"arguments": raw[half:]}}]})
        yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
        yield "data: [DONE]\n\n"

    # --------------------------------------------------------------------------------------- Anthropic
    def _anthropic(self, reply: Reply, body: dict[str, Any]) -> Iterator[str]:
        n = len(self.requests)

        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        yield event("message_start", {"message": {
            "id": f"msg_{n}", "type": "message", "role": "assistant", "content": [], "model": body.get("model"),
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}})
        index = 0
        if reply.text:
            yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            for piece in _pieces(reply.text):
                yield event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
            yield event("content_block_stop", {"index": 0})
            index = 1
        for k, (name, args) in enumerate(reply.tool_calls):
            i = index + k
            yield event("content_block_start", {"index": i, "content_block": {
                "type": "tool_use", "id": f"toolu_{n}_{k}", "name": name, "input": {}}})
            raw = json.dumps(args)
            half = len(raw) // 2
            for part in (raw[:half], raw[half:]):
                yield event("content_block_delta", {"index": i, "delta": {"type": "input_json_delta",
                                                                          "partial_json": part}})
            yield event("content_block_stop", {"index": i})
        yield event("message_delta", {"delta": {"stop_reason": "tool_use" if reply.tool_calls else "end_turn",
                                                "stop_sequence": None}, "usage": {"output_tokens": 5}})
        yield event("message_stop", {})
