"""OTLP/gRPC on libcurl: the engine's bytes as gRPC messages over HTTP/2.

gRPC is HTTP/2 with a 5-byte message prefix (a compressed flag and a
big-endian length), `content-type: application/grpc`, `te: trailers`, and the
status in trailers (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
libcurl speaks HTTP/2 (prior-knowledge h2c for plaintext, ALPN h2 over TLS),
multiplexes many streams on few connections (it waits for a connection to
say it multiplexes, keeps to the server's max-concurrent-streams, and opens
another past it), and hands the trailers to the header callback. So this
carrier is the OTLP/HTTP carrier (transport/http.py: one thread and one
curl multi handle per signal, the same retry and accounting) with gRPC's
status. The bodies it is given are whole gRPC messages, prefix included:
the engine writes the prefix in the allocation it patches or compresses
into (send/load/compression.py, BodyEncoding.framed), so framing costs no
copy. What it adds over grpcio: a message the engine already compressed
(patchable gzip or zstd) goes out as it is, flagged compressed and
`grpc-encoding` saying how, where grpcio would run zlib on every request.

Statuses are read as the grpcio carrier reads them (transport/grpc.py):
`grpc-status` and `grpc-message` (percent-decoded) from the trailers, or from
the headers of a Trailers-Only answer; RetryInfo from
`grpc-status-details-bin`; an HTTP status other than 200 mapped to a gRPC code
as the gRPC specification says (doc/http-grpc-status-mapping.md); a
connection that fails is UNAVAILABLE. The deadline goes out as
`grpc-timeout` and bounds the transfer.
"""
from __future__ import annotations

import base64
import gzip
import struct
import urllib.parse
import zlib

import grpc
import pycurl
import zstandard

from ..._version import __version__
from .base import BatchState, parse_partial_success
from .grpc import METHODS, REJECTING, RETRYABLE, retry_delay
from .http import HttpTransport, _Request

CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}
# An answer that is not gRPC's 200 (a proxy's, a plain HTTP server's), as gRPC clients read it.
HTTP_TO_GRPC: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INTERNAL, 401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED, 429: grpc.StatusCode.UNAVAILABLE, 502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.UNAVAILABLE,
}


def available() -> bool:
    """Whether this libcurl speaks HTTP/2 (built with nghttp2)."""
    return bool(pycurl.version_info()[4] & pycurl.VERSION_HTTP2)


def choose(client: str, compression: str) -> str:
    """The client that carries gRPC for `otlp.grpc_client`. auto, by
    measurement (benchmarks/test_grpc_curl.py, docs/performance.md): libcurl
    for compressed messages, where it sends the engine's patchable gzip or
    zstd as they are (the sender's CPU per event 1.15-1.26x OTLP/HTTP's,
    grpcio's zlib 11-13x) and where libcurl speaks HTTP/2; grpcio
    uncompressed: per event the two cost about the same (libcurl 1.22-1.42x
    OTLP/HTTP at an equal rate, grpcio 1.29-1.65x), but unbounded one
    process held 9-17 % more events/s on grpcio, whose I/O runs in its C
    threads beside the interpreter."""
    if client != "auto":
        return client
    return "curl" if compression in ("gzip", "zstd") and available() else "grpcio"


def grpc_timeout(seconds: float) -> str:
    """A deadline as the `grpc-timeout` header writes it: at most 8 digits and a unit."""
    millis = max(1, int(seconds * 1000))
    return f"{millis}m" if millis < 10**8 else f"{max(1, int(seconds))}S"


def status_details_delay(value: str | None) -> float | None:
    """The RetryInfo delay in a `grpc-status-details-bin` header (unpadded base64), if any."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return None
    return retry_delay([("grpc-status-details-bin", raw)])


def unframe(body: bytes, encoding: str = "identity") -> bytes:
    """The message of a unary answer: its 5-byte prefix stripped, and where
    flagged compressed, decoded as `grpc-encoding` says (a server may answer
    in the request's encoding whatever grpc-accept-encoding asked: grpc-go does)."""
    if len(body) < 5:
        return b""
    flag, length = struct.unpack_from(">BI", body)
    message = body[5:5 + length]
    if not flag:
        return message
    if encoding == "gzip":
        return gzip.decompress(message)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(message)  # its size may be unsaid
    if encoding == "deflate":
        return zlib.decompress(message)
    raise ValueError(f"a compressed answer in grpc-encoding {encoding!r}")


class CurlGrpcTransport(HttpTransport):
    """Sends one signal's requests to its target as OTLP/gRPC over HTTP/2 on libcurl."""

    CONNECTION_CODE = "UNAVAILABLE"  # as grpcio names a connection that fails
    framing_bytes = 5  # its bodies come prefixed; the counts are of OTLP bytes, as grpcio's are

    def _fixed_headers(self) -> list[str]:
        target = self.target
        return ["Content-Type: application/grpc", "TE: trailers", "Expect:",
                f"User-Agent: grpc-telegen/{__version__} (libcurl)",
                # Answers are small: asked uncompressed, so none needs inflating.
                "grpc-accept-encoding: identity",
                f"grpc-timeout: {grpc_timeout(target.timeout)}",
                *([f"grpc-encoding: {target.compression}"] if target.compression in ("gzip", "zstd") else [])]

    def _url(self) -> str:
        return f"{'http' if self.target.insecure else 'https'}://{self.target.endpoint}{METHODS[self.signal]}"

    def _configure_multi(self, multi: pycurl.CurlMulti) -> None:
        multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)

    def _configure(self, curl: pycurl.Curl) -> None:
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE if self.target.insecure
                    else pycurl.CURL_HTTP_VERSION_2TLS)
        # Wait for the connection to say it multiplexes rather than open one per stream.
        curl.setopt(pycurl.PIPEWAIT, 1)
        # HTTP/2 flow control: a stream window that takes a 4 MB message without stalling.
        curl.setopt(pycurl.BUFFERSIZE, 512 * 1024)
        # Keepalive: TCP probes after 30 s idle, so a connection a middlebox
        # dropped between stages is found dead before a request waits on it
        # (libcurl sends no HTTP/2 PINGs of its own).
        curl.setopt(pycurl.TCP_KEEPALIVE, 1)
        curl.setopt(pycurl.TCP_KEEPIDLE, 30)
        curl.setopt(pycurl.TCP_KEEPINTVL, 10)

    def _connection_message(self, errno: int, error: str) -> str:
        # libcurl's text alone: one fault reaches it as several error numbers
        # (an HTTP/1 answer to the HTTP/2 preface is 16 or 55 by when it is
        # read), and the counts group failures by their words.
        return error or f"curl error {errno}"

    def _answered(self, request: _Request, status: int, body: bytes) -> None:
        headers = request.headers
        state: BatchState = request.state
        given = headers.get("grpc-status")
        if status != 200 and given is None:
            code = HTTP_TO_GRPC.get(status, grpc.StatusCode.UNKNOWN)
            message = f"HTTP {status} from a server that is not gRPC" + \
                (f" ({headers['content-type']})" if headers.get("content-type") else "")
            self._failed(request, code.name, message, None, retryable=code in RETRYABLE)
            return
        if given is None:  # a 200 whose stream ended without a status
            self._failed(request, "INTERNAL", "the answer ended without a grpc-status", None, retryable=False)
            return
        code = CODES.get(int(given) if given.isdigit() else -1, grpc.StatusCode.UNKNOWN)
        if code == grpc.StatusCode.OK:
            rejected, message = parse_partial_success(self.signal,
                                                      unframe(body, headers.get("grpc-encoding", "identity")))
            state.finish_piece(request.index, rejected=rejected, message=message)
            return
        message = urllib.parse.unquote(headers.get("grpc-message", ""))
        delay = status_details_delay(headers.get("grpc-status-details-bin"))
        if code in REJECTING or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is None):
            # The server read the request and refused its data: rejected, as partial success is.
            state.finish_piece(request.index, rejected=state.piece_events[request.index], code=code.name,
                               message=message)
            return
        self._failed(request, code.name, message, delay,
                     retryable=code in RETRYABLE or code == grpc.StatusCode.RESOURCE_EXHAUSTED)
