"""Plain functions of the collector: step thinning under load, the [diagnostics] config table."""
from __future__ import annotations

import math

import pytest

from atlas_collector import ConfigError, load_config
from atlas_collector._driver import thin
from atlas_proto.v1 import telemetry_pb2 as tpb


def _sample(step: int, loss: float = 1.0, grad_norm: float = 1.0, amp_skipped: bool = False) -> tpb.StepSample:
    return tpb.StepSample(step=step, epoch=0, loss=loss, lr=0.01, grad_norm=grad_norm, amp_skipped=amp_skipped)


def test_thinning_keeps_every_notable_step() -> None:
    rows = [_sample(i) for i in range(10_000)]
    rows[1234] = _sample(1234, loss=math.nan)
    rows[4321] = _sample(4321, loss=50.0)  # a loss spike
    rows[777] = _sample(777, grad_norm=1e9)  # an exploding gradient
    rows[555] = _sample(555, loss=math.inf, amp_skipped=True)  # AMP skipped
    kept = [rows[i] for i in thin(rows, 100)]
    steps = {r.step for r in kept}
    assert {1234, 4321, 777, 555, 9_999} <= steps
    assert 100 <= len(kept) <= 106
    assert [r.step for r in kept] == sorted(steps)  # still in order
    assert list(thin(rows[:50], 100)) == list(range(50))  # below the limit nothing is dropped


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
