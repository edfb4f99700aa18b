"""How request bytes reach an endpoint: one small interface, two carriers.

The engine hands a transport the request bytes of one batch (its pieces) and
a callback; the transport sends them asynchronously, retries as the OTLP
specification says for its carrier, and calls back once with an `Outcome`
in which every event is delivered, rejected or failed. It never learns
whether gRPC (`grpc`) or OTLP/HTTP (`http`) carried them.

    base    Target, RetryPolicy, Outcome, the Transport interface, partial success
    hints   plain words for transport errors
    grpc       OTLP/gRPC on grpcio
    grpc_curl  OTLP/gRPC on libcurl (HTTP/2), sending messages compressed in advance
    http       OTLP/HTTP (http/protobuf) on libcurl
"""
from __future__ import annotations

from .base import CURL, GRPC, HTTP_PROTOBUF, PROTOCOLS, Outcome, RetryPolicy, Target, Transport
from .grpc import GrpcTransport
from .grpc_curl import CurlGrpcTransport
from .hints import explain
from .http import HttpTransport

__all__ = ["GRPC", "HTTP_PROTOBUF", "PROTOCOLS", "Outcome", "RetryPolicy", "Target", "Transport", "explain",
           "open_transport"]


def open_transport(signal: str, target: Target, retry: RetryPolicy) -> Transport:
    """The transport for `target.protocol`."""
    if target.protocol == GRPC:
        return CurlGrpcTransport(signal, target, retry) if target.grpc_client == CURL else \
            GrpcTransport(signal, target, retry)
    if target.protocol == HTTP_PROTOBUF:
        return HttpTransport(signal, target, retry)
    raise ValueError(f"unknown protocol {target.protocol!r}; expected one of {', '.join(PROTOCOLS)}")
