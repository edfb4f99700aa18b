"""A worker: walks its share of the schedule pass after pass, taking tokens
and in-flight slots, patching and handing bytes to the transport; and the
forked worker processes of a run with several."""
from __future__ import annotations

import collections
import dataclasses
import math
import os
import random
import signal as signals
import sys
import threading
import time
from collections.abc import Callable, Sequence

from ..scenarios.churn import Churn
from ..transport import Outcome, Transport, explain, open_transport
from ..transport.base import FAILED, reason_text
from ..transport.hints import permanent_reason
from .clock import TraceClock
from .counters import Counters, ErrorLog, Reasons, Relay, RelayedErrorLog
from .order import Generations
from .rate import TokenBucket
from .schedule import ScheduleItem, requests_for
from .settings import SendSettings


def run_worker(schedule: Sequence[ScheduleItem], settings: SendSettings, counters: Counters,
               stop: threading.Event, run_start_ns: int, share: float, errors: ErrorLog, reasons: Reasons,
               started: float | None = None, generations: Generations | None = None, index: int = 0,
               clock: TraceClock | None = None) -> None:
    """Send `schedule` pass after pass until a bound is reached or `stop`.
    `generations`: the run's metric generations (shared by its processes;
    this is process `index`). `clock`: the run's trace clock (shared too),
    its rows the trace batches' (Batch.slot)."""
    generations = generations or Generations(1, run_start_ns, settings.metric_interval)
    clock = clock or TraceClock(0)
    order = generations.worker(index, {_key(item) for item in schedule if item.signal == "metrics"})
    if not schedule:  # more processes than batches: nothing for this one
        return
    # Every process reads the plan on the parent's clock: stages change together.
    started = time.monotonic() if started is None else started
    deadline = started + settings.duration if settings.duration > 0 else None
    transports = {s: open_transport(s, settings.targets[s], settings.retry)
                  for s in {item.signal for item in schedule}}
    scenarios = settings.scenarios
    # Delayed children go out up to `by` after their root, the run's end included.
    delay = scenarios.delayed_by if scenarios.delayed else 0.0
    for s, transport in transports.items():
        transport.on_retry = _retry_line(s, errors)
        if settings.rate_control is not None:
            transport.on_answer = _answer_counter(s, counters)
        transport.deadline = deadline + delay if deadline is not None else None  # no back-off past the run's end
    plan = scenarios.rate_plan(settings.plan.scaled(share))
    bucket = None if plan.unthrottled else TokenBucket(plan, started)
    late = _Late(scenarios.late_fraction, scenarios.late_by) if scenarios.late else None
    churn = (Churn(scenarios.churn_fraction, scenarios.churn_every, scenarios.churn_items, started)
             if scenarios.churn and scenarios.churn_items else None)
    slots = threading.BoundedSemaphore(settings.concurrency)
    delivered_any = threading.Event()

    def finished(item: ScheduleItem, tenant: int, whole: bool = True) -> Callable[[Outcome], None]:
        # A trace batch's id groups are its traces (each trace one key);
        # delayed children (not `whole`) are counted with their roots' batch.
        traces = item.batch.plan.n_id_groups if item.signal == "traces" and whole else 0

        def done(outcome: Outcome) -> None:
            try:
                counters.add_outcome(item.signal, outcome, traces, tenant)
                if item.signal == "metrics":
                    order.answered()
                if outcome.delivered:
                    delivered_any.set()
                for (kind, reason), events in outcome.reasons.items():
                    reasons.add(item.signal, kind, reason, events)
                    hint = outcome.hints.get(reason, "")
                    if kind == FAILED:
                        errors.failed(item.signal, reason, events, outcome.attempts,
                                      before_any_success=not delivered_any.is_set(), hint=hint)
                        if permanent_reason(reason, hint):
                            counters.add_usage("permanent", events)
                    else:
                        errors.rejected(item.signal, reason, events, hint=hint)
            finally:
                slots.release()  # whatever saying it did, the slot must come back
        return done

    # A batch of metric series kept whole is sent at most once per its
    # series' period, so a series' times never overlap from send to send
    # (more volume comes from more series: metric_series_multiplier). Its
    # first send starts its replay: the patch grows each series from there at
    # the series' captured rate, and puts its start time before it.
    last_sent: dict[tuple[int, int], float] = {}
    every_key = [_key(item) for item in schedule]
    replay_started: dict[tuple[int, int], int] = {}
    sends: dict[tuple[int, int], int] = {}  # each batch's sends so far: the number its ids derive from
    later = _Later(delay)  # delayed children not yet sent

    def send_children(child: _Child) -> None:
        batch = child.item.batch.children
        item = ScheduleItem("traces", batch, -1)
        if bucket is not None and not stop.is_set():
            bucket.acquire(batch.piece_events[0], stop, None)
        if not _take_slot(slots, stop, None, counters):
            return
        _send(item, transports["traces"], counters, settings, run_start_ns, 0,
              finished(item, child.tenant, whole=False), _pace(bucket, batch.piece_events, stop, deadline),
              child.now_ns, child.tenant, child.number, clock)
        counters.add("traces", delayed=child.item.batch.delayed_traces,
                     late=batch.events if child.late else 0, tenant=child.tenant)
    ready: set[tuple[int, int]] = set()  # batches whose named trace batches have all gone out
    try:
        pass_number = 0
        unsent = set(every_key)  # batches not yet sent in this pass
        only_unsent = False
        while not stop.is_set() and (settings.passes == 0 or pass_number < settings.passes):
            sent = waiting = gated = 0
            for item, key in zip(schedule, every_key):
                if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    stop.set()
                    break
                for child in later.due():
                    send_children(child)
                if only_unsent and key not in unsent:
                    continue
                period = item.batch.series_period
                if period and time.monotonic() - last_sent.get(key, -math.inf) < period:
                    waiting += 1
                    continue
                if item.batch.needs and (item.tenants is None or item.signal == "logs"):
                    # It names spans: not before they have gone out (to its
                    # tenant; held back in the first pass only). With tenants
                    # an exemplar names its span as last sent to its tenant,
                    # once it was: held back it would hold the pass back.
                    gate = (key, 0 if item.tenants is None else item.tenants.pick(item.tenant_phase, pass_number))
                    if gate not in ready:
                        if not clock.all_sent(item.batch.needs, gate[1]):
                            waiting += 1
                            gated += 1
                            continue
                        ready.add(gate)
                now_ns = None
                if item.signal == "metrics":
                    now_ns = order.take(key)
                    if now_ns is None:  # sent this generation; the next cannot start yet
                        waiting += 1
                        gated += 1
                        continue
                pieces = item.batch.piece_events
                if bucket is not None and not bucket.acquire(pieces[0], stop, deadline):
                    stop.set()
                    break
                if not _take_slot(slots, stop, deadline, counters):
                    stop.set()
                    break
                if now_ns is None:
                    now_ns = time.time_ns()
                is_late = late is not None and item.signal != "metrics" and late.draw()
                if is_late:  # its times (and its logs', through the clock) set back
                    now_ns -= late.by_ns
                start_ns = run_start_ns
                if period:
                    last_sent[key] = time.monotonic()
                    start_ns = replay_started.setdefault(key, now_ns)
                # Generated counters grow once per generation: a series' value
                # never falls, and grows at the pace its samples are taken.
                step = order.generation - 1 if item.signal == "metrics" else pass_number
                # Tenants: each turn of an item goes to the next tenant in its cycle (a batch
                # naming spans turns with them, by the pass: see build_schedule).
                tenant = 0 if item.tenants is None else item.tenants.pick(
                    item.tenant_phase, pass_number if item.signal != "metrics" else step)
                churns = 0
                if churn is not None and item.churn_stride:
                    epoch, new = churn.epoch(item.churn_index, tenant, now_ns, step)
                    if new:  # a new series, as a restarted process's: counted once, as it starts
                        counters.add("metrics", series_created=item.batch.series[0],
                                     prometheus_created=item.batch.series[1])
                    churns = epoch.churns
                    if churns:
                        start_ns, step = epoch.start_ns, max(step - epoch.generation, 0)
                number = sends.get(key, 0)
                _send(item, transports[item.signal], counters, settings, start_ns, step, finished(item, tenant),
                      _pace(bucket, pieces, stop, deadline), now_ns, tenant, number, clock, churns)
                sends[key] = number + 1
                if item.batch.slot >= 0:  # what logs and exemplars naming its spans derive their ids from
                    clock.record(item.batch.slot, number, now_ns, is_late, tenant)
                if late is not None and item.signal != "metrics":
                    counters.add(item.signal, late=late.events(item.batch, is_late, clock, tenant), tenant=tenant)
                if item.batch.children is not None:
                    later.add(_Child(item, number, now_ns, is_late, tenant))
                unsent.discard(key)
                sent += 1
            # A pass counts once every batch has gone out in it: `passes` is
            # how often each template went out at least. Batches held back
            # for a generation's answers (a round trip) are waited for alone;
            # while one waits for its series' period (seconds), the others go
            # round again.
            if not unsent:
                pass_number += 1
                unsent = set(every_key)
                only_unsent = False
            else:
                only_unsent = waiting == gated
                if not sent:
                    waited = time.monotonic()
                    stop.wait(0.0005 if gated else 0.05)
                    if gated:  # held for answers (a generation's, retries included): the endpoint's time
                        counters.add_usage("slot_wait_us", int((time.monotonic() - waited) * 1e6))
        # The run's end waits (up to `by`) for the children still due, unless it was interrupted.
        ended = deadline is not None and time.monotonic() >= deadline or (
            settings.passes and pass_number >= settings.passes)
        while later and (ended or not stop.is_set()):
            child = later.wait(stop if not ended else None)
            if child is None:
                break
            send_children(child)
    finally:
        _drain(slots, settings, transports, stop)


@dataclasses.dataclass(frozen=True)
class _Child:
    """A trace batch's delayed children, owed `by` after the batch's send
    (its number and time, which they take)."""

    item: ScheduleItem
    number: int
    now_ns: int
    late: bool
    tenant: int = 0
    due: float = 0.0


class _Later:
    """Delayed children in the order they fall due (each one `by` after its root)."""

    def __init__(self, by: float) -> None:
        self.by = by
        self.queue: collections.deque[_Child] = collections.deque()

    def __bool__(self) -> bool:
        return bool(self.queue)

    def add(self, child: _Child) -> None:
        self.queue.append(dataclasses.replace(child, due=time.monotonic() + self.by))

    def due(self) -> list[_Child]:
        now = time.monotonic()
        out = []
        while self.queue and self.queue[0].due <= now:
            out.append(self.queue.popleft())
        return out

    def wait(self, stop: threading.Event | None) -> _Child | None:
        """The next child, once due; None when `stop` is set first."""
        child = self.queue[0]
        wait = child.due - time.monotonic()
        if wait > 0 and (stop.wait(wait) if stop is not None else time.sleep(wait)):
            return None
        return self.queue.popleft()


class _Late:
    """The late scenario in one worker: which sends of spans and logs carry
    times `by` in the past (each with probability `fraction`), and how many
    events each made late: a late trace batch's spans; a log batch's records
    of its own when it is late, and those keyed to a trace whose latest send
    was late (they are shifted as their spans were)."""

    def __init__(self, fraction: float, by: float) -> None:
        self.fraction = fraction
        self.by_ns = int(by * 1e9)
        self.random = random.Random(int.from_bytes(os.urandom(8), "little"))

    def draw(self) -> bool:
        return self.random.random() < self.fraction

    def events(self, batch, is_late: bool, clock: TraceClock, tenant: int = 0) -> int:
        if batch.signal == "traces":
            return batch.events if is_late else 0
        tied = batch.tied
        own = batch.plan.n_time_groups - (len(tied) if tied is not None else 0)
        return (own if is_late else 0) + (clock.late(tied, tenant) if tied is not None and len(tied) else 0)


def _retry_line(signal: str, errors: ErrorLog) -> Callable[[str, str], None]:
    """Says, once per reason, that requests are being retried and why."""
    def retrying(code: str, message: str) -> None:
        errors.retrying(signal, reason_text(code, message), explain(message))
    return retrying


def _answer_counter(signal: str, counters: Counters) -> Callable[[int, int], None]:
    def answered(events: int, refused: int) -> None:
        counters.add(signal, answered=events, refused=refused)
    return answered


def _take_slot(slots: threading.BoundedSemaphore, stop: threading.Event, deadline: float | None,
               counters: Counters | None = None) -> bool:
    """Wait for an in-flight slot; False when told to stop, or the run's end
    comes, first. The time waited is counted: the endpoint held the worker."""
    if slots.acquire(blocking=False):
        return True
    waiting = time.monotonic()
    try:
        while not slots.acquire(timeout=0.1):
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return False
        return True
    finally:
        if counters is not None:
            counters.add_usage("slot_wait_us", int((time.monotonic() - waiting) * 1e6))


def _key(item: ScheduleItem) -> tuple[int, int]:
    return id(item.batch), item.replica


def _send(item: ScheduleItem, transport: Transport, counters: Counters, settings: SendSettings,
          run_start_ns: int, step: int, done: Callable[[Outcome], None], pace: Callable[[int], None] | None,
          now_ns: int | None = None, tenant: int = 0, send_number: int = 0, clock: TraceClock | None = None,
          churns: int = 0) -> None:
    requests = requests_for(item, settings, run_start_ns, step, now_ns, send_number, clock, tenant, churns)
    counters.add(item.signal, sent=item.batch.events, requests=len(requests),
                 bytes=sum(len(r) for r in requests) - transport.framing_bytes * len(requests), batches=1,
                 tenant=tenant)
    transport.send(requests, item.batch.piece_events, done, pace, tenant)


def _pace(bucket: TokenBucket | None, pieces: tuple[int, ...], stop: threading.Event,
          deadline: float | None) -> Callable[[int], None] | None:
    """Waits for the tokens of a batch's later requests: a batch cut into
    several (a large trace) goes out at the rate, not all at once. Once the
    run is stopping the rest of a started batch goes without waiting."""
    if bucket is None or len(pieces) == 1:
        return None

    def pace(index: int) -> None:
        bucket.acquire(pieces[index], stop, deadline)

    return pace


def _drain(slots: threading.BoundedSemaphore, settings: SendSettings, transports: dict[str, Transport],
           stop: threading.Event) -> None:
    """Wait for the batches in flight (bounded by drain_timeout), then close:
    whatever is still pending ends as failed, so every event is counted. A
    run that ended by its duration, or was stopped, retries nothing more (the
    requests waiting to be retried finish as failed now, with the error that
    held them back): only the answers to requests on the wire are waited for.
    A run that ended by its passes lets its last batches' retries run."""
    drain_end = time.monotonic() + settings.drain_timeout
    retrying = True
    taken = 0
    while taken < settings.concurrency and time.monotonic() < drain_end:
        if retrying and stop.is_set():
            for transport in transports.values():
                transport.stop_retrying()
            retrying = False
        if slots.acquire(timeout=0.05):
            taken += 1
    for transport in transports.values():
        transport.close()
    # Closing cancels what was in flight; give those callbacks a moment.
    end = time.monotonic() + 2.0
    while taken < settings.concurrency and time.monotonic() < end:
        if slots.acquire(timeout=0.05):
            taken += 1


def _note_cpu(counters: Counters, stop: threading.Event, every: float = 0.2) -> None:
    """Keeps this process's CPU time in its counters, for the parent to read."""
    while not stop.wait(every):
        counters.set_usage("cpu_us", int(time.process_time() * 1e6))


def child_main(schedule: Sequence[ScheduleItem], settings: SendSettings, shared, latencies, process_stop,
               relay: Relay, run_start_ns: int, share: float, started: float, generations: Generations,
               index: int, clock: TraceClock | None = None, tenant_shared=None) -> None:
    # The parent owns Ctrl-C and tells the children to stop.
    signals.signal(signals.SIGINT, signals.SIG_IGN)
    stop = threading.Event()

    def relay_stop() -> None:
        while not process_stop.value:  # the parent's flag (see _run_processes)
            time.sleep(0.02)
        stop.set()

    threading.Thread(target=relay_stop, daemon=True).start()
    reasons = Reasons()
    counters = Counters(shared, latencies, tenant_shared)
    if settings.rate_control is not None:
        threading.Thread(target=_note_cpu, args=(counters, stop), daemon=True).start()
    run_worker(schedule, settings, counters, stop, run_start_ns, share, RelayedErrorLog(relay),
               reasons, started, generations, index, clock)
    counters.set_usage("cpu_us", int(time.process_time() * 1e6))
    relay.put(("reasons", reasons.counts))  # the parent sums them into the report
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: grpc threads would only slow it
