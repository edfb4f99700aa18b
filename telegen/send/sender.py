"""telegen.Sender: the public face of the send path, for the CLI and for test
harnesses:

    report = telegen.Sender(config).run()   # config: SenderConfig, dict, YAML text or path
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._memory import release_free_memory
from ..errors import ConfigError, TemplateFileError
from ..templates import SIGNALS
from .config import InputConfig, SenderConfig
from .engine import ScheduleItem, SendSettings, run, stage_line
from .load.batches import SignalTemplates, describe, load_signal
from .load.cache import load_cached
from .load.compression import IDENTITY, body_encoding
from .load.series import SeriesCount, count_series
from .report import SendReport, latency, percent
from .report.thresholds import abort_check, breaches
from .report.timeline import Timeline
from .scenarios import Scenarios
from .scenarios.churn import CHURN_DIGITS
from .scenarios.report import scenario_lines
from .search.control import RateControl
from .search.local import search_with
from .search.report import SearchReport
from .search.settings import SearchSettings
from .shard import SeriesCopies
from .transport import RetryPolicy, Target
from .transport.grpc_curl import choose as choose_grpc_client
from .transport.resolve import check_endpoints_resolve


class Sender:
    """Loads templates into batches once, then sends them per its config."""

    def __init__(self, config: SenderConfig | Mapping[str, Any] | str | os.PathLike,
                 write: Callable[[str], None] = print) -> None:
        self.config = config if isinstance(config, SenderConfig) else SenderConfig.load(config)
        self.write = write
        self._loaded: list[SignalTemplates] | None = None
        self._series: SeriesCount | None = None

    def input_files(self) -> dict[str, Path]:
        """The template file per signal that will be sent (a search with one
        signal sends that one alone)."""
        search = self.config.sending.search
        only = search.signal if search.enabled and search.signal != "all" else None
        return {signal: Path(path) for signal, path in self.config.input.files().items()
                if only is None or signal == only}

    def load(self) -> list[SignalTemplates]:
        """Read and batch the templates (once); prints the seed's load lines."""
        if self._loaded is not None:
            return self._loaded
        sending = self.config.sending
        loaded = []
        shard = sending.shard
        tenants = self.config.tenants()
        for signal, path in self.input_files().items():
            copies = (SeriesCopies.for_shard(shard.index, shard.count, sending.metric_series_multiplier,
                                             tenants.count if tenants else 1,
                                             CHURN_DIGITS if sending.scenarios.churn.fraction > 0 else 0)
                      if signal == "metrics" else SeriesCopies())
            started = time.monotonic()
            per_batch = getattr(sending.batch_size, signal)
            if self.config.input.cache_dir:
                encoding = body_encoding(self.target(signal), sending.gzip_encoder, sending.zstd_encoder)
                templates = load_cached(signal, path, per_batch, sending.max_message_bytes, copies,
                                        self.config.input.cache_dir, self.write,
                                        gzip=encoding.patchable and encoding.codec == "gzip",
                                        zstd=encoding.patchable and encoding.codec == "zstd")
            else:
                templates = load_signal(signal, path, per_batch, sending.max_message_bytes, copies, self.write)
            self.write(f"{describe(templates)} ({time.monotonic() - started:.1f} s)")
            loaded.append(templates)
        release_free_memory()
        if not loaded:
            raise TemplateFileError(nothing_to_send(self.config.input))
        self._loaded = loaded
        return loaded

    def series(self) -> SeriesCount:
        """The metric series one pass writes, as OTLP and as a Prometheus-style
        store counts them (all copies this sender writes included)."""
        if self._series is None:
            metrics = [t for t in self.load() if t.signal == "metrics"]
            self._series = count_series(metrics[0]) if metrics else SeriesCount(0, 0)
        return self._series

    def signals(self) -> list[str]:
        """The signals this sender sends: those loaded, or before loading those
        the config does not switch off. The setup line names only their
        endpoints: one of a signal that is off would only mislead."""
        if self._loaded is not None:
            return [templates.signal for templates in self._loaded]
        search = self.config.sending.search
        only = search.signal if search.enabled and search.signal != "all" else None
        return [signal for signal in SIGNALS if self.config.input.path(signal) is not None
                and (only is None or signal == only)]

    def settings(self) -> SendSettings:
        sending = self.config.sending
        retry = sending.retry
        # The configured rate is the fleet's: a shard sends its 1/N.
        plan = sending.rate_plan(1 / sending.shard.count)
        return SendSettings(
            targets={signal: self.target(signal) for signal in SIGNALS},
            events_per_second=plan.constant,
            stages=plan.stages,
            concurrency=sending.concurrency,
            duration=sending.duration,
            passes=sending.multiplier,
            processes=sending.processes,
            metric_interval=sending.metric_interval,
            jitter_ns=self.config.timestamps.jitter_ms * 1_000_000,
            backdate_ns=self.config.timestamps.backdate_ms * 1_000_000,
            retry=RetryPolicy(max_attempts=retry.max_attempts, initial_backoff=retry.initial_backoff,
                              max_backoff=retry.max_backoff, multiplier=retry.backoff_multiplier,
                              max_elapsed=retry.max_elapsed),
            stats_interval=sending.stats_interval,
            gzip_encoder=sending.gzip_encoder,
            zstd_encoder=sending.zstd_encoder,
            scenarios=Scenarios.from_config(sending.scenarios),
            abort_check=abort_check(self.config.thresholds),
            stage_check=lambda figures: breaches(figures, self.config.thresholds),
            tenants=self.config.tenants(),
        )

    def target(self, signal: str) -> Target:
        resolved = self.config.signal_target(signal)
        return Target(
            endpoint=resolved.endpoint,
            headers=tuple(resolved.headers),
            insecure=resolved.insecure,
            compression=resolved.compression,
            timeout=resolved.timeout,
            ca_file=resolved.tls.ca_file,
            cert_file=resolved.tls.cert_file,
            key_file=resolved.tls.key_file,
            max_message_bytes=self.config.sending.max_message_bytes,
            protocol=resolved.protocol,
            grpc_client=choose_grpc_client(resolved.grpc_client, resolved.compression),
            tenant_headers=resolved.tenant_headers,
        )

    def describe_metric_pace(self) -> str | None:
        """With `metric_interval`: how many points per second the series can
        give, and how many copies of them the asked rate needs."""
        interval = self.config.sending.metric_interval
        loaded = self.load()
        metrics = next((t for t in loaded if t.signal == "metrics"), None)
        if not interval or metrics is None:
            return None
        settings = self.settings()
        points = metrics.events_per_pass  # one sample of every series this sender writes
        ceiling = points / interval
        line = (f"metrics: {points:,} series sampled every {interval:g} s (metric_interval) give at most "
                f"{ceiling:,.0f} points/s")
        rate = settings.plan.constant
        if rate:
            share = rate * points / sum(t.events_per_pass for t in loaded)
            if share > ceiling:
                needed = math.ceil(share * interval / metrics.events)
                line += (f"; the rate asks for about {share:,.0f}/s: set metric_series_multiplier to {needed} "
                         f"(or more) for that many series")
        return line

    def describe_setup(self) -> str:
        settings = self.settings()
        shard = self.config.sending.shard
        fleet_rate = self.config.sending.rate_limit.events_per_second
        if self.config.sending.search.enabled:
            rate = "the rate set by the capacity search"
        elif settings.stages:
            fleet = f" (1/{shard.count} of the fleet's targets)" if shard.count > 1 else ""
            rate = f"{len(settings.stages)} stages: {settings.plan.describe()}{fleet}"
        elif not settings.events_per_second:
            rate = "as fast as possible"
        elif shard.count > 1:
            rate = f"{settings.events_per_second:,.0f} events/s (1/{shard.count} of the fleet-wide {fleet_rate:,})"
        else:
            rate = f"{settings.events_per_second:,.0f} events/s"
        bounds = []
        if settings.duration and not self.config.sending.search.enabled:
            bounds.append(f"for {settings.duration:g} s")
        if settings.passes and not self.config.sending.search.enabled:
            bounds.append(f"{settings.passes} passes")
        endpoints = sorted({f"{t.endpoint} ({_carrier(t)}, {'insecure' if t.insecure else 'TLS'}, "
                            f"{_compression(t, settings)})"
                            for signal, t in settings.targets.items() if signal in self.signals()})
        who = f"Shard {shard.index}/{shard.count}: s" if shard.count > 1 else "S"
        until = " or ".join(bounds) + (", whichever comes first" if len(bounds) > 1 else "") or "until stopped"
        return (f"{who}ending to {', '.join(endpoints)} with {settings.processes} process(es) x "
                f"{settings.concurrency} requests in flight, {rate}, {until}")

    def run(self, stop: threading.Event | None = None,
            on_start: Callable[[Callable[[], SendReport]], None] | None = None,
            timeline: Timeline | None = None,
            on_sent: Callable[[ScheduleItem, bytes, int], None] | None = None,
            rate_control: RateControl | None = None) -> SendReport:
        """Load (if not yet), send until the duration or pass bound or `stop`,
        and return the report. Never raises for endpoint errors: they are
        retried, counted and logged. `on_start` receives, once sending starts,
        a function returning the counts so far (see engine.run); `on_sent`
        sees each batch's patched bytes as it goes (SendSettings.on_sent).
        `rate_control`: a controller sets the rate and stops the run (the
        capacity search; see find_max): no time or pass bound, no progress
        lines, no thresholds (the search judges its own steps)."""
        check_processes(self.config.sending.processes, self.config.sending.force)
        loaded = self.load()
        check_endpoints_resolve((t.signal, self.target(t.signal).endpoint) for t in loaded)
        self.write(self.describe_setup())
        pace = self.describe_metric_pace()
        if pace:
            self.write(pace)
        if timeline is not None:
            timeline.p99_budget = self.config.thresholds.p99_latency
        settings = self.settings() if on_sent is None else replace(self.settings(), on_sent=on_sent)
        if rate_control is not None:
            window = SearchSettings.from_config(self.config.sending.search).window
            settings = replace(settings, rate_control=rate_control, duration=0.0, passes=0, abort_check=None,
                               stage_check=None, progress_lines=False,
                               stats_interval=min(settings.stats_interval, window))
        report = run(loaded, settings, self.write, stop, on_start, timeline)
        for templates in loaded:
            if templates.signal == "metrics" and templates.signal in report.signals:
                counted = self.series()
                # Churn's new series are distinct series too (the count a backend should hold).
                churn = (report.scenarios or {}).get("churn", {})
                report.signals["metrics"].series_total = counted.otlp + churn.get("series_created", 0)
                report.signals["metrics"].prometheus_series = (counted.prometheus
                                                               + churn.get("prometheus_series_created", 0))
        if rate_control is not None:
            report.interrupted = False  # its controller ends the run; an interruption is the controller's to say
        else:
            report.breaches = breaches(report, self.config.thresholds) + [
                f"stage {stage.number}: {line}" for stage in report.stages for line in stage.breaches]
        return report

    def find_max(self, stop: threading.Event | None = None, timeline: Timeline | None = None,
                 on_start: Callable[[Callable[[], SendReport]], None] | None = None,
                 on_sent: Callable[[ScheduleItem, bytes, int], None] | None = None) -> SearchReport:
        """The capacity search (sending.search; on whatever `enabled` says):
        the most the backend sustains, found step by step; the report holds
        the steps, the verdict and (`.run`) the whole run's figures."""
        if not self.config.sending.search.enabled:
            self.config = replace(self.config, sending=replace(
                self.config.sending, search=replace(self.config.sending.search, enabled=True)))
            self._loaded = self._series = None
        return search_with(self, stop, timeline, on_start, on_sent)


def nothing_to_send(config: InputConfig) -> str:
    """Why no signal has a file, and what to set: the prefix the directory's
    templates were written with, or which signals are off."""
    off = [s for s in SIGNALS if config.path(s) is None]
    if len(off) == len(SIGNALS):
        return "no template files to send: input.traces, input.metrics and input.logs are all false"
    wanted = [f"{config.prefix}-{s}.pb" for s in SIGNALS if s not in off]
    directory = config.template_directory
    message = f"no template files to send: {directory} has no {', '.join(wanted)}"
    found = sorted({path.name[:-len(f"-{signal}.pb")] for signal in SIGNALS
                    for path in Path(directory).glob(f"*-{signal}.pb")})
    if found:
        return message + (f" but has templates with prefix {', '.join(found)}: set input.prefix: {found[0]}")
    return message + (f"; write them with `telegen generate --config examples/generator-config.yaml "
                      f"--output-dir {directory}`, or name files in input.traces, input.metrics, input.logs")


# Worker processes per usable core beyond which a run needs sending.force:
# each is a Python interpreter that wants a core (more only time-share it).
MAX_PROCESSES_PER_CORE = 4


def check_processes(processes: int, force: bool = False) -> None:
    """Refuse (exit 2) `sending.processes` far beyond the cores this process
    may use (affinity and cgroup quota), unless forced."""
    from .search.judge import usable_cores

    cores = usable_cores()
    limit = max(1, int(MAX_PROCESSES_PER_CORE * cores))
    if processes > limit and not force:
        raise ConfigError(f"sending.processes: {processes} is invalid: expected at most {limit} "
                          f"({MAX_PROCESSES_PER_CORE} per core; this process may use {cores:g} cores): each worker "
                          f"wants a core of its own; set sending.force: true (telegen send --force) to start "
                          f"them anyway")


def _carrier(target: Target) -> str:
    """The protocol, and for gRPC on libcurl which client carries it."""
    return f"{target.protocol} on libcurl" if target.protocol == "grpc" and target.grpc_client == "curl" \
        else target.protocol


def _compression(target: Target, settings: SendSettings) -> str:
    """How the bodies are compressed, as the setup line says it."""
    encoding = body_encoding(target, settings.gzip_encoder, settings.zstd_encoder)
    if encoding.codec == IDENTITY.codec:
        return "gzip by grpcio" if target.compression == "gzip" else target.compression
    return str(encoding)


def summary(report: SendReport) -> str:
    """The final summary, one line per signal plus a total, and last a LOST
    line per signal that lost events."""
    ended = " (interrupted)" if report.interrupted else " (aborted early)" if report.aborted else ""
    return "\n".join([f"Sent for {report.elapsed:.1f} s with {report.processes} process(es){ended}",
                      *signal_lines(report), *scenario_lines(report.scenarios), *loss_lines(report)])


def loss_lines(report: SendReport) -> list[str]:
    """A line per signal that lost events (failed or rejected), with the
    backend's reasons: the summary ends on them, so a run that lost data
    never ends on an ordinary-looking line."""
    return [f"  LOST {percent(s.lost / s.sent)} of {name} ({s.lost:,} of {s.sent:,} events)"
            + (f": {s.loss_reasons()}" if s.reasons else "")
            for name, s in report.signals.items() if s.sent and s.lost]


def signal_lines(report: SendReport) -> list[str]:
    """A summary's lines: per signal every counter and the latencies, then the total."""
    lines = []
    for name, s in report.signals.items():
        lines.append(f"  {name:8s} {s.delivered:>13,} delivered ({s.events_per_second:,.0f}/s)  "
                     f"{s.rejected:,} rejected  {s.failed:,} failed  {s.requests:,} requests  "
                     f"{s.bytes / 1e6:,.1f} MB sent  {s.retries:,} retries")
        lines.append(f"  {'':8s} latency per request  {latency.line(s.latency['request'])}")
        lines.append(f"  {'':8s} latency per batch    {latency.line(s.latency['batch'])} (retries included)")
    lines.append(f"  total    {report.delivered:>13,} delivered ({report.events_per_second:,.0f}/s)")
    lines += [f"  {stage_line(stage)}" for stage in report.stages]
    return lines + tenant_lines(report)


# Tenants listed in the summary; the rest are in --stats-json.
TENANT_LINES = 20


def tenant_lines(report: SendReport, most: int = TENANT_LINES) -> list[str]:
    """A line per tenant (the first `most`): its headers (credentials
    "***"), planned and sent share of the events, and how they ended."""
    if not report.tenants:
        return []
    sent = sum(t.sent for t in report.tenants)
    lines = [f"  tenants  {len(report.tenants)}: share of events sent (planned), delivered, rejected, failed"]
    for tenant in report.tenants[:most]:
        headers = " ".join(f"{name}={value}" for name, value in tenant.headers.items())
        share = tenant.sent / sent if sent else 0.0
        lines.append(f"  {tenant.index:>6d}   {headers[:40]:40s} {100 * share:5.1f} % ({100 * tenant.weight:4.1f} %)  "
                     f"{tenant.delivered:>11,} delivered  {tenant.total('rejected'):,} rejected  "
                     f"{tenant.total('failed'):,} failed")
    if len(report.tenants) > most:
        lines.append(f"  {'':6s}   ... and {len(report.tenants) - most} more tenants in --stats-json")
    return lines
