"""Atlas inside the trainer: capture telemetry and stream it to an Atlas collector.

    from atlas_callback import AtlasCallback
    trainer = Trainer(callbacks=[AtlasCallback(project="mnist", run_name="baseline")])

Names resolve lazily (PEP 562), so torch-free modules of this package (the spool reader used by
`atlas sync`) import without torch or Lightning.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["AtlasCallback", "AtlasConfig", "AtlasLogger", "AtlasTracker", "AtlasTransformersCallback", "Observer",
           "wandb_compat"]

_WHERE = {
    "AtlasCallback": "._lightning",
    "AtlasConfig": "._config",
    "AtlasTracker": "._tracker",
    "Observer": "._observer",
    "AtlasLogger": "._logger",
    "AtlasTransformersCallback": "._transformers",  # imports neither transformers nor torch until used
}

if TYPE_CHECKING:
    from ._config import AtlasConfig
    from ._lightning import AtlasCallback
    from ._observer import Observer
    from ._tracker import AtlasTracker
    from ._logger import AtlasLogger
    from ._transformers import AtlasTransformersCallback
    from . import wandb_compat


def __getattr__(name: str) -> Any:
    if name == "wandb_compat":  # a module: `from atlas_callback import wandb_compat as wandb`
        return importlib.import_module(".wandb_compat", __name__)
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
