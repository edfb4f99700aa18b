"""A local OTLP receiver that counts, and optionally validates, what it gets.

`Sink` serves the three OTLP collector services on one gRPC port and, with
`listen_http`, OTLP/HTTP (binary protobuf) on another (see `http.py`). gRPC
handlers are registered with no (de)serializers, so each request arrives as the
raw bytes grpcio received (already gunzipped when the client compressed them),
as the HTTP receiver's do, and both carriers hand them to one carrier-neutral
path, `Sink.receive`, which decides how much decoding to pay for (counting only
by default, a full decode and check with `validate=True`), applies the faults
and counts. So the counts do not depend on the carrier.

Every request lands in exactly one bucket of its signal's `SignalStats`:
`requests` (answered OK), `invalid_requests` (INVALID_ARGUMENT) or
`refused_requests` (an injected fault or the capacity answered it with an
error). Likewise every event of a decoded request is counted once: `events`
(kept), `rejected_events` (reported back as rejected through
`partial_success`), `invalid_events` or `refused_events`.

    >>> with Sink() as sink:
    ...     send_something_to(sink.endpoint)
    ...     assert sink.stats().traces.events == 42

    >>> with Sink(listen_http="127.0.0.1:0") as sink:
    ...     post_to(sink.http_endpoint + "/v1/traces")
"""
from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from .._memory import reuse_large_buffers
from ..errors import SinkError
from ..templates import SIGNALS
from .answer import OK, Answer
from .capacity import ServiceQueue, TokenBucket
from .faults import Refusal, SinkFaults
from .record import Recorder
from .stats import Counters, SinkStats
from .validate import count_events, find_problem

if TYPE_CHECKING:
    from .http import HttpReceiver

SERVICES: dict[str, str] = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}

# The partial_success field that carries the rejected count, per signal.
_REJECTED_FIELD: dict[str, str] = {
    "traces": "rejected_spans",
    "metrics": "rejected_data_points",
    "logs": "rejected_log_records",
}


def split_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[V6]:PORT`) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SinkError(f"listen address {listen!r} is invalid: expected HOST:PORT, e.g. 127.0.0.1:4317")
    return host, int(port)


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to HOST:PORT (port 0: a free one), not yet listening;
    SinkError with a one-line reason when the address cannot be had."""
    target = f"{host}:{port}"
    try:
        family, _, _, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise SinkError(f"cannot listen on {target}: cannot resolve {host}: {exc.strerror}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As grpcio does, so a port left in TIME_WAIT by a stopped sink passes.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = "address in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise SinkError(f"cannot listen on {target}: {reason}") from None
    return sock


def _check_bindable(host: str, port: int) -> None:
    """Try the address with a plain socket first: when grpcio fails to bind it
    logs a multi-line C-core error and does not say why."""
    bind_socket(host, port).close()


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

# gRPC handler threads a sink with a capacity queue has at least. Each sleeps
# until its request is served: with one thread the queue idles from each
# departure until the next request is taken (measured: 9 % under capacity);
# with 4 it does not. With this many, a client's requests in flight reach the
# queue (and the counts) on arrival, as they do over HTTP, which has no pool,
# instead of waiting in the pool's backlog.
QUEUE_WORKERS = 32


def _refused(refusal: Refusal) -> Answer:
    return Answer(refusal.code, message=refusal.message, retry_after_s=refusal.retry_after_s, drop=refusal.drop)


class Sink:
    """An OTLP receiver for traces, metrics and logs that counts events.

    `listen` is HOST:PORT for OTLP/gRPC (port 0 picks a free one; see `.address`
    after start). `listen_http`, if given, is HOST:PORT for OTLP/HTTP too (binary
    protobuf; see `.http_endpoint`). With `validate`, every request is decoded
    fully and checked (`find_problem`); a bad one is answered INVALID_ARGUMENT
    (HTTP 400) naming its first problem. `faults` injects errors, partial
    success, delay, dropped connections and a capacity. `capacity` and
    `capacity_mode`, when given, are short for the `SinkFaults` fields of those
    names (see there): Sink(capacity=5000) refuses what is over 5,000 events/s.
    Requests larger than `max_message_bytes` (uncompressed) are refused by
    either carrier, uncounted.
    `record`, a directory: every accepted request is kept there, per signal
    (`recorded-<signal>.pb`, see telegen.sink.record), for `telegen import`.
    """

    def __init__(self, listen: str = "127.0.0.1:0", validate: bool = False, max_message_bytes: int = 64 * 2**20,
                 workers: int = 4, faults: SinkFaults | None = None, listen_http: str | None = None,
                 record: str | os.PathLike | None = None, capacity: float | None = None,
                 capacity_mode: str | None = None) -> None:
        self._host, self._port = split_listen(listen)
        self._http_listen = split_listen(listen_http) if listen_http is not None else None
        if self._http_listen == (self._host, self._port) and self._port:
            raise SinkError(f"cannot listen on {listen}: listen and listen_http name the same address")
        self._http: HttpReceiver | None = None
        self.validate = validate
        self.max_message_bytes = max_message_bytes
        self.workers = workers
        self.faults = _with_capacity(faults or SinkFaults(), capacity, capacity_mode)
        # Per sink, over all signals and both carriers.
        self._bucket: TokenBucket | None = None
        self._queue: ServiceQueue | None = None
        if self.faults.capacity:
            if self.faults.capacity_mode == "queue":
                self._queue = ServiceQueue(self.faults.capacity)
            else:
                self._bucket = TokenBucket(self.faults.capacity)
        # Set at stop: handlers waiting for the queue answer at once.
        self._stopping = threading.Event()
        self._counters = Counters()
        self._sequence = 0
        self._sequence_lock = threading.Lock()
        self._server: grpc.Server | None = None
        self._started = 0.0
        self._stopped: float | None = None
        self.record = Path(record) if record is not None else None
        self._recorder: Recorder | None = None
        self.recorded: list[Path] = []  # the recording's files, once stopped
        # Hears of the first request that could not be recorded (a full disk).
        self.on_record_error: Callable[[str], None] | None = None

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

    @property
    def http_address(self) -> str:
        """HOST:PORT the OTLP/HTTP receiver actually bound (valid after `start`)."""
        if self._http_listen is None:
            raise RuntimeError("the sink has no OTLP/HTTP receiver: pass listen_http")
        if self._http is None:
            raise RuntimeError("the sink has not been started")
        return f"{self._http_listen[0]}:{self._http.port}"

    @property
    def http_endpoint(self) -> str:
        """The OTLP/HTTP base URL, http://HOST:PORT: a client appends /v1/traces,
        /v1/metrics or /v1/logs."""
        return f"http://{self.http_address}"

    @property
    def record_error(self) -> str | None:
        """Why requests could not be recorded (they were refused), or None."""
        return self._recorder.error if self._recorder is not None else None

    @property
    def unrecorded(self) -> int:
        """Requests refused because they could not be recorded."""
        return self._recorder.failed if self._recorder is not None else 0

    def start(self) -> Sink:
        if self._server is not None:
            raise RuntimeError("the sink is already started")
        reuse_large_buffers()  # requests arrive as large buffers, like the sender's
        if self.record is not None:
            self._recorder = Recorder(self.record)
            self._recorder.on_error = self.on_record_error
        http = None
        if self._http_listen is not None:
            from .http import HttpReceiver  # aiohttp is imported only by a sink that serves HTTP

            http = HttpReceiver(self, *self._http_listen)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._pool_size(), thread_name_prefix="telegen-sink"),
            handlers=[self._handler(name) for name in SIGNALS],
            # SO_REUSEPORT (grpcio's default on Linux) would let a second server
            # share a busy port silently and split the traffic; refuse instead.
            options=[("grpc.max_receive_message_length", self.max_message_bytes), ("grpc.so_reuseport", 0)],
        )
        target = f"{self._host}:{self._port}"
        _check_bindable(self._host, self._port)
        if http is not None:
            http.start()  # binds first: when it cannot, no gRPC port has been taken
        try:
            port = server.add_insecure_port(target)
        except RuntimeError:
            port = 0  # newer grpcio raises where older ones returned 0
        if not port:  # lost a race for the port since the check
            server.stop(None)
            if http is not None:
                http.stop(0)
            raise SinkError(f"cannot listen on {target}: the gRPC server could not bind it")
        server.start()
        self._port = port
        self._server = server
        self._http = http
        self._started = time.monotonic()
        self._stopped = None
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Finish in-flight requests (up to `grace` seconds) and close the port(s)."""
        if self._server is None or self._stopped is not None:
            return
        self._stopping.set()
        stopped = self._server.stop(grace)
        if self._http is not None:
            self._http.stop(grace)
        stopped.wait()
        self._stopped = time.monotonic()
        if self._recorder is not None:
            self.recorded = self._recorder.close()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> SinkStats:
        """A consistent snapshot of the counters (elapsed freezes at stop)."""
        end = self._stopped if self._stopped is not None else time.monotonic()
        elapsed = end - self._started if self._server is not None else 0.0
        return self._counters.snapshot(elapsed)

    def _pool_size(self) -> int:
        return max(self.workers, QUEUE_WORKERS) if self._queue is not None else self.workers

    def _handler(self, signal: str) -> grpc.GenericRpcHandler:
        def export(data: bytes, context: grpc.ServicerContext) -> bytes:
            return self._export_grpc(signal, data, context)

        # No (de)serializers: the handler gets and returns raw bytes.
        method = grpc.unary_unary_rpc_method_handler(export, request_deserializer=None, response_serializer=None)
        return grpc.method_handlers_generic_handler(SERVICES[signal], {"Export": method})

    def _next_sequence(self) -> int:
        with self._sequence_lock:
            self._sequence += 1
            return self._sequence

    def _export_grpc(self, signal: str, data: bytes, context: grpc.ServicerContext) -> bytes:
        if self.faults.delay_ms:
            time.sleep(self.faults.delay_ms / 1000)
        answer = self.receive(signal, data)
        if answer.delay_s > 0:
            self._stopping.wait(answer.delay_s)  # a sleep that a stopping sink cuts short
        if answer.ok:
            return answer.body
        if answer.retry_after_s > 0:
            # What grpcio-status's abort_with_status does: the google.rpc.Status
            # (with its RetryInfo) in the trailer, beside the plain code and message.
            context.set_trailing_metadata((("grpc-status-details-bin", answer.status().SerializeToString()),))
        context.abort(answer.code, answer.message)  # a drop, too: gRPC has no answer-less close
        raise AssertionError("unreachable: context.abort raises")

    def receive(self, signal: str, data: bytes) -> Answer:
        """The carrier-neutral part of one export: apply the faults, count (and
        with `validate`, check) the serialized Export{signal}ServiceRequest
        `data` (uncompressed), and say what to answer. Every call is counted in
        exactly one bucket of `signal`'s stats. Delay (`faults.delay_ms`, and
        the capacity queue's `Answer.delay_s`) is the carrier's job: each
        sleeps its own way."""
        faults = self.faults
        refusal = faults.refusal(time.monotonic() - self._started, self._next_sequence())
        # Counted whatever the answer: the capacity is in events, and a refused
        # request's events are reported too (none for one that cannot be read).
        try:
            events, unreadable = count_events(signal, data), None
        except ValueError as exc:
            events, unreadable = 0, f"request is not a valid {signal} export: {exc}"
        if refusal:
            self._counters.add(signal, refused_requests=1, refused_events=events)
            return _refused(refusal)
        # Validation walks its own decoded copy so that counting stays in
        # count_events alone: swapping in a faster counter changes one function.
        problem = (find_problem(signal, data) if self.validate else None) or unreadable
        if problem:
            self._counters.add(signal, invalid_requests=1, invalid_events=events)
            return Answer(grpc.StatusCode.INVALID_ARGUMENT, message=problem)
        # Bad data is answered as such before the capacity is asked: retrying
        # it later would not help.
        if self._bucket is not None and not self._bucket.admit(events):
            self._counters.add(signal, refused_requests=1, refused_events=events)
            return _refused(faults.over_capacity())
        if self._recorder is not None:
            unrecorded = self._recorder.write(signal, data)
            if unrecorded:
                # Not taken, so not counted as taken: the client sends it again.
                self._counters.add(signal, refused_requests=1, refused_events=events)
                return Answer(grpc.StatusCode.UNAVAILABLE, message=f"sink: {unrecorded}")
        delay_s = self._queue.delay(events) if self._queue is not None else 0.0
        rejected = faults.rejected(events)
        self._counters.add(signal, requests=1, events=events - rejected, rejected_events=rejected, bytes=len(data))
        return Answer(OK, _response(signal, rejected) if rejected else _EMPTY_RESPONSE[signal], delay_s=delay_s)


def _with_capacity(faults: SinkFaults, capacity: float | None, capacity_mode: str | None) -> SinkFaults:
    """`faults` with Sink's `capacity` and `capacity_mode` shorthands applied
    (SinkError where `faults` already sets what one of them would)."""
    changes: dict[str, object] = {}
    if capacity is not None:
        if faults.capacity and faults.capacity != capacity:
            raise SinkError(f"capacity is given twice: {capacity:g} and faults.capacity {faults.capacity:g}")
        changes["capacity"] = capacity
    if capacity_mode is not None:
        if faults.capacity_mode != "refuse" and faults.capacity_mode != capacity_mode:
            raise SinkError(f"capacity_mode is given twice: {capacity_mode!r} and faults.capacity_mode "
                            f"{faults.capacity_mode!r}")
        changes["capacity_mode"] = capacity_mode
    return replace(faults, **changes) if changes else faults
