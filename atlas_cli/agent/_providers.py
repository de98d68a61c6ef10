"""LLM providers: any OpenAI-compatible endpoint through the `openai` SDK (vLLM, Ollama, hosted) and Anthropic
through the `anthropic` SDK. Both stream; both take the agent's neutral messages:

    {"role": "user", "content": str}
    {"role": "assistant", "content": str, "tool_calls": [{"id", "name", "arguments": dict, "via_text": bool}]}
    {"role": "tool", "tool_call_id": str, "name": str, "content": str}

Order (reference 5.7): the OpenAI-compatible endpoint when one is configured, then Anthropic as fallback.
`ATLAS_LLM_PROVIDER` (or `--provider`) puts one first; `ATLAS_LLM_MODEL` (or `--model`) names the first one's model.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import click

PROVIDERS = ("openai", "anthropic")
DEFAULT_MODELS = {"openai": "gpt-5.5", "anthropic": "claude-sonnet-5-5"}  # a served model needs ATLAS_LLM_MODEL
TIMEOUT_S = 120.0
MAX_TOKENS = 2048


class ProviderError(Exception):
    """The provider could not answer (connection, HTTP error, malformed stream): try the next one."""


@dataclass
class Turn:
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class Provider:
    name = ""

    def __init__(self, model: str) -> None:
        self.model = model

    def label(self) -> str:
        return f"{self.name}:{self.model}"

    def complete(self, system: str, messages: list[dict[str, Any]], tools: list[Any],
                 on_text: Callable[[str], None]) -> Turn:
        raise NotImplementedError


def _text_results(messages: list[dict[str, Any]], i: int) -> tuple[str, int]:
    """Consecutive tool messages from index i as one text block (for calls the model wrote as tags)."""
    parts = []
    while i < len(messages) and messages[i]["role"] == "tool":
        parts.append(messages[i]["content"])
        i += 1
    return "\n\n".join(parts), i


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, model: str, base_url: str | None, api_key: str | None) -> None:
        super().__init__(model)
        self.base_url = base_url
        self.api_key = api_key
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:  # the SDK loads when this provider is first asked
            import openai

            self._client = openai.OpenAI(base_url=self.base_url or None, api_key=self.api_key or "EMPTY",
                                         max_retries=0, timeout=TIMEOUT_S)
        return self._client

    def label(self) -> str:
        return f"openai-compatible:{self.model}" + (f" at {self.base_url}" if self.base_url else "")

    def _messages(self, system: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"role": "system", "content": system}]
        i = 0
        while i < len(messages):
            m = messages[i]
            if m["role"] == "assistant":
                native = [c for c in m.get("tool_calls", []) if not c.get("via_text")]
                entry: dict[str, Any] = {"role": "assistant", "content": m.get("content") or ""}
                if native:
                    entry["tool_calls"] = [{"id": c["id"], "type": "function",
                                            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                                           for c in native]
                out.append(entry)
                i += 1
            elif m["role"] == "tool":
                if m.get("via_text"):
                    text, i = _text_results(messages, i)
                    out.append({"role": "user", "content": text})
                else:
                    out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]})
                    i += 1
            else:
                out.append({"role": m["role"], "content": m["content"]})
                i += 1
        return out

    def complete(self, system: str, messages: list[dict[str, Any]], tools: list[Any],
                 on_text: Callable[[str], None]) -> Turn:
        turn = Turn()
        calls: dict[int, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"model": self.model, "messages": self._messages(system, messages), "stream": True,
                                  "temperature": 0.2}
        if tools:
            kwargs["tools"] = [t.schema() for t in tools]
        try:
            stream = self.client.chat.completions.create(**kwargs)
            for chunk in stream:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta is None:
                    continue
                if delta.content:
                    turn.text += delta.content
                    on_text(delta.content)
                for tc in delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    if tc.id:
                        slot["id"] = tc.id
                    if tc.function is not None:
                        slot["name"] += tc.function.name or ""
                        slot["arguments"] += tc.function.arguments or ""
        except Exception as exc:  # noqa: BLE001 - any failure of this provider (HTTP, stream, SDK) means: next one
            raise ProviderError(f"{type(exc).__name__}: {_short(exc)}") from exc
        for index in sorted(calls):
            c = calls[index]
            turn.tool_calls.append({"id": c["id"] or f"call_{index}", "name": c["name"],
                                    "arguments": _args(c["arguments"])})
        return turn


class AnthropicProvider(Provider):
    name = "anthropic"

    def __init__(self, model: str, api_key: str | None, base_url: str | None = None) -> None:
        super().__init__(model)
        self.api_key = api_key
        self.base_url = base_url
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:  # the SDK loads when this provider is first asked
            import anthropic

            self._client = anthropic.Anthropic(api_key=self.api_key, base_url=self.base_url or None, max_retries=0,
                                               timeout=TIMEOUT_S)
        return self._client

    def _messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        i = 0
        while i < len(messages):
            m = messages[i]
            if m["role"] == "assistant":
                blocks: list[dict[str, Any]] = []
                if m.get("content"):
                    blocks.append({"type": "text", "text": m["content"]})
                blocks += [{"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["arguments"]}
                           for c in m.get("tool_calls", []) if not c.get("via_text")]
                out.append({"role": "assistant", "content": blocks or [{"type": "text", "text": "..."}]})
                i += 1
            elif m["role"] == "tool":
                if m.get("via_text"):
                    text, i = _text_results(messages, i)
                    out.append({"role": "user", "content": text})
                    continue
                results = []
                while i < len(messages) and messages[i]["role"] == "tool" and not messages[i].get("via_text"):
                    results.append({"type": "tool_result", "tool_use_id": messages[i]["tool_call_id"],
                                    "content": messages[i]["content"]})
                    i += 1
                out.append({"role": "user", "content": results})
            else:
                out.append({"role": m["role"], "content": m["content"]})
                i += 1
        return out

    def complete(self, system: str, messages: list[dict[str, Any]], tools: list[Any],
                 on_text: Callable[[str], None]) -> Turn:
        turn = Turn()
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": MAX_TOKENS, "system": system,
                                  "messages": self._messages(messages)}
        if tools:
            kwargs["tools"] = [t.anthropic_schema() for t in tools]
        try:
            with self.client.messages.stream(**kwargs) as stream:
                for event in stream:
                    if event.type == "text":
                        turn.text += event.text
                        on_text(event.text)
                final = stream.get_final_message()
        except Exception as exc:  # noqa: BLE001 - any failure of this provider (HTTP, stream, SDK) means: next one
            raise ProviderError(f"{type(exc).__name__}: {_short(exc)}") from exc
        for block in final.content:
            if block.type == "tool_use":
                turn.tool_calls.append({"id": block.id, "name": block.name, "arguments": dict(block.input or {})})
        return turn


def _args(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {"__unparsed__": raw}
    return value if isinstance(value, dict) else {"__unparsed__": raw}


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def configured(provider: str | None = None, model: str | None = None) -> list[Provider]:
    """The providers the environment configures, in the order they are tried."""
    env = os.environ
    first = (provider or env.get("ATLAS_LLM_PROVIDER") or "").strip().lower() or None
    if first is not None and first not in PROVIDERS:
        raise click.BadParameter(f"must be one of {', '.join(PROVIDERS)}, got {first!r}",
                                 param_hint="--provider / ATLAS_LLM_PROVIDER")
    model = model or env.get("ATLAS_LLM_MODEL") or None
    available: dict[str, bool] = {
        "openai": bool(env.get("OPENAI_BASE_URL") or env.get("OPENAI_API_KEY")),
        "anthropic": bool(env.get("ANTHROPIC_API_KEY")),
    }
    order = [first] + [p for p in PROVIDERS if p != first] if first else list(PROVIDERS)
    out: list[Provider] = []
    for name in order:
        if not available[name] and name != first:
            continue
        if not available[name]:
            key = "OPENAI_BASE_URL or OPENAI_API_KEY" if name == "openai" else "ANTHROPIC_API_KEY"
            raise click.ClickException(f"ATLAS_LLM_PROVIDER/--provider asks for {name}, but {key} is not set")
        chosen = model if not out and model else DEFAULT_MODELS[name]
        if name == "openai":
            out.append(OpenAIProvider(chosen, env.get("OPENAI_BASE_URL"), env.get("OPENAI_API_KEY")))
        else:
            out.append(AnthropicProvider(chosen, env.get("ANTHROPIC_API_KEY"), env.get("ANTHROPIC_BASE_URL")))
    return out
