"""The incremental engine: feed records as they arrive, get the issues that appeared, changed or cleared.

Records of one update are processed in a canonical order (by epoch; within an epoch its steps and logs before the
epoch record, rank zero's epoch record before the other ranks'), so feeding a run in chunks that follow arrival
order gives the same issues as feeding it at once: :func:`diagnose` is exactly one :meth:`Engine.update`.

Each update costs O(records x checks x window): rules read bounded windows and running aggregates in
:class:`RunState`, never the whole history.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import (  # noqa: F401  (register rules)
    _rules_arch,
    _rules_bugs,
    _rules_layers,
    _rules_loss,
    _rules_lr,
    _rules_profiler,
    _rules_sustainability,
    _rules_system,
)
from ._architecture import Architecture, RunInfo
from ._exceptions import DiagnosticsError, UnknownCheckError
from ._issue import SEVERITIES, Finding, Issue
from ._records import EpochRecord, LogRecord, StepRecord
from ._registry import RULES, Rule
from ._state import Context, RunState
from ._ranking import rank_issues
from ._thresholds import Thresholds

__all__ = ["CRITICAL_CHECKS", "Engine", "IssueDelta", "diagnose"]

#: The only checks that may raise a critical issue (ARCHITECTURE.md: critical means "stop this run now"):
#: a non-finite loss, a loss that exploded and did not recover, non-finite or overflowing gradients, weights that
#: never change, and a whole layer dead while the loss has stopped improving. Any other check that tried would be a
#: bug in the rule; the engine refuses it.
CRITICAL_CHECKS = frozenset({"nan_loss", "loss_explosion", "exploding_gradients", "optimizer_not_stepping_model",
                             "dead_layers"})
_CLEARING = frozenset({"epoch", "arch", "time", "rank"})
_SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True)
class IssueDelta:
    """What one update changed.

    ``new``: issues that did not exist before, or were inactive and are active again. ``updated``: active issues
    seen again (their last epoch, numbers or severity moved). ``cleared``: issues that were active and are not
    (the engine keeps them, inactive, as history). ``escalated``: the updated issues whose severity rose to
    critical with this update (a loss explosion found while still below the starting loss, then past it).
    """

    new: tuple[Issue, ...] = ()
    updated: tuple[Issue, ...] = ()
    cleared: tuple[Issue, ...] = ()
    escalated: tuple[Issue, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.new or self.updated or self.cleared)

    @property
    def new_critical(self) -> tuple[Issue, ...]:
        """Active issues that became critical with this update, new or escalated: what ``on_critical`` acts on."""
        return tuple(i for i in self.new if i.active and i.severity == "critical") + self.escalated


class Engine:
    """Diagnoses one run incrementally.

    >>> engine = Engine(thresholds=Thresholds.from_mapping({"loss_explosion_ratio": 3.0}))
    >>> delta = engine.update(epochs=[EpochRecord(epoch=0, train_mean=1.0)])
    """

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        run_info: RunInfo | None = None,
        *,
        disabled_checks: Iterable[str] = (),
    ) -> None:
        if thresholds is not None and not isinstance(thresholds, Thresholds):
            raise TypeError(f"`thresholds` must be a Thresholds (see Thresholds.from_mapping), got {thresholds!r}")
        if run_info is not None and not isinstance(run_info, RunInfo):
            raise TypeError(f"`run_info` must be a RunInfo, got {run_info!r}")
        disabled = frozenset(disabled_checks)
        unknown = sorted(disabled - RULES.keys())
        if unknown:
            raise UnknownCheckError(
                f"unknown check {unknown[0]!r} in `disabled_checks`; known: {', '.join(sorted(RULES))}")
        self._state = RunState(thresholds or Thresholds(), run_info or RunInfo())
        self._issues: dict[tuple[str, str | None], Issue] = {}
        self._idents_by_check: dict[str, list[tuple[str, str | None]]] = {}
        self._by_trigger: dict[str, list[Rule]] = {}
        for r in RULES.values():
            if r.check in disabled:
                continue
            for trigger in r.triggers:
                self._by_trigger.setdefault(trigger, []).append(r)

    # --------------------------------------------------------------------------------------------- public ----
    @property
    def thresholds(self) -> Thresholds:
        return self._state.thresholds

    @property
    def run_info(self) -> RunInfo:
        return self._state.run_info

    @property
    def state(self) -> RunState:
        """The run's aggregates (read them; do not change them)."""
        return self._state

    @property
    def arch_type(self) -> str:
        return self._state.arch_type

    @property
    def architecture(self) -> Architecture | None:
        return self._state.architecture

    def update(
        self,
        epochs: Iterable[EpochRecord] = (),
        steps: Iterable[StepRecord] = (),
        logs: Iterable[LogRecord] = (),
        architecture: Architecture | None = None,
        now: float | None = None,
    ) -> IssueDelta:
        """Feed new records; returns the issues this update created, changed or cleared.

        ``now`` (seconds since the Unix epoch) is the caller's clock, used by time-based checks
        (``stalled_training``); the package never reads a clock itself.
        """
        before = dict(self._issues)
        events: list[tuple[tuple[float, int, int, int], str, Any]] = []
        for kind, phase, records in (("step", 0, steps), ("log", 0, logs), ("epoch", 1, epochs)):
            for rec in records:
                expected = {"step": StepRecord, "log": LogRecord, "epoch": EpochRecord}[kind]
                if not isinstance(rec, expected):
                    raise TypeError(f"`{kind}s` must hold {expected.__name__} objects, got {type(rec).__name__}")
                epoch = rec.epoch if rec.epoch is not None else math.inf
                events.append(((epoch, phase, rec.rank, len(events)), kind, rec))
        events.sort(key=lambda e: e[0])
        if architecture is not None:
            if not isinstance(architecture, Architecture):
                raise TypeError(f"`architecture` must be an Architecture, got {type(architecture).__name__}")
            if architecture != self._state.architecture:
                self._state.set_architecture(architecture)
                self._run("arch", Context(self._state, "arch"), self._current_epoch())
        for _, kind, rec in events:
            if kind == "step":
                self._on_step(rec)
            elif kind == "log":
                self._on_log(rec)
            else:
                self._on_epoch(rec)
        if now is not None:
            if not isinstance(now, (int, float)) or isinstance(now, bool) or not math.isfinite(now):
                raise TypeError(f"`now` must be a finite number of seconds, got {now!r}")
            self._run("time", Context(self._state, "time", now=float(now)), self._current_epoch())
        return self._delta(before)

    def issues(self, *, active_only: bool = False) -> tuple[Issue, ...]:
        """Every issue of the run, the most likely root cause first (:func:`rank_issues`: ranked over every issue,
        cleared ones included, each with ``rank`` and ``explains``), or only the active ones (their ranks kept)."""
        ranked = rank_issues(self._issues.values())
        return tuple(i for i in ranked if i.active or not active_only)

    # -------------------------------------------------------------------------------------------- private ----
    def _current_epoch(self) -> int | None:
        return self._state.current.epoch if self._state.current is not None else None

    def _on_step(self, step: StepRecord) -> None:
        self._state.observe_step(step)
        fired = self._run("step", Context(self._state, "step", step=step), step.epoch)
        self._state.after_step(step, fired)

    def _on_log(self, log: LogRecord) -> None:
        self._state.observe_log(log)
        epoch = log.epoch if log.epoch is not None else self._current_epoch()
        self._run("log", Context(self._state, "log", log=log), epoch)

    def _on_epoch(self, rec: EpochRecord) -> None:
        current = self._state.current
        if rec.rank == 0 and current is not None and rec.epoch <= current.epoch:
            return  # a replayed or late summary of an epoch already diagnosed: judged once, in order
        self._state.observe_rank_epoch(rec)
        if rec.rank == 0:
            self._state.observe_epoch(rec)
            self._run("epoch", Context(self._state, "epoch", epoch=rec), rec.epoch)
            self._state.after_epoch(rec)
        self._run("rank", Context(self._state, "rank", epoch=rec), rec.epoch)

    def _run(self, trigger: str, ctx: Context, epoch: int | None) -> list[str]:
        fired: list[str] = []
        for r in self._by_trigger.get(trigger, ()):
            if r.device and ctx.cpu_by_choice:
                findings: list[Finding] | None = []
            elif r.arch_types and self._state.arch_type not in r.arch_types:
                findings = []
            else:
                findings = r.evaluate(ctx)
            if findings is None:
                continue
            if findings:
                fired.append(r.check)
            self._apply(r, findings, epoch, clear=trigger in _CLEARING and not r.sticky)
        return fired

    def _apply(self, r: Rule, findings: list[Finding], epoch: int | None, *, clear: bool) -> None:
        seen: set[tuple[str, str | None]] = set()
        for f in findings:
            severity = f.severity or r.severity
            if severity == "critical" and r.check not in CRITICAL_CHECKS:
                raise DiagnosticsError(f"check {r.check!r} may not raise a critical issue")
            ident = (r.check, f.key if f.key is not None else f.layer)
            seen.add(ident)
            old = self._issues.get(ident)
            if old is None:
                self._idents_by_check.setdefault(r.check, []).append(ident)
            first = epoch if old is None or old.first_seen_epoch is None else old.first_seen_epoch
            last = epoch
            if old is not None and old.last_seen_epoch is not None and (epoch is None or old.last_seen_epoch > epoch):
                last = old.last_seen_epoch
            if old is not None and old.active and old.step is not None and f.step is not None \
                    and (severity == old.severity):
                # A step-located issue that stays active keeps where it was first found (the first NaN batch, the
                # first gradient spike): a diverged run repeats the finding on every later step, and reporting the
                # latest step would hide where the fault began. Only its last epoch moves.
                self._issues[ident] = dataclasses.replace(old, last_seen_epoch=last)
                continue
            self._issues[ident] = Issue(
                check=r.check, severity=severity, category=r.category, title=f.title, description=f.description,
                suggestion=f.suggestion, epoch=epoch, step=f.step, layer=f.layer, metric_key=f.metric_key,
                metric_value=f.metric_value, thresholds=dict(f.thresholds), first_seen_epoch=first,
                last_seen_epoch=last, active=True, key=ident[1],
                evidence=dict(f.evidence) if f.evidence else
                ({f.metric_key: f.metric_value} if f.metric_key and f.metric_value is not None else {}),
            )
        if not clear:
            return
        for ident in self._idents_by_check.get(r.check, ()):
            issue = self._issues[ident]
            if not issue.active or ident in seen:
                continue
            if epoch is not None and issue.last_seen_epoch is not None and issue.last_seen_epoch > epoch:
                continue  # found on a later epoch's steps; this epoch cannot clear it
            self._issues[ident] = dataclasses.replace(issue, active=False)

    def _delta(self, before: dict[tuple[str, str | None], Issue]) -> IssueDelta:
        new, updated, cleared, escalated = [], [], [], []
        for ident, issue in self._issues.items():
            old = before.get(ident)
            if old is None or (not old.active and issue.active):
                new.append(issue)
            elif old.active and not issue.active:
                cleared.append(issue)
            elif old != issue and issue.active:
                updated.append(issue)
                if issue.severity == "critical" and old.severity != "critical":
                    escalated.append(issue)
        return IssueDelta(tuple(sorted(new, key=_issue_order)), tuple(sorted(updated, key=_issue_order)),
                          tuple(sorted(cleared, key=_issue_order)), tuple(sorted(escalated, key=_issue_order)))


def _issue_order(issue: Issue) -> tuple[Any, ...]:
    first = issue.first_seen_epoch if issue.first_seen_epoch is not None else -1
    return (not issue.active, _SEVERITY_ORDER[issue.severity], first, issue.check, issue.key or "")


def diagnose(
    epochs: Iterable[EpochRecord] = (),
    steps: Iterable[StepRecord] = (),
    logs: Iterable[LogRecord] = (),
    architecture: Architecture | None = None,
    *,
    now: float | None = None,
    thresholds: Thresholds | None = None,
    run_info: RunInfo | None = None,
) -> tuple[Issue, ...]:
    """Diagnose a whole run at once: the issues of one :meth:`Engine.update` with every record."""
    engine = Engine(thresholds=thresholds, run_info=run_info)
    engine.update(epochs=epochs, steps=steps, logs=logs, architecture=architecture, now=now)
    return engine.issues()
