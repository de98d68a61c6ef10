"""Nothing lost: the spool, offline runs, `atlas sync`, and a collector killed mid-run."""
from __future__ import annotations

import os
import pathlib

import pytest

from atlas_callback import AtlasCallback
from conftest import atlas_json, spool_files
from _lit import TinyClassifier, loaders, trainer



def test_offline_mode_only_spools(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, collector_process) -> None:
    monkeypatch.setenv("ATLAS_MODE", "offline")
    callback = AtlasCallback(project="offline", collector=collector_process.address)
    trainer([callback], max_epochs=1).fit(TinyClassifier(), *loaders())
    assert atlas_json(collector_process.address, "runs") == []
    assert len(spool_files(pathlib.Path(os.environ["ATLAS_HOME"]))) == 1


def test_disabled_mode_does_nothing(monkeypatch: pytest.MonkeyPatch, collector_process) -> None:
    monkeypatch.setenv("ATLAS_MODE", "disabled")
    callback = AtlasCallback(project="off", collector=collector_process.address)
    trainer([callback], max_epochs=1).fit(TinyClassifier(), *loaders())
    assert callback.run_id is None
    assert atlas_json(collector_process.address, "runs") == []
    assert spool_files(pathlib.Path(os.environ["ATLAS_HOME"])) == []


def test_full_spool_warns_once_and_training_goes_on(monkeypatch, caplog) -> None:
    import logging

    from atlas_callback import AtlasConfig, Observer

    monkeypatch.setenv("ATLAS_MODE", "offline")
    with caplog.at_level(logging.WARNING, logger="atlas_callback"):
        with Observer(project="offline", run_name="full", config=AtlasConfig(
                spool_max_mb=1, track_carbon=False, track_gpu=False, step_flush_seconds=0.01)) as obs:
            metrics = {f"metric_{i}": float(i) for i in range(12)}
            for step in range(12_000):
                obs.step(float(step), batch_size=8, metrics=metrics)
            obs.flush()
    full = [r for r in caplog.records if "is full" in r.getMessage()]
    assert len(full) == 1
    spool = next((pathlib.Path(os.environ["ATLAS_HOME"]) / "spool" / obs.run_id).glob("*.log"))
    assert spool.stat().st_size <= 2**20


def test_a_spool_path_that_cannot_be_created_warns_once_and_the_run_still_arrives(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        collector_process) -> None:
    import logging

    home = tmp_path / "home"
    home.write_text("a file, not a directory")  # CI runs as root: a read-only directory would not stop it
    monkeypatch.setenv("ATLAS_HOME", str(home))
    callback = AtlasCallback(project="nospool", collector=collector_process.address)
    with caplog.at_level(logging.WARNING, logger="atlas_callback"):
        trainer([callback], max_epochs=2).fit(TinyClassifier(), *loaders())
    spool_warnings = [r.getMessage() for r in caplog.records if "cannot open the spool" in r.getMessage()]
    assert len(spool_warnings) == 1 and str(home) in spool_warnings[0]
    assert "records live in memory only" in spool_warnings[0]
    run = atlas_json(collector_process.address, "runs", "show", callback.run_id)
    assert run["status"] == "completed" and run["epochs"] == 2  # nothing lost while the collector is up
