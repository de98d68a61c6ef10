"""OpenTelemetry export of runs (OTLP over gRPC, or HTTP/protobuf).

    exporter = OtelExporter.from_config(config, store, driver=driver)   # None when no endpoint is set
    writer = Writer(store, on_commit=chain(driver.notify, exporter.notify))
    ...
    exporter.shutdown(5.0)

Ingest never waits on export. `notify` (writer thread, after each commit) only notes which runs got an epoch,
an end or steps, in a bounded dict (coalesced per run; when full the oldest entry is dropped and counted);
one worker thread reads those runs back from the store, builds their spans (`_otel_spans`, deterministic ids)
and exports them; metrics go through the SDK's `PeriodicExportingMetricReader` on its own thread. A backend
that is down costs the worker its export timeout per batch and nothing else: failures are counted in
`stats`, logged at most once per `LOG_EVERY_S`, never raised. `replay(run_id)` re-sends a run from the store.

Which process exports what: the epoch span is sent by the process that committed that epoch's summary (rank
zero's), after the diagnostics of that data have settled, so the issues first seen in the epoch ride on it;
the root span (and the epoch the run never finished) by the process that committed the run's end. Ingest is
idempotent by (run, rank, sequence), so each span is sent once live, whichever replica gets the stream. While
a run goes on, its epoch spans name the root as parent before the root exists: backends show the trace with
a missing root until the run ends (documented in deploy/OTEL.md)."""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _otel_spans as sp
from . import _metrics, _steps
from ._diagnosed import Diagnosed
from ._exceptions import ConfigError
from ._ingest import Outcome
from ._kinds import Kind
from ._store import Store
from ._otel_metrics import SEVERITIES, RunMetrics

log = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http/protobuf")
LOG_EVERY_S = 30.0
STEP_SAMPLE_ROWS = 100  # newest step samples read per run per pass (metrics only; at most one pass a second)
_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")


# ---------------------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class OtelSettings:
    """Where and how to export. `endpoint` empty: each exporter resolves the standard OTEL_* variables."""

    endpoint: str
    protocol: str
    traces: bool = True
    metrics: bool = True
    metric_interval_s: float = 60.0

    @classmethod
    def resolve(cls, otlp_endpoint: str = "", env: Mapping[str, str] | None = None) -> "OtelSettings | None":
        """`--otlp-endpoint`/ATLAS_OTLP_ENDPOINT, else the standard variables; None when export is off."""
        env = os.environ if env is None else env
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        if not otlp_endpoint and not any(env.get(v) for v in _ENDPOINT_VARS):
            return None
        protocol = (env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").strip().lower()
        if protocol not in PROTOCOLS:
            raise ConfigError(f"environment OTEL_EXPORTER_OTLP_PROTOCOL must be one of {', '.join(PROTOCOLS)}, "
                              f"got {protocol!r}")
        endpoint = otlp_endpoint.strip()
        if endpoint and "://" not in endpoint:
            endpoint = f"http://{endpoint}"  # host:port is plaintext; write https://host:port for TLS
        interval = env.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")
        try:
            interval_s = float(interval) / 1000.0
        except ValueError:
            raise ConfigError(f"environment OTEL_METRIC_EXPORT_INTERVAL must be milliseconds, got {interval!r}") \
                from None
        if not interval_s > 0:
            raise ConfigError(f"environment OTEL_METRIC_EXPORT_INTERVAL must be > 0, got {interval!r}")
        return cls(endpoint=endpoint, protocol=protocol,
                   traces=env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "none",
                   metrics=env.get("OTEL_METRICS_EXPORTER", "otlp").strip().lower() != "none",
                   metric_interval_s=interval_s)

    def span_exporter(self) -> SpanExporter:
        if self.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            return OTLPSpanExporter(endpoint=self.endpoint or None)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

        return HttpSpanExporter(endpoint=f"{self.endpoint.rstrip('/')}/v1/traces" if self.endpoint else None)

    def metric_exporter(self) -> MetricExporter:
        if self.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            return OTLPMetricExporter(endpoint=self.endpoint or None)
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter

        return HttpMetricExporter(endpoint=f"{self.endpoint.rstrip('/')}/v1/metrics" if self.endpoint else None)


def default_resource() -> Resource:
    """OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME as given, with `service.name=atlas-collector` by default."""
    resource = Resource.create({})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "atlas-collector"}))
    if "service.version" not in resource.attributes:
        resource = resource.merge(Resource({"service.version": sp.SCOPE.version or ""}))
    return resource


def chain(*hooks: Callable[[list[Any]], None] | None) -> Callable[[list[Any]], None]:
    """One post-commit hook that calls each of `hooks` (None skipped); one failing never skips the others."""
    live = [h for h in hooks if h is not None]

    def on_commit(outcomes: list[Any]) -> None:
        for hook in live:
            try:
                hook(outcomes)
            except Exception:  # noqa: BLE001 - post-commit work never breaks ingest
                log.exception("post-commit hook %r failed", hook)

    return on_commit


# ------------------------------------------------------------------------------------------- failures

class _Failures:
    """Counts export failures per signal; logs the first, then at most one line per LOG_EVERY_S."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._last_log = 0.0
        self._unlogged = 0

    def failed(self, what: str, n: int, detail: str = "") -> None:
        with self._lock:
            self.counts[what] += n
            now = time.monotonic()
            if now - self._last_log < LOG_EVERY_S:
                self._unlogged += 1
                return
            self._last_log, skipped, self._unlogged = now, self._unlogged, 0
        log.warning("OTLP export failed: %d %s lost%s (%d failure(s) not logged since the last line; "
                    "atlas-collector otel-replay RUN re-sends a run)", n, what, f": {detail}" if detail else "",
                    skipped)


class _CountingMetricExporter(MetricExporter):
    """Delegates to the OTLP metric exporter and counts what it could not deliver."""

    def __init__(self, inner: MetricExporter, failures: _Failures) -> None:
        super().__init__(preferred_temporality=inner._preferred_temporality,
                         preferred_aggregation=inner._preferred_aggregation)
        self._inner = inner
        self._failures = failures

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:  # noqa: BLE001 - counted; the reader keeps going
            result, detail = MetricExportResult.FAILURE, repr(exc)
        else:
            detail = ""
        if result is not MetricExportResult.SUCCESS:
            self._failures.failed("metric batches", 1, detail)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


# ------------------------------------------------------------------------------------------- exporter

class OtelExporter:
    """Exports runs to OTLP from its own thread. `shutdown` is bounded and safe to call twice."""

    def __init__(self, store: Store, *, span_exporter: SpanExporter | None, metric_exporter: MetricExporter | None,
                 resource: Resource | None = None, driver: Diagnosed | None = None, metric_interval_s: float = 60.0,
                 max_queue: int = 10_000, settle_s: float = 3.0, steps_every_s: float = 1.0,
                 max_batch: int = 512) -> None:
        if max_queue < 1:
            raise ValueError(f"`max_queue` must be >= 1, got {max_queue!r}")
        self._store = store
        self._spans = span_exporter
        self._driver = driver
        self._resource = resource or default_resource()
        self._max_queue = max_queue
        self._settle_s = settle_s
        self._steps_every_s = steps_every_s
        self._max_batch = max_batch
        self.failures = _Failures()
        self.stats: collections.Counter[str] = collections.Counter()
        self._cond = threading.Condition()
        self._pending: collections.OrderedDict[tuple[str, str], int] = collections.OrderedDict()
        self._not_before: dict[tuple[str, str], float] = {}
        self._busy = False
        self._stopping = False
        self._abandon = False
        self._attrs: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._step_cursor: dict[str, int] = {}
        self._provider: MeterProvider | None = None
        self._metrics: RunMetrics | None = None
        if metric_exporter is not None:
            reader = PeriodicExportingMetricReader(_CountingMetricExporter(metric_exporter, self.failures),
                                                   export_interval_millis=metric_interval_s * 1000.0)
            self._provider = MeterProvider(resource=self._resource, metric_readers=[reader])
            self._metrics = RunMetrics(self._provider, retain_s=max(120.0, 3 * metric_interval_s))
        self._thread = threading.Thread(target=self._loop, name="atlas-otel", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, config: Any, store: Store, *, driver: Diagnosed | None = None,
                    env: Mapping[str, str] | None = None) -> "OtelExporter | None":
        """The exporter the collector's config and the OTEL_* environment ask for; None when export is off."""
        settings = OtelSettings.resolve(getattr(config, "otlp_endpoint", "") or "", env)
        if settings is None:
            return None
        exporter = cls(store, span_exporter=settings.span_exporter() if settings.traces else None,
                       metric_exporter=settings.metric_exporter() if settings.metrics else None,
                       driver=driver, metric_interval_s=settings.metric_interval_s)
        log.info("OTLP export on: endpoint=%s protocol=%s traces=%s metrics=%s",
                 settings.endpoint or "(OTEL_EXPORTER_OTLP_* environment)", settings.protocol,
                 settings.traces, settings.metrics)
        return exporter

    # ------------------------------------------------------------------------------------- feeding

    def notify(self, outcomes: Iterable[Outcome]) -> None:
        """Writer thread, after commit: note the runs that got an epoch, an end or steps. Never blocks long."""
        added = False
        with self._cond:
            for o in outcomes:
                if o.error is not None or not o.applied:
                    continue
                if o.kind == Kind.EPOCH_SUMMARY and o.rank == 0:
                    key = ("epochs", o.run_id)
                elif o.kind == Kind.RUN_END and o.rank == 0:
                    key = ("end", o.run_id)
                elif o.kind == Kind.STEP_BATCH and self._metrics is not None:
                    key = ("steps", o.run_id)
                elif o.kind == Kind.METRIC_BATCH and self._metrics is not None:
                    key = ("user_metrics", o.run_id)  # at most once per steps_every_s per run, as the steps
                else:
                    continue
                if key not in self._pending and len(self._pending) >= self._max_queue:
                    self._pending.popitem(last=False)
                    self.stats["dropped"] += 1
                self._pending[key] = self._pending.get(key, 0) + 1
                added = True
            if added:
                self._cond.notify_all()

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) until what was notified so far has been exported; then flush the metrics."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._not_before.clear()
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: (not self._pending and not self._busy) or not self._thread.is_alive(),
                                       timeout)
        if self._provider is not None:
            done = self._provider.force_flush(max(0.0, deadline - time.monotonic()) * 1000) and done
        return done

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Export what is pending (bounded by `timeout`), stop the worker and the exporters."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._stopping:
                return not self._thread.is_alive()
            self._not_before.clear()
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic() - 0.5))
        if self._thread.is_alive():  # out of time: what is still pending is left to otel-replay
            with self._cond:
                self._abandon = True
                left = len(self._pending)
                self.stats["abandoned"] += left
                self._pending.clear()
                self._cond.notify_all()
            log.warning("OTLP export: stopping with %d run update(s) not exported; atlas-collector otel-replay RUN "
                        "re-sends a run", left)
            self._thread.join(0.5)
        if self._provider is not None:
            self._provider.shutdown(max(0.1, deadline - time.monotonic()) * 1000)
        if self._spans is not None:
            try:
                self._spans.shutdown()
            except Exception:  # noqa: BLE001
                log.debug("span exporter shutdown failed", exc_info=True)
        lost = sum(self.failures.counts.values()) + self.stats["dropped"]
        if lost:
            log.warning("OTLP export: %s; dropped notifications=%d", dict(self.failures.counts), self.stats["dropped"])
        return not self._thread.is_alive()

    def __enter__(self) -> "OtelExporter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    # ------------------------------------------------------------------------------------- replay

    def replay(self, run_id: str, *, include_root: bool | None = None) -> int:
        """Send every span of `run_id` as the store holds it now; returns how many. Raises on failure."""
        if self._spans is None:
            raise ConnectionError("trace export is off (OTEL_TRACES_EXPORTER=none): nothing to replay to")
        with self._store.connect() as conn:
            spans = sp.run_spans(conn, run_id, self._resource, include_root=include_root)
        if spans and not self._export(spans):
            raise ConnectionError(f"the OTLP backend did not accept the {len(spans)} span(s) of run {run_id}")
        return len(spans)

    # ------------------------------------------------------------------------------------- worker

    def _take(self) -> list[tuple[tuple[str, str], int]]:
        """Under the lock: the pending keys that are due, oldest first (steps wait `steps_every_s` between
        passes), at most `max_batch` of them."""
        now = time.monotonic()
        due = [k for k in self._pending if self._not_before.get(k, 0.0) <= now][:self._max_batch]
        return [(k, self._pending.pop(k)) for k in due]

    def _loop(self) -> None:
        while True:
            with self._cond:
                items = self._take()
                while not items:
                    if self._stopping and (not self._pending or self._abandon):
                        return
                    due = min((self._not_before.get(k, 0.0) for k in self._pending), default=None)
                    self._cond.wait(None if due is None else max(0.01, due - time.monotonic()))
                    items = self._take()
                self._busy = True
            spans: list[ReadableSpan] = []
            try:
                for key, count in items:
                    if self._abandon:
                        self.stats["abandoned"] += 1
                        continue
                    try:
                        self._handle(key, count, spans)
                    except Exception as exc:  # noqa: BLE001 - worker boundary: export is never fatal
                        self.stats["errors"] += 1
                        self.failures.failed("run updates", 1, f"{key[0]} of run {key[1]}: {exc!r}")
                if spans and self._spans is not None and not self._abandon:
                    self._export(spans)  # one request for what this pass built
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _export(self, spans: list[ReadableSpan]) -> bool:
        ok = True
        for i in range(0, len(spans), self._max_batch):
            batch = spans[i:i + self._max_batch]
            try:
                result = self._spans.export(batch)  # type: ignore[union-attr]
            except Exception as exc:  # noqa: BLE001 - counted and logged below
                result, detail = SpanExportResult.FAILURE, repr(exc)
            else:
                detail = ""
            if result is SpanExportResult.SUCCESS:
                self.stats["spans"] += len(batch)
            else:
                ok = False
                self.failures.failed("spans", len(batch), detail)
        return ok

    def _run_attrs(self, conn: Any, run_id: str) -> dict[str, Any] | None:
        attrs = self._attrs.get(run_id)
        if attrs is None:
            run = sp.read_run(conn, run_id)
            if run is None:
                return None
            attrs = self._attrs[run_id] = sp.run_attributes(run)
            while len(self._attrs) > 4096:
                self._attrs.popitem(last=False)
        return attrs

    def _settle(self, run_id: str) -> None:
        if self._driver is not None:  # when stopping, delivering the spans comes first
            self._driver.settle(run_id, 0.2 if self._stopping else self._settle_s)

    def _handle(self, key: tuple[str, str], count: int, spans: list[ReadableSpan]) -> None:
        kind, run_id = key
        if kind == "user_metrics":
            with self._store.connect() as conn:
                attrs = self._run_attrs(conn, run_id)
                if attrs is not None and self._metrics is not None:
                    self._metrics.on_user_metrics(attrs, {k["key"]: k["last_value"]
                                                          for k in _metrics.keys(conn, run_id)})
            with self._cond:
                self._not_before[key] = time.monotonic() + self._steps_every_s
            return
        if kind == "steps":
            self._steps(run_id)
            with self._cond:
                self._not_before[key] = time.monotonic() + self._steps_every_s
            return
        self._settle(run_id)  # the issues the new data produced are in the store before the spans are built
        with self._store.connect() as conn:
            run = sp.read_run(conn, run_id)
            if run is None:
                return
            attrs = sp.run_attributes(run)
            if kind == "epochs":
                rows = sp.read_epochs(conn, run_id, last=count)
                if self._spans is not None:
                    issues = sp.read_issues(conn, run_id)
                    for row in rows:
                        before = self._store.epochs(conn, run_id, from_epoch=row["epoch"] - 1,
                                                    to_epoch=row["epoch"] - 1)
                        previous = before[0]["ended_at"] if before else None
                        spans.append(sp.epoch_span(run, row, issues, self._resource, previous))
                if self._metrics is not None:
                    for row in rows:
                        self._metrics.on_epoch(attrs, row)
            elif kind == "end":
                if self._spans is not None and run["status"] in sp.FINAL_STATUSES:
                    spans.extend(sp.end_spans(conn, run, self._resource))
                if self._metrics is not None:
                    self._steps(run_id, conn)
                    self._metrics.on_end(attrs, run["status"])
            if self._metrics is not None:
                active = collections.Counter(i["severity"] for i in sp.read_issues(conn, run_id) if i["active"])
                self._metrics.on_health(attrs, run.get("health_score"), {sev: n for sev, n in active.items()
                                                                         if sev in SEVERITIES})
        if kind == "end":  # the steps were read above; a steps pass still queued would count them twice
            with self._cond:
                self._pending.pop(("steps", run_id), None)
                self._not_before.pop(("steps", run_id), None)
            self._step_cursor.pop(run_id, None)
            self._attrs.pop(run_id, None)

    def _steps(self, run_id: str, conn: Any = None) -> None:
        """The newest step samples since the last pass of this run (at most STEP_SAMPLE_ROWS of them, so the
        cost stays flat whatever the step rate): loss and step-time histograms, the loss and step gauges."""
        if self._metrics is None:
            return
        if conn is None:
            with self._store.connect() as own:
                return self._steps(run_id, own)
        attrs = self._run_attrs(conn, run_id)
        if attrs is None:
            return
        cursor = self._step_cursor.get(run_id, 0)
        newest, samples = _steps.after(conn, run_id, 0, cursor, STEP_SAMPLE_ROWS)
        if samples:
            self._step_cursor[run_id] = newest
            self._metrics.on_steps(attrs, [_steps.as_row(run_id, 0, x) for x in samples])
