"""What every backend reader is: the time window it counts in, what one
count found, what a lag probe looks for, and the interface the backends'
modules implement (jaeger, prometheus, victorialogs, honeycomb)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Window:
    """Unix seconds: what a count is bounded to, from `start` to `end`; the
    run itself sent from `run_start` to `run_end` (within them)."""

    start: float
    end: float
    run_start: float
    run_end: float


@dataclass(frozen=True)
class Count:
    """What one count found for a signal: `stored` events of the unit the
    backend compares (spans, series, log records); for traces also the
    distinct traces and those with a span whose parent is not stored."""

    stored: int
    traces: int | None = None
    traces_with_missing_parent: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probe:
    """One sent batch a lag prober looks for: when it was handed to the
    transport (wall clock, ns) and what finds it in the backend: a trace id
    (traces, and logs that carry one), or for metrics the Prometheus labels
    of its first resource and the newest point time (ms) written there."""

    signal: str
    handed_ns: int
    trace_id: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    newest_ms: int | None = None


@dataclass(frozen=True)
class SentFigures:
    """What a run delivered of one signal, from its report: events, and
    where the report has them, the traces delivered whole (traces) and the
    series a Prometheus-style store should hold (metrics)."""

    events: int
    traces: int | None = None
    prometheus_series: int | None = None


class Backend(Protocol):
    """A backend's query API, as `telegen verify` reads it."""

    kind: str
    url: str
    signals: tuple[str, ...]  # the signals it stores and can count
    # Least seconds between two counts while waiting for the backend to
    # settle (Honeycomb's rate limit makes it more than the 100 ms default).
    poll_interval: float

    def check(self) -> None:
        """Raise BackendError (one line) when the query API does not answer."""

    def expected(self, signal: str, sent: SentFigures) -> tuple[int, str] | None:
        """What a clean run leaves stored of `signal`, and its unit
        ("spans", "series", "log records"); None: this backend cannot say."""

    def count(self, signal: str, window: Window, sent: SentFigures) -> Count:
        """What is stored of `signal` in `window`, counted by the backend
        (`sent` may guide how, e.g. how finely Jaeger's searches split)."""

    def visible(self, probe: Probe) -> bool:
        """Whether the batch `probe` names can be queried yet."""

    def can_probe(self, signal: str) -> bool:
        """Whether `visible` works for this signal (lag is measured)."""

    def explain(self, signal: str, sent: SentFigures, count: Count) -> list[str]:
        """Notes on a shortfall that the backend's own limits explain."""
