"""`atlas ask` without an LLM: the answer the diagnostics give on their own."""
from __future__ import annotations

from typing import Any

import click

NO_LLM = ("No LLM is configured, so this answer comes from the diagnostics alone. To ask an LLM, set "
          "OPENAI_BASE_URL (any OpenAI-compatible endpoint: vLLM, Ollama, hosted) and/or OPENAI_API_KEY, or "
          "ANTHROPIC_API_KEY; choose with ATLAS_LLM_PROVIDER=openai|anthropic and ATLAS_LLM_MODEL.")


def diagnostics_answer(obj: Any, run: dict[str, Any] | None, reason: str = NO_LLM) -> dict[str, Any]:
    """Health, top issues with their suggestions and the green summary of the run, as text and data."""
    from .._issues import get_green, get_health

    lines = [reason, ""]
    data: dict[str, Any] = {"run": run["id"] if run else None, "health": None, "green": None}
    if run is None:
        lines.append("There are no runs yet: train with AtlasCallback (or try `atlas demo`), then ask again.")
        return {"text": "\n".join(lines), **data}
    health = get_health(obj, run["id"])
    data["health"] = health
    counts = health["severity_counts"]
    score = health["health_score"]
    lines.append(f"Run {run['name']} ({run['id'][:8]}, {run['status']}, {run['epochs']} epochs): health "
                 f"{'-' if score is None else score}/100 with {counts['critical']} critical, {counts['warning']} "
                 f"warning and {counts['info']} info issues.")
    if health["top_issues"]:
        lines.append("")
        lines.append("Top issues:")
        for i in health["top_issues"]:
            span = "" if i["first_seen_epoch"] is None else f" (from epoch {i['first_seen_epoch']})"
            lines.append(f"- [{i['severity']}] {i['title']}{span}: {i['description']}")
            if i.get("suggestion"):
                lines.append(f"  fix: {i['suggestion']}")
    else:
        lines.append("No active issues: the run looks healthy so far.")
    try:
        green = get_green(obj, run["id"])
    except click.ClickException:
        green = None
    data["green"] = green
    if green:
        parts = [f"Green-AI grade {green.get('grade') or '-'}"]
        if green.get("wasted_epochs") is not None:
            parts.append(f"{green['wasted_epochs']} wasted epochs after the optimal stop at epoch "
                         f"{green.get('optimal_stop_epoch')}" if green.get("optimal_stop_epoch") is not None
                         else f"{green['wasted_epochs']} wasted epochs")
        if green.get("total_co2_kg") is not None:
            parts.append(f"{green['total_co2_kg'] * 1000:.3g} g CO2 (EUR {green.get('total_cost_eur') or 0:.2g} at "
                         "EU ETS prices)")
        lines.append("")
        lines.append("; ".join(parts) + ".")
    return {"text": "\n".join(lines), **data}
