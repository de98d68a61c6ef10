"""A run whose loss went to inf shows `inf` where the loss is, in the table (issue 17: the LOSS column was dropped),
and null in JSON, which has no Infinity."""
from __future__ import annotations

import json
import math

from cli_support import atlas

from atlas_callback import AtlasConfig, Observer
from atlas_collector import run_server


def test_an_inf_loss_shows_as_inf_in_the_table_and_null_in_json(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'inf.db'}") as c:
        with Observer(project="nonfinite", run_name="infrun", collector=c.address,
                      config=AtlasConfig(track_carbon=False)) as obs:
            for _ in range(4):
                obs.step(1.0)
            obs.flush(val_metrics={"val_loss": 1.0})
            for i in range(4):
                obs.step(math.inf if i == 2 else 1.0)
            obs.flush(val_metrics={"val_loss": 2.0})
        table = atlas("epochs", "infrun", collector=c.address).stdout.splitlines()
        assert table[0].split()[:2] == ["EPOCH", "LOSS"]
        assert table[2].split()[:2] == ["1", "inf"], table
        rows = json.loads(atlas("epochs", "infrun", "--json", collector=c.address).stdout)
        assert rows[1]["loss_mean"] is None and rows[1]["loss_nonfinite"] == 1 and rows[0]["loss_mean"] == 1
