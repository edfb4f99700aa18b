"""`telegen generate|...` and the seed-compatible `telemetry-generator`: thin
wrappers over the library. A user error prints one line and exits 2."""
from __future__ import annotations

import argparse
import atexit
import contextlib
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import yaml

from . import __version__
from .atomic import write_json
from .configkit.source import parse_yaml, read_text
from .errors import ConfigError, ConfigWarning, OutputError, TelegenError
from .generate import generate
from .generate.config import GeneratorConfig
from .sink import Sink, SinkFaults
from .sink.faults import CAPACITY_MODES
from .sink.report import changed, idle_line, interval_lines, summary_lines, write_stats_json
from .summary import describe
from .templates import check_writable

if TYPE_CHECKING:
    from .fleet import FleetReport
    from .send.report import SendReport
    from .send.report.prometheus import MetricsServer
    from .send.report.timeline import Timeline
    from .send.search.report import SearchReport
    from .verify import Backend, LagWatcher, Target, VerifyReport

# Exit statuses, for the scripts and CI jobs that drive load tests.
# The run failed: nothing delivered, a signal got nothing through, or a
# threshold breached (by default: more than 1 % of a signal's events lost).
EXIT_FAILED = 1
EXIT_USAGE = 2  # bad input: config, files, flags
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM (after the drain and the summary)
EXIT_BROKEN_PIPE = 141  # stdout's reader went away (128 + SIGPIPE, as Unix tools exit)


class _Parser(argparse.ArgumentParser):
    """Usage errors as promised: one line naming the flag, one line of hint
    (argparse would print the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nhint: {self.prog} --help shows every flag\n")


def _add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="PATH", help="generator config (YAML)")
    parser.add_argument("--json", action="store_true", help="also write OTLP JSON files, for debugging")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="where to write templates (overrides output.directory; default: current directory)")
    parser.add_argument("--seed", type=int, metavar="N", help="random seed (overrides the config's seed)")


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _sets_output_directory(path: str) -> bool:
    # The file already parsed cleanly through GeneratorConfig.from_file.
    data = yaml.safe_load(Path(path).read_text()) or {}
    output = data.get("output")
    return isinstance(output, dict) and "directory" in output


def run_generate(args: argparse.Namespace) -> int:
    text = read_text(args.config)
    if parse_yaml(text, args.config) is None:
        # An empty file is far more often a mistake (the wrong file, one cut
        # short) than a wish for the defaults, which are big; `{}` says that.
        raise TelegenError(f"{args.config}: the config is empty; write {{}} in it for the built-in defaults "
                           "(every signal: about 1.15 M spans), or start from "
                           "examples/generator-config.yaml")
    config = GeneratorConfig.from_yaml(text, args.config)
    if args.seed is not None and args.seed < 0:
        raise TelegenError(f"--seed: {args.seed} is invalid: expected an integer >= 0")
    # --output-dir wins, then output.directory when the config file sets it;
    # otherwise the command writes where it is run, as the seed tool did.
    if args.output_dir:
        directory = Path(args.output_dir)
    elif _sets_output_directory(args.config):
        directory = Path(config.output.directory)
    else:
        directory = Path(".")
    config = replace(config, output=replace(config.output, directory=str(directory)))
    check_writable(directory)
    started = time.perf_counter()
    templates = generate(config, seed=args.seed)
    elapsed = time.perf_counter() - started
    counts = templates.counts
    print(f"Generated in {elapsed:.1f}s (seed {templates.metadata['seed']}):")
    print(f"  traces:  {counts.get('traces', 0)} traces, {counts.get('spans', 0)} spans"
          f" ({counts.get('high_span_traces', 0)} high-span)")
    print(f"  metrics: {counts.get('metrics', 0)} metrics, {counts.get('series', 0)} time series"
          f" ({counts.get('application_metrics', 0)} RED metrics from the traces,"
          f" {counts.get('exemplars', 0)} exemplars)")
    print(f"  logs:    {counts.get('logs', 0)} log records ({counts.get('logs_correlated', 0)} inside spans)")
    for path in templates.save(directory, json=args.json):
        print(f"Wrote {path} ({_human_bytes(path.stat().st_size)})")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    print(describe(args.directory))
    return 0


def run_import(args: argparse.Namespace) -> int:
    from .importing import import_captures

    started = time.perf_counter()
    result = import_captures(args.sources, args.output_dir, prefix=args.prefix, redact=args.redact or (),
                             redact_patterns=args.redact_pattern or (), json=args.json)
    counts, meta = result.normalized.counts, result.metadata
    print(f"Imported {len(meta['sources'])} file(s), {counts['requests']:,} requests, in "
          f"{time.perf_counter() - started:.1f}s:")
    print(f"  traces:  {counts['traces']:,} traces, {counts['spans']:,} spans")
    print(f"  metrics: {counts['metrics']:,} metrics, {counts['series']:,} series, {counts['data_points']:,} points")
    print(f"  logs:    {counts['logs']:,} log records")
    if meta["capture_time_range"]:
        span = meta["capture_time_range"]
        print(f"  captured {span['start']} .. {span['end']} ({span['seconds']:g} s)")
    for kind, n in meta["placeholders"].items():
        print(f"  placeholder for {n:,} x {kind}")
    for what, n in meta["redactions"]["replaced"].items():
        print(f"  redacted {n:,} x {what}")
    for path in result.written:
        print(f"Wrote {path} ({_human_bytes(path.stat().st_size)})")
    return 0


def _stats_json_path(value: str | None) -> Path | None:
    # Checked before serving or sending, so a long run never ends in a write error.
    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        raise TelegenError(f"--stats-json {value}: is a directory; name a file to write, e.g. {path / 'stats.json'}")
    try:
        check_writable(path.parent)
    except OutputError as exc:
        raise TelegenError(f"--stats-json {value}: {exc}") from None
    return path


IDLE_LINE_SECONDS = 60.0  # an idle sink says so at most this often


def _serve(sink: Sink, interval: float, duration: float, stop: threading.Event) -> None:
    """Until `stop` is set, Ctrl-C, or `duration` s (0: no limit): every
    `interval` s, a line per signal if anything arrived since the last lines,
    else one idle line at most every minute."""
    previous = sink.stats()
    shown = previous  # the counts the last lines printed
    quiet_since = previous.elapsed
    end = previous.elapsed + duration if duration else float("inf")
    next_report = previous.elapsed + interval
    try:
        while (now := sink.stats().elapsed) < end:
            if stop.wait(min(next_report, end) - now):
                return
            current = sink.stats()
            if current.elapsed < next_report:
                continue
            if changed(previous, current):
                print("\n".join(interval_lines(previous, current)), flush=True)
                shown, quiet_since = current, current.elapsed
            elif current.elapsed - max(quiet_since, shown.elapsed) >= IDLE_LINE_SECONDS:
                print(idle_line(current, current.elapsed - shown.elapsed), flush=True)
                quiet_since = current.elapsed
            previous, next_report = current, next_report + interval
    except KeyboardInterrupt:
        return  # Ctrl-C is how a sink is meant to end: fall through to the summary


def _on_sigterm(stop: threading.Event) -> None:
    # Signal handlers can only be installed from the main thread; an embedding
    # caller on another thread keeps its own SIGTERM handling.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())


def _check_capacity_flags(args: argparse.Namespace) -> None:
    """The flags' own words for what SinkFaults would refuse in its own."""
    # `not >= 0` catches nan; inf would be no limit spelt oddly.
    if not 0 <= args.capacity < math.inf:
        raise TelegenError(f"--capacity: {args.capacity:g} is invalid: expected events per second >= 0 "
                           f"(0: no limit)")
    if args.capacity_mode is not None:
        if args.capacity_mode not in CAPACITY_MODES:
            raise TelegenError(f"--capacity-mode: {args.capacity_mode!r} is invalid: expected "
                               f"{' or '.join(CAPACITY_MODES)}")
        if not args.capacity:
            raise TelegenError(f"--capacity-mode {args.capacity_mode} needs --capacity EVENTS_PER_S (> 0)")


def run_sink(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise TelegenError(f"--interval: {args.interval:g} is invalid: expected seconds > 0")
    if args.duration < 0:
        raise TelegenError(f"--duration: {args.duration:g} is invalid: expected seconds >= 0 (0: until stopped)")
    _check_capacity_flags(args)
    stats_path = _stats_json_path(args.stats_json)
    faults = SinkFaults(unavailable_first_s=args.unavailable_first_s, unavailable_every=args.unavailable_every,
                        error_code=args.error_code, reject_fraction=args.reject_fraction, delay_ms=args.delay_ms,
                        retry_after_s=args.retry_after_s, drop_every=args.drop_every, capacity=args.capacity,
                        capacity_mode=args.capacity_mode or "refuse")
    sink = Sink(listen=args.listen, validate=args.validate, faults=faults, listen_http=args.listen_http,
                record=args.record)
    sink.on_record_error = lambda problem: print(f"telegen sink: {problem}; refusing requests (UNAVAILABLE, HTTP "
                                                 "503) while it cannot be written", file=sys.stderr, flush=True)
    sink.start()
    stop = threading.Event()
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    _on_sigterm(stop)
    try:
        http = f" and on {sink.http_endpoint} for OTLP/HTTP" if args.listen_http else ""
        capacity = faults.describe_capacity()
        print(f"Listening on {sink.address} for OTLP/gRPC{http} traces, metrics and logs"
              f" (validate {'on' if args.validate else 'off'}){'; ' + capacity if capacity else ''}; Ctrl-C to stop",
              flush=True)
        _serve(sink, args.interval, args.duration, stop)
    finally:
        sink.stop()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous_sigterm)
    stats = sink.stats()
    print("\n".join(summary_lines(stats)), flush=True)
    if args.record is not None:
        print(f"Recorded {', '.join(str(p) for p in sink.recorded) or 'nothing (no request was accepted)'}"
              + (f"; make templates of it: telegen import {args.record} --output-dir DIR" if sink.recorded else ""))
    if stats_path is not None:
        try:
            write_stats_json(stats, stats_path)
        except OutputError as exc:
            raise TelegenError(f"--stats-json: {exc} (the sink's figures are in the summary above)") from None
        print(f"Wrote {stats_path}")
    if sink.record_error is not None:
        # The recording misses nothing it answered for, but it is not all that was sent.
        print(f"telegen: error: the recording is incomplete: {sink.unrecorded:,} request(s) were refused, "
              f"{sink.record_error}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _add_sink_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record", metavar="DIR",
                        help="keep every accepted request in DIR, per signal (recorded-<signal>.pb), for "
                             "`telegen import`")
    parser.add_argument("--listen", default="127.0.0.1:4317", metavar="HOST:PORT",
                        help="address to serve on (default: 127.0.0.1:4317, loopback only; port 0 picks a free one)")
    parser.add_argument("--listen-http", metavar="HOST:PORT",
                        help="also serve OTLP/HTTP (binary protobuf, POST /v1/traces|metrics|logs) here, "
                             "e.g. 127.0.0.1:4318 (port 0 picks a free one); default: gRPC only")
    parser.add_argument("--validate", action="store_true",
                        help="decode every request fully and reject invalid ones with INVALID_ARGUMENT (HTTP 400)")
    parser.add_argument("--stats-json", metavar="PATH", help="write the final counts as JSON here")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="seconds between progress lines (default: 5)")
    parser.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                        help="stop after this many seconds (default: 0, run until Ctrl-C or SIGTERM)")
    faults = parser.add_argument_group("faults", "misbehave on demand, to exercise a client's retries and accounting")
    faults.add_argument("--unavailable-first-s", type=float, default=0.0, metavar="SECONDS",
                        help="answer UNAVAILABLE (HTTP 503) for this long after start")
    faults.add_argument("--unavailable-every", type=int, default=0, metavar="N",
                        help="answer every Nth request (over all signals) UNAVAILABLE (HTTP 503)")
    faults.add_argument("--error-code", metavar="CODE",
                        help="answer every request with this gRPC status code name, e.g. RESOURCE_EXHAUSTED "
                             "(HTTP: its usual mapping, e.g. 429)")
    faults.add_argument("--reject-fraction", type=float, default=0.0, metavar="F",
                        help="accept requests but report this fraction of their events rejected (partial success)")
    faults.add_argument("--delay-ms", type=float, default=0.0, metavar="MS", help="wait this long before answering")
    faults.add_argument("--retry-after-s", type=float, default=0.0, metavar="SECONDS",
                        help="with UNAVAILABLE or RESOURCE_EXHAUSTED answers, ask the client to retry after this "
                             "long (HTTP Retry-After, gRPC RetryInfo)")
    faults.add_argument("--drop-every", type=int, default=0, metavar="N",
                        help="drop every Nth request (over all signals): HTTP closes the connection without a "
                             "response, gRPC answers UNAVAILABLE")
    faults.add_argument("--capacity", type=float, default=0.0, metavar="EVENTS_PER_S",
                        help="take at most this many events per second, over all signals together (default: 0, "
                             "no limit): a backend whose capacity is known, to find with `telegen send` "
                             "(what happens above it: --capacity-mode)")
    faults.add_argument("--capacity-mode", metavar="refuse|queue",
                        help="what is done above --capacity: refuse (the default) answers the requests over it "
                             "RESOURCE_EXHAUSTED (HTTP 429; asks to retry after --retry-after-s); queue takes every "
                             "request but answers it only when a single server of that rate would have served it, "
                             "so latency grows with the load")


# The config key each flag sets: a bad value is blamed on the flag, not the file.
FLAG_KEYS: dict[str, str] = {
    "otlp.endpoint": "--endpoint",
    "otlp.insecure": "--insecure",
    "otlp.protocol": "--protocol",
    "sending.rate_limit.events_per_second": "--rate",
    "sending.duration": "--duration",
    "sending.processes": "--processes",
    "sending.force": "--force",
    "input.cache_dir": "--cache-dir",
    "sending.shard.index": "--shard",
    "sending.shard.count": "--shard",
    "sending.search.signal": "--find-max",
}


@contextlib.contextmanager
def _blaming_flags(config_path: str, overrides: dict[str, object]) -> Iterator[None]:
    """Re-raise a ConfigError about a key that a flag set as the flag's error."""
    try:
        yield
    except ConfigError as exc:
        text = str(exc).removeprefix(f"{config_path}: ")
        for key, flag in FLAG_KEYS.items():
            if key in overrides and (text.startswith(f"{key}:") or text.startswith(f"{key} ")):
                raise ConfigError(flag + text[len(key):]) from None
        raise


def _send_overrides(args: argparse.Namespace) -> dict[str, object]:
    """CLI flags as dotted config keys: they win over YAML and environment."""
    from .send.shard import parse_shard

    flags = {
        "otlp.endpoint": args.endpoint,
        "otlp.insecure": True if args.insecure else None,
        "otlp.protocol": args.protocol,
        "sending.rate_limit.events_per_second": args.rate,
        "sending.duration": args.duration,
        "sending.processes": getattr(args, "processes", None),
        "sending.force": True if getattr(args, "force", False) else None,
        "input.cache_dir": args.cache_dir,
    }
    find_max = getattr(args, "find_max", None)
    if find_max is not None:
        if args.rate is not None:
            raise TelegenError("--rate: cannot be given with --find-max: the search sets the rate itself "
                               "(bound it with sending.search.max_rate)")
        flags.update({"sending.search.enabled": True, "sending.search.signal": find_max})
    if getattr(args, "shard", None) is not None:
        try:
            index, count = parse_shard(args.shard)
        except ValueError as exc:
            raise TelegenError(f"--shard: {args.shard!r} is invalid: {exc}") from None
        flags.update({"sending.shard.index": index, "sending.shard.count": count})
    return {key: value for key, value in flags.items() if value is not None}


def _beside_the_config(config, config_path: str) -> str:
    """A hint when the config's relative input paths are missing here but
    exist beside the config file: they are read from the working directory
    (as the Collector reads its own), so that the README's commands, run from
    the clone, find ./generated whichever config they name."""
    inputs = config.input
    here = os.getcwd()
    for path in (inputs.directory, *(getattr(inputs, s) for s in ("traces", "metrics", "logs"))):
        if not isinstance(path, str) or os.path.isabs(path) or os.path.exists(path):
            continue
        beside = os.path.join(os.path.dirname(os.path.abspath(config_path)), path)
        if os.path.exists(beside):
            return (f" (relative paths in a sender config are read from the working directory, {here}, "
                    f"not from the config's: {beside} exists; run from there or give that path)")
    return ""


def _stop_on_signals(stop: threading.Event, before_exit: Callable[[], None] | None = None) -> None:
    """First Ctrl-C (or SIGTERM): stop taking work, drain, report. A second
    Ctrl-C leaves at once (after `before_exit`, which must be quick)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def first(*_: object) -> None:
        if stop.is_set():
            print("telegen: interrupted again, exiting now", file=sys.stderr, flush=True)
            if before_exit is not None:
                before_exit()
            os._exit(EXIT_INTERRUPTED)
        # Set before saying so: a second Ctrl-C that comes while the line is
        # written runs this handler again, inside this call, and must find it set.
        stop.set()
        print("telegen: stopping (Ctrl-C again to exit at once)", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, first)
    signal.signal(signal.SIGTERM, first)


def _write_figures_so_far(figures: list[Callable[[], SendReport]], stats_path: Path | None) -> None:
    """A second Ctrl-C leaves without waiting for the answers in flight, but
    --stats-json still gets the counts so far: marked interrupted and lower
    bounds (what was in flight is counted nowhere). Given 2 s at most, in a
    thread: the interrupted main thread may hold what the counts need."""
    if stats_path is None or not figures:
        return

    def write() -> None:
        report = figures[0]()
        report.interrupted, report.lower_bound = True, True
        report.aborted = "a second Ctrl-C or SIGTERM: left without waiting for the requests in flight"
        write_json(stats_path, report.to_dict())
        print(f"Wrote {stats_path} (the counts so far; the requests in flight are counted nowhere)",
              file=sys.stderr, flush=True)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(2.0)


def run_send(args: argparse.Namespace) -> int:
    from .send.config import SenderConfig
    from .send.sender import Sender, summary

    stats_path = _stats_json_path(args.stats_json)
    overrides = _send_overrides(args)
    with _blaming_flags(args.config, overrides):
        config = SenderConfig.from_file(args.config, overrides=overrides)
    _check_verify_options(args)
    backends = _reachable_backends(args.verify or [])
    if backends is None:
        return EXIT_FAILED
    metrics = _start_metrics(args)
    timeline = _new_timeline(args)
    watcher = None
    try:
        sender = Sender(config, write=lambda line: print(line, flush=True))
        try:
            sender.load()
        except TelegenError as exc:
            raise TelegenError(f"{exc}{_beside_the_config(config, args.config)}") from None
        stop = threading.Event()
        figures: list[Callable[[], SendReport]] = []  # the counts so far, once sending starts

        def on_start(current: Callable[[], SendReport]) -> None:
            figures.append(current)
            if metrics is not None:
                metrics.attach(current)

        _stop_on_signals(stop, before_exit=lambda: _write_figures_so_far(figures, stats_path))
        watcher = _lag_watcher(backends, args.settle_timeout) if backends else None
        hooks = dict(on_start=on_start, timeline=timeline,
                     on_sent=watcher.sampler if watcher is not None else None)
        search = sender.find_max(stop, **hooks) if config.sending.search.enabled else None
        report = search.run if search is not None else sender.run(stop, **hooks)
        assert report is not None
    finally:
        if metrics is not None:
            metrics.stop()
    print(summary(report), flush=True)
    if search is not None:
        print("\n".join(search.lines()), flush=True)
    verified = _verify_after_send(report, backends, watcher, args) if backends else None
    extra = {"verify": verified.to_dict()} if verified is not None else {}
    if search is not None:
        extra["search"] = search.to_dict()
    _write_run_files(args, timeline, stats_path, report, extra or None, search)
    lost = verified is not None and _verify_failed(verified)
    if search is not None:
        return _search_status(search, lost)
    status = _exit_status(report)
    return status or (EXIT_FAILED if lost else 0)


def _search_status(search: SearchReport, lost: bool) -> int:
    """0 a knee was found (or max_rate held) and, with --verify, the backend
    stored what it took; 1 otherwise (said why on stderr); 130 interrupted."""
    status = search.exit_status()
    if status == EXIT_FAILED:
        print(f"telegen: search failed: {search.conclusion}", file=sys.stderr, flush=True)
    if lost and status == 0:
        print("telegen: search failed: the backend did not store what it accepted (see verify above): the rates "
              "it answered are not what it sustains", file=sys.stderr, flush=True)
        return EXIT_FAILED
    return status


def _check_verify_options(args: argparse.Namespace) -> None:
    if not 0 <= args.max_loss <= 100:
        raise TelegenError(f"--max-loss: {args.max_loss:g} is invalid: expected a percentage from 0 to 100")
    if args.settle_timeout <= 0:
        raise TelegenError(f"--settle-timeout: {args.settle_timeout:g} is invalid: expected seconds > 0")


def _reachable_backends(targets: Sequence[Target]) -> list[Backend] | None:
    """A reader per --verify target, each answering; None (said why on
    stderr) when one does not: a run is not worth sending then."""
    if not targets:
        return []
    from .verify import BackendError, open_backends

    backends = open_backends(targets)
    for backend in backends:
        try:
            backend.check()
        except BackendError as exc:
            print(f"telegen: verify: {backend.kind}: {exc}", file=sys.stderr, flush=True)
            return None
    return backends


def _lag_watcher(backends: Sequence[Backend], give_up: float) -> LagWatcher:
    """The sampler the engine calls per sent batch, and the watcher that
    looks for the sampled batches in their backends while the run sends."""
    from .verify import LagWatcher, SentBatchSampler

    probed = {signal: backend for backend in backends for signal in backend.signals if backend.can_probe(signal)}
    return LagWatcher(SentBatchSampler(probed), probed, give_up=give_up).start()


def _verify_after_send(report: SendReport, backends: Sequence[Backend], watcher: LagWatcher | None,
                       args: argparse.Namespace) -> VerifyReport | None:
    from .verify import LAG_GRACE, RunFacts, verify

    if report.interrupted:
        if watcher is not None:
            watcher.finish(wait=0)
        print("verify: skipped, the run was interrupted", flush=True)
        return None
    # The last sampled batches are looked for while the counts settle; a
    # batch still not found once they have (and a moment more) never will be.
    lags = (lambda: watcher.finish(wait=LAG_GRACE)) if watcher is not None else None
    verified = verify(RunFacts.from_stats(report.to_dict()), backends, args.max_loss, args.settle_timeout, lags)
    print("\n".join(verified.lines()), flush=True)
    return verified


def _verify_failed(verified: VerifyReport) -> bool:
    """Says on stderr why verification failed the run, if it did."""
    failures = verified.failures()
    for reason in failures:
        print(f"telegen: verify failed: {reason}", file=sys.stderr, flush=True)
    return bool(failures)


def run_verify(args: argparse.Namespace) -> int:
    import json

    from .verify import RunFacts, verify

    _check_verify_options(args)
    stats_path = _stats_json_path(args.stats_json)
    try:
        stats = json.loads(Path(args.run).read_text())
    except OSError as exc:
        raise TelegenError(f"--run: cannot read {args.run}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise TelegenError(f"--run: {args.run} is not JSON: {exc}") from None
    facts = RunFacts.from_stats(stats, args.run)
    backends = _reachable_backends(args.targets)
    if backends is None:
        return EXIT_FAILED
    verified = verify(facts, backends, args.max_loss, args.settle_timeout)
    print("\n".join(verified.lines()), flush=True)
    if stats_path is not None:
        write_json(stats_path, {"run": args.run, "verify": verified.to_dict()})
        print(f"Wrote {stats_path}")
    return EXIT_FAILED if _verify_failed(verified) else 0


def _verify_target(text: str) -> Target:
    """argparse's type for KIND=URL: a bad one is a one-line usage error."""
    from .verify import parse_target

    try:
        return parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_verify_options(parser: argparse.ArgumentParser) -> None:
    from .verify import DEFAULT_MAX_LOSS_PERCENT, DEFAULT_SETTLE_TIMEOUT

    parser.add_argument("--max-loss", type=float, default=DEFAULT_MAX_LOSS_PERCENT, metavar="PERCENT",
                        help="verify fails (exit 1) when more than this share of what was delivered is not "
                             f"stored (default: {DEFAULT_MAX_LOSS_PERCENT:g}: any loss)")
    parser.add_argument("--settle-timeout", type=float, default=DEFAULT_SETTLE_TIMEOUT, metavar="SECONDS",
                        help="wait at most this long for a backend's counts to reach what was sent (they are "
                             "taken once they stop rising for 3 s), and for a sampled batch to become queryable "
                             f"(default: {DEFAULT_SETTLE_TIMEOUT:g})")


def _start_metrics(args: argparse.Namespace) -> MetricsServer | None:
    """--metrics-port: bound before loading, so a busy port fails at once."""
    if args.metrics_port is None:
        return None
    from .send.report.prometheus import MetricsServer
    metrics = MetricsServer(args.metrics_port)
    metrics.start()
    print(f"Prometheus metrics on http://{metrics.host}:{metrics.port}/metrics", flush=True)
    return metrics


def _new_timeline(args: argparse.Namespace) -> Timeline | None:
    if args.report is None:
        return None
    # Checked before sending, as --stats-json is: the report is written once the run has ended.
    report = Path(args.report)
    if report.exists() and not report.is_dir():
        raise TelegenError(f"--report {args.report}: is a file; name a directory to write the timeline and chart into")
    try:
        check_writable(report)
    except OutputError as exc:
        raise TelegenError(f"--report {args.report}: {exc}") from None
    from .send.report.timeline import Timeline
    return Timeline()


def _write_run_files(args: argparse.Namespace, timeline: Timeline | None, stats_path: Path | None,
                     report: SendReport | FleetReport, extra: dict | None = None,
                     search: SearchReport | None = None) -> None:
    """--report's timeline and chart (and a search's), and --stats-json, once the run has ended."""
    if timeline is not None:
        try:
            written = timeline.write(args.report)
            if search is not None:
                written += [path for path in [search.chart(Path(args.report) / "search.png")] if path]
        except OSError as exc:
            raise TelegenError(f"--report: cannot write {args.report}: {exc.strerror or exc}") from None
        print(f"Wrote {', '.join(str(p) for p in written)}"
              + ("" if any(p.suffix == ".png" for p in written)
                 else " (no chart: it needs matplotlib, the report extra: pip install '.[report]' in telegen's clone)"))
    if stats_path is not None:
        try:
            write_json(stats_path, {**report.to_dict(), **(extra or {})})
        except OutputError as exc:
            raise TelegenError(f"--stats-json: {exc} (the run's figures are in the summary above)") from None
        print(f"Wrote {stats_path}")


def _exit_status(report: SendReport | FleetReport) -> int:
    """0 done, 1 the run failed (said why on stderr), 130 interrupted."""
    if report.interrupted:
        return EXIT_INTERRUPTED
    failures = report.failures()
    for reason in failures:
        print(f"telegen: run failed: {reason}", file=sys.stderr, flush=True)
    return EXIT_FAILED if failures else 0


def _protocol_choices() -> tuple[str, ...]:
    from .send.transport.base import PROTOCOL_ALIASES, PROTOCOLS
    return (*PROTOCOLS, *PROTOCOL_ALIASES)


def _add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", choices=_protocol_choices(),
                        help="OTLP carrier (overrides otlp.protocol; http is short for http/protobuf)")
    parser.add_argument("--endpoint", metavar="ENDPOINT",
                        help="gRPC host:port, or the OTLP/HTTP base URL that /v1/<signal> is appended to "
                             "(overrides otlp.endpoint)")
    parser.add_argument("--insecure", action="store_true", help="plaintext, no TLS (overrides otlp.insecure)")


def _add_send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="PATH", help="sender config (YAML)")
    _add_endpoint_arguments(parser)
    parser.add_argument("--rate", type=int, metavar="N", help="events per second over all signals; 0: unthrottled")
    parser.add_argument("--duration", metavar="D", help="how long to send: 30s, 10m, 1h; 0: until stopped")
    parser.add_argument("--processes", type=int, metavar="N", help="worker processes sharing the rate")
    parser.add_argument("--force", action="store_true",
                        help="start --processes beyond 4x this machine's cores (refused without it)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="save loaded batches here and map them on later loads; senders on one machine that "
                             "share it share one copy in memory (overrides input.cache_dir)")
    parser.add_argument("--shard", metavar="I/N",
                        help="this sender is shard I of N: 1/N of the fleet-wide rate, its own metric series "
                             "(overrides sending.shard; also TELEGEN_SHARD=I/N)")
    parser.add_argument("--stats-json", metavar="PATH", help="write the final report as JSON here")
    _add_find_max_argument(parser, "this sender")
    _add_watch_arguments(parser, "the run's")
    parser.add_argument("--verify", action="append", type=_verify_target, metavar="KIND=URL",
                        help="after the run, count what this backend stored against what was delivered, with the "
                             "ingest-to-query lag sampled while sending (repeatable; KIND: jaeger, prometheus, "
                             "victorialogs, honeycomb; URL: its query API, e.g. prometheus=http://127.0.0.1:9090); "
                             "printed, and under `verify` in --stats-json")
    _add_verify_options(parser)


def _add_find_max_argument(parser: argparse.ArgumentParser, who: str) -> None:
    parser.add_argument("--find-max", nargs="?", const="all", choices=("all", "traces", "metrics", "logs"),
                        metavar="SIGNAL",
                        help=f"search for the most the backend sustains from {who}: steps of rising rate, then a "
                             "bisection around the knee, confirmed by a hold (limits in sending.search); with the "
                             "configured mix of signals, or one SIGNAL alone (traces, metrics, logs); exit 0 when "
                             "a knee was found")


def _add_watch_arguments(parser: argparse.ArgumentParser, whose: str) -> None:
    parser.add_argument("--report", metavar="DIR",
                        help=f"write {whose} timeline (timeline.csv, timeline.json: per interval and signal, "
                             "rates, latency percentiles, failures, the stage) and chart.png (with the report extra)")
    parser.add_argument("--metrics-port", metavar="[HOST:]PORT",
                        help=f"serve Prometheus metrics of {whose} counts, latency histograms and target rate on "
                             "/metrics; PORT alone listens on 127.0.0.1 (needs the metrics extra)")


def run_fleet(args: argparse.Namespace) -> int:
    from .fleet import Fleet

    stats_path = _stats_json_path(args.stats_json)
    stop = threading.Event()
    overrides = _send_overrides(args)
    with _blaming_flags(args.config, overrides):
        fleet = Fleet(args.config, senders=args.senders, address=args.address, overrides=overrides,
                      on_sender_failure=args.on_sender_failure, write=lambda line: print(line, flush=True),
                      # After Ray is up: ray.init installs its own SIGTERM handler in the driver.
                      on_connected=lambda: _stop_on_signals(stop, before_exit=fleet.kill_local_ray))
    metrics = _start_metrics(args)
    timeline = _new_timeline(args)
    search = None
    try:
        hooks = dict(on_start=metrics.attach if metrics is not None else None, timeline=timeline)
        if fleet.config.sending.search.enabled:
            search = fleet.find_max(stop, **hooks)
            report = search.run
        else:
            report = fleet.run(stop, **hooks)
    finally:
        if metrics is not None:
            metrics.stop()
    print(report.summary(), flush=True)
    if search is not None:
        print("\n".join(search.lines()), flush=True)
    _write_run_files(args, timeline, stats_path, report, {"search": search.to_dict()} if search else None, search)
    if search is not None:
        return _search_status(search, lost=False)
    return _exit_status(report)


def _add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="PATH",
                        help="sender config (YAML), the same for every sender")
    parser.add_argument("--senders", type=int, required=True, metavar="N",
                        help="sender actors, one core each; sender i is shard i/N")
    parser.add_argument("--address", metavar="ADDRESS",
                        help="the Ray cluster: auto (the one this machine belongs to) or ray://HOST:10001; "
                             "default: start a local Ray instance with N CPUs")
    _add_endpoint_arguments(parser)
    parser.add_argument("--rate", type=int, metavar="N", help="events per second for the whole fleet; 0: unthrottled")
    parser.add_argument("--duration", metavar="D", help="how long to send: 30s, 10m, 1h; 0: until stopped")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="load cache directory on every node (default: a scratch directory per run and node)")
    parser.add_argument("--on-sender-failure", choices=("continue", "stop"), default="continue",
                        help="when a sender dies: the others go on (default), or the whole fleet stops")
    parser.add_argument("--stats-json", metavar="PATH", help="write the fleet's report (totals and a row per "
                                                             "sender) as JSON here")
    _add_find_max_argument(parser, "the fleet's senders, moved together by one controller,")
    _add_watch_arguments(parser, "the fleet's")


def run_demo_command(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.seconds <= 0:
        raise TelegenError(f"--seconds: {args.seconds:g} is invalid: expected seconds > 0")
    from .send.transport.base import PROTOCOL_ALIASES
    return run_demo(args.seconds, protocol=PROTOCOL_ALIASES.get(args.protocol, args.protocol))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="telegen", description="Realistic OTLP load generation.")
    parser.add_argument("--version", action="version", version=f"telegen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = commands.add_parser("generate", help="build trace, metric and log templates from a YAML config")
    _add_generate_arguments(gen)
    gen.set_defaults(handler=run_generate)
    insp = commands.add_parser("inspect", help="summarise a template directory and draw a sample trace")
    insp.add_argument("directory", metavar="DIR", help="directory written by `telegen generate`")
    insp.set_defaults(handler=run_inspect)
    imp = commands.add_parser("import", help="turn captured OTLP (Collector file exports, `telegen sink --record`, "
                                             ".pb streams, OTLP JSON) into templates for `telegen send`")
    imp.add_argument("sources", nargs="+", metavar="SRC",
                     help="capture files, directories or globs (quote a glob: 'export-*.json')")
    imp.add_argument("--output-dir", required=True, metavar="DIR", help="where to write the templates")
    imp.add_argument("--prefix", default="telemetry", help="file name prefix (default: telemetry)")
    imp.add_argument("--redact", action="append", metavar="KEY",
                     help="replace the values of this attribute key with same-type stand-ins (repeatable)")
    imp.add_argument("--redact-pattern", action="append", metavar="REGEX",
                     help="replace text matching REGEX in string values and log bodies (repeatable)")
    imp.add_argument("--json", action="store_true", help="also write OTLP JSON files, for debugging")
    imp.set_defaults(handler=run_import)
    snk = commands.add_parser("sink", help="receive OTLP/gRPC (and OTLP/HTTP) locally, count (and optionally "
                                           "validate) events")
    _add_sink_arguments(snk)
    snk.set_defaults(handler=run_sink)
    snd = commands.add_parser("send", help="replay templates to an OTLP endpoint (gRPC or HTTP) at a target rate")
    _add_send_arguments(snd)
    snd.set_defaults(handler=run_send)
    flt = commands.add_parser("fleet", help="run N sharded senders on a Ray cluster (needs the fleet extra: "
                                            "pip install '.[fleet]')")
    _add_fleet_arguments(flt)
    flt.set_defaults(handler=run_fleet)
    ver = commands.add_parser("verify", help="count what a finished run's backends stored against what it "
                                             "delivered (its --stats-json)")
    ver.add_argument("targets", nargs="+", type=_verify_target, metavar="KIND=URL",
                     help="a backend's query API (KIND: jaeger, prometheus, victorialogs, honeycomb), e.g. "
                          "jaeger=http://127.0.0.1:16686; Honeycomb's key comes from HONEYCOMB_API_KEY")
    ver.add_argument("--run", required=True, metavar="STATS.json",
                     help="the run's report, written by `telegen send --stats-json`")
    _add_verify_options(ver)
    ver.add_argument("--stats-json", metavar="PATH", help="write the verdicts as JSON here ({\"verify\": ...})")
    ver.set_defaults(handler=run_verify)
    dem = commands.add_parser("demo", help="generate small templates, start a local sink, send to it, compare counts")
    dem.add_argument("--seconds", type=float, default=10.0, help="how long to send (default: 10)")
    dem.add_argument("--protocol", choices=_protocol_choices(), default="grpc",
                     help="OTLP carrier to the sink (default: grpc; http is short for http/protobuf)")
    dem.set_defaults(handler=run_demo_command)
    return parser


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    status = EXIT_INTERRUPTED
    try:
        with warnings.catch_warnings():
            _show_config_warnings(parser.prog)
            status = args.handler(args)
            return status
    except TelegenError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        status = EXIT_USAGE
        return status
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left (`telegen inspect DIR | head`): stop quietly, as
        # Unix tools do, and keep the interpreter's final flush from failing too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = EXIT_BROKEN_PIPE
        return status
    finally:
        _exit_on_late_signals(status)


def _exit_on_late_signals(status: int) -> None:
    """The command is over; a Ctrl-C or SIGTERM while the interpreter shuts
    down (threads joined, files closed) leaves at once with 130 if the run
    was interrupted, else with the run's own status: never Python's
    traceback or the default action's 143. Late in shutdown the interpreter
    resets handlers it owns to the default, but leaves ignored signals
    ignored: the last atexit callback (registered first, at import) ignores
    them for that part."""
    if threading.current_thread() is not threading.main_thread():
        return

    def late(*_: object) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED if status == EXIT_INTERRUPTED else status)

    signal.signal(signal.SIGINT, late)
    signal.signal(signal.SIGTERM, late)


def _ignore_signals_at_exit() -> None:
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


# atexit runs its callbacks last-registered first: this one, registered on
# import, runs after every other (Ray's, multiprocessing's).
atexit.register(_ignore_signals_at_exit)


def _show_config_warnings(prog: str) -> None:
    """A ConfigWarning is one line, as errors are (not Python's file:line form)."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # type: ignore[no-untyped-def]
        if issubclass(category, ConfigWarning):
            print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.simplefilter("always", ConfigWarning)
    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    return _run(build_parser(), argv)


def telemetry_generator_main(argv: Sequence[str] | None = None) -> int:
    """The seed project's command name: `telemetry-generator --config ...`."""
    parser = _Parser(prog="telemetry-generator",
                                     description="Generate OTLP templates (same as `telegen generate`).")
    _add_generate_arguments(parser)
    parser.set_defaults(handler=run_generate)
    return _run(parser, argv)


def telemetry_sender_main(argv: Sequence[str] | None = None) -> int:
    """The seed project's command name: `telemetry-sender --config ...`."""
    parser = _Parser(prog="telemetry-sender",
                                     description="Send OTLP templates (same as `telegen send`).")
    _add_send_arguments(parser)
    parser.set_defaults(handler=run_send)
    return _run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
