"""The parent's view while workers send: a progress line per signal every
interval, a stage's figures at its end, and the abort check on each interval."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...templates import SIGNALS
from ..report import SendReport, SignalReport, StageReport, latency
from ..report.latency import Histogram
from ..report.timeline import Timeline
from .counters import COUNTERS, Counters, signal_counts
from .plan import RatePlan
from .settings import SendSettings


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
            signals[s] = SignalReport(signal=s, **signal_counts(s, delta),
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
    """One line per signal every interval: events delivered, rates, requests,
    bytes/s, retries, failures, rejections; with a bounded run, how far its
    nearer bound is (time, or passes sent) and the time left."""

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
        # Seconds since start when sending stopped (the duration ended, or the
        # run was stopped): what comes after is the drain.
        self.sending_ended = settings.duration if settings.duration > 0 else math.inf

    def stopped(self, seconds: float) -> None:
        """Sending stopped at `seconds` (if not earlier)."""
        self.sending_ended = min(self.sending_ended, seconds)

    def _drain(self, end: float) -> float:
        """Of the interval from the previous line to `end` (seconds since start), the part after sending stopped."""
        return max(0.0, end - max(self.previous_time - self.started, self.sending_ended))

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
        moving = self.plan.staged or getattr(self.plan, "controlled", False)  # a controller's rate moves too
        target = (self.plan.average(self.previous_time - self.started, now - self.started) if moving
                  else self.settings.events_per_second)
        parts = []
        if self.plan.staged:
            # Which stage runs now and its target at this moment (a ramp's moves).
            at = min(now - self.started, self.plan.duration)
            parts.append(f"stage {self.plan.stage_at(at) + 1}/{len(self.plan.stages)}, target "
                         f"{self.plan.rate_at(at):,.0f}/s")
        if elapsed > self.sending_ended:
            # The bound is reached: what comes now are answers, not progress.
            parts.append(f"sending ended at {self.sending_ended:.1f} s; waiting for the answers in flight")
        elif done is not None and done > 0:
            # Time or sends, never "done": a run that delivers nothing gets through its time all the same.
            left = elapsed / done - elapsed
            parts.append(f"{self._how_far(totals, elapsed)}, {_clock(max(left, 0))} left")
        tail = f"  [{'; '.join(parts)}]" if parts else ""
        for s in self.active:
            t, p = totals[s], self.previous[s]
            self.write(
                f"{s:8s} {t['delivered']:>13,} delivered  {(t['delivered'] - p['delivered']) / interval:>11,.0f}/s "
                f"(avg {t['delivered'] / max(elapsed, 1e-9):>11,.0f}/s)  {t['requests']:>9,} req  "
                f"{(t['bytes'] - p['bytes']) / interval / 1e6:7.1f} MB/s sent  retries {t['retries']}  "
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
                    self.timeline.add(elapsed, s, interval, delta, since, stage, self._drain(elapsed))
            interval_signals[s] = SignalReport(signal=s, **signal_counts(s, delta),
                                               events_per_second=delta["delivered"] / interval,
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
                              latencies[s]["request"] - self.previous_latency[s], stage, self._drain(elapsed))

    def _fraction_done(self, totals: dict[str, dict[str, int]], elapsed: float) -> float | None:
        """How far the nearer bound is reached: the time, or the passes sent."""
        fractions = [fraction for fraction, _ in self._bounds(totals, elapsed)]
        return max(fractions) if fractions else None

    def _how_far(self, totals: dict[str, dict[str, int]], elapsed: float) -> str:
        """The nearer bound, in what it counts: "3 of 5 s" or "40 % of 10 passes sent"."""
        return max(self._bounds(totals, elapsed))[1]

    def _bounds(self, totals: dict[str, dict[str, int]], elapsed: float) -> list[tuple[float, str]]:
        bounds = []
        if self.settings.duration > 0:
            bounds.append((elapsed / self.settings.duration, f"{min(elapsed, self.settings.duration):.0f} of "
                                                             f"{self.settings.duration:g} s"))
        if self.settings.passes > 0 and self.events_per_pass:
            sent = sum(totals[s]["sent"] for s in self.active)
            fraction = sent / (self.settings.passes * self.events_per_pass)
            bounds.append((fraction, f"{100 * min(fraction, 1):.0f} % of {self.settings.passes} passes sent"))
        return bounds


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# How long a run may go with nothing delivered and requests failing with
# errors retrying cannot fix before it stops: a config error costs seconds,
# not the run's duration.
HOPELESS_S = 3.0


def _hopeless_since(totals: dict[str, dict[str, int]], permanent: int, since: float | None) -> float | None:
    """Since when the run looks hopeless, or None: nothing delivered (or
    refused by a backend that read it), and requests failed with errors
    retrying cannot fix. A receiver that is down (refused connections) is
    retried instead: it may come up."""
    if permanent <= 0 or any(t["delivered"] or t["rejected"] for t in totals.values()):
        return None
    return since if since is not None else time.monotonic()


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
    # Called on every turn of the loop (about every 50 ms): forked workers' relay is read here.
    tick: Callable[[], None] | None = None
    # Says why the run cannot go on (a worker process died), or None.
    broken: Callable[[], str | None] | None = None

    def until(self, alive: Callable[[], bool]) -> str | None:
        """Watch until `alive` says the workers ended; the reason when
        abort_check stopped the run, or when for HOPELESS_S nothing was
        delivered and requests failed with errors retrying cannot fix (a
        certificate nobody trusts, the wrong protocol for the port, HTTP
        401/404/501: the error lines above say which): a configuration
        error, and the rest of the run would only repeat it."""
        next_line = self.started + self.settings.stats_interval
        aborted = None
        hopeless_since: float | None = None
        next_look = self.started
        while alive():
            if self.tick is not None:
                self.tick()
            why = self.broken() if aborted is None and self.broken is not None else None
            if why is not None:
                aborted = why
                self.progress.write(f"aborting: {aborted}")
                if self.progress.timeline is not None:
                    self.progress.timeline.aborted_at = time.monotonic() - self.started
                self.stop.set()
            if self.stop.is_set():
                self.progress.stopped(time.monotonic() - self.started)
            elif aborted is None and self.settings.rate_control is None and time.monotonic() >= next_look:
                next_look = time.monotonic() + 0.25
                hopeless_since = _hopeless_since(Counters.totals(self.arrays),
                                                 Counters.usage_totals(self.arrays)["permanent"], hopeless_since)
                if hopeless_since is not None and time.monotonic() - hopeless_since >= HOPELESS_S:
                    aborted = (f"nothing delivered in {time.monotonic() - self.started:.0f} s, and requests failed "
                               "with errors that retrying cannot fix (see the errors above)")
                    self.progress.write(f"aborting: {aborted}")
                    if self.progress.timeline is not None:
                        self.progress.timeline.aborted_at = time.monotonic() - self.started
                    self.stop.set()
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

