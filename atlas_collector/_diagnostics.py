"""The collector's side of `atlas_diagnostics`: stored rows in, diagnostics records out; issues back to rows.

Plain functions. The records are built from what the store holds (the epoch payload is the EpochSummary's
protobuf JSON), so a run diagnosed as it streams and a run rebuilt from the store after a restart see the same
records. Time-based checks get `now` from the caller; nothing here reads a clock."""
from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from atlas_diagnostics import (
    Architecture,
    ArchLayer,
    ArchNode,
    CarbonRecord,
    CorrelationRecord,
    EpochRecord,
    GpuRecord,
    Issue,
    LayerHealthRecord,
    LayerTime,
    LogRecord,
    ProfilerOp,
    ProfilerRecord,
    RunInfo,
    StepRecord,
    Thresholds,
    category_counts,
    severity_counts,
)
from atlas_proto.v1 import telemetry_pb2 as tpb

from . import _schema as s
from ._convert import dict_to_message, opt, struct_dict, ts_to_float

log = logging.getLogger(__name__)

_NODE_INTS = ("in_features", "out_features", "in_channels", "out_channels", "num_embeddings", "embedding_dim",
              "embed_dim", "num_heads", "input_size", "hidden_size", "num_layers")
_NODE_TUPLES = ("kernel_size", "stride", "padding")


# ------------------------------------------------------------------------------------------ records

def _pos(value: float | int | None) -> float | None:
    """Zero means "not measured" for the proto3 scalars that have no presence (times, energies)."""
    return float(value) if value else None


def epoch_record(row: Mapping[str, Any]) -> EpochRecord:
    """An `epochs` row (its EpochSummary payload) as an `EpochRecord`."""
    m = dict_to_message(row["payload"], tpb.EpochSummary())
    t, mem, sysm = m.throughput, m.memory, m.system
    profiler = None
    if m.HasField("profiler"):
        p = m.profiler
        profiler = ProfilerRecord(
            top_ops=tuple(ProfilerOp(name=o.name, cpu_time_us=o.cpu_time_ms * 1000.0,
                                     cuda_time_us=_pos(o.cuda_time_ms * 1000.0), count=int(o.calls))
                          for o in p.top_ops),
            per_layer=tuple(LayerTime(name=x.name, pct_total=x.pct_total) for x in p.per_layer),
            total_cpu_time_us=_pos(p.total_cpu_time_ms * 1000.0),
            total_cuda_time_us=_pos(p.total_cuda_time_ms * 1000.0),
            total_fwd_us=_pos(p.forward_ms * 1000.0),
            total_bwd_us=_pos(p.backward_ms * 1000.0),
        )
    layers = {
        x.name: LayerHealthRecord(
            activation_mean=opt(x, "activation_mean"), activation_std=opt(x, "activation_std"),
            activation_var_of_means=opt(x, "activation_var_of_means"), zero_fraction=opt(x, "zero_fraction"),
            saturated_fraction=opt(x, "saturated_fraction"), gradient_norm_mean=opt(x, "gradient_norm_mean"),
            weight_sparsity=opt(x, "weight_sparsity"), update_ratio=opt(x, "update_ratio"),
            update_ratio_max=opt(x, "update_ratio_max"), samples=int(x.samples) or None,
        )
        for x in m.layer_health.layers
    }
    carbon = None
    if m.HasField("carbon"):
        c = m.carbon
        carbon = CarbonRecord(
            epoch_co2_kg=c.epoch_co2_kg, epoch_energy_kwh=c.epoch_energy_kwh,
            power_draw_watts=_pos(c.power_draw_watts), cumulative_co2_kg=c.cumulative_co2_kg,
            cumulative_energy_kwh=c.cumulative_energy_kwh,
            carbon_intensity_g_per_kwh=opt(c, "carbon_intensity_g_per_kwh"),
            cpu_energy_kwh=opt(c, "epoch_cpu_energy_kwh"), gpu_energy_kwh=opt(c, "epoch_gpu_energy_kwh"),
        )
    has_logs = m.HasField("log_counts")
    return EpochRecord(
        epoch=m.epoch, rank=int(row["rank"]),
        duration_seconds=_pos(m.duration_seconds),
        end_time=ts_to_float(m.ended_at) or row.get("ended_at"),
        train_mean=opt(m.loss, "mean"), train_std=opt(m.loss, "std"), train_min=opt(m.loss, "min"),
        train_max=opt(m.loss, "max"), count=int(m.loss.count) or None,
        val=dict(m.val_metrics),
        samples_per_sec=opt(t, "samples_per_sec"), batches_per_sec=opt(t, "batches_per_sec"),
        tokens_per_sec=opt(t, "tokens_per_sec"), samples_processed=int(t.samples_processed) or None,
        step_time_p50=opt(t, "step_time_p50_s"), step_time_p95=opt(t, "step_time_p95_s"),
        step_time_max=opt(t, "step_time_max_s"),
        process_rss_mb=opt(mem, "process_rss_mb"), cuda_allocated_mb=opt(mem, "cuda_allocated_mb"),
        cuda_reserved_mb=opt(mem, "cuda_reserved_mb"), cuda_peak_allocated_mb=opt(mem, "cuda_peak_allocated_mb"),
        cpu_percent=opt(sysm, "cpu_percent"), ram_percent=opt(sysm, "ram_percent"),
        gpus=tuple(GpuRecord(index=g.index, utilization_percent=opt(g, "utilization_percent"),
                             memory_used_mb=opt(g, "memory_used_mb"), memory_total_mb=opt(g, "memory_total_mb"),
                             power_watts=opt(g, "power_watts"), temperature_c=opt(g, "temperature_c"))
                   for g in m.gpus),
        lr=tuple(m.lr), grad_norm=opt(m, "grad_norm"), grad_norm_max=opt(m, "grad_norm_max"),
        facts=struct_dict(m.facts) if m.HasField("facts") else {},
        amp_skipped_steps=int(m.amp_skipped_steps), grad_accumulation=max(1, int(m.grad_accumulation)),
        profiler=profiler, layers=layers,
        correlations=tuple(CorrelationRecord(layer_a=x.layer_a, layer_b=x.layer_b, correlation=x.correlation)
                           for x in m.layer_health.correlations),
        carbon=carbon,
        log_console_count=int(m.log_counts.console) if has_logs else None,
        log_error_count=int(m.log_counts.error) if has_logs else None,
    )


def step_record(row: Mapping[str, Any]) -> StepRecord:
    """A stored step sample (`_steps.as_row`: NaN/Inf losses and gradient norms are floats) as a `StepRecord`."""
    return StepRecord(step=int(row["step"]), epoch=int(row["epoch"]), rank=int(row["rank"]), loss=row["loss"],
                      lr=row["lr"], grad_norm=row["grad_norm"], time=row["time"],
                      amp_skipped=bool(row["amp_skipped"]))


def log_record(row: Mapping[str, Any]) -> LogRecord:
    return LogRecord(level=row["level"].upper(), message=row["message"], epoch=row["epoch"], time=row["time"],
                     rank=int(row["rank"]))


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value)


def architecture(payload: Mapping[str, Any] | None) -> Architecture | None:
    """A stored ModelInfo payload as an `Architecture` (layers, graph nodes with their attributes, path)."""
    if not payload:
        return None
    m = dict_to_message(dict(payload), tpb.ModelInfo())
    layers, nodes = [], []
    for x in m.layers:
        layers.append(ArchLayer(name=x.name, type=x.type, parameters=int(x.parameters),
                                pct_of_total=x.pct_of_total if x.pct_of_total else None))
        attrs: dict[str, Any] = {}
        raw = struct_dict(x.attributes) if x.attributes else {}  # plain lists (a Struct's ListValue is not one)
        for key in _NODE_INTS:
            if key in raw and _as_int(raw[key]) is not None:
                attrs[key] = _as_int(raw[key])
        for key in _NODE_TUPLES:
            value = raw.get(key)
            if isinstance(value, (int, float)) and _as_int(value) is not None:
                attrs[key] = (_as_int(value),)
            elif hasattr(value, "__iter__") and not isinstance(value, str):
                ints = [_as_int(v) for v in value]
                if all(v is not None for v in ints):
                    attrs[key] = tuple(ints)
        for key in ("bidirectional", "batch_first"):
            if isinstance(raw.get(key), bool):
                attrs[key] = raw[key]
        if isinstance(raw.get("p"), (int, float)) and not isinstance(raw.get("p"), bool):
            attrs["p"] = float(raw["p"])  # Dropout's probability
        nodes.append(ArchNode(id=x.name, type=x.type, parameters=int(x.parameters), **attrs))
    input_shape: tuple[int, ...] = ()
    if m.dimension_flow and len(m.dimension_flow[0].input_shape) > 1:
        input_shape = tuple(int(v) for v in m.dimension_flow[0].input_shape[1:])
    return Architecture(total_parameters=int(m.total_parameters) or None, layers=tuple(layers), nodes=tuple(nodes),
                        sequential_path=tuple(m.sequential_path), input_shape=input_shape)


def run_info(run: Mapping[str, Any]) -> RunInfo:
    """The run's setting from its RunStart: device, whether the CPU was its only option, world size."""
    device = run.get("device") or {}
    kind = str(device.get("kind") or "cpu").lower()
    kind = kind if kind in ("cpu", "cuda", "mps") else "cpu"
    accelerator = device.get("accelerator_available") if device else None
    return RunInfo(device=kind, cpu_only_by_choice=kind == "cpu" and not accelerator,
                   world_size=max(1, int(run.get("world_size") or 1)), framework=run.get("framework"),
                   cuda_available=bool(accelerator) if device else None)


def run_thresholds(overrides: Mapping[str, Any] | None, base: Thresholds) -> Thresholds:
    """The collector's thresholds with the run's RunStart overrides (protobuf Struct numbers are floats, so an
    integer threshold sent as 3.0 is read as 3). A bad override is logged and ignored, never fatal."""
    if not overrides:
        return base
    ints = {name for name, value in base.to_dict().items() if isinstance(value, int) and not isinstance(value, bool)}
    fixed = {k: int(v) if k in ints and isinstance(v, float) and v.is_integer() else v for k, v in overrides.items()}
    try:
        return Thresholds.from_mapping(fixed, base=base)
    except Exception as exc:  # noqa: BLE001 - a trainer's bad override must not stop its diagnosis
        log.warning("ignoring the run's threshold overrides: %s", exc)
        return base


# ------------------------------------------------------------------------------------------- issues

def issue_key(issue: Issue) -> str:
    return (issue.key or "")[:300]


def issue_row(run_id: str, issue: Issue, now: float) -> dict[str, Any]:
    d = issue.to_dict()
    return {
        "run_id": run_id, "check_id": issue.check, "key": issue_key(issue), "severity": issue.severity,
        "category": issue.category, "title": issue.title, "description": issue.description,
        "suggestion": issue.suggestion, "epoch": issue.epoch, "step": issue.step, "layer": issue.layer,
        "metric_key": issue.metric_key, "metric_value": d["metric_value"], "thresholds": d["thresholds"],
        "evidence": d["evidence"], "first_seen_epoch": issue.first_seen_epoch, "last_seen_epoch": issue.last_seen_epoch,
        "active": issue.active, "updated_at": now,
    }


def row_issue(row: Mapping[str, Any]) -> Issue:
    """A stored issue as an `atlas_diagnostics.Issue` (for health reports over the store)."""
    value = row["metric_value"]
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        value = float(value.replace("Infinity", "inf"))
    return Issue(
        check=row["check_id"], severity=row["severity"], category=row["category"], title=row["title"],
        description=row["description"], suggestion=row["suggestion"], epoch=row["epoch"], step=row["step"],
        layer=row["layer"], metric_key=row["metric_key"], metric_value=value, thresholds=row["thresholds"] or {},
        first_seen_epoch=row["first_seen_epoch"], last_seen_epoch=row["last_seen_epoch"], active=bool(row["active"]),
        key=row["key"] or None, evidence=row.get("evidence") or {},
    )


def save_issues(conn: Connection, run_id: str, issues: Iterable[Issue], now: float) -> set[tuple[str, str]]:
    """Upsert the run's issues (one row per (check, key)); returns the idents that became active with this save
    (new, or inactive before) — what the `on_critical` policy acts on, so a rebuilt engine re-finding an issue
    the store already holds as active does not act twice."""
    c = s.issues.c
    before = {(r.check_id, r.key): bool(r.active) for r in
              conn.execute(sa.select(c.check_id, c.key, c.active).where(c.run_id == run_id))}
    became_active: set[tuple[str, str]] = set()
    for issue in issues:
        ident = (issue.check, issue_key(issue))
        row = issue_row(run_id, issue, now)
        if ident not in before:
            conn.execute(sa.insert(s.issues).values(created_at=now, **row))
        else:
            conn.execute(sa.update(s.issues).where(c.run_id == run_id, c.check_id == ident[0], c.key == ident[1])
                         .values(**row))
        if issue.active and not before.get(ident, False):
            became_active.add(ident)
    return became_active


def load_issues(conn: Connection, run_id: str) -> list[Issue]:
    rows = conn.execute(sa.select(s.issues).where(s.issues.c.run_id == run_id).order_by(s.issues.c.id))
    return [row_issue(r._mapping) for r in rows]


def save_diagnostic_run(conn: Connection, run_id: str, issues: list[Issue], *, trigger: str, epoch: int | None,
                        arch_type: str, score: float, now: float) -> int:
    summary = {"severity_breakdown": severity_counts(issues), "category_breakdown": category_counts(issues)}
    result = conn.execute(sa.insert(s.diagnostic_runs).values(
        run_id=run_id, created_at=now, trigger=trigger, epoch=epoch, health_score=score,
        issue_count=sum(1 for i in issues if i.active), arch_type=arch_type, summary=summary,
    ))
    return int(result.inserted_primary_key[0])
