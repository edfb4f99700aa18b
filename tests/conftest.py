"""Shared helpers and fixtures: the small templates (made once per session),
decoding with the official opentelemetry-proto classes, and a receiver built
from the official servicers that keeps what it gets."""
from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from concurrent import futures
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import telegen
from telegen.generate.config import (
    GeneratorConfig,
    HighSpanTracesConfig,
    LogsConfig,
    MetricsConfig,
    SpansConfig,
    TimeseriesPerMetricConfig,
    TracesConfig,
)
from telegen.send.load.batches import SignalTemplates, build_batches
from telegen.templates import SIGNALS, TemplateSet


def decode_traces(record: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(record)
    return message


def decode_metrics(record: bytes) -> ExportMetricsServiceRequest:
    message = ExportMetricsServiceRequest()
    message.ParseFromString(record)
    return message


def decode_logs(record: bytes) -> ExportLogsServiceRequest:
    message = ExportLogsServiceRequest()
    message.ParseFromString(record)
    return message


def spans_with_resource(record: bytes) -> list[tuple[dict, object, object]]:
    """(resource attributes, scope, span) for every span of one trace record."""
    out = []
    for rs in decode_traces(record).resource_spans:
        resource = {kv.key: kv.value for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            out.extend((resource, ss.scope, span) for span in ss.spans)
    return out


def attr(obj, key: str):
    """The Python value of attribute `key` of a span/log/point, or None."""
    for kv in obj.attributes:
        if kv.key == key:
            which = kv.value.WhichOneof("value")
            return getattr(kv.value, which)
    return None


def small_config(**overrides) -> GeneratorConfig:
    """A config that generates all three signals in well under a second."""
    config = GeneratorConfig(
        seed=1234,
        traces=TracesConfig(count=60, spans=SpansConfig(
            avg_per_trace=12, std_dev=4, high_span_traces=HighSpanTracesConfig(enabled=True, count=1, span_count=500))),
        metrics=MetricsConfig(metric_count=20, timeseries_per_metric=TimeseriesPerMetricConfig(min=5, max=20, default=10)),
        logs=LogsConfig(count=300),
    )
    return replace(config, **overrides)


@pytest.fixture
def small() -> GeneratorConfig:
    return small_config()


@pytest.fixture(scope="session")
def templates() -> TemplateSet:
    """small_config()'s templates, shared by every test: read them, never change them."""
    return telegen.generate(small_config())


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory, templates) -> Path:
    """The same templates saved as `telegen generate` writes them (prefix telemetry)."""
    directory = tmp_path_factory.mktemp("templates")
    templates.save(directory)
    return directory


BATCH_SIZES = {"traces": 10, "metrics": 60, "logs": 100}


def loaded_batches(templates: TemplateSet, signals: tuple[str, ...] = SIGNALS) -> list[SignalTemplates]:
    """The templates as the sender batches them, at sizes that make several batches of each signal."""
    return [build_batches(s, templates.records(s), BATCH_SIZES[s], 4 * 2**20) for s in signals]


class DecodedRequests:
    """What a test receiver kept, per signal, decoded with the official
    classes; the events in them counted as the OTLP messages nest them."""

    requests: dict[str, list]

    def spans(self):
        return [s for r in self.requests["traces"] for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def events(self, signal: str) -> int:
        if signal == "traces":
            return len(self.spans())
        if signal == "logs":
            return sum(len(sl.log_records) for r in self.requests["logs"] for rl in r.resource_logs
                       for sl in rl.scope_logs)
        return sum(len(getattr(m, m.WhichOneof("data")).data_points) for r in self.requests["metrics"]
                   for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)


class Recorder(DecodedRequests, trace_service_pb2_grpc.TraceServiceServicer,
               metrics_service_pb2_grpc.MetricsServiceServicer, logs_service_pb2_grpc.LogsServiceServicer):
    """A receiver from the official servicers: every request fully decoded and kept."""

    def __init__(self) -> None:
        self.requests: dict[str, list] = defaultdict(list)
        self.lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 - the servicers' name
        name = type(request).__name__
        signal = {"ExportTraceServiceRequest": "traces", "ExportMetricsServiceRequest": "metrics",
                  "ExportLogsServiceRequest": "logs"}[name]
        with self.lock:
            self.requests[signal].append(request)
        return {"traces": trace_service_pb2.ExportTraceServiceResponse,
                "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
                "logs": logs_service_pb2.ExportLogsServiceResponse}[signal]()


def serve(recorder: Recorder, credentials=None, options: tuple = ()) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(4),
                         options=[("grpc.max_receive_message_length", 64 * 2**20), *options])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(recorder, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(recorder, server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(recorder, server)
    port = (server.add_secure_port("127.0.0.1:0", credentials) if credentials
            else server.add_insecure_port("127.0.0.1:0"))
    server.start()
    return server, port


def metric_series(recorder: Recorder) -> set:
    """Distinct series received: (resource attributes, metric name, point attributes)."""
    def attrs(kvs) -> frozenset:
        return frozenset((kv.key, kv.value.SerializeToString()) for kv in kvs)
    series = set()
    for request in recorder.requests["metrics"]:
        for rm in request.resource_metrics:
            resource = attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for point in getattr(m, m.WhichOneof("data")).data_points:
                        series.add((resource, m.name, attrs(point.attributes)))
    return series


# ---------------------------------------------------------------------------
# Waiting on events, not clocks: every wait is bounded, and says what it waited for.
# ---------------------------------------------------------------------------

def eventually(condition, timeout: float = 30.0, what: str = "the condition"):
    """Poll `condition()` until it is truthy; its value. Fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        time.sleep(0.02)


def settled(sink, timeout: float = 10.0):
    """A sink's stats once they stop changing (two reads 0.1 s apart agree):
    what it holds after a sender has finished."""
    previous = sink.stats()

    def same() -> bool:
        nonlocal previous
        time.sleep(0.1)
        current = sink.stats()
        steady, previous = current.signals() == previous.signals(), current
        return steady

    eventually(same, timeout, "the sink's counts to settle")
    return previous


class Lines:
    """A child process's output stream read on a thread, so a test can wait
    for a line (and see everything read so far when it fails)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"waited {timeout:g} s for {text!r}; got {''.join(self.lines)!r}") from None
            if line is None:
                raise AssertionError(f"the stream ended before {text!r}; got {''.join(self.lines)!r}")
            self.lines.append(line)
            if text in line:
                return line

    def rest(self, timeout: float = 60.0) -> str:
        """Everything, once the stream has ended."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                return "".join(self.lines)
            self.lines.append(line)
