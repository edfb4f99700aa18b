"""What both carriers share: the target, the retry policy, the outcome of a
batch, the Transport interface the engine drives, and the reading of an
Export*ServiceResponse's partial_success (a gRPC OK and an HTTP 200 carry the
same message). The carriers import this module, never the package, so the
factory in `__init__` can import them without a cycle.
"""
from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .hints import explain, permanent

GRPC = "grpc"
HTTP_PROTOBUF = "http/protobuf"
PROTOCOLS: tuple[str, ...] = (GRPC, HTTP_PROTOBUF)
# Which client carries gRPC: grpcio, or libcurl over HTTP/2 (transport/grpc_curl.py,
# which sends messages compressed in advance); auto picks as grpc_curl.choose says.
GRPCIO = "grpcio"
CURL = "curl"
GRPC_CLIENTS: tuple[str, ...] = ("auto", GRPCIO, CURL)
# Short names a person types; the CLI, the YAML and the environment take them alike.
PROTOCOL_ALIASES: dict[str, str] = {"http": HTTP_PROTOBUF}
COMPRESSIONS: tuple[str, ...] = ("none", "gzip", "zstd")

# How an event that was not delivered ended, as Outcome.reasons and the reports count it.
FAILED = "failed"  # no answer that took it: retries ran out, a transport error, the run ended
REJECTED = "rejected"  # the backend answered and refused it (partial success, HTTP 400, INVALID_ARGUMENT)
# How long a backend's reason may be in a line a person reads: a whole error
# page or a list of every refused series says no more than its start.
REASON_CHARS = 200

# The response type per signal and its partial_success field that counts rejected events.
_RESPONSES: dict[str, tuple[type[Message], str]] = {
    "traces": (ExportTraceServiceResponse, "rejected_spans"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
    "logs": (ExportLogsServiceResponse, "rejected_log_records"),
}


@dataclass(frozen=True)
class Target:
    """Where and how one signal is sent. `endpoint` is host:port for gRPC and
    the full URL (path included) for OTLP/HTTP."""

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
    protocol: str = GRPC
    # For gRPC, the client that carries it (GRPCIO or CURL; resolved, never "auto").
    grpc_client: str = GRPCIO
    # Several tenants (otlp.tenants): tenant n's whole header set is
    # tenant_headers[n] (`headers` with its own over them); empty: one tenant.
    tenant_headers: tuple[tuple[tuple[str, str], ...], ...] = field(default=(), repr=False)

    def header_sets(self) -> tuple[tuple[tuple[str, str], ...], ...]:
        """The headers of each tenant's requests: one set without tenants."""
        return self.tenant_headers or (self.headers,)


@dataclass(frozen=True)
class RetryPolicy:
    """How a request that failed retryably is retried: until `max_attempts`
    (0: no count bound) or `max_elapsed` seconds since its first attempt
    (0: no time bound), whichever comes first; never past the run's end."""

    max_attempts: int = 5
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    multiplier: float = 2.0
    max_elapsed: float = 0.0

    def allows(self, attempt: int, elapsed: float, wait: float) -> bool:
        """Whether attempt `attempt + 1` may follow, `wait` s from now, `elapsed` s after the first began."""
        if self.max_attempts and attempt >= self.max_attempts:
            return False
        return not self.max_elapsed or elapsed + wait <= self.max_elapsed

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff before attempt `attempt + 1`."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return rng.uniform(0.5 * ceiling, ceiling)


def short_reason(text: str, limit: int = REASON_CHARS) -> str:
    """A backend's error message as one line of at most `limit` characters:
    whitespace (newlines of an HTML page, a stack trace) folded, the rest cut
    with "..."."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3].rstrip() + "..."


def reason_text(code: str | None, message: str) -> str:
    """How a reason reads in lines and reports: the carrier's code and the
    backend's message, shortened ("HTTP 400: out of order sample")."""
    if code and message:
        return short_reason(f"{code}: {message}")
    return short_reason(code or message) or "no reason given"


@dataclass
class Outcome:
    """How one batch ended: delivered (accepted minus rejected), rejected
    (partial success, or an answer that refused the data), or failed after
    its retries. `code` names the last error as its carrier does
    ("UNAVAILABLE", "HTTP 503", ...) and `message` the backend's (shortened);
    `reasons` counts the events that were not delivered per (FAILED or
    REJECTED, reason_text)."""

    events: int
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    attempts: int = 0
    code: str | None = None
    message: str = ""
    extra: dict = field(default_factory=dict)
    reasons: dict[tuple[str, str], int] = field(default_factory=dict)
    # What a reason usually means (hints.explain), read from the whole
    # message: its shortened text may have lost the telling part.
    hints: dict[str, str] = field(default_factory=dict)
    # Seconds from each request attempt's start to its answer (or error), and
    # from the batch's hand-over to its outcome, retries and backoff included.
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0


class Transport(Protocol):
    """One signal's sender, as the engine drives it. `on_retry(code,
    message)`, when set, hears of every attempt that failed and will be
    retried (the final outcome comes later, after the retries). `deadline`,
    when set, is the run's end (time.monotonic()): no back-off waits past it."""

    on_retry: Callable[[str, str], None] | None
    on_answer: Callable[[int, int], None] | None
    deadline: float | None
    # Bytes of each request that are the carrier's framing, not the OTLP
    # message (gRPC on libcurl is handed messages with their 5-byte prefix).
    framing_bytes: int

    def send(self, requests: list[bytes], piece_events: tuple[int, ...], done: Callable[[Outcome], None],
             pace: Callable[[int], None] | None = None, tenant: int = 0) -> None:
        """Send `requests` (the pieces of one batch, usually one, holding
        `piece_events` events each) and call `done` once with the outcome,
        from a transport or timer thread. `pace(i)`, when given, is called in
        the caller's thread before piece i > 0 goes (it waits for the rate).
        `tenant`: whose headers the requests carry (Target.header_sets)."""

    def stop_retrying(self) -> None:
        """Retry nothing more: requests waiting to be retried finish as failed
        now, with the error that made them wait; requests on the wire are
        still answered."""

    def close(self) -> None:
        """Stop retrying and sending; whatever is pending finishes as failed, now."""


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


class Retrier:
    """Runs retries later on timer threads; `flush` gives up the pending ones
    at once. Whoever takes a timer out of the set (its own thread when it
    fires, or flush) runs it, so a retry that fires as it is flushed still
    ends exactly once."""

    def __init__(self) -> None:
        self.rng = random.Random()
        self._pending: dict[threading.Timer, Callable[[], None]] = {}
        self._lock = threading.Lock()

    def later(self, delay: float, action: Callable[[], None], give_up: Callable[[], None] | None = None) -> None:
        """Run `action` after `delay` seconds; if flushed first, run `give_up`
        (default: `action`) instead, now."""
        def run() -> None:
            with self._lock:
                if self._pending.pop(timer, None) is None:
                    return  # flushed meanwhile: given up there
            action()

        timer = threading.Timer(delay, run)
        timer.daemon = True
        with self._lock:
            self._pending[timer] = give_up or action
        timer.start()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for timer, give_up in pending.items():
            timer.cancel()
            give_up()


class BatchState:
    """Collects the outcomes of a batch's pieces; reports once all are done."""

    def __init__(self, requests: list[bytes], piece_events: tuple[int, ...], done: Callable[[Outcome], None],
                 tenant: int = 0, on_answer: Callable[[int, int], None] | None = None) -> None:
        self.requests = requests
        self.on_answer = on_answer
        self.tenant = tenant
        self.piece_events = piece_events
        self.outcome = Outcome(events=sum(piece_events))
        self.done = done
        self.pending = len(requests)
        self.lock = threading.Lock()
        # When each piece was first attempted: a batch's latency is its slowest
        # piece's, from its hand-over to its outcome (retries and backoff
        # included), not the time the engine spent pacing its pieces.
        self.handed_over: list[float | None] = [None] * len(requests)

    def attempt_started(self, index: int) -> None:
        # Pieces of one batch are attempted from several threads (the caller's,
        # a carrier's, retry timers): the counts are shared state.
        with self.lock:
            self.outcome.attempts += 1
            if self.handed_over[index] is None:
                self.handed_over[index] = time.monotonic()

    def attempt_took(self, seconds: float) -> None:
        """One request attempt ended (answered, refused or errored) after `seconds`."""
        with self.lock:
            self.outcome.latencies.append(seconds)

    def answered(self, index: int, refused: int) -> None:
        """An attempt of piece `index` ended (an answer, or a transport
        error) with `refused` of its events refused; told to on_answer as it
        happens, not when the batch's outcome comes after its retries."""
        if self.on_answer is not None:
            self.on_answer(self.piece_events[index], refused)

    def retried(self) -> None:
        with self.lock:
            self.outcome.extra["retries"] = self.outcome.extra.get("retries", 0) + 1

    def finish_piece(self, index: int, failed: bool = False, rejected: int = 0,
                     code: str | None = None, message: str = "") -> None:
        """Piece `index` ended: all its events failed, or `rejected` of them
        were refused (the rest delivered); `code` and `message` say why."""
        events = self.piece_events[index]
        now = time.monotonic()
        with self.lock:
            outcome = self.outcome
            handed_over = self.handed_over[index]
            if handed_over is not None:
                outcome.elapsed = max(outcome.elapsed, now - handed_over)
            if failed:
                outcome.failed += events
                lost, kind = events, FAILED
            else:
                rejected = min(rejected, events)
                if self.on_answer is not None:
                    self.on_answer(events, rejected)
                outcome.rejected += rejected
                outcome.delivered += events - rejected
                lost, kind = rejected, REJECTED
            if lost:
                reason = reason_text(code, message)
                outcome.reasons[kind, reason] = outcome.reasons.get((kind, reason), 0) + lost
                hint = explain(message)
                if hint:
                    outcome.hints[reason] = hint
            if code is not None:
                outcome.code = code
            if message:
                outcome.message = short_reason(message)
            self.pending -= 1
            last = self.pending == 0
        if last:
            self.done(self.outcome)


class Carrier:
    """What every carrier does alike: a batch's pieces handed over in order
    (paced by the engine), each attempt counted, retries and their back-off
    (never past the run's deadline), nothing sent once closed. A carrier
    implements `_dispatch` (send one attempt of one piece) and hands each
    error to `_retry_or_fail`. Its __init__ sets `retry` and `_retrier`."""

    retry: RetryPolicy
    _retrier: Retrier
    framing_bytes: int = 0
    _closed: bool = False
    _retries_stopped: bool = False
    on_retry: Callable[[str, str], None] | None = None
    # Hears of every attempt's end: (its events, those refused); see BatchState.answered.
    on_answer: Callable[[int, int], None] | None = None
    deadline: float | None = None

    def send(self, requests: list[bytes], piece_events: tuple[int, ...], done: Callable[[Outcome], None],
             pace: Callable[[int], None] | None = None, tenant: int = 0) -> None:
        state = BatchState(requests, piece_events, done, tenant, self.on_answer)
        for index in range(len(requests)):
            if index and pace is not None:
                pace(index)
            self._attempt(state, index, 1)

    def _attempt(self, state: BatchState, index: int, attempt: int) -> None:
        if self._closed:
            state.finish_piece(index, failed=True, code="CANCELLED", message="sender stopped")
            return
        state.attempt_started(index)
        self._dispatch(state, index, attempt)

    def _dispatch(self, state: BatchState, index: int, attempt: int) -> None:
        raise NotImplementedError

    def _retry_or_fail(self, state: BatchState, index: int, attempt: int, code: str, message: str,
                       delay: float | None = None, retryable: bool = True) -> None:
        """Attempt `attempt` of piece `index` failed with `code`: retry it
        after `delay` (the server's) or the back-off, or finish it as failed.
        A back-off that would end past the run's deadline is not waited: the
        run's duration bounds it even when every request fails."""
        state.answered(index, state.piece_events[index])
        if retryable and not (self._closed or self._retries_stopped) and not permanent(message):
            wait = delay if delay is not None else self.retry.backoff(attempt, self._retrier.rng)
            if not math.isfinite(wait):
                wait = self.retry.max_backoff
            now = time.monotonic()
            first = state.handed_over[index]
            if self.retry.allows(attempt, now - (first if first is not None else now), wait) \
                    and (self.deadline is None or now + wait < self.deadline):
                state.retried()
                if self.on_retry is not None:
                    self.on_retry(code, message)
                self._retrier.later(wait, lambda: self._attempt(state, index, attempt + 1),
                                    give_up=lambda: state.finish_piece(index, failed=True, code=code,
                                                                       message=message))
                return
        state.finish_piece(index, failed=True, code=code, message=message)

    def stop_retrying(self) -> None:
        self._retries_stopped = True
        self._retrier.flush()
