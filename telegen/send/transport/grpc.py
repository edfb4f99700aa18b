"""OTLP/gRPC transport for pre-serialized requests.

Requests leave as the bytes the patch path made: the channel's methods are
registered with no serializer, so grpcio copies them once into its own slice
and nothing re-encodes them. Each send is asynchronous (a future); the
caller bounds how many are in flight. Failures are retried as the OTLP
specification says (retryable codes, exponential backoff with jitter,
RetryInfo honoured), resending the same bytes; a response's partial_success
is read and its rejected events counted, and so are the events of a request
refused for its data (INVALID_ARGUMENT, RESOURCE_EXHAUSTED without RetryInfo). Responses and google.rpc.Status
details are decoded with the official classes, once per request (never per
event), and a malformed one never fails a run.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from ...errors import TelegenError
from .base import BatchState, Carrier, Retrier, RetryPolicy, Target, parse_partial_success

METHODS: dict[str, str] = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
# Retryable per the OTLP specification; RESOURCE_EXHAUSTED only with RetryInfo.
RETRYABLE = frozenset({
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})
# Answers that refuse the data itself (a bad name, a too old or out-of-order
# point): its events count as rejected with the server's reason, like a
# partial success. So does RESOURCE_EXHAUSTED without RetryInfo (a message
# over the server's size limit, a quota with no time to come back); with
# RetryInfo it is retried.
REJECTING = frozenset({grpc.StatusCode.INVALID_ARGUMENT})


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
        # grpcio's own reconnect back-off grows to 120 s by default: after a
        # few seconds of a receiver restarting, every retry the engine makes
        # (retry.max_elapsed) would fail fast on a channel not yet trying
        # again. Reconnect within a second, as the OTLP/HTTP carrier's fresh
        # connection per attempt does. Not grpc.min_reconnect_backoff_ms:
        # grpc-core makes it the connection attempt's timeout too (20 s by
        # default), and a server more than that far away (a 300 ms round
        # trip) would never be reached (found by tests/test_faults.py).
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]
    if target.insecure:
        return grpc.insecure_channel(target.endpoint, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(target.ca_file, "CA file"),
        private_key=_read(target.key_file, "client key"),
        certificate_chain=_read(target.cert_file, "client certificate"),
    )
    return grpc.secure_channel(target.endpoint, credentials, options=options)


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


class GrpcTransport(Carrier):
    """Sends one signal's requests to its target over gRPC, asynchronously, with retries."""

    def __init__(self, signal: str, target: Target, retry: RetryPolicy) -> None:
        self.signal = signal
        self.target = target
        self.retry = retry
        if target.compression == "zstd":
            raise ValueError("grpcio has no zstd: send zstd over OTLP/HTTP (protocol http/protobuf)")
        self.channel = open_channel(target)
        self._call = self.channel.unary_unary(METHODS[signal], request_serializer=None,
                                              response_deserializer=None)
        self._compression = grpc.Compression.Gzip if target.compression == "gzip" else grpc.Compression.NoCompression
        # Per tenant, its whole metadata, made once: a send only picks one.
        self._metadata = [headers or None for headers in target.header_sets()]
        self._retrier = Retrier()
        self._closed = False
        self.on_retry: Callable[[str, str], None] | None = None

    def _dispatch(self, state: BatchState, index: int, attempt: int) -> None:
        started = time.monotonic()
        future = self._call.future(state.requests[index], timeout=self.target.timeout,
                                   metadata=self._metadata[state.tenant], compression=self._compression)
        future.add_done_callback(lambda f: self._completed(f, state, index, attempt, started))

    def _completed(self, future: grpc.Future, state: BatchState, index: int, attempt: int, started: float) -> None:
        took = time.monotonic() - started
        try:
            response = future.result()
        except grpc.RpcError as error:
            state.attempt_took(took)
            code = error.code()
            message = error.details() or ""  # whole: a hint reads all of it; reasons are shortened
            delay = retry_delay(error.trailing_metadata())
            if code in REJECTING or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is None):
                # The server read the request and refused its data: rejected, as partial success is.
                state.finish_piece(index, rejected=state.piece_events[index], code=code.name, message=message)
                return
            self._retry_or_fail(state, index, attempt, code.name, message, delay, retryable=code in RETRYABLE
                                or code == grpc.StatusCode.RESOURCE_EXHAUSTED)
            return
        except grpc.FutureCancelledError:
            state.finish_piece(index, failed=True, code="CANCELLED", message="cancelled")
            return
        state.attempt_took(took)
        rejected, message = parse_partial_success(self.signal, response or b"")
        state.finish_piece(index, rejected=rejected, message=message)

    def close(self) -> None:
        """Stop retrying; pending retries finish as failed, now."""
        self._closed = True
        self._retrier.flush()
        self.channel.close()
