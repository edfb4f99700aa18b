"""The sink's OTLP/HTTP receiver: binary protobuf over HTTP/1.1, on aiohttp.

    POST /v1/traces | /v1/metrics | /v1/logs
    Content-Type: application/x-protobuf     (anything else: 415)
    Content-Encoding: gzip | zstd            (optional; telegen.sink.bodies decodes them)

answered as the OTLP specification says (https://opentelemetry.io/docs/specs/otlp/#otlphttp):
200 with the serialized Export{Trace,Metrics,Logs}ServiceResponse, or an error
status whose body is a serialized google.rpc.Status, both application/x-protobuf.
The request itself is handled by `Sink.receive`, the path the gRPC receiver
takes too, so counts do not depend on the carrier.

The server runs on its own asyncio event loop in its own thread; handlers run
on that loop (counting is a compiled wire walk, microseconds per request).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from typing import TYPE_CHECKING

import grpc
from aiohttp import web

from ..errors import SinkError
from .answer import Answer
from .bodies import ENCODINGS, decode
from .receiver import bind_socket

if TYPE_CHECKING:
    from .receiver import Sink

PROTOBUF = "application/x-protobuf"
PATHS: dict[str, str] = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}

# gRPC status -> HTTP status, as google.rpc.Code documents the mapping.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

_START_TIMEOUT_S = 30.0


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status an OTLP/HTTP server answers for a gRPC status code."""
    return HTTP_STATUS.get(code, 500)


def _error(status: int, code: grpc.StatusCode, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = Answer(code, message=message).status().SerializeToString()
    return web.Response(status=status, body=body, headers={"Content-Type": PROTOBUF, **(headers or {})})


class HttpReceiver:
    """OTLP/HTTP for one `Sink`: `start` binds HOST:PORT (port 0: a free one, see
    `.port`) and serves on a thread of its own until `stop`."""

    def __init__(self, sink: Sink, host: str, port: int) -> None:
        self.sink = sink
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: web.Server | None = None
        self._runner: web.ServerRunner | None = None
        self._site: web.SockSite | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the HTTP receiver is already started")
        sock = bind_socket(self.host, self.port)  # SinkError with the reason, in the caller's thread
        self.port = sock.getsockname()[1]
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, args=(loop, sock, ready), name="telegen-sink-http",
                                        daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=_START_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            self.stop(0)
            raise SinkError(f"cannot listen on {self.host}:{self.port}: the HTTP server did not start "
                            f"within {_START_TIMEOUT_S:g} s") from None
        except OSError as exc:
            self._thread.join()
            raise SinkError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None

    def _run(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
             ready: concurrent.futures.Future[None]) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as exc:  # handed to start(), in the caller's thread
            sock.close()
            loop.close()
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        # No access log: a line per request would cost more than the request.
        self._server = web.Server(self._handle, access_log=None, auto_decompress=False)
        # cleanup() waits shutdown_timeout (aiohttp's default: 60 s) for connections
        # still open after _close's own bounded shutdown; never that long here.
        self._runner = web.ServerRunner(self._server, shutdown_timeout=1.0)
        await self._runner.setup()
        self._site = web.SockSite(self._runner, sock)
        await self._site.start()

    def stop(self, grace: float = 1.0) -> None:
        """Stop listening, let in-flight requests finish (up to `grace` s), close
        every connection and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(grace), loop).result(timeout=2 * grace + 5)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass  # the loop is stopped below all the same
        finally:
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass  # already closed
            thread.join(timeout=5)

    async def _close(self, grace: float) -> None:
        if self._site is not None:
            await self._site.stop()  # no new connections
        if self._server is not None:
            # In-flight requests finish, connections close (aiohttp waits forever on 0).
            await self._server.shutdown(max(grace, 0.01))
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        signal = PATHS.get(request.path)
        if signal is None:
            return _error(404, grpc.StatusCode.NOT_FOUND,
                          f"no OTLP/HTTP service at {request.path}: POST to /v1/traces, /v1/metrics or /v1/logs")
        if request.method != "POST":
            return _error(405, grpc.StatusCode.UNIMPLEMENTED,
                          f"method {request.method} is not allowed on {request.path}: use POST",
                          {"Allow": "POST"})
        if request.content_type != PROTOBUF:
            given = request.headers.get("Content-Type", "")
            return _error(415, grpc.StatusCode.INVALID_ARGUMENT,
                          f"Content-Type {given!r} is not supported: this sink takes OTLP/HTTP binary protobuf, "
                          f"Content-Type: {PROTOBUF} (OTLP/HTTP JSON is not supported)")
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
        if encoding not in ENCODINGS:
            return _error(415, grpc.StatusCode.INVALID_ARGUMENT,
                          f"Content-Encoding {encoding!r} is not supported: send gzip, zstd or no Content-Encoding")
        data = await self._read_body(request)
        if data is not None and encoding != "identity":
            try:
                # The sink, not aiohttp's parser, decodes: it knows the limit, and zlib-ng inflates faster.
                data = decode(encoding, data, self.sink.max_message_bytes)
            except ValueError as exc:
                return _error(400, grpc.StatusCode.INVALID_ARGUMENT, f"request body is not valid {encoding}: {exc}")
        if data is None:
            limit = self.sink.max_message_bytes
            return _error(413, grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"request body is larger than the sink's limit of {limit:,} bytes (uncompressed)")
        delay_ms = self.sink.faults.delay_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        answer = self.sink.receive(signal, data)
        if answer.delay_s > 0:
            await asyncio.sleep(answer.delay_s)  # the capacity queue: other requests go on meanwhile
        if answer.ok:
            return web.Response(body=answer.body, headers={"Content-Type": PROTOBUF})
        if answer.drop:
            # Close with no response: preparing the one returned below then
            # fails on the closed transport, which aiohttp takes as a client gone.
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        retry_after = answer.retry_after_header
        return web.Response(status=http_status(answer.code), body=answer.status().SerializeToString(),
                            headers={"Content-Type": PROTOBUF, **({"Retry-After": retry_after} if retry_after else {})})

    async def _read_body(self, request: web.BaseRequest) -> bytes | None:
        """The body as sent, or None past `max_message_bytes`."""
        limit = self.sink.max_message_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        stream = request.content
        while chunk := await stream.readany():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
