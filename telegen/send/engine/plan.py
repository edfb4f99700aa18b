"""Target rate over time: k6's ramping stages (`sending.stages`).

Each stage moves the target linearly from the previous stage's target (the
first from 0) to its own over its duration; a stage whose target equals the
previous one holds, and a stage of duration 0 jumps. Without stages the plan
is one constant rate for the whole run.

The token bucket reads the plan as a cumulative count of events allowed by
time t (the integral of the rate), and inverts it to know how long to wait,
so a ramp is followed continuously, not in steps.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    duration: float  # seconds
    events_per_second: float  # the target reached at the stage's end


@dataclass(frozen=True)
class Segment:
    start: float  # seconds since sending started
    end: float
    rate_from: float
    rate_to: float
    events_before: float  # events the plan allows by `start`

    @property
    def duration(self) -> float:
        return self.end - self.start

    def events(self, t: float) -> float:
        """Events allowed from the segment's start to t (start <= t <= end)."""
        tau = t - self.start
        if self.duration <= 0:
            return 0.0
        slope = (self.rate_to - self.rate_from) / self.duration
        return self.rate_from * tau + 0.5 * slope * tau * tau

    def time_for(self, events: float) -> float | None:
        """When, within the segment, `events` (counted from its start) are allowed; None: not within it."""
        if events <= 0:
            return self.start
        if self.duration <= 0:
            return None
        slope = (self.rate_to - self.rate_from) / self.duration
        a, b = 0.5 * slope, self.rate_from
        # a*tau^2 + b*tau = events, in the form that stays exact for a ~ 0 and for a < 0.
        root = b * b + 4 * a * events
        if root < 0 or b + math.sqrt(root) <= 0:
            return None
        tau = 2 * events / (b + math.sqrt(root))
        return self.start + tau if tau <= self.duration * (1 + 1e-12) else None


class RatePlan:
    """Target events per second as a function of seconds since sending
    started. `stages` empty: `constant` events/s throughout (0: unthrottled)."""

    def __init__(self, stages: Sequence[Stage] = (), constant: float = 0.0) -> None:
        self.stages = tuple(stages)
        self.constant = constant
        segments: list[Segment] = []
        start, rate, events = 0.0, 0.0, 0.0
        for stage in self.stages:
            # Under a microsecond is a jump: a slope over no time only makes infinities.
            duration = stage.duration if stage.duration >= 1e-6 else 0.0
            segment = Segment(start, start + duration, rate, float(stage.events_per_second), events)
            events += segment.events(segment.end)
            segments.append(segment)
            start, rate = segment.end, float(stage.events_per_second)
        self.segments = tuple(segments)
        self._ends = [s.end for s in segments]
        self.total_events = events

    @property
    def staged(self) -> bool:
        return bool(self.stages)

    @property
    def duration(self) -> float:
        """Seconds the stages last (0 without stages: no bound of its own)."""
        return self.segments[-1].end if self.segments else 0.0

    @property
    def unthrottled(self) -> bool:
        return not self.stages and self.constant <= 0

    @property
    def peak(self) -> float:
        return max((s.events_per_second for s in self.stages), default=self.constant)

    def scaled(self, factor: float) -> RatePlan:
        """The plan for a 1/N share of the rate (a process, a fleet shard)."""
        return RatePlan([Stage(s.duration, s.events_per_second * factor) for s in self.stages],
                        self.constant * factor)

    def _segment(self, t: float) -> Segment | None:
        if not self.segments or t >= self.duration:
            return None
        return self.segments[bisect.bisect_right(self._ends, t)]

    def rate_at(self, t: float) -> float:
        if not self.stages:
            return self.constant
        segment = self._segment(max(t, 0.0))
        if segment is None:
            return float(self.stages[-1].events_per_second)  # past the end: the last target holds
        if segment.duration <= 0:
            return segment.rate_to
        return segment.rate_from + (segment.rate_to - segment.rate_from) * (t - segment.start) / segment.duration

    def events_by(self, t: float) -> float:
        """Events the plan allows from the start to `t` seconds."""
        t = max(t, 0.0)
        if not self.stages:
            return self.constant * t
        segment = self._segment(t)
        if segment is None:
            return self.total_events + float(self.stages[-1].events_per_second) * (t - self.duration)
        return segment.events_before + segment.events(t)

    def time_for(self, events: float) -> float | None:
        """The earliest time by which `events` are allowed; None: never (the rate stays 0)."""
        if not self.stages:
            return events / self.constant if self.constant > 0 else None
        for segment in self.segments:
            if segment.events_before + segment.events(segment.end) >= events:
                found = segment.time_for(events - segment.events_before)
                if found is not None:
                    return found
        last = float(self.stages[-1].events_per_second)
        return self.duration + (events - self.total_events) / last if last > 0 else None

    def average(self, start: float, end: float) -> float:
        """The planned events per second over [start, end] (0 for an empty window)."""
        return (self.events_by(end) - self.events_by(start)) / (end - start) if end > start else 0.0

    def stage_at(self, t: float) -> int:
        """The index of the stage running at `t` (the last one from its end on)."""
        if not self.stages:
            return 0
        return min(bisect.bisect_right(self._ends, t), len(self.stages) - 1)

    def describe(self) -> str:
        """The stages as the setup line says them."""
        parts = []
        previous = 0.0
        for stage in self.stages:
            target = f"{stage.events_per_second:,.0f}/s"
            if stage.duration <= 0:
                parts.append(f"jump to {target}")
            elif stage.events_per_second == previous:
                parts.append(f"hold {target} {stage.duration:g} s")
            else:
                parts.append(f"ramp to {target} over {stage.duration:g} s")
            previous = stage.events_per_second
        return ", ".join(parts)

    def label(self, index: int) -> str:
        """How a stage is named in reports: its number, from 1."""
        return str(index + 1)
