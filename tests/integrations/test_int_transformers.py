"""AtlasTransformersCallback: a tiny BERT built from a config (random weights, no downloads) trained by the Hugging Face
Trainer on the CPU, against a real collector."""
from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
import threading
import time

import pytest

from atlas_collector import run_server
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import query_pb2_grpc
from atlas_proto.v1 import telemetry_pb2 as tpb
from conftest import BIN, atlas_json, free_port
from _query import Query

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _hf import hf_trainer  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def collector(tmp_path):
    with run_server(db=f"sqlite:///{tmp_path / 'hf.db'}") as c:
        c.query = Query(c.address)
        yield c
        c.query.close()


def send(address: str, run_id: str, kind: int) -> None:
    import grpc

    with grpc.insecure_channel(address) as channel:
        query_pb2_grpc.QueryServiceStub(channel).SendCommand(
            qpb.CommandRequest(run=run_id, kind=kind, reason="from the test", sender="test"), timeout=10)


class Recorder:
    """A plain TrainerCallback (duck-typed) that keeps what the Trainer logged, and can send a command at a step."""

    def __init__(self, atlas=None, address: str = "", at_step: int = -1, kind: int = 0, then=None) -> None:
        self.logs: list[dict] = []
        self.atlas, self.address, self.at_step, self.kind, self.then = atlas, address, at_step, kind, then

    def __getattr__(self, name: str):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        self.logs.append({"step": state.global_step, **(logs or {})})

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if state.global_step != self.at_step:
            return
        send(self.address, self.atlas.run_id, self.kind)
        deadline = time.monotonic() + 20
        while not any(self.atlas._core.control.decide()) and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.then is not None:
            self.then()


def test_importing_the_callback_does_not_import_transformers() -> None:
    code = ("import sys; from atlas_callback import AtlasTransformersCallback, wandb_compat; "
            "cb = AtlasTransformersCallback(project='p', collector='127.0.0.1:1'); "
            "print('transformers' in sys.modules, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_every_channel_of_a_trainer_run_with_gradient_accumulation(collector, tmp_path) -> None:
    from atlas_callback import AtlasConfig, AtlasTransformersCallback

    atlas = AtlasTransformersCallback(project="hf", run_name="tiny-bert", collector=collector.address,
                                      tags=["hf"], config=AtlasConfig(layer_health_every=3))
    seen = Recorder()
    trainer = hf_trainer([seen, atlas], str(tmp_path / "out"), epochs=2, grad_accum=2)
    trainer.train()
    run_id = atlas.run_id
    detail = collector.query.run(run_id)
    assert detail.summary.framework == tpb.FRAMEWORK_TRANSFORMERS
    # a step is an optimizer step: 128 samples / (8 x 2 accumulated) = 8 a epoch
    assert (detail.summary.status, detail.summary.epochs, detail.summary.steps) == (
        tpb.RUN_STATUS_COMPLETED, 2, 16)
    shown = atlas_json(collector.address, "runs", "show", run_id)
    assert shown["framework"] == "transformers"
    hp = shown["hyperparameters"]
    assert hp["gradient_accumulation_steps"] == 2 and hp["learning_rate"] == 5e-4
    assert hp["model.num_hidden_layers"] == 2 and hp["model.hidden_size"] == 32
    assert "transformers" in shown["versions"]
    # the loss, learning rate and gradient norm of each step are the ones the Trainer logged for it
    trainer_logs = {entry["step"]: entry for entry in seen.logs if "loss" in entry and "grad_norm" in entry}
    steps = collector.query.steps(run_id)
    assert [s.step for s in steps] == list(range(1, 17))
    for s in steps:
        logged = trainer_logs[s.step]
        assert s.loss == pytest.approx(logged["loss"], rel=1e-4)
        assert s.lr == pytest.approx(logged["learning_rate"], rel=1e-6)
        assert s.grad_norm == pytest.approx(logged["grad_norm"], rel=1e-4)
        assert s.batch_size == 16
    epochs = collector.query.epochs(run_id)
    assert [e.epoch for e in epochs] == [0, 1]
    for e in epochs:
        # the eval metrics are the epoch's validation metrics, under the names the diagnostics read
        assert set(e.val_metrics) == {"val_loss", "val_accuracy"}
        assert e.throughput.samples_per_sec > 0 and e.throughput.tokens_per_sec > 0
        assert e.throughput.samples_processed == 128
        assert e.memory.process_rss_mb > 0
        assert len(e.lr) >= 1 and e.HasField("grad_norm")
        assert e.HasField("carbon")
    assert any(e.layer_health.layers for e in epochs), "no layer health"
    arch = collector.query.architecture(run_id)
    assert arch.model_class == "BertForSequenceClassification" and arch.total_parameters > 0
    # everything the Trainer logged is kept as user metrics, per step
    keys = {k["key"]: k for k in atlas_json(collector.address, "metrics", run_id)}
    assert {"loss", "grad_norm", "learning_rate", "eval_loss", "eval_accuracy", "train_runtime"} <= set(keys)
    assert keys["loss"]["count"] == 16 and keys["eval_accuracy"]["count"] == 2
    series = atlas_json(collector.address, "metrics", run_id, "eval_loss")
    assert [p["step"] for p in series] == [8, 16]
    assert series[1]["value"] == pytest.approx(epochs[1].val_metrics["val_loss"])


def test_mixed_precision_steps_are_recorded_as_the_trainer_logs_them(collector, tmp_path) -> None:
    from atlas_callback import AtlasTransformersCallback

    atlas = AtlasTransformersCallback(project="hf", run_name="bf16", collector=collector.address)
    seen = Recorder()
    hf_trainer([seen, atlas], str(tmp_path / "bf16"), epochs=1, bf16=True, eval_strategy="no").train()
    logged = {e["step"]: e["loss"] for e in seen.logs if "loss" in e}
    steps = collector.query.steps(atlas.run_id)
    assert [s.step for s in steps] == list(range(1, 17))
    assert all(s.loss == pytest.approx(logged[s.step], rel=1e-3) for s in steps)
    assert collector.query.run(atlas.run_id).summary.status == tpb.RUN_STATUS_COMPLETED


def test_stop_sets_should_training_stop_and_pause_blocks_at_the_step_end(collector, tmp_path) -> None:
    from atlas_callback import AtlasTransformersCallback

    atlas = AtlasTransformersCallback(project="hf", run_name="stop", collector=collector.address)
    trainer = hf_trainer([Recorder(atlas, collector.address, 3, tpb.COMMAND_KIND_STOP), atlas],
                         str(tmp_path / "stop"), epochs=3, eval_strategy="no")
    trainer.train()
    assert trainer.state.global_step == 3, "the Trainer went on past the step at which STOP arrived"
    detail = collector.query.run(atlas.run_id)
    assert detail.summary.status == tpb.RUN_STATUS_STOPPED and "from the test" in detail.error.message

    paused = AtlasTransformersCallback(project="hf", run_name="pause", collector=collector.address)
    seen: dict[str, float] = {}

    def resume_later() -> None:
        def worker() -> None:
            time.sleep(1.0)
            seen["resumed_at"] = time.time()
            send(collector.address, paused.run_id, tpb.COMMAND_KIND_RESUME)

        threading.Thread(target=worker, daemon=True).start()

    trainer = hf_trainer([Recorder(paused, collector.address, 2, tpb.COMMAND_KIND_PAUSE, then=resume_later),
                          paused], str(tmp_path / "pause"), epochs=1, eval_strategy="no", n=64)
    trainer.train()
    assert trainer.state.global_step == 8
    times = {s.step: s.time.seconds + s.time.nanos / 1e9 for s in collector.query.steps(paused.run_id)}
    assert times[3] >= seen["resumed_at"] - 0.05, "step 3 ran before RESUME"
    assert collector.query.run(paused.run_id).summary.status == tpb.RUN_STATUS_COMPLETED


def test_a_nan_loss_is_seen_and_stops_the_run_under_the_stop_policy(collector, tmp_path) -> None:
    import torch

    from atlas_callback import AtlasTransformersCallback

    atlas = AtlasTransformersCallback(project="hf", run_name="nan", collector=collector.address, on_critical="stop")

    class Poison(Recorder):
        def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
            if state.global_step == 2:
                with torch.no_grad():
                    model.classifier.weight.fill_(float("nan"))

    trainer = hf_trainer([Poison(), atlas], str(tmp_path / "nan"), epochs=2, eval_strategy="no")
    trainer.train()
    assert trainer.state.global_step == 3
    steps = collector.query.steps(atlas.run_id)
    assert math.isnan(steps[-1].loss)
    assert collector.query.run(atlas.run_id).summary.status == tpb.RUN_STATUS_STOPPED


def test_torchrun_processes_make_one_run_and_stop_at_the_same_step(collector, tmp_path) -> None:
    done = subprocess.run([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
                           str(HERE / "hf_ddp.py"), collector.address, str(tmp_path), "stop"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["run_id"] == ranks[1]["run_id"], "the two processes must stream into one run"
    # rank 0 has the STOP at step 3; the ranks agree one step later, both at the same step
    assert [r["global_step"] for r in ranks] == [4, 4], ranks
    detail = collector.query.run(ranks[0]["run_id"])
    assert detail.world_size == 2 and detail.summary.status == tpb.RUN_STATUS_STOPPED
    assert collector.query.epochs(ranks[0]["run_id"], rank=1), "rank 1 sent no epoch summary of its own"
    runs = collector.query.stub.ListRuns(qpb.ListRunsRequest(project="hf"), timeout=10)
    assert runs.total == 1
