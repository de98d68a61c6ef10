"""The rule registry: every check registers one rule here through :func:`rule`, keyed by its stable id."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._exceptions import UnknownCheckError
from ._issue import CATEGORIES, SEVERITIES, Finding

if TYPE_CHECKING:
    from ._state import Context

__all__ = ["RULES", "Rule", "get_rule", "rule"]

TRIGGERS = ("epoch", "step", "log", "arch", "time", "rank")

Predicate = Callable[["Context"], "Iterable[Finding] | None"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One check: its id, default severity, category, when it runs, and its predicate.

    The predicate is pure: it reads the run's state through the context and returns findings, an empty list
    (the condition is absent now: active issues of this check clear), or ``None`` (no verdict this time: nothing
    changes). ``sticky`` rules never clear (error logs happened; they do not un-happen).
    """

    check: str
    severity: str
    category: str
    triggers: tuple[str, ...]
    predicate: Predicate
    sticky: bool = False
    device: bool = False  # a device check: silent on CPU-only-by-choice runs
    arch_types: tuple[str, ...] = ()  # architecture rules: the types they apply to

    def evaluate(self, ctx: Context) -> list[Finding] | None:
        out = self.predicate(ctx)
        return None if out is None else list(out)


RULES: dict[str, Rule] = {}


def rule(
    check: str,
    *,
    severity: str,
    category: str,
    on: tuple[str, ...] = ("epoch",),
    sticky: bool = False,
    device: bool = False,
    arch_types: tuple[str, ...] = (),
) -> Callable[[Predicate], Predicate]:
    """Register the decorated predicate as the rule of ``check``."""
    if severity not in SEVERITIES:
        raise ValueError(f"`severity` must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    if category not in CATEGORIES:
        raise ValueError(f"`category` must be one of {', '.join(CATEGORIES)}, got {category!r}")
    bad = [t for t in on if t not in TRIGGERS]
    if bad:
        raise ValueError(f"`on` must hold only {', '.join(TRIGGERS)}, got {bad[0]!r}")

    def register(fn: Predicate) -> Predicate:
        if check in RULES:
            raise ValueError(f"check {check!r} is registered twice")
        RULES[check] = Rule(check, severity, category, tuple(on), fn, sticky, device, arch_types)
        return fn

    return register


def get_rule(check: str) -> Rule:
    try:
        return RULES[check]
    except KeyError:
        raise UnknownCheckError(f"unknown check {check!r}; known: {', '.join(sorted(RULES))}") from None
