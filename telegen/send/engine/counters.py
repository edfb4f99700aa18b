"""What workers record while they send: counters and latency histograms in
shared memory (the parent reads them), and error lines held to one per kind
per interval."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.sharedctypes import RawArray

import numpy as np

from ...templates import SIGNALS
from ..report import latency
from ..report.latency import Histogram
from ..transport import Outcome

# Counters per signal, in this order, in each worker's shared array.
# traces_delivered: the traces of trace batches every event of which was
# delivered (what a trace store should then hold); 0 for other signals.
COUNTERS = ("sent", "delivered", "rejected", "failed", "requests", "bytes", "retries", "batches", "traces_delivered")


class Counters:
    """A worker's counters and latency histograms in shared memory, updated
    from transport threads; the parent reads them while the run goes on."""

    def __init__(self, shared=None, latencies=None) -> None:
        self.shared = shared if shared is not None else RawArray("q", len(SIGNALS) * len(COUNTERS))
        self.latencies = latencies if latencies is not None else new_latency_array()
        self.lock = threading.Lock()

    def add(self, signal: str, **values: int) -> None:
        base = SIGNALS.index(signal) * len(COUNTERS)
        with self.lock:
            for name, value in values.items():
                self.shared[base + COUNTERS.index(name)] += value

    def add_outcome(self, signal: str, outcome: Outcome, traces: int = 0) -> None:
        """An outcome's counts and its latencies (one per request attempt, one
        for the batch). `traces`: the batch's traces, counted delivered when
        all of its events were."""
        base = SIGNALS.index(signal) * len(COUNTERS)
        at = SIGNALS.index(signal) * len(latency.KINDS) * latency.SLOTS
        with self.lock:
            shared = self.shared
            shared[base + _DELIVERED] += outcome.delivered
            if traces and not outcome.failed and not outcome.rejected:
                shared[base + _TRACES_DELIVERED] += traces
            shared[base + _REJECTED] += outcome.rejected
            shared[base + _FAILED] += outcome.failed
            shared[base + _RETRIES] += outcome.extra.get("retries", 0)
            for seconds in outcome.latencies:
                latency.record(self.latencies, at, seconds)
            if outcome.elapsed:
                latency.record(self.latencies, at + latency.SLOTS, outcome.elapsed)

    @staticmethod
    def totals(arrays: Sequence) -> dict[str, dict[str, int]]:
        out = {s: dict.fromkeys(COUNTERS, 0) for s in SIGNALS}
        for array in arrays:
            values = list(array)
            for si, s in enumerate(SIGNALS):
                for ci, c in enumerate(COUNTERS):
                    out[s][c] += values[si * len(COUNTERS) + ci]
        return out

    @staticmethod
    def latency_totals(arrays: Sequence) -> dict[str, dict[str, Histogram]]:
        """Per signal and kind ("request", "batch"), every worker's histogram merged (exactly)."""
        snapshots = [np.frombuffer(array, dtype=np.int64).copy() for array in arrays]
        out: dict[str, dict[str, Histogram]] = {}
        for si, s in enumerate(SIGNALS):
            out[s] = {}
            for ki, kind in enumerate(latency.KINDS):
                at = (si * len(latency.KINDS) + ki) * latency.SLOTS
                out[s][kind] = Histogram.merged(Histogram.from_slots(snap, at) for snap in snapshots)
        return out


def new_latency_array():
    return RawArray("q", len(SIGNALS) * len(latency.KINDS) * latency.SLOTS)


_DELIVERED, _REJECTED, _FAILED, _RETRIES, _TRACES_DELIVERED = (
    COUNTERS.index(name) for name in ("delivered", "rejected", "failed", "retries", "traces_delivered"))


def signal_counts(signal: str, values: dict[str, int]) -> dict[str, int]:
    """A signal's counters as SignalReport takes them: traces_delivered is
    the traces signal's alone."""
    return values if signal == "traces" else {k: v for k, v in values.items() if k != "traces_delivered"}


class ErrorLog:
    """Logs errors at most once per interval per kind, with a count of the
    ones it held back, so a failing endpoint cannot flood the output."""

    def __init__(self, write: Callable[[str], None], interval: float = 5.0) -> None:
        self.write = write
        self.interval = interval
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}
        self.lock = threading.Lock()
        self.first = True

    def error(self, key: str, text: str) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.last.get(key, -1e9) < self.interval:
                self.held[key] = self.held.get(key, 0) + 1
                return
            held = self.held.pop(key, 0)
            self.last[key] = now
        suffix = f" (and {held} more like it)" if held else ""
        self.write(f"error: {text}{suffix}")

