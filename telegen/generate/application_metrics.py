"""RED metrics of the generated services, computed from the generated spans.

An instrumented service records a duration histogram for every request it
serves or makes; here those histograms are what the generated traces imply:
per service instance (the traces' own Resource, so the metric resource has
the same service.name, service.namespace and service.instance.id), per
endpoint and status, a cumulative histogram of exactly the indexed spans'
durations (count: how many spans, sum: their total duration), with exemplars
naming some of those spans by trace and span id, whose value is the span's
duration and lies in the bucket it is counted in.

One record per metric, like the host and k8s metrics: one ResourceMetrics
per service instance. Exponential histograms are written in the padded
layout `telegen import` uses (telegen.templates.padded_exponential_request):
every bucket count a varint of exactly 10 bytes, so the send path can change
them in place.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    Exemplar,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
)

from ..templates import padded_exponential_request
from .base import METRIC_INTERVAL_NS, TIME_BASE_NS, SignalTemplates
from .config import GeneratorConfig
from .correlation import CLIENT, SERVER, SpanIndex
from .otlp import attributes, scope
from .semconv import SemConv, semconv
from .topology import SCOPES

START_NS = TIME_BASE_NS
POINT_NS = TIME_BASE_NS + METRIC_INTERVAL_NS

# Semantic-convention advice: seconds for the stable HTTP metrics, and the
# SDKs' default boundaries for the millisecond ones (legacy HTTP, RPC).
SECONDS_BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
MILLISECONDS_BOUNDS: tuple[float, ...] = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0,
                                          2500.0, 5000.0, 7500.0, 10000.0)
# An SDK's default exponential aggregation keeps at most this many buckets,
# lowering the scale until the values fit.
MAX_EXPONENTIAL_BUCKETS = 160
MIN_SCALE = -10


@dataclass(frozen=True)
class LatencyMetric:
    """One duration histogram: which spans it counts, and how it is written."""

    name: str
    unit: str
    description: str
    kind: int  # the spans' SpanKind
    protocol: str  # "http" | "grpc"
    scope: str  # category key into topology.SCOPES
    per_ns: float  # unit per nanosecond
    bounds: tuple[float, ...]
    exponential_when_both: bool  # histograms "both": exponential, else explicit


def latency_metrics(sem: SemConv) -> tuple[LatencyMetric, ...]:
    if sem.generation == "stable":
        http_server = LatencyMetric("http.server.request.duration", "s", "Duration of HTTP server requests.",
                                    SERVER, "http", "http_server", 1e-9, SECONDS_BOUNDS, False)
        http_client = LatencyMetric("http.client.request.duration", "s", "Duration of HTTP client requests.",
                                    CLIENT, "http", "http_client", 1e-9, SECONDS_BOUNDS, True)
    else:
        http_server = LatencyMetric("http.server.duration", "ms", "Measures the duration of inbound HTTP requests.",
                                    SERVER, "http", "http_server", 1e-6, MILLISECONDS_BOUNDS, False)
        http_client = LatencyMetric("http.client.duration", "ms", "Measures the duration of outbound HTTP requests.",
                                    CLIENT, "http", "http_client", 1e-6, MILLISECONDS_BOUNDS, True)
    return (
        http_server,
        http_client,
        LatencyMetric("rpc.server.duration", "ms", "Measures the duration of inbound RPC.",
                      SERVER, "grpc", "grpc", 1e-6, MILLISECONDS_BOUNDS, True),
        LatencyMetric("rpc.client.duration", "ms", "Measures the duration of outbound RPC.",
                      CLIENT, "grpc", "grpc", 1e-6, MILLISECONDS_BOUNDS, True),
    )


def _grpc_code(http_status: int) -> int:
    # As the traces write rpc.grpc.status_code (generate/traces.py).
    return {500: 13, 502: 14, 503: 14, 504: 4}.get(http_status, 0 if http_status < 400 else 2)


def _point_attributes(metric: LatencyMetric, sem: SemConv, spans: SpanIndex) -> Callable[[int], list[KeyValue]]:
    """The attributes of the series a span is counted in, as its own span
    attributes say (so a series is a service instance's endpoint and status)."""
    def http_server(row: int) -> list[KeyValue]:
        ep = spans.endpoints[spans.endpoint[row]]
        status, edge = int(spans.status[row]), bool(spans.edge[row])
        pairs: list[tuple[str, object]] = [
            (sem.http_method, ep.method), ("http.route", ep.route), (sem.http_status_code, status),
            (sem.url_scheme, "https" if edge else "http"), (sem.protocol_version, "2" if edge else "1.1"),
        ]
        if status >= 500 and sem.generation == "stable":
            pairs.append(("error.type", str(status)))
        return attributes(pairs)

    def http_client(row: int) -> list[KeyValue]:
        ep = spans.endpoints[spans.endpoint[row]]
        status = int(spans.status[row])
        pairs: list[tuple[str, object]] = [
            (sem.http_method, ep.method), (sem.peer_host, spans.services[ep.service].name), (sem.peer_port, 8080),
            (sem.http_status_code, status), (sem.url_scheme, "http"), (sem.protocol_version, "1.1"),
        ]
        if status >= 500 and sem.generation == "stable":
            pairs.append(("error.type", str(status)))
        return attributes(pairs)

    def rpc(row: int) -> list[KeyValue]:
        ep = spans.endpoints[spans.endpoint[row]]
        pairs: list[tuple[str, object]] = [
            ("rpc.system", "grpc"), ("rpc.service", ep.route), ("rpc.method", ep.method),
            ("rpc.grpc.status_code", _grpc_code(int(spans.status[row]))),
        ]
        if metric.kind == CLIENT:
            pairs += [(sem.peer_host, spans.services[ep.service].name), (sem.peer_port, 50051)]
        return attributes(pairs)

    if metric.protocol == "grpc":
        return rpc
    return http_server if metric.kind == SERVER else http_client


# --- buckets ----------------------------------------------------------------------

def explicit_buckets(values: np.ndarray, bounds: tuple[float, ...]) -> np.ndarray:
    """Bucket of each value: i holds (bounds[i-1], bounds[i]], the upper bound
    included, as OTLP defines explicit buckets."""
    return np.searchsorted(np.asarray(bounds), values, side="left")


def exponential_index(values: np.ndarray, scale: int) -> np.ndarray:
    """Bucket index of each (positive) value: i holds (base**i, base**(i+1)],
    base = 2**(2**-scale). The logarithm is corrected by one where float
    rounding put a value next to a boundary into the neighbouring bucket."""
    base = 2.0 ** (2.0 ** -scale)
    index = np.ceil(np.log2(values) * 2.0 ** scale).astype(np.int64) - 1
    index -= values <= np.power(base, index.astype(float))
    index += values > np.power(base, (index + 1).astype(float))
    return index


def exponential_scale(values: np.ndarray, finest: int) -> tuple[int, np.ndarray]:
    """The finest scale (at most `finest`) at which the values fit into
    MAX_EXPONENTIAL_BUCKETS buckets, and their indexes at it."""
    scale = finest
    while True:
        index = exponential_index(values, scale)
        if scale <= MIN_SCALE or index.max() - index.min() < MAX_EXPONENTIAL_BUCKETS:
            return scale, index
        scale -= 1


# --- points -------------------------------------------------------------------------

class _Exemplars:
    """Up to `limit` exemplars per point: one per non-empty bucket, buckets
    spread evenly from the fastest to the slowest, each naming one span
    counted in it (drawn at random) with that span's duration."""

    def __init__(self, spans: SpanIndex, limit: int, rng: np.random.Generator) -> None:
        self.spans = spans
        self.limit = limit
        self.rng = rng
        self.made = 0

    def pick(self, rows: np.ndarray, values: np.ndarray, buckets: np.ndarray) -> list[Exemplar]:
        if self.limit == 0:
            return []
        filled = np.unique(buckets)
        if len(filled) > self.limit:
            filled = filled[np.unique(np.linspace(0, len(filled) - 1, self.limit).round().astype(int))]
        exemplars = []
        for bucket in filled.tolist():
            members = np.flatnonzero(buckets == bucket)
            k = int(members[int(self.rng.integers(len(members)))])
            row = int(rows[k])
            exemplars.append(Exemplar(
                # When the measurement was taken: as the span ended (never
                # after the point's own time).
                time_unix_nano=min(int(self.spans.end[row]), POINT_NS),
                as_double=float(values[k]),
                span_id=self.spans.span_id(row),
                trace_id=self.spans.trace_id(row),
            ))
        self.made += len(exemplars)
        return exemplars


def explicit_point(attrs: list[KeyValue], rows: np.ndarray, values: np.ndarray, bounds: tuple[float, ...],
                   exemplars: _Exemplars) -> HistogramDataPoint:
    buckets = explicit_buckets(values, bounds)
    return HistogramDataPoint(
        attributes=attrs, start_time_unix_nano=START_NS, time_unix_nano=POINT_NS,
        count=len(values), sum=float(values.sum()),
        bucket_counts=np.bincount(buckets, minlength=len(bounds) + 1).tolist(), explicit_bounds=bounds,
        exemplars=exemplars.pick(rows, values, buckets), min=float(values.min()), max=float(values.max()),
    )


def exponential_point(attrs: list[KeyValue], rows: np.ndarray, values: np.ndarray, finest_scale: int,
                      exemplars: _Exemplars) -> ExponentialHistogramDataPoint:
    scale, index = exponential_scale(values, finest_scale)
    offset = int(index.min())
    point = ExponentialHistogramDataPoint(
        attributes=attrs, start_time_unix_nano=START_NS, time_unix_nano=POINT_NS,
        count=len(values), sum=float(values.sum()), scale=scale,
        # Durations are never zero: zero_count stays 0.
        exemplars=exemplars.pick(rows, values, index), min=float(values.min()), max=float(values.max()),
    )
    point.positive.offset = offset
    point.positive.bucket_counts.extend(np.bincount(index - offset).tolist())
    return point


# --- records ------------------------------------------------------------------------

def metric_record(metric: LatencyMetric, exponential: bool, spans: SpanIndex, sem: SemConv, finest_scale: int,
                  exemplars: _Exemplars) -> tuple[bytes, int]:
    """One metric's record (every service instance that has such spans) and
    its number of points; b"" when no span qualifies."""
    rows = spans.rows(kinds=(metric.kind,), protocol=metric.protocol)
    if not len(rows):
        return b"", 0
    point_attributes = _point_attributes(metric, sem, spans)
    values = (spans.end[rows] - spans.start[rows]).astype(np.float64) * metric.per_ns
    # A series: one service instance's spans of one endpoint, status and
    # (server) edge-ness, as the point attributes tell them apart: an HTTP
    # client names only the method and the service called, not the route.
    if metric.protocol == "http" and metric.kind == CLIENT:
        first: dict[tuple[int, str], int] = {}
        series_endpoint = np.array([first.setdefault((ep.service, ep.method), k)
                                    for k, ep in enumerate(spans.endpoints)], dtype=np.int64)
    else:
        series_endpoint = np.arange(len(spans.endpoints), dtype=np.int64)
    keys = np.stack([spans.service[rows], spans.instance[rows], series_endpoint[spans.endpoint[rows]],
                     spans.status[rows], spans.edge[rows]], axis=1).astype(np.int64)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    splits = np.flatnonzero(np.diff(inverse[order])) + 1
    groups = np.split(order, splits)

    requests: list[ExportMetricsServiceRequest] = []
    containers: dict[tuple[int, int], object] = {}
    for key, members in zip(unique.tolist(), groups):
        service, instance = key[0], key[1]
        container = containers.get((service, instance))
        if container is None:
            request = ExportMetricsServiceRequest()
            rm = request.resource_metrics.add()
            rm.resource.CopyFrom(spans.services[service].resources[instance])
            sm = rm.scope_metrics.add()
            sm.scope.CopyFrom(scope(*SCOPES[(spans.services[service].language, metric.scope)]))
            m = sm.metrics.add(name=metric.name, description=metric.description, unit=metric.unit)
            if exponential:
                m.exponential_histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
                container = m.exponential_histogram.data_points
            else:
                m.histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
                container = m.histogram.data_points
            containers[(service, instance)] = container
            requests.append(request)
        member_rows, member_values = rows[members], values[members]
        attrs = point_attributes(int(member_rows[0]))
        if exponential:
            point = exponential_point(attrs, member_rows, member_values, finest_scale, exemplars)
        else:
            point = explicit_point(attrs, member_rows, member_values, metric.bounds, exemplars)
        container.append(point)  # type: ignore[attr-defined]
    # Concatenated requests are one request (protobuf merges repeated fields);
    # exponential ones each in the padded layout.
    encode = padded_exponential_request if exponential else ExportMetricsServiceRequest.SerializeToString
    return b"".join(encode(request) for request in requests), len(groups)


def generate_application_metrics(config: GeneratorConfig, spans: SpanIndex,
                                 rng: np.random.Generator) -> SignalTemplates:
    """The RED duration metrics of `spans` (the traces' index), as configured
    by metrics.application; none when metrics or traces are off.

    counts: application_metrics (records), application_series (points),
    exemplars."""
    settings = config.metrics.application
    templates = SignalTemplates(counts={"application_metrics": 0, "application_series": 0, "exemplars": 0})
    if not settings.enabled or config.metrics.metric_count == 0 or not len(spans):
        return templates
    sem = semconv(config.semantic_conventions)
    exemplars = _Exemplars(spans, settings.exemplars, rng)
    for metric in latency_metrics(sem):
        exponential = settings.histograms == "exponential" or (
            settings.histograms == "both" and metric.exponential_when_both)
        record, points = metric_record(metric, exponential, spans, sem, settings.exponential_scale, exemplars)
        if record:
            templates.records.append(record)
            templates.counts["application_series"] += points
    templates.counts["application_metrics"] = len(templates.records)
    templates.counts["exemplars"] = exemplars.made
    return templates


def exponential_bounds(scale: int, index: int) -> tuple[float, float]:
    """The (lower, upper] a bucket index covers at `scale` (for readers and tests)."""
    base = 2.0 ** (2.0 ** -scale)
    return base ** index, base ** (index + 1)

