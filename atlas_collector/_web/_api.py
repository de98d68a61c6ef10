"""The JSON API (API.md): thin handlers over the CLI's own readers (`_local`) and the query functions.

Every answer is `application/json` (a trainer's strings travel as JSON strings, byte for byte, and the page sets
them as text); an error is `{"error": "one line"}` with 400 (bad request), 401, 403, 404 (no such run), 409 (the
run has ended) or 503. Blocking work (the store, the diagnostics' settle) runs on the UI's own thread pool (`POOL`)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import math
import threading
import time
from typing import Any, Callable

import sqlalchemy as sa

from .. import _schema as s
from .._exceptions import AmbiguousRun, CollectorError, InvalidMessage, RunEnded, RunNotFound, StoreUnavailable
from . import _downsample

log = logging.getLogger(__name__)

MAX_RUNS_PAGE = 1000
MAX_LOGS = 5000
GRADE_BUDGET_S = 0.5  # a runs page spends at most this long computing Green-AI grades it has not cached
SORTS = ("started", "name", "health", "duration", "status")
LAYER_METRICS = {"grad_norm": "gradient_norm_mean", "dead_fraction": "zero_fraction",
                 "act_mean": "activation_mean", "act_std": "activation_std", "saturated": "saturated_fraction",
                 "update_ratio": "update_ratio"}
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def dumps(value: Any) -> bytes:
    """JSON for the page: NaN/Inf as null (JSON has none), like the CLI's `--json`."""
    return json.dumps(_clean(value), ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def _clean(value: Any) -> Any:
    if type(value) is _downsample.Clean:  # already JSON-safe (the step series: tens of thousands of numbers)
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def status_of(exc: BaseException) -> tuple[int, str]:
    """An exception as (HTTP status, one line)."""
    import click

    if isinstance(exc, HttpError):
        return exc.status, str(exc)
    if isinstance(exc, RunNotFound) or type(exc).__name__ == "NotFound":
        return 404, _line(exc)
    if isinstance(exc, (InvalidMessage, AmbiguousRun)):
        return 400, _line(exc)
    if isinstance(exc, RunEnded):
        return 409, _line(exc)
    if isinstance(exc, StoreUnavailable):
        return 503, _line(exc)
    if isinstance(exc, click.ClickException):
        return 400, _line(exc)
    if isinstance(exc, CollectorError):
        return 500, _line(exc)
    return 500, f"internal error: {type(exc).__name__}: {_line(exc)}"


def _line(exc: BaseException) -> str:
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------------------------------ parameters

def int_param(params: Any, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, f"{name} must be a whole number from {low} to {high}, got {raw!r}") from None
    if not low <= value <= high:
        raise HttpError(400, f"{name} must be from {low} to {high}, got {value}")
    return value


def choice_param(params: Any, name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = params.get(name) or default
    if raw not in allowed:
        raise HttpError(400, f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


# ---------------------------------------------------------------------------------------------- API

class Api:
    """The handlers' shared state: the collector's services, an `atlas_cli` context bound to them, the series
    cache, the grade cache."""

    def __init__(self, services: Any, ctx: Any, series: _downsample.SeriesCache, info: dict[str, Any]) -> None:
        self.sv = services
        self.ctx = ctx
        self.series = series
        self.info = info
        self._grades: dict[tuple[str, int, str], str | None] = {}
        self._green: dict[tuple[str, int, str], dict[str, Any]] = {}
        self._green_lock = threading.Lock()
        self._prefetch_lock = threading.Lock()
        self._prefetching: set[str] = set()
        self.last_request = -1e9  # time.monotonic() of the last API request (the series warmer's cue)

    # ------------------------------------------------------------------------------------------ runs

    def resolve(self, ref: str) -> str:
        with self.sv.store.connect() as conn:
            return self.sv.store.resolve_run(conn, ref)

    def runs(self, params: Any) -> dict[str, Any]:
        from atlas_proto.convert import STATUS_NAMES
        from .._queries import run_summary
        from atlas_cli._client import run_row

        limit = int_param(params, "limit", 50, 1, MAX_RUNS_PAGE)
        offset = int_param(params, "offset", 0, 0, 10**9)
        sort = choice_param(params, "sort", SORTS, "started")
        order = choice_param(params, "order", ("asc", "desc"), "desc" if sort in ("started", "health") else "asc")
        status = params.get("status") or ""
        if status and status not in STATUS_NAMES.values():
            raise HttpError(400, f"status must be one of {', '.join(STATUS_NAMES.values())}, got {status!r}")
        r = s.runs.c
        q = sa.select(r.id, r.name, r.status, r.started_at, r.ended_at, r.last_seen_at, r.epochs, r.steps,
                      r.health_score, r.framework, s.projects.c.name.label("project")).select_from(
            s.runs.join(s.projects))
        if params.get("project"):
            q = q.where(s.projects.c.name == params["project"])
        if status:
            q = q.where(r.status == status)
        if params.get("tag"):
            q = q.where(r.id.in_(sa.select(s.run_tags.c.run_id).where(s.run_tags.c.tag == params["tag"])))
        if params.get("q"):
            text = params["q"]
            q = q.where(sa.or_(r.name.contains(text, autoescape=True), r.id.startswith(text.lower(), autoescape=True),
                               s.projects.c.name.contains(text, autoescape=True)))
        key = {"started": r.started_at, "name": r.name, "health": r.health_score, "status": r.status,
               "duration": sa.func.coalesce(r.ended_at, r.last_seen_at) - r.started_at}[sort]
        ordered = key.desc() if order == "desc" else key.asc()
        with self.sv.store.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
            rows = [dict(x._mapping) for x in conn.execute(
                q.order_by(sa.nulls_last(ordered), r.started_at.desc(), r.id).limit(limit).offset(offset))]
            self.sv.store._attach_tags(conn, rows)
        deadline = time.monotonic() + GRADE_BUDGET_S
        out = []
        for row in rows:
            item = run_row(run_summary(row))
            item["health"] = item["health_score"]
            item["duration_seconds"] = _duration(row)
            item["grade"] = (self.grade(row["id"], row["epochs"], row["status"], deadline)
                             if row["status"] not in ("running", "paused") else None)  # live: see the run page
            out.append(item)
        return {"runs": out, "total": total, "offset": offset, "limit": limit}

    def run_row(self, run_id: str) -> dict[str, Any] | None:
        """One run as the runs list shows it (for the live `run` event); None when it is gone."""
        from .._queries import run_summary
        from atlas_cli._client import run_row

        with self.sv.store.connect() as conn:
            try:
                row = self.sv.store.get_run(conn, run_id)
            except RunNotFound:
                return None
        item = run_row(run_summary(row))
        item.update(health=item["health_score"], duration_seconds=_duration(row),
                    grade=self._grades.get((run_id, row["epochs"], row["status"])))
        return item

    def grade(self, run_id: str, epochs: int, status: str, deadline: float | None = None) -> str | None:
        """The run's Green-AI grade (cached per run, epoch count and status); None before any epoch, or when the
        page's time budget for grades is spent (the run page's /green has it)."""
        key = (run_id, epochs, status)
        if key in self._grades:
            return self._grades[key]
        with self._green_lock:
            green = self._green.get(key)
        if green is not None:
            return green.get("grade")
        if not epochs or (deadline is not None and time.monotonic() > deadline):
            return None
        try:
            grade = self.green(run_id).get("grade")
        except Exception:  # noqa: BLE001 - a grade is decoration in a list; the run page shows the error
            log.debug("run=%s grade failed", run_id, exc_info=True)
            grade = None
        if len(self._grades) > 20_000:
            self._grades.clear()
        self._grades[key] = grade
        return grade

    def run(self, ref: str, params: Any = None) -> dict[str, Any]:
        """`atlas runs show --json` and more; with `grade=cached` the grade only if it is already computed (the
        run page asks so: computing it takes the server seconds on a big run, and its /green request, sent once
        the charts have their data, computes it)."""
        from atlas_cli._runs import get_run

        detail = get_run(self.ctx, ref)
        with self.sv.store.connect() as conn:
            row = conn.execute(sa.select(s.runs.c.ended_at, s.runs.c.last_seen_at, s.runs.c.started_at)
                               .where(s.runs.c.id == detail["id"])).one()
        self.prefetch(detail["id"])
        detail["health"] = detail["health_score"]
        detail["duration_seconds"] = _duration(dict(row._mapping))
        live = detail["status"] in ("running", "paused")  # its grade moves each epoch: /green has it
        cached_only = params is not None and params.get("grade") == "cached"
        detail["grade"] = None if live else self.grade(detail["id"], detail["epochs"], detail["status"],
                                                       0.0 if cached_only else None)
        return detail

    # ----------------------------------------------------------------------------------------- series

    def prefetch_ref(self, ref: str) -> None:
        """`prefetch` for a run named as a page URL names it (an id or its prefix), resolved in the thread pool;
        a reference that matches no run does nothing (the page's requests report that)."""

        def start() -> None:
            try:
                self.prefetch(self.resolve(ref))
            except Exception:  # noqa: BLE001 - an optimisation: the page's own requests report any error
                log.debug("run=%s page prefetch failed", ref, exc_info=True)

        POOL.submit(start)

    def prefetch(self, run_id: str) -> None:
        """Start decoding the run's step series in the background (a run page asks for the run before its
        steps: the steps request then waits for this fill instead of starting its own)."""
        with self._prefetch_lock:
            if run_id in self._prefetching:
                return
            self._prefetching.add(run_id)

        def fill() -> None:
            try:
                self.series.columns(run_id)
            except Exception:  # noqa: BLE001 - an optimisation: the steps request reports any error itself
                log.debug("run=%s step series prefetch failed", run_id, exc_info=True)
            finally:
                with self._prefetch_lock:
                    self._prefetching.discard(run_id)

        POOL.submit(fill)

    def steps(self, ref: str, params: Any) -> dict[str, Any]:
        run_id = self.resolve(ref)
        names = tuple(x for x in (params.get("series") or ",".join(_downsample.SERIES)).split(",") if x)
        unknown = [x for x in names if x not in _downsample.SERIES]
        if unknown:
            raise HttpError(400, f"series must be among {', '.join(_downsample.SERIES)}, got {', '.join(unknown)}")
        points = int_param(params, "points", _downsample.DEFAULT_POINTS, 10, _downsample.MAX_POINTS)
        lo = int_param(params, "from", None, 0, 2**63 - 1)
        hi = int_param(params, "to", None, 0, 2**63 - 1)
        rank = int_param(params, "rank", 0, 0, 65535)
        if lo is not None and hi is not None and lo > hi:
            raise HttpError(400, f"from ({lo}) must not be after to ({hi})")
        entry = self.series.columns(run_id, rank or 0)
        out = _downsample.view(entry, names, lo, hi, points or _downsample.DEFAULT_POINTS)
        return {"run": run_id, "rank": rank, **out}

    def epochs(self, ref: str, params: Any) -> dict[str, Any]:
        from atlas_cli._inspect import get_epochs

        run_id, rows = get_epochs(self.ctx, ref, rank=int_param(params, "rank", None, 0, 65535))
        gpus, profiles = self._from_payloads(run_id)
        for row in rows:  # the Profiler tab: each profiled epoch's torch.profiler summary (rank 0)
            if row.get("rank", 0) == 0 and row["epoch"] in profiles:
                row["profiler"] = profiles[row["epoch"]]
        return {"run": run_id, "epochs": rows, "gpus": gpus}

    def _from_payloads(self, run_id: str) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
        """From the stored epoch summaries of rank 0: every device of every epoch (the epoch rows carry the first
        GPU only), and each profiled epoch's profiler summary (field names as in the .proto)."""
        from atlas_proto.convert import dict_to_message, message_to_dict
        from atlas_proto.v1 import telemetry_pb2 as tpb

        out, profiles = [], {}
        with self.sv.store.connect() as conn:
            for row in self.sv.store.epochs(conn, run_id, rank=0):
                payload = row["payload"] if isinstance(row["payload"], dict) else {}
                for g in payload.get("gpus") or []:
                    out.append({"epoch": row["epoch"], "index": g.get("index", 0),
                                **{k: _num(g.get(k)) for k in ("utilizationPercent", "memoryUsedMb", "memoryTotalMb",
                                                                 "powerWatts", "temperatureC")}})
                if isinstance(payload.get("profiler"), dict):
                    try:
                        profiles[row["epoch"]] = _clean(message_to_dict(
                            dict_to_message(payload["profiler"], tpb.ProfilerSummary())))
                    except Exception:  # noqa: BLE001 - a damaged stored summary leaves the tab empty, not the page
                        log.debug("run=%s epoch %s: unreadable profiler summary", run_id, row["epoch"], exc_info=True)
        return [{_snake(k): v for k, v in g.items()} for g in out], profiles

    def layers(self, ref: str, params: Any) -> dict[str, Any]:
        from atlas_proto.v1 import query_pb2 as qpb

        metric = choice_param(params, "metric", tuple(LAYER_METRICS), "grad_norm")
        field = LAYER_METRICS[metric]
        resp = self.ctx.client().get_epochs(qpb.EpochsRequest(run=ref))
        names: list[str] = []
        index: dict[str, int] = {}
        x: list[int] = []
        columns: list[dict[str, float | None]] = []
        for e in resp.epochs:
            if e.rank != 0 or not e.summary.layer_health.layers:
                continue
            x.append(e.summary.epoch)
            col: dict[str, float | None] = {}
            for layer in e.summary.layer_health.layers:
                if layer.name not in index:
                    index[layer.name] = len(names)
                    names.append(layer.name)
                col[layer.name] = getattr(layer, field) if layer.HasField(field) else None
            columns.append(col)
        z = [[col.get(name) for col in columns] for name in names]  # z[layer][epoch]
        return {"run": resp.run_id, "metric": metric, "x_kind": "epoch", "layers": names, "x": x, "z": z}

    # ------------------------------------------------------------------------------- reports and more

    def issues(self, ref: str, params: Any) -> dict[str, Any]:
        from atlas_cli._issues import list_issues

        active_only = params.get("active") in ("1", "true")
        return {"issues": list_issues(self.ctx, ref, include_inactive=not active_only,
                                      severity=params.get("severity") or "")}

    def health(self, ref: str) -> dict[str, Any]:
        from atlas_cli._issues import get_health

        return get_health(self.ctx, ref)

    def green(self, ref: str) -> dict[str, Any]:
        """`atlas green --json`, cached per run, epoch count and status (computing it reads every epoch and
        takes up to seconds; it changes only when an epoch ends or the run's status does)."""
        from atlas_cli._issues import get_green

        run_id, status, epochs = self._state(ref)
        key = (run_id, epochs, status)
        with self._green_lock:
            hit = self._green.get(key)
        if hit is not None:
            return hit
        got = get_green(self.ctx, run_id)
        with self._green_lock:
            for old in [k for k in self._green if k[0] == run_id]:
                del self._green[old]
            if len(self._green) > 2000:
                self._green.clear()
            self._green[key] = got
        return got

    def _state(self, ref: str) -> tuple[str, str, int]:
        """(id, status, epochs) of a run reference, in one cheap read."""
        with self.sv.store.connect() as conn:
            run_id = self.sv.store.resolve_run(conn, ref)
            row = conn.execute(sa.select(s.runs.c.status, s.runs.c.epochs).where(s.runs.c.id == run_id)).one()
        return run_id, row.status, row.epochs

    def architecture(self, ref: str) -> dict[str, Any]:
        from atlas_cli._inspect import get_arch

        return get_arch(self.ctx, ref)

    def logs(self, ref: str, params: Any) -> dict[str, Any]:
        from atlas_proto.convert import iso

        run_id = self.resolve(ref)
        limit = int_param(params, "limit", 500, 1, MAX_LOGS)
        after = int_param(params, "after", 0, 0, 2**63 - 1)
        rank = int_param(params, "rank", None, 0, 65535)
        level = (params.get("level") or "").upper()
        if level and level not in LEVELS:
            raise HttpError(400, f"level must be one of {', '.join(LEVELS)} (the least severe to show), got "
                                 f"{params.get('level')!r}")
        c = s.logs.c
        q = sa.select(s.logs).where(c.run_id == run_id, c.id > after)
        if rank is not None:
            q = q.where(c.rank == rank)
        if level:
            q = q.where(c.level.in_(LEVELS[LEVELS.index(level):]))
        with self.sv.store.connect() as conn:
            rows = conn.execute(q.order_by(c.id).limit(limit)).all()
        logs = [{"id": r.id, "time": iso(r.time), "level": r.level, "logger": r.logger or None, "epoch": r.epoch,
                 "rank": r.rank, "kind": r.kind or None, "message": r.message} for r in rows]
        return {"run": run_id, "logs": logs, "next": logs[-1]["id"] if logs else after}

    def metrics(self, ref: str, params: Any) -> dict[str, Any]:
        """User metrics (`atlas metrics RUN [KEY] --json`): the keys, or with `key=` one key's points."""
        try:
            from atlas_cli import _metrics
        except ImportError:
            return {"run": self.resolve(ref), "metrics": {}, "available": False}
        key = params.get("key")
        if key:
            limit = int_param(params, "limit", 0, 0, 1_000_000)
            run_id, points = _metrics.get_series(self.ctx, ref, key, limit or 0)
            return {"run": run_id, "key": key, "points": points, "available": True}
        run_id, rows = _metrics.list_keys(self.ctx, ref)
        return {"run": run_id, "metrics": {r["key"]: r for r in rows}, "available": True}

    def compare(self, params: Any) -> dict[str, Any]:
        from atlas_cli._inspect import get_comparison

        refs = [x for x in (params.get("runs") or "").split(",") if x.strip()]
        if len(refs) < 2:
            raise HttpError(400, "runs must name two or more runs, comma-separated (ids, prefixes or names)")
        if len(refs) > 10:
            raise HttpError(400, f"compare at most 10 runs at once, got {len(refs)}")
        details = [self.run(ref) for ref in refs]
        ids = [d["id"] for d in details]
        keys = sorted({k for d in details for k in (d.get("hyperparameters") or {})})
        hp = {k: [(d.get("hyperparameters") or {}).get(k) for d in details] for k in keys}
        differ = {k: v for k, v in hp.items() if any(x != v[0] for x in v)}
        pair = get_comparison(self.ctx, ids[0], ids[1])
        return {"runs": details, "hyperparameters": hp, "hyperparameter_diff": differ, "pair": pair}

    def trend(self, project: str) -> dict[str, Any]:
        from atlas_cli._inspect import get_trend

        return get_trend(self.ctx, project)

    def command(self, ref: str, body: Any) -> dict[str, Any]:
        """What `atlas stop/pause/resume` do: the QueryService's SendCommand function, in process."""
        from atlas_proto.v1 import query_pb2 as qpb
        from atlas_proto.v1 import telemetry_pb2 as tpb

        if not isinstance(body, dict):
            raise HttpError(400, 'the body must be a JSON object: {"action": "stop"|"pause"|"resume", "reason": ...}')
        kinds = {"pause": tpb.COMMAND_KIND_PAUSE, "resume": tpb.COMMAND_KIND_RESUME, "stop": tpb.COMMAND_KIND_STOP}
        action = body.get("action")
        if action not in kinds:
            raise HttpError(400, f"action must be one of stop, pause, resume, got {action!r}")
        reason = body.get("reason") or ""
        if not isinstance(reason, str) or len(reason) > 2000:
            raise HttpError(400, "reason must be text of at most 2000 characters")
        run_id, status, _ = self._state(ref)  # no grade or detail: a Stop must not wait on the diagnostics
        if status in ("completed", "stopped", "failed"):
            raise HttpError(409, f"run {run_id} has already ended ({status}); there is nothing to {action}")
        resp = self.ctx.client().send_command(qpb.CommandRequest(run=run_id, kind=kinds[action], reason=reason,
                                                                  sender="atlas-ui"))
        from atlas_proto.convert import iso

        return {"command_id": resp.command_id, "run_id": resp.run_id, "kind": action, "reason": reason or None,
                "delivered": resp.delivered, "issued_at": iso(resp.issued_at)}


def _duration(row: dict[str, Any]) -> float | None:
    end = row.get("ended_at") if row.get("ended_at") is not None else row.get("last_seen_at")
    start = row.get("started_at")
    return max(0.0, end - start) if end is not None and start is not None else None


def _num(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return value


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


# The UI's own threads: pages that wait on the store or the diagnostics never hold up the gRPC queries, which
# use the loop's default pool.
POOL = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="atlas-web")


def in_pool(fn: Callable[..., Any], *args: Any) -> Any:
    """Await `fn(*args)` on the UI's thread pool."""
    return asyncio.get_running_loop().run_in_executor(POOL, functools.partial(fn, *args))


def blocking(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` as a coroutine function that runs on the UI's thread pool."""
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(POOL, functools.partial(fn, *args, **kwargs))

    return run
