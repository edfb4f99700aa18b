"""What a transport error usually means, in the words a person reads next to it."""
from __future__ import annotations

# What an error usually means, for the line a person reads: (needles, hint).
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("WRONG_VERSION_NUMBER", "wrong version number", "packet length too long"),
     "TLS handshake failed: the endpoint may be plaintext; use --insecure (otlp.insecure: true)"),
    (("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "unable to get local issuer"),
     "the endpoint's TLS certificate is not trusted: set otlp.tls.ca_file to its CA"),
    (("Connection refused", "connection refused", "Couldn't connect", "Failed to connect"),
     "nothing accepts connections there: check the endpoint's host and port"),
    (("Received message larger than max", "message larger than max"),
     "a request is over the receiver's size limit: lower sending.max_message_bytes"),
    # gRPC at an HTTP/1 server (an OTLP/HTTP port, 4318): grpcio reads its
    # "HTTP/1.1 400" as a broken HTTP/2 frame; an HTTP/2 server that is not
    # gRPC answers the gRPC path with a plain HTTP status.
    # libcurl's gRPC carrier says it in its words: an HTTP/1 answer where the HTTP/2 SETTINGS frame should be.
    (("Failed parsing HTTP/2", "Trying to connect an http1.x server", "Received http2 header with status",
      "expected SETTINGS frame"),
     "the endpoint answers HTTP, not gRPC (an OTLP/HTTP port?): try --protocol http (otlp.protocol: http/protobuf)"),
    # OTLP/HTTP at a gRPC port (4317): an HTTP/2-only server answers an
    # HTTP/1.1 request with binary frames, which libcurl takes for HTTP/0.9.
    (("Received HTTP/0.9 when not allowed", "Weird server reply"),
     "the endpoint does not answer HTTP/1.1 (a gRPC port?): try --protocol grpc (otlp.protocol: grpc)"),
)


def explain(message: str) -> str:
    """A plain-words reading of a transport error (``""`` when none fits)."""
    for needles, hint in _HINTS:
        if any(needle in message for needle in needles):
            return hint
    return ""
