"""Which rate to try next: an exponential probe up to the first failure,
then a bisection between the highest rate that held (`low`) and the lowest
that failed (`high`) until they are within the resolution.

The bisection takes a hint where one is good: a step that failed still
delivered something, and for most backends at their limit that is about the
limit (a token bucket delivers its rate, a saturated queue its service
rate). So after a failure the next try is just under the delivered rate
when that lies inside the bracket, and once a hint says the knee is just
above `low`, the next try is `low` plus the resolution, which either closes
the bracket or moves `low` up. Without a usable hint, the bracket is halved
in log space (rates span orders of magnitude). Every try narrows the
bracket, so the search ends.
"""
from __future__ import annotations

import math

from .settings import SearchSettings

# Try this share under a failed step's delivered rate.
HINT_MARGIN = 0.97
# Steps of `low` plus the resolution in a row, at most (a wrong hint would
# otherwise creep up the bracket by the resolution at a time).
MAX_CREEP = 2


class Planner:
    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self.low: float | None = None  # the highest rate that held
        self.high: float | None = None  # the lowest rate that failed
        self.hint: float | None = None  # what the last failed step delivered
        self.tried: set[float] = set()
        self.creep = 0

    def record(self, rate: float, passed: bool, delivered: float | None = None) -> None:
        self.tried.add(round(rate, 6))
        if passed:
            self.low = max(self.low or 0.0, rate)
        else:
            self.high = min(self.high, rate) if self.high is not None else rate
            self.hint = delivered

    @property
    def phase(self) -> str:
        return "probe" if self.high is None or self.low is None else "bisect"

    def converged(self) -> bool:
        if self.low is None or self.high is None:
            return False
        width = max(self.low * self.settings.resolution, self.settings.min_step)
        return self.high <= (self.low + width) * (1 + 1e-9)

    def next(self) -> float | None:
        """The rate to try next; None when the search is over (converged,
        the max rate held, or the min rate failed)."""
        s = self.settings
        if self.low is None and self.high is None:
            return s.min_rate
        if self.high is None:  # every step held: climb
            if s.max_rate and self.low >= s.max_rate:
                return None
            rate = self.low * s.factor
            return min(rate, s.max_rate) if s.max_rate else rate
        if self.low is None:
            # Failed from the first step: below min_rate is not searched,
            # unless it was chosen for the user (auto): then probe downward.
            rate = self.high / s.factor
            return rate if s.auto_min and rate >= s.floor * (1 - 1e-9) else None
        if self.converged():
            return None
        low, high, step = self.low, self.high, 1 + s.resolution
        if self.hint is not None:
            guess = self.hint * HINT_MARGIN
            if low * step < guess < high and round(guess, 6) not in self.tried:
                self.creep = 0
                return guess
            if guess <= low * step < high and self.creep < MAX_CREEP:
                self.creep += 1
                return low * step
        self.creep = 0
        return math.sqrt(low * high)
