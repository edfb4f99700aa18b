"""What a transport error usually means, in the words a person reads next to it."""
from __future__ import annotations

# What an error usually means, for the line a person reads: (needles, hint).
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("WRONG_VERSION_NUMBER", "wrong version number", "packet length too long"),
     "TLS handshake failed: the endpoint may be plaintext; use --insecure (otlp.insecure: true)"),
    # grpcio's words, and libcurl's (curl error 60: "SSL certificate problem: ...").
    (("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "unable to get local issuer",
      "SSL certificate problem", "self-signed certificate", "self signed certificate"),
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
    # A gRPC server without the message encoding sent: grpc-core servers
    # (grpcio's, so `telegen sink`'s) know gzip and deflate, not zstd.
    (("Error parsing 'grpc-encoding' metadata",),
     "the gRPC server does not accept this message encoding (grpc-core servers, telegen sink's among them, have "
     "no zstd): use compression gzip over gRPC, or zstd over OTLP/HTTP (--protocol http)"),
    # Plaintext at a TLS port: the server drops the connection at the first
    # bytes (grpcio: "Socket closed"; libcurl: an empty reply or a reset).
    # A restarting server does that too, so this one is retried.
    (("Socket closed", "Empty reply from server", "Connection reset by peer"),
     "the endpoint closed the connection without answering: if it expects TLS, drop --insecure "
     "(otlp.insecure: false)"),
)

# Errors that retrying cannot fix (a certificate nobody trusts, TLS or HTTP
# spoken to the wrong kind of port): failed at once, not retried.
_PERMANENT = tuple(needle for needles, _ in _HINTS[:2] + _HINTS[4:7] for needle in needles)
# Their hints: a reason is cut short for the lines (200 characters), the hint
# was read from the whole message.
_PERMANENT_HINTS = frozenset(hint for _, hint in _HINTS[:2] + _HINTS[4:7])


# Answers that say the request can never succeed as configured: a missing or
# wrong credential, a wrong path or method, a service that is not there.
_PERMANENT_CODES = frozenset({"HTTP 401", "HTTP 403", "HTTP 404", "HTTP 405", "HTTP 501", "UNAUTHENTICATED",
                              "PERMISSION_DENIED", "UNIMPLEMENTED"})


def permanent(message: str) -> bool:
    """Whether a transport error is one retrying cannot fix."""
    return any(needle in message for needle in _PERMANENT)


def permanent_reason(reason: str, hint: str = "") -> bool:
    """Whether a failure's reason ("CODE: message", and the hint read from
    its whole message) says the configuration is wrong: a permanent
    transport error, or an answer refusing the request itself (HTTP
    401/403/404/405/501, gRPC UNAUTHENTICATED, PERMISSION_DENIED,
    UNIMPLEMENTED)."""
    return hint in _PERMANENT_HINTS or reason.split(":", 1)[0] in _PERMANENT_CODES or permanent(reason)


def explain(message: str) -> str:
    """A plain-words reading of a transport error (``""`` when none fits)."""
    for needles, hint in _HINTS:
        if any(needle in message for needle in needles):
            return hint
    return ""
