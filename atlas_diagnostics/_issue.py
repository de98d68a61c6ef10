"""Issues: what a check found, and the findings rules return."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._codec import decode_float, encode
from ._exceptions import RecordError

__all__ = ["CATEGORIES", "SEVERITIES", "SEVERITY_WEIGHT", "Finding", "Issue"]

SEVERITIES = ("critical", "warning", "info")
SEVERITY_WEIGHT = {"critical": 20, "warning": 7, "info": 2}
CATEGORIES = ("loss", "throughput", "memory", "profiler", "logs", "system", "architecture", "sustainability")


@dataclass(frozen=True, slots=True)
class Finding:
    """What one rule found in one evaluation. The engine turns findings into :class:`Issue` objects.

    ``key`` tells apart several issues of one check (a layer, a rank, a GPU); it defaults to the layer.
    ``severity`` overrides the rule's default (a rule with two levels, such as ``wasted_carbon``).
    """

    title: str
    description: str
    suggestion: str
    metric_key: str | None = None
    metric_value: float | int | str | None = None
    thresholds: Mapping[str, float | int] = field(default_factory=dict)
    layer: str | None = None
    step: int | None = None
    key: str | None = None
    severity: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)  # the numbers and facts behind the finding


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a run. An issue that persists across epochs is one issue with a first and last epoch."""

    check: str
    severity: str
    category: str
    title: str
    description: str
    suggestion: str
    epoch: int | None = None  # the epoch it was last judged on
    step: int | None = None
    layer: str | None = None
    metric_key: str | None = None
    metric_value: float | int | str | None = None
    thresholds: Mapping[str, float | int] = field(default_factory=dict)
    first_seen_epoch: int | None = None
    last_seen_epoch: int | None = None
    active: bool = True
    key: str | None = None  # identity within the check (layer, rank, GPU); not part of the JSON
    evidence: Mapping[str, Any] = field(default_factory=dict)  # the numbers and facts behind the finding
    rank: int | None = None  # 1 = the most likely root cause among the run's issues (see `rank_issues`)
    explains: tuple[str, ...] = ()  # check ids of this run's issues that this one accounts for

    @property
    def ident(self) -> tuple[str, str | None]:
        return (self.check, self.key)

    def to_dict(self) -> dict[str, Any]:
        """The fields of ``atlas issues --json`` (the caller adds ``run``). Absent values are ``None``."""
        return {
            "check": self.check,
            "severity": self.severity,
            "category": self.category,
            "title": self.title,
            "description": self.description,
            "epoch": self.epoch,
            "step": self.step,
            "layer": self.layer,
            "metric_key": self.metric_key,
            "metric_value": encode(self.metric_value),
            "thresholds": encode(dict(self.thresholds)),
            "suggestion": self.suggestion,
            "first_seen_epoch": self.first_seen_epoch,
            "last_seen_epoch": self.last_seen_epoch,
            "active": self.active,
            "rank": self.rank,
            "explains": list(self.explains),
            "evidence": encode(dict(self.evidence)),
            "insight": None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Issue:
        """Rebuild an issue from :meth:`to_dict` output (a stored or exported issue, for display and summaries);
        ``run`` is ignored. An engine's state is rebuilt by replaying the run's records, not from issues."""
        fields = ("check", "severity", "category", "title", "description", "suggestion", "epoch", "step", "layer",
                  "metric_key", "metric_value", "thresholds", "first_seen_epoch", "last_seen_epoch", "active",
                  "rank", "evidence")
        unknown = sorted(set(data) - set(fields) - {"run", "explains", "insight"})
        if unknown:
            raise RecordError(f"Issue has no field {unknown[0]!r}; allowed: {', '.join(fields)}")
        missing = [k for k in ("check", "severity", "category", "title", "description", "suggestion") if k not in data]
        if missing:
            raise RecordError(f"Issue.{missing[0]} is required")
        if data["severity"] not in SEVERITIES:
            raise RecordError(f"Issue.severity must be one of {', '.join(SEVERITIES)}, got {data['severity']!r}")
        value = data.get("metric_value")
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            value = decode_float("Issue", "metric_value", value)
        kwargs = {k: data[k] for k in fields if k in data}
        kwargs["metric_value"] = value
        kwargs["thresholds"] = dict(data.get("thresholds") or {})
        kwargs["evidence"] = dict(data.get("evidence") or {})
        kwargs["explains"] = tuple(data.get("explains") or ())
        return cls(**kwargs, key=data.get("layer"))  # the engine's key is not in the JSON; the layer stands in

    def fix_prompt(self, context: str | None = None) -> str:
        """A ready-to-paste request asking an LLM for a fix, with this run's numbers in it."""
        where = []
        if self.layer:
            where.append(f"layer `{self.layer}`")
        if self.first_seen_epoch is not None:
            span = (f"epoch {self.first_seen_epoch}" if self.first_seen_epoch == self.last_seen_epoch
                    else f"epochs {self.first_seen_epoch}-{self.last_seen_epoch}")
            where.append(span)
        if self.step is not None:
            where.append(f"step {self.step}")
        lines = [
            "I am training a PyTorch model and an automatic diagnostic flagged a problem.",
            "",
            f"Check: {self.check} ({self.severity}, {self.category})" + (f" at {', '.join(where)}" if where else ""),
            f"Finding: {self.title}. {self.description}",
        ]
        if self.metric_key is not None:
            lines.append(f"Metric: {self.metric_key} = {_fmt(self.metric_value)}")
        if self.thresholds:
            judged = ", ".join(f"{k}={_fmt(v)}" for k, v in self.thresholds.items())
            lines.append(f"Judged against: {judged}")
        lines.append(f"Current suggestion: {self.suggestion}")
        if context:
            lines += ["", "Context:", context]
        lines += [
            "",
            "Explain the most likely cause given these numbers, and give the smallest code change to my training",
            "loop or model that fixes it, as a short PyTorch snippet. Say how I can confirm the fix worked.",
        ]
        return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return f"{value:.6g}"
    return str(value)


def diverged(issues: Iterable[Issue]) -> bool:
    """The run's loss diverged at some point: a ``nan_loss``, or a critical ``loss_explosion`` (cleared or not)."""
    return any(i.check == "nan_loss" or (i.check == "loss_explosion" and i.severity == "critical") for i in issues)
