"""What every signal generator shares: the time base, seeding and its output type."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..templates import SIGNALS, TIME_BASE_NS  # noqa: F401 - re-exported: the generator's modules read it here

# Template times are offsets from a trace's (or record's) start plus this base.
# It is non-zero so every fixed64 time field is present at a stable offset
# (proto3 omits zeros), and far from any wall-clock time (1000 s after the
# epoch) so a template time can never be mistaken for a real one. The sender
# computes  new_time = send_start + (template_time - TIME_BASE_NS). The value
# lives with the file format (telegen.templates), which import shares.

# Metric data points: cumulative series start at the base and the single
# template point is one collection interval later.
METRIC_INTERVAL_NS: int = 60_000_000_000


# Random streams beside the three signals', numbered after them.
EXTRA_STREAMS: tuple[str, ...] = ("application_metrics",)


def signal_rng(seed: int, signal: str) -> np.random.Generator:
    """An independent random stream per signal (or EXTRA_STREAMS part), so
    changing one signal's settings never changes what another signal
    generates for the same seed. Logs and application metrics do follow the
    traces they name, but never draw from the traces' stream."""
    streams = SIGNALS + EXTRA_STREAMS
    return np.random.default_rng([seed, streams.index(signal)])


@dataclass
class SignalTemplates:
    """One signal's generated templates.

    records: serialized Export{Trace,Metrics,Logs}ServiceRequest messages, one
    per on-disk record (one trace / one metric with all its series / log records).
    counts: named totals for metadata.yaml, e.g. {"traces": 10, "spans": 150}.
    """

    records: list[bytes] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def random_id(rng: np.random.Generator, width: int) -> bytes:
    """A random non-zero id of `width` bytes (8: span id, 16: trace id)."""
    while True:
        value = rng.bytes(width)
        if any(value):
            return value
