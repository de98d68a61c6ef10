"""`atlas watch` follows a run that is still training (real trainer subprocess, real collector) and ends with it;
`atlas stop` ends a live run."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import threading
import time

from _wait import holds_for
from cli_support import atlas, atlas_json, wait_for
from conftest import BIN, CollectorProcess, cli_env

SCRIPT = pathlib.Path(__file__).with_name("cli_slow_train.py")


def start_training(address: str, name: str, epochs: int, pause: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(SCRIPT), address, name, str(epochs), str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cli_env())


class Lines:
    """A process's stdout lines with the time each arrived."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.items: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.items.append((time.monotonic(), line.rstrip("\n")))

    @property
    def text(self) -> list[str]:
        return [line for _, line in self.items]


def test_watch_follows_a_live_run_and_exits_when_it_ends(collector_process: CollectorProcess) -> None:
    address = collector_process.address
    # the watcher starts first and waits for the run to appear
    watch = subprocess.Popen([str(BIN / "atlas"), "--collector", address, "watch", "live-run", "--wait", "60",
                              "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=cli_env())
    watched = Lines(watch)
    train = start_training(address, "live-run", epochs=6, pause=0.04)  # ~0.7 s per epoch
    trained = Lines(train)
    try:
        assert train.wait(120) == 0
        train_end = time.monotonic()
        assert watch.wait(30) == 0, watch.stderr.read() if watch.stderr else ""
    finally:
        for p in (watch, train):
            if p.poll() is None:
                p.kill()
    watched.thread.join(5)
    trained.thread.join(5)
    run_id = trained.text[-1].removeprefix("done ")
    lines = watched.text
    assert lines[0] == f"run {run_id} (live-run) running"
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["0", "1", "2", "3", "4", "5"]
    epochs = atlas_json("epochs", run_id, collector=address)
    assert f"loss {epochs[2]['loss_mean']:.4g}" in epoch_lines[2]
    assert f"val_loss {epochs[2]['val_loss']:.4g}" in epoch_lines[2] and "samples/s" in epoch_lines[2]
    assert lines[-1] == f"run {run_id} ended: completed after 6 epochs, 96 steps"
    # live: the first epochs were shown while the trainer was still running
    first_epoch_at = next(t for t, line in watched.items if line.startswith("epoch 0"))
    assert first_epoch_at < train_end - 1.0
    ended_at = watched.items[-1][0]
    assert ended_at - train_end < 10


def test_watch_on_a_terminal_draws_the_curves_and_the_issues() -> None:
    """On a TTY (a pseudo-terminal) the view is drawn with rich: chart, throughput line, issues panel."""
    import os
    import pty

    from cli_support import stored_runs

    store = stored_runs()
    issues = atlas_json("issues", "hot", "--active-only", collector=store.address)  # what watch lists
    main, secondary = pty.openpty()
    proc = subprocess.Popen([str(BIN / "atlas"), "--collector", store.address, "watch", "hot", "--interval", "0.2"],
                            stdout=secondary, stderr=subprocess.PIPE, env=cli_env(COLUMNS="100", LINES="40"))
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(30) == 0
    os.close(main)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "● loss" in screen and "◆ val_loss" in screen and "samples/s" in screen
    assert "new issues" in screen and "ended: completed" in screen
    assert f"! {issues[-1]['severity']} {issues[-1]['check']}" in screen
    assert f"health {atlas_json('health', 'hot', collector=store.address)['health_score']:g}" in screen


def test_pause_resume_and_stop_a_live_run(collector_process: CollectorProcess) -> None:
    address = collector_process.address
    train = start_training(address, "to-stop", epochs=50, pause=0.05)
    lines = Lines(train)
    try:
        wait_for(lambda: lines.text, timeout=60)

        def one_epoch() -> bool:
            done = atlas("epochs", "to-stop", "--json", collector=address, check=False)
            return done.returncode == 0 and len(json.loads(done.stdout)) >= 1

        wait_for(one_epoch, timeout=60)

        def status() -> str:
            return atlas_json("runs", "show", "to-stop", collector=address)["status"]

        paused = atlas("pause", "to-stop", "--reason", "look at memory", collector=address).stdout
        assert paused.startswith("pause sent to run ") and "(delivered to the trainer)" in paused
        wait_for(lambda: status() == "paused", timeout=30)
        time.sleep(1.5)  # nothing to wait on: samples from before the pause arrive within step_flush_seconds (1 s)
        steps = atlas_json("runs", "show", "to-stop", collector=address)["steps"]
        holds_for(lambda: atlas_json("runs", "show", "to-stop", collector=address)["steps"] == steps, 1.5,
                  "no new step while paused", interval=0.3)  # it really waits
        assert "resume sent to run" in atlas("resume", "to-stop", collector=address).stdout
        wait_for(lambda: status() == "running", timeout=30)
        sent = json.loads(atlas("stop", "to-stop", "--reason", "enough", "--json", collector=address).stdout)
        assert sent["kind"] == "stop" and sent["delivered"] is True and sent["reason"] == "enough"
        assert train.wait(60) == 0
        run_id = lines.text[-1].removeprefix("done ")
        assert sent["run_id"] == run_id
    finally:
        if train.poll() is None:
            train.kill()
    detail = atlas_json("runs", "show", run_id, collector=address)
    assert detail["status"] == "stopped" and detail["epochs"] < 50
    text = atlas("watch", run_id, collector=address).stdout
    assert text.strip().endswith(f"ended: stopped after {detail['epochs']} epochs, {detail['steps']} steps")
    events = [json.loads(line) for line in atlas("watch", run_id, "--json", collector=address).stdout.splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == list(range(detail["epochs"]))
    assert events[-1]["event"] == "end" and events[-1]["status"] == "stopped" and events[-1]["id"] == run_id


def test_line_chart_draws_each_series_where_its_values_are() -> None:
    from atlas_cli._watch import line_chart

    lines = line_chart({"loss": [4.0, 3.0, 2.0, 1.0], "val_loss": [1.0, 2.0, 3.0, 4.0]}, width=31, height=7)
    grid = [line.split("│", 1)[1].ljust(31) for line in lines[:7]]
    assert lines[0].startswith("4 │") and lines[6].startswith("1 │")
    # loss falls from the top-left corner to the bottom-right one; val_loss rises the other way
    assert grid[0][0] == "●" and grid[6][30] == "●"
    assert grid[6][0] == "◆" and grid[0][30] == "◆"
    assert grid[2][10] == "●" and grid[4][10] == "◆"  # epoch 1 of 3 at x = 10
    assert "·" in grid[1]  # the curve between epochs is drawn
    assert lines[-1] == "● loss  ◆ val_loss"
    assert line_chart({"loss": []}) == ["(waiting for the first epoch)"]
    assert line_chart({"loss": [float("nan"), 2.0]})[0].startswith("2.5 │")


def test_watch_of_a_failed_run_exits_1_with_the_error() -> None:
    from cli_support import one_line_error, stored_runs

    store = stored_runs()
    done = atlas("watch", "broken", collector=store.address, check=False)
    line = one_line_error(done)
    assert line == f"Error: run {store.runs['broken']} failed: boom at step 5: synthetic failure"
    assert [x.split()[1] for x in done.stdout.splitlines() if x.startswith("epoch ")] == []  # failed in epoch 0
    assert done.stdout.strip().endswith("ended: failed after 0 epochs, 5 steps")
