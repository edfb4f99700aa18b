"""telegen against a real OpenTelemetry Collector (`make peers`): what the
Collector's own telemetry counts equals what telegen reports delivered; the
Collector forwarding to `telegen sink --validate`; its file exporter's output
decoded with the official classes; a Collector of limited capacity refusing
what it cannot forward, and the sender reporting it."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import time

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

import telegen
from peers import Collector, LimitedCollector
from telegen.sink import Sink
from telegen.templates import decode_record, read_json_records

ACCEPTED = {"traces": "otelcol_receiver_accepted_spans", "metrics": "otelcol_receiver_accepted_metric_points",
            "logs": "otelcol_receiver_accepted_log_records"}
REFUSED = {"traces": "otelcol_receiver_refused_spans", "metrics": "otelcol_receiver_refused_metric_points",
           "logs": "otelcol_receiver_refused_log_records"}
SENT = {"traces": "otelcol_exporter_sent_spans", "metrics": "otelcol_exporter_sent_metric_points",
        "logs": "otelcol_exporter_sent_log_records"}
DATA = {"traces": TracesData, "metrics": MetricsData, "logs": LogsData}


def send(template_dir, endpoint: str, compression: str = "none", passes: int = 2, protocol: str = "grpc",
         grpc_client: str = "grpcio", insecure: bool = True, ca_file: str | None = None, timeout: float = 10,
         **sending):
    return telegen.Sender({
        "input": {"directory": str(template_dir)},
        "otlp": {"endpoint": endpoint, "insecure": insecure, "compression": compression, "protocol": protocol,
                 "grpc_client": grpc_client, "timeout": timeout, **({"tls": {"ca_file": ca_file}} if ca_file else {})},
        "sending": {"multiplier": passes, "duration": 0, "rate_limit": {"events_per_second": 0},
                    "batch_size": {"traces": 10, "metrics": 100, "logs": 100}, "metric_series_multiplier": 3,
                    **sending},
    }, write=lambda line: None).run()


@pytest.mark.parametrize("protocol, compression, encoder", [
    ("grpc", "none", ""), ("grpc", "gzip", ""), ("http/protobuf", "none", ""), ("http/protobuf", "gzip", ""),
    # zstd (OTLP/HTTP, or gRPC on libcurl: grpcio has none): the Collector decodes every patched frame, or refuses it.
    ("http/protobuf", "zstd", "patchable"), ("http/protobuf", "zstd", "library"),
    # gRPC on libcurl: messages as the engine made them (patchable gzip and zstd, flagged compressed).
    ("grpc/curl", "none", ""), ("grpc/curl", "gzip", ""), ("grpc/curl", "zstd", "patchable"),
    ("grpc/curl", "zstd", "library")])
def test_the_collector_counts_what_telegen_delivered(template_dir, tmp_path, protocol, compression, encoder):
    client = "curl" if protocol == "grpc/curl" else "grpcio"
    protocol = protocol.split("/curl")[0]
    with Collector(workdir=tmp_path) as collector:
        endpoint = collector.grpc_endpoint if protocol == "grpc" else f"http://{collector.http_endpoint}"
        report = send(template_dir, endpoint, compression, protocol=protocol, grpc_client=client,
                      **({"zstd_encoder": encoder} if encoder else {}))
        metrics = collector.wait_for(ACCEPTED["logs"], report.signals["logs"].delivered)
    for signal in ("traces", "metrics", "logs"):
        delivered = report.signals[signal].delivered
        assert delivered > 0 and report.signals[signal].failed == report.signals[signal].rejected == 0
        assert metrics.get(ACCEPTED[signal]) == delivered, signal
        assert metrics.get(REFUSED[signal], 0) == 0, signal


@pytest.mark.parametrize("grpc_client, compression", [("grpcio", "none"), ("curl", "none"), ("curl", "gzip"),
                                                      ("curl", "zstd")])
def test_the_collector_over_tls_counts_what_telegen_delivered(template_dir, tmp_path, grpc_client, compression):
    """The Collector's gRPC receiver with TLS (a test CA's certificate):
    both gRPC clients verify it and deliver, counted exactly; without the CA
    the handshake fails and nothing is delivered."""
    from test_send_http import _certificate

    key, cert = _certificate(tmp_path, "localhost")  # self-signed: its own CA, for localhost and 127.0.0.1
    with Collector(workdir=tmp_path, tls={"cert_file": str(cert), "key_file": str(key)}) as collector:
        report = send(template_dir, collector.grpc_endpoint, compression, grpc_client=grpc_client,
                      insecure=False, ca_file=str(cert))
        metrics = collector.wait_for(ACCEPTED["logs"], report.signals["logs"].delivered)
        untrusted = send(template_dir, collector.grpc_endpoint, compression, passes=1, grpc_client=grpc_client,
                         insecure=False, retry={"max_attempts": 1}, timeout=5)
    for signal in ("traces", "metrics", "logs"):
        figures = report.signals[signal]
        assert figures.failed == figures.rejected == 0
        assert figures.delivered == figures.sent == metrics[ACCEPTED[signal]] > 0
        assert untrusted.signals[signal].delivered == 0 and untrusted.signals[signal].failed > 0


def test_the_collector_runs_its_processors(template_dir, tmp_path):
    """memory_limiter then batch, named per pipeline: every event through
    both, counted by each, none refused."""
    processors = {"memory_limiter": {"check_interval": "100ms", "limit_mib": 1024, "spike_limit_mib": 256},
                  "batch": {"timeout": "100ms"}}
    pipelines = {signal: {"processors": ["memory_limiter", "batch"], "exporters": ["nop"]} for signal in DATA}
    with Collector({"nop": {}}, pipelines, tmp_path, processors) as collector:
        report = send(template_dir, collector.grpc_endpoint, passes=1)
        total = sum(report.signals[signal].delivered for signal in DATA)
        metrics = collector.wait_for("otelcol_processor_batch_batch_send_size_sum", total)
    for signal in DATA:
        assert report.signals[signal].delivered > 0 and report.signals[signal].lost == 0, signal
        limiter = ACCEPTED[signal].replace("otelcol_receiver", "otelcol_processor_memory_limiter")
        assert metrics.get(limiter) == report.signals[signal].delivered, signal
    assert metrics.get("otelcol_processor_batch_batch_send_size_sum") == total


def send_logs(template_dir, endpoint: str, rate: float, protocol: str = "grpc", seconds: float = 2):
    """Logs alone, 100 a request, for `seconds` at `rate`; one attempt a
    request, so every refusal is counted failed with the Collector's reason."""
    return telegen.Sender({
        "input": {"directory": str(template_dir), "traces": False, "metrics": False},
        "otlp": {"endpoint": endpoint, "insecure": True, "protocol": protocol},
        "sending": {"duration": seconds, "rate_limit": {"events_per_second": rate}, "batch_size": {"logs": 100},
                    "retry": {"max_attempts": 1}},
        "thresholds": {"max_lost_ratio": None},
    }, write=lambda line: None).run().signals["logs"]


def test_a_limited_collector_refuses_past_its_knee(template_dir, tmp_path):
    """LimitedCollector forwards about 9,400 log records a second (10,000
    nominally): at a quarter of that nothing is refused; at five times it
    most requests are, UNAVAILABLE over gRPC and 503 over HTTP, and the
    Collector counts refused what the sender counts failed."""
    with LimitedCollector(tmp_path) as collector:
        knee = collector.events_per_second
        below = send_logs(template_dir, collector.grpc_endpoint, knee / 4)
        over_grpc = send_logs(template_dir, collector.grpc_endpoint, 5 * knee)
        over_http = send_logs(template_dir, f"http://{collector.http_endpoint}", 5 * knee, "http/protobuf")
        metrics = collector.metrics()
    assert below.sent >= knee / 4 and below.delivered == below.sent and below.retries == 0, below.reasons
    for over, answer in ((over_grpc, "UNAVAILABLE: sending queue is full"),
                         (over_http, "HTTP 503: sending queue is full")):
        assert over.failed > over.sent / 3, f"{over.failed:,} of {over.sent:,} refused"
        assert over.delivered <= 2 * knee + collector.queue_items, "no more than 2 s of forwarding and a queue"
        assert over.reasons == {"failed": {answer: over.failed}}
    assert metrics.get(REFUSED["logs"]) == over_grpc.failed + over_http.failed
    assert metrics.get(ACCEPTED["logs"]) == below.delivered + over_grpc.delivered + over_http.delivered


def test_find_max_finds_the_limited_collectors_knee(template_dir, tmp_path):
    """`telegen send --find-max logs` against the real Collector whose
    exporter queue fills past about 9,300 logs/s (LimitedCollector): a knee
    is found there by its UNAVAILABLE answers, and the report is written."""
    config = tmp_path / "search.yaml"
    with LimitedCollector(workdir=tmp_path / "collector") as collector:
        config.write_text(f"""
input: {{directory: "{template_dir}"}}
otlp: {{endpoint: "{collector.grpc_endpoint}", insecure: true}}
sending:
  batch_size: {{traces: 10, metrics: 100, logs: 100}}
  retry: {{max_attempts: 2, initial_backoff: 0.1, max_backoff: 0.2}}
  search: {{min_rate: 2000, step_duration: 4s, cooldown: 0.5s, hold: 10s}}
""")
        result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--find-max", "logs",
                                 "--stats-json", str(tmp_path / "run.json"), "--report", str(tmp_path / "report")],
                                capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    search = json.loads((tmp_path / "run.json").read_text())["search"]
    assert search["stop_reason"] == "knee" and search["confirmed"], result.stdout
    assert 6_000 <= search["max_sustainable_eps"] <= 11_000, result.stdout
    failed = [step for step in search["steps"] if not step["passed"]]
    assert failed and all(step["reason"] == "errors" for step in failed), result.stdout
    assert "UNAVAILABLE: sending queue is full" in result.stdout
    assert "search: the backend sustains " in result.stdout and "degradation began at" in result.stdout
    assert (tmp_path / "report" / "timeline.csv").exists()


def test_the_collector_forwards_to_a_validating_sink(template_dir, tmp_path):
    with Sink(validate=True) as sink:
        exporters = {"otlp": {"endpoint": sink.endpoint, "tls": {"insecure": True}, "compression": "gzip",
                              "sending_queue": {"enabled": False}}}
        with Collector(exporters, workdir=tmp_path) as collector:
            report = send(template_dir, collector.grpc_endpoint)
            metrics = collector.wait_for(SENT["logs"], report.signals["logs"].delivered)
        deadline = time.monotonic() + 10
        while sink.stats().logs.events < report.signals["logs"].delivered and time.monotonic() < deadline:
            time.sleep(0.1)
        stats = sink.stats()
    for signal in ("traces", "metrics", "logs"):
        delivered = report.signals[signal].delivered
        assert metrics.get(SENT[signal]) == delivered, signal
        assert stats.signals()[signal].events == delivered, signal
        assert stats.signals()[signal].invalid_requests == 0, "the sink's validation passed"


def test_the_file_exporter_writes_what_telegen_sent(template_dir, tmp_path):
    """Both of its formats, one file per signal and format, as the
    record-and-replay importer will read them."""
    exporters = {f"file/{signal}-{fmt}": {"path": str(tmp_path / f"{signal}.{fmt}"), "format": fmt}
                 for signal in DATA for fmt in ("json", "proto")}
    pipelines = {signal: [f"file/{signal}-json", f"file/{signal}-proto"] for signal in DATA}
    with Collector(exporters, pipelines, workdir=tmp_path) as collector:
        report = send(template_dir, collector.grpc_endpoint, passes=1)
        collector.wait_for("otelcol_exporter_sent_log_records", 2 * report.signals["logs"].delivered)
    for signal, kind in DATA.items():
        # OTLP JSON (hex ids), as telegen's own --json files: TracesData reads as an export request.
        as_json = [decode_record(signal, record) for record in read_json_records(tmp_path / f"{signal}.json", signal)]
        as_proto = [kind.FromString(body) for body in length_prefixed((tmp_path / f"{signal}.proto").read_bytes())]
        assert count_events(signal, as_json) == count_events(signal, as_proto) == report.signals[signal].delivered
        assert items(signal, as_json) == items(signal, as_proto), "the two formats hold the same events"


def length_prefixed(data: bytes) -> list[bytes]:
    """The file exporter's `proto` format: each message after its 4-byte big-endian length."""
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        out.append(data[pos + 4:pos + 4 + length])
        pos += 4 + length
    return out


def items(signal: str, messages: list) -> list[bytes]:
    """Every event, serialized, sorted: what two exports hold whatever their grouping."""
    if signal == "traces":
        found = [s for m in messages for rs in m.resource_spans for ss in rs.scope_spans for s in ss.spans]
    elif signal == "logs":
        found = [r for m in messages for rl in m.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    else:
        found = [p for m in messages for rm in m.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics
                 for p in getattr(metric, metric.WhichOneof("data")).data_points]
    return sorted(item.SerializeToString(deterministic=True) for item in found)


def count_events(signal: str, messages: list) -> int:
    if signal == "traces":
        return sum(len(ss.spans) for m in messages for rs in m.resource_spans for ss in rs.scope_spans)
    if signal == "logs":
        return sum(len(sl.log_records) for m in messages for rl in m.resource_logs for sl in rl.scope_logs)
    return sum(len(getattr(metric, metric.WhichOneof("data")).data_points) for m in messages
               for rm in m.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics)


def test_the_recorded_fixtures_decode_and_agree():
    """tests/fixtures/collector: kept for the importer; no Collector needed to read them."""
    from pathlib import Path
    fixtures = Path(__file__).parent / "fixtures" / "collector"
    expected = {"traces": 20, "metrics": 9, "logs": 12}
    for signal, kind in DATA.items():
        as_json = [decode_record(signal, record) for record in read_json_records(fixtures / f"{signal}.json", signal)]
        as_proto = [kind.FromString(body) for body in length_prefixed((fixtures / f"{signal}.proto").read_bytes())]
        assert count_events(signal, as_json) == count_events(signal, as_proto) == expected[signal]
        assert items(signal, as_json) == items(signal, as_proto)


def test_a_collector_export_imported_replays_into_a_collector(template_dir, tmp_path):
    """The whole loop with the real peer: telegen -> Collector -> its file
    exporter (proto, zstd) -> `telegen import` -> `telegen send` -> a second
    Collector, whose receiver accepts every event, twice over two passes."""
    from telegen.importing import import_captures

    exporters = {f"file/{signal}": {"path": str(tmp_path / f"{signal}.proto"), "format": "proto",
                                    "compression": "zstd"} for signal in DATA}
    pipelines = {signal: [f"file/{signal}"] for signal in DATA}
    with Collector(exporters, pipelines, workdir=tmp_path) as collector:
        report = send(template_dir, collector.grpc_endpoint, passes=1, metric_series_multiplier=1)
        collector.wait_for(SENT["logs"], report.signals["logs"].delivered)
        time.sleep(0.5)  # the file exporter flushes on its own interval
    result = import_captures([tmp_path / f"{signal}.proto" for signal in DATA], tmp_path / "imported")
    counts = result.normalized.counts
    assert (counts["spans"], counts["data_points"], counts["logs"]) == tuple(
        report.signals[s].delivered for s in DATA), "every event exported came back in"
    (tmp_path / "second").mkdir()
    with Collector(workdir=tmp_path / "second") as second:
        replayed = telegen.Sender({"input": {"directory": str(tmp_path / "imported")},
                                   "otlp": {"endpoint": second.grpc_endpoint, "insecure": True},
                                   "sending": {"multiplier": 2, "duration": 0,
                                               "rate_limit": {"events_per_second": 0}}},
                                  write=lambda line: None).run()
        metrics = second.wait_for(ACCEPTED["logs"], replayed.signals["logs"].delivered)
    for signal in DATA:
        assert replayed.signals[signal].delivered >= 2 * report.signals[signal].delivered, signal
        assert metrics.get(ACCEPTED[signal]) == replayed.signals[signal].delivered, signal
        assert metrics.get(REFUSED[signal], 0) == 0, signal
