"""The sender end to end on loopback: what a backend receives over several
passes, exact accounting, and survival of every fault the issue lists. Every
case runs on both gRPC clients, grpcio and libcurl (transport/grpc_curl.py):
the same requests received, the same statuses handled, the same counts."""
from __future__ import annotations

import subprocess
import threading
import time
from collections import defaultdict
from concurrent import futures

import grpc
import pytest
from conftest import Recorder, loaded_batches, serve, settled
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from telegen.send.engine import SendSettings, run
from telegen.send.load.batches import build_batches
from telegen.send.transport import RetryPolicy, Target
from telegen.sink import Sink, SinkFaults, free_port

NOW = 1_800_000_000_000_000_000

SIGNALS = ("traces", "metrics", "logs")
FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.05, max_backoff=0.2)


CLIENT = {"grpc": "grpcio"}


@pytest.fixture(autouse=True, params=["grpcio", "curl"])
def grpc_client(request):
    """Each test once per gRPC client."""
    CLIENT["grpc"] = request.param
    yield request.param
    CLIENT["grpc"] = "grpcio"


def target_for(endpoint: str, **fields) -> Target:
    return Target(endpoint=endpoint, grpc_client=CLIENT["grpc"], **fields)


def settings_for(endpoint: str, **overrides) -> SendSettings:
    target = overrides.pop("target", target_for(endpoint, insecure=True, timeout=5))
    values = dict(targets={s: target for s in SIGNALS}, concurrency=4, stats_interval=60, retry=FAST_RETRY,
                  drain_timeout=5)
    values.update(overrides)
    return SendSettings(**values)


def quiet(_: str) -> None:
    pass


def test_what_the_backend_receives_over_several_passes(templates):
    recorder = Recorder()
    server, port = serve(recorder)
    try:
        jitter, backdate = 2 * 10**9, 10**9
        before = time.time_ns()
        report = run(loaded_batches(templates), settings_for(f"127.0.0.1:{port}", passes=3, jitter_ns=jitter,
                                                               backdate_ns=backdate), quiet)
        after = time.time_ns()
    finally:
        server.stop(0)
    for signal in SIGNALS:
        r = report.signals[signal]
        assert r.failed == r.rejected == 0
        assert r.delivered == r.sent == recorder.events(signal), signal
    spans = recorder.spans()
    template_spans = templates.counts["spans"]
    assert len(spans) == 3 * template_spans
    by_trace = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    assert len(by_trace) == 3 * templates.counts["traces"], "every trace id is new and unique per pass"
    assert len({(s.trace_id, s.span_id) for s in spans}) == len(spans)
    assert len({s.span_id for s in spans}) == len(spans)
    template_shapes = sorted(_shape(s) for t in templates.traces for s in _template_spans(t))
    for trace in by_trace.values():
        ids = {s.span_id for s in trace}
        start = min(s.start_time_unix_nano for s in trace)
        end = max(s.end_time_unix_nano for s in trace)
        assert before - backdate - jitter - (end - start) <= start
        assert end <= after - backdate
        for s in trace:
            assert not s.parent_span_id or s.parent_span_id in ids
    # Every span keeps its template duration and its offset from its trace start.
    starts = {tid: min(s.start_time_unix_nano for s in trace) for tid, trace in by_trace.items()}
    got = sorted((s.name, s.start_time_unix_nano - starts[s.trace_id], s.end_time_unix_nano - s.start_time_unix_nano)
                 for s in spans)
    assert got == sorted(template_shapes * 3)
    # Counters grow between passes, and points are stamped "now".
    counters = defaultdict(list)
    for request in recorder.requests["metrics"]:
        for rm in request.resource_metrics:
            key_base = rm.resource.SerializeToString()
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.WhichOneof("data") == "sum" and m.sum.is_monotonic:
                        for k, p in enumerate(m.sum.data_points):
                            counters[(key_base, m.name, k)].append(p.as_double or p.as_int)
                            assert before <= p.time_unix_nano <= after
    assert counters
    for values in counters.values():
        assert len(values) == 3 and values[0] < values[1] < values[2]


def _template_spans(record: bytes):
    return [s for rs in trace_service_pb2.ExportTraceServiceRequest.FromString(record).resource_spans
            for ss in rs.scope_spans for s in ss.spans]


def _shape(span) -> tuple:
    from telegen.generate.base import TIME_BASE_NS
    return span.name, span.start_time_unix_nano - TIME_BASE_NS, span.end_time_unix_nano - span.start_time_unix_nano


def test_gzip_and_processes_deliver_exact_counts(templates):
    with Sink() as sink:
        target = target_for(sink.endpoint, insecure=True, compression="gzip")
        report = run(loaded_batches(templates), settings_for(sink.endpoint, passes=2, processes=2, target=target),
                     quiet)
        stats = settled(sink)
    for signal in SIGNALS:
        assert report.signals[signal].delivered == stats.signals()[signal].events == report.signals[signal].sent


def test_rate_limit_holds_the_target(templates):
    with Sink() as sink:
        rate = 20_000
        report = run(loaded_batches(templates, ("logs",)),
                     settings_for(sink.endpoint, events_per_second=rate, duration=3.0), quiet)
    achieved = report.signals["logs"].sent / report.elapsed
    assert abs(achieved - rate) / rate < 0.05, achieved


def accounted(report) -> None:
    for r in report.signals.values():
        assert r.delivered + r.rejected + r.failed == r.sent


def test_receiver_down_at_start_then_up(templates):
    port = free_port()
    holder = {}

    def start_later() -> None:
        time.sleep(0.4)
        holder["sink"] = Sink(listen=f"127.0.0.1:{port}").start()

    threading.Thread(target=start_later).start()
    # 12 attempts, ~3 s: grpcio's own reconnect back-off (1 s, then 1.6x,
    # jittered) must find the sink inside them on a busy machine too.
    settings = settings_for(f"127.0.0.1:{port}", passes=1,
                            retry=RetryPolicy(max_attempts=12, initial_backoff=0.1, max_backoff=0.3))
    report = run(loaded_batches(templates, ("traces",)), settings, quiet)
    sink = holder["sink"]
    try:
        accounted(report)
        assert report.signals["traces"].delivered == report.signals["traces"].sent
        assert report.signals["traces"].retries > 0
        assert sink.stats().traces.events == report.signals["traces"].delivered
    finally:
        sink.stop()


def test_unavailable_for_a_while_is_retried(templates):
    patient = RetryPolicy(max_attempts=10, initial_backoff=0.05, max_backoff=0.2)
    with Sink(faults=SinkFaults(unavailable_first_s=0.3)) as sink:
        report = run(loaded_batches(templates), settings_for(sink.endpoint, passes=1, retry=patient), quiet)
        stats = sink.stats()
    accounted(report)
    assert sum(r.retries for r in report.signals.values()) > 0
    for signal in SIGNALS:
        assert report.signals[signal].delivered == report.signals[signal].sent == stats.signals()[signal].events


def test_non_retryable_error_fails_fast_and_is_said_plainly(templates):
    lines = []
    with Sink(faults=SinkFaults(error_code="UNAUTHENTICATED")) as sink:
        report = run(loaded_batches(templates, ("traces",)), settings_for(sink.endpoint, passes=1), lines.append)
    accounted(report)
    traces = report.signals["traces"]
    assert traces.failed == traces.sent and traces.delivered == 0 and traces.retries == 0
    assert any("UNAUTHENTICATED" in line and "before any request succeeded" in line for line in lines)
    assert len(lines) == 1, "a reason is said once"
    assert traces.reasons == {"failed": {"UNAUTHENTICATED: sink fault: answering UNAUTHENTICATED": traces.sent}}


def test_invalid_argument_is_rejected_with_the_servers_reason(templates):
    """INVALID_ARGUMENT refuses the data itself: its events count as rejected
    (not failed, not retried), under the server's message."""
    calls = []

    def export(request: bytes, context):
        calls.append(request)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "log record too old: 2h before the newest")

    report = _send_logs_once(templates, export)
    logs = report.signals["logs"]
    accounted(report)
    assert logs.rejected == logs.sent > 0 and logs.failed == logs.retries == 0 and len(calls) == logs.requests
    assert logs.reasons == {"rejected": {"INVALID_ARGUMENT: log record too old: 2h before the newest": logs.sent}}


def test_a_run_where_every_request_fails_ends_at_its_duration(templates):
    """Every request answered UNAVAILABLE: a 2 s run with the default
    back-off (1 s, then 2, 4, 8) ends at 2 s, not after its retries."""
    lines = []
    started = time.monotonic()
    with Sink(faults=SinkFaults(error_code="UNAVAILABLE")) as sink:
        report = run(loaded_batches(templates), settings_for(sink.endpoint, duration=2.0, events_per_second=5000,
                                                             retry=RetryPolicy(), drain_timeout=10), lines.append)
    took = time.monotonic() - started
    accounted(report)
    assert took < 3.0 and report.elapsed < 3.0, took
    for signal in SIGNALS:
        r = report.signals[signal]
        assert r.failed == r.sent > 0 and r.delivered == 0, signal
        assert list(r.reasons) == ["failed"] and all(reason.startswith("UNAVAILABLE") for reason in r.reasons["failed"])
    assert not any("CANCELLED" in line for line in lines), "a request that waited to be retried keeps its error"


def test_a_stopped_run_does_not_wait_for_its_back_off(templates):
    """Stopped (Ctrl-C) while every request waits 5 s to be retried: the run
    ends at once, each waiting request failed with the error it waited on."""
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    with Sink(faults=SinkFaults(error_code="UNAVAILABLE")) as sink:
        report = run(loaded_batches(templates, ("logs",)),
                     settings_for(sink.endpoint, events_per_second=5000,
                                  retry=RetryPolicy(initial_backoff=5.0, max_backoff=5.0)), quiet, stop)
    took = time.monotonic() - started
    logs = report.signals["logs"]
    accounted(report)
    assert took < 2.5 and report.interrupted, took
    assert logs.failed == logs.sent > 0 and logs.retries > 0
    assert all(reason.startswith("UNAVAILABLE") for reason in logs.reasons["failed"]), logs.reasons


def test_partial_success_is_counted_as_rejected(templates):
    with Sink(faults=SinkFaults(reject_fraction=0.25)) as sink:
        report = run(loaded_batches(templates), settings_for(sink.endpoint, passes=1), quiet)
        stats = sink.stats()
    accounted(report)
    for signal in SIGNALS:
        r, s = report.signals[signal], stats.signals()[signal]
        assert r.rejected == s.rejected_events > 0
        assert r.delivered == s.events


def test_connection_drop_mid_run_is_survived_and_accounted(templates):
    port = free_port()
    first = Sink(listen=f"127.0.0.1:{port}").start()
    box = {}

    def bounce() -> None:
        time.sleep(0.3)
        first.stop(grace=0)
        time.sleep(0.3)
        box["second"] = Sink(listen=f"127.0.0.1:{port}").start()

    bouncer = threading.Thread(target=bounce)
    bouncer.start()
    report = run(loaded_batches(templates, ("logs",)),
                 settings_for(f"127.0.0.1:{port}", duration=1.5, events_per_second=20_000,
                              retry=RetryPolicy(max_attempts=10, initial_backoff=0.05, max_backoff=0.2)), quiet)
    bouncer.join()
    second = box["second"]
    try:
        accounted(report)
        logs = report.signals["logs"]
        received = first.stats().logs.events + second.stats().logs.events
        # A request the dying sink had counted but never answered is retried
        # and arrives twice (at-least-once): duplicates are bounded by retries.
        biggest_batch = max(b.events for b in loaded_batches(templates, ("logs",))[0].batches)
        assert logs.delivered <= received <= logs.delivered + logs.retries * biggest_batch
        assert second.stats().logs.events > 0, "sending resumed after the drop"
    finally:
        second.stop()


def test_tls_with_a_self_signed_certificate(templates, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    recorder = Recorder()
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    server, port = serve(recorder, credentials)
    try:
        target = target_for(f"localhost:{port}", insecure=False, ca_file=str(cert))
        report = run(loaded_batches(templates, ("traces",)), settings_for("", passes=1, target=target), quiet)
        untrusted = run(loaded_batches(templates, ("traces",)),
                        settings_for("", passes=1, target=target_for(f"localhost:{port}", timeout=2),
                                     retry=RetryPolicy(max_attempts=1)), quiet)
    finally:
        server.stop(0)
    assert report.signals["traces"].delivered == recorder.events("traces") > 0
    assert untrusted.signals["traces"].delivered == 0 and untrusted.signals["traces"].failed > 0


def _status_details(seconds: int, nanos: int) -> bytes:
    """A google.rpc.Status carrying RetryInfo, encoded by the official classes."""
    from google.protobuf import any_pb2, duration_pb2
    from google.rpc import error_details_pb2, status_pb2
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos)))
    return status_pb2.Status(code=8, message="slow down", details=[detail]).SerializeToString()


def test_retry_info_is_parsed():
    from telegen.send.transport.base import parse_partial_success
    from telegen.send.transport.grpc import retry_delay
    assert retry_delay([("grpc-status-details-bin", _status_details(2, 500_000_000))]) == 2.5
    assert retry_delay([("other", b"x")]) is None
    assert retry_delay(None) is None
    assert retry_delay([("grpc-status-details-bin", b"\xff\xff")]) is None  # malformed: ignored
    response = trace_service_pb2.ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 7
    response.partial_success.error_message = "too old"
    assert parse_partial_success("traces", response.SerializeToString()) == (7, "too old")


def test_responses_are_read_per_signal_and_never_crash():
    from google.protobuf import any_pb2, duration_pb2
    from google.rpc import error_details_pb2, status_pb2

    from telegen.send.transport.base import parse_partial_success
    from telegen.send.transport.grpc import retry_delay
    metrics = metrics_service_pb2.ExportMetricsServiceResponse()
    metrics.partial_success.rejected_data_points = 3
    logs = logs_service_pb2.ExportLogsServiceResponse()
    logs.partial_success.rejected_log_records = 4
    logs.partial_success.error_message = "bad body"
    assert parse_partial_success("metrics", metrics.SerializeToString()) == (3, "")
    assert parse_partial_success("logs", logs.SerializeToString()) == (4, "bad body")
    assert parse_partial_success("logs", b"") == (0, "")
    assert parse_partial_success("traces", b"\x0a\x05\x08") == (0, "")  # truncated: ignored, delivered
    negative = trace_service_pb2.ExportTraceServiceResponse()
    negative.partial_success.rejected_spans = -5
    assert parse_partial_success("traces", negative.SerializeToString()) == (0, "")
    # A detail of another type is skipped; a RetryInfo with a broken body is ignored.
    other, broken = any_pb2.Any(), any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo", value=b"\x0a\xff")
    other.Pack(error_details_pb2.ErrorInfo(reason="x"))
    retry = any_pb2.Any()
    retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1)))
    status = status_pb2.Status(code=8, details=[other, retry]).SerializeToString()
    assert retry_delay([("grpc-status-details-bin", status)]) == 1.0
    assert retry_delay([("grpc-status-details-bin", status_pb2.Status(details=[broken]).SerializeToString())]) is None


def _send_logs_once(templates, export, **settings):
    """One pass of the log batches, one request at a time, to a gRPC server
    whose LogsService Export is `export` (raw bytes in and out)."""
    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.logs.v1.LogsService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        one_batch = build_batches("logs", templates.logs, 1000, 4 * 2**20)
        return run([one_batch], settings_for(f"127.0.0.1:{port}", passes=1, concurrency=1, **settings), quiet)
    finally:
        server.stop(0)


def test_resource_exhausted_with_retry_info_waits_and_retries(templates):
    """RESOURCE_EXHAUSTED is retryable only with RetryInfo, after its delay."""
    calls = []

    def export(request: bytes, context):
        calls.append(time.monotonic())
        if len(calls) <= 2:
            context.set_trailing_metadata([("grpc-status-details-bin", _status_details(0, 300_000_000))])
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
        return b""

    report = _send_logs_once(templates, export, retry=RetryPolicy(max_attempts=5, initial_backoff=0.01))
    assert report.signals["logs"].delivered == report.signals["logs"].sent
    assert report.signals["logs"].retries == 2
    assert calls[1] - calls[0] >= 0.28 and calls[2] - calls[1] >= 0.28, "the server's delay, not the backoff"


def test_a_garbled_ok_response_counts_as_delivered(templates):
    """The server said OK; a response body that does not parse must not fail the run."""
    def export(request: bytes, context):
        return b"\x0a\x05\x08"  # partial_success cut short

    report = _send_logs_once(templates, export)
    logs = report.signals["logs"]
    assert logs.delivered == logs.sent > 0 and logs.failed == logs.rejected == 0


def test_more_processes_than_batches_ends(templates):
    """A worker whose share of the schedule is empty must not spin forever."""
    one_batch = build_batches("logs", templates.logs[:10], 1000, 4 * 2**20)
    assert len(one_batch.batches) == 1
    with Sink() as sink:
        report = run([one_batch], settings_for(sink.endpoint, duration=1.0, processes=2), quiet)
    assert report.elapsed < 10
    assert report.signals["logs"].delivered == report.signals["logs"].sent > 0


def test_failures_name_what_failed():
    from telegen.send.report import SendReport, SignalReport
    def report(**signals):
        return SendReport(elapsed=1.0, signals={name: SignalReport(name, **values) for name, values in signals.items()},
                          target_events_per_second=0, processes=1)
    assert report(traces={"sent": 10, "delivered": 9, "failed": 1}).failures() == []
    assert report(traces={"sent": 0}).failures() == ["nothing was sent"]
    assert report(traces={"sent": 10, "delivered": 10}, logs={"sent": 5, "failed": 3, "rejected": 2}).failures() == [
        "logs: none of 5 events delivered (3 failed, 2 rejected)"]
    # With the backend's reasons, and one line per signal: not also "lost 100 %".
    dead = report(logs={"sent": 5, "failed": 3, "rejected": 2,
                        "reasons": {"failed": {"UNAVAILABLE: down": 3}, "rejected": {"HTTP 400: too old": 2}}})
    dead.breaches = ["logs: lost 100 % of 5 events (2 rejected, 3 failed), over max_lost_ratio 1 %: ..."]
    assert dead.failures() == ["logs: none of 5 events delivered (3 failed, 2 rejected): failed: UNAVAILABLE: down "
                               "(3); rejected by the endpoint: HTTP 400: too old (2)"]


def test_errors_are_explained_in_plain_words():
    from telegen.send.transport import explain
    assert explain("Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: WRONG_VERSION_NUMBER").startswith(
        "TLS handshake failed: the endpoint may be plaintext")
    assert "ca_file" in explain("SSL certificate problem: unable to get local issuer certificate")
    assert "host and port" in explain("curl error 7: Failed to connect to 127.0.0.1 port 1: Connection refused")
    assert explain("something else entirely") == ""
    assert "try --protocol http" in explain("failed to connect to all addresses; last error: UNAVAILABLE: "
                                            "ipv4:10.0.0.7:4318: Failed parsing HTTP/2 (Expected SETTINGS frame)")
    assert "try --protocol grpc" in explain("curl error 1: Received HTTP/0.9 when not allowed")


def test_a_reason_is_shortened_but_its_hint_read_from_all_of_it():
    """The telling part of a long message can lie past the 200 characters a
    reason keeps: the hint is read from the whole message."""
    from telegen.send.transport.base import BatchState
    outcomes = []
    message = ("failed to connect to all addresses; last error: UNAVAILABLE: "
               + "dns:otel-collector.observability.svc.cluster.local:4318 " * 3 + "Failed parsing HTTP/2")
    state = BatchState([b"x"], (7,), outcomes.append)
    state.finish_piece(0, failed=True, code="UNAVAILABLE", message=message)
    (outcome,) = outcomes
    ((kind, reason), events), = outcome.reasons.items()
    assert (kind, events) == ("failed", 7) and len(reason) == 200 and reason.endswith("...")
    assert "Failed parsing" not in reason and "try --protocol http" in outcome.hints[reason]


def test_grpc_to_an_http1_port_says_to_try_protocol_http(templates):
    """gRPC at an HTTP/1-only server (an OTLP/HTTP receiver's port): the
    error line says to try --protocol http."""
    from http_receiver import HttpRecorder, serve_http
    server, port = serve_http(HttpRecorder())
    lines = []
    try:
        report = run(loaded_batches(templates, ("logs",)), settings_for(f"127.0.0.1:{port}", passes=1), lines.append)
    finally:
        server.shutdown()
    assert report.signals["logs"].failed == report.signals["logs"].sent > 0
    assert any("try --protocol http (otlp.protocol: http/protobuf)" in line for line in lines), lines


def test_the_curl_carriers_grpc_pieces():
    """What gRPC on libcurl writes and reads besides the bytes: the deadline
    header, RetryInfo in unpadded base64, and a unary answer in any
    encoding a server may pick (grpc-go answers in the request's)."""
    import base64
    import gzip as gzip_module

    import zstandard

    from telegen.send.transport.grpc_curl import grpc_timeout, status_details_delay, unframe
    assert grpc_timeout(10) == "10000m" and grpc_timeout(0.0001) == "1m" and grpc_timeout(10**6) == "1000000S"
    encoded = base64.b64encode(_status_details(1, 250_000_000)).decode().rstrip("=")
    assert status_details_delay(encoded) == 1.25
    assert status_details_delay(None) is None and status_details_delay("%%%") is None
    message = b"\x0a\x02\x08\x05"
    frame = b"\x00" + len(message).to_bytes(4, "big") + message
    assert unframe(frame) == message and unframe(b"") == b""
    for encoding, packed in (("gzip", gzip_module.compress(message)),
                             ("zstd", zstandard.ZstdCompressor(write_content_size=False).compress(message))):
        assert unframe(b"\x01" + len(packed).to_bytes(4, "big") + packed, encoding) == message
    with pytest.raises(ValueError, match="'br'"):
        unframe(b"\x01\x00\x00\x00\x01x", "br")


@pytest.mark.parametrize("codec,encoder", [("identity", ""), ("gzip", "patchable"), ("gzip", "zlib"),
                                           ("zstd", "patchable"), ("zstd", "library")])
def test_bodies_for_grpc_on_libcurl_are_framed_messages(templates, codec, encoder):
    """The engine hands gRPC on libcurl whole gRPC messages: each body is the
    body OTLP/HTTP would get, after the 5-byte prefix (flag 1 where
    compressed). A batch sent whole gets its prefix from the patch kernel,
    in the same allocation; a batch cut into pieces, one per piece."""
    from telegen import _fastpath
    from telegen.send.load.compression import BodyEncoding, bodies, grpc_head, with_gzip, with_zstd

    loaded = build_batches("traces", templates.records("traces"), 50, 64 * 1024)
    loaded = with_zstd(with_gzip(loaded))
    whole = next(b for b in loaded.batches if len(b.pieces) == 1)
    cut = next(b for b in loaded.batches if len(b.pieces) >= 3)
    plain, framed = BodyEncoding(codec, encoder), BodyEncoding(codec, encoder, framed=True)
    for batch in (whole, cut):
        data = _fastpath.patch(batch.plan, batch.data, NOW, seed=3)
        expected = bodies(batch, data, plain)
        assert len(expected) == len(batch.pieces)
        got = bodies(batch, data, framed)
        assert got == [grpc_head(len(b), compressed=codec != "identity") + b for b in expected]
        head = framed.head(batch)
        assert bool(head) == (codec == "identity" and batch is whole)
        if head:
            headed = _fastpath.patch(batch.plan, batch.data, NOW, seed=3, head=head)
            assert bodies(batch, headed, framed, headed=True) == [headed] == got


def test_mutual_tls_with_compressed_messages(templates, tmp_path):
    """A gRPC server that wants a client certificate signed by its CA: the
    client's certificate gets through (gzip messages: grpcio's zlib, or on
    libcurl the patchable stream), no certificate does not."""
    from test_send_http import _certificate

    server_key, server_cert = _certificate(tmp_path, "localhost")
    client_ca = _certificate(tmp_path, "client-ca")
    client_key, client_cert = _certificate(tmp_path, "client", ca=client_ca)
    recorder = Recorder()
    credentials = grpc.ssl_server_credentials([(server_key.read_bytes(), server_cert.read_bytes())],
                                              root_certificates=client_ca[1].read_bytes(),
                                              require_client_auth=True)
    server, port = serve(recorder, credentials)
    loaded = loaded_batches(templates, ("logs",))
    try:
        mutual = run(loaded, settings_for("", passes=1, target=target_for(
            f"localhost:{port}", ca_file=str(server_cert), cert_file=str(client_cert), key_file=str(client_key),
            compression="gzip")), quiet)
        anonymous = run(loaded, settings_for("", passes=1, retry=RetryPolicy(max_attempts=1), target=target_for(
            f"localhost:{port}", ca_file=str(server_cert), timeout=2)), quiet)
    finally:
        server.stop(0)
    assert mutual.signals["logs"].delivered == mutual.signals["logs"].sent == recorder.events("logs") > 0
    assert anonymous.signals["logs"].delivered == 0 and anonymous.signals["logs"].failed > 0


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_megabyte_messages_through_a_server_that_allows_two_streams(templates, compression):
    """Messages of 1-4 MB (the size OTLP receivers accept by default) to a
    server whose SETTINGS allow 2 concurrent streams, with 8 requests in
    flight: the streams past the limit wait (or go on another connection)
    rather than fail, HTTP/2 flow control carries megabytes per stream, and
    every event arrives once."""
    from telegen.send.load.compression import with_gzip

    records = templates.records("traces") * 6
    loaded = [with_gzip(build_batches("traces", records, 120, 4 * 2**20)),
              with_gzip(build_batches("traces", records, 360, 4 * 2**20))]
    assert all(10**6 < len(b.data) < 4 * 2**20 and len(b.pieces) == 1 for t in loaded for b in t.batches)
    recorder = Recorder()
    server, port = serve(recorder, options=(("grpc.max_concurrent_streams", 2),))
    try:
        report = run(loaded, settings_for("", passes=2, concurrency=8, target=target_for(
            f"127.0.0.1:{port}", insecure=True, timeout=30, compression=compression)), quiet)
    finally:
        server.stop(0)
    traces = report.signals["traces"]
    assert traces.failed == traces.rejected == 0
    assert traces.delivered == traces.sent == recorder.events("traces") == 2 * sum(
        b.events for t in loaded for b in t.batches)
    sizes = [r.ByteSize() for r in recorder.requests["traces"]]
    assert len(sizes) == 2 * 4 and min(sizes) > 10**6 and max(sizes) < 4 * 2**20


def test_a_server_that_sends_goaway_every_few_hundred_ms(templates):
    """A server that ends every connection after 300 ms (GOAWAY, with a grace
    for the streams in flight, as a load balancer draining it does): the
    sender reconnects and keeps going, and counts exactly what arrived."""
    recorder = Recorder()
    server, port = serve(recorder, options=(("grpc.max_connection_age_ms", 300),
                                            ("grpc.max_connection_age_grace_ms", 2000)))
    patient = RetryPolicy(max_attempts=10, initial_backoff=0.05, max_backoff=0.2)
    try:
        report = run(loaded_batches(templates), settings_for(f"127.0.0.1:{port}", duration=2.0,
                                                             events_per_second=20_000, retry=patient), quiet)
    finally:
        server.stop(0)
    accounted(report)
    for signal in SIGNALS:
        r = report.signals[signal]
        assert r.failed == 0 and r.delivered == r.sent == recorder.events(signal) > 0, signal
