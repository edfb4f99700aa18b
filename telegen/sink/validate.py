"""What the sink counts and checks in one request, whatever carried it
(gRPC or HTTP): events by a compiled wire walk, problems by a full decode."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from .. import _fastpath

_REQUESTS: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


def _decode(signal: str, data: bytes) -> Message:
    message = _REQUESTS[signal]()
    message.ParseFromString(data)
    return message


def count_events(signal: str, data: bytes) -> int:
    """Number of events in one serialized Export{Trace,Metrics,Logs}ServiceRequest.

    An event is one span, one log record or one metric data point (of any kind:
    gauge, sum, histogram, exponential histogram, summary). The compiled wire
    walk counts without decoding (gigabytes per second); malformed bytes raise
    ValueError naming the byte offset.
    """
    return _fastpath.count_events(signal, data)


def _id_problem(name: str, value: bytes, width: int, required: bool) -> str | None:
    if not value:
        return f"{name} is missing" if required else None
    if len(value) != width:
        return f"{name} is {len(value)} bytes, expected {width}"
    if not any(value):
        return f"{name} is all zeros"
    return None


def _span_problem(span: Span) -> str | None:
    problem = (_id_problem("trace_id", span.trace_id, 16, True)
               or _id_problem("span_id", span.span_id, 8, True)
               or _id_problem("parent_span_id", span.parent_span_id, 8, False))
    if problem:
        return problem
    if not span.start_time_unix_nano or not span.end_time_unix_nano:
        return "start_time_unix_nano or end_time_unix_nano is zero"
    if span.start_time_unix_nano > span.end_time_unix_nano:
        return "start_time_unix_nano is after end_time_unix_nano"
    return None


def _log_problem(record: LogRecord) -> str | None:
    if not record.time_unix_nano and not record.observed_time_unix_nano:
        return "time_unix_nano and observed_time_unix_nano are both zero"
    return (_id_problem("trace_id", record.trace_id, 16, False)
            or _id_problem("span_id", record.span_id, 8, False))


def _trace_items(message) -> Iterator[tuple[str, Any]]:
    for r, rs in enumerate(message.resource_spans):
        for s, ss in enumerate(rs.scope_spans):
            for i, span in enumerate(ss.spans):
                yield f"resource_spans[{r}].scope_spans[{s}].spans[{i}]", span


def _log_items(message) -> Iterator[tuple[str, Any]]:
    for r, rl in enumerate(message.resource_logs):
        for s, sl in enumerate(rl.scope_logs):
            for i, record in enumerate(sl.log_records):
                yield f"resource_logs[{r}].scope_logs[{s}].log_records[{i}]", record


def _metric_items(message) -> Iterator[tuple[str, Any]]:
    for r, rm in enumerate(message.resource_metrics):
        for s, sm in enumerate(rm.scope_metrics):
            for m, metric in enumerate(sm.metrics):
                kind = metric.WhichOneof("data")
                if kind:
                    for i, point in enumerate(getattr(metric, kind).data_points):
                        yield (f"resource_metrics[{r}].scope_metrics[{s}].metrics[{m}]"
                               f" ({metric.name!r}).{kind}.data_points[{i}]"), point


def _point_problem(point: Message) -> str | None:
    # Every data point kind (number, histogram, exponential histogram, summary)
    # has time_unix_nano.
    return None if point.time_unix_nano else "time_unix_nano is zero"


# Per signal: (every event of a decoded request with its path, the event's check).
_CHECKS: dict[str, tuple[Callable[[Any], Iterator[tuple[str, Any]]], Callable[[Any], str | None]]] = {
    "traces": (_trace_items, _span_problem),
    "metrics": (_metric_items, _point_problem),
    "logs": (_log_items, _log_problem),
}


def _unparseable(signal: str, exc: DecodeError) -> str:
    return f"request does not parse as {_REQUESTS[signal].__name__}: {exc}"


def find_problem(signal: str, data: bytes) -> str | None:
    """The first problem in one serialized request, as `path: what`, or None.

    Checks every span (16-byte trace id and 8-byte span id, both non-zero; parent
    id absent or 8 non-zero bytes; non-zero start <= end), every log record (a
    time or an observed time; ids absent or well-formed) and every metric data
    point (a time). A request that does not parse is a problem too.
    """
    try:
        message = _decode(signal, data)
    except DecodeError as exc:
        return _unparseable(signal, exc)
    items, check = _CHECKS[signal]
    for path, item in items(message):
        problem = check(item)
        if problem:
            return f"{path}: {problem}"
    return None
