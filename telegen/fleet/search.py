"""A fleet as the capacity search's Driver: one controller (the driver
process) sets every sender's share of the rate through Ray and sums their
counts, so the knee found is the fleet's."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..send.search.control import RateControl
from ..send.search.judge import Reading, combined
from ..send.search.local import reading

# Seconds a sender may take to answer the controller before it counts as gone.
ANSWER_TIMEOUT = 30.0


class FleetDriver:
    def __init__(self, ray, actors: list, concurrency: int, request_events: float,
                 write: Callable[[str], None] = print) -> None:
        self.ray = ray
        self.live = dict(enumerate(actors))
        self.count = len(actors)
        self.concurrency = concurrency
        self.request_events = request_events
        self.write = write
        self.control = RateControl(0.0)  # the fleet-wide target, for what was offered
        self.control.begin(time.monotonic())
        self.rate = 0.0
        self.last: dict[int, Reading] = {}  # each sender's last counts (a sender that died keeps them)
        self.lock = threading.Lock()

    def now(self) -> float:
        return self.control.now()

    def set_rate(self, rate: float) -> None:
        """Each running sender gets an equal share; one that died leaves its share to the others."""
        self.rate = rate
        self.control.set(rate)
        while self.live:
            share = rate / len(self.live)
            asked = {index: actor.set_rate.remote(share) for index, actor in self.live.items()}
            if self._collect(asked):
                return

    def read(self) -> Reading:
        at = self.now()
        asked = {index: actor.counts.remote() for index, actor in self.live.items()}
        gone = not self._collect(asked, at)
        if gone:
            self.set_rate(self.rate)
        readings = list(self.last.values())
        if not readings:
            from ..send.report import SenderLoad
            from ..send.report.latency import Histogram
            return Reading(at, self.control.events_by(at), 0, 0, 0, 0, Histogram(), SenderLoad(self.count), 0,
                           self.request_events)
        return combined(readings, at, self.control.events_by(at))

    def _collect(self, asked: dict, at: float | None = None) -> bool:
        """Wait for each sender's answer (counts when `at` is given); False
        when one stopped answering (it is dropped from the live ones)."""
        ray = self.ray
        all_answered = True
        for index, pending in asked.items():
            try:
                answer = ray.get(pending, timeout=ANSWER_TIMEOUT)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                self.live.pop(index, None)
                self.write(f"search: sender {index} stopped answering; the others share its rate")
                all_answered = False
                continue
            if at is not None and answer is not None:
                self.last[index] = reading(answer, at, 0.0, self.concurrency, self.request_events)
        return all_answered

    def describe(self) -> str:
        return f"{self.count} senders"

    def alive(self) -> bool:
        return bool(self.live)

    def advice(self) -> str:
        return f"--senders is {self.count}: run more, on more nodes"
