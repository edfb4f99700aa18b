"""OTLP/gRPC transport for pre-serialized requests.

Requests leave as the bytes the patch path made: the channel's methods are
registered with no serializer, so grpcio copies them once into its own slice
and nothing re-encodes them. Each send is asynchronous (a future); the
caller bounds how many are in flight. Failures are retried as the OTLP
specification says (retryable codes, exponential backoff with jitter,
RetryInfo honoured), resending the same bytes; a response's partial_success
is read and its rejected events counted. Responses and google.rpc.Status
details are decoded with the official classes, once per request (never per
event), and a malformed one never fails a run.
"""
from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ..errors import TelegenError

METHODS: dict[str, str] = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
# The response type per signal and its partial_success field that counts rejected events.
_RESPONSES: dict[str, tuple[type[Message], str]] = {
    "traces": (ExportTraceServiceResponse, "rejected_spans"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
    "logs": (ExportLogsServiceResponse, "rejected_log_records"),
}

# Retryable per the OTLP specification; RESOURCE_EXHAUSTED only with RetryInfo.
RETRYABLE = frozenset({
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})


@dataclass(frozen=True)
class Target:
    """Where and how one signal is sent."""

    endpoint: str
    # Header values are secrets (API keys): never in a repr.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    insecure: bool = False
    compression: str = "none"
    timeout: float = 10.0
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    max_message_bytes: int = 4 * 2**20


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    multiplier: float = 2.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff before attempt `attempt + 1`."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return rng.uniform(0.5 * ceiling, ceiling)


@dataclass
class Outcome:
    """How one batch ended: delivered (accepted minus rejected), rejected by
    partial success, or failed after its retries."""

    events: int
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    attempts: int = 0
    code: grpc.StatusCode | None = None
    message: str = ""
    extra: dict = field(default_factory=dict)


def _read(tls_file: str | None, what: str) -> bytes | None:
    if not tls_file:
        return None
    try:
        return Path(tls_file).read_bytes()
    except OSError as exc:
        raise TelegenError(f"cannot read {what} {tls_file}: {exc.strerror}") from None


def open_channel(target: Target) -> grpc.Channel:
    options = [
        ("grpc.max_send_message_length", target.max_message_bytes * 2),
        ("grpc.max_receive_message_length", 16 * 2**20),
        # Separate channels per signal must not collapse onto one subchannel.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    if target.insecure:
        return grpc.insecure_channel(target.endpoint, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(target.ca_file, "CA file"),
        private_key=_read(target.key_file, "client key"),
        certificate_chain=_read(target.cert_file, "client certificate"),
    )
    return grpc.secure_channel(target.endpoint, credentials, options=options)


def parse_partial_success(signal: str, response: bytes) -> tuple[int, str]:
    """(rejected events, error message) from a serialized Export*ServiceResponse;
    (0, "") when it has no partial_success or does not parse (the server said
    OK: a response it garbled must not fail the run)."""
    if not response:
        return 0, ""  # the usual answer: an empty message, nothing to decode
    response_type, rejected_field = _RESPONSES[signal]
    try:
        partial = response_type.FromString(response).partial_success
    except DecodeError:
        return 0, ""
    # A negative count (int64 on the wire) would inflate what is delivered.
    return max(0, getattr(partial, rejected_field)), partial.error_message


def retry_delay(trailing_metadata) -> float | None:
    """The RetryInfo delay in `grpc-status-details-bin` (a google.rpc.Status), if any."""
    for key, value in trailing_metadata or ():
        if key != "grpc-status-details-bin":
            continue
        try:
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):  # False for details of other types
                    delay = info.retry_delay
                    return max(0.0, delay.seconds + delay.nanos / 1e9)
        except DecodeError:
            return None
    return None


class SignalTransport:
    """Sends one signal's requests to its target, asynchronously, with retries."""

    def __init__(self, signal: str, target: Target, retry: RetryPolicy) -> None:
        self.signal = signal
        self.target = target
        self.retry = retry
        self.channel = open_channel(target)
        self._call = self.channel.unary_unary(METHODS[signal], request_serializer=None,
                                              response_deserializer=None)
        self._compression = grpc.Compression.Gzip if target.compression == "gzip" else grpc.Compression.NoCompression
        self._rng = random.Random()
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._closed = False

    def send(self, requests: list[bytes], piece_events: tuple[int, ...], done: Callable[[Outcome], None]) -> None:
        """Send `requests` (the pieces of one batch, usually one, holding
        `piece_events` events each) and call `done` once with the outcome,
        from a grpc or timer thread."""
        state = _BatchState(requests, piece_events, done)
        for index in range(len(requests)):
            self._attempt(state, index, 1)

    def _attempt(self, state: _BatchState, index: int, attempt: int) -> None:
        if self._closed:
            state.finish_piece(index, failed=True, code=grpc.StatusCode.CANCELLED, message="sender stopped")
            return
        state.outcome.attempts += 1
        future = self._call.future(state.requests[index], timeout=self.target.timeout,
                                   metadata=self.target.headers or None, compression=self._compression)
        future.add_done_callback(lambda f: self._completed(f, state, index, attempt))

    def _completed(self, future: grpc.Future, state: _BatchState, index: int, attempt: int) -> None:
        try:
            response = future.result()
        except grpc.RpcError as error:
            code = error.code()
            delay = retry_delay(error.trailing_metadata())
            retryable = code in RETRYABLE or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None)
            if retryable and attempt < self.retry.max_attempts and not self._closed:
                wait = delay if delay is not None else self.retry.backoff(attempt, self._rng)
                state.outcome.extra["retries"] = state.outcome.extra.get("retries", 0) + 1
                self._later(wait, lambda: self._attempt(state, index, attempt + 1))
                return
            state.finish_piece(index, failed=True, code=code, message=error.details() or "")
            return
        except grpc.FutureCancelledError:
            state.finish_piece(index, failed=True, code=grpc.StatusCode.CANCELLED, message="cancelled")
            return
        rejected, message = parse_partial_success(self.signal, response or b"")
        state.finish_piece(index, rejected=rejected, message=message)

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        def run() -> None:
            with self._lock:
                self._timers.discard(timer)
            action()

        timer = threading.Timer(delay, run)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def close(self) -> None:
        """Stop retrying; pending retries finish as failed, now."""
        self._closed = True
        with self._lock:
            timers, self._timers = list(self._timers), set()
        for timer in timers:
            timer.cancel()
            timer.function()
        self.channel.close()


class _BatchState:
    """Collects the outcomes of a batch's pieces; reports once all are done."""

    def __init__(self, requests: list[bytes], piece_events: tuple[int, ...], done: Callable[[Outcome], None]) -> None:
        self.requests = requests
        self.piece_events = piece_events
        self.outcome = Outcome(events=sum(piece_events))
        self.done = done
        self.pending = len(requests)
        self.lock = threading.Lock()

    def finish_piece(self, index: int, failed: bool = False, rejected: int = 0,
                     code: grpc.StatusCode | None = None, message: str = "") -> None:
        events = self.piece_events[index]
        with self.lock:
            outcome = self.outcome
            if failed:
                outcome.failed += events
            else:
                rejected = min(rejected, events)
                outcome.rejected += rejected
                outcome.delivered += events - rejected
            if code is not None:
                outcome.code = code
            if message:
                outcome.message = message
            self.pending -= 1
            last = self.pending == 0
        if last:
            self.done(self.outcome)
