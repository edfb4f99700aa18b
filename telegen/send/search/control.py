"""A target rate that a controller moves while a run goes on: what the
capacity search (and a fleet's controller) turns, and what every worker's
token bucket reads, in one process or in forked ones.

The rate is piecewise constant. Its state is the last change: when it
happened (seconds since the run started), the events allowed by then, and
the rate since. It lives in shared memory, written under a sequence lock
(odd while a change is being written), so a forked worker reading it without
a lock never mixes two changes. The writer's process also keeps the whole
history, for the progress lines' and reports' target over an interval.
"""
from __future__ import annotations

import bisect
import threading
import time
from multiprocessing.sharedctypes import RawArray

# The shared state's slots: the sequence, then the last change.
_SEQUENCE, _AT, _EVENTS, _RATE = range(4)


class RateControl:
    """The run-wide target rate (events/s over all signals), set by a
    controller with `set`; `plan(share)` is a worker's view of its share."""

    def __init__(self, rate: float = 0.0) -> None:
        self._shared = RawArray("d", 4)
        self._shared[_RATE] = rate
        self._lock = threading.Lock()  # writers in one process take turns
        self.started: float | None = None
        # (at, events allowed by then, rate from then on), in the writer's process.
        self.history: list[tuple[float, float, float]] = [(0.0, 0.0, rate)]

    def begin(self, started: float) -> None:
        """The run started at `started` (time.monotonic()); before it forks."""
        self.started = started

    def now(self) -> float:
        """Seconds since the run started (0 before it has)."""
        return time.monotonic() - self.started if self.started is not None else 0.0

    @property
    def rate(self) -> float:
        return self._read()[2]

    def set(self, rate: float) -> None:
        """From now on, `rate` events per second (0 pauses sending)."""
        with self._lock:
            at = self.now()
            events = self.events_by(at)
            shared = self._shared
            shared[_SEQUENCE] += 1
            shared[_AT], shared[_EVENTS], shared[_RATE] = at, events, float(rate)
            shared[_SEQUENCE] += 1
            self.history.append((at, events, float(rate)))

    def _read(self) -> tuple[float, float, float]:
        shared = self._shared
        while True:
            before = shared[_SEQUENCE]
            state = shared[_AT], shared[_EVENTS], shared[_RATE]
            if before % 2 == 0 and shared[_SEQUENCE] == before:
                return state

    def events_by(self, t: float) -> float:
        at, events, rate = self._read()
        return events + rate * max(t - at, 0.0)

    def time_for(self, events: float) -> float | None:
        at, before, rate = self._read()
        if events <= before:
            return at
        return at + (events - before) / rate if rate > 0 else None

    def average(self, start: float, end: float) -> float:
        """The target's average over [start, end], from the history (the
        writer's process only)."""
        if end <= start:
            return 0.0
        return (self._events_in_history(end) - self._events_in_history(start)) / (end - start)

    def rate_at_in_history(self, t: float) -> float:
        index = bisect.bisect_right([change[0] for change in self.history], t) - 1
        return self.history[max(index, 0)][2]

    def _events_in_history(self, t: float) -> float:
        index = max(bisect.bisect_right([change[0] for change in self.history], t) - 1, 0)
        at, events, rate = self.history[index]
        return events + rate * max(t - at, 0.0)

    def plan(self, share: float = 1.0) -> ControlledPlan:
        return ControlledPlan(self, share)


class ControlledPlan:
    """A worker's share of a RateControl, as the token bucket reads a
    RatePlan: the events allowed by t, and when a count is allowed."""

    staged = False
    stages: tuple = ()
    segments: tuple = ()
    unthrottled = False
    controlled = True

    def __init__(self, control: RateControl, share: float = 1.0) -> None:
        self.control = control
        self.share = share

    @property
    def constant(self) -> float:
        return self.control.rate * self.share

    @property
    def peak(self) -> float:
        return self.constant

    def scaled(self, factor: float) -> ControlledPlan:
        return ControlledPlan(self.control, self.share * factor)

    def rate_at(self, t: float) -> float:
        return self.control.rate * self.share

    def events_by(self, t: float) -> float:
        return self.control.events_by(t) * self.share

    def time_for(self, events: float) -> float | None:
        return self.control.time_for(events / self.share) if self.share > 0 else None

    def average(self, start: float, end: float) -> float:
        return self.control.average(start, end) * self.share
