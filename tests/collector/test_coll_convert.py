"""The one conversion layer (`atlas_proto.convert`, issue 13).

The property test: the collector and the offline `atlas diagnose` agree. On random runs, the records the
collector's diagnostics driver reads back from its store and the records `atlas diagnose` reads from an
`atlas export` of the same run are the same, and so are the issues each path reports. Both paths are the real ones:
the run's messages are stored by the collector's ingest, the collector diagnoses it through the Diagnose RPC (its
driver rebuilds the run from the store) and answers ListIssues; the export is written by `atlas export`'s own code
over the QueryService and read back by `atlas diagnose`'s. The records are taken where each path hands them to its
`Engine`, so a field converted differently on one side fails here.

Then the issue's one field list: every shape of an issue (the Issue, its store row, the qpb.Issue, the JSON)
follows it, and a round trip through each keeps every value."""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import uuid
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atlas_diagnostics
from atlas_diagnostics import Engine, Issue
from atlas_proto import convert
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import telemetry_pb2 as tpb

from atlas_collector import _driver, run_server
from atlas_collector._ingest import apply_message
from atlas_collector._store import Store
from atlas_collector._validate import validate

T0 = 1_750_000_000.0  # the runs' start (seconds since the Unix epoch)


class Recording(Engine):
    """An `Engine` that keeps what it was built with and every batch of records it was given."""

    made: list[Recording] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.built_with = kwargs
        self.records: dict[str, list[Any]] = {"epochs": [], "steps": [], "logs": [], "architecture": []}
        Recording.made.append(self)

    def update(self, **records: Any) -> Any:
        for kind in ("epochs", "steps", "logs"):
            self.records[kind] += list(records.get(kind) or ())
        if records.get("architecture") is not None:
            self.records["architecture"].append(records["architecture"])
        return super().update(**records)


# ------------------------------------------------------------------------------------------ random runs

def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


_LOSS = _floats(0.0, 10.0) | st.sampled_from([math.nan, math.inf])
_LAYERS = [  # (name, type, attributes as a trainer sends them, parameters)
    ("conv1", "Conv2d", {"in_channels": 1, "out_channels": 64, "kernel_size": [7, 7], "stride": 1, "padding": [0]},
     3200),
    ("conv2", "Conv2d", {"in_channels": 64, "out_channels": 8, "kernel_size": 3}, 4616),
    ("rnn", "LSTM", {"input_size": 8, "hidden_size": 16, "num_layers": 5, "bidirectional": False,
                     "batch_first": True}, 9000),
    ("emb", "Embedding", {"num_embeddings": 50000, "embedding_dim": 512}, 25_600_000),
    ("drop", "Dropout", {"p": 0.5}, 0),
    ("fc1", "Linear", {"in_features": 4096, "out_features": 512}, 2_097_664),
    ("head", "Linear", {"in_features": 512, "out_features": 10}, 5130),
]


@st.composite
def _model_info(draw: st.DrawFn) -> tpb.ModelInfo:
    chosen = draw(st.lists(st.sampled_from(_LAYERS), min_size=1, max_size=5, unique_by=lambda x: x[0]))
    total = sum(p for *_, p in chosen)
    m = tpb.ModelInfo(model_class="Net", total_parameters=total, trainable_parameters=total)
    for name, kind, attrs, params in chosen:
        layer = m.layers.add(name=name, type=kind, parameters=params, pct_of_total=100.0 * params / max(total, 1))
        layer.attributes.update(attrs)
    m.sequential_path.extend(name for name, *_ in chosen)
    if draw(st.booleans()):
        m.dimension_flow.add(input_shape=[32, 1, 28, 28])
    return m


@st.composite
def _epoch(draw: st.DrawFn, epoch: int, step: int, layers: list[str]) -> tpb.EpochSummary:
    m = tpb.EpochSummary(epoch=epoch, duration_seconds=draw(_floats(0.0, 100.0)), global_step=step)
    m.started_at.FromNanoseconds(int((T0 + 60 * epoch) * 1e9))
    m.ended_at.FromNanoseconds(int((T0 + 60 * epoch + 59.5) * 1e9))  # a trainer always sends it (see the report)
    mean = draw(_maybe(_LOSS))
    if mean is not None:
        m.loss.mean, m.loss.std = mean, draw(_floats(0.0, 3.0))
        m.loss.min, m.loss.max = draw(_floats(0.0, 1.0)), draw(_floats(1.0, 20.0))
    m.loss.count, m.loss.nonfinite_count = draw(st.integers(0, 50)), draw(st.integers(0, 2))
    for key in draw(st.lists(st.sampled_from(["val_loss", "val_acc", "loss"]), unique=True, max_size=2)):
        m.val_metrics[key] = draw(_floats(0.0, 5.0))
    for key in draw(st.lists(st.sampled_from(["train_acc", "val_loss"]), unique=True, max_size=2)):
        m.train_metrics[key] = draw(_floats(0.0, 5.0))
    for f in ("samples_per_sec", "batches_per_sec", "tokens_per_sec", "step_time_p50_s", "step_time_p95_s",
              "step_time_max_s"):
        value = draw(_maybe(_floats(0.0, 1000.0)))
        if value is not None:
            setattr(m.throughput, f, value)
    m.throughput.samples_processed, m.throughput.batches = draw(st.integers(0, 5000)), draw(st.integers(0, 100))
    for f in ("process_rss_mb", "cuda_allocated_mb", "cuda_reserved_mb", "cuda_peak_allocated_mb"):
        value = draw(_maybe(_floats(0.0, 4000.0)))
        if value is not None:
            setattr(m.memory, f, value)
    cpu, ram = draw(_maybe(_floats(0.0, 400.0))), draw(_maybe(_floats(0.0, 100.0)))
    if cpu is not None:
        m.system.cpu_percent = cpu
    if ram is not None:
        m.system.ram_percent = ram
    for i in range(draw(st.integers(0, 2))):
        g = m.gpus.add(index=i, name="H200")
        g.utilization_percent, g.memory_used_mb = draw(_floats(0.0, 100.0)), draw(_floats(0.0, 80_000.0))
        if draw(st.booleans()):
            g.power_watts, g.memory_total_mb, g.temperature_c = 300.0, 80_000.0, 60.0
    m.lr.extend(draw(st.lists(_floats(0.0, 1.0), max_size=2)))
    grad = draw(_maybe(_floats(0.0, 50.0) | st.just(math.inf)))
    if grad is not None:
        m.grad_norm, m.grad_norm_max = grad, grad * 2
    for name in draw(st.lists(st.sampled_from(layers), unique=True)) if layers else ():
        x = m.layer_health.layers.add(name=name, samples=draw(st.integers(0, 20)))
        for f in ("zero_fraction", "saturated_fraction", "weight_sparsity"):
            value = draw(_maybe(_floats(0.0, 1.0)))
            if value is not None:
                setattr(x, f, value)
        for f in ("activation_mean", "activation_std", "activation_var_of_means", "gradient_norm_mean",
                  "update_ratio", "update_ratio_max"):
            value = draw(_maybe(_floats(0.0, 2.0)))
            if value is not None:
                setattr(x, f, value)
    if len(m.layer_health.layers) > 1 and draw(st.booleans()):
        a, b = m.layer_health.layers[0].name, m.layer_health.layers[1].name
        m.layer_health.correlations.add(layer_a=a, layer_b=b, correlation=draw(_floats(-1.0, 1.0)))
    if draw(st.booleans()):
        c = m.carbon
        c.epoch_co2_kg, c.epoch_energy_kwh = draw(_floats(0.0, 0.01)), draw(_floats(0.0, 0.05))
        c.cumulative_co2_kg, c.cumulative_energy_kwh = c.epoch_co2_kg * (epoch + 1), c.epoch_energy_kwh * (epoch + 1)
        c.power_draw_watts, c.country_iso = draw(_floats(0.0, 500.0)), "FRA"
        if draw(st.booleans()):
            c.carbon_intensity_g_per_kwh, c.epoch_cpu_energy_kwh = draw(_floats(0.0, 900.0)), 0.001
    if draw(st.booleans()):
        p = m.profiler
        p.total_cpu_time_ms, p.forward_ms, p.backward_ms = 120.0, draw(_floats(0.0, 50.0)), draw(_floats(0.0, 90.0))
        p.top_ops.add(name="aten::addmm", cpu_time_ms=draw(_floats(0.0, 100.0)), calls=3)
        if layers:
            p.per_layer.add(name=layers[0], pct_total=draw(_floats(0.0, 100.0)))
    if draw(st.booleans()):
        m.log_counts.console, m.log_counts.error = draw(st.integers(0, 9)), draw(st.integers(0, 3))
    m.amp_skipped_steps, m.grad_accumulation = draw(st.integers(0, 2)), draw(st.integers(0, 3))
    if draw(st.booleans()):
        m.facts.update({"optimizer": {"name": draw(st.sampled_from(["sgd", "adam"])), "zero_grad_calls": 0},
                        "mode": {"training": draw(st.booleans())}})
    return m


@st.composite
def runs(draw: st.DrawFn) -> dict[str, Any]:
    """A whole run: its RunStart, architecture, and per rank the steps, logs and summary of each epoch."""
    arch = draw(_maybe(_model_info()))
    layers = [x.name for x in arch.layers] if arch is not None else []
    world = draw(st.integers(1, 2))
    epochs = draw(st.integers(1, 4))
    per_rank: list[list[tpb.ClientMessage]] = []
    for rank in range(world):
        body: list[tpb.ClientMessage] = []
        step = 0
        for epoch in range(epochs):
            batch = tpb.StepBatch()
            for _ in range(draw(st.integers(0, 6))):
                step += 1
                x = batch.samples.add(step=step, epoch=epoch, amp_skipped=draw(st.booleans()))
                x.time.FromNanoseconds(int((T0 + 60 * epoch + step * 0.37) * 1e9))
                for field, strategy in (("loss", _LOSS), ("lr", _floats(0.0, 1.0)), ("grad_norm", _LOSS)):
                    value = draw(_maybe(strategy))
                    if value is not None:
                        setattr(x, field, value)
            if batch.samples:
                body.append(tpb.ClientMessage(step_batch=batch))
            if rank == 0 and draw(st.booleans()):
                logs = tpb.LogBatch()
                level, kind = draw(st.sampled_from([("ERROR", "error"), ("WARNING", "warning"), ("INFO", "console")]))
                r = logs.records.add(level=level, kind=kind, message=f"line {epoch}", epoch=epoch, logger="x")
                r.time.FromNanoseconds(int((T0 + 60 * epoch + 30) * 1e9))
                body.append(tpb.ClientMessage(log_batch=logs))
            body.append(tpb.ClientMessage(epoch_summary=draw(_epoch(epoch, step, layers))))
        per_rank.append(body)
    start = tpb.RunStart(protocol_version=tpb.PROTOCOL_VERSION_1, project="parity", run_name="r",
                         framework=tpb.FRAMEWORK_PYTORCH, world_size=world, on_critical=tpb.ON_CRITICAL_WARN)
    start.started_at.FromNanoseconds(int(T0 * 1e9))
    device = draw(st.sampled_from(["cpu", "cuda"]))
    start.device.kind, start.device.accelerator_available = device, device == "cuda" or draw(st.booleans())
    if draw(st.booleans()):
        start.thresholds.update({"overfitting_epochs": float(draw(st.integers(1, 3)))})  # a Struct number: float
    end = tpb.RunEnd(status=draw(st.sampled_from([tpb.RUN_STATUS_COMPLETED, tpb.RUN_STATUS_FAILED])))
    end.ended_at.FromNanoseconds(int((T0 + 60 * epochs + 5) * 1e9))
    return {"start": start, "arch": arch, "ranks": per_rank, "end": end}


# ---------------------------------------------------------------------------------------------- the two paths

@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    db = f"sqlite:///{tmp_path_factory.mktemp('parity') / 'p.db'}"
    with run_server(db=db) as running:
        store = Store(db)  # the test's own writer into the collector's store: ingest's `apply_message`
        yield running.address, store
        store.close()


def _store(store: Store, run: dict[str, Any]) -> str:
    run_id, session = str(uuid.uuid4()), str(uuid.uuid4())
    messages = [tpb.ClientMessage(run_start=run["start"])]  # unsequenced, as a trainer sends it
    for rank, body in enumerate(run["ranks"]):
        if rank == 0:
            arch = [tpb.ClientMessage(model_info=run["arch"])] if run["arch"] is not None else []
            body = arch + body + [tpb.ClientMessage(run_end=run["end"])]
        for seq, msg in enumerate(body, 1):
            msg.rank, msg.seq = rank, seq
            messages.append(msg)
    with store.begin() as conn:
        for msg in messages:
            msg.run_id, msg.session = run_id, session
            apply_message(conn, msg, validate(msg))
    return run_id


def _collector_side(address: str, run_id: str) -> tuple[Recording, list[dict[str, Any]]]:
    """Diagnose now (the driver rebuilds the run from the store), then the issues as `atlas issues --json
    --include-cleared` prints them."""
    from atlas_proto.convert import issue_dict
    from atlas_cli._client import CollectorClient

    client = CollectorClient(address)
    try:
        client.diagnose(qpb.RunRef(run=run_id))
        issues = client.list_issues(qpb.IssuesRequest(run=run_id, include_inactive=True)).issues
        return Recording.made[-1], [issue_dict(i) for i in issues]
    finally:
        client.close()


def _offline_side(address: str, run_id: str, out: pathlib.Path) -> tuple[Recording, list[Issue]]:
    """`atlas export RUN -o OUT`, then `atlas diagnose OUT` (its engine and issues)."""
    from atlas_cli._app import Ctx
    from atlas_cli._export import diagnose_dir, write_export

    write_export(Ctx(collector=address, token=None, tls_ca=None, json=True), run_id, out)
    _detail, engine = diagnose_dir(out)
    assert isinstance(engine, Recording)
    return engine, list(engine.issues())


def _dicts(records: list[Any], key: Any) -> list[dict[str, Any]]:
    return [r.to_dict() for r in sorted(records, key=key)]  # to_dict: NaN as "NaN", so equal values compare equal


@given(run=runs())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_collector_and_offline_diagnosis_read_the_same_records_and_find_the_same_issues(
        collector: tuple[str, Store], tmp_path_factory: pytest.TempPathFactory, run: dict[str, Any]) -> None:
    address, store = collector
    run_id = _store(store, run)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_driver, "Engine", Recording)  # where the collector's driver builds its engines
        mp.setattr(atlas_diagnostics, "Engine", Recording)  # where `atlas diagnose` builds its engine
        Recording.made = []
        online, online_issues = _collector_side(address, run_id)
        offline, offline_issues = _offline_side(address, run_id, tmp_path_factory.mktemp("export"))
    assert online is not offline

    # the same records, each kind in one order (an engine sorts what it is given)
    assert _dicts(online.records["epochs"], lambda r: (r.epoch, r.rank)) == \
        _dicts(offline.records["epochs"], lambda r: (r.epoch, r.rank))
    assert _dicts(online.records["steps"], lambda r: (r.rank, r.step)) == \
        _dicts(offline.records["steps"], lambda r: (r.rank, r.step))
    assert _dicts(online.records["logs"], lambda r: (r.time, r.message)) == \
        _dicts(offline.records["logs"], lambda r: (r.time, r.message))
    assert [a.to_dict() for a in online.records["architecture"]] == \
        [a.to_dict() for a in offline.records["architecture"]]
    assert online.built_with["run_info"] == offline.built_with["run_info"]
    assert online.built_with["thresholds"].to_dict() == offline.built_with["thresholds"].to_dict()
    assert len(online.records["epochs"]) == sum(1 for body in run["ranks"] for m in body
                                                if m.HasField("epoch_summary"))

    # the same issues, in the same order, field by field: the collector's went Issue -> row -> Issue ->
    # qpb.Issue -> JSON; the offline ones are put through the same last two steps
    # (but `insight`: the collector's alerts write it when an issue opens; the offline diagnosis has none)
    offline_json = [convert.issue_dict(convert.issue_message(run_id, i)) for i in offline_issues]
    assert [i["check"] for i in online_issues] == [i["check"] for i in offline_json]
    for a, b in zip(online_issues, offline_json):
        assert b["insight"] is None
        a = {**a, "insight": None}
        assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b[k]}  # (collector, offline) of each field that differs
    # and what `atlas diagnose --json` prints has the fields of `atlas issues --json`, in the same order
    printed = [{"run": run_id, **i.to_dict()} for i in offline_issues]
    assert all(list(i) == [name for name, _ in convert.ISSUE_FIELDS] for i in printed)


# ------------------------------------------------------------------------------------------- the issue's fields

def _issue(**changes: Any) -> Issue:
    base = Issue(check="loss_explosion", severity="critical", category="loss", title="Loss exploded",
                 description="d", suggestion="s", epoch=3, step=120, layer="fc1", metric_key="loss_ratio",
                 metric_value=12.5, thresholds={"loss_explosion_ratio": 2.0}, first_seen_epoch=2, last_seen_epoch=3,
                 key="fc1", evidence={"best": 0.3, "latest": math.inf, "steps": [1, 2]})
    return dataclasses.replace(base, **changes)


def test_the_issue_field_list_is_the_json_the_message_and_the_dataclass() -> None:
    names = [name for name, _ in convert.ISSUE_FIELDS]
    assert names == ["run", *_issue().to_dict()]  # `atlas issues --json` and `atlas diagnose --json`, in order
    assert set(names) | {"metric_text"} == set(qpb.Issue.DESCRIPTOR.fields_by_name)
    own = {f.name for f in dataclasses.fields(Issue)} - {"key"}  # the key is the store's identity, not a field
    assert own == set(names) - {"run", "insight"}


@pytest.mark.parametrize("value", [12.5, 7, math.nan, -math.inf, "cpu", None])
def test_an_issue_keeps_every_value_through_its_row_and_its_message(value: Any) -> None:
    issue = _issue(metric_value=value)
    row = convert.issue_row("run-1", issue, now=5.0)
    assert row["run_id"] == "run-1" and row["check_id"] == "loss_explosion" and row["key"] == "fc1"
    json_safe = [row["metric_value"], row["evidence"]]
    assert json.loads(json.dumps(json_safe, allow_nan=False)) == json_safe  # the row's JSON columns take it
    back = convert.row_issue(row)
    assert back.to_dict() == issue.to_dict() and back.key == issue.key
    printed = convert.issue_dict(convert.issue_message("run-1", issue, insight="why"))
    expected = value if not isinstance(value, float) or math.isfinite(value) else None  # JSON has no NaN
    assert printed["metric_value"] == expected and printed["insight"] == "why" and printed["run"] == "run-1"
    assert printed["evidence"] == {"best": 0.3, "latest": None, "steps": [1, 2]}
    assert printed["layer"] == "fc1" and printed["rank"] is None and printed["explains"] == []
