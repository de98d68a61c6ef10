"""Query handlers as plain functions: store in, protobuf responses out. The servicer only dispatches."""
from __future__ import annotations

import logging
import math
import time
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import telemetry_pb2 as tpb

from atlas_proto.convert import (

    FRAMEWORK_VALUES,

    ON_CRITICAL_VALUES,

    STATUS_NAMES,

    STATUS_VALUES,

    dict_to_struct,

    float_to_ts,

)
from . import _metrics, _steps
from ._exceptions import InvalidMessage
from ._store import Store

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000
# A page of ListRuns stops growing past this many bytes (the next page starts there): any client's receive limit
# holds it (gRPC's default is 4 MiB), however large the stored runs are.
PAGE_BYTES = 3 * 2**20
MAX_TAG, MAX_TAGS = 200, 256  # what ingest accepts; a stored tag beyond that is cut in answers

U32_MAX, U64_MAX = 2**32 - 1, 2**64 - 1

# Rows an older collector stored (an epoch of 2^32, a negative count, a time past year 9999) are made to fit the
# answer's fields, never an error that breaks `atlas runs` for everyone: each such repair is logged, at most one
# line a minute per kind of record.
_LOG_EVERY_S = 60.0
_last_logged: dict[str, float] = {}


def _note_repair(what: str, run_id: str, detail: str) -> None:
    now = time.monotonic()
    if now - _last_logged.get(what, -_LOG_EVERY_S) >= _LOG_EVERY_S:
        _last_logged[what] = now
        log.warning("stored %s of run %s does not fit its answer (%s); answered made to fit (more such repairs of "
                    "%s are not logged for %.0f s)", what, run_id, detail, what, _LOG_EVERY_S)


def _fits(value: Any, upper: int, what: str = "", run_id: str = "") -> int:
    """A stored count as the answer's unsigned field can hold it (clamped to 0..upper)."""
    try:
        number = int(value or 0)
    except (TypeError, ValueError, OverflowError):  # NaN, Inf, text
        number = 0
    fitted = min(max(number, 0), upper)
    if what and fitted != number:
        _note_repair(what, run_id, f"{value!r} clamped to {fitted}")
    return fitted


_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, U32_MAX),
    FieldDescriptor.TYPE_FIXED32: (0, U32_MAX), FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-2**63, 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, U64_MAX), FieldDescriptor.TYPE_FIXED64: (0, U64_MAX),
}
_DROP = object()


def fill(payload: Any, out: Any, what: str, run_id: str) -> Any:
    """`payload` (protobuf JSON of a stored record) into the message `out`. A value that does not fit its field
    (an integer out of range, a time outside 1970-9999, a wrong type) is clamped or left out, and logged. For any
    reader of stored payloads (queries, diagnostics): `dict_to_message` raises on such a row."""
    try:
        return json_format.ParseDict(payload, out, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, AttributeError) as exc:  # AttributeError: not a dict
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    out.Clear()
    repairs: list[str] = []
    fitted = _fit_message(payload, out.DESCRIPTOR, "", repairs)
    try:
        json_format.ParseDict(fitted if isinstance(fitted, dict) else {}, out, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, AttributeError):  # not expected: each field was checked
        out.Clear()
        repairs.append("the whole record")
    _note_repair(what, run_id, f"{problem} {'; '.join(repairs[:5])}".strip())
    return out


def _fit_message(value: Any, desc: Descriptor, path: str, repairs: list[str]) -> Any:
    if not isinstance(value, dict):
        repairs.append(f"{path or desc.name} left out")
        return _DROP
    fields = {f.json_name: f for f in desc.fields}
    fields.update({f.name: f for f in desc.fields})
    out: dict[str, Any] = {}
    for key, item in value.items():
        fd = fields.get(key)
        if fd is None:
            continue
        where = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            if not isinstance(item, dict):
                repairs.append(f"{where} left out")
                continue
            entries = {k: _fit_field(v, value_fd, f"{where}[{k}]", repairs) for k, v in item.items()}
            out[key] = {k: v for k, v in entries.items() if v is not _DROP}
        elif fd.is_repeated:
            if not isinstance(item, list):
                repairs.append(f"{where} left out")
                continue
            items = [_fit_field(v, fd, f"{where}[{i}]", repairs) for i, v in enumerate(item)]
            out[key] = [v for v in items if v is not _DROP]
        else:
            fitted = _fit_field(item, fd, where, repairs)
            if fitted is not _DROP:
                out[key] = fitted
    return out


def _fit_field(value: Any, fd: FieldDescriptor, where: str, repairs: list[str]) -> Any:
    if fd.message_type is not None and not fd.message_type.full_name.startswith("google.protobuf."):
        return _fit_message(value, fd.message_type, where, repairs)
    if fd.type in _INT_RANGES and value is not None and not isinstance(value, bool):
        low, high = _INT_RANGES[fd.type]
        try:
            number = int(value) if isinstance(value, int) else int(float(value))
        except (TypeError, ValueError, OverflowError):
            repairs.append(f"{where} left out")
            return _DROP
        if not low <= number <= high:
            repairs.append(f"{where} clamped")
            number = min(max(number, low), high)
        return number
    try:  # a well-known type (Timestamp, Struct, ...), an enum, a float, a string: parsed alone in a fresh message
        holder = message_factory.GetMessageClass(fd.containing_type)()
        json_format.ParseDict({fd.json_name: [value] if fd.is_repeated else value}, holder,
                              ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError):
        repairs.append(f"{where} left out")
        return _DROP
    return value


def run_summary(row: dict[str, Any], out: qpb.RunSummary | None = None) -> qpb.RunSummary:
    out = out if out is not None else qpb.RunSummary()
    run_id = out.id = row["id"]
    out.name = row["name"]
    out.project = row["project"]
    out.status = STATUS_VALUES.get(row["status"], tpb.RUN_STATUS_UNSPECIFIED)
    float_to_ts(row["started_at"], out.started_at)
    if row["ended_at"] is not None:
        float_to_ts(row["ended_at"], out.ended_at)
    out.epochs = _fits(row["epochs"], U32_MAX, "run epoch count", run_id)
    out.steps = _fits(row["steps"], U64_MAX, "run step count", run_id)
    if row["health_score"] is not None:
        out.health_score = row["health_score"]
    out.framework = FRAMEWORK_VALUES.get(row["framework"], tpb.FRAMEWORK_UNSPECIFIED)
    tags = list(row.get("tags", []))
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG for t in tags):
        _note_repair("run tags", run_id, f"{len(tags)} tags, the longest of {max(len(t) for t in tags)} characters; "
                                         f"at most {MAX_TAGS} tags of {MAX_TAG} characters answered")
        tags = [t if len(t) <= MAX_TAG else t[:MAX_TAG - 1] + "\u2026" for t in tags[:MAX_TAGS]]
    out.tags.extend(tags)
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
    size = taken = 0
    for row in rows:
        summary = run_summary(row)
        size += summary.ByteSize()
        if taken and size > PAGE_BYTES:  # the rest comes in the next page; a page holds at least one run
            break
        resp.runs.append(summary)
        taken += 1
    if offset + taken < total:
        resp.next_page_token = str(offset + taken)
    return resp


def final_metrics(last_epoch: dict[str, Any] | None) -> dict[str, Any]:
    """The last epoch's loss statistics (`loss_mean`, ...) and every validation metric it logged."""
    if last_epoch is None:
        return {}
    payload = last_epoch["payload"] if isinstance(last_epoch["payload"], dict) else {}
    out: dict[str, Any] = {"epoch": last_epoch["epoch"]}

    def items(key: str) -> list[tuple[str, Any]]:
        part = payload.get(key)
        return list(part.items()) if isinstance(part, dict) else []

    for key, value in items("loss"):
        out[f"loss_{key}"] = _number(value)
    for key, value in items("val_metrics"):
        out[key] = _number(value)
    for key, value in items("train_metrics"):
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
    if isinstance(row["hyperparameters"], dict):
        dict_to_struct(row["hyperparameters"], out.hyperparameters)
    versions = row["versions"] if isinstance(row["versions"], dict) else {}
    out.versions.update({str(k): str(v) for k, v in versions.items()})
    if row["device"]:
        fill(row["device"], out.device, "run device", run_id)
    out.world_size = _fits(row["world_size"], U32_MAX, "run world size", run_id)
    out.on_critical = ON_CRITICAL_VALUES.get(row["on_critical"], tpb.ON_CRITICAL_WARN)
    dict_to_struct(final_metrics(last), out.final_metrics)
    if row["error_type"] or row["error_message"]:
        out.error.type = row["error_type"] or ""
        out.error.message = row["error_message"] or ""
        out.error.traceback = row["traceback"] or ""
    out.git_commit = row["git_commit"] or ""
    float_to_ts(row["last_seen_at"], out.last_seen_at)
    if isinstance(row["thresholds"], dict):
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
        item = resp.epochs.add(rank=_fits(row["rank"], U32_MAX, "epoch rank", run_id))
        fill(row["payload"], item.summary, "epoch summary", run_id)
    return resp


STEP_MAX = 2**63 - 1  # the largest step a store holds (a signed 64-bit integer column)


def get_steps(store: Store, req: qpb.StepsRequest) -> qpb.StepsResponse:
    limit = req.limit or MAX_LIMIT
    if limit > 1_000_000:
        raise InvalidMessage(f"StepsRequest.limit must be at most 1000000, got {req.limit}")
    with store.connect() as conn:
        run_id = store.resolve_run(conn, req.run)
        found = _steps.samples(
            conn, run_id, rank=req.rank if req.HasField("rank") else 0,
            from_step=min(req.from_step, STEP_MAX) if req.HasField("from_step") else None,
            to_step=min(req.to_step, STEP_MAX) if req.HasField("to_step") else None, limit=limit,
        )  # (a bound past any step a store can hold means "to the end": no store integer overflows)
    return qpb.StepsResponse(run_id=run_id, samples=[x for _, x in found])  # the stored messages, as sent


def get_logs(store: Store, req: qpb.LogsRequest) -> qpb.LogsResponse:
    with store.connect() as conn:
        run_id = store.resolve_run(conn, req.run)
        rows = store.logs(conn, run_id, errors_only=req.errors_only, limit=req.limit or 1000)
    resp = qpb.LogsResponse(run_id=run_id)
    for row in rows:
        r = resp.records.add(level=row["level"], logger=row["logger"] or "", message=row["message"],
                             epoch=_fits(row["epoch"], U32_MAX, "log record epoch", run_id), kind=row["kind"] or "",
                             rank=_fits(row["rank"], U32_MAX, "log record rank", run_id))
        float_to_ts(row["time"], r.time)
    return resp


def metric_keys(store: Store, run: str) -> tuple[str, list[dict[str, Any]]]:
    """(run id, the run's user metric keys): each {key, count, last_value, last_step, last_epoch, last_time} by key.
    `run` is anything RunRef.run accepts. Plain values (NaN/Inf as floats), for the UI's JSON API."""
    with store.connect() as conn:
        run_id = store.resolve_run(conn, run)
        return run_id, _metrics.keys(conn, run_id)


def metric_series(store: Store, run: str, key: str | None = None,
                  limit: int | None = None) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """(run id, {key: [{step, epoch, value, time}, ...]}): one key's series, or every key's when `key` is None (the
    newest `limit` points of each, default 100,000, in step order). For the UI's /api/runs/{id}/metrics."""
    with store.connect() as conn:
        run_id = store.resolve_run(conn, run)
        if key is not None:
            return run_id, {key: _metrics.series(conn, run_id, key, limit)}
        return run_id, _metrics.all_series(conn, run_id, limit)


def list_metrics(store: Store, req: qpb.RunRef) -> qpb.MetricsResponse:
    run_id, found = metric_keys(store, req.run)
    resp = qpb.MetricsResponse(run_id=run_id)
    for k in found:
        item = resp.metrics.add(key=k["key"], count=k["count"], last_value=k["last_value"],
                                last_step=_fits(k["last_step"], U64_MAX), last_epoch=_fits(k["last_epoch"], U32_MAX))
        float_to_ts(k["last_time"], item.last_time)
    return resp


def get_metric_series(store: Store, req: qpb.MetricSeriesRequest) -> qpb.MetricSeriesResponse:
    if not req.key:
        raise InvalidMessage("MetricSeriesRequest.key is empty: name a metric (`atlas metrics RUN` lists them)")
    if req.limit > 1_000_000:
        raise InvalidMessage(f"MetricSeriesRequest.limit must be at most 1000000, got {req.limit}")
    run_id, found = metric_series(store, req.run, req.key, req.limit or None)
    resp = qpb.MetricSeriesResponse(run_id=run_id, key=req.key)
    for p in found[req.key]:
        item = resp.points.add(step=_fits(p["step"], U64_MAX), epoch=_fits(p["epoch"], U32_MAX), value=p["value"])
        float_to_ts(p["time"], item.time)
    return resp


def get_architecture(store: Store, req: qpb.RunRef) -> tpb.ModelInfo:
    with store.connect() as conn:
        run_id = store.resolve_run(conn, req.run, req.project)
        payload = store.architecture(conn, run_id)
    return fill(payload, tpb.ModelInfo(), "architecture", run_id) if payload else tpb.ModelInfo()
