"""telegen.Sink and `telegen sink`: real gRPC on loopback, real OTLP clients."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import Observation
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telegen import Sink
from telegen.sink import SERVICES, SinkError, SinkFaults, count_events

T0 = 1_700_000_000_000_000_000
RESPONSES = {"traces": ExportTraceServiceResponse, "metrics": ExportMetricsServiceResponse,
             "logs": ExportLogsServiceResponse}


# ----------------------------------------------------------------------------
# Requests built with the official protobuf classes


def make_span(i: int, **overrides) -> Span:
    fields = dict(trace_id=b"\x01" * 16, span_id=(i + 1).to_bytes(8, "big"), name=f"op-{i}",
                  start_time_unix_nano=T0 + i, end_time_unix_nano=T0 + i + 1000)
    fields.update(overrides)
    return Span(**fields)


def traces_request(n: int, **overrides) -> bytes:
    """`n` spans split over two scopes, so counting must walk every level."""
    spans = [make_span(i, **overrides) for i in range(n)]
    half = n // 2
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[
        ScopeSpans(spans=spans[:half]), ScopeSpans(spans=spans[half:])])])
    return request.SerializeToString()


def logs_request(n: int, **overrides) -> bytes:
    fields = dict(time_unix_nano=T0, body={"string_value": "hello"})
    fields.update(overrides)
    records = [LogRecord(**fields) for _ in range(n)]
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[
        ScopeLogs(log_records=records)])]).SerializeToString()


def metrics_request(time_unix_nano: int = T0) -> tuple[bytes, int]:
    """One metric of every kind (plus one with no data), and its point count."""
    t = time_unix_nano
    metrics = [
        m.Metric(name="gauge", gauge=m.Gauge(data_points=[m.NumberDataPoint(time_unix_nano=t, as_double=1.5)] * 2)),
        m.Metric(name="sum", sum=m.Sum(data_points=[m.NumberDataPoint(time_unix_nano=t, as_int=3)] * 3,
                                       is_monotonic=True, aggregation_temporality=2)),
        m.Metric(name="histogram", histogram=m.Histogram(data_points=[
            m.HistogramDataPoint(time_unix_nano=t, count=2, bucket_counts=[1, 1], explicit_bounds=[5.0])])),
        m.Metric(name="exp", exponential_histogram=m.ExponentialHistogram(data_points=[
            m.ExponentialHistogramDataPoint(time_unix_nano=t, count=1, scale=2)] * 2)),
        m.Metric(name="summary", summary=m.Summary(data_points=[m.SummaryDataPoint(time_unix_nano=t, count=4)])),
        m.Metric(name="no-data"),
    ]
    request = ExportMetricsServiceRequest(resource_metrics=[m.ResourceMetrics(scope_metrics=[
        m.ScopeMetrics(metrics=metrics[:3]), m.ScopeMetrics(metrics=metrics[3:])])])
    return request.SerializeToString(), 2 + 3 + 1 + 2 + 1


def export(endpoint: str, signal_name: str, data: bytes, compression: grpc.Compression | None = None) -> bytes:
    """One raw Export call; returns the raw response bytes or raises grpc.RpcError."""
    with grpc.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(f"/{SERVICES[signal_name]}/Export",
                                   request_serializer=None, response_deserializer=None)
        return call(data, timeout=5, compression=compression)


def export_code(endpoint: str, signal_name: str, data: bytes) -> grpc.StatusCode:
    try:
        export(endpoint, signal_name, data)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


# ----------------------------------------------------------------------------
# Counting


def test_address_is_the_bound_loopback_port(sink):
    host, port = sink.address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert sink.endpoint == sink.address


def test_count_events_counts_every_kind_of_event():
    metrics, points = metrics_request()
    assert count_events("traces", traces_request(7)) == 7
    assert count_events("logs", logs_request(4)) == 4
    assert count_events("metrics", metrics) == points == 9
    assert count_events("traces", b"") == 0


def test_sdk_exporters_are_counted_exactly(sink):
    # Spans and log records are made by the SDK, collected in memory, then sent
    # by the official OTLP/gRPC exporters in one export call each.
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = tracer_provider.get_tracer("sink-test")
    for i in range(13):
        with tracer.start_as_current_span(f"parent-{i}"):
            with tracer.start_as_current_span("child"):
                pass
    finished_spans = spans.get_finished_spans()
    assert len(finished_spans) == 26

    records = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(records))
    logger = logger_provider.get_logger("sink-test")
    for i in range(17):
        logger.emit(body=f"line {i}", timestamp=T0 + i)
    finished_logs = records.get_finished_logs()
    assert len(finished_logs) == 17

    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], views=[
        View(instrument_name="exp.latency", aggregation=ExponentialBucketHistogramAggregation())])
    meter = meter_provider.get_meter("sink-test")
    counter = meter.create_counter("requests")
    for route in ("/a", "/b", "/c"):
        counter.add(1, {"route": route})
    for name in ("latency", "exp.latency"):
        histogram = meter.create_histogram(name)
        for host in ("h1", "h2"):
            histogram.record(12.5, {"host": host})
    meter.create_up_down_counter("queue").add(4)
    meter.create_observable_gauge("temperature", callbacks=[
        lambda options: [Observation(20.0 + i, {"zone": i}) for i in range(4)]])
    metrics_data = reader.get_metrics_data()
    data_points = sum(len(metric.data.data_points) for rm in metrics_data.resource_metrics
                      for sm in rm.scope_metrics for metric in sm.metrics)
    assert data_points == 3 + 2 + 2 + 1 + 4

    span_exporter = OTLPSpanExporter(endpoint=sink.endpoint, insecure=True)
    log_exporter = OTLPLogExporter(endpoint=sink.endpoint, insecure=True)
    metric_exporter = OTLPMetricExporter(endpoint=sink.endpoint, insecure=True)
    try:
        assert span_exporter.export(finished_spans) == SpanExportResult.SUCCESS
        assert log_exporter.export(finished_logs) == LogRecordExportResult.SUCCESS
        assert metric_exporter.export(metrics_data) == MetricExportResult.SUCCESS
    finally:
        span_exporter.shutdown()
        log_exporter.shutdown()
        metric_exporter.shutdown(timeout_millis=1000)
        tracer_provider.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown()

    stats = sink.stats()
    assert (stats.traces.events, stats.logs.events, stats.metrics.events) == (26, 17, data_points)
    assert (stats.traces.requests, stats.logs.requests, stats.metrics.requests) == (1, 1, 1)


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip], ids=["plain", "gzip"])
def test_raw_requests_are_counted_with_and_without_gzip(sink, compression):
    metrics, points = metrics_request()
    sent = {"traces": (traces_request(10), 10), "metrics": (metrics, points), "logs": (logs_request(6), 6)}
    for signal_name, (data, _) in sent.items():
        for _ in range(2):
            response = RESPONSES[signal_name].FromString(export(sink.endpoint, signal_name, data, compression))
            assert not response.HasField("partial_success")
    stats = sink.stats()
    for signal_name, (data, events) in sent.items():
        counts = getattr(stats, signal_name)
        assert (counts.requests, counts.events) == (2, 2 * events)
        # The sink sees the message grpcio inflated, whatever the wire carried.
        assert counts.bytes == 2 * len(data)
        assert counts.invalid_requests == counts.rejected_events == counts.refused_requests == 0
    assert stats.elapsed > 0
    json.dumps(stats.to_dict())


def test_concurrent_requests_are_all_counted(sink):
    data = traces_request(5)

    def send_many() -> None:
        with grpc.insecure_channel(sink.endpoint) as channel:
            call = channel.unary_unary(f"/{SERVICES['traces']}/Export")
            for _ in range(25):
                call(data, timeout=5)

    threads = [threading.Thread(target=send_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert (sink.stats().traces.requests, sink.stats().traces.events) == (200, 1000)


def test_messages_over_the_size_limit_are_refused_by_grpc():
    with Sink(max_message_bytes=1000) as small:
        assert export_code(small.endpoint, "traces", traces_request(50)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert export_code(small.endpoint, "traces", traces_request(2)) == grpc.StatusCode.OK


def test_unparseable_request_is_invalid_argument_even_without_validate(sink):
    assert export_code(sink.endpoint, "traces", b"\x0a\xff\x01") == grpc.StatusCode.INVALID_ARGUMENT
    assert sink.stats().traces.invalid_requests == 1


# ----------------------------------------------------------------------------
# Validation


@pytest.fixture
def validating() -> Iterator[Sink]:
    with Sink(validate=True) as running:
        yield running


@pytest.mark.parametrize("signal_name, data, expected", [
    ("traces", traces_request(3, trace_id=bytes(16)), "spans[0]: trace_id is all zeros"),
    ("traces", traces_request(3, span_id=b"\x01" * 4), "span_id is 4 bytes, expected 8"),
    ("traces", traces_request(3, parent_span_id=bytes(8)), "parent_span_id is all zeros"),
    ("traces", traces_request(3, end_time_unix_nano=T0 - 1), "start_time_unix_nano is after end_time_unix_nano"),
    ("traces", traces_request(3, start_time_unix_nano=0), "start_time_unix_nano or end_time_unix_nano is zero"),
    ("logs", logs_request(3, time_unix_nano=0), "time_unix_nano and observed_time_unix_nano are both zero"),
    ("logs", logs_request(3, trace_id=bytes(16)), "trace_id is all zeros"),
    ("metrics", metrics_request(time_unix_nano=0)[0], "('gauge').gauge.data_points[0]: time_unix_nano is zero"),
    ("logs", b"\x0a\xff\x01", "does not parse as ExportLogsServiceRequest"),
], ids=["zero-trace-id", "short-span-id", "zero-parent", "start-after-end", "no-start", "log-no-time",
        "log-zero-trace-id", "point-no-time", "garbage"])
def test_validate_rejects_the_first_problem(validating, signal_name, data, expected):
    with pytest.raises(grpc.RpcError) as raised:
        export(validating.endpoint, signal_name, data)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in raised.value.details()
    counts = getattr(validating.stats(), signal_name)
    assert (counts.invalid_requests, counts.requests, counts.events) == (1, 0, 0)


def test_validate_counts_valid_requests_and_invalid_events(validating):
    metrics, points = metrics_request()
    export(validating.endpoint, "traces", traces_request(4, parent_span_id=b"\x09" * 8))
    export(validating.endpoint, "logs", logs_request(3, time_unix_nano=0, observed_time_unix_nano=T0,
                                                      trace_id=b"\x02" * 16, span_id=b"\x03" * 8))
    export(validating.endpoint, "metrics", metrics)
    assert export_code(validating.endpoint, "traces", traces_request(5, trace_id=bytes(16))) \
        == grpc.StatusCode.INVALID_ARGUMENT
    stats = validating.stats()
    assert (stats.traces.requests, stats.traces.events) == (1, 4)
    assert (stats.traces.invalid_requests, stats.traces.invalid_events) == (1, 5)
    assert (stats.logs.events, stats.metrics.events) == (3, points)


# ----------------------------------------------------------------------------
# Faults


def test_unavailable_for_the_first_seconds_then_ok():
    with Sink(faults=SinkFaults(unavailable_first_s=0.5)) as faulty:
        data = traces_request(3)
        assert export_code(faulty.endpoint, "traces", data) == grpc.StatusCode.UNAVAILABLE
        deadline = time.monotonic() + 5
        while export_code(faulty.endpoint, "traces", data) != grpc.StatusCode.OK:
            assert time.monotonic() < deadline, "still UNAVAILABLE long after unavailable_first_s"
            time.sleep(0.1)
        counts = faulty.stats().traces
    assert counts.refused_requests >= 1
    assert (counts.requests, counts.events) == (1, 3)


def test_unavailable_every_nth_request():
    with Sink(faults=SinkFaults(unavailable_every=3)) as faulty:
        codes = [export_code(faulty.endpoint, "logs", logs_request(2)) for _ in range(6)]
        counts = faulty.stats().logs
    ok, unavailable = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE
    assert codes == [ok, ok, unavailable, ok, ok, unavailable]
    assert (counts.requests, counts.events, counts.refused_requests) == (4, 8, 2)


def test_error_code_answers_every_request():
    with Sink(faults=SinkFaults(error_code="UNAUTHENTICATED")) as faulty:
        with pytest.raises(grpc.RpcError) as raised:
            export(faulty.endpoint, "traces", traces_request(3))
        counts = faulty.stats().traces
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (counts.requests, counts.events, counts.refused_requests) == (0, 0, 1)


@pytest.mark.parametrize("signal_name, field", [
    ("traces", "rejected_spans"), ("logs", "rejected_log_records"), ("metrics", "rejected_data_points")])
def test_reject_fraction_reports_partial_success(signal_name, field):
    data = {"traces": traces_request(10), "logs": logs_request(10), "metrics": metrics_request()[0]}[signal_name]
    events = count_events(signal_name, data)
    with Sink(faults=SinkFaults(reject_fraction=0.5)) as faulty:
        response = RESPONSES[signal_name].FromString(export(faulty.endpoint, signal_name, data))
        counts = getattr(faulty.stats(), signal_name)
    assert getattr(response.partial_success, field) == events // 2
    assert response.partial_success.error_message
    assert (counts.events, counts.rejected_events) == (events - events // 2, events // 2)


def test_delay_ms_slows_every_request():
    with Sink(faults=SinkFaults(delay_ms=200)) as slow:
        started = time.monotonic()
        export(slow.endpoint, "traces", traces_request(1))
        assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize("faults", [dict(error_code="NOPE"), dict(error_code="OK"), dict(reject_fraction=1.5),
                                    dict(delay_ms=-1)])
def test_bad_faults_are_user_errors(faults):
    with pytest.raises(SinkError):
        SinkFaults(**faults)


def test_busy_port_is_a_sink_error(sink):
    with pytest.raises(SinkError, match=f"cannot listen on {sink.address}: address in use"):
        Sink(listen=sink.address).start()


# ----------------------------------------------------------------------------
# The CLI


def start_cli(*args: str) -> tuple[subprocess.Popen, str]:
    """Start `telegen sink --listen 127.0.0.1:0 ...` and return it with the address it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "telegen", "sink", "--listen", "127.0.0.1:0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=20)
    if not first or "Listening on" not in first[0]:
        proc.kill()
        pytest.fail(f"sink did not start: {first} {proc.communicate(timeout=10)}")
    return proc, first[0].split("Listening on ", 1)[1].split()[0]


def test_cli_counts_and_writes_stats_json(tmp_path: Path):
    stats_file = tmp_path / "stats.json"
    proc, address = start_cli("--duration", "2", "--interval", "0.5", "--stats-json", str(stats_file))
    try:
        export(address, "traces", traces_request(8))
        export(address, "logs", logs_request(5), grpc.Compression.Gzip)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "traces  events" in out and "Sink summary" in out
    stats = json.loads(stats_file.read_text())
    assert (stats["traces"]["events"], stats["logs"]["events"], stats["metrics"]["events"]) == (8, 5, 0)
    assert stats["traces"]["requests"] == 1 and stats["elapsed_s"] >= 2
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_stops_on_a_signal_with_the_summary(tmp_path: Path, stop_signal: signal.Signals):
    stats_file = tmp_path / "stats.json"
    proc, address = start_cli("--stats-json", str(stats_file))
    try:
        export(address, "traces", traces_request(3))
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Sink summary" in out
    assert json.loads(stats_file.read_text())["traces"]["events"] == 3


def test_cli_busy_port_is_one_line_exit_2(sink):
    result = subprocess.run([sys.executable, "-m", "telegen", "sink", "--listen", sink.address, "--duration", "1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"telegen: error: cannot listen on {sink.address}: address in use"]


def test_cli_records_what_it_accepts_and_says_how_to_import_it(tmp_path: Path):
    record = tmp_path / "capture"
    proc, address = start_cli("--record", str(record))
    try:
        export(address, "traces", traces_request(8))
        export(address, "logs", logs_request(5), grpc.Compression.Gzip)
        export(address, "logs", logs_request(2))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"Recorded {record / 'recorded-traces.pb'}, {record / 'recorded-logs.pb'}; make templates of it: " \
           f"telegen import {record} --output-dir DIR" in out
    from telegen.templates import read_records
    assert [len(r) for r in read_records(record / "recorded-traces.pb")] == [len(traces_request(8))]
    assert read_records(record / "recorded-logs.pb") == [logs_request(5), logs_request(2)], "inflated, as sent"
    assert not (record / "recorded-metrics.pb").exists() and not list(record.glob("*.part"))


def test_cli_record_into_an_unwritable_place_exits_2(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = subprocess.run([sys.executable, "-m", "telegen", "sink", "--listen", "127.0.0.1:0", "--record",
                             str(blocker / "sub")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--record: cannot create" in result.stderr and "Traceback" not in result.stderr


def test_cli_prints_when_requests_arrive_and_stays_quiet_when_idle(tmp_path: Path):
    # Idle for 2.5 s at 0.25 s intervals: no line (an idle line comes at most once a minute).
    proc, address = start_cli("--duration", "2.5", "--interval", "0.25")
    try:
        export(address, "traces", traces_request(4))
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    progress = [line for line in out.splitlines() if line.startswith("[")]
    # One set of lines, for the interval the request arrived in: a line per signal, decoded bytes named so.
    assert len(progress) == 3 and all("MB/s decoded" in line for line in progress), out
    assert "traces  events             4" in progress[0]
    assert "MB decoded" in out.split("Sink summary")[1]


def test_an_idle_sink_says_so_at_most_once_a_minute(monkeypatch, capsys):
    from telegen import cli
    from telegen.sink import Sink

    monkeypatch.setattr(cli, "IDLE_LINE_SECONDS", 0.5)  # a minute, scaled down to keep the test short
    with Sink() as sink:
        stop = threading.Event()
        threading.Timer(1.4, stop.set).start()
        cli._serve(sink, interval=0.1, duration=0, stop=stop)
    lines = capsys.readouterr().out.splitlines()
    assert 2 <= len(lines) <= 3 and all(" idle for " in line for line in lines), lines
    assert lines[0].endswith("events so far: traces 0, metrics 0, logs 0")
