"""A verification: the run's facts (its window and what it delivered, read
from its report), each backend's count taken once the backend has settled,
and the lag samples, made into a VerifyReport."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import TelegenError
from .backend import Backend, Count, SentFigures, Window
from .http import BackendError, RateLimited
from .probe import LagSamples
from .report import DEFAULT_MAX_LOSS_PERCENT, SignalVerdict, VerifyReport

# Counts are bounded to the run's window, widened this much before its start
# (trace and log times go back by their jitter and a trace's duration) and
# after its end.
MARGIN_BEFORE = 60.0
MARGIN_AFTER = 5.0
QUIET_SECONDS = 3.0  # a count unchanged this long has settled
# The first count waits until this long after the run's end: a batch handed
# over last is usually queryable by then (Jaeger's batch processor takes
# 200 ms, VictoriaLogs about a second), and a count of Jaeger is costly.
FIRST_COUNT_AFTER = 1.0
DEFAULT_SETTLE_TIMEOUT = 30.0
UNITS = {"traces": "spans", "metrics": "series", "logs": "log records"}


class VerifyInputError(TelegenError):
    """The run's report cannot be verified (bad input: exit 2)."""


@dataclass(frozen=True)
class RunFacts:
    """What `telegen verify` needs of a run: its window and, per signal it
    sent, what was delivered; lag samples a send with --verify recorded."""

    started_at: float
    ended_at: float
    sent: dict[str, SentFigures]
    lag_samples_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def window(self) -> Window:
        return Window(self.started_at - MARGIN_BEFORE, self.ended_at + MARGIN_AFTER, self.started_at, self.ended_at)

    @classmethod
    def from_stats(cls, stats: object, source: str = "the stats JSON") -> RunFacts:
        """From `telegen send --stats-json` output (SendReport.to_dict)."""
        if not isinstance(stats, dict) or not isinstance(stats.get("signals"), dict):
            raise VerifyInputError(f"{source} is not a `telegen send --stats-json` report (no signals)")
        started, ended = stats.get("started_at"), stats.get("ended_at")
        if not isinstance(started, (int, float)) or not isinstance(ended, (int, float)):
            raise VerifyInputError(f"{source} has no started_at/ended_at: it was written by a telegen without "
                                   f"verify, or by telegen fleet; send again with --stats-json")
        sent = {}
        for signal, figures in stats["signals"].items():
            if isinstance(figures, dict) and isinstance(figures.get("delivered"), int):
                sent[signal] = SentFigures(events=figures["delivered"], traces=figures.get("traces_delivered"),
                                           prometheus_series=figures.get("prometheus_series"))
        recorded = stats.get("verify") if isinstance(stats.get("verify"), dict) else {}
        lags = {signal: [float(x) for x in entry.get("lag_samples_ms") or []]
                for signal, entry in recorded.items() if isinstance(entry, dict)}
        return cls(float(started), float(ended), sent, lags)


def settled_count(backend: Backend, signal: str, window: Window, sent: SentFigures, expected: int,
                  timeout: float) -> tuple[Count, str, float]:
    """Count until the count reaches `expected`, or has not changed for
    QUIET_SECONDS, or `timeout` s have passed; polled every 100 ms (or the
    backend's own least interval, or as fast as counts come back where one
    takes longer). The last count, how it ended, and how long it took."""
    started = time.monotonic()
    last: Count | None = None
    changed = started
    while True:
        now = time.monotonic()
        try:
            count: Count | None = backend.count(signal, window, sent)
        except RateLimited:
            count = None  # Honeycomb's 10 query results a minute: wait for the next turn
        if count is not None:
            if last is None or count.stored != last.stored:
                changed = now
            last = count
            if count.stored >= expected:
                return count, "reached what was sent", time.monotonic() - started
            if now - changed >= QUIET_SECONDS and now - started >= QUIET_SECONDS:
                return count, "stopped rising", time.monotonic() - started
        if now - started >= timeout:
            if last is None:
                raise BackendError(f"{backend.url} was rate-limited for all of the {timeout:g} s timeout")
            return last, "timed out short of what was sent", time.monotonic() - started
        wake = min(now + max(backend.poll_interval, 0.1), started + timeout)
        time.sleep(max(0.0, wake - time.monotonic()))


def verify(facts: RunFacts, backends: Sequence[Backend], max_loss_percent: float = DEFAULT_MAX_LOSS_PERCENT,
           timeout: float = DEFAULT_SETTLE_TIMEOUT,
           lags: Callable[[], Mapping[str, LagSamples]] | None = None) -> VerifyReport:
    """Each backend's signals counted (all at once, each until settled) and
    judged against what the run delivered. `lags` gives the lag samples
    measured while sending, once the counts are in (a LagWatcher finishing
    meanwhile); without it, the samples the run's stats recorded, if any."""
    jobs = [(backend, signal) for backend in backends for signal in backend.signals]
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        verdicts = list(pool.map(lambda job: _verdict(facts, job[0], job[1], max_loss_percent, timeout), jobs))
    measured = lags() if lags is not None else None
    for verdict, (backend, _) in zip(verdicts, jobs):
        if verdict.stored is not None:
            _add_lag(verdict, backend, facts, measured)
    return VerifyReport(verdicts)


def _verdict(facts: RunFacts, backend: Backend, signal: str, max_loss_percent: float,
             timeout: float) -> SignalVerdict:
    sent = facts.sent.get(signal)
    expected = backend.expected(signal, sent) if sent is not None and sent.events else None
    verdict = SignalVerdict(signal=signal, backend=backend.kind, url=backend.url,
                            unit=expected[1] if expected else UNITS[signal],
                            sent=expected[0] if expected else (sent.events if sent and sent.events else None),
                            max_loss_percent=max_loss_percent)
    if expected is None:
        return verdict  # nothing delivered, or nothing this backend can compare (no prometheus_series)
    time.sleep(max(0.0, facts.ended_at + FIRST_COUNT_AFTER - time.time()))
    try:
        count, verdict.settled, verdict.settle_seconds = settled_count(backend, signal, facts.window, sent,
                                                                       expected[0], timeout)
    except BackendError as exc:
        verdict.error = str(exc)
        return verdict
    verdict.stored = count.stored
    verdict.notes += count.notes
    if signal == "traces":
        verdict.traces_sent = sent.traces
        verdict.traces_stored, verdict.traces_with_missing_parent = count.traces, count.traces_with_missing_parent
    if count.stored < expected[0]:
        verdict.notes += backend.explain(signal, sent, count)
    return verdict


def _add_lag(verdict: SignalVerdict, backend: Backend, facts: RunFacts,
             lags: Mapping[str, LagSamples] | None) -> None:
    signal = verdict.signal
    if lags is not None and signal in lags:
        measured = lags[signal]
        verdict.lag_samples_ms, verdict.lag_unresolved = list(measured.samples_ms), measured.unresolved
        if not measured.samples_ms:
            verdict.notes.append("no lag sample: " + (f"probes failed: {measured.error}" if measured.error else
                                                      "no sent batch was found in time (or none could be probed)"))
    elif facts.lag_samples_ms.get(signal):
        verdict.lag_samples_ms = facts.lag_samples_ms[signal]
    elif not backend.can_probe(signal):
        verdict.notes.append(f"lag not measured: {backend.kind} is not polled for single batches")
    elif lags is None:
        verdict.notes.append("lag not measured: it is timed while sending (telegen send --verify)")
