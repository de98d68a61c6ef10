"""Reliability: the collector SIGKILLed mid-run and restarted, or unreachable for the whole run."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

import lightning.pytorch as pl

from atlas_callback import AtlasCallback
from atlas_collector import Store
from conftest import BIN, atlas_json, cli_env, free_port, spool_files, start_collector_process
from _lit import TinyClassifier, loaders, trainer



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


class _KillAndRestart(pl.Callback):
    """SIGKILL the collector after epoch 2 (index 1) and start it again, same port, before epoch 4 (index 3)."""

    def __init__(self, db_url: str, listen: str, first, atlas: AtlasCallback) -> None:
        self.db_url, self.listen, self.collector, self.atlas = db_url, listen, first, atlas

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            # what was sent so far is acked (a kill between sends; the kill mid-stream is test_rel_acks's)
            assert self.atlas._core.transport.force_flush(20), "the records before the kill were never acked"
            self.collector.stop(signal.SIGKILL)
        if trainer.current_epoch == 2:
            self.collector = start_collector_process(self.db_url, listen=self.listen)


def test_collector_killed_mid_run_every_epoch_stored_once(tmp_path: pathlib.Path) -> None:
    port = free_port()
    listen = f"127.0.0.1:{port}"
    db = f"sqlite:///{tmp_path / 'killed.db'}"
    first = start_collector_process(db, listen=listen)
    callback = AtlasCallback(project="chaos", run_name="sigkill", collector=listen)
    chaos = _KillAndRestart(db, listen, first, callback)
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
        engine.dispose()
        store = Store(db)
        with store.connect() as conn:
            stored = [r["step"] for r in store.steps(conn, callback.run_id, limit=10_000)]
        store.close()
        steps = (len(stored), len(set(stored)))
        assert epochs == [0, 1, 2, 3, 4, 5]
        assert steps == (96, 96)  # 6 epochs x 16 steps, each once
        assert spool_files(pathlib.Path(os.environ["ATLAS_HOME"])) == []
    finally:
        chaos.collector.stop()
