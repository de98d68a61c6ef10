"""User metrics end to end: every scalar logged per step is stored, listed by `atlas metrics`, and bounded."""
from __future__ import annotations

import subprocess

import pytest
import torch
from torch import nn

from atlas_callback import Observer
from atlas_collector import run_server
from conftest import BIN, atlas_json, cli_env
from _query import Query


@pytest.fixture
def collector(tmp_path):
    with run_server(db=f"sqlite:///{tmp_path / 'metrics.db'}") as c:
        c.query = Query(c.address)
        yield c
        c.query.close()


def _plain_run(address: str, steps: int = 30) -> str:
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Observer(project="um", run_name="plain", collector=address) as obs:
        obs.register_model(model)
        for step in range(steps):
            x = torch.randn(8, 4)
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            obs.step(loss, batch_size=8, optimizer=opt)
            obs.log({"train_acc": step / steps, "tokens": float(step * 8)}, step=step)
            if step % 10 == 9:
                obs.log({"val_acc": 0.5 + step / 100, "weird": float("nan"), "skip": "text"}, step=step)
                obs.flush()
    return obs.run_id


def test_every_logged_scalar_is_kept_per_step_and_listed(collector) -> None:
    run_id = _plain_run(collector.address)
    keys = {k["key"]: k for k in atlas_json(collector.address, "metrics", run_id)}
    assert set(keys) == {"train_acc", "tokens", "val_acc", "weird"}
    assert keys["train_acc"]["count"] == 30 and keys["train_acc"]["last_step"] == 29
    assert keys["val_acc"]["count"] == 3 and keys["val_acc"]["last_value"] == pytest.approx(0.79)
    series = atlas_json(collector.address, "metrics", run_id, "train_acc")
    assert [p["step"] for p in series] == list(range(30))
    assert set(series[0]) == {"step", "epoch", "value", "time"}
    assert series[5]["value"] == pytest.approx(5 / 30) and series[29]["epoch"] == 2
    weird = atlas_json(collector.address, "metrics", run_id, "weird")
    assert [p["value"] for p in weird] == [None, None, None]  # NaN is data; JSON prints it as null
    # the table names the keys; a NaN shows as nan
    table = subprocess.run([str(BIN / "atlas"), "--collector", collector.address, "metrics", run_id, "weird"],
                           capture_output=True, text=True, env=cli_env(), timeout=60)
    assert table.returncode == 0 and "nan" in table.stdout.lower()
    # val metrics logged with Observer.log reach the epoch summaries (diagnostics evidence)
    epochs = collector.query.epochs(run_id)
    assert epochs[0].val_metrics["val_acc"] == pytest.approx(0.59)


def test_both_stores_keep_the_same_points(db_url) -> None:
    """SQLite and PostgreSQL: the same keys, counts and values, NaN included (SQLite has no NaN float)."""
    with run_server(db=db_url) as c:
        run_id = _plain_run(c.address, steps=20)
        keys = {k["key"]: (k["count"], k["last_step"]) for k in atlas_json(c.address, "metrics", run_id)}
        assert keys == {"train_acc": (20, 19), "tokens": (20, 19), "val_acc": (2, 19), "weird": (2, 19)}
        assert [p["value"] for p in atlas_json(c.address, "metrics", run_id, "weird")] == [None, None]
        assert atlas_json(c.address, "metrics", run_id, "val_acc")[0]["value"] == pytest.approx(0.59)


def test_atlas_export_writes_every_point(collector, tmp_path) -> None:
    import csv

    run_id = _plain_run(collector.address, steps=10)
    summary = atlas_json(collector.address, "export", run_id, "-o", str(tmp_path / "out"))
    assert summary["metric_points"] == 10 + 10 + 2 + 0 and "metrics.csv" in summary["files"]
    rows = list(csv.DictReader(open(tmp_path / "out" / "metrics.csv", encoding="utf-8")))
    assert set(rows[0]) == {"key", "step", "epoch", "value", "time"}
    acc = [r for r in rows if r["key"] == "train_acc"]
    assert [int(r["step"]) for r in acc] == list(range(10)) and float(acc[3]["value"]) == pytest.approx(0.3)
    assert [r["value"] for r in rows if r["key"] == "weird"] == ["nan"]


def test_retention_bounds_the_points_of_each_key(collector) -> None:
    from atlas_collector import _metrics
    from atlas_collector._retention import apply_retention

    run_id = _plain_run(collector.address, steps=30)
    store = collector.collector.store
    with store.begin() as conn:
        apply_retention(conn, steps_per_run=5, now=0.0)
    with store.connect() as conn:
        counts = {k["key"]: k["count"] for k in _metrics.keys(conn, run_id)}
        assert counts["train_acc"] == 5 and counts["val_acc"] == 3
        assert [p["step"] for p in _metrics.series(conn, run_id, "train_acc")] == [25, 26, 27, 28, 29]


def test_a_missing_key_and_a_bad_run_are_one_line_errors(collector) -> None:
    run_id = _plain_run(collector.address, steps=10)
    empty = atlas_json(collector.address, "metrics", run_id, "no_such_key")
    assert empty == []
    done = subprocess.run([str(BIN / "atlas"), "--collector", collector.address, "metrics", "nope-no-run"],
                          capture_output=True, text=True, env=cli_env(), timeout=60)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1


def test_observer_log_refuses_what_is_not_a_dict() -> None:
    obs = Observer(project="um", collector="127.0.0.1:1")
    with pytest.raises(ValueError, match="`metrics` must be a dict"):
        obs.log([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`step` must be an integer"):
        obs.log({"a": 1.0}, step=-1)


def test_accelerator_log_keeps_every_key_at_its_step(collector) -> None:
    from accelerate import Accelerator
    from torch.utils.data import DataLoader, TensorDataset

    from accelerate.state import AcceleratorState

    from atlas_callback import AtlasTracker

    AcceleratorState._reset_state(reset_partial_state=True)  # a Trainer earlier in this process set its own
    tracker = AtlasTracker(project="um", run_name="accelerate", collector=collector.address)
    acc = Accelerator(cpu=True, log_with=[tracker])
    acc.init_trackers("um", config={"lr": 0.1})
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    model, opt, loader = acc.prepare(model, opt, DataLoader(data, batch_size=8))
    tracker.watch(model, acc)
    step = 0
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x), y)
        acc.backward(loss)
        opt.step()
        opt.zero_grad()
        acc.log({"loss": loss.item(), "train_acc": 0.5, "custom/thing": float(step)}, step=step)
        step += 1
    tracker.epoch_end(val_metrics={"val_loss": 1.0})
    acc.end_training()
    keys = {k["key"]: k for k in atlas_json(collector.address, "metrics", tracker.run_id)}
    assert keys["custom/thing"]["count"] == 8 and keys["custom/thing"]["last_value"] == 7
    assert keys["loss"]["count"] == 8 and keys["train_acc"]["count"] == 8
    assert [p["step"] for p in atlas_json(collector.address, "metrics", tracker.run_id, "custom/thing")] == list(
        range(8))


def test_a_hostile_metric_name_is_shown_escaped_and_kept_exact_in_json(collector) -> None:
    model = nn.Linear(2, 1)
    with Observer(project="um", run_name="hostile", collector=collector.address) as obs:
        obs.register_model(model)
        obs.log({"evil\x1b]0;pwned\x07name": 1.0}, step=0)
        obs.step(model(torch.randn(2, 2)).sum())
    keys = [k["key"] for k in atlas_json(collector.address, "metrics", obs.run_id)]
    assert keys == ["evil\x1b]0;pwned\x07name"]
    table = subprocess.run([str(BIN / "atlas"), "--collector", collector.address, "metrics", obs.run_id],
                           capture_output=True, text=True, env=cli_env(), timeout=60)
    assert table.returncode == 0 and "\x1b" not in table.stdout and "\x07" not in table.stdout
    assert "evil" in table.stdout
