"""What readers of diagnoses need from the diagnostics driver, as interfaces (`typing.Protocol`).

`Diagnosed` is "wait until what is committed has been diagnosed": the OTel exporter waits on it before it builds
an epoch's spans, and every diagnostics query (`_reports`) before it reads issues, so a query right after an ack
sees the issues that data produced. `Diagnoser` adds what the Diagnose RPC and the Green-AI report need: a
diagnosis now, and a run's engine under the driver's lock. `_driver.DiagnosticsDriver` implements both; nothing
that reads diagnoses imports the driver itself."""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from atlas_diagnostics import Engine, IssueDelta


class Diagnosed(Protocol):
    def settle(self, run_id: str | None = None, timeout: float = 5.0) -> bool:
        """Wait (at most `timeout` seconds) until the data committed so far for `run_id` (None: every run) has
        been diagnosed and its issues stored; False when the time ran out first."""
        ...


class Diagnoser(Diagnosed, Protocol):
    def update_run(self, run_id: str, *, trigger: str = "data", now: float | None = None,
                   record: bool | None = None) -> IssueDelta:
        """Diagnose the run now (its new records), store the result; `record` a diagnostic run."""
        ...

    def engine(self, run_id: str) -> Engine:
        """The run's engine, up to date; use it only under `locked()`."""
        ...

    def locked(self) -> AbstractContextManager[Any]:
        """The lock every engine is used under."""
        ...
