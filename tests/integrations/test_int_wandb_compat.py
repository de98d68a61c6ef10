"""wandb_compat: a W&B script moves to Atlas by changing its import."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from atlas_collector import run_server
from conftest import atlas_json
from _query import Query


@pytest.fixture
def collector(tmp_path):
    with run_server(db=f"sqlite:///{tmp_path / 'wb.db'}") as c:
        c.query = Query(c.address)
        yield c
        c.query.close()


SCRIPT = textwrap.dedent('''
    import sys
    import torch
    from torch import nn
    from atlas_callback import wandb_compat as wandb

    run = wandb.init(project="wb", name="switched", config={"lr": 0.1, "layers": 2}, tags=["from-wandb"],
                     collector=sys.argv[1])
    wandb.config.update({"batch_size": 8})
    wandb.config.optimizer = "sgd"
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    wandb.watch(model)
    opt = torch.optim.SGD(model.parameters(), lr=wandb.config.lr)
    for step in range(20):
        x = torch.randn(8, 4)
        loss = model(x).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        wandb.log({"loss": loss.item(), "train": {"acc": step / 20}})
        if step % 5 == 4:
            wandb.log({"val_acc": 0.5 + step / 100}, commit=False)
            wandb.log({"tensor_scalar": torch.tensor(1.5), "image": torch.zeros(3, 3)})
    wandb.summary["best_acc"] = 0.99
    wandb.alert(title="done", text="training finished", level=wandb.AlertLevel.WARN)
    print(run.id)
    wandb.finish()
''')


def test_a_wandb_script_runs_on_atlas_by_changing_its_import(collector, tmp_path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), collector.address], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.strip().splitlines()[-1]
    shown = atlas_json(collector.address, "runs", "show", run_id)
    assert shown["name"] == "switched" and shown["project"] == "wb" and "from-wandb" in shown["tags"]
    assert shown["status"] == "completed"
    assert shown["hyperparameters"] == {"lr": 0.1, "layers": 2, "batch_size": 8, "optimizer": "sgd"}
    keys = {k["key"]: k for k in atlas_json(collector.address, "metrics", run_id)}
    # W&B's step: one per committed log; commit=False joins the next; nested dicts flattened; tensors of one value
    # kept, others skipped; the summary's set values stored at finish
    assert keys["loss"]["count"] == 20 and keys["train/acc"]["count"] == 20
    assert keys["val_acc"]["count"] == 4 and keys["tensor_scalar"]["count"] == 4
    assert "image" not in keys and keys["best_acc"]["last_value"] == 0.99
    loss_steps = [p["step"] for p in atlas_json(collector.address, "metrics", run_id, "loss")]
    assert loss_steps == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22]
    val_steps = [p["step"] for p in atlas_json(collector.address, "metrics", run_id, "val_acc")]
    assert val_steps == [5, 11, 17, 23]  # with the call after it, not with the loss before
    # the loss is the step channel too; the model gives the architecture; the alert is kept with the run
    assert len(collector.query.steps(run_id)) == 20
    assert collector.query.architecture(run_id).total_parameters == 4 * 8 + 8 + 8 * 2 + 2
    issues = atlas_json(collector.address, "issues", run_id)
    alerts = [i for i in issues if i.get("check") == "user_alert" or i.get("check_id") == "user_alert"]
    assert alerts and "done" in alerts[0]["title"] and alerts[0]["severity"] == "warning", issues


def test_bad_calls_say_what_is_wrong() -> None:
    from atlas_callback import wandb_compat as wandb

    with pytest.raises(RuntimeError, match="call wandb.init"):
        wandb.finish() or wandb.log({"a": 1})
    with pytest.raises(ValueError, match="`mode` must be one of"):
        wandb.init(project="wb", mode="sideways")
    run = wandb.init(project="wb", mode="disabled")
    with pytest.raises(ValueError, match="takes a dict"):
        run.log([1, 2])  # type: ignore[arg-type]
    run.log({"a": 1.0})
    assert run.summary["a"] == 1.0 and run.id is None
    run.log({"a": 2.0}, step=5)
    run.log({"a": 3.0}, step=3)  # a step back is ignored, as W&B does (with a warning)
    assert run.summary["a"] == 2.0 and run.step == 6
    with pytest.raises(ValueError, match="`step` must be an integer"):
        run.log({"a": 1.0}, step=-2)
    with pytest.raises(ValueError, match="`level` must be one of"):
        run.alert("t", "x", level="LOUD")
    wandb.finish()


def test_a_run_without_a_loss_key_is_still_a_run(collector) -> None:
    from atlas_callback import wandb_compat as wandb

    with wandb.init(project="wb", name="no-loss", collector=collector.address) as run:
        for step in range(5):
            wandb.log({"reward": float(step)}, step=step * 10)
        run_id = run.id
    keys = {k["key"]: k for k in atlas_json(collector.address, "metrics", run_id)}
    assert keys["reward"]["count"] == 5 and keys["reward"]["last_step"] == 40
    assert atlas_json(collector.address, "runs", "show", run_id)["status"] == "completed"
