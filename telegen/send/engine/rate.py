"""The rate limiter every worker takes its events from."""
from __future__ import annotations

import threading
import time

from .plan import RatePlan


class TokenBucket:
    """Events per second with debt: a batch larger than the burst still goes,
    and the next waits until the average is back on target. The rate follows
    `plan` (constant, or ramping stages) over seconds since `started`; tokens
    a slow endpoint left unused are capped at the burst (a tenth of a second
    at the current rate, at least one batch), so a sender that fell behind
    never floods the endpoint to catch up."""

    def __init__(self, plan: RatePlan, burst_floor: float, started: float | None = None) -> None:
        self.plan = plan
        self.burst_floor = burst_floor
        self.started = time.monotonic() if started is None else started
        self.last = time.monotonic() - self.started
        # A plan that starts from 0 (a ramp) sends nothing before it allows some.
        self.tokens = self.burst(self.last) if plan.rate_at(self.last) > 0 else 0.0

    def burst(self, t: float) -> float:
        return max(self.burst_floor, self.plan.rate_at(t) / 10)

    def acquire(self, n: int, stop: threading.Event, deadline: float | None = None) -> bool:
        """Take `n` events' tokens, waiting as the plan says; False when told
        to stop first or when `deadline` (monotonic) passes while waiting."""
        plan = self.plan
        while True:
            clock = time.monotonic()
            if deadline is not None and clock >= deadline:
                return False
            now = clock - self.started
            allowed = plan.events_by(now)
            self.tokens = min(self.burst(now), self.tokens + allowed - plan.events_by(self.last))
            self.last = now
            if self.tokens > 0:
                self.tokens -= n
                return True
            ready = plan.time_for(allowed - self.tokens + 1e-6)
            wait = 0.05 if ready is None else min(0.05, max(ready - now, 0.0005))
            if stop.wait(wait):
                return False

