"""`atlas watch` charts user metrics, with a log axis where the values span decades and distinct marks."""
from __future__ import annotations

import json
import subprocess

import pytest

from atlas_collector import run_server
from conftest import BIN, cli_env
from test_int_user_metrics import _plain_run


def test_a_loss_that_spans_decades_is_drawn_on_a_log_axis() -> None:
    from atlas_cli._watch import line_chart

    loss = [10.0, 1.0, 0.1, 0.01]
    lines = line_chart({"loss": loss}, width=31, height=7)
    grid = [line.split("│", 1)[1].ljust(31) for line in lines[:7]]
    assert lines[0].strip().startswith("10 │") and lines[6].startswith("0.01 │")
    # on a log axis the four decades are evenly spaced: rows 0, 2, 4, 6
    assert [grid[r][x] for r, x in ((0, 0), (2, 10), (4, 20), (6, 30))] == ["●"] * 4
    assert lines[-1].endswith("(log scale)")
    linear = line_chart({"loss": loss}, width=31, height=7, scale="linear")
    assert "(log scale)" not in linear[-1]
    assert line_chart({"loss": [3.0, 2.0, 1.5]}, width=31, height=7)[-1] == "● loss"  # less than 2 decades


def test_each_series_has_its_own_mark_and_a_meeting_point_is_shown() -> None:
    from atlas_cli._watch import line_chart

    lines = line_chart({"a": [(0, 1.0), (10, 2.0)], "b": [(0, 1.0), (10, 3.0)], "c": [(5, 2.5)]}, width=21,
                       height=5, x_label="step")
    legend = lines[-1]
    marks = [part.split(" ")[0] for part in legend.split("  ")[:3]]
    assert len(set(marks)) == 3 and "*" not in marks
    grid = [line.split("│", 1)[1].ljust(21) for line in lines[:5]]
    assert grid[4][0] == "✱" and "✱ overlap" in legend  # a and b both start at (0, 1)
    assert "step 0" in lines[-2] and lines[-2].rstrip().endswith("10")


@pytest.mark.slow
def test_watch_prints_the_user_metrics_of_a_run(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'watch.db'}") as c:
        run_id = _plain_run(c.address)
        plain = subprocess.run([str(BIN / "atlas"), "--collector", c.address, "watch", run_id],
                               capture_output=True, text=True, env=cli_env(), timeout=60)
        assert plain.returncode == 0, plain.stderr
        line = next(x for x in plain.stdout.splitlines() if x.startswith("metrics"))
        assert "val_acc 0.79 (step 29)" in line and "train_acc" in line
        events = [json.loads(x) for x in subprocess.run(
            [str(BIN / "atlas"), "--collector", c.address, "watch", run_id, "--json", "--metric", "tokens"],
            capture_output=True, text=True, env=cli_env(), timeout=60).stdout.splitlines()]
        metrics = next(e for e in events if e["event"] == "metrics")["metrics"]
        assert metrics["tokens"] == {"step": 29, "value": 232} and metrics["weird"]["value"] is None
