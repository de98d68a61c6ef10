"""Waiting in tests: on a condition, never on the clock alone.

`wait_for` returns as soon as the condition holds (and fails with what it waited for when the timeout passes);
`within` is the same answer as a bool (for threads, where a raise would be lost); `holds_for` is the one
deliberate time window, for negative checks — "nothing more arrives", "the run really stays paused" — where only
waiting can show that something does not happen."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "the condition",
             interval: float = 0.02) -> Any:
    """The predicate's first truthy value; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def within(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.01) -> bool:
    """Whether the predicate became true within `timeout` seconds."""
    try:
        wait_for(predicate, timeout, interval=interval)
    except AssertionError:
        return False
    return True


def holds_for(predicate: Callable[[], Any], seconds: float, what: str, interval: float = 0.05) -> None:
    """Assert the predicate stays true for `seconds` (it is checked at the start and every `interval`)."""
    deadline = time.monotonic() + seconds
    while True:
        assert predicate(), f"{what}: no longer true after {seconds - (deadline - time.monotonic()):.2f} s"
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
