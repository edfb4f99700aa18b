"""Bursts: the target rate times `factor` for `length` seconds every `every`
seconds (the first burst one `every` after the start), on top of whatever
the rate plan says (one rate or ramping stages).

A token bucket needs the plan as a cumulative count of events allowed by
time t, and its inverse. Bursts are windows [k*every, k*every + length),
k >= 1; inside them the allowance grows `factor` times as fast. For one
constant rate both directions are closed forms (the common case, on every
request's path); under stages the windows' extra allowance is summed once
per window and kept, and the inverse is found by bisection.
"""
from __future__ import annotations

import math

from ..engine.plan import RatePlan


class BurstPlan:
    """`base` with bursts: the subset of RatePlan the token bucket reads."""

    def __init__(self, base: RatePlan, every: float, length: float, factor: float) -> None:
        if not (0 < length < every) or factor <= 0:
            raise ValueError("a burst lasts less than its period, with a positive factor")
        self.base = base
        self.every, self.length, self.factor = every, length, factor
        self._extra: list[float] = [0.0]  # the extra allowance of windows 1..k, summed

    # -- the bucket's view ----------------------------------------------------------

    @property
    def unthrottled(self) -> bool:
        return self.base.unthrottled

    def in_burst(self, t: float) -> bool:
        return t >= self.every and (t % self.every) < self.length

    def rate_at(self, t: float) -> float:
        rate = self.base.rate_at(t)
        return rate * self.factor if self.in_burst(t) else rate

    def events_by(self, t: float) -> float:
        t = max(t, 0.0)
        k = int(t // self.every)  # windows 1..k-1 are whole; window k may be under way
        partial = min(t - k * self.every, self.length) if k >= 1 else 0.0
        if not self.base.staged:
            rate = self.base.constant
            return rate * t + (self.factor - 1) * rate * (max(k - 1, 0) * self.length + partial)
        start = k * self.every
        extra = self._whole(k - 1) + (self.factor - 1) * (self.base.events_by(start + partial)
                                                           - self.base.events_by(start)) if k >= 1 else 0.0
        return self.base.events_by(t) + extra

    def time_for(self, events: float) -> float | None:
        if events <= 0:
            return 0.0
        if not self.base.staged:
            rate = self.base.constant
            if rate <= 0:
                return None
            # A period after the first: every - length at the rate, then length at rate * factor.
            plain, burst = rate * (self.every - self.length), rate * self.length * self.factor
            first = rate * self.every  # no burst before t = every
            if events <= first:
                return events / rate
            left = events - first
            periods = math.floor(left / (plain + burst))
            left -= periods * (plain + burst)
            t = self.every * (1 + periods)
            if left <= burst:
                return t + left / (rate * self.factor)
            return t + self.length + (left - burst) / rate
        # Stages: bisect on the allowance (monotone), from the base's own answer up.
        high = self.base.time_for(events)
        if high is None:
            return None
        low = 0.0
        while self.events_by(high) < events:
            low, high = high, high * 2 + 1.0
        for _ in range(60):
            middle = (low + high) / 2
            if self.events_by(middle) >= events:
                high = middle
            else:
                low = middle
        return high

    def _whole(self, windows: int) -> float:
        """Extra allowance of burst windows 1..windows, under stages."""
        while len(self._extra) <= windows:
            k = len(self._extra)
            start = k * self.every
            grown = (self.factor - 1) * (self.base.events_by(start + self.length) - self.base.events_by(start))
            self._extra.append(self._extra[-1] + grown)
        return self._extra[max(windows, 0)]
