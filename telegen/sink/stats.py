"""The sink's counters: every request lands in exactly one bucket of its
signal's SignalStats, and every event of a decoded request is counted once."""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields

from ..templates import SIGNALS


@dataclass(frozen=True)
class SignalStats:
    """Counts for one signal; see the module docstring for the buckets."""

    requests: int = 0
    events: int = 0
    bytes: int = 0  # serialized (uncompressed) size of the requests answered OK
    invalid_requests: int = 0
    invalid_events: int = 0
    rejected_events: int = 0
    refused_requests: int = 0
    refused_events: int = 0  # of the refused requests (those that could be read): a fault's or the capacity's


@dataclass(frozen=True)
class SinkStats:
    """A snapshot of a sink's counters, `elapsed` seconds after it started."""

    elapsed: float
    traces: SignalStats
    metrics: SignalStats
    logs: SignalStats

    def signals(self) -> dict[str, SignalStats]:
        return {name: getattr(self, name) for name in SIGNALS}

    def to_dict(self) -> dict:
        """Plain data for JSON: per-signal counts plus events/s over the run."""
        out: dict = {"elapsed_s": round(self.elapsed, 3)}
        for name, counts in self.signals().items():
            rate = counts.events / self.elapsed if self.elapsed > 0 else 0.0
            out[name] = {**asdict(counts), "events_per_second": round(rate, 1)}
        return out


class Counters:
    """Mutable per-signal counters behind one lock (handlers run on a pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {name: dict.fromkeys((f.name for f in fields(SignalStats)), 0) for name in SIGNALS}

    def add(self, signal: str, **deltas: int) -> None:
        with self._lock:
            counts = self._counts[signal]
            for key, value in deltas.items():
                counts[key] += value

    def snapshot(self, elapsed: float) -> SinkStats:
        with self._lock:
            return SinkStats(elapsed=elapsed, **{name: SignalStats(**counts) for name, counts in self._counts.items()})
