"""When Atlas acts on a run the trainer's terminal says so, in one line, whatever the logging setup (issue 17):
a fresh Python process, as a user's script is."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import logging, math, sys
{logging_setup}
from atlas_callback import AtlasConfig, Observer
with Observer(project="notice", on_critical="stop", config=AtlasConfig(track_carbon=False, quiet={quiet})) as obs:
    for step in range(10):
        obs.step(math.nan if step == 4 else 1.0)
        if obs.should_stop:
            print("loop left at step", step)
            break
"""


def run(tmp_path, *, quiet: bool = False, logging_setup: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ATLAS_HOME=str(tmp_path), ATLAS_MODE="offline")
    code = SCRIPT.format(quiet=quiet, logging_setup=logging_setup)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def stop_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "stopping run" in line]


def test_a_stop_is_one_line_on_stderr_without_any_logging_setup(tmp_path) -> None:
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "loop left at step 4" in done.stdout
    [line] = stop_lines(done.stderr)
    assert line.startswith("atlas: stopping run ") and "non-finite loss (nan) at step 5" in line
    assert "`atlas issues " in line  # where to learn more


def test_quiet_silences_it(tmp_path) -> None:
    done = run(tmp_path, quiet=True)
    assert done.returncode == 0 and "loop left at step 4" in done.stdout
    assert stop_lines(done.stderr) == []


@pytest.mark.parametrize("setup", ["logging.basicConfig(level=logging.WARNING)",
                                   "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')"])
def test_a_configured_logging_shows_it_once(tmp_path, setup: str) -> None:
    done = run(tmp_path, logging_setup=setup)
    assert done.returncode == 0, done.stderr
    assert len(stop_lines(done.stderr)) == 1, done.stderr


def test_an_unreachable_collector_is_two_lines_that_say_what_to_do(tmp_path) -> None:
    code = ("from atlas_callback import AtlasConfig, Observer\n"
            "with Observer(project='notice', collector='127.0.0.1:1', config=AtlasConfig(track_carbon=False, "
            "flush_timeout_s=1)) as obs:\n"
            "    for _ in range(5):\n"
            "        obs.step(1.0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ATLAS_HOME=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("atlas:")]
    assert len(lines) == 2, lines
    assert "no collector reachable at 127.0.0.1:1" in lines[0] and "training goes on" in lines[0]
    assert "unsent records kept in" in lines[1] and "`atlas sync`" in lines[1]
    assert "within 0.0s" not in done.stderr and "could not deliver" not in done.stderr


def test_a_scripts_own_warnings_still_reach_its_terminal_and_the_run_keeps_them_from_the_start(tmp_path) -> None:
    """Atlas's log capture on the root logger must not swallow the script's warnings (Python prints them through
    its last-resort handler when nothing is configured); and with Observer, what is logged between entering the
    `with` block and the run's start (the model, the first step) is part of the run (issue 17)."""
    import pathlib

    from atlas_callback._spool import scan

    code = ("import logging\n"
            "from atlas_callback import AtlasConfig, Observer\n"
            "with Observer(project='notice', config=AtlasConfig(track_carbon=False)) as obs:\n"
            "    logging.getLogger('user').warning('loading the dataset')\n"
            "    obs.step(1.0)\n"
            "    logging.getLogger('user').warning('epoch done')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ATLAS_HOME=str(tmp_path), ATLAS_MODE="offline"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("loading the dataset") == 1 and done.stderr.count("epoch done") == 1
    [log] = list(pathlib.Path(tmp_path, "spool").glob("*/*.log"))
    messages = [r.message for m in scan(log, log.parent.name).messages if m.HasField("log_batch")
                for r in m.log_batch.records]
    assert messages[:2] == ["loading the dataset", "epoch done"], messages


def test_a_library_null_handler_on_py_warnings_does_not_hide_the_scripts_warnings(tmp_path) -> None:
    """Found by the second held-out round: some library puts a `NullHandler` on the `py.warnings` logger; once
    Atlas captured warnings, that NullHandler counted as "the application shows it", so torch's "Using a target
    size ... different to the input size" warning (the very message naming that run's bug) reached no terminal."""
    code = ("import logging, warnings\n"
            "logging.getLogger('py.warnings').addHandler(logging.NullHandler())\n"
            "import torch\n"
            "from atlas_callback import AtlasConfig, Observer\n"
            "with Observer(project='notice', config=AtlasConfig(track_carbon=False)) as obs:\n"
            "    obs.register_model(torch.nn.Linear(2, 1))\n"
            "    torch.nn.functional.mse_loss(torch.zeros(5, 1), torch.zeros(5))\n"
            "    obs.step(1.0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ATLAS_HOME=str(tmp_path), ATLAS_MODE="offline"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Using a target size") == 1, done.stderr
