"""Misbehaviour on demand: errors, partial success and delay, to exercise a
client's retry and accounting paths."""
from __future__ import annotations

import math
from dataclasses import dataclass

import grpc

from ..errors import SinkError


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
    """

    unavailable_first_s: float = 0
    unavailable_every: int = 0
    error_code: str | None = None
    reject_fraction: float = 0
    delay_ms: float = 0

    def __post_init__(self) -> None:
        if self.error_code is not None and self.error_code not in grpc.StatusCode.__members__:
            raise SinkError(f"error_code {self.error_code!r} is not a grpc.StatusCode name")
        if self.error_code == "OK":
            raise SinkError("error_code 'OK' is not an error")
        if not 0 <= self.reject_fraction <= 1:
            raise SinkError(f"reject_fraction {self.reject_fraction} is out of range [0, 1]")
        if self.unavailable_first_s < 0 or self.unavailable_every < 0 or self.delay_ms < 0:
            raise SinkError("unavailable_first_s, unavailable_every and delay_ms must be >= 0")

    def refusal(self, since_start: float, sequence: int) -> tuple[grpc.StatusCode, str] | None:
        """The error to answer request number `sequence` (1-based) with, if any."""
        if since_start < self.unavailable_first_s:
            return grpc.StatusCode.UNAVAILABLE, f"sink fault: unavailable for the first {self.unavailable_first_s:g} s"
        if self.unavailable_every and sequence % self.unavailable_every == 0:
            return grpc.StatusCode.UNAVAILABLE, f"sink fault: every {self.unavailable_every}th request is unavailable"
        if self.error_code:
            return grpc.StatusCode[self.error_code], f"sink fault: answering {self.error_code}"
        return None

    def rejected(self, events: int) -> int:
        return math.floor(events * self.reject_fraction)
