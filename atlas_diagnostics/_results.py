"""Summaries of a run's issues: health score, counts, epoch trends, layer highlights, the DiagnosticRunOut-like
report (diagnostics guide section 9) and the ``atlas health --json`` object."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._ranking import rank_issues
from ._green import green_insight
from ._issue import CATEGORIES, SEVERITIES, SEVERITY_WEIGHT, Issue, diverged

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["category_counts", "epoch_trends", "health_report", "health_score", "layer_highlights", "run_report",
           "severity_counts"]


def _active(issues: Iterable[Issue]) -> list[Issue]:
    return [i for i in issues if i.active]


#: The most a run can score once it diverged (a non-finite loss, or a loss explosion that went back past where the
#: run started: the critical kind), active or since cleared; once it failed (crashed); once it was stopped with a
#: critical issue open.
DIVERGED_CAP, FAILED_CAP, STOPPED_CAP = 30, 50, 60


def health_score(issues: Iterable[Issue], status: str | None = None) -> int:
    """100 - 20 per critical - 7 per warning - 2 per info over the active issues, floor 0; then at most
    ``DIVERGED_CAP`` (30) if the loss ever diverged, ``FAILED_CAP`` (50) if the run failed (``status`` "failed"),
    ``STOPPED_CAP`` (60) if it was stopped with a critical issue open. A number that contradicts what happened
    (a crashed run at 91, a run whose loss went to inf at 78) would mislead.

    An issue that persists across epochs is one :class:`Issue`, so it counts once.
    """
    issues = list(issues)
    score = max(0, 100 - sum(SEVERITY_WEIGHT[i.severity] for i in _active(issues)))
    if diverged(issues):
        score = min(score, DIVERGED_CAP)
    if status == "failed":
        score = min(score, FAILED_CAP)
    if status == "stopped" and any(i.active and i.severity == "critical" for i in issues):
        score = min(score, STOPPED_CAP)
    return score


def severity_counts(issues: Iterable[Issue]) -> dict[str, int]:
    """Active issues per severity (every severity present, zero when none)."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for i in _active(issues):
        counts[i.severity] += 1
    return counts


def category_counts(issues: Iterable[Issue]) -> dict[str, int]:
    """Active issues per category (only categories that have some)."""
    counts = dict.fromkeys(CATEGORIES, 0)
    for i in _active(issues):
        counts[i.category] += 1
    return {k: v for k, v in counts.items() if v}


def epoch_trends(issues: Iterable[Issue]) -> list[dict[str, Any]]:
    """Per epoch in which some issue was first seen: the checks first seen there and their severity counts."""
    by_epoch: dict[int, list[Issue]] = {}
    for i in issues:
        if i.first_seen_epoch is not None:
            by_epoch.setdefault(i.first_seen_epoch, []).append(i)
    out = []
    for epoch in sorted(by_epoch):
        group = by_epoch[epoch]
        counts = dict.fromkeys(SEVERITIES, 0)
        for i in group:
            counts[i.severity] += 1
        out.append({"epoch": epoch, "issue_count": len(group), "severity_counts": counts,
                    "checks": sorted({i.check for i in group})})
    return out


def layer_highlights(issues: Iterable[Issue], layer_types: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Active issues grouped by layer, most troubled layer first.

    Each entry: ``layer``, ``layer_type`` (when known), ``severity_score`` (sum of the issues' weights),
    ``checks`` (sorted ids) and ``issues`` (their dicts).
    """
    groups: dict[str, list[Issue]] = {}
    for i in _active(issues):
        if i.layer:
            groups.setdefault(i.layer, []).append(i)
    out: list[dict[str, Any]] = []
    for layer, group in groups.items():
        out.append({
            "layer": layer,
            "layer_type": (layer_types or {}).get(layer),
            "severity_score": sum(SEVERITY_WEIGHT[i.severity] for i in group),
            "checks": sorted({i.check for i in group}),
            "issues": [i.to_dict() for i in group],
        })
    out.sort(key=lambda h: (-int(h["severity_score"]), str(h["layer"])))
    return out


def health_report(issues: Sequence[Issue], *, top: int = 5, status: str | None = None) -> dict[str, Any]:
    """The object of ``atlas health --json`` without ``run``: health_score (:func:`health_score`, with the run's
    ``status``), severity_counts, top_issues, top_layers (``layer``, ``severity_score``, ``checks``)."""
    active = [i for i in rank_issues(issues) if i.active]  # root cause first, as `atlas issues`
    return {
        "health_score": health_score(issues, status),
        "severity_counts": severity_counts(issues),
        "top_issues": [i.to_dict() for i in active[:top]],
        "top_layers": [{k: h[k] for k in ("layer", "severity_score", "checks")}
                       for h in layer_highlights(issues)[:top]],
    }


def run_report(engine: Engine, *, eur_per_tonne: float | None = None) -> dict[str, Any]:
    """A DiagnosticRunOut-like summary of the engine's run (without the store's id and timestamps)."""
    issues = engine.issues()
    arch = engine.architecture
    types = {layer.name: layer.type for layer in arch.layers} if arch is not None else {}
    if arch is not None:
        types.update({n.id: n.type for n in arch.nodes})
    kwargs = {} if eur_per_tonne is None else {"eur_per_tonne": eur_per_tonne}
    return {
        "health_score": health_score(issues),
        "issue_count": len(_active(issues)),
        "arch_type": engine.arch_type,
        "summary_json": {"severity_breakdown": severity_counts(issues), "category_breakdown": category_counts(issues)},
        "issues": [i.to_dict() for i in issues],
        "epoch_trends": epoch_trends(issues),
        "session_level_issues": [i.to_dict() for i in issues if i.first_seen_epoch is None],
        "layer_highlights": layer_highlights(issues, types),
        "sustainability": green_insight(engine, **kwargs).to_dict(),
    }
