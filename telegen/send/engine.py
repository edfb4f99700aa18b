"""The send loop: schedule, rate, workers, counters.

Loaded batches are interleaved into one schedule (each signal spread evenly
through a pass). A worker walks its share of the schedule, pass after pass:
take tokens for the batch's events, wait for a free in-flight slot, patch
(compiled, GIL released), hand the bytes to the transport. Per-send work in
Python is a handful of calls per batch, never per event.

With several processes the workers are forked after loading, so the batches
are shared copy-on-write, each takes every P-th schedule item and 1/P of the
rate; each writes its counters into shared memory the parent reads.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import signal as signals
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import RawArray

import numpy as np

from .. import _fastpath
from .._memory import reuse_large_buffers
from ..templates import SIGNALS
from . import latency
from .batches import Batch, SignalTemplates
from .compression import IDENTITY, PATCHABLE, body_encoding, patched_bodies, with_gzip, zlib_bodies
from .latency import Histogram
from .report import SendReport, SignalReport, StageReport
from .stages import RatePlan, Stage
from .timeline import StageMark, Timeline
from .transport import Outcome, RetryPolicy, Target, Transport, explain, open_transport

# Counters per signal, in this order, in each worker's shared array.
COUNTERS = ("sent", "delivered", "rejected", "failed", "requests", "bytes", "retries", "batches")


@dataclass(frozen=True)
class SendSettings:
    targets: dict[str, Target]
    events_per_second: float = 0  # 0: as fast as possible
    # Ramping stages (k6's meaning): when given, they set the rate over time
    # instead of events_per_second, and the run lasts as long as they do.
    stages: tuple[Stage, ...] = ()
    concurrency: int = 50
    duration: float = 0.0  # seconds; 0: no time bound
    passes: int = 0  # 0: no pass bound
    processes: int = 1
    jitter_ns: int = 0
    backdate_ns: int = 0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    stats_interval: float = 5.0
    drain_timeout: float = 10.0
    # How gzip bodies are made where the carrier sends them as given
    # (OTLP/HTTP): "patchable" (compressed once, patched per send) or "zlib".
    gzip_encoder: str = PATCHABLE
    # Called with each progress interval's figures (a SendReport of that
    # interval); a reason returned stops the run early as aborted.
    abort_check: Callable[[SendReport], str | None] | None = None
    # Called with each finished stage's figures (as a report of their own);
    # the lines returned (thresholds it breached) are kept with the stage.
    stage_check: Callable[[SendReport], list[str]] | None = None
    # How a batch becomes request bytes: None patches with the compiled
    # kernel (every real run). Benchmarks swap in the unpatched bytes (the
    # transport's ceiling) or a naive protobuf re-encoder to compare against.
    prepare: Callable[[ScheduleItem], bytes] | None = None

    @property
    def plan(self) -> RatePlan:
        return RatePlan(self.stages, self.events_per_second)


@dataclass(frozen=True)
class ScheduleItem:
    signal: str
    batch: Batch
    replica: int  # -1: no replica attribute to write


def build_schedule(loaded: Sequence[SignalTemplates]) -> list[ScheduleItem]:
    """One pass: every batch (times its replicas), signals interleaved evenly."""
    keyed = []
    for templates in loaded:
        numbers = templates.copies.numbers() if templates.copies.width else range(-1, 0)
        items = [ScheduleItem(templates.signal, batch, replica) for replica in numbers for batch in templates.batches]
        keyed.extend(((k + 0.5) / len(items), SIGNALS.index(templates.signal), item) for k, item in enumerate(items))
    keyed.sort(key=lambda entry: (entry[0], entry[1]))
    return [item for _, _, item in keyed]


class TokenBucket:
    """Events per second with debt: a batch larger than the burst still goes,
    and the next waits until the average is back on target. The rate follows
    `plan` (constant, or ramping stages) over seconds since `started`; tokens
    a slow endpoint left unused are capped at the burst (a tenth of a second
    at the current rate, at least one batch), so a sender that fell behind
    never floods the endpoint to catch up."""

    def __init__(self, plan: RatePlan, burst_floor: float, started: float | None = None) -> None:
        self.plan = plan
        self.burst_floor = burst_floor
        self.started = time.monotonic() if started is None else started
        self.last = time.monotonic() - self.started
        # A plan that starts from 0 (a ramp) sends nothing before it allows some.
        self.tokens = self.burst(self.last) if plan.rate_at(self.last) > 0 else 0.0

    def burst(self, t: float) -> float:
        return max(self.burst_floor, self.plan.rate_at(t) / 10)

    def acquire(self, n: int, stop: threading.Event, deadline: float | None = None) -> bool:
        """Take `n` events' tokens, waiting as the plan says; False when told
        to stop first or when `deadline` (monotonic) passes while waiting."""
        plan = self.plan
        while True:
            clock = time.monotonic()
            if deadline is not None and clock >= deadline:
                return False
            now = clock - self.started
            allowed = plan.events_by(now)
            self.tokens = min(self.burst(now), self.tokens + allowed - plan.events_by(self.last))
            self.last = now
            if self.tokens > 0:
                self.tokens -= n
                return True
            ready = plan.time_for(allowed - self.tokens + 1e-6)
            wait = 0.05 if ready is None else min(0.05, max(ready - now, 0.0005))
            if stop.wait(wait):
                return False


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

    def add_outcome(self, signal: str, outcome: Outcome) -> None:
        """An outcome's counts and its latencies (one per request attempt, one for the batch)."""
        base = SIGNALS.index(signal) * len(COUNTERS)
        at = SIGNALS.index(signal) * len(latency.KINDS) * latency.SLOTS
        with self.lock:
            shared = self.shared
            shared[base + _DELIVERED] += outcome.delivered
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


_DELIVERED, _REJECTED, _FAILED, _RETRIES = (COUNTERS.index(name) for name in ("delivered", "rejected", "failed",
                                                                              "retries"))


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


def run_worker(schedule: Sequence[ScheduleItem], settings: SendSettings, counters: Counters,
               stop: threading.Event, run_start_ns: int, share: float, errors: ErrorLog,
               started: float | None = None) -> None:
    """Send `schedule` pass after pass until a bound is reached or `stop`."""
    if not schedule:  # more processes than batches: nothing for this one
        return
    transports = {s: open_transport(s, settings.targets[s], settings.retry)
                  for s in {item.signal for item in schedule}}
    for s, transport in transports.items():
        transport.on_retry = _retry_line(s, errors)
    # Every process reads the plan on the parent's clock: stages change together.
    started = time.monotonic() if started is None else started
    plan = settings.plan.scaled(share)
    biggest = max((item.batch.events for item in schedule), default=1)
    bucket = None if plan.unthrottled else TokenBucket(plan, biggest, started)
    slots = threading.BoundedSemaphore(settings.concurrency)
    deadline = started + settings.duration if settings.duration > 0 else None
    delivered_any = threading.Event()

    def finished(item: ScheduleItem) -> Callable[[Outcome], None]:
        def done(outcome: Outcome) -> None:
            counters.add_outcome(item.signal, outcome)
            if outcome.delivered:
                delivered_any.set()
            if outcome.failed:
                code = outcome.code or "ERROR"
                plainly = "" if delivered_any.is_set() else " (before any request succeeded: check the endpoint, " \
                                                           "TLS settings and headers)"
                hint = explain(outcome.message)
                errors.error(f"{item.signal}:{code}", f"{item.signal}: {hint + ': ' if hint else ''}"
                             f"{outcome.failed} events failed after {outcome.attempts} attempts: {code} "
                             f"{outcome.message}{plainly}")
            elif outcome.rejected:
                errors.error(f"{item.signal}:rejected", f"{item.signal}: the endpoint rejected {outcome.rejected} "
                             f"events: {outcome.message}")
            slots.release()
        return done

    # A batch of metric series kept whole is sent at most once per its
    # series' period, so a series' times never overlap from send to send
    # (more volume comes from more series: metric_series_multiplier).
    last_sent: dict[tuple[int, int], float] = {}
    try:
        pass_number = 0
        while not stop.is_set() and (settings.passes == 0 or pass_number < settings.passes):
            sent = waiting = 0
            for item in schedule:
                if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    stop.set()
                    break
                period = item.batch.series_period
                if period:
                    key = (id(item.batch), item.replica)
                    if time.monotonic() - last_sent.get(key, -math.inf) < period:
                        waiting += 1
                        continue
                if bucket is not None and not bucket.acquire(item.batch.events, stop, deadline):
                    stop.set()
                    break
                if not _take_slot(slots, stop):
                    break
                if period:
                    last_sent[key] = time.monotonic()
                step = pass_number + int(time.monotonic() - started)
                _send(item, transports[item.signal], counters, settings, run_start_ns, step, finished(item))
                sent += 1
            # A pass counts once it has sent every batch: `passes` is how often
            # each template went out at least (batches that waited come round again).
            if not waiting:
                pass_number += 1
            elif not sent:
                stop.wait(0.05)
    finally:
        _drain(slots, settings, transports)


def _retry_line(signal: str, errors: ErrorLog) -> Callable[[str, str], None]:
    """Says, at most every few seconds per kind, that requests are being
    retried and why: a wrong endpoint shows at once, not after the backoff."""
    def retrying(code: str, message: str) -> None:
        hint = explain(message)
        errors.error(f"{signal}:retry:{code}", f"{signal}: {hint + '; ' if hint else ''}retrying after {code} "
                     f"{message}")
    return retrying


def _take_slot(slots: threading.BoundedSemaphore, stop: threading.Event) -> bool:
    """Wait for an in-flight slot; False when told to stop first."""
    while not slots.acquire(timeout=0.1):
        if stop.is_set():
            return False
    return True


def _send(item: ScheduleItem, transport: Transport, counters: Counters, settings: SendSettings,
          run_start_ns: int, step: int, done: Callable[[Outcome], None]) -> None:
    requests = requests_for(item, settings, run_start_ns, step)
    counters.add(item.signal, sent=item.batch.events, requests=len(requests),
                 bytes=sum(len(r) for r in requests), batches=1)
    transport.send(requests, item.batch.piece_events, done)


def requests_for(item: ScheduleItem, settings: SendSettings, run_start_ns: int, step: int) -> list[bytes]:
    """The request bodies of one send of a batch: patched now (or as
    settings.prepare says), cut into its pieces, gzip-compressed where the
    carrier wants gzip bodies. All the per-send work of the send path but the
    transport's (benchmarks count its instructions)."""
    batch = item.batch
    if settings.prepare is None:
        data = _fastpath.patch(batch.plan, batch.data, time.time_ns(), settings.jitter_ns, settings.backdate_ns,
                               run_start_ns, step, item.replica)
    else:
        data = settings.prepare(item)
    encoding = body_encoding(settings.targets[item.signal], settings.gzip_encoder)
    if encoding == PATCHABLE and batch.gzip:
        return patched_bodies(batch.gzip, data)
    requests = [data] if len(batch.pieces) == 1 else [data[a:b] for a, b in batch.pieces]
    return requests if encoding == IDENTITY else zlib_bodies(requests)


def prepare_gzip(loaded: Sequence[SignalTemplates], settings: SendSettings,
                 write: Callable[[str], None] | None = None) -> list[SignalTemplates]:
    """`loaded`, with the batches of every signal that will send patchable
    gzip bodies compressed once."""
    return [with_gzip(t, write) if body_encoding(settings.targets[t.signal], settings.gzip_encoder) == PATCHABLE
            else t for t in loaded]


def _drain(slots: threading.BoundedSemaphore, settings: SendSettings, transports: dict[str, Transport]) -> None:
    """Wait for in-flight requests (bounded), then close: whatever is still
    pending or waiting to retry ends as failed, so every event is counted."""
    deadline = time.monotonic() + settings.drain_timeout
    taken = 0
    while taken < settings.concurrency and time.monotonic() < deadline:
        if slots.acquire(timeout=0.05):
            taken += 1
    for transport in transports.values():
        transport.close()
    # Closing cancels what was in flight; give those callbacks a moment.
    end = time.monotonic() + 2.0
    while taken < settings.concurrency and time.monotonic() < end:
        if slots.acquire(timeout=0.05):
            taken += 1


def _report(totals: dict[str, dict[str, int]], latencies: dict[str, dict[str, Histogram]], elapsed: float,
            settings: SendSettings, active: Sequence[str], interrupted: bool) -> SendReport:
    signals_out = {}
    for s in active:
        values = totals[s]
        signals_out[s] = SignalReport(signal=s, **values,
                                      events_per_second=values["delivered"] / elapsed if elapsed > 0 else 0.0,
                                      latency=latencies[s])
    return SendReport(elapsed=elapsed, signals=signals_out, target_events_per_second=target_rate(settings),
                      processes=settings.processes, interrupted=interrupted)



def target_rate(settings: SendSettings) -> float:
    """The run's target events/s: with stages, their average over the run."""
    plan = settings.plan
    return plan.average(0.0, plan.duration) if plan.staged else settings.events_per_second


class StageCuts:
    """Cuts a staged run into its stages' figures: the counters are read at
    each stage's planned end, and a stage's figures are the difference, so
    the stages add up to the run exactly. The last stage takes the drain
    after it (in-flight requests answered after the end)."""

    def __init__(self, plan: RatePlan, active: Sequence[str], write: Callable[[str], None],
                 check: Callable[[SendReport], list[str]] | None = None) -> None:
        self.plan = plan
        self.active = active
        self.write = write
        self.check = check
        # A stage of duration 0 is a jump: it has no time, so no figures.
        self.pending = [i for i, segment in enumerate(plan.segments) if segment.duration > 0]
        self.previous = {s: dict.fromkeys(COUNTERS, 0) for s in SIGNALS}
        self.previous_latency: dict[str, dict[str, Histogram]] = {
            s: {kind: Histogram() for kind in latency.KINDS} for s in SIGNALS}
        self.rows: list[StageReport] = []

    def next_cut(self) -> float | None:
        """When the running stage ends, unless it is the last (it ends with the run)."""
        return self.plan.segments[self.pending[0]].end if len(self.pending) > 1 else None

    def cut(self, totals: dict[str, dict[str, int]], latencies: dict[str, dict[str, Histogram]],
            elapsed: float) -> StageReport | None:
        """Close the running stage at `elapsed` (the run's end, or its planned end)."""
        if not self.pending:
            return None
        index = self.pending.pop(0)
        segment = self.plan.segments[index]
        if elapsed <= segment.start:  # the run stopped before this stage began
            self.pending.clear()
            return None
        stop_at = min(elapsed, segment.end)
        signals: dict[str, SignalReport] = {}
        for s in self.active:
            delta = {k: totals[s][k] - self.previous[s][k] for k in COUNTERS}
            seconds = stop_at - segment.start
            signals[s] = SignalReport(signal=s, **delta,
                                      events_per_second=delta["delivered"] / seconds if seconds > 0 else 0.0,
                                      latency={kind: latencies[s][kind] - self.previous_latency[s][kind]
                                               for kind in latency.KINDS})
        self.previous = {s: dict(v) for s, v in totals.items()}
        self.previous_latency = {s: dict(v) for s, v in latencies.items()}
        row = StageReport(index=index, of=len(self.plan.stages), start=segment.start, planned_end=segment.end,
                          end=elapsed,
                          target_from=segment.rate_from, target_to=segment.rate_to,
                          planned_events=self.plan.events_by(stop_at) - self.plan.events_by(segment.start),
                          signals=signals)
        if self.check is not None:
            row.breaches = self.check(row.as_run())
        self.rows.append(row)
        self.write(stage_line(row))
        for line in row.breaches:
            self.write(f"  threshold breached in stage {row.number}: {line}")
        if elapsed < segment.end:
            self.pending.clear()  # stopped early: later stages never ran
        return row


def stage_line(row: StageReport) -> str:
    """A stage's figures in one line, as the run goes and in the summary."""
    if row.target_from == row.target_to:
        shape = f"hold {row.target_to:,.0f}/s"
    else:
        shape = f"ramp {row.target_from:,.0f} -> {row.target_to:,.0f}/s"
    request = Histogram.merged(s.latency["request"] for s in row.signals.values())
    p99 = f"p99 {request.quantile(0.99) * 1e3:,.1f} ms" if request.count else "no requests answered"
    failed = sum(s.failed for s in row.signals.values())
    rejected = sum(s.rejected for s in row.signals.values())
    retries = sum(s.retries for s in row.signals.values())
    ended = "" if row.complete else f", stopped after {row.seconds:.1f} of {row.planned_end - row.start:g} s"
    return (f"stage {row.number}/{row.of} ({shape}{ended}): target {row.target_events_per_second:,.0f}/s, "
            f"sent {row.sent_per_second:,.0f}/s, delivered {row.events_per_second:,.0f}/s, {p99}, "
            f"failed {failed:,}, rejected {rejected:,}, retries {retries:,}")


class Progress:
    """One line per signal every interval: events, rates, requests, bytes/s,
    retries, failures, rejections; with a bounded run, percent done and time left."""

    def __init__(self, write: Callable[[str], None], settings: SendSettings, active: Sequence[str],
                 events_per_pass: int, timeline: Timeline | None = None, started: float | None = None) -> None:
        self.write = write
        self.timeline = timeline
        self.settings = settings
        self.plan = settings.plan
        self.active = active
        self.events_per_pass = events_per_pass
        self.previous = {s: dict.fromkeys(COUNTERS, 0) for s in SIGNALS}
        self.previous_latency = {s: Histogram() for s in SIGNALS}
        self.started = time.monotonic() if started is None else started
        self.previous_time = self.started

    def _stage(self) -> str:
        """The stage an interval belongs to (intervals are cut at stage ends): the one running at its start."""
        return self.plan.label(self.plan.stage_at(self.previous_time - self.started)) if self.plan.staged else ""

    def line(self, totals: dict[str, dict[str, int]], elapsed: float,
             latencies: dict[str, dict[str, Histogram]] | None = None) -> SendReport:
        """Write the lines; return the interval's own figures as a report."""
        now = time.monotonic()
        interval_signals: dict[str, SignalReport] = {}
        interval = max(now - self.previous_time, 1e-9)
        done = self._fraction_done(totals, elapsed)
        stage = self._stage()
        target = (self.plan.average(self.previous_time - self.started, now - self.started) if self.plan.staged
                  else self.settings.events_per_second)
        parts = []
        if self.plan.staged:
            # Which stage runs now and its target at this moment (a ramp's moves).
            at = min(now - self.started, self.plan.duration)
            parts.append(f"stage {self.plan.stage_at(at) + 1}/{len(self.plan.stages)}, target "
                         f"{self.plan.rate_at(at):,.0f}/s")
        if done is not None and done > 0:
            left = elapsed / done - elapsed
            parts.append(f"{100 * min(done, 1):.0f}% done, {_clock(max(left, 0))} left")
        tail = f"  [{'; '.join(parts)}]" if parts else ""
        for s in self.active:
            t, p = totals[s], self.previous[s]
            self.write(
                f"{s:8s} {t['delivered']:>13,} events  {(t['delivered'] - p['delivered']) / interval:>11,.0f}/s "
                f"(avg {t['delivered'] / max(elapsed, 1e-9):>11,.0f}/s)  {t['requests']:>9,} req  "
                f"{(t['bytes'] - p['bytes']) / interval / 1e6:7.1f} MB/s  retries {t['retries']}  "
                f"failed {t['failed']}  rejected {t['rejected']}{tail}")
            tail = ""
            delta = {k: t[k] - p[k] for k in COUNTERS}
            since = Histogram()
            if latencies is not None:
                now_latency = latencies[s]["request"]
                since = now_latency - self.previous_latency[s]
                self.write(f"{'':8s} latency per request {latency.line(since)}")
                self.previous_latency[s] = now_latency
                if self.timeline is not None:
                    self.timeline.add(elapsed, s, interval, delta, since, stage)
            interval_signals[s] = SignalReport(signal=s, **delta, events_per_second=delta["delivered"] / interval,
                                               latency={"request": since, "batch": Histogram()})
        self.previous = {s: dict(v) for s, v in totals.items()}
        self.previous_time = now
        return SendReport(elapsed=interval, signals=interval_signals, target_events_per_second=target,
                          processes=self.settings.processes)

    def last(self, totals: dict[str, dict[str, int]], elapsed: float,
             latencies: dict[str, dict[str, Histogram]]) -> None:
        """The timeline's row for the rest of the run after the last line."""
        if self.timeline is None:
            return
        interval = time.monotonic() - self.previous_time
        if interval < 0.05:
            return
        stage = self._stage()
        for s in self.active:
            t, p = totals[s], self.previous[s]
            self.timeline.add(elapsed, s, interval, {k: t[k] - p[k] for k in COUNTERS},
                              latencies[s]["request"] - self.previous_latency[s], stage)

    def _fraction_done(self, totals: dict[str, dict[str, int]], elapsed: float) -> float | None:
        fractions = []
        if self.settings.duration > 0:
            fractions.append(elapsed / self.settings.duration)
        if self.settings.passes > 0 and self.events_per_pass:
            sent = sum(totals[s]["sent"] for s in self.active)
            fractions.append(sent / (self.settings.passes * self.events_per_pass))
        return max(fractions) if fractions else None


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def run(loaded: Sequence[SignalTemplates], settings: SendSettings, write: Callable[[str], None] = print,
        stop: threading.Event | None = None,
        on_start: Callable[[Callable[[], SendReport]], None] | None = None,
        timeline: Timeline | None = None) -> SendReport:
    """Send until a bound is reached or `stop` is set; return the report.
    `on_start` is given, once sending starts, a function that returns the
    counts so far as a SendReport (callable from any thread): how a fleet
    watches its senders."""
    stop = stop or threading.Event()
    reuse_large_buffers()  # before forking: the children inherit it
    loaded = prepare_gzip(loaded, settings, write)
    schedule = build_schedule(loaded)
    active = [t.signal for t in loaded]
    events_per_pass = sum(t.events_per_pass for t in loaded)
    run_start_ns = time.time_ns()
    started = time.monotonic()
    errors = ErrorLog(write)
    progress = Progress(write, settings, active, events_per_pass, timeline, started)
    cuts = StageCuts(settings.plan, active, write, settings.stage_check)
    if timeline is not None:
        timeline.stages = [StageMark(i + 1, seg.start, seg.end, seg.rate_from, seg.rate_to)
                           for i, seg in enumerate(settings.plan.segments) if seg.duration > 0]
        timeline.target = settings.events_per_second
    arrays = [RawArray("q", len(SIGNALS) * len(COUNTERS)) for _ in range(max(1, settings.processes))]
    latency_arrays = [new_latency_array() for _ in arrays]
    if on_start is not None:
        def current() -> SendReport:
            elapsed = time.monotonic() - started
            report = _report(Counters.totals(arrays), Counters.latency_totals(latency_arrays), elapsed, settings,
                             active, interrupted=False)
            report.target_events_per_second = settings.plan.rate_at(elapsed)  # the target now, a ramp's too
            report.stages = list(cuts.rows)  # the stages finished so far
            return report
        on_start(current)
    watch = Watch(arrays, latency_arrays, progress, cuts, settings, started, stop)
    if settings.processes <= 1:
        counters = Counters(arrays[0], latency_arrays[0])
        worker = threading.Thread(target=run_worker, name="telegen-sender",
                                  args=(schedule, settings, counters, stop, run_start_ns, 1.0, errors, started))
        worker.start()
        aborted = watch.until(lambda: worker.is_alive())
        worker.join()
    else:
        aborted = _run_processes(schedule, settings, stop, run_start_ns, errors, watch, started)
    elapsed = time.monotonic() - started
    totals, latencies = Counters.totals(arrays), Counters.latency_totals(latency_arrays)
    progress.last(totals, elapsed, latencies)
    cuts.cut(totals, latencies, elapsed)
    report = _report(totals, latencies, elapsed, settings, active,
                     interrupted=stop.is_set() and aborted is None and not _bounds_reached(settings, elapsed))
    report.aborted = aborted
    report.stages = cuts.rows
    return report


def _bounds_reached(settings: SendSettings, elapsed: float) -> bool:
    return settings.duration > 0 and elapsed >= settings.duration


@dataclass
class Watch:
    """The parent's loop while workers send: progress lines every interval,
    a stage's figures at its end, and abort_check on each interval."""

    arrays: list
    latency_arrays: list
    progress: Progress
    cuts: StageCuts
    settings: SendSettings
    started: float
    stop: threading.Event

    def until(self, alive: Callable[[], bool]) -> str | None:
        """Watch until `alive` says the workers ended; the reason when abort_check stopped the run."""
        next_line = self.started + self.settings.stats_interval
        aborted = None
        while alive():
            cut = self.cuts.next_cut()
            now = time.monotonic()
            # Wake at a stage's end on time: its figures are read there.
            wake = min(next_line, self.started + cut) if cut is not None else next_line
            time.sleep(min(0.05, max(wake - now, 0.0)))
            now = time.monotonic()
            at_cut = cut is not None and now - self.started >= cut
            if now < next_line and not at_cut:
                continue
            totals, latencies = Counters.totals(self.arrays), Counters.latency_totals(self.latency_arrays)
            interval = self.progress.line(totals, now - self.started, latencies)
            next_line = (now if at_cut else next_line) + self.settings.stats_interval
            if at_cut:
                self.cuts.cut(totals, latencies, now - self.started)
            if self.settings.abort_check is not None and aborted is None:
                aborted = self.settings.abort_check(interval)
                if aborted is not None:
                    self.progress.write(f"aborting: {aborted}")
                    if self.progress.timeline is not None:
                        self.progress.timeline.aborted_at = now - self.started
                    self.stop.set()
        return aborted


def _run_processes(schedule: Sequence[ScheduleItem], settings: SendSettings, stop: threading.Event,
                   run_start_ns: int, errors: ErrorLog, watch: Watch, started: float) -> str | None:
    """Fork workers after loading (templates shared copy-on-write); grpc is
    only ever started inside the children. Worker i counts into arrays[i]."""
    context = multiprocessing.get_context("fork")
    process_stop = context.Event()
    children = []
    for index in range(settings.processes):
        share = schedule[index::settings.processes]
        child = context.Process(target=_child_main, name=f"telegen-sender-{index}",
                                args=(share, settings, watch.arrays[index], watch.latency_arrays[index],
                                      process_stop, run_start_ns, 1.0 / settings.processes, started))
        child.start()
        children.append(child)

    def relay_stop() -> None:
        stop.wait()
        process_stop.set()

    threading.Thread(target=relay_stop, daemon=True).start()
    aborted = watch.until(lambda: any(c.is_alive() for c in children))
    for child in children:
        child.join()
        if child.exitcode not in (0, None):
            errors.error("worker", f"worker process {child.name} exited with status {child.exitcode}")
    return aborted


def _child_main(schedule: Sequence[ScheduleItem], settings: SendSettings, shared, latencies, process_stop,
                run_start_ns: int, share: float, started: float) -> None:
    # The parent owns Ctrl-C and tells the children to stop.
    signals.signal(signals.SIGINT, signals.SIG_IGN)
    stop = threading.Event()

    def relay() -> None:
        process_stop.wait()
        stop.set()

    threading.Thread(target=relay, daemon=True).start()
    errors = ErrorLog(lambda text: print(text, file=sys.stderr, flush=True))
    run_worker(schedule, settings, Counters(shared, latencies), stop, run_start_ns, share, errors, started)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: grpc threads would only slow it
