"""The rate limiter every worker takes its events from."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .plan import RatePlan

# Allowance a worker may keep unused (a slow endpoint held it back), in
# seconds at the current rate: what it may send above the plan once the
# endpoint catches up. 5 % of any one second, as the rate promise says.
BURST_SECONDS = 0.05


class TokenBucket:
    """Events per second as `plan` says (a constant rate, or ramping stages,
    over seconds since `started`), charged per request.

    The bucket starts empty: the first request goes as soon as the plan
    allows an event, and the bucket goes into debt by its events; the next
    request waits until the debt is paid. A request is never held back for
    being large (it would starve), and never sent ahead of its allowance
    either. Allowance a slow endpoint left unused is kept only up to
    BURST_SECONDS at the current rate. So over any interval the events sent
    exceed the plan's by at most that burst and one request."""

    def __init__(self, plan: RatePlan, started: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self.clock = clock
        self.started = clock() if started is None else started
        self.last = clock() - self.started
        self.tokens = 0.0

    def cap(self, t: float) -> float:
        return self.plan.rate_at(t) * BURST_SECONDS

    def acquire(self, n: int, stop: threading.Event, deadline: float | None = None) -> bool:
        """Take `n` events' tokens (one request's), waiting as the plan says;
        False when told to stop first or when `deadline` (on the clock)
        passes while waiting."""
        plan = self.plan
        while True:
            clock = self.clock()
            if deadline is not None and clock >= deadline:
                return False
            now = clock - self.started
            allowed = plan.events_by(now)
            self.tokens = min(self.cap(now), self.tokens + allowed - plan.events_by(self.last))
            self.last = now
            if self.tokens > 0:
                self.tokens -= n
                return True
            ready = plan.time_for(allowed - self.tokens + 1e-6)
            wait = 0.05 if ready is None else min(0.05, max(ready - now, 0.0005))
            if stop.wait(wait):
                return False
