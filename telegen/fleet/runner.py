"""`telegen fleet`: N sharded senders on a Ray cluster, watched and summed.

Ray places the senders (one core each, spread over the nodes) and carries
the calls; telegen adds nothing of its own to run a cluster. Sender i is
shard i/N (telegen.send.shard): 1/N of the fleet-wide rate, its own ids and
metric series. Template files reach each node once: read in place where the
node sees them at the driver's path, else shipped through Ray's object store
(fetched once per node) into the node's scratch directory. The senders of one
node share one mapped copy of the loaded batches (telegen.send.load.cache).

Without an address, a local Ray instance with N CPUs is started, bound to
127.0.0.1, so one command works on one box.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TelegenError, TemplateFileError
from ..send.config import SenderConfig
from ..send.engine import stage_line
from ..send.engine.plan import RatePlan
from ..send.report import SendReport, SignalReport
from ..send.report.thresholds import breaches
from ..send.report.timeline import StageMark, Timeline
from ..send.search.driver import Search, search_beside
from ..send.search.local import signal_mix
from ..send.search.report import INTERRUPTED, SearchReport
from ..send.search.settings import SearchSettings
from ..send.sender import nothing_to_send
from ..templates import SIGNALS
from .actor import SenderActor, remove_scratch, worker_setup_hook
from .report import FleetReport, SenderRow, merged_signals, merged_stages
from .search import FleetDriver

ON_SENDER_FAILURE = ("continue", "stop")
POLL_SECONDS = 1.0  # how often the driver asks every sender for its counts
LOAD_TIMEOUT = 600.0
DRAIN_TIMEOUT = 120.0


class FleetError(TelegenError):
    """The fleet cannot run as asked (no Ray, too few CPUs, bad templates)."""


@dataclass
class SenderInfo:
    """Where sender `index` runs; filled in once the senders are placed."""

    index: int
    node: str
    host: str
    pid: int


class Fleet:
    """N senders of one config, shard i/N each, on a Ray cluster.

        report = telegen.Fleet("send.yaml", senders=8).run()   # a local Ray instance
        report = telegen.Fleet(config, senders=64, address="ray://head:10001").run()
    """

    def __init__(self, config: SenderConfig | Mapping[str, Any] | str | os.PathLike, senders: int = 1,
                 address: str | None = None, overrides: Mapping[str, Any] | None = None,
                 on_sender_failure: str = "continue", write: Callable[[str], None] = print,
                 ship_templates: bool = False, on_connected: Callable[[], None] | None = None) -> None:
        if senders < 1:
            raise FleetError(f"senders: {senders} is invalid: expected an integer >= 1")
        if on_sender_failure not in ON_SENDER_FAILURE:
            raise FleetError(f"on_sender_failure: {on_sender_failure!r} is invalid: expected one of "
                             f"{', '.join(ON_SENDER_FAILURE)}")
        base = config if isinstance(config, SenderConfig) else SenderConfig.load(config)
        self.config = base.with_overrides(dict(overrides)) if overrides else base
        self.count = senders
        self.address = address
        self.on_sender_failure = on_sender_failure
        self.write = write
        self.ship_templates = ship_templates  # ship even files a node could read (tests, odd mounts)
        self.on_connected = on_connected
        self.senders: list[SenderInfo] = []
        self.loads: list[dict[str, Any]] = []  # what each sender's load did
        self.run_id = uuid.uuid4().hex[:12]
        self._local_ray = False

    def kill_local_ray(self) -> None:
        """SIGKILL the local Ray instance this fleet started, at once: for a
        second Ctrl-C, which skips the orderly shutdown. Its processes are
        this process's descendants (some would outlive it as orphans)."""
        if self._local_ray:
            for pid in _descendants(os.getpid()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- the run -------------------------------------------------------------

    def run(self, stop: threading.Event | None = None,
            on_start: Callable[[Callable[[], SendReport]], None] | None = None,
            timeline: Timeline | None = None) -> FleetReport:
        """Start the senders together, watch them, stop them (bounds, `stop`,
        or a sender failure with on_sender_failure="stop"), and sum their reports.
        `on_start` gets, once sending starts, a function returning the fleet's
        counts so far (as of the last poll): what --metrics-port serves;
        `timeline` gets a row per signal per progress interval (--report)."""
        stop = stop or threading.Event()
        return self._with_senders(lambda ray, actors: self._send(ray, actors, stop, on_start, timeline))

    def find_max(self, stop: threading.Event | None = None,
                 on_start: Callable[[Callable[[], SendReport]], None] | None = None,
                 timeline: Timeline | None = None) -> SearchReport:
        """The capacity search with the whole fleet: one controller (here)
        moves every sender's share of the rate together and judges each
        step on the fleet's summed counts (sending.search's limits). The
        report's `run` is the fleet's FleetReport."""
        stop = stop or threading.Event()
        search = self.config.sending.search
        if not search.enabled:
            self.config = self.config.with_overrides({"sending.search.enabled": True})
        return self._with_senders(lambda ray, actors: self._search(ray, actors, stop, on_start, timeline))

    def _with_senders(self, body: Callable[[Any, list], Any]) -> Any:
        """Connect, place and load the senders, run `body(ray, actors)`, clean up."""
        ray = _import_ray()
        files = self._template_files()
        started_ray = self._connect(ray)
        try:
            if self.on_connected is not None:
                self.on_connected()
            actors = self._place(ray)
            try:
                self._load(ray, actors, files)
                return body(ray, actors)
            finally:
                self._clean_up(ray, actors)
        finally:
            if started_ray:
                ray.shutdown()

    def _search(self, ray, actors: list, stop: threading.Event,
                on_start: Callable[[Callable[[], SendReport]], None] | None,
                timeline: Timeline | None) -> SearchReport:
        largest = max(load.get("largest_request", 0.0) for load in self.loads)
        settings = SearchSettings.from_config(self.config.sending.search).resolved(largest, self.count)
        self.write(settings.describe())
        coarse = settings.coarse(largest, self.count)
        if coarse:
            self.write(coarse)

        def send(engine_stop: threading.Event, started: threading.Event) -> FleetReport:
            return self._send(ray, actors, engine_stop, on_start, timeline, search=started)

        def search(ended: threading.Event) -> SearchReport:
            driver = FleetDriver(ray, actors, self.config.sending.concurrency, largest, self.write)
            return Search(driver, settings, self.write, stop).run()

        fleet_report, report = search_beside(send, search)
        assert report is not None
        report.mix = signal_mix(self.loads[0].get("events_per_pass_by_signal", {}))
        fleet_report.interrupted = stop.is_set()
        if fleet_report.interrupted:
            report.stop_reason = INTERRUPTED
        report.run = fleet_report
        return report

    def _template_files(self) -> dict[str, Path]:
        files = {name: Path(path).resolve() for name, path in self.config.input.files().items()}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise TemplateFileError(f"template file not found: {', '.join(missing)}")
        if not files:
            raise TemplateFileError(nothing_to_send(self.config.input))
        # Senders run elsewhere: they get absolute paths (or copies), and a
        # signal without templates here is off there too.
        self.config = self.config.with_overrides({f"input.{s}": str(files[s]) if s in files else False
                                                  for s in SIGNALS})
        return files

    def _connect(self, ray) -> bool:
        """Join the cluster at `address`, or start a local one; True if started here."""
        if ray.is_initialized():
            return False
        if self.address:
            try:
                ray.init(address=self.address, log_to_driver=False, include_dashboard=False,
                         logging_level=logging.WARNING, runtime_env=_runtime_env(self.address))
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise FleetError(f"cannot join the Ray cluster at {self.address}: {exc}") from None
            return True
        # A local instance listens on loopback only, and ignores the terminal's
        # Ctrl-C (it reaches the whole process group): the driver drains the
        # senders first, then stops Ray itself.
        self._local_ray = True
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Ray runs workers at nice 15; a load generator sharing its box with a
        # receiver must not yield to it (a local sender lost ~40 % that way).
        os.environ.setdefault("RAY_worker_niceness", "0")
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            # address="local": a new instance, even when this machine runs a cluster already.
            ray.init(address="local", num_cpus=self.count, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, _node_ip_address="127.0.0.1", runtime_env=_runtime_env(None))
        finally:
            signal.signal(signal.SIGINT, previous)
        return True

    def _place(self, ray) -> list:
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < self.count:
            raise FleetError(f"the Ray cluster has {cpus:g} CPUs for {self.count} senders (one CPU each); "
                             "add nodes or ask for fewer senders")
        remote = ray.remote(SenderActor).options(num_cpus=1, max_concurrency=4, scheduling_strategy="SPREAD",
                                                 max_restarts=0)
        plain = self.config.to_dict(redact=False)
        return [remote.remote(plain, index, self.count, self.run_id) for index in range(self.count)]

    def _load(self, ray, actors: list, files: dict[str, Path]) -> None:
        expected = {name: path.stat().st_size for name, path in files.items()}
        placed = ray.get([actor.prepare.remote(expected) for actor in actors], timeout=LOAD_TIMEOUT)
        self.senders = [SenderInfo(p["index"], p["node"], p["host"], p["pid"]) for p in placed]
        # One object per file, put once; Ray fetches it to each node that asks, once.
        need = {s for p in placed for s in (files if self.ship_templates else p["missing"])}
        refs = {name: ray.put(files[name].read_bytes()) for name in need}
        shipped = [{s: refs[s] for s in (files if self.ship_templates else p["missing"])} for p in placed]
        nodes = len({p["node"] for p in placed})
        via = f", shipping {', '.join(sorted(need))} through the object store" if need else ""
        self.write(f"Loading templates on {self.count} senders on {nodes} node(s){via}")
        started = time.monotonic()
        try:
            self.loads = ray.get([actor.load.remote(ship) for actor, ship in zip(actors, shipped)],
                                 timeout=LOAD_TIMEOUT)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            if isinstance(cause, TelegenError):
                raise type(cause)(str(cause).splitlines()[-1]) from None
            raise
        for index, load in enumerate(self.loads):
            for line in load["warnings"]:
                self.write(f"sender {index}: {line}")
        slowest = max(load["seconds"] for load in self.loads)
        built = sum(load["cache_built"] for load in self.loads)
        self.write(f"Loaded {self.loads[0]['batches']} batches per sender in {time.monotonic() - started:.1f} s "
                   f"(slowest sender {slowest:.1f} s; {built} load cache file(s) built, the rest mapped)")

    def _send(self, ray, actors: list, stop: threading.Event,
              on_start: Callable[[Callable[[], SendReport]], None] | None = None,
              timeline: Timeline | None = None, search: threading.Event | None = None) -> FleetReport:
        """Send and watch until `stop`. `search`: the senders send at a capacity
        search's rate (FleetDriver sets it), and this is set once they started."""
        self.write(self._describe())
        plan = self.config.sending.rate_plan()
        if timeline is not None:
            timeline.stages = [StageMark(i + 1, seg.start, seg.end, seg.rate_from, seg.rate_to)
                               for i, seg in enumerate(plan.segments) if seg.duration > 0]
            timeline.target = plan.constant
            timeline.p99_budget = self.config.thresholds.p99_latency
        ray.get([actor.start.remote(search is not None) for actor in actors])
        started = time.monotonic()
        if search is not None:
            search.set()
        watch = _Watch(self, started, plan, timeline)
        if on_start is not None:
            on_start(watch.current)
        live = dict(enumerate(actors))
        next_line = started + self.config.sending.stats_interval
        stopping = failed_stop = False
        while live:
            if (stop.is_set() or failed_stop) and not stopping:
                stopping = True
                self.write("Stopping the fleet: draining every sender")
                for actor in live.values():
                    actor.stop.remote()
            time.sleep(0.2 if stopping else POLL_SECONDS)
            asked = {index: actor.snapshot.remote() for index, actor in live.items()}
            for index, pending in asked.items():
                try:
                    snapshot = ray.get(pending, timeout=30)
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                    watch.died(index, _reason(exc), time.monotonic() - started)
                    del live[index]
                    if self.on_sender_failure == "stop" and not stopping:
                        self.write(f"sender {index} died: stopping the fleet (on_sender_failure: stop)")
                        failed_stop = True
                    continue
                actor = live[index]
                for line in snapshot["lines"]:
                    self.write(f"sender {index}: {line}")
                if snapshot["report"] is not None:
                    watch.seen(index, snapshot["report"])
                if snapshot["done"]:
                    del live[index]
                    watch.finished(index, actor)
            watch.finished_stages()
            if time.monotonic() >= next_line:
                watch.progress(time.monotonic() - started)
                next_line += self.config.sending.stats_interval
        watch.progress(time.monotonic() - started, last=True)
        rows = watch.rows(ray)
        # The fleet sent for as long as its longest-running sender did; the
        # driver's own clock also counts polling and the drain.
        elapsed = max((row.report.elapsed for row in rows if row.report is not None),
                      default=time.monotonic() - started)
        report = FleetReport(elapsed=elapsed,
                             target_events_per_second=plan.average(0, plan.duration) if plan.staged else plan.constant,
                             senders=rows, interrupted=stop.is_set(),
                             stages=merged_stages((row.report for row in rows if row.report is not None), plan))
        # Judged on the fleet's exact totals (merged histograms), as one sender's would be; each stage likewise.
        if search is not None:
            return report  # a search judges its own steps, not the thresholds
        for stage in report.stages:
            stage.breaches = breaches(stage.as_run(), self.config.thresholds)
        report.breaches = breaches(report.totals, self.config.thresholds) + [
            f"stage {stage.number}: {line}" for stage in report.stages for line in stage.breaches]
        return report

    def _describe(self) -> str:
        sending = self.config.sending
        rate = (f"{sending.rate_limit.events_per_second:,} events/s fleet-wide "
                f"({sending.rate_limit.events_per_second / self.count:,.0f} per sender)"
                if sending.rate_limit.events_per_second else "as fast as each sender can")
        if sending.stages:
            rate = f"{len(sending.stages)} stages fleet-wide: {sending.rate_plan().describe()}"
        bounds = [f"for {sending.duration:g} s"] if sending.duration else []
        bounds += [f"{sending.multiplier} passes"] if sending.multiplier else []
        if sending.search.enabled:
            rate, bounds = "the rate set by the capacity search (one controller, here)", []
        endpoints = sorted({self.config.signal_target(s).endpoint for s in self.config.input.files()})
        note = (f" (sending.processes: {sending.processes} ignored: a fleet sender is one process; "
                "more senders use more cores)" if sending.processes > 1 else "")
        return (f"Fleet of {self.count} senders (shards 0..{self.count - 1} of {self.count}) sending to "
                f"{', '.join(endpoints)}, {rate}, {' or '.join(bounds) if bounds else 'until stopped'}{note}")

    def _clean_up(self, ray, actors: list) -> None:
        nodes = {info.node for info in self.senders}
        cleanup = ray.remote(num_cpus=0)(remove_scratch)
        tasks = []
        for node in nodes:
            strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id=node, soft=False)
            tasks.append(cleanup.options(scheduling_strategy=strategy).remote(self.run_id, node))
        for actor in actors:
            ray.kill(actor)
        try:
            ray.get(tasks, timeout=30)
        except Exception:  # a node that went away took its scratch directory with it
            pass


class _Watch:
    """The driver's view of its senders: last counts, who finished, who died."""

    def __init__(self, fleet: Fleet, started: float, plan: RatePlan | None = None,
                 timeline: Timeline | None = None) -> None:
        self.fleet = fleet
        self.started = started
        self.plan = plan or RatePlan()
        self.timeline = timeline
        self.last: dict[int, SendReport] = {}
        self.previous: dict[int, SendReport] = {}
        self.previous_time = started
        self.previous_signals: dict[str, SignalReport] = {}
        self.dead: dict[int, tuple[str, float]] = {}
        self.done: dict[int, Any] = {}
        self.stages_said: set[int] = set()

    def current(self) -> SendReport:
        """The fleet's counts as of the last poll (latency histograms merged)."""
        elapsed = time.monotonic() - self.started
        reports = list(self.last.values())
        return SendReport(elapsed=elapsed, signals=merged_signals((r.signals for r in reports), elapsed),
                          target_events_per_second=self.plan.rate_at(elapsed), processes=len(self.fleet.senders))

    def finished_stages(self) -> None:
        """A fleet line per stage once every running sender has finished it."""
        running = [i for i in range(len(self.fleet.senders)) if i not in self.dead]
        for segment_index, segment in enumerate(self.plan.segments):
            if segment_index in self.stages_said or segment.duration <= 0:
                continue
            reports = [self.last.get(i) for i in running]
            if not reports or any(r is None or all(s.index != segment_index for s in r.stages) for r in reports):
                return
            self.stages_said.add(segment_index)
            merged = merged_stages((r for r in reports if r is not None), self.plan)
            row = next(stage for stage in merged if stage.index == segment_index)
            self.fleet.write(f"fleet {stage_line(row)}")

    def seen(self, index: int, report: SendReport) -> None:
        self.last[index] = report

    def finished(self, index: int, actor) -> None:
        self.done[index] = actor

    def died(self, index: int, reason: str, after: float) -> None:
        self.dead[index] = (reason, after)
        last = self.last.get(index)
        counted = f"{last.delivered:,} events delivered by its last report" if last else "no report yet"
        self.fleet.write(f"sender {index} died after {after:.1f} s ({reason}); {counted}; the others go on"
                         if self.fleet.on_sender_failure == "continue" else
                         f"sender {index} died after {after:.1f} s ({reason}); {counted}")

    def progress(self, elapsed: float, last: bool = False) -> None:
        """Fleet totals per signal over the last interval, and the slowest and
        fastest sender; a timeline row per signal. `last`: only the timeline's
        row for what came after the last line."""
        now = time.monotonic()
        interval = max(now - self.previous_time, 1e-9)
        self._timeline_rows(elapsed, interval)
        if last:
            return
        totals: dict[str, dict[str, int]] = {}
        for report in self.last.values():
            for name, s in report.signals.items():
                t = totals.setdefault(name, dict.fromkeys(("delivered", "failed", "rejected", "retries"), 0))
                for key in t:
                    t[key] += getattr(s, key)
        before: dict[str, int] = {}
        for report in self.previous.values():
            for name, s in report.signals.items():
                before[name] = before.get(name, 0) + s.delivered
        for name, t in totals.items():
            rate = (t["delivered"] - before.get(name, 0)) / interval
            self.fleet.write(f"[{elapsed:7.1f}s] fleet {name:8s} {t['delivered']:>14,} delivered  {rate:>12,.0f}/s  "
                             f"failed {t['failed']:,}  rejected {t['rejected']:,}  retries {t['retries']:,}")
        rates = {i: (r.delivered - (self.previous[i].delivered if i in self.previous else 0)) / interval
                 for i, r in self.last.items() if i not in self.dead}
        if rates:
            slow, fast = min(rates, key=rates.get), max(rates, key=rates.get)
            alive = len(self.fleet.senders) - len(self.dead)
            spread = (f"slowest {slow} ({rates[slow]:,.0f}/s), fastest {fast} ({rates[fast]:,.0f}/s)"
                      if rates[fast] > rates[slow] else f"each {rates[slow]:,.0f}/s")
            self.fleet.write(f"[{elapsed:7.1f}s] senders {alive} of {len(self.fleet.senders)} running; {spread}")
        self.previous = dict(self.last)
        self.previous_time = now

    def _timeline_rows(self, elapsed: float, interval: float) -> None:
        if self.timeline is None:
            return
        signals = merged_signals((r.signals for r in self.last.values()), elapsed)
        stage = self.plan.label(self.plan.stage_at(self.previous_time - self.started)) if self.plan.staged else ""
        # After the run's duration only answers to requests in flight arrive (the drain).
        duration = self.fleet.config.sending.duration or math.inf
        drain = max(0.0, elapsed - max(self.previous_time - self.started, duration))
        for name, now in signals.items():
            before = self.previous_signals.get(name, SignalReport(signal=name))
            delta = {key: getattr(now, key) - getattr(before, key)
                     for key in ("delivered", "bytes", "requests", "failed", "rejected", "retries")}
            self.timeline.add(elapsed, name, interval, delta, now.latency["request"] - before.latency["request"],
                              stage, drain)
        self.previous_signals = signals

    def rows(self, ray) -> list[SenderRow]:
        rows = []
        for info in self.fleet.senders:
            row = SenderRow(index=info.index, node=info.node)
            if info.index in self.dead:
                row.died, row.died_after = self.dead[info.index]
                row.report = self.last.get(info.index)
            else:
                try:
                    row.report = ray.get(self.done[info.index].result.remote(), timeout=DRAIN_TIMEOUT)
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                    row.died, row.died_after = _reason(exc), time.monotonic() - self.started
                    row.report = self.last.get(info.index)
            rows.append(row)
        return rows


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    detail = next((line.strip() for line in text if "reason" in line.lower() or "died" in line.lower()), "")
    return f"{name}: {detail}"[:200] if detail else name


def _descendants(root: int) -> list[int]:
    """Every process below `root`, children first (from /proc; Linux)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name (field 2) may hold spaces; the parent pid follows its ')'.
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(parent, []).append(int(entry.name))
    out: list[int] = []
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def _runtime_env(address: str | None) -> dict[str, Any] | None:
    """The job's runtime_env: workers import telegen from where this driver
    did, not from the driver's working directory, which Ray puts first on their
    sys.path (actor.worker_setup_hook says how). Through Ray Client (ray://)
    the working directory is not added, and the hook is left out."""
    if address is not None and address.startswith("ray://"):
        return None
    package_parent = Path(__file__).resolve().parents[2]  # the directory holding telegen/
    return {"worker_process_setup_hook": worker_setup_hook(str(package_parent))}


def _import_ray():
    try:
        import ray
        import ray.util.scheduling_strategies  # noqa: F401 - the node-pinned clean-up uses it
    except ImportError:
        raise FleetError("telegen fleet needs Ray: the fleet extra, "
                         "pip install '.[fleet]' in telegen's clone") from None
    return ray
