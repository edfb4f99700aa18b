"""Captured export requests -> templates by the contract of docs/templates.md,
so that nothing downstream can tell them from generated ones.

- traces: every span regrouped by trace id (a trace split across requests
  is rejoined), one trace per record, under its own resources and scopes;
  times made relative: the trace's earliest start at TIME_BASE_NS, every
  other time (ends, events) keeping its offset; links kept;
- logs: one log record per record, its time at the base (a log in a
  captured trace: as far after the base as after its trace's start) and
  its observed time keeping its offset; trace context kept;
- metrics: one metric (per resource and scope) per record with all its
  series; a series' points kept, sorted by time, contiguous; start times
  fixed per series (cumulative: the base), point times keeping their offsets
  from the capture's first point (one interval after the base);
- zero ids and zero times become non-zero placeholders (counted).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE

from ..templates import CHUNK_SPANS, TIME_BASE_NS, padded_exponential_request

METRIC_INTERVAL_NS = 60_000_000_000  # a captured series' first point sits this long after its start


@dataclass
class Normalized:
    """Records per signal, and what was done to get them."""

    traces: list[bytes] = field(default_factory=list)
    metrics: list[bytes] = field(default_factory=list)
    logs: list[bytes] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    placeholders: dict[str, int] = field(default_factory=dict)  # zero ids/times replaced, by kind
    time_range_ns: tuple[int, int] | None = None  # the capture's earliest and latest time


class _Keyed:
    """Groups keyed by a serialized resource or scope (with its schema URL),
    in order of first appearance."""

    def __init__(self) -> None:
        self.groups: dict[bytes, tuple[Message, str, dict]] = {}

    def get(self, message: Message, schema_url: str) -> dict:
        key = message.SerializeToString(deterministic=True) + b"\x00" + schema_url.encode()
        if key not in self.groups:
            self.groups[key] = (message, schema_url, {})
        return self.groups[key][2]


class Normalizer:
    """Feed captured requests with `add`, then take `result()`."""

    def __init__(self) -> None:
        self.traces: dict[bytes, _Keyed] = {}  # trace id -> resource -> scope -> spans
        self.logs: list[ExportLogsServiceRequest] = []
        self.metrics: dict[bytes, tuple] = {}  # (resource, scope, metric identity) -> pieces
        self.placeholders: dict[str, int] = {}
        self.times: list[int] = []
        self.requests = 0
        self.spans = self.series = self.points = 0  # as written: duplicates dropped
        self.duplicates = 0  # spans, log records and metric points seen twice, kept once
        self.logs_in_traces = 0  # log records whose trace is in the capture too
        self.origins: dict[bytes, int] = {}  # trace id -> its earliest span start, as captured

    # -- input ---------------------------------------------------------------

    def add(self, signal: str, message: Message) -> None:
        self.requests += 1
        getattr(self, f"_add_{signal}")(message)

    def _count(self, kind: str) -> None:
        self.placeholders[kind] = self.placeholders.get(kind, 0) + 1

    def _placeholder_id(self, width: int, *seed: object) -> bytes:
        digest = hashlib.blake2b(repr(seed).encode(), digest_size=width).digest()
        return digest if any(digest) else b"\x01" * width

    def _add_traces(self, message: ExportTraceServiceRequest) -> None:
        for rs in message.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    trace_id = bytes(span.trace_id)
                    if not any(trace_id):
                        # A span without a trace: a trace of its own, stable for the same input.
                        trace_id = self._placeholder_id(16, "trace", self.requests, bytes(span.span_id),
                                                        span.name, span.start_time_unix_nano)
                        self._count("zero trace id")
                    keyed = self.traces.setdefault(trace_id, _Keyed())
                    scopes = keyed.get(rs.resource, rs.schema_url)
                    scope_key = ss.scope.SerializeToString(deterministic=True) + b"\x00" + ss.schema_url.encode()
                    entry = scopes.setdefault(scope_key, (ss.scope, ss.schema_url, []))
                    entry[2].append(span)

    def _add_logs(self, message: ExportLogsServiceRequest) -> None:
        self.logs.append(message)

    def _add_metrics(self, message: ExportMetricsServiceRequest) -> None:
        for rm in message.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    data = getattr(metric, kind)
                    identity = (rm.resource.SerializeToString(deterministic=True), rm.schema_url,
                                sm.scope.SerializeToString(deterministic=True), sm.schema_url, metric.name,
                                kind, getattr(data, "aggregation_temporality", 0), metric.unit)
                    key = repr(identity).encode()
                    if key not in self.metrics:
                        self.metrics[key] = (rm.resource, rm.schema_url, sm.scope, sm.schema_url, metric, kind, [])
                    points = self.metrics[key][6]
                    points.extend(data.data_points)

    # -- output --------------------------------------------------------------

    def result(self) -> Normalized:
        out = Normalized()
        out.traces = [self._trace_record(trace_id, keyed) for trace_id, keyed in self.traces.items()]
        out.logs = self._log_records()
        out.metrics = self._metric_records()
        out.counts = {"traces": len(out.traces), "spans": self.spans, "metrics": len(out.metrics),
                      "series": self.series, "data_points": self.points, "logs": len(out.logs),
                      "requests": self.requests, "duplicates_dropped": self.duplicates,
                      "logs_in_captured_traces": self.logs_in_traces}
        out.placeholders = dict(self.placeholders)
        if self.times:
            out.time_range_ns = (min(self.times), max(self.times))
        return out

    def _trace_record(self, trace_id: bytes, keyed: _Keyed) -> bytes:
        spans = [span for _, _, scopes in keyed.groups.values() for _, _, group in scopes.values() for span in group]
        starts = [s.start_time_unix_nano for s in spans if s.start_time_unix_nano]
        self.times += starts + [s.end_time_unix_nano for s in spans if s.end_time_unix_nano]
        origin = min(starts) if starts else None
        if origin is not None:
            self.origins[trace_id] = origin
        seen: set[bytes] = set()
        pieces: list[bytes] = []
        request = ExportTraceServiceRequest()
        in_request = 0
        for resource, resource_url, scopes in keyed.groups.values():
            for scope, scope_url, group in scopes.values():
                rs = ss = None
                for span in group:
                    wire = span.SerializeToString(deterministic=True)
                    if wire in seen:
                        self.duplicates += 1  # the same span twice (an exporter's retry): kept once
                        continue
                    seen.add(wire)
                    if rs is None or in_request >= CHUNK_SPANS:
                        if in_request >= CHUNK_SPANS:
                            pieces.append(request.SerializeToString())
                            request, in_request = ExportTraceServiceRequest(), 0
                        rs = request.resource_spans.add(schema_url=resource_url)
                        rs.resource.CopyFrom(resource)
                        ss = rs.scope_spans.add(schema_url=scope_url)
                        ss.scope.CopyFrom(scope)
                    new = ss.spans.add()
                    new.CopyFrom(span)
                    new.trace_id = trace_id
                    self._relative_span(new, origin)
                    in_request += 1
                    self.spans += 1
        pieces.append(request.SerializeToString())
        return b"".join(pieces)

    def _relative_span(self, span: Message, origin: int | None) -> None:
        if not any(span.span_id):
            span.span_id = self._placeholder_id(8, "span", bytes(span.trace_id), span.name, span.start_time_unix_nano)
            self._count("zero span id")
        if origin is None or not span.start_time_unix_nano:
            start = TIME_BASE_NS
            if not span.start_time_unix_nano:
                self._count("zero span start time")
        else:
            start = TIME_BASE_NS + (span.start_time_unix_nano - origin)
        shift = start - span.start_time_unix_nano
        end = span.end_time_unix_nano + shift if span.end_time_unix_nano else start
        if not span.end_time_unix_nano:
            self._count("zero span end time")
        span.start_time_unix_nano, span.end_time_unix_nano = start, max(end, start)
        for event in span.events:
            event.time_unix_nano = event.time_unix_nano + shift if event.time_unix_nano else start

    def _log_records(self) -> list[bytes]:
        out = []
        seen: set[bytes] = set()
        for message in self.logs:
            for rl in message.resource_logs:
                for sl in rl.scope_logs:
                    for log in sl.log_records:
                        identity = b"\x00".join(m.SerializeToString(deterministic=True)
                                                 for m in (rl.resource, sl.scope, log))
                        if identity in seen:
                            self.duplicates += 1  # the same record twice (a re-export): kept once
                            continue
                        seen.add(identity)
                        request = ExportLogsServiceRequest()
                        new_rl = request.resource_logs.add(schema_url=rl.schema_url)
                        new_rl.resource.CopyFrom(rl.resource)
                        new_sl = new_rl.scope_logs.add(schema_url=sl.schema_url)
                        new_sl.scope.CopyFrom(sl.scope)
                        record = new_sl.log_records.add()
                        record.CopyFrom(log)
                        if log.trace_id and bytes(log.trace_id) in self.traces:
                            self.logs_in_traces += 1
                        self._relative_log(record)
                        out.append(request.SerializeToString())
        return out

    def _relative_log(self, log: Message) -> None:
        time, observed = log.time_unix_nano, log.observed_time_unix_nano
        self.times += [t for t in (time, observed) if t]
        if not time and not observed:
            log.time_unix_nano = log.observed_time_unix_nano = TIME_BASE_NS
            self._count("zero log time")
            return
        if not time:  # OTLP: the observed time stands in for a missing event time
            self._count("zero log time")
            time = observed
        # A log written inside a captured trace keeps its offset from the
        # trace's start, as the trace's spans do: it stays inside its span,
        # and a replay shifts both alike (docs/design.md, "Correlation").
        origin = self.origins.get(bytes(log.trace_id)) if log.trace_id else None
        base = TIME_BASE_NS if origin is None else max(TIME_BASE_NS + (time - origin), 1)
        log.time_unix_nano = base
        log.observed_time_unix_nano = base + max((observed or time) - time, 0)
        if log.trace_id and not any(log.trace_id):
            log.trace_id = b""
        if log.span_id and not any(log.span_id):
            log.span_id = b""

    def _metric_records(self) -> list[bytes]:
        points_all = [p.time_unix_nano for entry in self.metrics.values() for p in entry[6] if p.time_unix_nano]
        self.times += points_all
        origin = min(points_all) if points_all else 0
        out = []
        for resource, resource_url, scope, scope_url, metric, kind, points in self.metrics.values():
            request = ExportMetricsServiceRequest()
            rm = request.resource_metrics.add(schema_url=resource_url)
            rm.resource.CopyFrom(resource)
            sm = rm.scope_metrics.add(schema_url=scope_url)
            sm.scope.CopyFrom(scope)
            new = sm.metrics.add(name=metric.name, description=metric.description, unit=metric.unit)
            new.metadata.extend(metric.metadata)
            data = getattr(new, kind)
            source = getattr(metric, kind)
            for name in ("aggregation_temporality", "is_monotonic"):
                if hasattr(source, name):
                    setattr(data, name, getattr(source, name))
            temporality = getattr(source, "aggregation_temporality", 0)
            cumulative = temporality == AGGREGATION_TEMPORALITY_CUMULATIVE or kind == "summary"
            for series in _series(points):
                self._relative_series(data.data_points, series, origin, cumulative)
            if kind == "exponential_histogram":
                out.append(padded_exponential_request(request))
            else:
                out.append(request.SerializeToString())
        return out

    def _relative_series(self, target, series: list[Message], origin: int, cumulative: bool) -> None:
        """A series' points, sorted and deduplicated by time, made relative:
        the capture's first point one interval after the base."""
        by_time: dict[int, Message] = {}
        for point in series:
            if point.time_unix_nano in by_time:
                self.duplicates += 1
            by_time.setdefault(point.time_unix_nano, point)
        ordered = [by_time[t] for t in sorted(by_time)]
        self.series += 1
        self.points += len(ordered)
        first_start = min((p.start_time_unix_nano for p in ordered if p.start_time_unix_nano), default=0)
        for point in ordered:
            new = target.add()
            new.CopyFrom(point)
            if point.time_unix_nano:
                new.time_unix_nano = TIME_BASE_NS + METRIC_INTERVAL_NS + (point.time_unix_nano - origin)
            else:
                new.time_unix_nano = TIME_BASE_NS + METRIC_INTERVAL_NS
                self._count("zero metric point time")
            if cumulative:
                new.start_time_unix_nano = TIME_BASE_NS  # one start for the whole series
                if not first_start:
                    self._count("zero cumulative start time")
            elif point.start_time_unix_nano:
                # A delta window keeps its length.
                new.start_time_unix_nano = new.time_unix_nano - (point.time_unix_nano - point.start_time_unix_nano)
            for exemplar in getattr(new, "exemplars", ()):
                if exemplar.time_unix_nano:
                    exemplar.time_unix_nano = new.time_unix_nano


def _series_key(point: Message) -> bytes:
    return b"".join(sorted(kv.SerializeToString(deterministic=True) for kv in point.attributes))


def _series(points: Iterable[Message]) -> list[list[Message]]:
    """Points grouped by their attribute set (a series), in order of first appearance."""
    groups: dict[bytes, list[Message]] = {}
    for point in points:
        groups.setdefault(_series_key(point), []).append(point)
    return list(groups.values())
