"""Nothing lost: the spool, offline runs, `atlas sync`, and a collector killed mid-run."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import lightning.pytorch as pl
import pytest

from atlas_callback import AtlasCallback
from conftest import BIN, cli_env, start_collector_process
from _lit import TinyClassifier, loaders, trainer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def atlas_json(address: str, *args: str) -> object:
    done = subprocess.run([str(BIN / "atlas"), "--collector", address, *args, "--json"], capture_output=True,
                          text=True, env=cli_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def spool_files(home: pathlib.Path) -> list[pathlib.Path]:
    return sorted((home / "spool").rglob("*.log")) if (home / "spool").exists() else []


def test_no_collector_training_completes_and_sync_completes_the_run(tmp_path: pathlib.Path) -> None:
    home = pathlib.Path(os.environ["ATLAS_HOME"])
    port = free_port()
    callback = AtlasCallback(project="offline", run_name="nobody-home", collector=f"127.0.0.1:{port}")
    t = trainer([callback], max_epochs=2)
    train, val = loaders()
    t0 = time.monotonic()
    t.fit(TinyClassifier(), train, val)
    assert time.monotonic() - t0 < 60
    assert t.current_epoch == 2
    assert len(spool_files(home)) == 1, "the run's records must be spooled"

    collector = start_collector_process(f"sqlite:///{tmp_path / 'late.db'}")
    try:
        done = subprocess.run([str(BIN / "atlas"), "--collector", collector.address, "sync"], capture_output=True,
                              text=True, env=cli_env(ATLAS_HOME=str(home)), timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"synced run {callback.run_id}" in done.stdout
        assert spool_files(home) == []
        run = atlas_json(collector.address, "runs", "show", callback.run_id)
        assert (run["status"], run["epochs"], run["steps"]) == ("completed", 2, 32)
        assert "val_loss" in run["final_metrics"]
        # A second sync has nothing left to send.
        again = subprocess.run([str(BIN / "atlas"), "--collector", collector.address, "sync"], capture_output=True,
                               text=True, env=cli_env(ATLAS_HOME=str(home)), timeout=60)
        assert again.returncode == 0 and "nothing to sync" in again.stdout
    finally:
        collector.stop()


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


class _KillAndRestart(pl.Callback):
    """SIGKILL the collector after epoch 2 (index 1) and start it again, same port, before epoch 4 (index 3)."""

    def __init__(self, db_url: str, listen: str, first) -> None:
        self.db_url, self.listen, self.collector = db_url, listen, first

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            time.sleep(0.5)  # let the epoch summary reach the collector first (it is acked by then usually)
            self.collector.stop(signal.SIGKILL)
        if trainer.current_epoch == 2:
            self.collector = start_collector_process(self.db_url, listen=self.listen)


def test_collector_killed_mid_run_every_epoch_stored_once(tmp_path: pathlib.Path) -> None:
    port = free_port()
    listen = f"127.0.0.1:{port}"
    db = f"sqlite:///{tmp_path / 'killed.db'}"
    first = start_collector_process(db, listen=listen)
    chaos = _KillAndRestart(db, listen, first)
    callback = AtlasCallback(project="chaos", run_name="sigkill", collector=listen)
    t = trainer([chaos, callback], max_epochs=6)
    t.fit(TinyClassifier(), *loaders())
    try:
        run = atlas_json(listen, "runs", "show", callback.run_id)
        assert (run["status"], run["epochs"]) == ("completed", 6)
        import sqlalchemy as sa

        engine = sa.create_engine(db)
        with engine.connect() as conn:
            epochs = [r[0] for r in conn.execute(sa.text(
                "SELECT epoch FROM epochs WHERE run_id = :r ORDER BY epoch"), {"r": callback.run_id})]
            steps = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT step) FROM step_samples WHERE run_id = :r"),
                                 {"r": callback.run_id}).one()
        engine.dispose()
        assert epochs == [0, 1, 2, 3, 4, 5]
        assert steps == (96, 96)  # 6 epochs x 16 steps, each once
        assert spool_files(pathlib.Path(os.environ["ATLAS_HOME"])) == []
    finally:
        chaos.collector.stop()


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
