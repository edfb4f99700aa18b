"""telegen against real backends on their default configurations (`make
peers`: Jaeger v2, Prometheus, VictoriaLogs), proved by reading back through
each backend's own query API: what is stored, not what the sender counted."""
from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from backends import Jaeger, Prometheus, VictoriaLogs, read_until

import telegen
from telegen.importing import import_captures
from telegen.templates import decode_record, read_records

FIXTURES = Path(__file__).parent / "fixtures" / "collector"
ALL_SERIES = '{__name__=~".+"}'


def send(template_dir: Path, only: str, endpoint: str, protocol: str, otlp: dict | None = None,
         **sending) -> telegen.SendReport:
    """Send one signal of the templates in `template_dir` with the sender's
    defaults (rate, concurrency) unless `sending` (or `otlp`) says otherwise."""
    config = {
        "input": {"directory": str(template_dir), **{s: False for s in ("traces", "metrics", "logs") if s != only}},
        "otlp": {"endpoint": endpoint, "protocol": protocol, "insecure": True, **(otlp or {})},
        "sending": {"duration": 0, **sending},
    }
    return telegen.Sender(config, write=lambda line: None).run()


def delivered_exactly(report: telegen.SendReport, signal: str) -> int:
    figures = report.signals[signal]
    assert figures.failed == figures.rejected == 0, (figures.failed, figures.rejected)
    assert figures.delivered == figures.sent > 0
    return figures.delivered


# ---------------------------------------------------------------------------
# Prometheus: every series distinct, every sample in order
# ---------------------------------------------------------------------------

def stored_series(prometheus: Prometheus, expected: int) -> int:
    return int(read_until(lambda: prometheus.scalar(f"count({ALL_SERIES})"), lambda n: n >= expected, timeout=15))


@pytest.mark.parametrize("processes", [1, 2])
def test_prometheus_stores_every_generated_series_at_the_default_rate_and_concurrency(template_dir, tmp_path,
                                                                                       processes):
    """One sender at its defaults (1M events/s, 50 requests in flight) for
    3 s, in one process or two (small batches: the processes send points
    of the same resources, so of the same `target_info`): Prometheus rejects nothing (no out-of-order
    or duplicate sample) and holds exactly the series the report says a
    Prometheus-style store should (`prometheus_series`), target_info
    included; no counter resets."""
    with Prometheus(tmp_path / "prometheus") as prometheus:
        report = send(template_dir, "metrics", prometheus.otlp_endpoint, "http/protobuf", duration=3, multiplier=0,
                      processes=processes, batch_size={"metrics": 20})  # many batches sharing resources
        delivered_exactly(report, "metrics")
        metrics = report.signals["metrics"]
        assert metrics.batches > 20  # many generations, not one
        assert stored_series(prometheus, metrics.prometheus_series) == metrics.prometheus_series
        instances = prometheus.scalar(f"count(count by (job, instance) ({ALL_SERIES}))")
        assert instances > 10, "every host, node, pod ... keeps its own job/instance"
        assert prometheus.scalar("count(target_info)") > 1
        assert prometheus.scalar('sum(resets({__name__=~".+_total"}[5m]))') == 0
    assert metrics.series_total < metrics.prometheus_series  # buckets, _sum, _count, target_info


def test_shards_never_collide_in_prometheus(template_dir, tmp_path):
    """--shard 0/2 and 1/2 at once, each with 2 copies per series: four
    times the template's series, all stored, none rejected."""
    with Prometheus(tmp_path / "prometheus") as prometheus:
        reports: list[telegen.SendReport] = []

        def shard(index: int) -> None:
            reports.append(send(template_dir, "metrics", prometheus.otlp_endpoint, "http/protobuf", multiplier=4,
                                metric_series_multiplier=2, shard={"index": index, "count": 2}))

        threads = [threading.Thread(target=shard, args=(index,)) for index in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(reports) == 2
        for report in reports:
            delivered_exactly(report, "metrics")
        expected = sum(r.signals["metrics"].prometheus_series for r in reports)
        assert reports[0].signals["metrics"].prometheus_series == reports[1].signals["metrics"].prometheus_series
        assert stored_series(prometheus, expected) == expected
        instances = prometheus.query(f"count by (instance) ({ALL_SERIES})")
        suffixes = Counter(sample["metric"]["instance"].rsplit("-", 1)[1] for sample in instances)
        assert sorted(suffixes) == ["0", "1", "2", "3"] and len(set(suffixes.values())) == 1, suffixes


def test_a_replayed_capture_grows_at_its_captured_rate_in_prometheus(tmp_path):
    """An SDK capture (a counter rising 10/s, points every second) imported
    and replayed for three passes: the rate Prometheus computes equals the
    captured one (within 10 %), with no reset."""
    from test_import import paced_capture
    paced_capture(tmp_path / "capture.pb", points=4)
    import_captures([tmp_path / "capture.pb"], tmp_path / "templates")
    with Prometheus(tmp_path / "prometheus") as prometheus:
        report = send(tmp_path / "templates", "metrics", prometheus.otlp_endpoint, "http/protobuf", multiplier=3)
        delivered_exactly(report, "metrics")
        end = time.time()
        [series] = read_until(lambda: prometheus.query('requests_total{route="/pay"}[5m]', at=end),
                              lambda result: len(result) == 1 and len(result[0]["values"]) == 12, timeout=15)
        samples = [(float(t), float(v)) for t, v in series["values"]]
        assert len(samples) == 12
        (t0, v0), (t1, v1) = samples[0], samples[-1]
        assert abs((v1 - v0) / (t1 - t0) / 10.0 - 1) <= 0.10
        assert all(a[1] <= b[1] for a, b in zip(samples, samples[1:])), "never falls"
        assert prometheus.scalar('resets(requests_total[5m])', at=end) == 0


# ---------------------------------------------------------------------------
# Jaeger: every span, every trace whole
# ---------------------------------------------------------------------------

def jaeger_spans(jaeger: Jaeger) -> dict[str, dict]:
    """Every trace Jaeger holds, by id, found through per-service searches."""
    traces: dict[str, dict] = {}
    for service in jaeger.services():
        for trace in jaeger.traces(service, limit=100_000):
            traces[trace["traceID"]] = trace
    return traces


@pytest.mark.parametrize("protocol,otlp", [
    ("grpc", {"grpc_client": "grpcio"}), ("http/protobuf", {}),
    # gRPC on libcurl, as the default picks it for compressed messages, and uncompressed.
    ("grpc", {"grpc_client": "curl"}), ("grpc", {"grpc_client": "auto", "compression": "zstd"})],
    ids=["grpc-grpcio", "http", "grpc-curl", "grpc-curl-zstd"])
def test_jaeger_stores_every_span_and_every_trace_whole(template_dir, templates, tmp_path, protocol, otlp):
    passes = 2
    with Jaeger(tmp_path / "jaeger") as jaeger:
        endpoint = jaeger.grpc_endpoint if protocol == "grpc" else jaeger.http_endpoint
        report = send(template_dir, "traces", endpoint, protocol, otlp, multiplier=passes)
        spans = delivered_exactly(report, "traces")
        traces = read_until(lambda: jaeger_spans(jaeger),
                            lambda found: sum(len(t["spans"]) for t in found.values()) >= spans, timeout=30)
    assert sum(len(t["spans"]) for t in traces.values()) == spans == passes * templates.counts["spans"]
    assert len(traces) == passes * templates.counts["traces"], "fresh trace ids on every pass"
    for trace in traces.values():
        ids = {span["spanID"] for span in trace["spans"]}
        parents = {ref["spanID"] for span in trace["spans"] for ref in span["references"] if ref["refType"] == "CHILD_OF"}
        assert parents <= ids, "every parent of a span is in its trace"
        assert sum(1 for span in trace["spans"] if not span["references"]) == 1, "one root"


# ---------------------------------------------------------------------------
# VictoriaLogs: every record, the severity mix
# ---------------------------------------------------------------------------

def template_severities(template_dir: Path) -> Counter:
    counts: Counter = Counter()
    for record in read_records(template_dir / "telemetry-logs.pb"):
        for rl in decode_record("logs", record).resource_logs:
            for sl in rl.scope_logs:
                counts.update(log.severity_text for log in sl.log_records)
    return counts


def test_victorialogs_stores_every_log_record_with_its_severity(template_dir, tmp_path):
    passes = 3
    with VictoriaLogs(tmp_path / "victorialogs") as logs:
        report = send(template_dir, "logs", logs.otlp_endpoint, "http/protobuf", multiplier=passes)
        records = delivered_exactly(report, "logs")
        count = read_until(lambda: int(logs.stats("* | stats count() as n")[0]["value"]) if logs.stats(
            "* | stats count() as n") else 0, lambda n: n >= records, timeout=30)
        assert count == records
        rows = logs.stats("* | stats by (severity_text) count() as n")
    stored = Counter({row.get("severity_text", ""): int(row["value"]) for row in rows})
    expected = Counter({severity: passes * n for severity, n in template_severities(template_dir).items()})
    assert stored == expected


# ---------------------------------------------------------------------------
# Imported captures, into all three
# ---------------------------------------------------------------------------

def test_an_imported_collector_capture_is_stored_whole_by_every_backend(tmp_path):
    import_captures([FIXTURES / f"{signal}.json" for signal in ("traces", "metrics", "logs")], tmp_path / "t")
    with Jaeger(tmp_path / "jaeger") as jaeger, Prometheus(tmp_path / "prometheus") as prometheus, \
            VictoriaLogs(tmp_path / "victorialogs") as logs:
        spans = delivered_exactly(send(tmp_path / "t", "traces", jaeger.grpc_endpoint, "grpc", multiplier=2), "traces")
        metrics = send(tmp_path / "t", "metrics", prometheus.otlp_endpoint, "http/protobuf", multiplier=2)
        delivered_exactly(metrics, "metrics")
        records = delivered_exactly(send(tmp_path / "t", "logs", logs.otlp_endpoint, "http/protobuf", multiplier=2),
                                    "logs")
        assert (spans, records) == (40, 24)
        traces = read_until(lambda: jaeger_spans(jaeger),
                            lambda found: sum(len(t["spans"]) for t in found.values()) >= spans, timeout=30)
        assert sum(len(t["spans"]) for t in traces.values()) == spans and len(traces) == 8
        expected = metrics.signals["metrics"].prometheus_series
        assert stored_series(prometheus, expected) == expected
        count = read_until(lambda: sum(int(r["value"]) for r in logs.stats("* | stats count() as n")),
                           lambda n: n >= records, timeout=30)
        assert count == records


def test_a_metric_interval_samples_each_series_once_per_interval(template_dir, tmp_path):
    """`metric_interval: 1s` for 3.5 s: like an SDK exporting every second,
    every series has 4 samples, 1 s apart (not as many as the rate asks)."""
    with Prometheus(tmp_path / "prometheus") as prometheus:
        report = send(template_dir, "metrics", prometheus.otlp_endpoint, "http/protobuf", duration=3.5, multiplier=0,
                      metric_interval="1s")
        delivered_exactly(report, "metrics")
        expected = report.signals["metrics"].prometheus_series
        assert stored_series(prometheus, expected) == expected
        end = time.time()
        every = prometheus.query(f"{ALL_SERIES}[5m]", at=end)
        assert len(every) == expected
        for series in every:
            # Exponential histograms are native histograms there: samples under "histograms".
            times = [float(t) for t, _ in series.get("values", series.get("histograms", []))]
            assert len(times) == 4, series["metric"]
            assert all(0.99 <= b - a <= 1.2 for a, b in zip(times, times[1:])), times


# ---------------------------------------------------------------------------
# Correlation, as the backends hold it: logs in VictoriaLogs name spans Jaeger holds
# ---------------------------------------------------------------------------

def test_logs_in_victorialogs_name_spans_jaeger_holds_with_times_inside_them(template_dir, tmp_path):
    """One run, traces to Jaeger and logs to VictoriaLogs, two passes: every
    stored log that carries a trace id names a trace Jaeger holds and a span
    of it, with the log's time inside the span (Jaeger keeps microseconds)."""
    with Jaeger(tmp_path / "jaeger") as jaeger, VictoriaLogs(tmp_path / "logs") as logs:
        config = {"input": {"directory": str(template_dir), "metrics": False},
                  "otlp": {"insecure": True,
                           "traces": {"endpoint": jaeger.grpc_endpoint, "protocol": "grpc"},
                           "logs": {"endpoint": f"{logs.otlp_endpoint}/v1/logs", "protocol": "http/protobuf"}},
                  "sending": {"duration": 0, "multiplier": 2}}
        report = telegen.Sender(config, write=lambda line: None).run()
        spans = delivered_exactly(report, "traces")
        records = delivered_exactly(report, "logs")
        traces = read_until(lambda: jaeger_spans(jaeger),
                            lambda found: sum(len(t["spans"]) for t in found.values()) >= spans, timeout=30)
        read_until(lambda: sum(int(r["value"]) for r in logs.stats("* | stats count() as n")),
                   lambda n: n >= records, timeout=30)
        stored = logs.query("trace_id:*", limit=100_000)
    by_span = {(trace_id, span["spanID"]): span for trace_id, trace in traces.items() for span in trace["spans"]}
    assert len(stored) > 0.3 * records, "by default at least 30 % of all logs are inside a span"
    for record in stored:
        span = by_span.get((record["trace_id"], record["span_id"]))
        assert span is not None, record
        micros = _micros(record["_time"])
        assert span["startTime"] - 1_000 <= micros <= span["startTime"] + span["duration"] + 1_000, (record, span)


def _micros(rfc3339: str) -> int:
    """VictoriaLogs' _time (RFC 3339, nanoseconds) in microseconds since the epoch."""
    from datetime import datetime, timezone

    whole, _, rest = rfc3339.rstrip("Z").partition(".")
    seconds = int(datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    return seconds * 1_000_000 + int((rest + "000000000")[:9]) // 1_000
