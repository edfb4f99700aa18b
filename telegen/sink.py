"""A local OTLP/gRPC receiver that counts, and optionally validates, what it gets.

`Sink` serves the three OTLP collector services on one port. Handlers are
registered with no (de)serializers, so each request arrives as the raw bytes
grpcio received (already gunzipped when the client compressed them) and the
sink decides how much decoding to pay for: counting only by default, a full
decode and check with `validate=True`.

Every request lands in exactly one bucket of its signal's `SignalStats`:
`requests` (answered OK), `invalid_requests` (INVALID_ARGUMENT) or
`refused_requests` (an injected fault answered it with an error). Likewise every
event of a decoded request is counted once: `events` (kept), `rejected_events`
(reported back as rejected through `partial_success`) or `invalid_events`.

    >>> with Sink() as sink:
    ...     send_something_to(sink.endpoint)
    ...     assert sink.stats().traces.events == 42
"""
from __future__ import annotations

import errno
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import asdict, dataclass, fields
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from . import _fastpath
from ._memory import reuse_large_buffers
from .errors import TelegenError

SIGNALS: tuple[str, ...] = ("traces", "metrics", "logs")

SERVICES: dict[str, str] = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}

_REQUESTS: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}

# The partial_success field that carries the rejected count, per signal.
_REJECTED_FIELD: dict[str, str] = {
    "traces": "rejected_spans",
    "metrics": "rejected_data_points",
    "logs": "rejected_log_records",
}


class SinkError(TelegenError):
    """The sink cannot start as asked (bad listen address, port in use, bad fault)."""


# ----------------------------------------------------------------------------
# Counting and validation


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


# ----------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class SignalStats:
    """Counts for one signal; see the module docstring for the buckets."""

    requests: int = 0
    events: int = 0
    bytes: int = 0  # serialized (uncompressed) size of the requests answered OK
    invalid_requests: int = 0
    invalid_events: int = 0
    rejected_events: int = 0
    refused_requests: int = 0


@dataclass(frozen=True)
class SinkStats:
    """A snapshot of a sink's counters, `elapsed` seconds after it started."""

    elapsed: float
    traces: SignalStats
    metrics: SignalStats
    logs: SignalStats

    def signals(self) -> dict[str, SignalStats]:
        return {name: getattr(self, name) for name in SIGNALS}

    def to_dict(self) -> dict:
        """Plain data for JSON: per-signal counts plus events/s over the run."""
        out: dict = {"elapsed_s": round(self.elapsed, 3)}
        for name, counts in self.signals().items():
            rate = counts.events / self.elapsed if self.elapsed > 0 else 0.0
            out[name] = {**asdict(counts), "events_per_second": round(rate, 1)}
        return out


class _Counters:
    """Mutable per-signal counters behind one lock (handlers run on a pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {name: dict.fromkeys((f.name for f in fields(SignalStats)), 0) for name in SIGNALS}

    def add(self, signal: str, **deltas: int) -> None:
        with self._lock:
            counts = self._counts[signal]
            for key, value in deltas.items():
                counts[key] += value

    def snapshot(self, elapsed: float) -> SinkStats:
        with self._lock:
            return SinkStats(elapsed=elapsed, **{name: SignalStats(**counts) for name, counts in self._counts.items()})


# ----------------------------------------------------------------------------
# Faults


@dataclass(frozen=True)
class SinkFaults:
    """Misbehaviour on demand, to exercise a client's retry and accounting paths.

    - `unavailable_first_s`: answer UNAVAILABLE for this many seconds after start.
    - `unavailable_every`: answer every Nth request (counted over all signals)
      with UNAVAILABLE.
    - `error_code`: answer every request with this `grpc.StatusCode` name.
    - `reject_fraction`: accept requests but report this fraction of their events
      (rounded down) as rejected through `partial_success`.
    - `delay_ms`: sleep this long in every request before answering.
    """

    unavailable_first_s: float = 0
    unavailable_every: int = 0
    error_code: str | None = None
    reject_fraction: float = 0
    delay_ms: float = 0

    def __post_init__(self) -> None:
        if self.error_code is not None and self.error_code not in grpc.StatusCode.__members__:
            raise SinkError(f"error_code {self.error_code!r} is not a grpc.StatusCode name")
        if self.error_code == "OK":
            raise SinkError("error_code 'OK' is not an error")
        if not 0 <= self.reject_fraction <= 1:
            raise SinkError(f"reject_fraction {self.reject_fraction} is out of range [0, 1]")
        if self.unavailable_first_s < 0 or self.unavailable_every < 0 or self.delay_ms < 0:
            raise SinkError("unavailable_first_s, unavailable_every and delay_ms must be >= 0")

    def refusal(self, since_start: float, sequence: int) -> tuple[grpc.StatusCode, str] | None:
        """The error to answer request number `sequence` (1-based) with, if any."""
        if since_start < self.unavailable_first_s:
            return grpc.StatusCode.UNAVAILABLE, f"sink fault: unavailable for the first {self.unavailable_first_s:g} s"
        if self.unavailable_every and sequence % self.unavailable_every == 0:
            return grpc.StatusCode.UNAVAILABLE, f"sink fault: every {self.unavailable_every}th request is unavailable"
        if self.error_code:
            return grpc.StatusCode[self.error_code], f"sink fault: answering {self.error_code}"
        return None

    def rejected(self, events: int) -> int:
        return math.floor(events * self.reject_fraction)


# ----------------------------------------------------------------------------
# The server


def split_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[V6]:PORT`) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SinkError(f"listen address {listen!r} is invalid: expected HOST:PORT, e.g. 127.0.0.1:4317")
    return host, int(port)


def _check_bindable(host: str, port: int) -> None:
    """Try the address with a plain socket first: when grpcio fails to bind it
    logs a multi-line C-core error and does not say why."""
    target = f"{host}:{port}"
    try:
        family, _, _, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As grpcio does, so a port left in TIME_WAIT by a stopped sink passes.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except socket.gaierror as exc:
        raise SinkError(f"cannot listen on {target}: cannot resolve {host}: {exc.strerror}") from None
    except OSError as exc:
        reason = "address in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise SinkError(f"cannot listen on {target}: {reason}") from None


_RESPONSES: dict[str, tuple[type[Message], type[Message]]] = {
    "traces": (ExportTraceServiceResponse, ExportTracePartialSuccess),
    "metrics": (ExportMetricsServiceResponse, ExportMetricsPartialSuccess),
    "logs": (ExportLogsServiceResponse, ExportLogsPartialSuccess),
}


def _response(signal: str, rejected: int) -> bytes:
    response_type, partial_type = _RESPONSES[signal]
    if not rejected:
        return response_type().SerializeToString()
    partial = partial_type(**{_REJECTED_FIELD[signal]: rejected,
                              "error_message": f"sink fault: rejected {rejected} events"})
    return response_type(partial_success=partial).SerializeToString()


_EMPTY_RESPONSE = {name: _response(name, 0) for name in SIGNALS}


class Sink:
    """An OTLP/gRPC receiver for traces, metrics and logs that counts events.

    `listen` is HOST:PORT (port 0 picks a free one; see `.address` after start).
    With `validate`, every request is decoded fully and checked (`find_problem`);
    a bad one is answered INVALID_ARGUMENT naming its first problem. `faults`
    injects errors, partial success and delay.
    """

    def __init__(self, listen: str = "127.0.0.1:0", validate: bool = False, max_message_bytes: int = 64 * 2**20,
                 workers: int = 4, faults: SinkFaults | None = None) -> None:
        self._host, self._port = split_listen(listen)
        self.validate = validate
        self.max_message_bytes = max_message_bytes
        self.workers = workers
        self.faults = faults or SinkFaults()
        self._counters = _Counters()
        self._sequence = 0
        self._sequence_lock = threading.Lock()
        self._server: grpc.Server | None = None
        self._started = 0.0
        self._stopped: float | None = None

    @property
    def address(self) -> str:
        """HOST:PORT actually bound (valid after `start`)."""
        if self._server is None:
            raise RuntimeError("the sink has not been started")
        return f"{self._host}:{self._port}"

    @property
    def endpoint(self) -> str:
        """What a client dials: the same as `address`."""
        return self.address

    def start(self) -> Sink:
        if self._server is not None:
            raise RuntimeError("the sink is already started")
        reuse_large_buffers()  # requests arrive as large buffers, like the sender's
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="telegen-sink"),
            handlers=[self._handler(name) for name in SIGNALS],
            # SO_REUSEPORT (grpcio's default on Linux) would let a second server
            # share a busy port silently and split the traffic; refuse instead.
            options=[("grpc.max_receive_message_length", self.max_message_bytes), ("grpc.so_reuseport", 0)],
        )
        target = f"{self._host}:{self._port}"
        _check_bindable(self._host, self._port)
        try:
            port = server.add_insecure_port(target)
        except RuntimeError:
            port = 0  # newer grpcio raises where older ones returned 0
        if not port:  # lost a race for the port since the check
            server.stop(None)
            raise SinkError(f"cannot listen on {target}: the gRPC server could not bind it")
        server.start()
        self._port = port
        self._server = server
        self._started = time.monotonic()
        self._stopped = None
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Finish in-flight requests (up to `grace` seconds) and close the port."""
        if self._server is None or self._stopped is not None:
            return
        self._server.stop(grace).wait()
        self._stopped = time.monotonic()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> SinkStats:
        """A consistent snapshot of the counters (elapsed freezes at stop)."""
        end = self._stopped if self._stopped is not None else time.monotonic()
        elapsed = end - self._started if self._server is not None else 0.0
        return self._counters.snapshot(elapsed)

    def _handler(self, signal: str) -> grpc.GenericRpcHandler:
        def export(data: bytes, context: grpc.ServicerContext) -> bytes:
            return self._export(signal, data, context)

        # No (de)serializers: the handler gets and returns raw bytes.
        method = grpc.unary_unary_rpc_method_handler(export, request_deserializer=None, response_serializer=None)
        return grpc.method_handlers_generic_handler(SERVICES[signal], {"Export": method})

    def _next_sequence(self) -> int:
        with self._sequence_lock:
            self._sequence += 1
            return self._sequence

    def _export(self, signal: str, data: bytes, context: grpc.ServicerContext) -> bytes:
        faults = self.faults
        if faults.delay_ms:
            time.sleep(faults.delay_ms / 1000)
        refusal = faults.refusal(time.monotonic() - self._started, self._next_sequence())
        if refusal:
            self._counters.add(signal, refused_requests=1)
            context.abort(*refusal)
        # Validation walks its own decoded copy so that counting stays in
        # count_events alone: swapping in a faster counter changes one function.
        problem = find_problem(signal, data) if self.validate else None
        try:
            events = count_events(signal, data)
        except ValueError as exc:
            problem, events = problem or f"request is not a valid {signal} export: {exc}", 0
        if problem:
            self._counters.add(signal, invalid_requests=1, invalid_events=events)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        rejected = faults.rejected(events)
        self._counters.add(signal, requests=1, events=events - rejected, rejected_events=rejected, bytes=len(data))
        return _response(signal, rejected) if rejected else _EMPTY_RESPONSE[signal]
