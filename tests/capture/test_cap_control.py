"""Control from the collector: STOP within one batch (one process and two DDP ranks), PAUSE then RESUME,
PAUSE then timeout, and the non-finite-loss fast path — real trainers, a real collector."""
from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
import threading
import time

import grpc
import lightning.pytorch as pl
import pytest
import torch

from atlas_callback import AtlasCallback, Observer
from atlas_collector import run_server
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import query_pb2_grpc
from atlas_proto.v1 import telemetry_pb2 as tpb
from _lit import TinyClassifier, loaders, trainer
from _query import Query
from _wait import within

HERE = pathlib.Path(__file__).parent


@pytest.fixture
def collector(tmp_path):
    with run_server(db=f"sqlite:///{tmp_path / 'control.db'}") as c:
        c.query = Query(c.address)
        yield c
        c.query.close()


def send(address: str, run_id: str, kind: int, reason: str = "") -> qpb.CommandResponse:
    with grpc.insecure_channel(address) as channel:
        return query_pb2_grpc.QueryServiceStub(channel).SendCommand(
            qpb.CommandRequest(run=run_id, kind=kind, reason=reason, sender="test"), timeout=10)


class CommandAt(pl.Callback):
    """Send a command at a given step and wait until the trainer side has received it."""

    def __init__(self, atlas: AtlasCallback, address: str, step: int, kind: int, then: callable = None) -> None:
        self.atlas, self.address, self.step, self.kind, self.then = atlas, address, step, kind, then

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        send(self.address, self.atlas.run_id, self.kind, reason="from the test")
        control = self.atlas._core.control
        assert within(lambda: any(control.decide())), "the command never reached the trainer"
        if self.then is not None:
            self.then()


def test_stop_command_stops_within_one_batch(collector) -> None:
    atlas = AtlasCallback(project="control", run_name="stop", collector=collector.address)
    t = trainer([CommandAt(atlas, collector.address, 5, tpb.COMMAND_KIND_STOP), atlas], max_epochs=5)
    t.fit(TinyClassifier(), *loaders())
    assert t.global_step == 5, "the run went on past the batch at which STOP arrived"
    detail = collector.query.run(atlas.run_id)
    assert detail.summary.status == tpb.RUN_STATUS_STOPPED
    assert "from the test" in detail.error.message


def test_pause_then_resume(collector) -> None:
    atlas = AtlasCallback(project="control", run_name="pause", collector=collector.address)
    seen: dict[str, object] = {}

    def resume_later() -> None:
        def worker() -> None:
            ok = within(lambda: collector.query.run(atlas.run_id).summary.status == tpb.RUN_STATUS_PAUSED, 15)
            seen["paused_status"] = ok
            time.sleep(1.0)
            seen["resumed_at"] = time.time()
            send(collector.address, atlas.run_id, tpb.COMMAND_KIND_RESUME)

        threading.Thread(target=worker, daemon=True).start()

    t = trainer([CommandAt(atlas, collector.address, 3, tpb.COMMAND_KIND_PAUSE, then=resume_later), atlas],
                max_epochs=2)
    t0 = time.monotonic()
    t.fit(TinyClassifier(), *loaders())
    assert t.global_step == 32, "the run did not finish after RESUME"
    assert seen.get("paused_status"), "the collector never showed the run as paused"
    steps = {s.step: s.time.seconds + s.time.nanos / 1e9 for s in collector.query.steps(atlas.run_id)}
    assert steps[4] >= seen["resumed_at"] - 0.05, "step 4 ran before RESUME"
    assert collector.query.run(atlas.run_id).summary.status == tpb.RUN_STATUS_COMPLETED
    assert time.monotonic() - t0 < 60


def test_pause_then_timeout_stops(collector) -> None:
    atlas = AtlasCallback(project="control", run_name="pause-timeout", collector=collector.address, pause_timeout=1.0)
    t = trainer([CommandAt(atlas, collector.address, 4, tpb.COMMAND_KIND_PAUSE), atlas], max_epochs=3)
    t0 = time.monotonic()
    t.fit(TinyClassifier(), *loaders())
    assert t.global_step == 4
    assert 1.0 <= time.monotonic() - t0 < 30
    detail = collector.query.run(atlas.run_id)
    assert detail.summary.status == tpb.RUN_STATUS_STOPPED
    assert "paused for longer than 1s" in detail.error.message


@pytest.mark.parametrize(("policy", "steps_run", "status"), [
    ("stop", 7, tpb.RUN_STATUS_STOPPED),
    ("warn", 12, tpb.RUN_STATUS_COMPLETED),
])
def test_non_finite_loss_fast_path_follows_the_policy(collector, policy, steps_run, status) -> None:
    with Observer(project="control", run_name=f"nan-{policy}", collector=collector.address,
                  on_critical=policy) as obs:
        ran = 0
        for step in range(1, 13):
            obs.step(torch.tensor(math.nan if step == 7 else 1.0))
            ran = step
            if obs.should_stop:
                break
        obs.flush()
    assert ran == steps_run
    detail = collector.query.run(obs.run_id)
    assert detail.summary.status == status
    # The fast path does not bypass the record: the collector stores the nan_loss issue and, under a
    # stop/pause policy, the command it caused, as for any other critical issue.
    issues = collector.query.stub.ListIssues(qpb.IssuesRequest(run=obs.run_id), timeout=10).issues
    assert any(i.check == "nan_loss" and i.severity == "critical" and i.step == 7 for i in issues)
    import sqlalchemy as sa

    def commands() -> list[tuple[str, str]]:
        with collector.store.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "SELECT kind, issue_check FROM commands WHERE run_id = :r"), {"r": obs.run_id})]

    if policy == "stop":
        assert within(lambda: ("stop", "nan_loss") in commands(), 10), commands()
    else:
        assert commands() == []


def test_stop_reaches_both_ddp_ranks_at_the_same_step(collector, tmp_path) -> None:
    done = subprocess.run([sys.executable, str(HERE / "cap_ddp_stop.py"), collector.address, str(tmp_path)],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    # Both ranks write to this stderr; show rank 0's lines first (rank 1 only reports that its peer went away).
    rank0 = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("[rank1]"))
    assert done.returncode == 0, rank0[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # Rank 0 has the STOP at the end of step 5; the ranks' agreement (an all-reduce started there, read at the end of
    # the next step, so that no step waits on it) stops both at step 6: the same step, within one batch.
    assert [r["global_step"] for r in ranks] == [6, 6], ranks
    assert ranks[0]["run_id"] == ranks[1]["run_id"], "the two ranks must stream into one run"
    detail = collector.query.run(ranks[0]["run_id"])
    assert detail.world_size == 2 and detail.summary.status == tpb.RUN_STATUS_STOPPED
    assert collector.query.epochs(ranks[0]["run_id"], rank=1), "rank 1 sent no epoch summary of its own"


def test_pause_and_resume_hold_both_ddp_ranks_then_stop_them_at_the_same_step(collector, tmp_path) -> None:
    done = subprocess.run([sys.executable, str(HERE / "cap_ddp_stop.py"), collector.address, str(tmp_path),
                           "pause"], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    rank0 = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("[rank1]"))
    assert done.returncode == 0, rank0[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["global_step"] for r in ranks] == [6, 6], ranks
    # both ranks held still for the pause (PAUSE agreed at step 3, RESUME a second after it reached rank 0)
    assert all(r["longest_gap_s"] >= 0.8 for r in ranks), ranks
    detail = collector.query.run(ranks[0]["run_id"])
    assert detail.summary.status == tpb.RUN_STATUS_STOPPED


def test_a_command_resent_after_a_reconnect_is_applied_once() -> None:
    from atlas_callback._control import Control

    acks: list[str] = []
    control = Control(pause_timeout=5.0, ack=lambda cmd, step: acks.append(cmd.command_id))
    pause = tpb.Command(command_id="c1", kind=tpb.COMMAND_KIND_PAUSE)
    resume = tpb.Command(command_id="c2", kind=tpb.COMMAND_KIND_RESUME)
    control.on_command(pause)
    control.on_command(resume)
    control.on_command(pause)  # the collector re-sends it: the trainer must not pause again
    assert control.decide() == (False, False)
    control.flush_acks(step=3)
    assert acks == ["c1", "c2"]


def test_whoever_sees_a_stop_or_pause_sees_the_trainer_flag_lowered() -> None:
    """The trainer reads `Control.quiet` at every batch boundary without the lock; a command thread that has set a
    flag must never leave `quiet` True behind it (the stop would be applied a batch late)."""
    from atlas_callback._control import Control

    late: list[int] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can: any window shows
    try:
        _race(Control, late)
    finally:
        sys.setswitchinterval(interval)
    assert late == []


def _race(Control: type, late: list[int]) -> None:
    for kind in (tpb.COMMAND_KIND_STOP, tpb.COMMAND_KIND_PAUSE) * 150:
        control = Control(3600.0, lambda command, step: None)
        done = threading.Event()

        def command(control: Control = control, kind: int = kind) -> None:
            control.on_command(tpb.Command(kind=kind, reason="race"))
            done.set()

        threading.Thread(target=command).start()
        while not done.is_set():
            stop, pause = control.decide()
            if (stop or pause) and control.quiet:
                late.append(kind)
                break
        done.wait(5)
        assert not control.quiet
