"""Server-sent event streams: a run's live data, the runs list's changes, and the agent's answer.

A run stream (`GET /api/runs/{id}/events`) starts from what the page already has (`?after_step=`,
`?after_epoch=`, `?after_log=`; by default, what is stored when it connects), then on every wake-up from the
`EventHub` reads what is new and sends `step` (new points, the steps endpoint's shape, downsampled past 2000),
`epoch` (one epoch row), `issue` (an issue that opened or changed: severity, active, epochs), `status` (the run
row when its status, health, epochs or end changed) and `log` (new log records). A comment line every 15 s
keeps proxies from closing an idle stream."""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator, Callable

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .. import _schema as s
from . import _downsample
from ._api import Api, HttpError, _clean, in_pool, int_param
from ._http import error_response, json_response, read_json

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
GATHER_S = 0.05  # after a wake-up, let the same burst of commits land before reading
RUNS_GATHER_S = 0.25
MAX_LOGS_EVENT = 500
SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(_clean(data), ensure_ascii=False, separators=(',', ':'))}\n\n"


class RunCursor:
    """What a run stream has sent so far, and how to read what is new (thread pool)."""

    STATUS_KEYS = ("status", "health_score", "epochs", "ended_at")

    def __init__(self, api: Api, run_id: str) -> None:
        self.api = api
        self.run_id = run_id
        self.step = -1
        self.epoch = -1
        self.log_id = 0
        self.issues: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.status: tuple[Any, ...] | None = None

    def baseline(self, params: Any) -> dict[str, Any]:
        store = self.api.sv.store
        after_step = int_param(params, "after_step", None, -1, 2**63 - 1)
        after_epoch = int_param(params, "after_epoch", None, -1, 2**31 - 1)
        after_log = int_param(params, "after_log", None, 0, 2**63 - 1)
        with store.connect() as conn:
            if after_step is None:
                entry = self.api.series.columns(self.run_id)
                with entry.lock:
                    after_step = int(entry.steps[-1]) if len(entry.steps) else -1
            if after_epoch is None:
                after_epoch = conn.execute(sa.select(sa.func.max(s.epochs.c.epoch)).where(
                    s.epochs.c.run_id == self.run_id, s.epochs.c.rank == 0)).scalar()
                after_epoch = -1 if after_epoch is None else after_epoch
            if after_log is None:
                after_log = conn.execute(sa.select(sa.func.max(s.logs.c.id)).where(
                    s.logs.c.run_id == self.run_id)).scalar() or 0
        self.step, self.epoch, self.log_id = after_step, after_epoch, after_log
        self.read_issues()  # the current issues are what the page loaded: only changes are sent
        row = self.api.run_row(self.run_id)
        self.status = tuple(row.get(k) for k in self.STATUS_KEYS) if row else None
        return {"run": self.run_id, "after_step": self.step, "after_epoch": self.epoch, "after_log": self.log_id}

    def read(self, kinds: set[str]) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if "step" in kinds:
            entry = self.api.series.columns(self.run_id)
            view = _downsample.after(entry, _downsample.SERIES, self.step)
            if view["total"]:
                self.step = view["last_step"]
                out.append(("step", {"run": self.run_id, **view}))
        if "epoch" in kinds:
            from atlas_cli._inspect import get_epochs

            _, rows = get_epochs(self.api.ctx, self.run_id, from_epoch=self.epoch + 1, rank=0)
            for row in rows:
                self.epoch = max(self.epoch, row["epoch"])
                out.append(("epoch", row))
        if "issues" in kinds or "epoch" in kinds:
            out += [("issue", i) for i in self.read_issues()]
        if "log" in kinds:
            logs = self.api.logs(self.run_id, {"after": str(self.log_id), "limit": str(MAX_LOGS_EVENT)})
            if logs["logs"]:
                self.log_id = logs["next"]
                out.append(("log", logs))
        row = self.api.run_row(self.run_id)
        if row is not None:
            status = tuple(row.get(k) for k in self.STATUS_KEYS)
            if status != self.status:
                self.status = status
                out.append(("status", row))
        return out

    def read_issues(self) -> list[dict[str, Any]]:
        """The run's ranked issues that are new or changed since the last read (no waiting on diagnostics)."""
        from atlas_proto.convert import issue_dict
        from atlas_diagnostics import rank_issues

        from .. import _diagnostics as d
        from .._reports import issue_message

        with self.api.sv.store.connect() as conn:
            issues = d.load_issues(conn, self.run_id)
        changed = []
        for issue in rank_issues(issues):
            row = issue_dict(issue_message(self.run_id, issue))
            key = (row["check"], row["layer"], row["first_seen_epoch"])
            value = (row["severity"], row["active"], row["last_seen_epoch"], row["title"])
            if self.issues.get(key) != value:
                self.issues[key] = value
                changed.append(row)
        return changed


async def _follow(request: Request, hub: Any, sub: Any, gather: float,
                  read: Callable[[set[str] | dict[str, set[str]]], list[tuple[str, Any]]],
                  first: list[str]) -> AsyncIterator[str]:
    try:
        yield "retry: 2000\n\n"
        for item in first:
            yield item
        while not sub.closed and not hub.closed:
            try:
                await asyncio.wait_for(sub.wake.wait(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                yield ": keepalive\n\n"
                continue
            if sub.closed or hub.closed:
                return
            await asyncio.sleep(gather)
            pending = sub.take()
            try:
                events = await in_pool(read, pending)
            except Exception:  # noqa: BLE001 - a failed read is logged; the stream goes on with the next change
                log.exception("event stream read failed")
                continue
            for name, data in events:
                yield sse(name, data)
    finally:
        hub.unsubscribe(sub)


def run_stream(api: Api, hub: Any) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            run_id = await in_pool(api.resolve, request.path_params["run"])
            sub = hub.subscribe(run_id)  # before the baseline: nothing committed in between is missed
            cursor = RunCursor(api, run_id)
            try:
                hello = await in_pool(cursor.baseline, request.query_params)
            except BaseException:
                hub.unsubscribe(sub)
                raise
        except Exception as exc:  # noqa: BLE001
            return error_response(exc)

        def read(pending: dict[str, set[str]]) -> list[tuple[str, Any]]:
            return cursor.read(set().union(*pending.values()) if pending else set())

        return StreamingResponse(_follow(request, hub, sub, GATHER_S, read, [sse("hello", hello)]),
                                 media_type="text/event-stream", headers=SSE_HEADERS)

    return endpoint


def runs_stream(api: Api, hub: Any) -> Callable[[Request], Any]:
    """`GET /api/events`: a `run` event (the runs list's row) for each run that changed."""
    async def endpoint(request: Request) -> Response:
        sub = hub.subscribe(None)
        sent: dict[str, Any] = {}

        def read(pending: dict[str, set[str]]) -> list[tuple[str, Any]]:
            out = []
            for run_id in list(pending)[:200]:
                row = api.run_row(run_id)
                if row is None:
                    out.append(("run_deleted", {"id": run_id}))
                    continue
                if sent.get(run_id) != row:
                    sent[run_id] = row
                    out.append(("run", row))
            if len(sent) > 10_000:
                sent.clear()
            return out

        return StreamingResponse(_follow(request, hub, sub, RUNS_GATHER_S, read, [sse("hello", {})]),
                                 media_type="text/event-stream", headers=SSE_HEADERS)

    return endpoint


# ------------------------------------------------------------------------------------------- agent

NO_LLM = ("no LLM is configured for this collector: set OPENAI_BASE_URL (and OPENAI_API_KEY) or ANTHROPIC_API_KEY "
          "in the collector's environment, as for `atlas ask`")


def ask_stream(api: Api) -> Callable[[Request], Any]:
    """`POST /api/runs/{id}/ask {"question"}`: `atlas ask`'s agent, streamed as `token`, `tool`, `done`, `error`."""
    async def endpoint(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        try:
            body = await read_json(request)
            question = body.get("question") if isinstance(body, dict) else None
            if not isinstance(question, str) or not question.strip() or len(question) > 4000:
                raise HttpError(400, "question must be non-empty text of at most 4000 characters")
            run = await in_pool(api.run, request.path_params["run"])
            try:
                from atlas_cli.agent import Agent, AllProvidersFailed, ToolRunner, configured
                from atlas_cli.agent._fallback import diagnostics_answer
            except Exception as exc:  # noqa: BLE001 - the SDKs are missing or broken in this environment
                raise HttpError(503, f"the agent cannot be loaded in the collector ({type(exc).__name__}: {exc})")
            providers = configured()
        except Exception as exc:  # noqa: BLE001
            return error_response(exc)
        if not providers:
            fallback = await in_pool(diagnostics_answer, api.ctx, run)
            return json_response({"error": NO_LLM, "fallback": fallback["text"]}, 503)
        queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()

        def put(event: str, data: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (event, data))

        runner = ToolRunner(api.ctx, allow_actions=False)
        plain_run = runner.run

        def traced(name: str, arguments: Any) -> str:
            put("tool", {"name": name, "arguments": arguments if isinstance(arguments, dict) else None})
            return plain_run(name, arguments)

        runner.run = traced  # type: ignore[method-assign]
        agent = Agent(providers, runner, run, stream=lambda text: put("token", {"text": text}))

        def work() -> None:
            try:
                answer = agent.ask(question)
                put("done", {"answer": answer.text, "provider": answer.provider, "rounds": answer.rounds,
                             "belief": answer.belief.to_dict(), "revised": answer.revised})
            except AllProvidersFailed as exc:
                put("error", {"error": f"every configured LLM failed ({exc})",
                              "fallback": diagnostics_answer(api.ctx, run)["text"]})
            except Exception as exc:  # noqa: BLE001 - the stream says what went wrong, in one line
                put("error", {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        async def events() -> AsyncIterator[str]:
            import threading

            # its own thread: an answer takes as long as the LLM does, and must not hold a pool thread that long
            threading.Thread(target=work, name="atlas-web-agent", daemon=True).start()
            while True:
                item = await queue.get()
                if item is None:
                    break
                yield sse(*item)

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    return endpoint
