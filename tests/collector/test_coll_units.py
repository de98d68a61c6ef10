"""Plain functions of the collector: step thinning under load, the [diagnostics] config table."""
from __future__ import annotations

import math

import pytest

from atlas_collector import ConfigError, load_config
from atlas_collector._driver import thin


def _steps(n: int) -> list[tuple]:
    return [(0, i, 0, 1.0, 0.01, 1.0, None, False) for i in range(n)]


def test_thinning_keeps_every_notable_step() -> None:
    rows = _steps(10_000)
    rows[1234] = (0, 1234, 0, math.nan, 0.01, 1.0, None, False)
    rows[4321] = (0, 4321, 0, 50.0, 0.01, 1.0, None, False)  # a loss spike
    rows[777] = (0, 777, 0, 1.0, 0.01, 1e9, None, False)  # an exploding gradient
    rows[555] = (0, 555, 0, math.inf, 0.01, 1.0, None, True)  # AMP skipped
    kept = thin(rows, 100)
    steps = {r[1] for r in kept}
    assert {1234, 4321, 777, 555, 9_999} <= steps
    assert 100 <= len(kept) <= 106
    assert [r[1] for r in kept] == sorted(steps)  # still in order
    assert thin(rows[:50], 100) == rows[:50]  # below the limit nothing is dropped


@pytest.mark.parametrize(("table", "message"), [
    ("loss_explosion_ratio = 1.5\nno_such_threshold = 3", "unknown threshold 'no_such_threshold'"),
    ("disabled_checks = ['nan_loss', 'bogus']", "disabled_checks must be a list of check ids"),
    ("eur_per_tonne = -1", "eur_per_tonne must be a number >= 0"),
])
def test_a_bad_diagnostics_table_is_refused_at_start(tmp_path, table: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[diagnostics]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_config({"config": str(path)}, env={})


def test_the_diagnostics_table_sets_collector_thresholds(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("retention_days = 30\n[diagnostics]\nstalled_seconds = 60\ndisabled_checks = ['high_cpu']\n"
                    "eur_per_tonne = 80\n")
    config = load_config({"config": str(path)}, env={})
    assert config.thresholds.stalled_seconds == 60.0
    assert config.disabled_checks == ("high_cpu",) and config.eur_per_tonne == 80.0
    assert config.retention_days == 30.0
