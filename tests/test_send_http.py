"""The sender over OTLP/HTTP, end to end on loopback against an independent
receiver (the standard library's HTTP server, official classes): what it
receives, exact accounting, and every fault the OTLP/HTTP specification
names (retryable statuses with and without Retry-After, errors with a
google.rpc.Status body, partial success, dropped connections, redirects,
TLS and mTLS)."""
from __future__ import annotations

import gzip
import ssl
import subprocess
import threading
import time
from collections import defaultdict
from email.utils import formatdate

import pytest
import zstandard
from conftest import loaded_batches
from google.rpc import status_pb2
from http_receiver import DROP, Answer, HttpRecorder, serve_http

import telegen
from telegen.send.engine import SendSettings, run
from telegen.send.transport import HTTP_PROTOBUF, RetryPolicy, Target
from telegen.send.transport.http import retry_after, status_message
from telegen.sink import free_port

SIGNALS = ("traces", "metrics", "logs")
FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.05, max_backoff=0.2)


def targets(base: str, **fields) -> dict[str, Target]:
    fields.setdefault("timeout", 5)
    return {s: Target(endpoint=f"{base}/v1/{s}", protocol=HTTP_PROTOBUF, **fields) for s in SIGNALS}


def settings_for(base: str, target_fields: dict | None = None, **overrides) -> SendSettings:
    values = dict(targets=targets(base, **(target_fields or {})), concurrency=4, stats_interval=60,
                  retry=FAST_RETRY, drain_timeout=5)
    values.update(overrides)
    return SendSettings(**values)


def accounted(report) -> None:
    for name, s in report.signals.items():
        assert s.delivered + s.rejected + s.failed == s.sent, name


class Lines(list):
    def __call__(self, line: str) -> None:
        self.append(line)


@pytest.mark.parametrize("compression, encoder", [("none", "patchable"), ("gzip", "patchable"), ("gzip", "zlib"),
                                                  ("zstd", "patchable"), ("zstd", "library")])
def test_what_the_backend_receives(templates, compression, encoder):
    """With gzip or zstd, the patchable bodies (compressed once, patched per
    send) decode to the same fresh, unique, current data as the uncompressed
    ones (the recorder decodes them with zlib and with zstandard)."""
    recorder = HttpRecorder()
    server, port = serve_http(recorder)
    try:
        before = time.time_ns()
        report = run(loaded_batches(templates),
                     settings_for(f"http://127.0.0.1:{port}", {"compression": compression,
                                                               "headers": (("x-api-key", "s3cret"),)},
                                  passes=2, processes=2, jitter_ns=10**9, gzip_encoder=encoder,
                                  zstd_encoder=encoder), Lines())
        after = time.time_ns()
    finally:
        server.shutdown()
    accounted(report)
    for signal in SIGNALS:
        r = report.signals[signal]
        assert r.failed == r.rejected == 0
        assert r.delivered == r.sent == recorder.events(signal), signal
    assert report.signals["traces"].sent == 2 * templates.counts["spans"]
    assert report.signals["logs"].sent == 2 * templates.counts["logs"]
    for seen in recorder.seen:
        assert seen.path == f"/v1/{seen.signal}"
        assert seen.headers["content-type"] == "application/x-protobuf"
        assert seen.headers["x-api-key"] == "s3cret"
        assert seen.headers.get("content-encoding") == (None if compression == "none" else compression)
        if compression == "gzip":
            gzip.decompress(seen.body)  # a whole gzip member
        if compression == "zstd":
            assert zstandard.get_frame_parameters(seen.body).content_size > 0  # one frame, its size declared
    # Connections are kept alive and reused: far fewer than requests.
    connections = {seen.client for seen in recorder.seen}
    assert len(connections) <= 2 * 3 * 4 < len(recorder.seen)
    spans = recorder.spans()
    by_trace = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    assert len(by_trace) == 2 * templates.counts["traces"], "every trace id is new and unique per pass"
    assert len({s.span_id for s in spans}) == len(spans)
    for trace in by_trace.values():
        ids = {s.span_id for s in trace}
        assert all(not s.parent_span_id or s.parent_span_id in ids for s in trace), "trees intact"
        assert before - 10**9 - 10**11 <= min(s.start_time_unix_nano for s in trace)
        assert max(s.end_time_unix_nano for s in trace) <= after


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_patchable_bodies_pass_the_sinks_validation(templates, compression):
    """telegen's own sink (every body decoded, every request parsed with the
    official classes and checked) takes every patched body."""
    lines = Lines()
    with telegen.Sink(listen_http="127.0.0.1:0", validate=True) as sink:
        report = run(loaded_batches(templates), settings_for(sink.http_endpoint, {"compression": compression},
                                                             passes=3), lines)
        deadline = time.monotonic() + 10
        while sink.stats().traces.events < report.signals["traces"].delivered and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = sink.stats().signals()
    assert any(line.startswith("Compressed ") and f"for {compression}" in line for line in lines)
    for signal in SIGNALS:
        r = report.signals[signal]
        assert r.failed == r.rejected == 0 and r.delivered == r.sent > 0, signal
        assert stats[signal].events == r.delivered and stats[signal].invalid_requests == 0, signal


def test_receiver_down_at_start_then_up(templates):
    port = free_port()
    recorder = HttpRecorder()
    box = {}

    def start_late() -> None:
        time.sleep(0.4)
        box["server"], _ = serve_http(recorder, port=port)

    thread = threading.Thread(target=start_late)
    thread.start()
    report = run(loaded_batches(templates, ("logs",)),
                 settings_for(f"http://127.0.0.1:{port}", passes=1,
                              retry=RetryPolicy(max_attempts=10, initial_backoff=0.1, max_backoff=0.3)), Lines())
    thread.join()
    box["server"].shutdown()
    accounted(report)
    logs = report.signals["logs"]
    assert logs.delivered == logs.sent == recorder.events("logs") and logs.retries > 0


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_honour_retry_after(templates, status):
    # The first two requests are refused with Retry-After: 1; the run waits
    # that long (not the 0.05 s backoff) and then delivers everything.
    recorder = HttpRecorder(lambda n, signal: Answer(status, {"Retry-After": "1"}) if n <= 2 else Answer())
    server, port = serve_http(recorder)
    try:
        started = time.monotonic()
        report = run(loaded_batches(templates, ("traces",)), settings_for(f"http://127.0.0.1:{port}", passes=1,
                                                                          concurrency=1), Lines())
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
    traces = report.signals["traces"]
    assert traces.delivered == traces.sent == recorder.events("traces")
    assert traces.retries == 2 and elapsed >= 2.0


def test_retry_after_as_an_http_date_and_backoff_without_it(templates):
    assert retry_after("7") == 7.0
    assert retry_after(formatdate(1_000_030, usegmt=True), now=1_000_000) == pytest.approx(30.0)
    assert retry_after(formatdate(999_000, usegmt=True), now=1_000_000) == 0.0  # in the past: now
    assert retry_after("soon") is None and retry_after(None) is None
    recorder = HttpRecorder(lambda n, signal: Answer(503) if n <= 3 else Answer())
    server, port = serve_http(recorder)
    try:
        report = run(loaded_batches(templates, ("logs",)), settings_for(f"http://127.0.0.1:{port}", passes=1,
                                                                        concurrency=1), Lines())
    finally:
        server.shutdown()
    logs = report.signals["logs"]
    assert logs.delivered == logs.sent and logs.retries == 3


def test_a_400_with_a_status_body_is_rejected_at_once_and_says_why(templates):
    """A 400 refuses the data itself: its events are rejected (not failed,
    not retried), with the google.rpc.Status message as the reason."""
    body = status_pb2.Status(code=3, message="resource_spans[0]: trace_id is all zero").SerializeToString()
    recorder = HttpRecorder(lambda n, signal: Answer(400, {"Content-Type": "application/x-protobuf"}, body))
    server, port = serve_http(recorder)
    lines = Lines()
    try:
        report = run(loaded_batches(templates, ("traces",)), settings_for(f"http://127.0.0.1:{port}", passes=1),
                     lines)
    finally:
        server.shutdown()
    traces = report.signals["traces"]
    assert traces.rejected == traces.sent and traces.failed == 0 and traces.retries == 0
    assert len(recorder.seen) == traces.requests, "a 400 is not retried"
    assert traces.reasons == {"rejected": {"HTTP 400: resource_spans[0]: trace_id is all zero": traces.sent}}
    said = [line for line in lines if "trace_id is all zero" in line]
    assert len(said) == 1 and said[0].startswith("error: traces: the endpoint rejected "), lines
    assert said[0].endswith(" events: HTTP 400: resource_spans[0]: trace_id is all zero")
    assert status_message(b"<html>Bad\n request</html>", "text/html") == "<html>Bad request</html>"


# What Prometheus' OTLP receiver answers for points older than the newest of
# their series: a text/plain 400 naming the error, then every series refused.
OUT_OF_ORDER = ("out of order sample\n" + "".join(
    f'series {{__name__="http_server_request_duration_seconds_bucket", le="{i}", instance="pod-{i}:8080"}} '
    f"timestamp {1_700_000_000_000 + i}\n" for i in range(60))).encode()


def test_a_long_error_body_is_said_once_shortened_to_one_line(templates):
    """Every metrics request answered with Prometheus' "out of order sample"
    and kilobytes of series: the reason is said once, in one line of at most
    ~200 characters, and every event is counted as rejected under it."""
    recorder = HttpRecorder(lambda n, signal: Answer(400, {"Content-Type": "text/plain; charset=utf-8"},
                                                     OUT_OF_ORDER))
    server, port = serve_http(recorder)
    lines = Lines()
    try:
        report = run(loaded_batches(templates, ("metrics",)),
                     settings_for(f"http://127.0.0.1:{port}", passes=3, concurrency=2), lines)
    finally:
        server.shutdown()
    metrics = report.signals["metrics"]
    accounted(report)
    assert metrics.requests >= 6 and metrics.rejected == metrics.sent and metrics.failed == 0
    said = [line for line in lines if "out of order sample" in line]
    assert len(said) == 1, lines
    assert "\n" not in said[0] and len(said[0]) < 300 and said[0].endswith("...")
    (reason, events), = metrics.reasons["rejected"].items()
    assert reason.startswith('HTTP 400: out of order sample series {__name__="http_server_request_duration')
    assert len(reason) <= 200 and events == metrics.sent


def test_rejections_from_several_processes_are_said_once_and_summed(templates):
    """Two worker processes meet the same refusal: one line for the run, and
    the report's reasons sum both processes' events."""
    recorder = HttpRecorder(lambda n, signal: Answer(422, body=b"sample too old") if n % 2 else Answer())
    server, port = serve_http(recorder)
    lines = Lines()
    try:
        report = run(loaded_batches(templates, ("logs",)),
                     settings_for(f"http://127.0.0.1:{port}", passes=4, processes=2), lines)
    finally:
        server.shutdown()
    logs = report.signals["logs"]
    accounted(report)
    assert 0 < logs.rejected < logs.sent and logs.delivered == recorder.events("logs")
    assert logs.reasons == {"rejected": {"HTTP 422: sample too old": logs.rejected}}
    assert len([line for line in lines if "sample too old" in line]) == 1, lines


def test_a_reason_per_request_is_said_and_kept_five_times_then_summed(templates):
    """A backend whose every refusal names something new (here the request's
    number): five reasons are said and kept, then one line says the rest
    are counted, and the report sums them under "other reasons"."""
    recorder = HttpRecorder(lambda n, signal: Answer(400, body=f"sample {n} is too old".encode()))
    server, port = serve_http(recorder)
    lines = Lines()
    try:
        report = run(loaded_batches(templates, ("logs",)),
                     settings_for(f"http://127.0.0.1:{port}", passes=4, concurrency=1), lines)
    finally:
        server.shutdown()
    logs = report.signals["logs"]
    assert logs.requests == len(recorder.seen) > 6 and logs.rejected == logs.sent
    assert [line.split(": ", 2)[2] for line in lines] == [
        *(f"the endpoint rejected {logs.sent // logs.requests} events: HTTP 400: sample {n} is too old"
          for n in range(1, 6)),
        "more than 5 distinct reasons (rejected); the rest are counted, not shown"]
    assert list(logs.reasons["rejected"]) == [f"HTTP 400: sample {n} is too old" for n in range(1, 6)] + [
        "other reasons"]
    assert sum(logs.reasons["rejected"].values()) == logs.rejected


@pytest.mark.parametrize("answer", [Answer(503), Answer(429, {"Retry-After": "30"})], ids=["backoff", "retry-after"])
def test_a_run_where_every_request_fails_ends_at_its_duration(templates, answer):
    """Every request answered 503 (or 429 asking for 30 s): a 2 s run with
    the default back-off (1 s, then 2, 4, 8) ends at 2 s, not after its
    retries: a back-off that would pass the end is not waited, and at the
    end nothing waits to be retried. Every event is counted as failed."""
    recorder = HttpRecorder(lambda n, signal: answer)
    server, port = serve_http(recorder)
    started = time.monotonic()
    try:
        report = run(loaded_batches(templates), settings_for(f"http://127.0.0.1:{port}", duration=2.0,
                                                             events_per_second=5000, retry=RetryPolicy(),
                                                             drain_timeout=10), Lines())
    finally:
        server.shutdown()
    took = time.monotonic() - started
    accounted(report)
    assert took < 3.0 and report.elapsed < 3.0, took
    for signal in SIGNALS:
        r = report.signals[signal]
        assert r.failed == r.sent > 0 and r.delivered == 0, signal
        assert set(r.reasons["failed"]) == {f"HTTP {answer.status}"}, r.reasons


def test_partial_success_is_counted_as_rejected(templates):
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    response = logs_service_pb2.ExportLogsServiceResponse()
    response.partial_success.rejected_log_records = 5
    response.partial_success.error_message = "too old"
    recorder = HttpRecorder(lambda n, signal: Answer(body=response.SerializeToString()))
    server, port = serve_http(recorder)
    lines = Lines()
    try:
        report = run(loaded_batches(templates, ("logs",)), settings_for(f"http://127.0.0.1:{port}", passes=1), lines)
    finally:
        server.shutdown()
    logs = report.signals["logs"]
    accounted(report)
    assert logs.rejected == 5 * logs.requests and logs.delivered == logs.sent - logs.rejected
    assert any("rejected" in line and "too old" in line for line in lines)


def test_dropped_connections_are_retried_and_accounted(templates):
    recorder = HttpRecorder(lambda n, signal: DROP if n % 3 == 0 else Answer())
    server, port = serve_http(recorder)
    try:
        report = run(loaded_batches(templates), settings_for(f"http://127.0.0.1:{port}", passes=2), Lines())
    finally:
        server.shutdown()
    accounted(report)
    for signal in SIGNALS:
        r = report.signals[signal]
        assert r.delivered == r.sent == recorder.events(signal), signal
    assert sum(r.retries for r in report.signals.values()) > 0


def test_redirects_are_not_followed(templates):
    recorder = HttpRecorder(lambda n, signal: Answer(307, {"Location": "http://elsewhere:4318/v1/traces"}))
    server, port = serve_http(recorder)
    lines = Lines()
    try:
        report = run(loaded_batches(templates, ("traces",)), settings_for(f"http://127.0.0.1:{port}", passes=1),
                     lines)
    finally:
        server.shutdown()
    traces = report.signals["traces"]
    assert traces.failed == traces.sent and len(recorder.seen) == traces.requests
    assert any("HTTP 307" in line and "elsewhere:4318" in line for line in lines), lines


def test_nothing_listening_fails_every_event_after_retries(templates):
    port = free_port()
    lines = Lines()
    report = run(loaded_batches(templates, ("logs",)),
                 settings_for(f"http://127.0.0.1:{port}", passes=1, retry=RetryPolicy(max_attempts=2,
                                                                                     initial_backoff=0.01)), lines)
    logs = report.signals["logs"]
    assert logs.failed == logs.sent > 0 and logs.delivered == 0
    assert any("CONNECTION" in line and "before any request succeeded" in line for line in lines), lines


def _certificate(directory, name: str, ca: tuple | None = None) -> tuple:
    key, cert = directory / f"{name}-key.pem", directory / f"{name}.pem"
    if ca is None:
        command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                   "-days", "1", "-subj", f"/CN={name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        return key, cert
    request = directory / f"{name}.csr"
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(request),
                    "-subj", f"/CN={name}"], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "x509", "-req", "-in", str(request), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
                    "-CAcreateserial", "-out", str(cert), "-days", "1"], check=True, capture_output=True, timeout=60)
    return key, cert


def test_tls_and_mutual_tls(templates, tmp_path):
    server_key, server_cert = _certificate(tmp_path, "localhost")
    client_ca = _certificate(tmp_path, "client-ca")
    client_key, client_cert = _certificate(tmp_path, "client", ca=client_ca)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert, server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(client_ca[1])
    recorder = HttpRecorder()
    server, port = serve_http(recorder, tls=context)
    base = f"https://localhost:{port}"
    no_retry = RetryPolicy(max_attempts=1)
    try:
        mutual = run(loaded_batches(templates, ("traces",)),
                     settings_for(base, {"ca_file": str(server_cert), "cert_file": str(client_cert),
                                         "key_file": str(client_key)}, passes=1), Lines())
        no_client_cert = run(loaded_batches(templates, ("traces",)),
                             settings_for(base, {"ca_file": str(server_cert), "timeout": 2}, passes=1,
                                          retry=no_retry), Lines())
        untrusted = run(loaded_batches(templates, ("traces",)),
                        settings_for(base, {"timeout": 2}, passes=1, retry=no_retry), Lines())
    finally:
        server.shutdown()
    assert mutual.signals["traces"].delivered == mutual.signals["traces"].sent == recorder.events("traces") > 0
    for refused in (no_client_cert, untrusted):
        assert refused.signals["traces"].delivered == 0 and refused.signals["traces"].failed > 0


@pytest.mark.parametrize("otlp, sending, expected", [
    ({"protocol": "http/protobuf", "compression": "gzip"}, {}, "gzip, patchable"),
    ({"protocol": "http/protobuf", "compression": "gzip"}, {"gzip_encoder": "zlib"}, "gzip, zlib"),
    ({"protocol": "grpc", "compression": "gzip", "grpc_client": "grpcio"}, {}, "gzip by grpcio"),
    # auto: gRPC on libcurl for compressed messages, which it sends as the engine made them.
    ({"protocol": "grpc", "compression": "gzip"}, {}, "gzip, patchable"),
    ({"protocol": "grpc", "compression": "zstd"}, {}, "zstd, patchable"),
    ({"protocol": "http/protobuf"}, {"gzip_encoder": "zlib"}, "none"),
    ({"protocol": "http/protobuf", "compression": "zstd"}, {}, "zstd, patchable"),
    ({"protocol": "http/protobuf", "compression": "zstd"}, {"zstd_encoder": "library"}, "zstd, library"),
])
def test_the_setup_line_says_how_bodies_are_compressed(otlp, sending, expected):
    sender = telegen.Sender({"otlp": {"endpoint": "http://127.0.0.1:4318", **otlp}, "sending": sending},
                            write=lambda line: None)
    assert f"insecure, {expected})" in sender.describe_setup()


def test_zstd_over_grpc_goes_on_libcurl_and_is_refused_on_grpcio():
    """grpcio has no zstd: gRPC with zstd is carried by libcurl (auto), and
    asking for grpcio names the key, the value, and what to do instead."""
    assert "(grpc on libcurl, insecure, zstd, patchable)" in telegen.Sender(
        {"otlp": {"endpoint": "127.0.0.1:4317", "compression": "zstd", "insecure": True}},
        write=lambda line: None).describe_setup()
    with pytest.raises(telegen.ConfigError, match=r"otlp.compression: 'zstd' is invalid: expected none or gzip with "
                                                  r"gRPC on grpcio \(otlp.protocol is grpc; grpcio has no zstd\): set "
                                                  r"otlp.grpc_client: curl \(gRPC on libcurl sends zstd\), or "
                                                  r"otlp.protocol: http/protobuf"):
        telegen.Sender({"otlp": {"compression": "zstd", "grpc_client": "grpcio"}})
    with pytest.raises(telegen.ConfigError, match=r"\(otlp.logs.protocol is grpc"):
        telegen.Sender({"otlp": {"compression": "zstd", "protocol": "http", "grpc_client": "grpcio",
                                 "logs": {"protocol": "grpc"}}})
    with pytest.raises(telegen.ConfigError, match="otlp.grpc_client: 'curlz' is invalid: expected one of "
                                                  "auto, grpcio, curl"):
        telegen.Sender({"otlp": {"grpc_client": "curlz"}})
    with pytest.raises(telegen.ConfigError, match="sending.zstd_encoder: 'zlib' is invalid: expected one of "
                                                  "patchable, library"):
        telegen.Sender({"sending": {"zstd_encoder": "zlib"}})


def test_a_wrong_gzip_encoder_names_the_key_and_the_choices():
    with pytest.raises(telegen.ConfigError, match="sending.gzip_encoder: 'fast' is invalid: expected one of "
                                                  "patchable, zlib"):
        telegen.Sender({"sending": {"gzip_encoder": "fast"}})
