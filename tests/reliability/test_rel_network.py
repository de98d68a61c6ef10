"""Reliability: a network that stalls, a trainer killed outright, twenty trainers at once."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time

import lightning.pytorch as pl

from atlas_callback import AtlasCallback, AtlasConfig, Observer
from atlas_collector import run_server
from atlas_proto.v1 import telemetry_pb2 as tpb
from conftest import BIN, cli_env, start_collector_process
from _lit import TinyClassifier, loaders, trainer
from _proxy import StallingProxy
from _query import Query
from _wait import wait_for

QUIET = AtlasConfig(track_carbon=False, track_layer_health=False)


class StallBetween(pl.Callback):
    """Stall the proxy during epoch 1 for `seconds`, recording every step's wall time meanwhile."""

    def __init__(self, proxy: StallingProxy, seconds: float) -> None:
        self.proxy, self.seconds = proxy, seconds
        self.stalled_at: float | None = None
        self.step_times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        self.step_times.append(now)
        if trainer.current_epoch == 1 and batch_idx == 0:
            self.proxy.stall()
            self.stalled_at = now
        if self.stalled_at is not None and now - self.stalled_at < self.seconds:
            time.sleep(0.15)  # keep the run going through the stall for `seconds`
        elif self.stalled_at is not None and not self.proxy.forwarding.is_set():
            self.proxy.resume()


def test_network_stall_never_blocks_training_and_data_arrives_after(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'stall.db'}") as collector:
        host, port = collector.address.rsplit(":", 1)
        proxy = StallingProxy(host, int(port))
        try:
            stall = StallBetween(proxy, seconds=3.0)
            atlas = AtlasCallback(project="rel", run_name="stall", collector=proxy.address, config=QUIET)
            t = trainer([stall, atlas], max_epochs=3)
            t.fit(TinyClassifier(), *loaders())
            gaps = [b - a for a, b in zip(stall.step_times, stall.step_times[1:])]
            assert max(gaps) < 2.0, f"a step waited {max(gaps):.1f}s while the network was stalled"
            query = Query(collector.address)
            wait_for(lambda: query.run(atlas.run_id).summary.epochs >= 3, 30, "the run's 3 epochs")
            detail = query.run(atlas.run_id)
            assert (detail.summary.status, detail.summary.epochs) == (tpb.RUN_STATUS_COMPLETED, 3)
            assert len(query.steps(atlas.run_id)) == 48
            query.close()
        finally:
            proxy.close()


KILLED_TRAINER = textwrap.dedent("""
    import sys, time, torch
    from atlas_callback import AtlasConfig, Observer
    obs = Observer(project="rel", run_name="killed", collector=sys.argv[1],
                   config=AtlasConfig(track_carbon=False, step_flush_seconds=0.05))
    print(obs.run_id if False else "", end="")
    for step in range(1, 10_000):
        obs.step(torch.tensor(1.0 / step))
        if step == 20:
            obs.flush()
            print(obs.run_id, flush=True)
        time.sleep(0.01)
""")


def test_killed_trainer_becomes_stale_and_its_spool_syncs(tmp_path) -> None:
    config = tmp_path / "collector.toml"
    config.write_text("[collector]\nstale_after_s = 2.0\n")
    collector = start_collector_process(f"sqlite:///{tmp_path / 'stale.db'}", "--config", str(config))
    home = tmp_path / "trainer-home"
    script = tmp_path / "trainer.py"
    script.write_text(KILLED_TRAINER)
    proc = subprocess.Popen([sys.executable, str(script), collector.address], stdout=subprocess.PIPE, text=True,
                            env=cli_env(ATLAS_HOME=str(home)))
    try:
        run_id = proc.stdout.readline().strip()
        query = Query(collector.address)
        wait_for(lambda: len(query.steps(run_id)) > 20, 30, "steps after the first 20 (the trainer mid-run)")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: query.run(run_id).summary.status == tpb.RUN_STATUS_STALE, 30, "the run to become stale")
        assert list((home / "spool" / run_id).glob("*.log")), "a killed trainer leaves its spool"
        done = subprocess.run([str(BIN / "atlas"), "--collector", collector.address, "sync"], capture_output=True,
                              text=True, env=cli_env(ATLAS_HOME=str(home)), timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"synced run {run_id}" in done.stdout
        assert not (home / "spool" / run_id).exists()
        steps = query.steps(run_id)
        assert [s.step for s in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 20
        query.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        collector.stop()


def test_twenty_concurrent_trainers_all_records_present(tmp_path) -> None:
    steps, epochs = 200, 3
    with run_server(db=f"sqlite:///{tmp_path / 'twenty.db'}") as collector:
        run_ids: list[str] = []
        errors: list[BaseException] = []
        latencies: list[float] = []

        def train(i: int) -> None:
            try:
                with Observer(project="rel", run_name=f"t{i}", collector=collector.address, config=QUIET) as obs:
                    for _ in range(epochs):
                        for s in range(steps):
                            obs.step(1.0 / (s + 1), batch_size=8)
                        obs.flush(val_metrics={"val_loss": 0.5})
                    run_ids.append(obs.run_id)
                latencies.extend(obs._core.transport.ack_latencies())
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=train, args=(i,)) for i in range(20)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not errors
        assert len(run_ids) == 20
        query = Query(collector.address)
        for run_id in run_ids:
            detail = query.run(run_id)
            assert (detail.summary.status, detail.summary.epochs, detail.summary.steps) == (
                tpb.RUN_STATUS_COMPLETED, epochs, steps * epochs)
            assert len(query.steps(run_id)) == steps * epochs
        query.close()
    # Every message of every trainer was acked, each ack after its own commit; report the latency.
    latencies.sort()
    assert len(latencies) >= 20 * epochs
    p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    report = {"trainers": 20, "messages_acked": len(latencies), "ack_p50_ms": p50 * 1e3, "ack_p99_ms": p99 * 1e3,
              "ack_max_ms": latencies[-1] * 1e3}
    print(f"\n20 concurrent trainers: {report}")
    if os.environ.get("ATLAS_REL_RESULTS"):
        pathlib.Path(os.environ["ATLAS_REL_RESULTS"]).write_text(json.dumps(report, indent=2))
