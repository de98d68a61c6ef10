"""Reliability: the trainer's process ends promptly — the collector gone at exit, an exception in training."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
import time

from conftest import start_collector_process
from _query import Query


EXIT_SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    from atlas_callback import AtlasConfig, Observer
    collector_pid, address = int(sys.argv[1]), sys.argv[2]
    obs = Observer(project="exit", run_name="no-close", collector=address,
                   config=AtlasConfig(flush_timeout_s=2.0))
    for step in range(20):
        obs.step(torch.tensor(1.0 / (step + 1)))
    obs.flush()
    assert obs._core.transport.force_flush(20)   # the first 20 steps and the epoch are acked
    os.kill(collector_pid, signal.SIGKILL)   # the collector is gone at exit
    for step in range(20):
        obs.step(torch.tensor(0.01))
    print(obs.run_id, flush=True)
    # no obs.close(): interpreter exit must flush (bounded) and not hang
""")


def test_exit_is_bounded_when_the_collector_is_gone(tmp_path: pathlib.Path) -> None:
    collector = start_collector_process(f"sqlite:///{tmp_path / 'gone.db'}")
    script = tmp_path / "exit_script.py"
    script.write_text(EXIT_SCRIPT)
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, str(script), str(collector.proc.pid), collector.address],
                          capture_output=True, text=True, timeout=60, env={**os.environ})
    elapsed = time.monotonic() - t0
    collector.proc.wait(10)
    assert done.returncode == 0, done.stderr[-2000:]
    assert elapsed < 25, f"exit took {elapsed:.1f}s"
    run_id = done.stdout.strip()
    spooled = list((pathlib.Path(os.environ["ATLAS_HOME"]) / "spool" / run_id).glob("*.log"))
    assert spooled, "what the collector did not acknowledge must stay in the spool for `atlas sync`"


FAILING_TRAINER = textwrap.dedent("""
    import sys, warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[2])
    from atlas_callback import AtlasCallback, AtlasConfig
    from _lit import TinyClassifier, loaders, trainer
    atlas = AtlasCallback(project="rel", run_name="raises", collector=sys.argv[1],
                          config=AtlasConfig(track_carbon=False))
    print(atlas.run_id or "", flush=True)
    try:
        trainer([atlas], max_epochs=3).fit(TinyClassifier(fail_at_step=7), *loaders())
    finally:
        print(atlas.run_id, flush=True)
""")


def test_exception_in_training_step_fails_the_run_and_the_process_exits_promptly(tmp_path: pathlib.Path) -> None:
    collector = start_collector_process(f"sqlite:///{tmp_path / 'raises.db'}")
    script = tmp_path / "failing.py"
    script.write_text(FAILING_TRAINER)
    try:
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, str(script), collector.address, str(pathlib.Path(__file__).parents[1])],
                              capture_output=True, text=True, timeout=120, env={**os.environ})
        elapsed = time.monotonic() - t0
        assert done.returncode == 1 and "boom at step 7" in done.stderr
        assert elapsed < 60, f"the failing process took {elapsed:.1f}s to exit"
        run_id = done.stdout.strip().splitlines()[-1]
        query = Query(collector.address)
        detail = query.run(run_id)
        query.close()
        assert detail.summary.status == 5  # failed
        assert detail.error.type == "RuntimeError" and "boom at step 7" in detail.error.message
        assert "training_step" in detail.error.traceback
        assert detail.summary.steps == 7
    finally:
        collector.stop()
