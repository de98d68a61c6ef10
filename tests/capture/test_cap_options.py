"""One constructor signature: every adapter takes the `RunOptions` arguments, with the same names, kinds and
defaults, and checks them in one place (`atlas_callback._options`)."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from atlas_callback import (AtlasCallback, AtlasConfig, AtlasLogger, AtlasTracker, AtlasTransformersCallback,
                            Observer)
from atlas_callback._options import RunOptions

ADAPTERS = (AtlasCallback, AtlasLogger, AtlasTracker, Observer, AtlasTransformersCallback)
# what users call today (ARCHITECTURE.md): project, run_name, collector by position or keyword; the rest keyword-only
POSITIONAL = ("project", "run_name", "collector")
EXPECTED = [("project", "default"), ("run_name", None), ("collector", None), ("token", None), ("tls_ca", None),
            ("run_id", None), ("tags", None), ("on_critical", "warn"), ("pause_timeout", 3600.0), ("config", None)]


def _shared(adapter: type) -> list[inspect.Parameter]:
    return [p for name, p in inspect.signature(adapter).parameters.items() if name != "hyperparameters"]


def test_run_options_fields_are_the_documented_arguments() -> None:
    assert [(f.name, f.default) for f in dataclasses.fields(RunOptions)] == EXPECTED


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
def test_every_adapter_declares_the_run_options(adapter: type) -> None:
    params = _shared(adapter)
    assert [(p.name, p.default) for p in params] == EXPECTED
    assert [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD] == list(POSITIONAL)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params if p.name not in POSITIONAL)


def test_the_five_share_one_parameter_list() -> None:
    lists = {adapter.__name__: [(p.name, p.kind, p.default) for p in _shared(adapter)] for adapter in ADAPTERS}
    assert len({tuple(v) for v in lists.values()}) == 1, lists
    # Observer alone adds the run's hyperparameters (the others read them from their framework)
    assert [a.__name__ for a in ADAPTERS if "hyperparameters" in inspect.signature(a).parameters] == ["Observer"]


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
@pytest.mark.parametrize("kwargs, message", [
    ({"project": ""}, "`project`"),
    ({"run_name": 3}, "`run_name`"),
    ({"run_id": "not-a-uuid"}, "`run_id`"),
    ({"tags": "one"}, "`tags`"),
    ({"on_critical": "explode"}, "`on_critical`"),
    ({"pause_timeout": 0}, "`pause_timeout`"),
    ({"config": {"track_gpu": False}}, "`config`"),
    ({"token": "t\u00e9"}, "`token`"),
])
def test_every_adapter_refuses_the_same_bad_arguments(adapter: type, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adapter(**kwargs)


def test_options_are_handed_on_as_given() -> None:
    config = AtlasConfig(track_gpu=False)
    obs = Observer("p", "r", tags=["a", "b"], on_critical="pause", pause_timeout=5, config=config)
    core = obs._core
    assert (core.project, core.run_name, core.tags, core.on_critical, core.pause_timeout, core.config) == \
        ("p", "r", ["a", "b"], "pause", 5.0, config)
    logger = AtlasLogger("p", tags=("x",), run_id="5b0b7c3e-5c2f-4b9a-9d0e-2f1d8b7c6a51")
    assert logger._callback._core.tags == ["x"]
    assert logger._callback._core.run_id == "5b0b7c3e-5c2f-4b9a-9d0e-2f1d8b7c6a51"
