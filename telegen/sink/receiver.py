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
import socket
import threading
import time
from concurrent import futures

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
from .faults import SinkFaults
from .stats import Counters, SinkStats
from .validate import count_events, find_problem

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
        self._counters = Counters()
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
