"""`RunOptions`: the arguments every adapter takes to name, reach and steer its run, checked in one place.

The five adapters (AtlasCallback, AtlasLogger, AtlasTracker, Observer, AtlasTransformersCallback) declare these
arguments in their own signatures, so that a user's editor shows them, and hand them on with
`RunOptions.of(locals())`; `tests/capture/test_cap_options.py` asserts that every adapter's signature lists exactly
these parameters with these defaults. A bad argument raises ValueError when the adapter is created. What the
environment supplies (ATLAS_COLLECTOR, ATLAS_TOKEN, ATLAS_TLS_CA) is resolved later, by `RunCore`.
"""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ._config import ON_CRITICAL, AtlasConfig


@dataclass(frozen=True)
class RunOptions:
    """A run's identity (project, run name, id, tags), where it streams (collector, token, TLS CA), its policy on a
    critical issue (`on_critical`, `pause_timeout`) and what it captures (`config`). Validated when made."""

    project: str = "default"
    run_name: str | None = None
    collector: str | None = None
    token: str | None = None
    tls_ca: str | None = None
    run_id: str | None = None
    tags: Sequence[str] | None = None  # a tuple once made
    on_critical: str = "warn"
    pause_timeout: float = 3600.0
    config: AtlasConfig | None = None

    def __post_init__(self) -> None:
        _check_identity(self.project, self.run_name, self.run_id, self.on_critical, self.pause_timeout)
        object.__setattr__(self, "tags", _check_tags(self.tags))
        if self.config is not None and not isinstance(self.config, AtlasConfig):
            raise ValueError(f"`config` must be an AtlasConfig, got {type(self.config).__name__}")
        if self.token is not None and not isinstance(self.token, str):
            raise ValueError(f"`token` must be a string, got {type(self.token).__name__}")
        if self.token is not None and not (self.token.isascii() and self.token.isprintable()):
            raise ValueError("`token` must be a string of printable ASCII characters (it travels in a gRPC header), "
                             f"got one of type {type(self.token).__name__} with other characters")

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> "RunOptions":
        """The options among an adapter's arguments (its `locals()` in `__init__`: the parameters keep these
        names)."""
        return cls(**{f.name: arguments[f.name] for f in dataclasses.fields(cls)})

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _check_identity(project: Any, run_name: Any, run_id: Any, on_critical: Any, pause_timeout: Any) -> None:
    if not isinstance(project, str) or not project.strip() or len(project) > 200:
        raise ValueError(f"`project` must be a non-empty string of at most 200 characters, got {project!r}")
    if run_name is not None and (not isinstance(run_name, str) or len(run_name) > 200):
        raise ValueError(f"`run_name` must be a string of at most 200 characters, got {run_name!r}")
    if run_id is not None:
        try:
            uuid.UUID(str(run_id))
        except ValueError:
            raise ValueError(f"`run_id` must be a UUID (e.g. {uuid.uuid4()}), got {run_id!r}") from None
    if on_critical not in ON_CRITICAL:
        raise ValueError(f"`on_critical` must be one of 'warn', 'pause', 'stop', got {on_critical!r}")
    if isinstance(pause_timeout, bool) or not isinstance(pause_timeout, (int, float)) or not pause_timeout > 0:
        raise ValueError(f"`pause_timeout` must be a number of seconds > 0, got {pause_timeout!r}")


def _check_tags(tags: Any) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
        raise ValueError(f"`tags` must be a list of non-empty strings, got {tags!r}")
    too_long = [t for t in tags if len(t) > 200]
    if too_long:
        raise ValueError(f"`tags` must be at most 200 characters each, got one of {len(too_long[0])} "
                         f"({too_long[0][:40]!r}...)")
    return tuple(tags)
