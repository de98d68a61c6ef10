"""Rows a collector stored before ingest refused such values (or values at the edge of what it accepts) must not
break the CLI for everyone: `atlas runs`, `runs show`, `green`, `export`, and `runs delete` on a run that cannot be
read (issue 18, item 5 and 8)."""
from __future__ import annotations

import json
import pathlib

import pytest
import sqlalchemy as sa

from atlas_collector import run_server
from atlas_collector import _schema as s
from cli_support import atlas
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "collector"))
from coll_support import Trainer


@pytest.fixture
def poisoned(tmp_path: pathlib.Path):
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        t = Trainer(collector.address)
        t.start(name="poisoned")
        t.steps([1.0, 0.9, 0.8])
        t.epoch(0, 1.0, val_loss=1.1, co2=2e307)  # finite, accepted: a broken carbon reading
        t.epoch(1, 0.9, val_loss=1.0, co2=2e307)  # its price in EUR overflows a float
        t.end()
        t.finish()
        with collector.store.begin() as conn:  # what an older collector let in
            conn.execute(sa.update(s.runs).where(s.runs.c.id == t.run_id)
                         .values(epochs=2**32, steps=2**63 - 1, ended_at=1e18))
            conn.execute(sa.insert(s.run_tags), [{"run_id": t.run_id, "tag": f"{i}" + "x" * 1_000_000}
                                                 for i in range(5)])
        healthy = Trainer(collector.address)
        healthy.start(name="healthy")
        healthy.epoch(0, 1.0)
        healthy.end()
        healthy.finish()
        yield collector, t.run_id, healthy.run_id


def test_listing_and_showing_survive_values_out_of_range(poisoned, tmp_path: pathlib.Path) -> None:
    collector, run_id, healthy_id = poisoned
    runs = json.loads(atlas("runs", "--json", collector=collector.address).stdout)
    assert {r["id"] for r in runs} == {run_id, healthy_id}
    shown = json.loads(atlas("runs", "show", run_id, "--json", collector=collector.address).stdout)
    assert (shown["id"], shown["ended_at"], shown["epochs"]) == (run_id, None, 2**32 - 1)
    green = atlas("green", run_id, "--json", collector=collector.address)
    assert json.loads(green.stdout)["total_co2_kg"] >= 2e307
    table = atlas("green", run_id, collector=collector.address)  # "Infinity" EUR crashed the table
    assert "CO2 total" in table.stdout and "inf smartphone charges" in table.stdout
    exported = atlas("export", run_id, "--output", str(tmp_path / "export"), collector=collector.address)
    assert run_id in exported.stdout and (tmp_path / "export" / "events.jsonl").exists()


def test_delete_works_on_a_run_that_cannot_be_read(poisoned) -> None:
    collector, run_id, healthy_id = poisoned
    done = atlas("runs", "delete", run_id, "--yes", collector=collector.address)
    assert f"deleted run {run_id}" in done.stdout
    runs = json.loads(atlas("runs", "--json", collector=collector.address).stdout)
    assert [r["id"] for r in runs] == [healthy_id]
