"""A step's verdict: did the backend take the offered rate, and if not, who
was the bottleneck.

A step is cut into windows (readings of the run's counters); the first is
left out, as the rate settles and the queues of the step before drain. The
rest are judged against the limits, in this order:

1. **the sender**: it sent less than the offered rate while its workers
   were not held back by the endpoint (in-flight slots free): it could not
   make the load, so nothing is known of the backend at this rate;
2. **errors**: of the events attempted, the share refused (an error answer:
   HTTP 429/503, RESOURCE_EXHAUSTED/UNAVAILABLE..., retried or not, a
   transport error, or a partial-success rejection) is above the limit;
3. **latency**: the p99 request latency is above the limit;
4. **delivery**: in two windows running, less than `min_delivered_share`
   of the offered rate was delivered. When the latency did not grow against
   the first step's while the in-flight slots were full, the bound is the
   sender's concurrency (Little's law), not the backend: said apart.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..report import SenderLoad
from ..report.latency import Histogram
from .settings import SearchSettings

# The sender is the bottleneck when it offered less than this share of the
# target while its workers waited on the endpoint less than SLOT_WAIT_SHARE
# of the time.
SENT_SHARE = 0.9
SLOT_WAIT_SHARE = 0.25
# Latency "did not grow" while no more than this many times the first step's p50.
LATENCY_GROWTH = 2.0

SENDER, ERRORS, LATENCY, DELIVERY, CONCURRENCY = "sender", "errors", "latency", "delivery", "concurrency"


@dataclass(frozen=True)
class Reading:
    """The run's counts at one moment (cumulative), as a driver reads them."""

    at: float  # seconds on the search's clock
    offered: float  # events the target allowed by then
    sent: int
    delivered: int
    failed: int
    rejected: int
    latency: Histogram  # request attempts' latency, every signal
    load: SenderLoad
    slots: int  # in-flight slots over all workers (concurrency x processes x senders)
    # Events of the largest request: sends come a request at a time, and
    # each worker's bucket may be a request ahead or behind the target.
    request_events: float = 0.0

    def __sub__(self, before: Reading) -> Window:
        return Window(self.at - before.at, self.offered - before.offered, self.sent - before.sent,
                      self.delivered - before.delivered, self.failed - before.failed, self.rejected - before.rejected,
                      self.latency - before.latency, self.load - before.load, self.slots,
                      self.request_events * max(self.load.processes, 1))


def combined(readings: list[Reading], at: float, offered: float) -> Reading:
    """Several senders' readings as one (a fleet's), at `at` with `offered`
    the fleet's target so far."""
    load = readings[0].load
    for r in readings[1:]:
        load = load + r.load
    return Reading(at=at, offered=offered, sent=sum(r.sent for r in readings),
                   delivered=sum(r.delivered for r in readings), failed=sum(r.failed for r in readings),
                   rejected=sum(r.rejected for r in readings), latency=Histogram.merged(r.latency for r in readings),
                   load=load, slots=sum(r.slots for r in readings),
                   request_events=max(r.request_events for r in readings))


@dataclass(frozen=True)
class Window:
    """The counts of one window of a step."""

    seconds: float
    offered: float
    sent: int
    delivered: int
    failed: int
    rejected: int
    latency: Histogram
    load: SenderLoad
    slots: int
    slack: float = 0.0  # events a window may fall short by, sends coming a request at a time

    @property
    def offered_rate(self) -> float:
        return self.offered / self.seconds if self.seconds > 0 else 0.0

    @property
    def sent_rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def delivered_rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Figures:
    """A step's judged windows, summed."""

    seconds: float
    offered_rate: float
    sent_rate: float
    delivered_rate: float
    error_share: float
    latency: Histogram
    cpu_share: float  # of one core, per sending process, on average
    slot_wait_share: float  # of the workers' time, waiting for an in-flight slot
    processes: int
    slack: float = 0.0  # over the judged windows

    @property
    def p50(self) -> float | None:
        return self.latency.quantile(0.5) if self.latency.count else None

    @property
    def p99(self) -> float | None:
        return self.latency.quantile(0.99) if self.latency.count else None


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str | None = None  # SENDER, ERRORS, LATENCY, DELIVERY or CONCURRENCY
    detail: str = ""


def figures(windows: list[Window]) -> Figures:
    judged = windows[1:] if len(windows) > 1 else windows
    seconds = sum(w.seconds for w in judged) or 1e-9
    load = judged[0].load
    for w in judged[1:]:
        load = load + w.load
    processes = max(judged[0].load.processes, 1)
    answered = load.answered_events
    return Figures(
        seconds=seconds,
        offered_rate=sum(w.offered for w in judged) / seconds,
        sent_rate=sum(w.sent for w in judged) / seconds,
        delivered_rate=sum(w.delivered for w in judged) / seconds,
        error_share=load.refused_events / answered if answered else 0.0,
        latency=Histogram.merged(w.latency for w in judged),
        cpu_share=load.cpu_seconds / seconds / processes,
        slot_wait_share=load.slot_wait_seconds / seconds / processes,
        processes=processes,
        slack=max(w.slack for w in judged),
    )


def judge(windows: list[Window], settings: SearchSettings, baseline_p50: float | None) -> tuple[Verdict, Figures]:
    """The step's verdict on `windows` (the first left out), and its figures.
    `baseline_p50`: the first passed step's median latency (None before)."""
    f = figures(windows)
    judged = windows[1:] if len(windows) > 1 else windows
    sent_short = f.sent_rate * f.seconds + f.slack < SENT_SHARE * f.offered_rate * f.seconds
    if f.offered_rate > 0 and sent_short and f.slot_wait_share < SLOT_WAIT_SHARE:
        return Verdict(False, SENDER, f"sent {f.sent_rate:,.0f}/s of {f.offered_rate:,.0f}/s offered with in-flight "
                                      f"slots free ({f.processes} process(es) at {100 * f.cpu_share:.0f} % CPU)"), f
    if f.error_share > settings.max_error_share:
        return Verdict(False, ERRORS, f"{100 * f.error_share:.2f} % of attempted events refused "
                                      f"(limit {100 * settings.max_error_share:g} %)"), f
    if settings.max_p99 and f.p99 is not None and f.p99 > settings.max_p99:
        return Verdict(False, LATENCY, f"p99 latency {f.p99 * 1e3:,.0f} ms (limit {settings.max_p99 * 1e3:,.0f} ms)"), f
    short = [w.offered > 0 and w.delivered + w.slack < settings.min_delivered_share * w.offered for w in judged]
    if any(a and b for a, b in zip(short, short[1:])) or (len(short) == 1 and short[0]):
        p50 = f.p50
        grew = baseline_p50 is None or p50 is None or p50 > LATENCY_GROWTH * baseline_p50
        if not grew and f.slot_wait_share >= SLOT_WAIT_SHARE:
            return Verdict(False, CONCURRENCY,
                           f"delivered {f.delivered_rate:,.0f}/s of {f.offered_rate:,.0f}/s with every in-flight slot "
                           f"taken while latency stayed at p50 {p50 * 1e3:,.1f} ms: the sender's concurrency "
                           f"({windows[0].slots} requests in flight) is the bound"), f
        return Verdict(False, DELIVERY, f"delivered {f.delivered_rate:,.0f}/s of {f.offered_rate:,.0f}/s offered "
                                        f"(under {100 * settings.min_delivered_share:g} % in two windows running)"), f
    return Verdict(True), f


def usable_cores() -> float:
    """The cores this process may use: its CPU affinity, and a cgroup's CPU
    quota where one is set (a container's limit)."""
    try:
        cores = float(len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cores = float(os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return cores
