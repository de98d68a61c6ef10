"""The same field order every time (issue 17): final metrics, hyperparameters, the Green-AI report and its
equivalents, trends and layer attributes come from protobuf maps, whose order depends on the key set; two runs
with different metrics printed the shared fields in different places. Every such mapping is printed sorted."""
from __future__ import annotations

from typing import Any

import pytest

from atlas_collector import run_server
from cli_support import atlas, atlas_json
from collector.coll_support import Trainer, wait_for


def _run(address: str, name: str, metrics: dict[str, float], hparams: dict[str, Any]) -> str:
    t = Trainer(address)
    t.start(project="order", name=name, hyperparameters=hparams)
    t.steps([1.0, 0.8, 0.6])
    seq = t.epoch(0, 0.7, val_loss=0.75, co2=1e-4)
    m = t._msg()
    e = m.epoch_summary
    e.epoch, e.duration_seconds, e.global_step = 1, 2.0, 20
    e.ended_at.GetCurrentTime()
    e.loss.mean, e.loss.count = 0.6, 10
    e.carbon.epoch_co2_kg, e.carbon.epoch_energy_kwh, e.carbon.cumulative_co2_kg = 1e-4, 4e-4, 2e-4
    e.carbon.cumulative_energy_kwh, e.carbon.power_draw_watts = 8e-4, 50.0
    for key, value in metrics.items():
        e.val_metrics[key] = value
    t.outbox.put(m)
    last = t.end()
    wait_for(lambda: t.acked() >= last, 20, f"run {name} stored")
    t.outbox.put(None)
    return t.run_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    with run_server(db=f"sqlite:///{tmp_path_factory.mktemp('order') / 'o.db'}") as c:
        a = _run(c.address, "a", {"val_loss": 0.7, "val_acc": 0.8, "zeta": 1.0, "alpha": 2.0},
                 {"lr": 0.1, "batch_size": 32, "optimizer": "sgd", "model": {"depth": 4, "act": "relu"}})
        b = _run(c.address, "b", {"val_loss": 0.6, "val_acc": 0.9, "beta": 3.0},
                 {"lr": 0.01, "batch_size": 64, "weight_decay": 0.0, "model": {"width": 8, "act": "gelu"}})
        yield c.address, a, b


def _sorted_everywhere(value: Any, where: str = "") -> None:
    if isinstance(value, dict):
        assert list(value) == sorted(value), f"{where or 'top'}: {list(value)}"
        for k, v in value.items():
            _sorted_everywhere(v, f"{where}.{k}")


def test_final_metrics_and_hyperparameters_print_in_one_order_for_every_run(runs) -> None:
    address, a, b = runs
    for run in (a, b):
        detail = atlas_json("runs", "show", run, collector=address)
        for field in ("final_metrics", "hyperparameters", "versions"):
            _sorted_everywhere(detail[field], field)
    shared_a = [k for k in atlas_json("runs", "show", a, collector=address)["final_metrics"] if k.startswith("val")]
    shared_b = [k for k in atlas_json("runs", "show", b, collector=address)["final_metrics"] if k.startswith("val")]
    assert shared_a == shared_b == sorted(shared_a)


def test_the_green_report_and_its_equivalents_print_in_one_order(runs) -> None:
    address, a, b = runs
    reports = [atlas_json("green", run, collector=address) for run in (a, b)]
    for report in reports:
        _sorted_everywhere(report)
    assert list(reports[0]) == list(reports[1])
    assert list(reports[0]["co2_equivalents"]) == list(reports[1]["co2_equivalents"])
    # and the table shows the equivalents in that order too
    text = atlas("green", a, collector=address).stdout
    names = [k for k in reports[0]["co2_equivalents"] if reports[0]["co2_equivalents"][k] is not None]
    positions = [text.find(k.replace("_", " ")) for k in names if text.find(k.replace("_", " ")) != -1]
    assert positions == sorted(positions)


def test_the_project_trend_prints_in_one_order(runs) -> None:
    address, _, _ = runs
    _sorted_everywhere(atlas_json("trend", "order", collector=address))


def test_tags_given_to_an_adapter_are_shown_and_filtered_by_atlas_runs(tmp_path) -> None:
    from atlas_callback import AtlasConfig, Observer

    with run_server(db=f"sqlite:///{tmp_path / 't.db'}") as c:
        quiet = AtlasConfig(track_carbon=False, track_layer_health=False, track_gpu=False)
        with Observer(project="tags", run_name="tagged", tags=["baseline", "bs64"], collector=c.address,
                      config=quiet) as obs:
            obs.step(1.0)
        with Observer(project="tags", run_name="plain", collector=c.address, config=quiet) as other:
            other.step(1.0)
        table = atlas("runs", "--project", "tags", collector=c.address).stdout
        [line] = [line for line in table.splitlines() if "tagged" in line]
        assert "baseline, bs64" in line and "TAGS" in table
        only = atlas_json("runs", "--tag", "bs64", collector=c.address)
        assert [r["name"] for r in only] == ["tagged"] and only[0]["tags"] == ["baseline", "bs64"]
        assert obs.run_id != other.run_id
