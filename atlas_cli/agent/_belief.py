"""The agent's belief state about a run: kept per run in ATLAS_HOME/agent/, fed back with every question, revised
explicitly when new data contradicts it.

The model ends each answer with `<belief>{...json...}</belief>`; `merge` folds it into the stored state. A change of
`primary_issue` is a revision: `revision_count` goes up by one and the previous belief is kept in `history`."""
from __future__ import annotations

import datetime as _dt
import json
import os
import pathlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("critical", "warning", "info", "none")
GRADES = ("A", "B", "C", "D", "F")
_BLOCK = re.compile(r"<belief>\s*(.*?)\s*</belief>", re.S)


@dataclass
class Belief:
    primary_issue: str | None = None
    confidence: float | None = None  # 0..1
    revision_count: int = 0
    severity: str | None = None
    sustainability_grade: str | None = None
    key_observations: list[str] = field(default_factory=list)
    recommended_actions: list[str] = field(default_factory=list)
    updated_at: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier beliefs, oldest first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_prompt(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in ("history", "updated_at")}

    def summary(self) -> str:
        if self.primary_issue is None:
            return "belief: none yet"
        conf = "-" if self.confidence is None else f"{self.confidence:.0%}"
        parts = [f"belief: {self.primary_issue}", f"confidence {conf}", f"severity {self.severity or '-'}",
                 f"grade {self.sustainability_grade or '-'}", f"revision {self.revision_count}"]
        return " | ".join(parts)


def home() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ATLAS_HOME") or "~/.atlas").expanduser()


def path_for(run_id: str) -> pathlib.Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id or "no-run")
    return home() / "agent" / f"{safe}.json"


def load(run_id: str) -> Belief:
    p = path_for(run_id)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Belief()
    known = Belief.__dataclass_fields__
    return Belief(**{k: v for k, v in data.items() if k in known})


def save(run_id: str, belief: Belief) -> pathlib.Path:
    p = path_for(run_id)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(belief.to_dict(), indent=2), encoding="utf-8")
    tmp.replace(p)
    return p


def extract(text: str) -> tuple[str, dict[str, Any] | None]:
    """The answer without its `<belief>` block, and the block's JSON (None when absent or not JSON)."""
    found = _BLOCK.findall(text)
    clean = _BLOCK.sub("", text).strip()
    for raw in reversed(found):
        raw = raw.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if isinstance(data, dict):
            return clean, data
    return clean, None


def _text_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if v is not None][:10]
    return []


def merge(old: Belief, new: dict[str, Any]) -> tuple[Belief, bool]:
    """Fold the model's belief block into the stored belief. Returns the belief and whether it was a revision."""
    primary = new.get("primary_issue", old.primary_issue)
    primary = str(primary) if primary not in (None, "") else None
    confidence = new.get("confidence", old.confidence)
    try:
        confidence = None if confidence is None else min(1.0, max(0.0, float(confidence)))
    except (TypeError, ValueError):
        confidence = old.confidence
    severity = new.get("severity", old.severity)
    severity = severity if severity in SEVERITIES else old.severity
    grade = new.get("sustainability_grade", old.sustainability_grade)
    grade = grade.upper() if isinstance(grade, str) and grade.upper() in GRADES else old.sustainability_grade
    revised = old.primary_issue is not None and primary != old.primary_issue
    history = list(old.history)
    if revised:
        history.append({k: v for k, v in old.to_dict().items() if k != "history"})
    belief = Belief(
        primary_issue=primary, confidence=confidence,
        revision_count=old.revision_count + 1 if revised else old.revision_count,
        severity=severity, sustainability_grade=grade,
        key_observations=_text_list(new.get("key_observations", old.key_observations)),
        recommended_actions=_text_list(new.get("recommended_actions", old.recommended_actions)),
        updated_at=_dt.datetime.now(_dt.timezone.utc).isoformat().replace("+00:00", "Z"),
        history=history[-20:],
    )
    return belief, revised
