"""OTLP/HTTP (http/protobuf) transport for pre-serialized requests, on libcurl.

Each request is a POST of the bytes the engine made, as
`application/x-protobuf`; with `compression: gzip` (or `zstd`) they are
already gzip members (zstd frames) (telegen.send.load.compression makes them:
patched in place, not compressed per send) and go out with
`Content-Encoding: gzip` (`zstd`). pycurl hands libcurl the bytes object itself, and
one thread per signal drives a curl multi handle, which keeps the
connections alive and reuses them. Which client to use was measured
(benchmarks/test_http.py, docs/performance.md): inside the engine, libcurl's
multi interface cost the sender the least CPU per event (aiohttp, the
runner-up, is kept in benchmarks/aiohttp_transport.py).

Per the OTLP specification (https://opentelemetry.io/docs/specs/otlp/#otlphttp):
a 2xx carries an Export*ServiceResponse whose partial_success counts as
rejected; 429, 502, 503 and 504 are retried, after `Retry-After` when the
server sends one (seconds or an HTTP date), otherwise after exponential
backoff with jitter; other statuses are not retried and their
google.rpc.Status message (decoded with the official classes) is kept for the
error line; 400, 413 and 422 refuse the data itself, so their events count as
rejected with that message. Redirects are not followed: a 3xx fails naming
where it pointed. A connection that fails (refused, reset, timed out) is
retried like a 503.
"""
from __future__ import annotations

import email.utils
import queue
import threading
import time
from collections.abc import Callable
from datetime import timezone
from pathlib import Path

import pycurl
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from ...errors import TelegenError
from .base import REASON_CHARS, BatchState, Carrier, Retrier, RetryPolicy, Target, parse_partial_success, short_reason

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# Answers that refuse the data itself (Prometheus' "out of order sample", a
# body over the size limit, a point too old): its events count as rejected
# with the backend's reason, like a partial success. Other statuses (401,
# 404, 500, ...) say nothing about the data: its events failed.
REJECTING_STATUS = frozenset({400, 413, 422})
# How long the curl thread waits in select before it looks for new requests;
# bounds the delay a request queued while others are in flight can see.
_POLL_S = 0.001
_IDLE_S = 0.1


def _check_files(target: Target) -> None:
    for path, what in ((target.ca_file, "CA file"), (target.cert_file, "client certificate"),
                       (target.key_file, "client key")):
        if path and not Path(path).is_file():
            raise TelegenError(f"cannot read {what} {path}: no such file")


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP
    date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def status_message(body: bytes, content_type: str) -> str:
    """The message of an error response, as one line: a google.rpc.Status
    when the body is protobuf (as the specification says), else the start
    of its text (an error page can be megabytes; the reason a person reads
    is cut shorter still, base.reason_text)."""
    if "protobuf" in content_type:
        try:
            return " ".join(status_pb2.Status.FromString(body).message.split())
        except DecodeError:
            pass
    return short_reason(body[:4 * REASON_CHARS].decode("utf-8", "replace"), 4 * REASON_CHARS)


class _Request:
    """One POST in flight: its piece, attempt and what came back."""

    __slots__ = ("state", "index", "attempt", "body", "chunks", "headers", "started")

    def __init__(self, state: BatchState, index: int, attempt: int, body: bytes) -> None:
        self.state = state
        self.index = index
        self.attempt = attempt
        self.body = body
        self.chunks: list[bytes] = []
        self.headers: dict[str, str] = {}
        self.started = 0.0  # when libcurl took it

    def header_line(self, line: bytes) -> None:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            self.headers[name.strip().lower()] = value.strip()


class HttpTransport(Carrier):
    """Sends one signal's requests to its URL over OTLP/HTTP, asynchronously, with retries."""

    # What a connection that fails (refused, reset, timed out) is called in the counts.
    CONNECTION_CODE = "CONNECTION"

    def __init__(self, signal: str, target: Target, retry: RetryPolicy) -> None:
        _check_files(target)
        self.signal = signal
        self.target = target
        self.retry = retry
        fixed = self._fixed_headers()
        # Per tenant, its whole header list, made once; a handle keeps the
        # last one it was given (tenant 0's when new) until a request of
        # another tenant takes it. One tenant: never changed.
        self._header_lists = [fixed + [f"{name}: {value}" for name, value in headers]
                              for headers in target.header_sets()]
        self._header_list = self._header_lists[0]
        self._handle_tenant: dict[pycurl.Curl, int] | None = {} if len(self._header_lists) > 1 else None
        self._retrier = Retrier()
        self.on_retry: Callable[[str, str], None] | None = None
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._closed = False
        self._multi = pycurl.CurlMulti()
        self._configure_multi(self._multi)
        self._idle: list[pycurl.Curl] = []
        self._active: dict[pycurl.Curl, _Request] = {}
        self._thread = threading.Thread(target=self._loop, name=f"telegen-http-{signal}", daemon=True)
        self._thread.start()

    def _fixed_headers(self) -> list[str]:
        """The headers every request carries, before the target's own."""
        compression = self.target.compression
        return ["Content-Type: application/x-protobuf",
                # libcurl would wait for a 100 Continue before a large body.
                "Expect:",
                *([f"Content-Encoding: {compression}"] if compression in ("gzip", "zstd") else [])]

    def _url(self) -> str:
        return self.target.endpoint

    def _configure_multi(self, multi: pycurl.CurlMulti) -> None:
        """Options of the multi handle (none for HTTP/1.1)."""

    def _configure(self, curl: pycurl.Curl) -> None:
        """Options of a new easy handle beyond the common ones (none for HTTP/1.1)."""

    def _body(self, data: bytes) -> bytes:
        # The request bodies go out as the engine made them (gzip members with compression gzip).
        return data

    def _dispatch(self, state: BatchState, index: int, attempt: int) -> None:
        self._queue.put(_Request(state, index, attempt, self._body(state.requests[index])))

    # -- the curl thread --------------------------------------------------

    def _handle(self, request: _Request) -> pycurl.Curl:
        curl = self._idle.pop() if self._idle else self._new_handle()
        if self._handle_tenant is not None:
            tenant = request.state.tenant
            if self._handle_tenant.get(curl, 0) != tenant:
                curl.setopt(pycurl.HTTPHEADER, self._header_lists[tenant])
                self._handle_tenant[curl] = tenant
        curl.setopt(pycurl.POSTFIELDS, request.body)
        curl.setopt(pycurl.WRITEFUNCTION, request.chunks.append)
        curl.setopt(pycurl.HEADERFUNCTION, request.header_line)
        return curl

    def _new_handle(self) -> pycurl.Curl:
        target = self.target
        curl = pycurl.Curl()
        curl.setopt(pycurl.URL, self._url())
        curl.setopt(pycurl.HTTPHEADER, self._header_list)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        curl.setopt(pycurl.TIMEOUT_MS, max(1, int(target.timeout * 1000)))
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(min(target.timeout, 10.0) * 1000)))
        curl.setopt(pycurl.TCP_NODELAY, 1)
        # Its default 64 KiB upload buffer cuts a 600 KB body into many sends.
        curl.setopt(pycurl.UPLOAD_BUFFERSIZE, 2 * 2**20)
        if target.ca_file:
            curl.setopt(pycurl.CAINFO, target.ca_file)
        if target.cert_file:
            curl.setopt(pycurl.SSLCERT, target.cert_file)
            curl.setopt(pycurl.SSLKEY, target.key_file)
        self._configure(curl)
        return curl

    def _loop(self) -> None:
        multi = self._multi
        while True:
            if not self._take_new(block=not self._active):
                break
            if self._active:
                multi.select(_POLL_S)
                while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                    pass
                self._collect()
        for curl, request in list(self._active.items()):
            multi.remove_handle(curl)
            request.state.finish_piece(request.index, failed=True, code="CANCELLED", message="sender stopped")
        self._active.clear()
        for curl in self._idle:
            curl.close()
        multi.close()

    def _take_new(self, block: bool) -> bool:
        """Add queued requests to the multi handle; False once closed."""
        try:
            request = self._queue.get(timeout=_IDLE_S) if block else self._queue.get_nowait()
        except queue.Empty:
            return not self._closed
        while True:
            if request is None:
                return False
            curl = self._handle(request)
            self._active[curl] = request
            request.started = time.monotonic()
            self._multi.add_handle(curl)
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                return True

    def _collect(self) -> None:
        while True:
            queued, succeeded, failed = self._multi.info_read()
            for curl in succeeded:
                self._finished(curl, None, "")
            for curl, errno, message in failed:
                self._finished(curl, errno, message)
            if not queued:
                return

    def _finished(self, curl: pycurl.Curl, errno: int | None, error: str) -> None:
        self._multi.remove_handle(curl)
        request = self._active.pop(curl)
        request.state.attempt_took(time.monotonic() - request.started)
        status = curl.getinfo(pycurl.RESPONSE_CODE) if errno is None else 0
        curl.setopt(pycurl.POSTFIELDS, b"")  # drop the reference to the body
        self._idle.append(curl)
        if errno is not None:
            self._failed(request, self.CONNECTION_CODE, self._connection_message(errno, error), None, retryable=True)
            return
        try:
            self._answered(request, status, b"".join(request.chunks))
        except Exception as exc:  # noqa: BLE001 - an answer nobody can read fails its piece, never the thread
            request.state.finish_piece(request.index, failed=True, code="BAD_ANSWER",
                                       message=f"unreadable answer: {type(exc).__name__}: {exc}")

    def _connection_message(self, errno: int, error: str) -> str:
        """How a transfer that failed without an answer is told (its reason in the counts)."""
        return f"curl error {errno}: {error}"

    def _answered(self, request: _Request, status: int, body: bytes) -> None:
        """What an answer (HTTP `status`, `body`, the headers) means for its piece."""
        if 200 <= status < 300:
            rejected, message = parse_partial_success(self.signal, body)
            request.state.finish_piece(request.index, rejected=rejected, message=message)
            return
        content_type = request.headers.get("content-type", "")
        if 300 <= status < 400:
            where = request.headers.get("location", "nowhere")
            self._failed(request, f"HTTP {status}", f"redirected to {where} (not followed: set the endpoint "
                                                    "to where the collector is)", None, retryable=False)
            return
        if status in REJECTING_STATUS:
            # The backend read the request and refused its data: rejected, as partial success is.
            request.state.finish_piece(request.index, rejected=request.state.piece_events[request.index],
                                       code=f"HTTP {status}", message=status_message(body, content_type))
            return
        delay = retry_after(request.headers.get("retry-after")) if status in RETRYABLE_STATUS else None
        self._failed(request, f"HTTP {status}", status_message(body, content_type), delay,
                     retryable=status in RETRYABLE_STATUS)

    def _failed(self, request: _Request, code: str, message: str, delay: float | None, retryable: bool) -> None:
        self._retry_or_fail(request.state, request.index, request.attempt, code, message, delay, retryable)

    def close(self) -> None:
        """Stop retrying; pending retries and requests in flight finish as failed, now."""
        self._closed = True
        self._retrier.flush()
        self._queue.put(None)
        self._thread.join(timeout=5.0)

