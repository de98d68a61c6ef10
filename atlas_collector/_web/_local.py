"""The CLI's own readers, run inside the collector: a `Ctx` whose client calls the query functions directly.

The JSON API answers exactly what `atlas ... --json` prints because it runs the same code: `atlas_cli`'s
`get_run`, `list_issues`, `get_health`, `get_green`, `get_epochs`, `get_arch`, `get_trend`, `get_comparison` and
the agent take a `Ctx` and call typed `CollectorClient` methods; here the client's stub is `LocalStub`, which hands
each call to the plain function the QueryService servicer dispatches to (`_queries`, `_reports`), with no gRPC in
between."""
from __future__ import annotations

from typing import Any, Callable

from .. import _queries, _reports
from .._exceptions import RunNotFound

_STORE_FNS: dict[str, Callable[..., Any]] = {
    "ListRuns": _queries.list_runs, "GetRun": _queries.get_run, "GetEpochs": _queries.get_epochs,
    "GetSteps": _queries.get_steps, "GetLogs": _queries.get_logs, "GetArchitecture": _queries.get_architecture,
}
for _method, _name in (("ListMetrics", "list_metrics"), ("GetMetricSeries", "get_metric_series")):
    if hasattr(_queries, _name):  # user metrics (issue 16)
        _STORE_FNS[_method] = getattr(_queries, _name)
_SERVICE_FNS: dict[str, Callable[..., Any]] = {
    "ListIssues": _reports.list_issues, "GetHealth": _reports.get_health,
    "GetSustainability": _reports.sustainability, "GetProjectTrend": _reports.project_trend,
    "CompareRuns": _reports.compare_runs, "SendCommand": _reports.command, "Diagnose": _reports.diagnose,
}


class LocalStub:
    """`QueryServiceStub`'s shape (each RPC a method taking the request, a timeout and metadata), answered in process
    (thread-safe)."""

    def __init__(self, services: _reports.Services) -> None:
        self._services = services

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method in _STORE_FNS:
            fn, arg = _STORE_FNS[method], self._services.store
        elif method in _SERVICE_FNS:
            fn, arg = _SERVICE_FNS[method], self._services
        else:
            raise NotImplementedError(f"QueryService.{method} is not served in process")

        def call(request: Any, timeout: float | None = None, metadata: Any = None) -> Any:
            try:
                return fn(arg, request)
            except RunNotFound as exc:  # the CLI's readers (and the agent) catch NotFound by its class
                from atlas_cli._client import NotFound

                raise NotFound(str(exc)) from exc

        return call


def local_ctx(services: _reports.Services) -> Any:
    """An `atlas_cli` context object bound to this collector."""
    from atlas_cli._app import Ctx
    from atlas_cli._client import CollectorClient

    return Ctx(collector="in-process", token=None, tls_ca=None, json=True,
               _client=CollectorClient("this collector", stub=LocalStub(services)))
