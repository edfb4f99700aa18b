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
from .timeline import Timeline
from .transport import Outcome, RetryPolicy, Target, Transport, explain, open_transport

# Counters per signal, in this order, in each worker's shared array.
COUNTERS = ("sent", "delivered", "rejected", "failed", "requests", "bytes", "retries", "batches")


@dataclass(frozen=True)
class SendSettings:
    targets: dict[str, Target]
    events_per_second: float = 0  # 0: as fast as possible
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
    # How a batch becomes request bytes: None patches with the compiled
    # kernel (every real run). Benchmarks swap in the unpatched bytes (the
    # transport's ceiling) or a naive protobuf re-encoder to compare against.
    prepare: Callable[[ScheduleItem], bytes] | None = None


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
    and the next waits until the average is back on target."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = time.monotonic()

    def acquire(self, n: int, stop: threading.Event) -> bool:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 0:
                self.tokens -= n
                return True
            if stop.wait(min(0.05, -self.tokens / self.rate)):
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
               stop: threading.Event, run_start_ns: int, share: float, errors: ErrorLog) -> None:
    """Send `schedule` pass after pass until a bound is reached or `stop`."""
    if not schedule:  # more processes than batches: nothing for this one
        return
    transports = {s: open_transport(s, settings.targets[s], settings.retry)
                  for s in {item.signal for item in schedule}}
    for s, transport in transports.items():
        transport.on_retry = _retry_line(s, errors)
    rate = settings.events_per_second * share
    biggest = max((item.batch.events for item in schedule), default=1)
    bucket = TokenBucket(rate, max(biggest, rate / 10)) if rate > 0 else None
    slots = threading.BoundedSemaphore(settings.concurrency)
    deadline = time.monotonic() + settings.duration if settings.duration > 0 else None
    started = time.monotonic()
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

    try:
        pass_number = 0
        while not stop.is_set() and (settings.passes == 0 or pass_number < settings.passes):
            for item in schedule:
                if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    stop.set()
                    break
                if bucket is not None and not bucket.acquire(item.batch.events, stop):
                    break
                if not _take_slot(slots, stop):
                    break
                step = pass_number + int(time.monotonic() - started)
                _send(item, transports[item.signal], counters, settings, run_start_ns, step, finished(item))
            pass_number += 1
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


@dataclass
class SignalReport:
    signal: str
    sent: int = 0
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    requests: int = 0
    bytes: int = 0
    retries: int = 0
    batches: int = 0
    events_per_second: float = 0.0
    # "request": each request attempt to its answer; "batch": hand-over to
    # outcome, retries and backoff included.
    latency: dict[str, Histogram] = field(default_factory=lambda: {kind: Histogram() for kind in latency.KINDS})


@dataclass
class SendReport:
    """What a run did. delivered + rejected + failed == sent, per signal."""

    elapsed: float
    signals: dict[str, SignalReport]
    target_events_per_second: float
    processes: int
    interrupted: bool = False
    # Thresholds the run breached (telegen.send.thresholds), set by Sender.run.
    breaches: list[str] = field(default_factory=list)
    aborted: str | None = None  # why the run was stopped early (abort_on_breach)

    @property
    def delivered(self) -> int:
        return sum(s.delivered for s in self.signals.values())

    @property
    def events_per_second(self) -> float:
        return self.delivered / self.elapsed if self.elapsed > 0 else 0.0

    def failures(self) -> list[str]:
        """Why the run failed, or [] when it did not: nothing was delivered at
        all, or a signal that sent events got none of them delivered (a wrong
        endpoint, TLS or headers for that signal). Some failed or rejected
        events beside delivered ones are counted, not a failed run."""
        reasons = [f"{name}: none of {s.sent:,} events delivered ({s.failed:,} failed, {s.rejected:,} rejected)"
                   for name, s in self.signals.items() if s.sent and not s.delivered]
        if not self.delivered and not reasons:
            reasons.append("nothing was sent")
        aborted = [f"aborted: {self.aborted}"] if self.aborted else []
        return reasons + aborted + [f"threshold breached: {line}" for line in self.breaches]

    def to_dict(self) -> dict:
        return {
            "elapsed_seconds": round(self.elapsed, 3),
            "delivered_events": self.delivered,
            "events_per_second": round(self.events_per_second, 1),
            "target_events_per_second": self.target_events_per_second,
            "processes": self.processes,
            "interrupted": self.interrupted,
            "thresholds_breached": list(self.breaches),
            "aborted": self.aborted,
            "signals": {name: {**{k: (round(v, 1) if isinstance(v, float) else v) for k, v in vars(s).items()
                                  if k not in ("signal", "latency")},
                               "latency": {kind: {**h.summary(), "histogram": h.to_dict()}
                                           for kind, h in s.latency.items()}}
                        for name, s in self.signals.items()},
        }


def _report(totals: dict[str, dict[str, int]], latencies: dict[str, dict[str, Histogram]], elapsed: float,
            settings: SendSettings, active: Sequence[str], interrupted: bool) -> SendReport:
    signals_out = {}
    for s in active:
        values = totals[s]
        signals_out[s] = SignalReport(signal=s, **values,
                                      events_per_second=values["delivered"] / elapsed if elapsed > 0 else 0.0,
                                      latency=latencies[s])
    return SendReport(elapsed=elapsed, signals=signals_out, target_events_per_second=settings.events_per_second,
                      processes=settings.processes, interrupted=interrupted)


class Progress:
    """One line per signal every interval: events, rates, requests, bytes/s,
    retries, failures, rejections; with a bounded run, percent done and time left."""

    def __init__(self, write: Callable[[str], None], settings: SendSettings, active: Sequence[str],
                 events_per_pass: int, timeline: Timeline | None = None) -> None:
        self.write = write
        self.timeline = timeline
        self.settings = settings
        self.active = active
        self.events_per_pass = events_per_pass
        self.previous = {s: dict.fromkeys(COUNTERS, 0) for s in SIGNALS}
        self.previous_latency = {s: Histogram() for s in SIGNALS}
        self.previous_time = time.monotonic()

    def line(self, totals: dict[str, dict[str, int]], elapsed: float,
             latencies: dict[str, dict[str, Histogram]] | None = None) -> SendReport:
        """Write the lines; return the interval's own figures as a report."""
        now = time.monotonic()
        interval_signals: dict[str, SignalReport] = {}
        interval = max(now - self.previous_time, 1e-9)
        done = self._fraction_done(totals, elapsed)
        tail = ""
        if done is not None and done > 0:
            left = elapsed / done - elapsed
            tail = f"  [{100 * min(done, 1):.0f}% done, {_clock(max(left, 0))} left]"
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
                    self.timeline.add(elapsed, s, interval, delta, since)
            interval_signals[s] = SignalReport(signal=s, **delta, events_per_second=delta["delivered"] / interval,
                                               latency={"request": since, "batch": Histogram()})
        self.previous = {s: dict(v) for s, v in totals.items()}
        self.previous_time = now
        return SendReport(elapsed=interval, signals=interval_signals,
                          target_events_per_second=self.settings.events_per_second,
                          processes=self.settings.processes)

    def last(self, totals: dict[str, dict[str, int]], elapsed: float,
             latencies: dict[str, dict[str, Histogram]]) -> None:
        """The timeline's row for the rest of the run after the last line."""
        if self.timeline is None:
            return
        interval = time.monotonic() - self.previous_time
        if interval < 0.05:
            return
        for s in self.active:
            t, p = totals[s], self.previous[s]
            self.timeline.add(elapsed, s, interval, {k: t[k] - p[k] for k in COUNTERS},
                              latencies[s]["request"] - self.previous_latency[s])

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
    progress = Progress(write, settings, active, events_per_pass, timeline)
    arrays = [RawArray("q", len(SIGNALS) * len(COUNTERS)) for _ in range(max(1, settings.processes))]
    latency_arrays = [new_latency_array() for _ in arrays]
    if on_start is not None:
        on_start(lambda: _report(Counters.totals(arrays), Counters.latency_totals(latency_arrays),
                                 time.monotonic() - started, settings, active, interrupted=False))
    if settings.processes <= 1:
        counters = Counters(arrays[0], latency_arrays[0])
        worker = threading.Thread(target=run_worker, name="telegen-sender",
                                  args=(schedule, settings, counters, stop, run_start_ns, 1.0, errors))
        worker.start()
        aborted = _watch(lambda: worker.is_alive(), arrays, latency_arrays, progress, settings, started, stop)
        worker.join()
    else:
        aborted = _run_processes(schedule, settings, stop, run_start_ns, errors, progress, started, arrays,
                                 latency_arrays)
    elapsed = time.monotonic() - started
    totals, latencies = Counters.totals(arrays), Counters.latency_totals(latency_arrays)
    progress.last(totals, elapsed, latencies)
    report = _report(totals, latencies, elapsed, settings, active,
                     interrupted=stop.is_set() and aborted is None and not _bounds_reached(settings, elapsed))
    report.aborted = aborted
    return report


def _bounds_reached(settings: SendSettings, elapsed: float) -> bool:
    return settings.duration > 0 and elapsed >= settings.duration


def _watch(alive: Callable[[], bool], arrays: list, latency_arrays: list, progress: Progress,
           settings: SendSettings, started: float, stop: threading.Event) -> str | None:
    """Progress lines until the workers end; the reason when abort_check stopped the run."""
    next_line = time.monotonic() + settings.stats_interval
    aborted = None
    while alive():
        time.sleep(0.05)
        if time.monotonic() >= next_line:
            interval = progress.line(Counters.totals(arrays), time.monotonic() - started,
                                     Counters.latency_totals(latency_arrays))
            next_line += settings.stats_interval
            if settings.abort_check is not None and aborted is None:
                aborted = settings.abort_check(interval)
                if aborted is not None:
                    progress.write(f"aborting: {aborted}")
                    stop.set()
    return aborted


def _run_processes(schedule: Sequence[ScheduleItem], settings: SendSettings, stop: threading.Event,
                   run_start_ns: int, errors: ErrorLog, progress: Progress, started: float, arrays: list,
                   latency_arrays: list) -> str | None:
    """Fork workers after loading (templates shared copy-on-write); grpc is
    only ever started inside the children. Worker i counts into arrays[i]."""
    context = multiprocessing.get_context("fork")
    process_stop = context.Event()
    children = []
    for index in range(settings.processes):
        share = schedule[index::settings.processes]
        child = context.Process(target=_child_main, name=f"telegen-sender-{index}",
                                args=(share, settings, arrays[index], latency_arrays[index], process_stop,
                                      run_start_ns, 1.0 / settings.processes))
        child.start()
        children.append(child)

    def relay_stop() -> None:
        stop.wait()
        process_stop.set()

    threading.Thread(target=relay_stop, daemon=True).start()
    aborted = _watch(lambda: any(c.is_alive() for c in children), arrays, latency_arrays, progress, settings,
                     started, stop)
    for child in children:
        child.join()
        if child.exitcode not in (0, None):
            errors.error("worker", f"worker process {child.name} exited with status {child.exitcode}")
    return aborted


def _child_main(schedule: Sequence[ScheduleItem], settings: SendSettings, shared, latencies, process_stop,
                run_start_ns: int, share: float) -> None:
    # The parent owns Ctrl-C and tells the children to stop.
    signals.signal(signals.SIGINT, signals.SIG_IGN)
    stop = threading.Event()

    def relay() -> None:
        process_stop.wait()
        stop.set()

    threading.Thread(target=relay, daemon=True).start()
    errors = ErrorLog(lambda text: print(text, file=sys.stderr, flush=True))
    run_worker(schedule, settings, Counters(shared, latencies), stop, run_start_ns, share, errors)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: grpc threads would only slow it
