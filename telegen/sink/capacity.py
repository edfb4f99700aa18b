"""A sink with a known capacity: what a capacity search (`telegen send
--find-max`) needs to be tested against, and what a demo of it shows.

Two backends of `rate` events per second, counted over all signals together:

    TokenBucket   refuses what is over the rate (as a rate-limited ingest
                  answers 429 / RESOURCE_EXHAUSTED)
    ServiceQueue  accepts everything but serves it in order at the rate, so
                  latency grows with load (as a saturated backend does)

Both take the clock as an argument, so their arithmetic can be tested without
sleeping. Each holds its own lock: the gRPC handlers run on a thread pool.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

# The bucket holds this many seconds' worth of events: a short burst after an
# idle moment passes, but the admitted rate over any second stays near the
# capacity (within 10 %).
BURST_S = 0.1

Clock = Callable[[], float]


def per_second(rate: float) -> str:
    """A rate as people read it: 20,000 or 2.5."""
    return f"{rate:,.0f}" if rate >= 100 or rate == int(rate) else f"{rate:g}"


class TokenBucket:
    """Admits events at `rate` per second on average.

    A request is admitted while the balance is positive, and its events are
    taken all at once: the balance may go into debt by one request, so a
    request larger than the burst still passes (once the debt is paid) and
    requests of any size get the same rate. The balance refills at `rate` and
    holds at most `rate * burst_s` events, or one request's, whichever is more.
    Over a window of T seconds of overload the admitted events are
    `rate * T`, give or take one burst and one request.
    """

    def __init__(self, rate: float, burst_s: float = BURST_S, clock: Clock = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate {rate} must be > 0")
        self.rate = rate
        self.burst = rate * burst_s
        self._clock = clock
        self._lock = threading.Lock()
        self._balance = self.burst  # a fresh sink takes a burst at once, as one idle for a while does
        self._updated = clock()

    def admit(self, events: int) -> bool:
        """Whether a request of `events` events is admitted (its events then taken)."""
        with self._lock:
            now = self._clock()
            ceiling = max(self.burst, events)
            self._balance = min(ceiling, self._balance + (now - self._updated) * self.rate)
            self._updated = now
            if self._balance <= 0:
                return False
            self._balance -= events
            return True

    @property
    def balance(self) -> float:
        """Events that could be taken now without debt (negative: the debt), as of the last request."""
        with self._lock:
            return self._balance


class ServiceQueue:
    """One first-in, first-out server that serves `rate` events per second.

    A request of n events arriving at `now` starts when the server is free
    (`max(now, busy_until)`) and takes n / rate seconds; it is answered when
    it is served. Nothing is refused: offered less than the rate, latency is
    the service time; offered more, the throughput is the rate and latency
    grows as long as the overload lasts (bounded only by how many requests the
    clients keep in flight).
    """

    def __init__(self, rate: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate {rate} must be > 0")
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._busy_until = clock()

    def delay(self, events: int) -> float:
        """Seconds from now until a request of `events` events, arriving now,
        has been served: its wait in the queue plus its service time."""
        with self._lock:
            now = self._clock()
            start = max(now, self._busy_until)
            self._busy_until = start + events / self.rate
            return self._busy_until - now
