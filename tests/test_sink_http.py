"""telegen.Sink over OTLP/HTTP: real aiohttp server on loopback, the official
OTLP/HTTP exporters and raw urllib3 POSTs, and the same requests over gRPC."""
from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import urllib3
import zstandard
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_sink import RESPONSES, T0, export, logs_request, metrics_request, traces_request

from telegen import Sink
from telegen.sink import SinkError, SinkFaults, SinkProcess, free_port

PROTOBUF = "application/x-protobuf"
PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}


def post(url: str, body: bytes = b"", content_type: str | None = PROTOBUF, method: str = "POST",
         gzipped: bool = False, encoding: str | None = None) -> urllib3.BaseHTTPResponse:
    """One request on a fresh connection, no retries: errors surface as they
    are. `encoding`: a Content-Encoding for a body given as it is."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    with urllib3.PoolManager() as http:
        return http.request(method, url, body=body, headers=headers, retries=False,
                            timeout=urllib3.Timeout(connect=5, read=10))


def post_signal(sink: Sink, signal_name: str, data: bytes, **kwargs) -> urllib3.BaseHTTPResponse:
    return post(sink.http_endpoint + PATHS[signal_name], data, **kwargs)


def status_of(response: urllib3.BaseHTTPResponse) -> status_pb2.Status:
    assert response.headers["Content-Type"] == PROTOBUF
    return status_pb2.Status.FromString(response.data)


def retry_info(status: status_pb2.Status) -> error_details_pb2.RetryInfo | None:
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info
    return None


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink(listen_http="127.0.0.1:0") as running:
        yield running


# ----------------------------------------------------------------------------
# Addresses and lifecycle


def test_http_endpoint_is_a_second_loopback_port(sink):
    host, port = sink.http_address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert sink.http_address != sink.address
    assert sink.http_endpoint == f"http://{sink.http_address}"


def test_a_sink_without_listen_http_has_no_http_endpoint():
    with Sink() as grpc_only:
        with pytest.raises(RuntimeError, match="listen_http"):
            grpc_only.http_endpoint  # noqa: B018


def test_stop_closes_both_ports():
    with Sink(listen_http="127.0.0.1:0") as running:
        ports = [int(running.address.rsplit(":", 1)[1]), int(running.http_address.rsplit(":", 1)[1])]
        assert post_signal(running, "traces", traces_request(1)).status == 200
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_busy_http_port_is_a_sink_error_and_frees_the_grpc_port(sink):
    grpc_port = free_port()
    with pytest.raises(SinkError, match=f"cannot listen on {sink.http_address}: address in use"):
        Sink(listen=f"127.0.0.1:{grpc_port}", listen_http=sink.http_address).start()
    with Sink(listen=f"127.0.0.1:{grpc_port}"):  # the failed start left nothing bound
        pass


def test_bad_listen_http_is_a_sink_error():
    with pytest.raises(SinkError, match="expected HOST:PORT"):
        Sink(listen_http="localhost")


# ----------------------------------------------------------------------------
# The official OTLP/HTTP exporters


def sdk_spans(n_traces: int) -> list:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("sink-http-test")
    for i in range(n_traces):
        with tracer.start_as_current_span(f"parent-{i}"):
            for _ in range(4):
                with tracer.start_as_current_span("child"):
                    pass
    provider.shutdown()
    return list(spans.get_finished_spans())


def sdk_logs(n: int) -> list:
    records = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(records))
    logger = provider.get_logger("sink-http-test")
    for i in range(n):
        logger.emit(body=f"line {i}", timestamp=T0 + i)
    provider.shutdown()
    return list(records.get_finished_logs())


def sdk_metrics():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("sink-http-test")
    counter = meter.create_counter("requests")
    for route in ("/a", "/b", "/c", "/d"):
        counter.add(1, {"route": route})
    histogram = meter.create_histogram("latency")
    for host in ("h1", "h2"):
        histogram.record(12.5, {"host": host})
    meter.create_up_down_counter("queue").add(4)
    data = reader.get_metrics_data()
    provider.shutdown()
    points = sum(len(metric.data.data_points) for rm in data.resource_metrics
                 for sm in rm.scope_metrics for metric in sm.metrics)
    assert points == 4 + 2 + 1
    return data, points


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip], ids=["plain", "gzip"])
def test_sdk_http_exporters_are_counted_exactly(sink, compression):
    spans, records = sdk_spans(5), sdk_logs(17)
    metrics_data, points = sdk_metrics()
    assert len(spans) == 25
    base = sink.http_endpoint
    span_exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", compression=compression, timeout=10)
    log_exporter = OTLPLogExporter(endpoint=f"{base}/v1/logs", compression=compression, timeout=10)
    metric_exporter = OTLPMetricExporter(endpoint=f"{base}/v1/metrics", compression=compression, timeout=10)
    try:
        assert span_exporter.export(spans) == SpanExportResult.SUCCESS
        assert span_exporter.export(spans[:3]) == SpanExportResult.SUCCESS
        assert log_exporter.export(records) == LogRecordExportResult.SUCCESS
        assert metric_exporter.export(metrics_data) == MetricExportResult.SUCCESS
    finally:
        span_exporter.shutdown()
        log_exporter.shutdown()
        metric_exporter.shutdown()
    stats = sink.stats()
    assert (stats.traces.events, stats.logs.events, stats.metrics.events) == (28, 17, points)
    assert (stats.traces.requests, stats.logs.requests, stats.metrics.requests) == (2, 1, 1)
    for counts in stats.signals().values():
        assert counts.invalid_requests == counts.refused_requests == counts.rejected_events == 0


def test_sdk_http_exporter_sees_a_refusal_as_failure():
    with Sink(listen_http="127.0.0.1:0", faults=SinkFaults(error_code="INVALID_ARGUMENT")) as faulty:
        exporter = OTLPSpanExporter(endpoint=f"{faulty.http_endpoint}/v1/traces", timeout=5)
        try:
            assert exporter.export(sdk_spans(1)) == SpanExportResult.FAILURE  # 400: not retryable
        finally:
            exporter.shutdown()
        assert faulty.stats().traces.refused_requests == 1


# ----------------------------------------------------------------------------
# Raw requests


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_raw_posts_are_answered_and_counted(sink, gzipped):
    metrics, points = metrics_request()
    sent = {"traces": (traces_request(10), 10), "metrics": (metrics, points), "logs": (logs_request(6), 6)}
    for signal_name, (data, _) in sent.items():
        for _ in range(2):
            response = post_signal(sink, signal_name, data, gzipped=gzipped)
            assert response.status == 200
            assert response.headers["Content-Type"] == PROTOBUF
            decoded = RESPONSES[signal_name].FromString(response.data)
            assert not decoded.HasField("partial_success")
    stats = sink.stats()
    for signal_name, (data, events) in sent.items():
        counts = getattr(stats, signal_name)
        assert (counts.requests, counts.events) == (2, 2 * events)
        assert counts.bytes == 2 * len(data)  # the uncompressed size, gzip or not
        assert counts.invalid_requests == counts.rejected_events == counts.refused_requests == 0
    json.dumps(stats.to_dict())


def test_content_type_parameters_are_accepted(sink):
    assert post_signal(sink, "logs", logs_request(2), content_type=f"{PROTOBUF}; charset=binary").status == 200
    assert sink.stats().logs.events == 2


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_other_content_types_are_415(sink, content_type):
    response = post_signal(sink, "traces", traces_request(2), content_type=content_type)
    assert response.status == 415
    assert PROTOBUF in status_of(response).message
    assert sink.stats().traces.requests == sink.stats().traces.invalid_requests == 0


def test_unknown_path_is_404(sink):
    response = post(f"{sink.http_endpoint}/v1/spans", traces_request(1))
    assert response.status == 404
    assert "/v1/traces" in status_of(response).message


def test_get_is_405(sink):
    response = post(f"{sink.http_endpoint}/v1/traces", method="GET", content_type=None)
    assert response.status == 405
    assert response.headers["Allow"] == "POST"


def test_body_over_the_limit_is_413_compressed_or_not():
    with Sink(listen_http="127.0.0.1:0", max_message_bytes=1000) as small:
        big = traces_request(50)
        assert len(big) > 1000 and len(gzip.compress(big)) < 1000
        assert post_signal(small, "traces", big).status == 413
        assert post_signal(small, "traces", big, gzipped=True).status == 413  # the inflated size counts
        assert post_signal(small, "traces", traces_request(2)).status == 200
        assert small.stats().traces.requests == 1


def test_gzip_bodies_good_and_bad(sink):
    """Several gzip members are one body (as gzip readers take them); a body
    that is not gzip, or ends early, is a 400 that says so; an encoding
    other than gzip or zstd is a 415."""
    one, two = traces_request(2), traces_request(3)
    assert post_signal(sink, "traces", gzip.compress(one) + gzip.compress(two), encoding="gzip").status == 200
    assert sink.stats().traces.events == 5
    for body in (b"not gzip at all", gzip.compress(one)[:-12]):
        response = post_signal(sink, "traces", body, encoding="gzip")
        assert response.status == 400
        assert "not valid gzip" in status_of(response).message
    response = post_signal(sink, "traces", one, encoding="br")
    assert response.status == 415 and "'br' is not supported" in status_of(response).message
    assert post_signal(sink, "traces", one, encoding="identity").status == 200


def test_zstd_bodies_good_and_bad(sink):
    """zstd as the Collector takes it: one frame or several, with or without
    the content size declared; a body that is not zstd, or ends early, is a
    400 that says so; a frame declaring more than the limit is refused at
    its header, and one that hides its size is stopped at the limit."""
    one, two = traces_request(2), traces_request(3)
    compressor = zstandard.ZstdCompressor(level=1)
    sizeless = zstandard.ZstdCompressor(level=1, write_content_size=False)
    before = sink.stats().traces.events
    body = compressor.compress(one) + sizeless.compress(two)
    assert post_signal(sink, "traces", body, encoding="zstd").status == 200
    assert sink.stats().traces.events == before + 5
    for bad in (b"not zstd at all", compressor.compress(one)[:-3], compressor.compress(one) + b"\x00\x01"):
        response = post_signal(sink, "traces", bad, encoding="zstd")
        assert response.status == 400
        assert "not valid zstd" in status_of(response).message
    with Sink(listen_http="127.0.0.1:0", max_message_bytes=10_000) as small:
        big = traces_request(200)
        assert len(big) > 10_000
        for packed in (compressor.compress(big), sizeless.compress(big)):
            assert len(packed) < 10_000
            assert post_signal(small, "traces", packed, encoding="zstd").status == 413
        bomb = sizeless.compress(bytes(50_000_000))  # 50 MB of zeros in a few KB, its size unsaid
        assert post_signal(small, "traces", bomb, encoding="zstd").status == 413
        assert small.stats().traces.requests == 0


def test_unparseable_body_is_400_even_without_validate(sink):
    response = post_signal(sink, "traces", b"\x0a\xff\x01")
    assert response.status == 400
    status = status_of(response)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "not a valid traces export" in status.message
    assert sink.stats().traces.invalid_requests == 1


def test_validate_answers_400_with_the_problem():
    with Sink(listen_http="127.0.0.1:0", validate=True) as validating:
        response = post_signal(validating, "traces", traces_request(3, trace_id=bytes(16)))
        assert post_signal(validating, "traces", traces_request(4)).status == 200
        counts = validating.stats().traces
    assert response.status == 400
    status = status_of(response)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "spans[0]: trace_id is all zeros" in status.message
    assert (counts.invalid_requests, counts.invalid_events, counts.requests, counts.events) == (1, 3, 1, 4)


def test_concurrent_posts_are_all_counted(sink):
    data = traces_request(5)
    url = sink.http_endpoint + "/v1/traces"
    statuses: list[int] = []

    def send_many() -> None:
        with urllib3.PoolManager() as http:  # keep-alive: 25 requests on one connection
            for _ in range(25):
                statuses.append(http.request("POST", url, body=data, headers={"Content-Type": PROTOBUF},
                                             retries=False, timeout=10).status)

    threads = [threading.Thread(target=send_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200] * 200
    assert (sink.stats().traces.requests, sink.stats().traces.events) == (200, 1000)


# ----------------------------------------------------------------------------
# Faults


def test_unavailable_first_s_is_503_with_retry_after():
    faults = SinkFaults(unavailable_first_s=30, retry_after_s=1.5)
    with Sink(listen_http="127.0.0.1:0", faults=faults) as faulty:
        response = post_signal(faulty, "traces", traces_request(3))
        counts = faulty.stats().traces
    assert response.status == 503
    assert response.headers["Retry-After"] == "2"  # whole seconds, rounded up
    status = status_of(response)
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "unavailable for the first 30 s" in status.message
    info = retry_info(status)
    assert info is not None and info.retry_delay.ToNanoseconds() == 1_500_000_000
    assert (counts.refused_requests, counts.requests, counts.events) == (1, 0, 0)


def test_unavailable_first_s_without_retry_after_has_no_header():
    with Sink(listen_http="127.0.0.1:0", faults=SinkFaults(unavailable_first_s=0.5)) as faulty:
        response = post_signal(faulty, "logs", logs_request(2))
        assert response.status == 503 and "Retry-After" not in response.headers
        assert retry_info(status_of(response)) is None
        deadline = time.monotonic() + 5
        while post_signal(faulty, "logs", logs_request(2)).status != 200:
            assert time.monotonic() < deadline, "still 503 long after unavailable_first_s"
            time.sleep(0.1)
        assert (faulty.stats().logs.requests, faulty.stats().logs.events) == (1, 2)


@pytest.mark.parametrize("code, http_status, retry_after", [
    ("RESOURCE_EXHAUSTED", 429, "3"), ("UNAVAILABLE", 503, "3"), ("DEADLINE_EXCEEDED", 504, None),
    ("INVALID_ARGUMENT", 400, None), ("UNIMPLEMENTED", 501, None), ("UNAUTHENTICATED", 401, None),
    ("INTERNAL", 500, None), ("UNKNOWN", 500, None)])
def test_error_code_maps_to_http_status(code, http_status, retry_after):
    with Sink(listen_http="127.0.0.1:0", faults=SinkFaults(error_code=code, retry_after_s=3)) as faulty:
        response = post_signal(faulty, "metrics", metrics_request()[0])
        assert faulty.stats().metrics.refused_requests == 1
    assert response.status == http_status
    assert response.headers.get("Retry-After") == retry_after
    status = status_of(response)
    assert status.code == grpc.StatusCode[code].value[0] and code in status.message


def test_reject_fraction_is_200_with_partial_success():
    data = traces_request(10)
    with Sink(listen_http="127.0.0.1:0", faults=SinkFaults(reject_fraction=0.3)) as faulty:
        response = post_signal(faulty, "traces", data)
        counts = faulty.stats().traces
    assert response.status == 200
    decoded = RESPONSES["traces"].FromString(response.data)
    assert decoded.partial_success.rejected_spans == 3 and decoded.partial_success.error_message
    assert (counts.requests, counts.events, counts.rejected_events) == (1, 7, 3)


def test_drop_every_closes_the_connection_without_a_response():
    with Sink(listen_http="127.0.0.1:0", faults=SinkFaults(drop_every=2)) as faulty:
        data = logs_request(3)
        assert post_signal(faulty, "logs", data).status == 200
        with pytest.raises(urllib3.exceptions.ProtocolError):
            post_signal(faulty, "logs", data)
        assert post_signal(faulty, "logs", data).status == 200
        counts = faulty.stats().logs
    assert (counts.requests, counts.events, counts.refused_requests) == (2, 6, 1)


def test_delay_ms_does_not_serialize_http_requests():
    # Four requests held 2 s each: side by side they take 2 s, one after another 8 s. The bound
    # between is generous, for a busy machine.
    with Sink(listen_http="127.0.0.1:0", faults=SinkFaults(delay_ms=2000)) as slow:
        started = time.monotonic()
        threads = [threading.Thread(target=post_signal, args=(slow, "traces", traces_request(1))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        elapsed = time.monotonic() - started
        assert slow.stats().traces.requests == 4
    assert 2.0 <= elapsed < 6.0


@pytest.mark.parametrize("faults", [dict(retry_after_s=-1), dict(drop_every=-2)])
def test_bad_new_faults_are_user_errors(faults):
    with pytest.raises(SinkError):
        SinkFaults(**faults)


# ----------------------------------------------------------------------------
# gRPC: RetryInfo, drops


def grpc_error(endpoint: str, signal_name: str, data: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        export(endpoint, signal_name, data)
    return raised.value


def details_status(error: grpc.RpcError) -> status_pb2.Status | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return None


def test_grpc_retry_after_is_retry_info_in_the_trailer():
    with Sink(faults=SinkFaults(unavailable_first_s=30, retry_after_s=0.25)) as faulty:
        error = grpc_error(faulty.endpoint, "traces", traces_request(2))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    status = details_status(error)
    assert status is not None
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0] and status.message == error.details()
    info = retry_info(status)
    assert info is not None and info.retry_delay.ToNanoseconds() == 250_000_000


def test_grpc_refusals_without_retry_after_carry_no_details():
    with Sink(faults=SinkFaults(error_code="RESOURCE_EXHAUSTED")) as faulty:
        error = grpc_error(faulty.endpoint, "traces", traces_request(2))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details_status(error) is None


def test_grpc_retry_after_only_for_retry_later_codes():
    with Sink(faults=SinkFaults(error_code="PERMISSION_DENIED", retry_after_s=2)) as faulty:
        error = grpc_error(faulty.endpoint, "logs", logs_request(1))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert details_status(error) is None


def test_grpc_drop_every_is_unavailable():
    with Sink(faults=SinkFaults(drop_every=2)) as faulty:
        export(faulty.endpoint, "traces", traces_request(2))
        error = grpc_error(faulty.endpoint, "traces", traces_request(2))
        counts = faulty.stats().traces
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "dropped" in error.details()
    assert (counts.requests, counts.events, counts.refused_requests) == (1, 2, 1)


# ----------------------------------------------------------------------------
# The same requests over either carrier count the same


def scripted_requests() -> list[tuple[str, bytes, bool]]:
    """(signal, request, gzip) in a fixed order: valid ones of every signal,
    compressed or not, and invalid ones."""
    metrics, _ = metrics_request()
    script = []
    for i in range(12):
        script.append(("traces", traces_request(5 + i), i % 3 == 0))
        script.append(("logs", logs_request(1 + i), i % 2 == 0))
        script.append(("metrics", metrics, i % 4 == 1))
    script.insert(5, ("traces", traces_request(3, trace_id=bytes(16)), False))
    script.insert(17, ("logs", b"\x0a\xff\x01", True))
    script.insert(30, ("metrics", metrics_request(time_unix_nano=0)[0], False))  # sequence numbers: no fault
    return script


def send_over_grpc(sink: Sink, script: list[tuple[str, bytes, bool]]) -> None:
    for signal_name, data, gzipped in script:
        try:
            export(sink.endpoint, signal_name, data, grpc.Compression.Gzip if gzipped else None)
        except grpc.RpcError:
            pass


def send_over_http(sink: Sink, script: list[tuple[str, bytes, bool]]) -> None:
    for signal_name, data, gzipped in script:
        try:
            post_signal(sink, signal_name, data, gzipped=gzipped)
        except urllib3.exceptions.ProtocolError:
            pass  # a dropped request


@pytest.mark.parametrize("validate", [False, True], ids=["count", "validate"])
def test_grpc_and_http_count_the_same(validate):
    faults = SinkFaults(reject_fraction=0.3, unavailable_every=5, drop_every=7, retry_after_s=1)
    script = scripted_requests()
    results = []
    for send in (send_over_grpc, send_over_http):
        with Sink(listen_http="127.0.0.1:0", validate=validate, faults=faults) as sink:
            send(sink, script)
            results.append(sink.stats())
    over_grpc, over_http = results
    assert over_grpc.signals() == over_http.signals()
    totals = {name: counts for name, counts in over_http.signals().items()}
    assert sum(c.refused_requests for c in totals.values()) == len(script) // 5 + len(script) // 7 - len(script) // 35
    assert sum(c.invalid_requests for c in totals.values()) == (3 if validate else 1)
    assert all(c.rejected_events and c.events and c.bytes for c in totals.values())


def test_one_sink_counts_both_carriers_together(sink):
    export(sink.endpoint, "traces", traces_request(4))
    assert post_signal(sink, "traces", traces_request(6)).status == 200
    counts = sink.stats().traces
    assert (counts.requests, counts.events) == (2, 10)


# ----------------------------------------------------------------------------
# The CLI


def test_sink_process_serves_http_and_grpc(tmp_path: Path):
    stats_file = tmp_path / "stats.json"
    with SinkProcess(stats_json=stats_file, http=True) as process:
        assert process.http_endpoint is not None and process.http_endpoint.startswith("http://127.0.0.1:")
        response = post(f"{process.http_endpoint}/v1/traces", traces_request(7), gzipped=True)
        assert response.status == 200
        export(process.endpoint, "logs", logs_request(3))
    assert process.process is not None and process.process.returncode == 0
    stats = json.loads(stats_file.read_text())
    assert (stats["traces"]["events"], stats["logs"]["events"], stats["metrics"]["events"]) == (7, 3, 0)


def test_sink_process_without_http_has_no_http_endpoint():
    assert SinkProcess().http_endpoint is None


def test_cli_says_both_addresses_and_takes_fault_flags():
    proc = subprocess.Popen([sys.executable, "-m", "telegen", "sink", "--listen", "127.0.0.1:0",
                             "--listen-http", "127.0.0.1:0", "--duration", "30", "--error-code", "RESOURCE_EXHAUSTED",
                             "--retry-after-s", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=20)
        assert first and "for OTLP/gRPC and on http://127.0.0.1:" in first[0], first
        endpoint = first[0].split(" and on ", 1)[1].split()[0]
        response = post(f"{endpoint}/v1/logs", logs_request(2))
        assert (response.status, response.headers.get("Retry-After")) == (429, "4")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "refused 1" in out
