"""The `on_critical` policy: what a run's newly critical issue does to the run.

The diagnostics driver finds the issues that became critical and hands them to the `Policy` it was given
(`Policy.on_critical`); the policy decides (`decide`: warn does nothing; pause or stop an open run, once), records
the command and delivers it through the command hub to the run's streams (`_fanout.send_command`, sender
"policy"), and writes the run's "paused"/"stopped" alert event. The server wiring builds the policy from the
collector's store, hub, alerts and stale timeout; the driver never calls back into the server."""
from __future__ import annotations

import logging
from typing import Sequence

from atlas_diagnostics import Issue

from ._alerts import Alerts
from atlas_proto.convert import ENDED_STATUSES
from ._exceptions import RunEnded
from ._fanout import CommandHub, send_command
from ._store import Store

log = logging.getLogger(__name__)


def decide(on_critical: str, status: str) -> str | None:
    """The command ("pause" or "stop") a new critical issue sends to a run in `status`; None for none.

    A run the trainer's own fast path already stopped (non-finite loss) still gets its command recorded, as for any
    other critical issue (ARCHITECTURE.md); other ended runs get none, and a paused run is not paused again."""
    if on_critical not in ("pause", "stop"):
        return None
    if status in ENDED_STATUSES and status != "stopped":
        return None
    if on_critical == "pause" and status == "paused":
        return None
    return on_critical


def reason(issue: Issue) -> str:
    """The command's reason, as the trainer logs it and `atlas runs` shows it: "check: title — description"."""
    text = f"{issue.check}: {issue.title}"
    if issue.description:
        text += f" — {issue.description}"
    return text


class Policy:
    """Applies `on_critical` for the diagnostics driver (its thread). Thread-safe: it keeps no state."""

    def __init__(self, store: Store, hub: CommandHub, alerts: Alerts | None = None, *, live_after: float) -> None:
        self._store = store
        self._hub = hub
        self._alerts = alerts
        self._live_after = live_after  # a run another replica streams counts as reached while seen this recently

    def on_critical(self, run_id: str, on_critical: str, status: str, critical: Sequence[Issue]) -> str | None:
        """Issues of the run that just became critical (the first one names the reason): send what `decide`
        says. Returns the command kind sent, or None. Never raises: the issues are stored already, and a command
        that failed is logged (it is not retried)."""
        kind = decide(on_critical, status) if critical else None
        if kind is None:
            return None
        first = critical[0]
        try:
            sent = self._send(run_id, kind, reason(first), first.check)
        except Exception:  # noqa: BLE001 - the diagnosis goes on; the failure is in the log
            log.exception("run=%s on_critical=%s command failed", run_id, on_critical)
            return None
        return kind if sent else None

    def _send(self, run_id: str, kind: str, why: str, check: str) -> bool:
        try:
            send_command(self._store, self._hub, run_id, kind, reason=why, sender="policy", issue_check=check,
                         live_after=self._live_after, record_if_ended=True)
        except RunEnded:  # ended meanwhile (and not by the fast path): nothing to pause or stop
            return False
        if self._alerts is not None and self._alerts.enabled:
            with self._store.begin() as conn:
                self._alerts.run_event(conn, run_id, "stopped" if kind == "stop" else "paused", why, check=check)
            self._alerts.wake()
        return True
