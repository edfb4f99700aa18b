"""Misbehaviour on demand: errors, partial success, delay, dropped
connections and a capacity, to exercise a client's retry and accounting
paths and to give a capacity search a backend whose limit is known."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import grpc

from ..errors import SinkError
from .capacity import per_second

# What a sink does with the events over its `capacity`.
CAPACITY_MODES = ("refuse", "queue")

# The refusals that tell a client to come back later: only these carry `retry_after_s`.
_RETRY_LATER = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


class Refusal(NamedTuple):
    """How to refuse one request: an error `code` and `message`; `drop`: close
    the connection without an answer where the carrier can (HTTP; gRPC answers
    `code`, UNAVAILABLE); `retry_after_s`: the delay to ask the client to wait
    (0: none)."""

    code: grpc.StatusCode
    message: str
    drop: bool = False
    retry_after_s: float = 0


@dataclass(frozen=True)
class SinkFaults:
    """Misbehaviour on demand, to exercise a client's retry and accounting paths.

    - `unavailable_first_s`: answer UNAVAILABLE for this many seconds after start.
    - `unavailable_every`: answer every Nth request (counted over all signals)
      with UNAVAILABLE.
    - `error_code`: answer every request with this `grpc.StatusCode` name.
    - `reject_fraction`: accept requests but report this fraction of their events
      (rounded down) as rejected through `partial_success`.
    - `delay_ms`: sleep this long in every request before answering.
    - `retry_after_s`: with UNAVAILABLE or RESOURCE_EXHAUSTED refusals, ask the
      client to retry after this many seconds: a `Retry-After` header (whole
      seconds, rounded up) over HTTP, a google.rpc.RetryInfo in the
      `grpc-status-details-bin` trailer over gRPC. 0: no delay is suggested.
    - `drop_every`: every Nth request (counted over all signals, with
      `unavailable_every`) is dropped: over HTTP the connection is closed with
      no response; over gRPC it is answered UNAVAILABLE.
    - `capacity`: events per second the sink takes, over all signals together
      (0: no limit); what happens above it is `capacity_mode`'s:
      "refuse" answers the requests over it RESOURCE_EXHAUSTED (HTTP 429, with
      `retry_after_s`), a token bucket (telegen.sink.capacity.TokenBucket);
      "queue" accepts every request but answers it only once a single server
      of that rate would have served it (ServiceQueue), so latency grows
      with load. The other faults are applied first.
    """

    unavailable_first_s: float = 0
    unavailable_every: int = 0
    error_code: str | None = None
    reject_fraction: float = 0
    delay_ms: float = 0
    retry_after_s: float = 0
    drop_every: int = 0
    capacity: float = 0
    capacity_mode: str = "refuse"

    def __post_init__(self) -> None:
        if self.error_code is not None and self.error_code not in grpc.StatusCode.__members__:
            raise SinkError(f"error_code {self.error_code!r} is not a grpc.StatusCode name")
        if self.error_code == "OK":
            raise SinkError("error_code 'OK' is not an error")
        if not 0 <= self.reject_fraction <= 1:
            raise SinkError(f"reject_fraction {self.reject_fraction} is out of range [0, 1]")
        if (self.unavailable_first_s < 0 or self.unavailable_every < 0 or self.delay_ms < 0
                or self.retry_after_s < 0 or self.drop_every < 0):
            raise SinkError("unavailable_first_s, unavailable_every, delay_ms, retry_after_s and drop_every "
                            "must be >= 0")
        # `not >= 0` catches NaN too; inf would be no limit spelt oddly.
        if not 0 <= self.capacity < math.inf:
            raise SinkError(f"capacity {self.capacity} is invalid: expected events per second >= 0 (0: no limit)")
        if self.capacity_mode not in CAPACITY_MODES:
            raise SinkError(f"capacity_mode {self.capacity_mode!r} is invalid: expected "
                            f"{' or '.join(CAPACITY_MODES)}")

    def refusal(self, since_start: float, sequence: int) -> Refusal | None:
        """How to refuse request number `sequence` (1-based), if at all."""
        if since_start < self.unavailable_first_s:
            return self._refuse(grpc.StatusCode.UNAVAILABLE,
                                f"sink fault: unavailable for the first {self.unavailable_first_s:g} s")
        if self.drop_every and sequence % self.drop_every == 0:
            return self._refuse(grpc.StatusCode.UNAVAILABLE,
                                f"sink fault: every {self.drop_every}th request is dropped", drop=True)
        if self.unavailable_every and sequence % self.unavailable_every == 0:
            return self._refuse(grpc.StatusCode.UNAVAILABLE,
                                f"sink fault: every {self.unavailable_every}th request is unavailable")
        if self.error_code:
            return self._refuse(grpc.StatusCode[self.error_code], f"sink fault: answering {self.error_code}")
        return None

    def describe_capacity(self) -> str | None:
        """"capacity 20,000 events/s (refusing above it)", or None without one."""
        if not self.capacity:
            return None
        above = "refusing" if self.capacity_mode == "refuse" else "queueing"
        return f"capacity {per_second(self.capacity)} events/s ({above} above it)"

    def over_capacity(self) -> Refusal:
        """How to refuse a request over `capacity` (refuse mode)."""
        return self._refuse(grpc.StatusCode.RESOURCE_EXHAUSTED, f"sink capacity: over {per_second(self.capacity)} "
                                                                f"events/s")

    def _refuse(self, code: grpc.StatusCode, message: str, drop: bool = False) -> Refusal:
        return Refusal(code, message, drop, self.retry_after_s if code in _RETRY_LATER else 0)

    def rejected(self, events: int) -> int:
        return math.floor(events * self.reject_fraction)
