"""Records and thresholds: JSON round trips (NaN included), validation messages, overrides."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from diag_synth import cnn, conv, epochs, mlp, pool

from atlas_diagnostics import (
    Architecture,
    ArchNode,
    EpochRecord,
    LogRecord,
    RecordError,
    RunInfo,
    StepRecord,
    ThresholdError,
    Thresholds,
)


def roundtrip(record: Any) -> Any:
    text = json.dumps(record.to_dict(), allow_nan=False)  # strict JSON: non-finite floats become strings
    return type(record).from_dict(json.loads(text))


@pytest.mark.parametrize("record", [
    epochs(3, deep=True, cuda=True)[2],
    EpochRecord(epoch=4, train_mean=math.inf, train_max=-math.inf, grad_norm=math.nan),
    StepRecord(step=3, epoch=0, loss=math.nan, grad_norm=math.inf, amp_skipped=True),
    LogRecord("ERROR", "boom", epoch=2, time=12.5),
    mlp(),
    cnn(conv("c1", cin=1, cout=8, k=5), pool("p"), input_shape=(1, 28, 28)),
    RunInfo(device="cuda", world_size=4, framework="lightning", cuda_available=True),
], ids=lambda r: type(r).__name__)
def test_records_roundtrip_through_strict_json(record: Any) -> None:
    back = roundtrip(record)
    assert back.to_dict() == record.to_dict()


def test_nan_roundtrips_as_nan() -> None:
    back = roundtrip(StepRecord(step=1, epoch=0, loss=math.nan, grad_norm=-math.inf))
    assert math.isnan(back.loss) and back.grad_norm == -math.inf
    assert StepRecord(step=1, epoch=0, loss=math.nan).to_dict()["loss"] == "NaN"


def test_missing_values_stay_none() -> None:
    rec = EpochRecord.from_dict({"epoch": 0})
    assert rec.train_mean is None and rec.profiler is None and rec.gpus == () and rec.val == {}
    assert rec.to_dict()["samples_per_sec"] is None


@pytest.mark.parametrize("cls, data, match", [
    (EpochRecord, {"epoch": 0, "train_loss": 1.0}, r"EpochRecord has no field 'train_loss'; allowed: epoch, rank"),
    (EpochRecord, {"epoch": 0, "train_mean": "low"}, r"EpochRecord.train_mean must be a number, got 'low'"),
    (EpochRecord, {"epoch": -1}, r"EpochRecord.epoch must be a non-negative integer, got -1"),
    (EpochRecord, {"epoch": 0, "grad_accumulation": 0}, r"grad_accumulation must be an integer >= 1"),
    (EpochRecord, {"epoch": 0, "gpus": {"util": 3}}, r"EpochRecord.gpus must be a list"),
    (EpochRecord, {"epoch": 0, "val": {"val_loss": "x"}}, r"EpochRecord.val.val_loss must be a number"),
    (EpochRecord, {"train_mean": 1.0}, r"EpochRecord: .*epoch"),
    (StepRecord, {"step": 1, "epoch": 0, "amp_skipped": "yes"}, r"StepRecord.amp_skipped must be true or false"),
    (LogRecord, {"level": "LOUD", "message": "x"}, r"LogRecord.level must be one of DEBUG, INFO, WARNING"),
    (RunInfo, {"device": "tpu"}, r"RunInfo.device must be one of cpu, cuda, mps, got 'tpu'"),
    (RunInfo, {"world_size": 0}, r"RunInfo.world_size must be an integer >= 1"),
    (Architecture, {"nodes": [{"id": "c", "type": "Conv2d", "kernel_size": "3"}]}, r"ArchNode.kernel_size"),
])
def test_bad_records_name_the_field(cls: Any, data: dict[str, Any], match: str) -> None:
    with pytest.raises(RecordError, match=match):
        cls.from_dict(data)


def test_architecture_accepts_the_prototype_layer_map_and_int_kernels() -> None:
    arch = Architecture.from_dict({
        "total_parameters": 1000,
        "layers": {"conv1": {"type": "Conv2d", "parameters": 320, "pct_of_total": 32.0}},
        "nodes": [{"id": "conv1", "type": "Conv2d", "kernel_size": 5, "in_channels": 1, "out_channels": 32}],
    })
    assert arch.layers[0].name == "conv1" and arch.nodes[0].kernel_size == (5,)
    assert arch.param_share() == {"conv1": 0.32}


@pytest.mark.parametrize("nodes, expected", [
    ((ArchNode("a", "MultiheadAttention"), ArchNode("c", "Conv2d")), "transformer"),
    ((ArchNode("r", "GRU"), ArchNode("c", "Conv1d")), "rnn"),
    ((ArchNode("c", "Conv2d"), ArchNode("f", "Linear")), "cnn"),
    ((ArchNode("f", "Linear"),), "generic"),
    ((ArchNode("x", "MyBlock", category="attention"),), "transformer"),
])
def test_arch_type_detection(nodes: tuple[ArchNode, ...], expected: str) -> None:
    from atlas_diagnostics import detect_arch_type
    assert detect_arch_type(Architecture(nodes=nodes)) == expected


# ------------------------------------------------------------------------------------------ thresholds -------
def test_threshold_defaults_are_the_reference_values() -> None:
    th = Thresholds()
    assert (th.loss_explosion_ratio, th.loss_plateau_min_improvement_pct, th.high_loss_variance_cv) == (2.0, 0.01, 0.5)
    assert (th.throughput_drop_pct, th.memory_growth_pct, th.slow_epoch_factor, th.high_cpu_percent) == \
        (0.20, 0.25, 1.5, 90.0)
    assert (th.profiler_hotspot_pct, th.backward_dominance_pct, th.fwd_bwd_min_ratio) == (0.40, 0.45, 0.15)
    assert (th.vanishing_gradient_norm, th.fc_dominates_pct, th.redundant_correlation) == (1e-7, 0.92, 0.95)


def test_from_mapping_overrides_and_coerces_ints() -> None:
    th = Thresholds.from_mapping({"loss_explosion_ratio": 3, "slow_epoch_window": 10})
    assert th.loss_explosion_ratio == 3.0 and isinstance(th.loss_explosion_ratio, float)
    assert th.slow_epoch_window == 10
    assert Thresholds.from_mapping({"high_cpu_percent": 95}, base=th).loss_explosion_ratio == 3.0
    assert Thresholds.from_mapping(None) == Thresholds()


@pytest.mark.parametrize("overrides, match", [
    ({"loss_explode": 2.0}, r"unknown threshold 'loss_explode'; allowed: loss_explosion_ratio, "),
    ({"loss_explosion_ratio": "2"}, r"threshold 'loss_explosion_ratio' must be a number, got '2'"),
    ({"slow_epoch_window": 2.5}, r"threshold 'slow_epoch_window' must be an int, got 2.5"),
    ({"high_cpu_percent": True}, r"threshold 'high_cpu_percent' must be a number, got True"),
    ({"memory_growth_pct": -0.1}, r"threshold 'memory_growth_pct' must be a non-negative number, got -0.1"),
    ({"memory_growth_pct": math.nan}, r"'memory_growth_pct' must be a non-negative number, got nan"),
    (["loss_explosion_ratio"], r"threshold overrides must be a mapping, got list"),
])
def test_bad_overrides_name_the_key(overrides: Any, match: str) -> None:
    with pytest.raises(ThresholdError, match=match):
        Thresholds.from_mapping(overrides)


def test_threshold_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Thresholds(high_cpu_percent=-1)


def test_package_is_pure_python_without_io_or_clock() -> None:
    import ast
    import pathlib

    import atlas_diagnostics

    allowed = {"__future__", "collections", "dataclasses", "math", "typing"}
    forbidden_calls = {"open", "print", "input"}
    root = pathlib.Path(atlas_diagnostics.__file__).parent
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [(node.module or "").split(".")[0]]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in forbidden_calls, f"{path.name} calls {node.func.id}()"
                continue
            else:
                continue
            assert set(names) <= allowed, f"{path.name} imports {names}"
        assert len(path.read_text().splitlines()) < 600, path.name
    assert (root / "py.typed").exists()


def test_step_record_from_wire_is_the_same_record_and_still_frozen() -> None:
    """The collector's fast constructor builds exactly what the checked one builds (equal, same hash, frozen)."""
    import dataclasses

    from atlas_diagnostics import StepRecord

    for args in ((7, 2, 1, float("nan"), None, 3.5, 1.7e9, True), (0, 0, 0, None, 1e-3, None, None, False)):
        fast, checked = StepRecord.from_wire(*args), StepRecord(*args)
        assert repr(fast) == repr(checked) and hash(fast) == hash(checked)
        assert fast == checked or fast.loss != fast.loss  # NaN != NaN, field by field
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.step = 8  # type: ignore[misc]
