"""A search with one sender: its run goes on in a thread with a controlled
rate, and the search moves that rate and reads the run's counts."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..report import SenderLoad, SendReport
from ..report.latency import Histogram
from .control import RateControl
from .driver import Search, search_beside
from .judge import Reading, usable_cores
from .report import INTERRUPTED, SearchReport
from .settings import SearchSettings

if TYPE_CHECKING:
    from ..load.batches import SignalTemplates
    from ..report.timeline import Timeline
    from ..sender import Sender


def reading(report: SendReport, at: float, offered: float, slots: int, request_events: float) -> Reading:
    """A run's counts so far (a SendReport of `current()`) as the search reads
    them; `request_events`: the templates' events per request on average."""
    signals = report.signals.values()
    return Reading(at=at, offered=offered, sent=sum(s.sent for s in signals), request_events=request_events,
                   delivered=sum(s.delivered for s in signals), failed=sum(s.failed for s in signals),
                   rejected=sum(s.rejected for s in signals),
                   latency=Histogram.merged(s.latency["request"] for s in signals),
                   load=report.load or SenderLoad(report.processes), slots=slots)


def events_per_request(loaded: Sequence[SignalTemplates]) -> float:
    """The events of the largest request: how far a window's sends may
    fall short of the target, a request coming at a time."""
    return float(max((events for t in loaded for b in t.batches for events in b.piece_events), default=0))


def signal_mix(events_per_pass: dict[str, int]) -> dict[str, float]:
    """Each signal's share of a pass's events: how a rate splits per signal."""
    total = sum(events_per_pass.values())
    return {signal: events / total for signal, events in events_per_pass.items()} if total else {}


class LocalDriver:
    def __init__(self, control: RateControl, current: Callable[[], SendReport], processes: int, concurrency: int,
                 ended: threading.Event, request_events: float) -> None:
        self.control = control
        self.request_events = request_events
        self.current = current
        self.processes = processes
        self.slots = processes * concurrency
        self.ended = ended

    def set_rate(self, rate: float) -> None:
        self.control.set(rate)

    def now(self) -> float:
        return self.control.now()

    def read(self) -> Reading:
        at = self.control.now()
        return reading(self.current(), at, self.control.events_by(at), self.slots, self.request_events)

    def describe(self) -> str:
        return f"{self.processes} process{'es' if self.processes > 1 else ''}"

    def alive(self) -> bool:
        return not self.ended.is_set()

    def advice(self) -> str:
        cores = usable_cores()
        if self.processes < cores:
            return f"sending.processes is {self.processes} where this machine lets it use {cores:g} cores"
        return (f"{self.processes} processes use the {cores:g} cores this machine allows: run more senders "
                "(telegen fleet)")


def search_with(sender: Sender, stop: threading.Event | None = None, timeline: Timeline | None = None,
                on_start: Callable[[Callable[[], SendReport]], None] | None = None,
                on_sent: Callable | None = None) -> SearchReport:
    """Search with `sender` (loaded, or loaded now) as its config's
    sending.search says; the report carries the whole run's too."""
    stop = stop or threading.Event()
    settings = SearchSettings.from_config(sender.config.sending.search)
    loaded = sender.load()
    request_events = events_per_request(loaded)
    processes = max(sender.config.sending.processes, 1)
    settings = settings.resolved(request_events, processes)
    sender.write(settings.describe())
    coarse = settings.coarse(request_events, processes)
    if coarse:
        sender.write(coarse)
    control = RateControl(0.0)
    currents: list[Callable[[], SendReport]] = []
    sending = sender.config.sending

    def send(engine_stop: threading.Event, started: threading.Event) -> SendReport:
        def begun(current: Callable[[], SendReport]) -> None:
            currents.append(current)
            started.set()
            if on_start is not None:
                on_start(current)

        return sender.run(engine_stop, on_start=begun, timeline=timeline, on_sent=on_sent, rate_control=control)

    def search(ended: threading.Event) -> SearchReport:
        driver = LocalDriver(control, currents[0], processes, sending.concurrency, ended, request_events)
        return Search(driver, settings, sender.write, stop).run()

    run, report = search_beside(send, search)
    assert isinstance(run, SendReport) and report is not None
    report.mix = signal_mix({t.signal: t.events_per_pass for t in loaded})
    run.interrupted = stop.is_set()
    if run.interrupted:
        report.stop_reason = INTERRUPTED
    report.run = run
    return report
