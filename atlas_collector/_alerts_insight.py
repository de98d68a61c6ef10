"""The insight of an issue that opened at warning or above: a short explanation for the notification and the
issue's `insight` field.

Without an LLM, `summary` writes it from the issue's own evidence (deterministic). With an LLM configured for the
collector (the environment `atlas ask` reads: OPENAI_BASE_URL / OPENAI_API_KEY, ANTHROPIC_API_KEY,
ATLAS_LLM_PROVIDER, ATLAS_LLM_MODEL), `llm_insight` asks it once per issue, grounded in the run's recent epochs and
its other open issues, bounded by a timeout and a token budget; any failure keeps the summary."""
from __future__ import annotations

import json
import logging
from typing import Any, Mapping

import sqlalchemy as sa

from . import _schema as s

log = logging.getLogger(__name__)

SYSTEM = ("You are Atlas, a PyTorch training diagnostics assistant. In at most three short sentences, explain to the "
          "engineer what most likely happened in this run and the first thing to try. Use only the numbers given; "
          "do not invent any. Plain text, no markdown.")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)[:120]
    return str(value)


def summary(issue: Any) -> str:
    """A deterministic one-paragraph insight from the issue's title, evidence and fix."""
    where = []
    if issue.layer:
        where.append(f"layer {issue.layer}")
    if issue.epoch is not None:
        where.append(f"epoch {issue.epoch}")
    if issue.step is not None:
        where.append(f"step {issue.step}")
    head = f"{issue.title}" + (f" ({', '.join(where)})" if where else "") + "."
    facts = []
    if issue.metric_key is not None and issue.metric_value is not None:
        facts.append(f"{issue.metric_key} = {_fmt(issue.metric_value)}")
    for key, value in list((issue.evidence or {}).items())[:5]:
        facts.append(f"{key} = {_fmt(value)}")
    if issue.thresholds:
        facts.append("judged against " + ", ".join(f"{k} = {_fmt(v)}" for k, v in list(issue.thresholds.items())[:3]))
    text = head
    if facts:
        text += " Evidence: " + "; ".join(facts) + "."
    if issue.suggestion:
        text += f" First step: {issue.suggestion}"
    return text[:1500]


def llm_configured() -> bool:
    import os

    env = os.environ
    return bool(env.get("OPENAI_BASE_URL") or env.get("OPENAI_API_KEY") or env.get("ANTHROPIC_API_KEY"))


def context(conn: Any, run_id: str, issue_id: int | None, payload: Mapping[str, Any]) -> str:
    """What the model may ground its answer in: the issue, the run's last epochs, its other open issues."""
    e, i = s.epochs.c, s.issues.c
    epochs = conn.execute(sa.select(e.epoch, e.loss_mean, e.val_loss, e.samples_per_sec)
                          .where(e.run_id == run_id, e.rank == 0).order_by(e.epoch.desc()).limit(8)).all()
    others = conn.execute(sa.select(i.check_id, i.severity, i.title)
                          .where(i.run_id == run_id, i.active.is_(True), i.id != (issue_id or -1)).limit(8)).all()
    lines = [f"Issue: {payload.get('check')} ({payload.get('severity')}): {payload.get('title')}",
             f"Explanation: {payload.get('explanation')}",
             f"Evidence: {json.dumps(payload.get('evidence') or {}, default=str)[:1500]}",
             f"Suggested fix: {payload.get('fix')}"]
    run = payload.get("run") or {}
    lines.append(f"Run: {run.get('name')} in project {run.get('project')}, status {run.get('status')}")
    if epochs:
        lines.append("Recent epochs (epoch, train loss mean, val loss, samples/s): " + "; ".join(
            f"{r.epoch}, {_fmt(r.loss_mean)}, {_fmt(r.val_loss)}, {_fmt(r.samples_per_sec)}" for r in reversed(epochs)))
    if others:
        lines.append("Other open issues: " + "; ".join(f"{r.check_id} ({r.severity}): {r.title}" for r in others))
    return "\n".join(lines)[:6000]


def llm_insight(prompt: str, *, timeout_s: float, max_tokens: int) -> str | None:
    """Ask the first configured provider (the same discovery as `atlas ask`), non-streaming, bounded. None when
    none answers."""
    try:
        from atlas_cli.agent._providers import configured

        providers = configured()
    except Exception as exc:  # noqa: BLE001 - a bad LLM environment never stops an alert
        log.warning("alerts: no LLM insight (%s)", str(exc).splitlines()[0][:200] if str(exc) else exc)
        return None
    for provider in providers[:2]:
        try:
            if provider.name == "openai":
                import openai

                client = openai.OpenAI(base_url=provider.base_url or None, api_key=provider.api_key or "EMPTY",
                                       max_retries=0, timeout=timeout_s)
                stream = client.chat.completions.create(
                    model=provider.model, max_tokens=max_tokens, temperature=0.2, stream=True,
                    messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}])
                parts = []
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta is not None and chunk.choices[0].delta.content:
                        parts.append(chunk.choices[0].delta.content)
                text = "".join(parts)
            else:
                import anthropic

                client = anthropic.Anthropic(api_key=provider.api_key, base_url=provider.base_url or None,
                                             max_retries=0, timeout=timeout_s)
                with client.messages.stream(model=provider.model, max_tokens=max_tokens, system=SYSTEM,
                                            messages=[{"role": "user", "content": prompt}]) as stream:
                    text = "".join(event.text for event in stream if event.type == "text")
        except Exception as exc:  # noqa: BLE001 - try the next provider, then keep the summary
            log.warning("alerts: LLM insight from %s failed: %s: %s", provider.label(), type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "")
            continue
        text = text.strip()
        if text:
            return text[:2000]
    return None
