"""A run: load-time preparation, the workers (a thread, or forked processes),
the parent's watch, and the report at the end."""
from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..._memory import reuse_large_buffers
from ..load.batches import SignalTemplates
from ..load.correlate import correlate
from ..report import SenderLoad, SendReport, SignalReport, TenantReport
from ..report.latency import Histogram
from ..report.timeline import StageMark, Timeline
from ..scenarios import prepare_scenarios
from ..scenarios.report import scenario_report
from .clock import TraceClock
from .counters import (
    Counters,
    ErrorLog,
    Reasons,
    Relay,
    new_counter_array,
    new_latency_array,
    new_tenant_array,
    signal_counts,
    tenant_totals,
)
from .order import Generations
from .progress import Progress, StageCuts, Watch
from .schedule import ScheduleItem, build_schedule, prepare_compression
from .settings import SendSettings, target_rate
from .worker import child_main, run_worker


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
    traces_target = settings.targets.get("traces")
    loaded, scenarios = prepare_scenarios(loaded, settings.scenarios,
                                          traces_target.max_message_bytes if traces_target else 0)  # no traces: no cut
    settings = replace(settings, scenarios=scenarios)
    for line in scenarios.lines():
        write(line)
    tenants = settings.tenants is not None and settings.tenants.count > 1
    loaded = prepare_compression(correlate(loaded, per_trace_batch=tenants), settings, write)
    schedule = build_schedule(loaded, settings.tenants)
    if settings.scenarios.churn:
        settings = replace(settings, scenarios=replace(settings.scenarios, churn_items=sum(
            item.churn_stride > 0 for item in schedule)))
    clock = TraceClock(sum(len(t.batches) for t in loaded if t.signal == "traces"),
                       tenants=settings.tenants.count if settings.tenants is not None else 1)
    active = [t.signal for t in loaded]
    events_per_pass = sum(t.events_per_pass for t in loaded)
    run_start_ns = time.time_ns()
    started = time.monotonic()
    cpu_started = time.process_time()
    if settings.rate_control is not None:
        settings.rate_control.begin(started)
    errors = ErrorLog(write)
    reasons = Reasons()
    progress = Progress(write if settings.progress_lines else _quiet, settings, active, events_per_pass, timeline,
                        started)
    cuts = StageCuts(settings.plan, active, write, settings.stage_check)
    if timeline is not None:
        timeline.stages = [StageMark(i + 1, seg.start, seg.end, seg.rate_from, seg.rate_to)
                           for i, seg in enumerate(settings.plan.segments) if seg.duration > 0]
        timeline.target = settings.events_per_second
    arrays = [new_counter_array() for _ in range(max(1, settings.processes))]
    latency_arrays = [new_latency_array() for _ in arrays]
    tenant_arrays = ([new_tenant_array(settings.tenants.count) for _ in arrays]
                     if settings.tenants is not None and settings.tenants.count > 1 else None)
    if on_start is not None:
        def current() -> SendReport:
            elapsed = time.monotonic() - started
            report = _report(Counters.totals(arrays), Counters.latency_totals(latency_arrays), elapsed, settings,
                             active, reasons, interrupted=False)
            report.target_events_per_second = settings.plan.rate_at(elapsed)  # the target now, a ramp's too
            report.stages = list(cuts.rows)  # the stages finished so far
            report.load = sender_load(arrays, settings.processes, cpu_started)
            return report
        on_start(current)
    watch = Watch(arrays, latency_arrays, progress, cuts, settings, started, stop)
    dead: list[str] = []  # worker processes that did not end well
    generations = Generations(settings.processes, run_start_ns, settings.metric_interval)
    if settings.processes <= 1:
        counters = Counters(arrays[0], latency_arrays[0], tenant_arrays[0] if tenant_arrays else None)
        worker = threading.Thread(target=run_worker, name="telegen-sender",
                                  args=(schedule, settings, counters, stop, run_start_ns, 1.0, errors, reasons,
                                        started, generations, 0, clock))
        worker.start()
        aborted = watch.until(lambda: worker.is_alive())
        worker.join()
    else:
        aborted = _run_processes(schedule, settings, stop, run_start_ns, errors, reasons, watch, started,
                                 generations, clock, dead, tenant_arrays)
    elapsed = time.monotonic() - started
    totals, latencies = Counters.totals(arrays), Counters.latency_totals(latency_arrays)
    progress.last(totals, elapsed, latencies)
    cuts.cut(totals, latencies, elapsed)
    report = _report(totals, latencies, elapsed, settings, active, reasons,
                     interrupted=stop.is_set() and aborted is None and not _bounds_reached(settings, elapsed))
    report.aborted = aborted
    report.lower_bound = bool(dead)
    report.stages = cuts.rows
    report.scenarios = scenario_report(settings.scenarios, totals)
    report.started_at, report.ended_at = run_start_ns / 1e9, time.time()
    report.load = sender_load(arrays, settings.processes, cpu_started)
    if tenant_arrays:
        report.tenants = tenant_reports(settings, tenant_arrays, active)
    return report


def _quiet(line: str) -> None:
    pass


def sender_load(arrays: Sequence, processes: int, cpu_started: float) -> SenderLoad:
    """The workers' load so far. One worker runs in this process, whose CPU
    time is then the sender's; forked ones note their own (see worker)."""
    usage = Counters.usage_totals(arrays)
    totals = Counters.totals(arrays)
    cpu = usage["cpu_us"] / 1e6 if processes > 1 else time.process_time() - cpu_started
    return SenderLoad(max(processes, 1), cpu, usage["slot_wait_us"] / 1e6,
                      sum(t["answered"] for t in totals.values()), sum(t["refused"] for t in totals.values()))


def tenant_reports(settings: SendSettings, arrays: Sequence, active: Sequence[str]) -> list[TenantReport]:
    """A row per tenant: its headers as reports show them, weight and counts."""
    tenants = settings.tenants
    assert tenants is not None
    counts = tenant_totals(arrays, tenants.count)
    return [TenantReport(n, tenants.shown(n), tenants.weights[n], {s: counts[n][s] for s in active})
            for n in range(tenants.count)]


def _bounds_reached(settings: SendSettings, elapsed: float) -> bool:
    return settings.duration > 0 and elapsed >= settings.duration


def _report(totals: dict[str, dict[str, int]], latencies: dict[str, dict[str, Histogram]], elapsed: float,
            settings: SendSettings, active: Sequence[str], reasons: Reasons, interrupted: bool) -> SendReport:
    signals_out = {}
    for s in active:
        values = totals[s]
        signals_out[s] = SignalReport(signal=s, **signal_counts(s, values),
                                      events_per_second=values["delivered"] / elapsed if elapsed > 0 else 0.0,
                                      latency=latencies[s], reasons=reasons.of(s))
    return SendReport(elapsed=elapsed, signals=signals_out, target_events_per_second=target_rate(settings),
                      processes=settings.processes, interrupted=interrupted)


def _run_processes(schedule: Sequence[ScheduleItem], settings: SendSettings, stop: threading.Event,
                   run_start_ns: int, errors: ErrorLog, reasons: Reasons, watch: Watch, started: float,
                   generations: Generations, clock: TraceClock, dead: list[str],
                   tenant_arrays: Sequence | None = None) -> str | None:
    """Fork workers after loading (templates shared copy-on-write); grpc is
    only ever started inside the children. Worker i counts into arrays[i];
    their error lines and reasons come through one relay. The names of those
    that ended badly go to `dead`."""
    context = multiprocessing.get_context("fork")
    # A flag in shared memory, not a multiprocessing.Event: Event.set() waits
    # for every process sleeping in wait() to wake, and one that was killed
    # never does, so the others would never hear of the stop.
    process_stop = context.RawValue("b", 0)
    relay = Relay(context)
    children = []
    for index in range(settings.processes):
        share = schedule[index::settings.processes]
        child = context.Process(target=child_main, name=f"telegen-sender-{index}",
                                args=(share, settings, watch.arrays[index], watch.latency_arrays[index],
                                      process_stop, relay, run_start_ns, 1.0 / settings.processes, started,
                                      generations, index, clock,
                                      tenant_arrays[index] if tenant_arrays else None))
        child.start()
        children.append(child)

    def relay_stop() -> None:
        stop.wait()
        process_stop.value = 1

    threading.Thread(target=relay_stop, daemon=True).start()
    # Read the relay while watching: a child blocked on a full pipe would never end.
    watch.tick = lambda: relay.deliver(errors, reasons)
    watch.broken = lambda: _dead_worker(children, started)
    aborted = watch.until(lambda: any(c.is_alive() for c in children))
    for child in children:
        child.join()
        if child.exitcode not in (0, None):
            dead.append(child.name)
            if aborted is None:
                errors.error("worker", f"worker process {child.name} {_how_it_ended(child.exitcode)}")
    relay.deliver(errors, reasons)
    return aborted


def _dead_worker(children: Sequence, started: float) -> str | None:
    """Why the run cannot go on: a worker process ended before the run did
    (killed, out of memory). Its share of the load stopped with it, so the
    rate would be short of the target for the rest of the run, and what it
    had in flight is counted nowhere: the run stops, its totals lower bounds."""
    for child in children:
        if child.exitcode not in (0, None):
            return (f"worker process {child.name} {_how_it_ended(child.exitcode)} after "
                    f"{time.monotonic() - started:.1f} s; its share of the load stopped with it, so the run "
                    "stops, and its totals are lower bounds (its requests in flight are counted nowhere)")
    return None


def _how_it_ended(exitcode: int) -> str:
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-exitcode).name}"
        return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"
