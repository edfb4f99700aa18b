"""The OTLP/HTTP transport telegen did not keep: aiohttp's client on an
asyncio loop per signal, the engine handing requests over with
call_soon_threadsafe. A drop-in for telegen.send.transport.http.HttpTransport,
kept here so that benchmarks/test_http.py can measure it inside the engine
beside the libcurl transport that won (docs/performance.md). It passed the
same end-to-end tests (tests/test_send_http.py) before it was set aside.
"""
from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path

import aiohttp

from telegen._version import __version__
from telegen.errors import TelegenError
from telegen.send.transport.base import (
    BatchState,
    Carrier,
    Retrier,
    RetryPolicy,
    Target,
    parse_partial_success,
)
from telegen.send.transport.http import REJECTING_STATUS, RETRYABLE_STATUS, retry_after, status_message


def tls_context(target: Target) -> ssl.SSLContext:
    """The system's roots or `ca_file`, and the client certificate for mTLS."""
    for path, what in ((target.ca_file, "CA file"), (target.cert_file, "client certificate"),
                       (target.key_file, "client key")):
        if path and not Path(path).is_file():
            raise TelegenError(f"cannot read {what} {path}: no such file")
    try:
        context = ssl.create_default_context(cafile=target.ca_file or None)
        if target.cert_file:
            context.load_cert_chain(target.cert_file, target.key_file)
    except ssl.SSLError as exc:
        raise TelegenError(f"cannot use the TLS files of {target.endpoint}: {exc.reason or exc}") from None
    return context


class AiohttpTransport(Carrier):
    """Sends one signal's requests to its URL over OTLP/HTTP, asynchronously, with retries."""

    def __init__(self, signal: str, target: Target, retry: RetryPolicy) -> None:
        self.signal = signal
        self.target = target
        self.retry = retry
        self._gzip = target.compression == "gzip"
        self._headers = {"Content-Type": "application/x-protobuf", "User-Agent": f"telegen/{__version__}",
                         **({"Content-Encoding": "gzip"} if self._gzip else {}), **dict(target.headers)}
        self._ssl = tls_context(target) if target.endpoint.startswith("https:") else None
        self._timeout = aiohttp.ClientTimeout(total=target.timeout)
        self._retrier = Retrier()
        self._closed = False
        self.on_retry = None  # the engine's retry lines (telegen.send.transport.Transport)
        self._tasks: set[asyncio.Task] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"telegen-http-{signal}", daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession = asyncio.run_coroutine_threadsafe(self._open(), self._loop).result()

    async def _open(self) -> aiohttp.ClientSession:
        # No connection limit here: the engine bounds the requests in flight.
        connector = aiohttp.TCPConnector(limit=0, ssl=self._ssl if self._ssl is not None else False)
        return aiohttp.ClientSession(connector=connector, timeout=self._timeout, auto_decompress=True)

    def _dispatch(self, state: BatchState, index: int, attempt: int) -> None:
        # With gzip the engine hands over gzip members already (telegen.send.load.compression).
        try:
            self._loop.call_soon_threadsafe(self._start, state, index, attempt)
        except RuntimeError:  # the loop closed in between
            state.finish_piece(index, failed=True, code="CANCELLED", message="sender stopped")

    # -- on the loop's thread ---------------------------------------------

    def _start(self, state: BatchState, index: int, attempt: int) -> None:
        if self._closed:
            state.finish_piece(index, failed=True, code="CANCELLED", message="sender stopped")
            return
        task = self._loop.create_task(self._post(state, index, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, state: BatchState, index: int, attempt: int) -> None:
        try:
            async with self._session.post(self.target.endpoint, data=state.requests[index], headers=self._headers,
                                          allow_redirects=False) as response:
                body = await response.read()
                status, headers = response.status, response.headers
        except asyncio.CancelledError:
            state.finish_piece(index, failed=True, code="CANCELLED", message="sender stopped")
            return
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            message = str(exc) or type(exc).__name__
            self._failed(state, index, attempt, "CONNECTION", message, None, retryable=True)
            return
        except Exception as exc:  # noqa: BLE001 - every event must end counted, whatever broke
            state.finish_piece(index, failed=True, code="ERROR", message=f"{type(exc).__name__}: {exc}")
            return
        if 200 <= status < 300:
            rejected, message = parse_partial_success(self.signal, body)
            state.finish_piece(index, rejected=rejected, message=message)
            return
        if 300 <= status < 400:
            where = headers.get("Location", "nowhere")
            self._failed(state, index, attempt, f"HTTP {status}", f"redirected to {where} (not followed: set the "
                         "endpoint to where the collector is)", None, retryable=False)
            return
        if status in REJECTING_STATUS:  # the data itself refused: rejected, as the libcurl carrier counts it
            state.finish_piece(index, rejected=state.piece_events[index], code=f"HTTP {status}",
                               message=status_message(body, headers.get("Content-Type", "")))
            return
        retryable = status in RETRYABLE_STATUS
        delay = retry_after(headers.get("Retry-After")) if retryable else None
        self._failed(state, index, attempt, f"HTTP {status}", status_message(body, headers.get("Content-Type", "")),
                     delay, retryable)

    def _failed(self, state: BatchState, index: int, attempt: int, code: str, message: str, delay: float | None,
                retryable: bool) -> None:
        self._retry_or_fail(state, index, attempt, code, message, delay, retryable)

    async def _shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._session.close()

    def close(self) -> None:
        """Stop retrying; pending retries and requests in flight finish as failed, now."""
        self._closed = True
        self._retrier.flush()
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()
