"""The Atlas agent: an LLM with read-only tools over the collector, a belief state per run, and the MCP server.

Imported only by `atlas ask` and `atlas mcp` (the SDKs load then)."""
from __future__ import annotations

from ._belief import Belief
from ._loop import MAX_ROUNDS, Agent, AllProvidersFailed, Answer, StreamFilter, parse_tag_calls, strip_think
from ._providers import AnthropicProvider, OpenAIProvider, Provider, ProviderError, configured
from ._tools import READ_ONLY, RESULT_CAP, TOOLS, ToolRunner

__all__ = ["MAX_ROUNDS", "READ_ONLY", "RESULT_CAP", "TOOLS", "Agent", "AllProvidersFailed", "AnthropicProvider",
           "Answer", "Belief", "OpenAIProvider", "Provider", "ProviderError", "StreamFilter", "ToolRunner",
           "configured", "parse_tag_calls", "strip_think"]
