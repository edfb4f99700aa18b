"""The search itself: steps at the planner's rates, each judged, a cool-down
after each, and the knee held to confirm it; against any Driver (one
sender's run, or a fleet's senders moved together by one controller)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .judge import CONCURRENCY, SENDER, Reading, Window, judge
from .planner import HINT_MARGIN, Planner
from .report import (
    CONCURRENCY_BOUND,
    HOLD_FAILED,
    INTERRUPTED,
    KNEE,
    MAX_RATE,
    MIN_RATE_FAILED,
    SENDER_BOUND,
    SearchReport,
    SearchStep,
)
from .settings import SearchSettings

# Holds tried when the knee does not hold, each the resolution lower.
MAX_HOLDS = 3


class Driver(Protocol):
    """What the search moves and reads."""

    def set_rate(self, rate: float) -> None:
        """Offer `rate` events/s from now on (over all senders; 0: nothing)."""

    def read(self) -> Reading:
        """The counts so far (cumulative) on the search's clock."""

    def now(self) -> float:
        """The search's clock: seconds (monotonic)."""

    def describe(self) -> str:
        """Who sends: "1 process", "4 senders x 2 processes"."""

    def advice(self) -> str:
        """What to do when the sender was the bound: more processes, or more senders."""

    def alive(self) -> bool:
        """Whether sending still goes on (a run that ended cannot be searched further)."""


def search_beside(send: Callable[[threading.Event, threading.Event], Any],
                  search: Callable[[threading.Event], SearchReport]) -> tuple[Any, SearchReport | None]:
    """Run `send(engine_stop, started)` in a thread (a run at a controlled
    rate, which sets `started` once it sends); once it has started, run
    `search(ended)` here (`ended` is set if sending ends by itself), then
    stop the sending and wait for it. (What send returned, the search's
    report: None when sending ended before it started.) What send raised
    is raised here."""
    engine_stop, started, ended = threading.Event(), threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def go() -> None:
        try:
            outcome["result"] = send(engine_stop, started)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            outcome["error"] = exc
        finally:
            ended.set()
            started.set()

    thread = threading.Thread(target=go, name="telegen-search-run", daemon=True)
    thread.start()
    started.wait()
    report = search(ended) if not ended.is_set() else None
    engine_stop.set()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], report


class Search:
    def __init__(self, driver: Driver, settings: SearchSettings, write: Callable[[str], None] = print,
                 stop: threading.Event | None = None) -> None:
        self.driver = driver
        self.settings = settings
        self.write = write
        self.stop = stop or threading.Event()
        self.steps: list[SearchStep] = []
        self.started = time.monotonic()
        self.baseline_p50: float | None = None
        self.short_low: float | None = None  # the highest rate a (short) step held, before the holds

    def run(self) -> SearchReport:
        s = self.settings
        planner = Planner(s)
        stop_reason: str | None = None
        bound: SearchStep | None = None
        rate = planner.next()
        while rate is not None:
            step = self._step(rate, planner.phase, s.step_duration)
            if step is None:
                stop_reason = INTERRUPTED
                break
            planner.record(rate, step.passed, step.delivered_rate)
            if step.reason in (SENDER, CONCURRENCY):
                stop_reason, bound = (SENDER_BOUND if step.reason == SENDER else CONCURRENCY_BOUND), step
                break
            if not self._cool_down():
                stop_reason = INTERRUPTED
                break
            rate = planner.next()
        confirmed = True
        if stop_reason is None:
            if planner.low is None:
                stop_reason = MIN_RATE_FAILED
            else:
                stop_reason = MAX_RATE if planner.high is None else KNEE
                confirmed, stop_reason = self._hold(planner, stop_reason)
        self.driver.set_rate(0.0)
        return self._report(planner, stop_reason, confirmed, bound)

    def _hold(self, planner: Planner, stop_reason: str) -> tuple[bool, str]:
        """Hold the knee found. A knee that does not hold (a backend that
        queued what a short step offered, and refuses once the queue is
        full) moves down: by the resolution, or to just under what the hold
        delivered where that is lower; up to MAX_HOLDS tries.
        (confirmed, stop reason)."""
        if not self.settings.hold:
            return True, stop_reason
        rate = planner.low
        self.short_low = planner.low
        for _ in range(MAX_HOLDS):
            assert rate is not None
            step = self._step(rate, "hold", self.settings.hold)
            if step is None:
                return False, INTERRUPTED
            if step.passed:
                planner.low = rate
                return True, KNEE if planner.high is not None else stop_reason
            if step.reason in (SENDER, CONCURRENCY):
                return False, SENDER_BOUND if step.reason == SENDER else CONCURRENCY_BOUND
            planner.high = min(planner.high or rate, rate)
            planner.low = None
            if not self._cool_down():
                return False, INTERRUPTED
            lower = rate * (1 - self.settings.resolution)
            if step.delivered_rate > 0:
                lower = min(lower, step.delivered_rate * HINT_MARGIN)
            rate = lower
            if rate < self.settings.floor:
                break
        return False, HOLD_FAILED

    def _step(self, rate: float, phase: str, duration: float) -> SearchStep | None:
        """Offer `rate` for `duration`, reading the counts every window; the
        step's figures and verdict, or None when stopped meanwhile."""
        driver = self.driver
        windows_count = max(round(duration / self.settings.window), 2)
        window = duration / windows_count
        driver.set_rate(rate)
        previous = driver.read()
        first = previous
        windows: list[Window] = []
        for k in range(windows_count):
            if self._wait_until(first.at + (k + 1) * window):
                return None
            reading = driver.read()
            windows.append(reading - previous)
            previous = reading
        verdict, f = judge(windows, self.settings, self.baseline_p50)
        if verdict.passed and self.baseline_p50 is None:
            self.baseline_p50 = f.p50
        step = SearchStep(len(self.steps) + 1, phase, rate, first.at, previous.at, f.sent_rate, f.delivered_rate,
                          f.error_share, f.p50, f.p99, f.cpu_share, f.slot_wait_share, verdict.passed, verdict.reason,
                          verdict.detail)
        end = first.at
        for w in windows:
            end += w.seconds
            step.windows.append((end, w.delivered_rate, w.latency.quantile(0.99) if w.latency.count else None))
        self.steps.append(step)
        self.write(step.line())
        return step

    def _cool_down(self) -> bool:
        """Offer nothing for the cool-down (the backend drains); False when stopped meanwhile."""
        if not self.settings.cooldown:
            return not self.stop.is_set()
        self.driver.set_rate(0.0)
        return not self._wait_until(self.driver.now() + self.settings.cooldown)

    def _wait_until(self, at: float) -> bool:
        """Wait until `at` on the search's clock; True when stopped (or sending ended) first."""
        while True:
            left = at - self.driver.now()
            if left <= 0:
                return False
            if self.stop.wait(min(left, 0.1)) or not self.driver.alive():
                return True

    def _report(self, planner: Planner, stop_reason: str, confirmed: bool, bound: SearchStep | None) -> SearchReport:
        s = self.settings
        sender = self.driver.describe()
        low, high = planner.low, planner.high
        if stop_reason == KNEE:
            held = "" if confirmed else " (NOT confirmed: it did not hold)"
            width = (high - low) / low
            bracket = (f"resolution {100 * s.resolution:g} %" if width <= s.resolution + 1e-9 else
                       f"a bracket of {100 * width:.0f} %: the hold moved the knee down")
            conclusion = (f"the backend sustains {low:,.0f} events/s{held}; it degraded at {high:,.0f}/s "
                          f"(the knee lies between, {bracket})")
        elif stop_reason == MAX_RATE:
            conclusion = f"the backend took the configured max_rate, {low:,.0f} events/s: its limit is higher"
        elif stop_reason == HOLD_FAILED:
            holds = ", ".join(f"{step.rate:,.0f}/s" for step in self.steps if step.phase == "hold")
            conclusion = (f"no rate held for the hold's {s.hold:g} s (tried {holds}), though steps of "
                          f"{s.step_duration:g} s held up to {self.short_low or 0:,.0f}/s: the backend queues what it "
                          f"cannot sustain; lengthen step_duration (or the hold) to search below the queue's reach")
            low = self.short_low
        elif stop_reason == MIN_RATE_FAILED:
            least = "the least rate tried" if s.auto_min else "sending.search.min_rate"
            conclusion = f"the backend failed at {high:,.0f} events/s ({least}): no sustainable rate found"
        elif stop_reason == SENDER_BOUND:
            assert bound is not None
            got = (f"the backend took {low:,.0f} events/s and more is unknown" if low
                   else "nothing is known of the backend")
            conclusion = (f"limited by the sender ({sender} at {100 * bound.cpu_share:.0f} % CPU could offer only "
                          f"{bound.sent_rate:,.0f} of {bound.rate:,.0f} events/s): add processes or senders "
                          f"({self.driver.advice()}); {got}")
        elif stop_reason == CONCURRENCY_BOUND:
            assert bound is not None
            conclusion = (f"limited by the sender's requests in flight: {bound.detail}; raise sending.concurrency "
                          f"(or add processes); the backend took {low or 0:,.0f} events/s so far")
        else:
            conclusion = f"interrupted; the backend had taken {low or 0:,.0f} events/s so far"
        if stop_reason in (SENDER_BOUND, CONCURRENCY_BOUND, INTERRUPTED, MIN_RATE_FAILED, HOLD_FAILED):
            confirmed = False
        return SearchReport(signals=s.signal, stop_reason=stop_reason,
                            max_sustainable_eps=low if stop_reason in (KNEE, MAX_RATE) else None,
                            lower_bound_eps=low, degraded_at_eps=high, resolution=s.resolution, confirmed=confirmed,
                            sender=sender, steps=self.steps, conclusion=conclusion)
