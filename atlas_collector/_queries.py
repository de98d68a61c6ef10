"""Query handlers as plain functions: store in, protobuf responses out. The servicer only dispatches."""
from __future__ import annotations

import math
from typing import Any

from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import telemetry_pb2 as tpb

from ._convert import (
    FRAMEWORK_VALUES,
    ON_CRITICAL_VALUES,
    STATUS_NAMES,
    STATUS_VALUES,
    dict_to_message,
    dict_to_struct,
    float_to_ts,
)
from . import _steps
from ._exceptions import InvalidMessage
from ._store import Store

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000


U32_MAX, U64_MAX = 2**32 - 1, 2**64 - 1


def _fits(value: Any, upper: int) -> int:
    """A stored count as the answer's unsigned field can hold it: rows an older collector let in (an epoch of
    2^32-1, a negative count) are clamped, never an error that breaks `atlas runs` for everyone."""
    return min(max(int(value or 0), 0), upper)


def run_summary(row: dict[str, Any], out: qpb.RunSummary | None = None) -> qpb.RunSummary:
    out = out if out is not None else qpb.RunSummary()
    out.id = row["id"]
    out.name = row["name"]
    out.project = row["project"]
    out.status = STATUS_VALUES[row["status"]]
    float_to_ts(row["started_at"], out.started_at)
    if row["ended_at"] is not None:
        float_to_ts(row["ended_at"], out.ended_at)
    out.epochs = _fits(row["epochs"], U32_MAX)
    out.steps = _fits(row["steps"], U64_MAX)
    if row["health_score"] is not None:
        out.health_score = row["health_score"]
    out.framework = FRAMEWORK_VALUES.get(row["framework"], tpb.FRAMEWORK_UNSPECIFIED)
    out.tags.extend(row.get("tags", []))
    return out


def list_runs(store: Store, req: qpb.ListRunsRequest) -> qpb.ListRunsResponse:
    limit = req.limit or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise InvalidMessage(f"ListRunsRequest.limit must be at most {MAX_LIMIT}, got {req.limit}")
    try:
        offset = int(req.page_token or 0)
    except ValueError:
        raise InvalidMessage(f"ListRunsRequest.page_token is not one this collector issued: {req.page_token!r}") from None
    status = ""
    if req.status:
        status = STATUS_NAMES.get(req.status, "")
        if not status:
            raise InvalidMessage(f"ListRunsRequest.status {req.status} is not a run status")
    with store.connect() as conn:
        rows, total = store.list_runs(conn, project=req.project, status=status, name=req.name, tag=req.tag,
                                      limit=limit, offset=offset)
    resp = qpb.ListRunsResponse(total=total)
    for row in rows:
        run_summary(row, resp.runs.add())
    if offset + len(rows) < total:
        resp.next_page_token = str(offset + len(rows))
    return resp


def final_metrics(last_epoch: dict[str, Any] | None) -> dict[str, Any]:
    """The last epoch's loss statistics (`loss_mean`, ...) and every validation metric it logged."""
    if last_epoch is None:
        return {}
    payload = last_epoch["payload"]
    out: dict[str, Any] = {"epoch": last_epoch["epoch"]}
    for key, value in payload.get("loss", {}).items():
        out[f"loss_{key}"] = _number(value)
    for key, value in payload.get("val_metrics", {}).items():
        out[key] = _number(value)
    for key, value in payload.get("train_metrics", {}).items():
        out.setdefault(key, _number(value))
    return out


def _number(value: Any) -> Any:
    """Protobuf JSON writes 64-bit ints and non-finite doubles as strings; make them numbers again."""
    if isinstance(value, str):
        try:
            as_float = float(value)
        except ValueError:
            return value
        return int(as_float) if as_float.is_integer() and math.isfinite(as_float) else as_float
    return value


def get_run(store: Store, req: qpb.RunRef) -> qpb.RunDetail:
    with store.connect() as conn:
        run_id = store.resolve_run(conn, req.run, req.project)
        row = store.get_run(conn, run_id)
        last = store.last_epoch(conn, run_id)
    out = qpb.RunDetail()
    run_summary(row, out.summary)
    dict_to_struct(row["hyperparameters"], out.hyperparameters)
    out.versions.update(row["versions"] or {})
    if row["device"]:
        dict_to_message(row["device"], out.device)
    out.world_size = _fits(row["world_size"], U32_MAX)
    out.on_critical = ON_CRITICAL_VALUES.get(row["on_critical"], tpb.ON_CRITICAL_WARN)
    dict_to_struct(final_metrics(last), out.final_metrics)
    if row["error_type"] or row["error_message"]:
        out.error.type = row["error_type"] or ""
        out.error.message = row["error_message"] or ""
        out.error.traceback = row["traceback"] or ""
    out.git_commit = row["git_commit"] or ""
    float_to_ts(row["last_seen_at"], out.last_seen_at)
    if row["thresholds"]:
        dict_to_struct(row["thresholds"], out.thresholds)
    return out


def delete_run(store: Store, req: qpb.RunRef) -> qpb.DeleteRunResponse:
    with store.begin() as conn:
        run_id = store.resolve_run(conn, req.run, req.project)
        store.delete_run(conn, run_id)
    return qpb.DeleteRunResponse(id=run_id)


def get_epochs(store: Store, req: qpb.EpochsRequest) -> qpb.EpochsResponse:
    with store.connect() as conn:
        run_id = store.resolve_run(conn, req.run)
        rows = store.epochs(
            conn, run_id, rank=req.rank if req.HasField("rank") else 0,
            from_epoch=req.from_epoch if req.HasField("from_epoch") else None,
            to_epoch=req.to_epoch if req.HasField("to_epoch") else None,
        )
    resp = qpb.EpochsResponse(run_id=run_id)
    for row in rows:
        item = resp.epochs.add(rank=row["rank"])
        dict_to_message(row["payload"], item.summary)
    return resp


def get_steps(store: Store, req: qpb.StepsRequest) -> qpb.StepsResponse:
    limit = req.limit or MAX_LIMIT
    if limit > 1_000_000:
        raise InvalidMessage(f"StepsRequest.limit must be at most 1000000, got {req.limit}")
    with store.connect() as conn:
        run_id = store.resolve_run(conn, req.run)
        found = _steps.samples(
            conn, run_id, rank=req.rank if req.HasField("rank") else 0,
            from_step=req.from_step if req.HasField("from_step") else None,
            to_step=req.to_step if req.HasField("to_step") else None, limit=limit,
        )
    return qpb.StepsResponse(run_id=run_id, samples=[x for _, x in found])  # the stored messages, as sent


def get_logs(store: Store, req: qpb.LogsRequest) -> qpb.LogsResponse:
    with store.connect() as conn:
        run_id = store.resolve_run(conn, req.run)
        rows = store.logs(conn, run_id, errors_only=req.errors_only, limit=req.limit or 1000)
    resp = qpb.LogsResponse(run_id=run_id)
    for row in rows:
        r = resp.records.add(level=row["level"], logger=row["logger"] or "", message=row["message"],
                             epoch=row["epoch"] or 0, kind=row["kind"] or "", rank=row["rank"] or 0)
        float_to_ts(row["time"], r.time)
    return resp


def get_architecture(store: Store, req: qpb.RunRef) -> tpb.ModelInfo:
    with store.connect() as conn:
        run_id = store.resolve_run(conn, req.run, req.project)
        payload = store.architecture(conn, run_id)
    return dict_to_message(payload, tpb.ModelInfo()) if payload else tpb.ModelInfo()
