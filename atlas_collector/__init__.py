"""The Atlas collector daemon: ingest, store, query service.

    from atlas_collector import run_server
    with run_server(db="sqlite:///runs.db") as collector:
        print(collector.address)
"""
from __future__ import annotations

from ._config import CollectorConfig, load_config
from ._exceptions import CollectorError, ConfigError
from ._main import main
from ._server import Collector, RunningCollector, run_server
from ._store import Store

__all__ = [
    "Collector",
    "CollectorConfig",
    "CollectorError",
    "ConfigError",
    "RunningCollector",
    "Store",
    "load_config",
    "main",
    "run_server",
]
