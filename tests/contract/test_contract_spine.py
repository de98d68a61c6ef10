"""The spine end to end: a real Lightning Trainer with AtlasCallback, a real `atlas-collector`
subprocess with a SQLite file, and the real `atlas` CLI reading it back."""
from __future__ import annotations

import json
import subprocess

import pytest

from atlas_callback import AtlasCallback
from conftest import BIN, CollectorProcess, cli_env
from _lit import TinyClassifier, loaders, trainer


def atlas(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(BIN / "atlas"), *args], capture_output=True, text=True, env=cli_env(), timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"atlas {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def test_lightning_run_is_listed_completed_with_its_validation_loss(collector_process: CollectorProcess) -> None:
    callback = AtlasCallback(project="e2e", run_name="two-epochs", collector=collector_process.address,
                             tags=["ci", "tiny"])
    t = trainer([callback], max_epochs=2)
    train, val = loaders()
    t.fit(TinyClassifier(), train, val)
    logged_val_loss = float(t.callback_metrics["val_loss"])

    runs = json.loads(atlas("--collector", collector_process.address, "runs", "--json").stdout)
    assert len(runs) == 1
    run = runs[0]
    assert run["id"] == callback.run_id
    assert (run["name"], run["project"], run["status"], run["epochs"]) == ("two-epochs", "e2e", "completed", 2)
    assert run["steps"] == t.global_step == 32
    assert run["framework"] == "lightning"
    assert run["tags"] == ["ci", "tiny"]
    # The diagnosis runs after ingest, off its path: the score may not be there yet; when it is, the run is healthy.
    assert run["health_score"] is None or 80 <= run["health_score"] <= 100
    assert run["started_at"].endswith("Z") and run["ended_at"].endswith("Z")

    # --json is also accepted after the command, and RUN resolves by id prefix.
    detail = json.loads(atlas("--collector", collector_process.address, "runs", "show", run["id"][:8], "--json").stdout)
    assert detail["final_metrics"]["val_loss"] == pytest.approx(logged_val_loss, rel=1e-6)
    assert "val_acc" in detail["final_metrics"]
    assert detail["final_metrics"]["loss_count"] == 16
    assert detail["hyperparameters"] == {"hidden": 16, "lr": 0.05, "fail_at_step": None}
    assert detail["versions"]["torch"].startswith("2.") and "python" in detail["versions"]
    assert detail["device"]["kind"] == "cpu"
    assert detail["world_size"] == 1 and detail["on_critical"] == "warn"

    # The table form names the run too.
    table = atlas("--collector", collector_process.address, "runs").stdout
    assert "two-epochs" in table and "completed" in table


def test_failing_training_step_marks_the_run_failed_with_the_exception(collector_process: CollectorProcess) -> None:
    callback = AtlasCallback(project="e2e", run_name="broken", collector=collector_process.address)
    t = trainer([callback], max_epochs=2)
    train, val = loaders()
    with pytest.raises(RuntimeError, match="boom at step 5"):
        t.fit(TinyClassifier(fail_at_step=5), train, val)

    detail = json.loads(atlas("--collector", collector_process.address, "runs", "show", "broken", "--json").stdout)
    assert detail["status"] == "failed"
    assert detail["ended_at"] is not None
    assert detail["error"]["type"] == "RuntimeError"
    assert "boom at step 5: synthetic failure" in detail["error"]["message"]
    assert "training_step" in detail["error"]["traceback"]
    errors = json.loads(atlas("--collector", collector_process.address, "logs", "broken", "--errors", "--json").stdout)
    assert any("boom at step 5" in e["message"] for e in errors), errors


def test_atlas_runs_without_a_collector_says_where_and_how(tmp_path) -> None:
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = atlas("--collector", f"127.0.0.1:{port}", "runs", check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "atlas-collector" in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_collector_stops_cleanly_on_sigterm(collector_process: CollectorProcess) -> None:
    assert collector_process.stop() == 0


def test_atlas_demo_trains_and_prints_the_run(tmp_path) -> None:
    done = subprocess.run([str(BIN / "atlas"), "demo", "--epochs", "2"], capture_output=True, text=True,
                          env=cli_env(ATLAS_HOME=str(tmp_path / "home")), timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "collector listening on 127.0.0.1:" in out
    assert "demo-mlp" in out and "completed" in out
    assert "val_loss" in out and "diagnostics" in out
    healthy, buggy = out.split("\ndemo-mlp (")[1].split("\ndemo-bug (")
    assert " warning " not in healthy and " critical " not in healthy  # the healthy run: no false warning
    # the buggy run: named first, stopped by Atlas, and the trainer's terminal said so
    assert "stopped after" in buggy and "1. optimizer_not_stepping_model:" in buggy
    assert "fix: Build the optimizer over the model's own parameters" in buggy
    assert "stops at the next batch, STOP from the collector: optimizer_not_stepping_model" in done.stderr
    # stored where `atlas-collector` looks by default: `atlas-collector &` then `atlas runs` shows the demo
    assert (tmp_path / "home" / "atlas.db").exists()
