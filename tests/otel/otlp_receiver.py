"""A real OTLP receiver on loopback, built on the official service definitions of `opentelemetry-proto`:
gRPC (TraceService, MetricsService) and HTTP/protobuf (POST /v1/traces, /v1/metrics). It keeps what it
receives and flattens it into plain dicts for assertions."""
from __future__ import annotations

import contextlib
import http.server
import threading
import time
from concurrent import futures
from typing import Any, Callable, Iterator

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as mpb, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tpb, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def any_value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


class Received:
    """What arrived, thread-safe, with waiting helpers."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.trace_requests: list[tpb.ExportTraceServiceRequest] = []
        self.metric_requests: list[mpb.ExportMetricsServiceRequest] = []
        self.gate = threading.Event()  # Export answers only while set (clear it to hold the exporter)
        self.gate.set()

    def add(self, request: Any) -> None:
        with self.cond:
            (self.trace_requests if isinstance(request, tpb.ExportTraceServiceRequest)
             else self.metric_requests).append(request)
            self.cond.notify_all()

    def spans(self) -> list[dict[str, Any]]:
        out = []
        with self.cond:
            requests = list(self.trace_requests)
        for req in requests:
            for rs in req.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append({
                            "name": span.name, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(), "attrs": attrs(span.attributes),
                            "events": [{"name": e.name, "time": e.time_unix_nano, "attrs": attrs(e.attributes)}
                                       for e in span.events],
                            "status": span.status.code, "status_message": span.status.message,
                            "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                            "resource": resource, "scope": ss.scope.name,
                        })
        return out

    def metrics(self) -> dict[str, list[dict[str, Any]]]:
        """Metric name -> its data points (attributes, value or histogram fields, unit, kind)."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self.cond:
            requests = list(self.metric_requests)
        for req in requests:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        for p in getattr(m, kind).data_points:
                            point = {"attrs": attrs(p.attributes), "unit": m.unit, "kind": kind,
                                     "resource": attrs(rm.resource.attributes)}
                            if kind == "histogram":
                                point.update(count=p.count, sum=p.sum, bounds=list(p.explicit_bounds),
                                             buckets=list(p.bucket_counts))
                            else:
                                point["value"] = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                            out.setdefault(m.name, []).append(point)
        return out

    def wait(self, predicate: Callable[["Received"], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s; spans={[s['name'] for s in self.spans()]} "
                                     f"metrics={sorted(self.metrics())}")
            with self.cond:
                self.cond.wait(min(remaining, 0.2))


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: tpb.ExportTraceServiceRequest, context: Any) -> tpb.ExportTraceServiceResponse:
        self.received.gate.wait(30)
        self.received.add(request)
        return tpb.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: mpb.ExportMetricsServiceRequest, context: Any) -> mpb.ExportMetricsServiceResponse:
        self.received.add(request)
        return mpb.ExportMetricsServiceResponse()


@contextlib.contextmanager
def grpc_receiver(port: int = 0) -> Iterator[tuple[str, Received]]:
    """An OTLP/gRPC receiver on 127.0.0.1; yields ("127.0.0.1:PORT", received)."""
    received = Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(received), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(received), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield f"127.0.0.1:{bound}", received
    finally:
        server.stop(0).wait(5)


@contextlib.contextmanager
def http_receiver() -> Iterator[tuple[str, Received]]:
    """An OTLP/HTTP (protobuf) receiver on 127.0.0.1; yields ("http://127.0.0.1:PORT", received)."""
    received = Received()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/v1/traces":
                req: Any = tpb.ExportTraceServiceRequest.FromString(body)
                resp: Any = tpb.ExportTraceServiceResponse()
            elif self.path == "/v1/metrics":
                req, resp = mpb.ExportMetricsServiceRequest.FromString(body), mpb.ExportMetricsServiceResponse()
            else:
                self.send_response(404)
                self.end_headers()
                return
            received.add(req)
            payload = resp.SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
