"""Atlas diagnostics: pure-Python rules over training telemetry. Typed records in, issues out.

No torch, no I/O, no clock, no protobuf: the collector converts its messages into the records below, feeds them to an
:class:`Engine` as they arrive and acts on the :class:`IssueDelta` it returns; an exported run can be diagnosed at
once with :func:`diagnose`.

    >>> from atlas_diagnostics import Engine, EpochRecord
    >>> engine = Engine()
    >>> delta = engine.update(epochs=[EpochRecord(epoch=0, train_mean=2.3), EpochRecord(epoch=1, train_mean=9.1)])
    >>> [i.check for i in delta.new]
    ['loss_explosion']
"""

from __future__ import annotations

from ._architecture import Architecture, ArchLayer, ArchNode, RunInfo, detect_arch_type
from ._engine import CRITICAL_CHECKS, Engine, IssueDelta, diagnose
from ._exceptions import DiagnosticsError, RecordError, ThresholdError, UnknownCheckError
from ._green import CO2_FACTORS_KG, DEFAULT_EUR_PER_TONNE, SustainabilityInsight, green_grade, green_insight
from ._issue import CATEGORIES, SEVERITIES, SEVERITY_WEIGHT, Issue
from ._records import (
    CarbonRecord,
    CorrelationRecord,
    EpochRecord,
    GpuRecord,
    LayerHealthRecord,
    LayerTime,
    LogRecord,
    ProfilerOp,
    ProfilerRecord,
    StepRecord,
)
from ._ranking import CAUSES, rank_issues
from ._registry import RULES
from ._results import (
    category_counts,
    epoch_trends,
    health_report,
    health_score,
    layer_highlights,
    run_report,
    severity_counts,
)
from ._thresholds import Thresholds

#: Every registered check id, sorted.
CHECK_IDS: tuple[str, ...] = tuple(sorted(RULES))

__all__ = [
    "CATEGORIES",
    "CAUSES",
    "CHECK_IDS",
    "CO2_FACTORS_KG",
    "CRITICAL_CHECKS",
    "DEFAULT_EUR_PER_TONNE",
    "SEVERITIES",
    "SEVERITY_WEIGHT",
    "ArchLayer",
    "ArchNode",
    "Architecture",
    "CarbonRecord",
    "CorrelationRecord",
    "DiagnosticsError",
    "Engine",
    "EpochRecord",
    "GpuRecord",
    "Issue",
    "IssueDelta",
    "LayerHealthRecord",
    "LayerTime",
    "LogRecord",
    "ProfilerOp",
    "ProfilerRecord",
    "RecordError",
    "RunInfo",
    "StepRecord",
    "SustainabilityInsight",
    "ThresholdError",
    "Thresholds",
    "UnknownCheckError",
    "category_counts",
    "rank_issues",
    "check_info",
    "detect_arch_type",
    "diagnose",
    "epoch_trends",
    "green_grade",
    "green_insight",
    "health_report",
    "health_score",
    "layer_highlights",
    "run_report",
    "severity_counts",
]


def check_info(check: str) -> dict[str, object]:
    """The registered default severity, category and triggers of a check id (for docs and the CLI)."""
    from ._registry import get_rule

    r = get_rule(check)
    return {"check": r.check, "severity": r.severity, "category": r.category, "triggers": list(r.triggers),
            "arch_types": list(r.arch_types), "device": r.device, "sticky": r.sticky}
