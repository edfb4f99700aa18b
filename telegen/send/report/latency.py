"""Export latency: log-bucket histograms with bounded relative error that
merge exactly by adding counts (across threads, worker processes and fleet
senders alike).

Bucket k >= 1 holds latencies in [G^(k-1), G^k) microseconds, G = 1.01, so a
percentile read as its bucket's geometric middle is within 0.5 % of the true
value; bucket 0 holds everything under 1 us, the last everything from
~1,000 s up. The exact largest value is kept beside the buckets. One record
per request (and one per batch), never per event; chosen over an HDR
histogram library because a flat int64 array lives in the shared memory the
worker processes already count into, and merging is a sum.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

GROWTH = 1.01
BUCKETS = 2 + int(math.log(1e9) / math.log(GROWTH))  # up to ~1,000 s
SLOTS = BUCKETS + 1  # the buckets, then the largest value in ns
KINDS = ("request", "batch")  # one attempt of one request; a whole batch, retries included
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999))
_LOG_GROWTH = math.log(GROWTH)


def bucket_of(seconds: float) -> int:
    micros = seconds * 1e6
    if micros < 1.0:
        return 0
    return min(BUCKETS - 1, 1 + int(math.log(micros) / _LOG_GROWTH))


def record(slots, base: int, seconds: float) -> None:
    """Count one latency into the histogram at slots[base:base + SLOTS]
    (a shared array or a numpy one). The caller holds whatever lock guards it."""
    slots[base + bucket_of(seconds)] += 1
    nanos = int(seconds * 1e9)
    if nanos > slots[base + BUCKETS]:
        slots[base + BUCKETS] = nanos


class Histogram:
    """One latency histogram: `counts` (BUCKETS int64) and `max_ns`."""

    __slots__ = ("counts", "max_ns")

    def __init__(self, counts: np.ndarray | None = None, max_ns: int = 0) -> None:
        self.counts = np.zeros(BUCKETS, dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
        self.max_ns = int(max_ns)

    @classmethod
    def from_slots(cls, slots: Sequence[int] | np.ndarray, base: int = 0) -> Histogram:
        values = np.asarray(slots[base:base + SLOTS], dtype=np.int64)
        return cls(values[:BUCKETS].copy(), int(values[BUCKETS]))

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        out = cls()
        for h in histograms:
            out.counts += h.counts
            out.max_ns = max(out.max_ns, h.max_ns)
        return out

    def __sub__(self, earlier: Histogram) -> Histogram:
        """What was recorded since `earlier` (its max: the top bucket's bound)."""
        counts = self.counts - earlier.counts
        nonzero = np.flatnonzero(counts)
        top = int(nonzero[-1]) if len(nonzero) else -1
        max_ns = min(self.max_ns, int(_upper(top) * 1e9)) if top >= 0 else 0
        return Histogram(counts, max_ns)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float:
        """Seconds at or below which a share `q` of the values lie (within
        0.5 %), never above the largest value; 0.0 when empty."""
        total = self.count
        if total == 0:
            return 0.0
        rank = max(1, math.ceil(q * total))
        k = int(np.searchsorted(np.cumsum(self.counts), rank))
        if k == BUCKETS - 1:  # past ~1,000 s: only the largest value is known
            return self.max_ns / 1e9
        value = 0.5e-6 if k == 0 else math.sqrt(_lower(k) * _upper(k))
        return min(value, self.max_ns / 1e9)

    def summary(self) -> dict[str, float | int]:
        """count, the percentiles and max, in milliseconds."""
        out: dict[str, float | int] = {"count": self.count}
        for name, q in PERCENTILES:
            out[f"{name}_ms"] = round(self.quantile(q) * 1e3, 3)
        out["max_ms"] = round(self.max_ns / 1e6, 3)
        return out

    def to_dict(self) -> dict:
        """Exact and compact (non-empty buckets only): what a fleet merges."""
        nonzero = np.flatnonzero(self.counts)
        return {"buckets": {str(int(k)): int(self.counts[k]) for k in nonzero}, "max_ns": self.max_ns}

    @classmethod
    def from_dict(cls, data: Mapping) -> Histogram:
        counts = np.zeros(BUCKETS, dtype=np.int64)
        for k, n in data.get("buckets", {}).items():
            counts[int(k)] = int(n)
        return cls(counts, int(data.get("max_ns", 0)))


def _lower(k: int) -> float:
    """Seconds at the bottom of bucket k >= 1."""
    return GROWTH ** (k - 1) / 1e6


def _upper(k: int) -> float:
    return GROWTH ** k / 1e6 if k > 0 else 1e-6


def line(histogram: Histogram) -> str:
    """`p50 1.23 ms  p90 ...  max ...`, or `no responses`."""
    if histogram.count == 0:
        return "no responses"
    parts = [f"{name} {_ms(histogram.quantile(q))}" for name, q in PERCENTILES]
    return "  ".join(parts + [f"max {_ms(histogram.max_ns / 1e9)}"])


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"
