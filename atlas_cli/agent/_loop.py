"""The tool-calling loop: at most `MAX_ROUNDS` model calls per question, provider fallback, Qwen-style
`<tool_call>` tags, `<think>` stripping, streamed output, and the belief state."""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import click

from . import _belief
from ._prompt import system_prompt
from ._providers import Provider, ProviderError
from ._tools import ToolRunner, as_data, tools_for

MAX_ROUNDS = 8
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S)
_TAG_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)
_HIDDEN = ("think", "tool_call", "belief")


class AllProvidersFailed(Exception):
    pass


def strip_think(text: str) -> str:
    """Remove reasoning blocks (Qwen3 may also omit the opening tag: drop what precedes a lone </think>)."""
    if "</think>" in text and "<think>" not in text:
        text = text.split("</think>", 1)[1]
    return _THINK.sub("", text)


def parse_tag_calls(text: str) -> list[dict[str, Any]]:
    """Qwen-style `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` tags in the text."""
    calls = []
    for n, raw in enumerate(_TAG_CALL.findall(text)):
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            continue
        args = data.get("arguments", data.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = {}
        calls.append({"id": f"tag_{n}", "name": data["name"], "arguments": args if isinstance(args, dict) else {},
                      "via_text": True})
    return calls


class StreamFilter:
    """Passes streamed text through, hiding <think>, <tool_call> and <belief> blocks even when a tag is split
    across chunks."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.buf = ""
        self.hidden: str | None = None
        self.wrote = False

    def feed(self, chunk: str) -> None:
        self.buf += chunk
        while self.buf:
            if self.hidden is not None:
                end = f"</{self.hidden}>"
                i = self.buf.find(end)
                if i < 0:
                    self.buf = self.buf[-len(end):]
                    return
                self.buf = self.buf[i + len(end):]
                self.hidden = None
                continue
            i = self.buf.find("<")
            if i < 0:
                self._out(self.buf)
                self.buf = ""
                return
            self._out(self.buf[:i])
            self.buf = self.buf[i:]
            for tag in _HIDDEN:
                if self.buf.startswith(f"<{tag}>"):
                    self.buf = self.buf[len(tag) + 2:]
                    self.hidden = tag
                    break
                if self.buf.startswith("</think>"):  # a lone closing tag: what came before was reasoning
                    self.buf = self.buf[len("</think>"):]
                    break
            else:
                if any(f"<{tag}>".startswith(self.buf) or "</think>".startswith(self.buf) for tag in _HIDDEN):
                    return  # maybe a tag split across chunks: wait for more
                self._out(self.buf[0])
                self.buf = self.buf[1:]

    def flush(self) -> None:
        if self.hidden is None and self.buf:
            self._out(self.buf)
        self.buf = ""

    def _out(self, text: str) -> None:
        if text:
            if not self.wrote:
                text = text.lstrip()
                if not text:
                    return
            self.wrote = True
            self.write(text)


@dataclass
class Answer:
    text: str
    belief: _belief.Belief
    revised: bool
    rounds: int
    provider: str | None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    hit_round_limit: bool = False


class Agent:
    """One conversation about one run (or none). `ask` may be called repeatedly (interactive mode)."""

    def __init__(self, providers: list[Provider], runner: ToolRunner, run: dict[str, Any] | None, *,
                 stream: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None) -> None:
        if not providers:
            raise ValueError("`providers` must name at least one LLM provider")
        self.providers = providers
        self.current = 0
        self.runner = runner
        self.run = run
        self.run_key = run["id"] if run else "no-run"
        self.messages: list[dict[str, Any]] = []
        self.stream = stream or (lambda s: None)
        self.warn = warn or (lambda s: click.echo(s, err=True))

    def _complete(self, system: str, on_text: Callable[[str], None]) -> tuple[Any, Provider]:
        tools = tools_for(self.runner.allow_actions)
        errors = []
        while self.current < len(self.providers):
            provider = self.providers[self.current]
            try:
                return provider.complete(system, self.messages, tools, on_text), provider
            except ProviderError as exc:
                errors.append(f"{provider.label()}: {exc}")
                self.current += 1
                if self.current < len(self.providers):
                    self.warn(f"{provider.label()} failed ({exc}); falling back to "
                              f"{self.providers[self.current].label()}")
        raise AllProvidersFailed("; ".join(errors))

    def ask(self, question: str) -> Answer:
        old = _belief.load(self.run_key)
        self.messages.append({"role": "user", "content": question})
        calls_before = len(self.runner.calls)
        final, provider, rounds, limit = "", None, 0, False
        for rounds in range(1, MAX_ROUNDS + 1):
            system = system_prompt(self.run, old.for_prompt(), allow_actions=self.runner.allow_actions)
            shown = StreamFilter(self.stream)
            turn, provider = self._complete(system, shown.feed)
            shown.flush()
            text = strip_think(turn.text)
            calls = turn.tool_calls or parse_tag_calls(text)
            if not calls:
                final = text
                self.messages.append({"role": "assistant", "content": text})
                break
            if shown.wrote:
                self.stream("\n")
            self.messages.append({"role": "assistant", "content": text, "tool_calls": calls})
            for call in calls:
                result = self.runner.run(call["name"], call["arguments"])
                self.messages.append({"role": "tool", "tool_call_id": call["id"], "name": call["name"],
                                      "content": as_data(call["name"], result),
                                      "via_text": call.get("via_text", False)})
        else:
            limit = True
            final = (f"(stopped after {MAX_ROUNDS} rounds of tool calls without a final answer; ask a narrower "
                     "question)")
            self.messages.append({"role": "assistant", "content": final})
        clean, block = _belief.extract(final)
        belief, revised = (_belief.merge(old, block) if block is not None else (old, False))
        if block is not None:
            _belief.save(self.run_key, belief)
        return Answer(text=clean, belief=belief, revised=revised, rounds=rounds,
                      provider=provider.label() if provider else None,
                      tool_calls=self.runner.calls[calls_before:], hit_round_limit=limit)


def stdout_writer(text: str) -> None:
    from .._terminal import safe  # the answer may quote what a trainer sent (a log line with terminal sequences)

    sys.stdout.write(safe(text))
    sys.stdout.flush()
