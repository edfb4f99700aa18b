"""Record and replay (`telegen sink --record`, `telegen import`): real
OpenTelemetry SDK output recorded by the sink, the Collector's file exporter
output in both formats with and without zstd, corrupt and truncated captures,
redaction; then the imported templates sent and checked by a receiver that
decodes with the official classes."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import Recorder, serve

import telegen
from telegen.importing import CaptureError, detect_signal, import_captures, read_capture
from telegen.templates import TIME_BASE_NS, decode_record, read_records

FIXTURES = Path(__file__).parent / "fixtures" / "collector"
SIGNALS = ("traces", "metrics", "logs")
TRACES, SPANS_PER_TRACE, LOGS, CYCLES = 3, 4, 5, 3
EXPORTS = CYCLES + 1  # the meter provider's shutdown exports once more


def items(signal: str, message):
    groups = {"traces": ("resource_spans", "scope_spans", "spans"),
              "metrics": ("resource_metrics", "scope_metrics", "metrics"),
              "logs": ("resource_logs", "scope_logs", "log_records")}[signal]
    return [item for r in getattr(message, groups[0]) for s in getattr(r, groups[1]) for item in getattr(s, groups[2])]


# ---------------------------------------------------------------------------
# Real SDK output, recorded by the sink
# ---------------------------------------------------------------------------

def sdk_traffic(endpoint: str) -> dict:
    """What an instrumented application sends: traces whose spans are exported
    one request each (SimpleSpanProcessor), so every trace arrives split;
    logs emitted inside spans (trace context); a counter, an up-down counter
    and a histogram over CYCLES collection cycles."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    resource = Resource.create({"service.name": "checkout", "deployment.environment": "prod"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint,
                                                                                      insecure=True)))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True),
                                           export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    tracer = tracer_provider.get_tracer("shop")
    log = logging.getLogger("telegen-test-app")
    log.propagate = False
    handler = LoggingHandler(logger_provider=logger_provider)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    meter = meter_provider.get_meter("shop")
    orders = meter.create_counter("orders", unit="1")
    in_flight = meter.create_up_down_counter("requests.in_flight")
    latency = meter.create_histogram("checkout.duration", unit="ms")
    trace_ids = []
    try:
        for t in range(TRACES):
            with tracer.start_as_current_span("POST /checkout") as root:
                trace_ids.append(root.get_span_context().trace_id.to_bytes(16, "big"))
                for child in range(SPANS_PER_TRACE - 1):
                    with tracer.start_as_current_span(f"step-{child}"):
                        time.sleep(0.002)
                if t < LOGS:
                    log.info("order %d placed for user alice@example.com", t)
        for extra in range(LOGS - TRACES):
            log.warning("background job %d done", extra)
        for cycle in range(CYCLES):
            orders.add(5 + cycle, {"region": "eu"})
            orders.add(1, {"region": "us"})
            in_flight.add(1 if cycle % 2 == 0 else -1)
            latency.record(12.5 * (cycle + 1), {"region": "eu"})
            reader.force_flush()
            time.sleep(0.05)  # a collection interval, shortened
    finally:
        log.removeHandler(handler)
        tracer_provider.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown()
    return {"trace_ids": trace_ids}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    directory = tmp_path_factory.mktemp("recorded")
    with telegen.Sink(record=directory) as sink:
        made = sdk_traffic(sink.endpoint)
    stats = sink.stats()
    assert stats.traces.events == TRACES * SPANS_PER_TRACE and stats.logs.events == LOGS
    return directory, made, sink.recorded


@pytest.fixture(scope="module")
def imported(recorded, tmp_path_factory):
    directory, made, _ = recorded
    out = tmp_path_factory.mktemp("imported")
    result = import_captures([directory], out)
    return out, made, result


def test_the_sink_records_each_signal_as_it_arrived(recorded):
    directory, _, files = recorded
    assert sorted(p.name for p in files) == ["recorded-logs.pb", "recorded-metrics.pb", "recorded-traces.pb"]
    assert not list(directory.glob("*.part"))
    traces = [decode_record("traces", r) for r in read_records(directory / "recorded-traces.pb")]
    assert len(traces) == TRACES * SPANS_PER_TRACE, "one request per span: every trace arrived split"
    metrics = read_records(directory / "recorded-metrics.pb")
    assert len(metrics) == EXPORTS


def test_import_rejoins_split_traces_one_per_record_relative_on_the_base(imported):
    out, made, result = imported
    records = read_records(out / "telemetry-traces.pb")
    assert len(records) == TRACES and result.normalized.counts["spans"] == TRACES * SPANS_PER_TRACE
    for record in records:
        spans = items("traces", decode_record("traces", record))
        assert len(spans) == SPANS_PER_TRACE and len({s.trace_id for s in spans}) == 1
        assert spans[0].trace_id in made["trace_ids"]
        root = next(s for s in spans if not s.parent_span_id)
        assert root.start_time_unix_nano == TIME_BASE_NS == min(s.start_time_unix_nano for s in spans)
        ids = {s.span_id for s in spans}
        assert all(s.parent_span_id in ids for s in spans if s.parent_span_id)
        assert all(s.end_time_unix_nano <= root.end_time_unix_nano for s in spans)
        assert all(s.end_time_unix_nano - TIME_BASE_NS < 10**10 for s in spans), "durations kept, not epochs"


def test_import_keeps_log_trace_context_and_makes_times_relative(imported):
    out, made, _ = imported
    logs = [items("logs", decode_record("logs", r))[0] for r in read_records(out / "telemetry-logs.pb")]
    assert len(logs) == LOGS
    in_traces = [log for log in logs if log.trace_id]
    assert all(log.time_unix_nano == TIME_BASE_NS <= log.observed_time_unix_nano < TIME_BASE_NS + 10**10
               for log in logs if not log.trace_id)
    spans = {s.span_id: s for r in read_records(out / "telemetry-traces.pb")
             for s in items("traces", decode_record("traces", r))}
    for log in in_traces:  # as far after its trace's start as captured: inside the span it was written in
        span = spans[log.span_id]
        assert span.start_time_unix_nano <= log.time_unix_nano <= span.end_time_unix_nano
        assert log.time_unix_nano <= log.observed_time_unix_nano < log.time_unix_nano + 10**10
    assert len(in_traces) == TRACES and {log.trace_id for log in in_traces} == set(made["trace_ids"])
    assert imported[2].metadata["counts"]["logs_in_captured_traces"] == TRACES


def test_import_keeps_every_series_whole_with_one_start(imported):
    out, _, result = imported
    by_name = {}
    for record in read_records(out / "telemetry-metrics.pb"):
        metric = items("metrics", decode_record("metrics", record))[0]
        by_name[metric.name] = metric
    assert set(by_name) == {"orders", "requests.in_flight", "checkout.duration"}
    orders = by_name["orders"].sum
    regions = Counter(p.attributes[0].value.string_value for p in orders.data_points)
    assert regions == {"eu": EXPORTS, "us": EXPORTS}, "a series' points from every cycle, in one record"
    eu = [p for p in orders.data_points if p.attributes[0].value.string_value == "eu"]
    assert [p.as_int for p in eu] == [5, 11, 18, 18], "cumulative values as captured"
    times = [p.time_unix_nano for p in eu]
    assert times == sorted(times) and len(set(times)) == EXPORTS
    assert {p.start_time_unix_nano for p in orders.data_points} == {TIME_BASE_NS}
    assert result.metadata["counts"]["series"] == 4 and result.metadata["counts"]["data_points"] == 4 * EXPORTS


def test_metadata_records_sources_counts_and_the_capture_time(imported):
    out, _, _ = imported
    import yaml
    meta = yaml.safe_load((out / "metadata.yaml").read_text())
    assert meta["kind"] == "import" and len(meta["sources"]) == 3
    assert meta["counts"]["traces"] == TRACES and meta["capture_time_range"]["seconds"] > 0
    assert meta["redactions"] == {"keys": [], "patterns": [], "replaced": {}}


def replay(template_dir: Path, passes: int = 2, signals: tuple[str, ...] = SIGNALS) -> Recorder:
    recorder = Recorder()
    server, port = serve(recorder)
    try:
        report = telegen.Sender({"input": {"directory": str(template_dir),
                                           **{s: False for s in SIGNALS if s not in signals}},
                                 "otlp": {"endpoint": f"127.0.0.1:{port}", "insecure": True},
                                 "sending": {"multiplier": passes, "rate_limit": {"events_per_second": 0}}},
                                write=lambda line: None).run()
    finally:
        server.stop(1).wait()
    assert report.failures() == [] and sum(s.failed for s in report.signals.values()) == 0
    return recorder


def test_a_replayed_capture_keeps_its_logs_inside_their_spans(imported):
    """The capture's own correlation survives every refresh: each log written
    inside a span names that span as it was sent, in every pass, with its
    time inside the span's sent interval."""
    from test_correlation import check_correlation

    out, _, _ = imported
    shares = check_correlation(replay(out, passes=3, signals=("traces", "logs")))
    assert shares["logs"] == 3 * TRACES
    assert shares["logs_named"] == shares["logs_inside"] == 1.0, shares


def test_replayed_traces_and_logs_have_fresh_ids_intact_trees_and_times_near_now(imported):
    out, made, _ = imported
    received = replay(out, signals=("traces", "logs"))
    now = time.time_ns()
    spans = received.spans()
    assert len(spans) == 2 * TRACES * SPANS_PER_TRACE
    by_trace: dict[bytes, list] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    assert len(by_trace) == 2 * TRACES, "a fresh trace id for every trace on every pass"
    assert not set(by_trace) & set(made["trace_ids"])
    for trace in by_trace.values():
        ids = {s.span_id for s in trace}
        assert len(ids) == SPANS_PER_TRACE and all(any(i) for i in ids)
        assert all(s.parent_span_id in ids for s in trace if s.parent_span_id)
        assert all(abs(s.start_time_unix_nano - now) < 120 * 10**9 for s in trace)
    logs = [log for request in received.requests["logs"] for log in items("logs", request)]
    assert len(logs) == 2 * LOGS and all(abs(log.time_unix_nano - now) < 120 * 10**9 for log in logs)


def test_replayed_metric_series_keep_increasing_across_passes(imported):
    """Each series as captured (its points, their intervals), pass after
    pass: times strictly increasing and near now, cumulative values never
    decreasing, one start time. Traces and logs go on meanwhile: the
    metrics wait for their series' period between sends."""
    out, _, _ = imported
    received = replay(out, passes=3)
    now = time.time_ns()
    series: dict[tuple, list] = {}
    for request in received.requests["metrics"]:
        for metric in items("metrics", request):
            kind = metric.WhichOneof("data")
            for point in getattr(metric, kind).data_points:
                key = (metric.name, tuple((kv.key, kv.value.string_value) for kv in point.attributes))
                series.setdefault(key, []).append(point)
    eu = series[("orders", (("region", "eu"),))]
    assert len(eu) == 3 * EXPORTS
    times = [p.time_unix_nano for p in eu]
    assert all(a < b for a, b in zip(times, times[1:])), "timestamps strictly increasing"
    values = [p.as_int for p in eu]
    assert all(a <= b for a, b in zip(values, values[1:])), "a cumulative counter never decreases"
    assert values[:EXPORTS] == [5, 11, 18, 18], "the first pass as captured"
    assert len({p.start_time_unix_nano for p in eu}) == 1
    assert all(p.start_time_unix_nano <= p.time_unix_nano for points in series.values() for p in points
               if p.start_time_unix_nano), "no point before its start, the first send's neither"
    assert all(abs(t - now) < 120 * 10**9 for t in times)
    captured = [b - a for a, b in zip(times[:EXPORTS], times[1:EXPORTS])]
    for k in range(1, 3):
        sent = times[k * EXPORTS:(k + 1) * EXPORTS]
        assert [b - a for a, b in zip(sent, sent[1:])] == captured, "intervals kept"
    histogram = [p for key, points in series.items() if key[0] == "checkout.duration" for p in points]
    assert all(p.count == sum(p.bucket_counts) for p in histogram)
    counts = [p.count for p in histogram]
    assert all(a <= b for a, b in zip(counts, counts[1:]))
    assert len(received.spans()) > 3 * TRACES * SPANS_PER_TRACE, "traces kept going while metrics waited"


RATES = {"requests": 10.0, "bytes": 2.5, "latency": 20.0, "latency.sum": 30.0, "rpc": 20.0, "rpc.sum": 40.0}


def paced_capture(path: Path, points: int = 4) -> None:
    """What an SDK exporting every second sends (built with the official
    classes, length-delimited as the sink records): a cumulative int counter
    rising 10/s and a double one rising 2.5/s, a histogram whose count
    rises 20/s (buckets 5, 10, 5 per second; sum 30/s), a summary whose count
    rises 20/s (sum 40/s)."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    from telegen.varint import encode_varint

    out = b""
    start = 1_700_000_000_000_000_000
    cumulative = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    for k in range(points):
        seconds = 7 + k  # the process had been up 7 s at the first export
        when = dict(start_time_unix_nano=start, time_unix_nano=start + seconds * 10**9)
        request = ExportMetricsServiceRequest()
        rm = request.resource_metrics.add()
        rm.resource.attributes.add(key="service.name", value={"string_value": "checkout"})
        sm = rm.scope_metrics.add()
        requests = sm.metrics.add(name="requests", unit="1")
        requests.sum.aggregation_temporality, requests.sum.is_monotonic = cumulative, True
        requests.sum.data_points.add(as_int=10 * seconds, **when).attributes.add(
            key="route", value={"string_value": "/pay"})
        sent = sm.metrics.add(name="bytes", unit="By")
        sent.sum.aggregation_temporality, sent.sum.is_monotonic = cumulative, True
        sent.sum.data_points.add(as_double=2.5 * seconds, **when)
        latency = sm.metrics.add(name="latency", unit="ms")
        latency.histogram.aggregation_temporality = cumulative
        buckets = [5 * seconds, 10 * seconds, 5 * seconds]
        latency.histogram.data_points.add(count=sum(buckets), sum=30.0 * seconds, bucket_counts=buckets,
                                          explicit_bounds=[10.0, 100.0], **when)
        rpc = sm.metrics.add(name="rpc", unit="ms")
        point = rpc.summary.data_points.add(count=20 * seconds, sum=40.0 * seconds, **when)
        point.quantile_values.add(quantile=0.5, value=2.0)
        data = request.SerializeToString()
        out += encode_varint(len(data)) + data
    path.write_bytes(out)


def received_series(recorder: Recorder) -> dict[str, list]:
    """Each metric's points as received, in the order sent (one series each)."""
    series: dict[str, list] = {}
    for request in recorder.requests["metrics"]:
        for metric in items("metrics", request):
            series.setdefault(metric.name, []).extend(getattr(metric, metric.WhichOneof("data")).data_points)
    return series


def replay_rates(series: dict[str, list], per_pass: int) -> dict[str, dict[str, float]]:
    """Per growing value, its increase per second of point time: within
    sends, from each point to the same point one send later, and from the
    first point received to the last."""
    values = {"requests": lambda p: p.as_int, "bytes": lambda p: p.as_double, "latency": lambda p: p.count,
              "latency.sum": lambda p: p.sum, "rpc": lambda p: p.count, "rpc.sum": lambda p: p.sum}
    out = {}
    for name, value in values.items():
        points = series[name.split(".")[0]]
        times = [p.time_unix_nano / 1e9 for p in points]
        ys = [value(p) for p in points]

        def rate(a: int, b: int) -> float:
            return (ys[b] - ys[a]) / (times[b] - times[a])

        within = [rate(i, i + 1) for i in range(len(points) - 1) if (i + 1) % per_pass]
        across = [rate(i, i + per_pass) for i in range(len(points) - per_pass)]
        out[name] = {"within": min(within), "within_max": max(within), "across": min(across),
                     "across_max": max(across), "overall": rate(0, len(points) - 1)}
    return out


def test_replayed_series_grow_at_the_captured_rate(tmp_path):
    """Counters, a histogram and a summary captured every second: replayed
    for several passes, each value rises per second of point time as it did
    in the capture (within 10 %: integer counts are truncated), from pass to
    pass too; never falls; every point after its series' one start time,
    the first send's too. The first send is the capture as it was."""
    per_pass, passes = 4, 3
    paced_capture(tmp_path / "capture.pb", per_pass)
    out = tmp_path / "templates"
    import_captures([tmp_path / "capture.pb"], out)
    series = received_series(replay(out, passes=passes, signals=("metrics",)))
    assert {name: len(points) for name, points in series.items()} == {
        name: per_pass * passes for name in ("requests", "bytes", "latency", "rpc")}
    for name, points in series.items():
        times = [p.time_unix_nano for p in points]
        assert all(a < b for a, b in zip(times, times[1:])), f"{name}: times strictly increasing"
        starts = {p.start_time_unix_nano for p in points}
        assert len(starts) == 1, f"{name}: one start time, on every send: no reset"
        assert all(p.start_time_unix_nano <= p.time_unix_nano for p in points), f"{name}: start after a point"
    assert [p.as_int for p in series["requests"][:per_pass]] == [70, 80, 90, 100], "the first send as captured"
    for name in ("requests", "bytes"):
        ys = [p.as_int if name == "requests" else p.as_double for p in series[name]]
        assert all(a <= b for a, b in zip(ys, ys[1:])), f"{name} never decreases"
    for name in ("latency", "rpc"):
        assert all(a.count <= b.count and a.sum <= b.sum for a, b in zip(series[name], series[name][1:]))
    assert all(p.count == sum(p.bucket_counts) for p in series["latency"])
    assert all(a <= b for x, y in zip(series["latency"], series["latency"][1:])
               for a, b in zip(x.bucket_counts, y.bucket_counts)), "every bucket rises"
    for name, measured in replay_rates(series, per_pass).items():
        for kind, rate in measured.items():
            assert abs(rate / RATES[name] - 1) <= 0.10, (name, kind, rate, RATES[name])


# ---------------------------------------------------------------------------
# The Collector's file exporter
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "proto", "zstd.json", "zstd.proto"])
def test_collector_file_exports_import_alike_in_every_format(fmt, tmp_path):
    result = import_captures([FIXTURES / f"{signal}.{fmt}" for signal in SIGNALS], tmp_path)
    counts = result.normalized.counts
    assert (counts["traces"], counts["spans"], counts["series"], counts["logs"]) == (4, 20, 9, 12)
    import_captures([FIXTURES / f"{signal}.json" for signal in SIGNALS], tmp_path / "ref")
    for signal in SIGNALS:
        assert sorted(read_records(tmp_path / f"telemetry-{signal}.pb")) == \
            sorted(read_records(tmp_path / "ref" / f"telemetry-{signal}.pb")), (fmt, signal)


def test_a_whole_file_compressed_and_rotated_sets_given_as_a_glob(tmp_path):
    import zstandard
    for signal in SIGNALS:  # the exporter's nativeCompression gate: one zstd stream per file
        (tmp_path / f"export-{signal}.json.zst").write_bytes(
            zstandard.ZstdCompressor().compress((FIXTURES / f"{signal}.json").read_bytes()))
    result = import_captures([str(tmp_path / "export-*.zst")], tmp_path / "out")
    assert result.normalized.counts["spans"] == 20 and len(result.metadata["sources"]) == 3


def test_one_file_may_mix_signals(tmp_path):
    mixed = tmp_path / "mixed.proto"
    mixed.write_bytes(b"".join((FIXTURES / f"{signal}.proto").read_bytes() for signal in SIGNALS))
    signals = Counter(c.signal for c in read_capture(mixed))
    assert signals == {"traces": 1, "metrics": 1, "logs": 1}


def test_detect_signal_reads_the_wire_shape():
    for signal in SIGNALS:
        for captured in read_capture(FIXTURES / f"{signal}.proto"):
            assert detect_signal(captured.message.SerializeToString()) == signal
    assert detect_signal(b"") is None and detect_signal(b"\xff\xff\xff") is None


# ---------------------------------------------------------------------------
# Bad input: exit 2, the file and where named, nothing written
# ---------------------------------------------------------------------------

def run_import(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "telegen", "import", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("name, cut, message", [
    ("traces.proto", lambda data: data[:-7], "byte offset 0: the record declares"),
    ("logs.proto", lambda data: data[:3], "byte offset 0: truncated 4-byte big-endian length"),
    ("metrics.json", lambda data: data[:len(data) // 2], ":1: not valid JSON"),
    ("traces.zstd.proto", lambda data: data[:40] + b"\x00" * 8 + data[48:], "byte offset 4: corrupt zstd frame"),
])
def test_corrupt_or_truncated_captures_exit_2_and_write_nothing(name, cut, message, tmp_path):
    bad = tmp_path / name
    bad.write_bytes(cut((FIXTURES / name).read_bytes()))
    out = tmp_path / "out"
    result = run_import(str(FIXTURES / "logs.json"), str(bad), "--output-dir", str(out))
    assert result.returncode == 2, result.stderr
    assert str(bad) in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_a_capture_that_is_no_capture_is_named(tmp_path):
    junk = tmp_path / "notes.bin"
    junk.write_bytes(b"\x05hello")
    with pytest.raises(CaptureError, match="notes.bin: byte offset 0: not an OTLP traces, metrics or logs message"):
        import_captures([junk], tmp_path / "out")
    with pytest.raises(CaptureError, match="no such file"):
        import_captures([tmp_path / "missing.json"], tmp_path / "out")


def test_the_cli_imports_and_send_replays(tmp_path):
    out = tmp_path / "templates"
    result = run_import(str(FIXTURES / "traces.zstd.proto"), str(FIXTURES / "logs.json"), "--output-dir", str(out),
                        "--prefix", "prod")
    assert result.returncode == 0, result.stderr
    assert "traces:  4 traces, 20 spans" in result.stdout and f"Wrote {out / 'prod-traces.pb'}" in result.stdout
    inspected = subprocess.run([sys.executable, "-m", "telegen", "inspect", str(out)], capture_output=True, text=True,
                               timeout=60)
    assert "imported from 2 capture file(s)" in inspected.stdout and "4 traces, 20 spans" in inspected.stdout
    config = tmp_path / "send.yaml"
    with telegen.Sink() as sink:
        config.write_text(json.dumps({"input": {"directory": str(out), "prefix": "prod"},
                                      "otlp": {"endpoint": sink.endpoint, "insecure": True},
                                      "sending": {"multiplier": 1, "rate_limit": {"events_per_second": 0}}}))
        sent = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config)],
                              capture_output=True, text=True, timeout=120)
        stats = sink.stats()
    assert sent.returncode == 0, sent.stderr
    assert stats.traces.events == 20 and stats.logs.events == 12


# ---------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------

def test_redaction_keeps_types_and_cardinality(recorded, tmp_path):
    directory, _, _ = recorded
    plain = import_captures([directory], tmp_path / "plain")
    redacted = import_captures([directory], tmp_path / "red", redact=["service.name", "region"],
                               redact_patterns=[r"[\w.]+@[\w.]+"])

    def values(out: Path, signal: str, key: str) -> list:
        found = []
        for record in read_records(out / f"telemetry-{signal}.pb"):
            message = decode_record(signal, record)
            groups = {"traces": "resource_spans", "metrics": "resource_metrics", "logs": "resource_logs"}[signal]
            for group in getattr(message, groups):
                found += [kv.value for kv in group.resource.attributes if kv.key == key]
            if signal == "metrics":
                for metric in items("metrics", message):
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        found += [kv.value for kv in point.attributes if kv.key == key]
        return found

    before, after = values(tmp_path / "plain", "metrics", "region"), values(tmp_path / "red", "metrics", "region")
    assert len(before) == len(after) and all(v.WhichOneof("value") == "string_value" for v in after)
    assert len({v.string_value for v in before}) == len({v.string_value for v in after}) == 2
    assert not {v.string_value for v in before} & {v.string_value for v in after}
    services = {v.string_value for v in values(tmp_path / "red", "traces", "service.name")}
    assert len(services) == 1 and services.pop().startswith("redacted-")
    assert {v.string_value for v in values(tmp_path / "red", "traces", "deployment.environment")} == {"prod"}
    bodies = [items("logs", decode_record("logs", r))[0].body.string_value
              for r in read_records(tmp_path / "red" / "telemetry-logs.pb")]
    assert not any("alice@example.com" in body for body in bodies)
    assert sum("for user redacted-" in body for body in bodies) == TRACES
    assert redacted.metadata["redactions"]["replaced"]["key region"] == 3 * EXPORTS
    assert plain.metadata["redactions"]["replaced"] == {}


def exponential_capture(path: Path, cycles: int = 3) -> None:
    """A capture of one cumulative exponential histogram series over
    `cycles` collection cycles 100 ms apart (the replay paces to them), written
    length-delimited as the sink records."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    from telegen.varint import encode_varint

    out = b""
    start = 1_700_000_000_000_000_000
    for cycle in range(cycles):
        request = ExportMetricsServiceRequest()
        metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="rpc.duration", unit="ms")
        metric.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        positive = [1 + cycle, 3 + 2 * cycle, 200 * (cycle + 1)]
        negative = [cycle]
        point = metric.exponential_histogram.data_points.add(
            start_time_unix_nano=start, time_unix_nano=start + (cycle + 1) * 10**8, scale=3,
            zero_count=2 + cycle, count=2 + cycle + sum(positive) + sum(negative), sum=10.5 * (cycle + 1))
        point.attributes.add(key="rpc.method", value={"string_value": "Get"})
        point.positive.offset, point.negative.offset = -2, 4
        point.positive.bucket_counts.extend(positive)
        point.negative.bucket_counts.extend(negative)
        data = request.SerializeToString()
        out += encode_varint(len(data)) + data
    path.write_bytes(out)


def test_exponential_histogram_series_go_on_growing(tmp_path):
    """Their bucket counts are varints: import writes them padded to 10 bytes
    (still plain protobuf), so the send path grows them in place like any
    cumulative count; the count stays zero_count plus the buckets."""
    exponential_capture(tmp_path / "capture.pb")
    out = tmp_path / "templates"
    import_captures([tmp_path / "capture.pb"], out)
    record = read_records(out / "telemetry-metrics.pb")[0]
    points = items("metrics", decode_record("metrics", record))[0].exponential_histogram.data_points
    assert [list(p.positive.bucket_counts) for p in points] == [[1, 3, 200], [2, 5, 400], [3, 7, 600]]
    received = replay(out, passes=3, signals=("metrics",))
    sent = [p for request in received.requests["metrics"] for m in items("metrics", request)
            for p in m.exponential_histogram.data_points]
    assert len(sent) == 9
    counts = [p.count for p in sent]
    assert all(a <= b for a, b in zip(counts, counts[1:])) and counts[-1] > counts[2], counts
    assert all(p.count == p.zero_count + sum(p.positive.bucket_counts) + sum(p.negative.bucket_counts)
               for p in sent)
    assert [p.positive.offset for p in sent] == [-2] * 9 and {p.scale for p in sent} == {3}
    times = [p.time_unix_nano for p in sent]
    assert all(a < b for a, b in zip(times, times[1:]))
    assert len({p.start_time_unix_nano for p in sent}) == 1
    assert all(p.start_time_unix_nano < p.time_unix_nano for p in sent)
    captured = (counts[2] - counts[0]) / 0.2  # 205 per 100 ms
    assert abs((counts[-1] - counts[0]) / ((times[-1] - times[0]) / 1e9) / captured - 1) <= 0.10, "the captured rate"


def test_padded_exponential_buckets_survive_patchable_gzip(tmp_path):
    """The gzip byte classes know the 10-byte bucket counts: a patched gzip
    body decompresses to exactly the uncompressed path's bytes."""
    from test_gzip import round_trip

    exponential_capture(tmp_path / "capture.pb")
    import_captures([tmp_path / "capture.pb"], tmp_path / "templates")
    record = read_records(tmp_path / "templates" / "telemetry-metrics.pb")[0]
    for step in (0, 1, 7, 10**6):
        raw, inflated = round_trip("metrics", record, seed=step, now=1_800_000_000_000_000_000, step=step)
        assert raw == inflated
