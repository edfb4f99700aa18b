"""The fault-injection suite (`make faults`; docs/failure-behaviour.md):
telegen sending through toxiproxy to `telegen sink` in its own process while
the network misbehaves (latency, a bandwidth cap, connections reset, a
blackhole, connections cut after some bytes), the receiver is killed and
restarted, the run gets signals, or a worker process dies; over gRPC on
grpcio, gRPC on libcurl (gzip) and OTLP/HTTP. Each run is the CLI as a user
runs it, and each asserts the exit status, that every event sent is
accounted for (delivered + failed + rejected = sent) and that the receiver
got what was delivered (exactly, or at least once where an answer can be
lost after the receiver took the request). Every run's figures go to the
table in $TELEGEN_FAULTS_TABLE (make faults prints it).

Not part of `make test`: the `faults` marker is deselected there. Without
toxiproxy built (`make faults` builds it with Go) the suite fails; it
never skips."""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from peers import SinkProcess, Toxiproxy

pytestmark = pytest.mark.faults

SIGNAL_NAMES = ("traces", "metrics", "logs")
CARRIERS = {
    "grpc": {"protocol": "grpc", "compression": "none"},  # auto: grpcio
    "grpc+gzip": {"protocol": "grpc", "compression": "gzip"},  # auto: libcurl
    "http": {"protocol": "http/protobuf", "compression": "none"},
}
RATE = 20_000
# How long the stop of a run may take past its duration: the drain of the
# answers in flight (otlp.timeout here), the summary, the interpreter's exit.
STOP_SLACK_S = 6.0


@dataclass
class Row:
    fault: str
    carrier: str
    exit: int
    duration_s: float
    # None: the run wrote no --stats-json (a second Ctrl-C).
    sent: int | None = None
    delivered: int | None = None
    failed: int | None = None
    rejected: int | None = None
    retries: int | None = None
    received: int | None = None
    note: str = ""


ROWS: list[Row] = []


@pytest.fixture(scope="module", autouse=True)
def table():
    yield
    path = os.environ.get("TELEGEN_FAULTS_TABLE")
    if not path or not ROWS:
        return
    lines = ["| fault | carrier | sent | delivered | failed | retries | receiver got | exit | duration |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    def figure(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    for row in ROWS:
        lines.append(f"| {row.fault} | {row.carrier} | {figure(row.sent)} | {figure(row.delivered)} | "
                     f"{figure(row.failed)} | {figure(row.retries)} | {figure(row.received)} | {row.exit} | "
                     f"{row.duration_s:.1f} s |" + (f" {row.note}" if row.note else ""))
    Path(path).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def toxiproxy():
    with Toxiproxy() as proxy:
        yield proxy


_names = itertools.count()


@dataclass
class Rig:
    """A sink in its own process behind two toxiproxy proxies (gRPC, HTTP)."""

    toxiproxy: Toxiproxy
    sink: SinkProcess
    grpc: str = ""
    http: str = ""
    names: dict[str, str] = field(default_factory=dict)

    def endpoint(self, carrier: str) -> str:
        return self.grpc if CARRIERS[carrier]["protocol"] == "grpc" else f"http://{self.http}"

    def proxy(self, carrier: str) -> str:
        return self.names["grpc" if CARRIERS[carrier]["protocol"] == "grpc" else "http"]

    def toxic(self, carrier: str, kind: str, stream: str = "upstream", **attributes: float) -> None:
        self.toxiproxy.add(self.proxy(carrier), kind, kind, stream=stream, **attributes)

    def clear(self, carrier: str, kind: str) -> None:
        self.toxiproxy.remove(self.proxy(carrier), kind)


@pytest.fixture
def rig(toxiproxy, tmp_path):
    sink = SinkProcess(tmp_path / "sink")
    with sink:
        rig = Rig(toxiproxy, sink)
        number = next(_names)
        for kind, upstream in (("grpc", sink.grpc_endpoint), ("http", sink.http_endpoint)):
            rig.names[kind] = f"{kind}{number}"
            setattr(rig, kind, toxiproxy.proxy(rig.names[kind], upstream))
        try:
            yield rig
        finally:
            for name in rig.names.values():
                with contextlib.suppress(OSError):
                    toxiproxy.delete(name)


def sender_yaml(path: Path, template_dir: Path, endpoint: str, carrier: str, duration: float,
                rate: float = RATE, timeout: float = 2, extra: str = "") -> Path:
    settings = CARRIERS[carrier]
    path.write_text(
        f"input: {{directory: \"{template_dir}\"}}\n"
        f"otlp: {{endpoint: \"{endpoint}\", insecure: true, protocol: {settings['protocol']}, "
        f"compression: {settings['compression']}, timeout: {timeout}}}\n"
        f"sending: {{duration: {duration}, multiplier: 0, rate_limit: {{events_per_second: {rate}}}, "
        f"retry: {{initial_backoff: 0.1, max_backoff: 0.5}}{extra}}}\n")
    return path


class Run:
    """`telegen send` started as a user starts it, with --stats-json."""

    def __init__(self, tmp_path: Path, config: Path, *args: str) -> None:
        self.stats_path = tmp_path / "stats.json"
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "telegen", "send", "--config", str(config),
                                         "--stats-json", str(self.stats_path), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout = self.stderr = ""
        self.duration = 0.0

    def at(self, seconds: float) -> None:
        """Sleep until `seconds` after the start."""
        time.sleep(max(0.0, self.started + seconds - time.monotonic()))

    def wait(self, timeout: float = 120) -> int:
        try:
            self.stdout, self.stderr = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate()
        self.duration = time.monotonic() - self.started
        return self.process.returncode

    def stats(self) -> dict:
        assert self.stats_path.exists(), (self.stdout, self.stderr)
        return json.loads(self.stats_path.read_text())["signals"]

    def row(self, fault: str, carrier: str, received: dict[str, int] | None = None, note: str = "") -> Row:
        stats = self.stats() if self.stats_path.exists() else {}
        total = {key: sum(stats[s][key] for s in stats) if stats else None
                 for key in ("sent", "delivered", "failed", "rejected", "retries")}
        row = Row(fault, carrier, self.process.returncode, self.duration, **total,
                  received=None if received is None else sum(received.values()), note=note)
        ROWS.append(row)
        return row


def schedule(run: Run, *steps) -> threading.Thread:
    """Run (seconds, action) steps in a thread, each at its time after the start."""
    def go() -> None:
        for seconds, action in steps:
            run.at(seconds)
            action()
    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def assert_accounted(run: Run) -> dict:
    """Every event sent is delivered, failed or rejected: nothing unaccounted."""
    stats = run.stats()
    for name in SIGNAL_NAMES:
        s = stats[name]
        assert s["delivered"] + s["failed"] + s["rejected"] == s["sent"], (name, s)
    return stats


def assert_received(stats: dict, received: dict[str, int], exactly: bool) -> None:
    """The receiver got what was delivered: exactly, or at least once (a
    request it took whose answer was lost is sent again), the duplicates
    bounded by the retried requests."""
    for name in SIGNAL_NAMES:
        s = stats[name]
        if exactly:
            assert received[name] == s["delivered"], (name, received[name], s)
        else:
            per_request = -(-s["sent"] // max(1, s["batches"]))
            assert s["delivered"] <= received[name] <= s["delivered"] + s["retries"] * per_request, \
                (name, received[name], s)


def no_traceback(run: Run) -> None:
    assert "Traceback" not in run.stderr, run.stderr


# -- the network misbehaves -------------------------------------------------------

NETWORK_FAULTS = {
    # name: (toxic kind, stream, attributes, (from s, to s) or None for the whole run, run duration)
    "latency 250 ms": ("latency", "downstream", {"latency": 250, "jitter": 50}, None, 6),
    "bandwidth 5 MB/s a connection": ("bandwidth", "upstream", {"rate": 5000}, None, 6),
    "reset 1 s": ("reset_peer", "upstream", {"timeout": 0}, (2.0, 3.0), 7),
    "blackhole 5 s": ("timeout", "upstream", {"timeout": 0}, (2.0, 7.0), 10),
    "cut after 600 kB": ("limit_data", "upstream", {"bytes": 600_000}, (2.0, 4.5), 7),
}


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize("fault", NETWORK_FAULTS, ids=lambda name: name.split()[0])
def test_the_run_rides_out_a_misbehaving_network(rig, template_dir, tmp_path, fault, carrier):
    """Nothing fails: what cannot get through is retried (retry.max_elapsed
    60 s) until it does (the faults that break connections end before the
    run does: requests still waiting for a retry when a run reaches its
    duration end as failed, by design); the run keeps its duration and exits 0; and every
    event sent reached the receiver (at least once where a connection died
    after the receiver took a request and before its answer came back)."""
    kind, stream, attributes, window, duration = NETWORK_FAULTS[fault]
    config = sender_yaml(tmp_path / "send.yaml", template_dir, rig.endpoint(carrier), carrier, duration)
    if window is None:
        rig.toxic(carrier, kind, stream, **attributes)
    run = Run(tmp_path, config)
    if window is not None:
        schedule(run, (window[0], lambda: rig.toxic(carrier, kind, stream, **attributes)),
                 (window[1], lambda: rig.clear(carrier, kind)))
    status = run.wait()
    rig.sink.stop()
    received = rig.sink.events()
    row = run.row(fault, carrier, received)
    no_traceback(run)
    assert status == 0, (run.stdout, run.stderr)
    stats = assert_accounted(run)
    assert row.failed == 0 and row.delivered == row.sent > 0, stats
    assert row.duration_s < duration + STOP_SLACK_S, run.stdout
    # Data lost on the way (reset, blackhole, cut) may have reached the
    # receiver before its answer was lost; latency and bandwidth lose nothing.
    assert_received(stats, received, exactly=window is None)
    if window is None:
        # Before the fix, a 250 ms answer timed out grpcio's connection attempts
        # (its connect timeout was the 200 ms min_reconnect_backoff_ms).
        assert row.retries == 0, "a slow network is no reason to retry"
    if window is not None and not (kind == "limit_data" and carrier == "http"):
        # (libcurl sends a request again itself, on a new connection, when a
        # reused HTTP/1.1 connection dies under it before any answer.)
        assert row.retries > 0, "the fault was felt"


@pytest.mark.parametrize("carrier", ["grpc", "http"])
def test_memory_stays_bounded_while_the_endpoint_is_a_blackhole(rig, template_dir, tmp_path, carrier):
    """Everything into a blackhole for the whole run at 200 k events/s: the
    requests waiting for an answer or a retry are bounded (max_inflight),
    so the sender's memory stops growing once they are all out; the run
    ends at its duration, nothing delivered, exit 1, every event failed."""
    rig.toxic(carrier, "timeout", "upstream", timeout=0)
    config = sender_yaml(tmp_path / "send.yaml", template_dir, rig.endpoint(carrier), carrier, 10,
                         rate=200_000)
    run = Run(tmp_path, config)
    samples: list[tuple[float, int]] = []
    while run.process.poll() is None and time.monotonic() - run.started < 60:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{run.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    samples.append((time.monotonic() - run.started, int(line.split()[1]) * 1024))
        time.sleep(0.25)
    status = run.wait()
    rig.sink.stop()
    received = rig.sink.events()
    settled = [rss for at, rss in samples if 4.0 <= at <= 10.0]
    growth = max(settled) - min(settled)
    row = run.row("blackhole, whole run", carrier, received,
                  note=f"RSS {max(rss for _, rss in samples) / 2**20:.0f} MiB at most, "
                       f"+{growth / 2**20:.1f} MiB from 4 s to 10 s")
    no_traceback(run)
    assert status == 1, (run.stdout, run.stderr)
    assert_accounted(run)
    assert row.delivered == 0 and row.failed == row.sent > 0
    assert sum(received.values()) == 0
    assert row.duration_s < 10 + STOP_SLACK_S, run.stdout
    assert growth < 32 * 2**20, samples


# -- the receiver is killed and comes back --------------------------------------------


def recorded_events(directory: Path) -> dict[str, int]:
    """Events in a killed sink's --record stream (its `.part` files): every
    request it answered is there."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from telegen.varint import decode_varint

    kinds = {"traces": ExportTraceServiceRequest, "metrics": ExportMetricsServiceRequest,
             "logs": ExportLogsServiceRequest}
    counts = dict.fromkeys(SIGNAL_NAMES, 0)
    for name, kind in kinds.items():
        paths = [p for p in directory.glob(f"recorded-{name}.pb*")]
        for path in paths:
            data, offset = path.read_bytes(), 0
            while offset < len(data):
                size, start = decode_varint(data, offset)
                if start + size > len(data):
                    break  # the last record, cut short by the kill: never answered
                request = kind.FromString(data[start:start + size])
                offset = start + size
                if name == "traces":
                    counts[name] += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
                elif name == "logs":
                    counts[name] += sum(len(sl.log_records) for rl in request.resource_logs
                                        for sl in rl.scope_logs)
                else:
                    counts[name] += sum(len(getattr(m, m.WhichOneof("data")).data_points)
                                        for rm in request.resource_metrics for sm in rm.scope_metrics
                                        for m in sm.metrics)
    return counts


@pytest.mark.parametrize("carrier", CARRIERS)
def test_a_receiver_killed_and_restarted_is_ridden_out(rig, template_dir, tmp_path, carrier):
    """SIGKILL to the receiver at 2 s, a new one on the same ports at 5 s:
    requests retry through the gap; nothing fails, exit 0; what the killed
    receiver took (its --record stream) plus what the new one took covers
    every event delivered, at least once."""
    rig.sink.stop()  # this test's receivers record
    first = SinkProcess(tmp_path / "first", rig.sink.grpc_port, rig.sink.http_port, record=tmp_path / "first")
    second = SinkProcess(tmp_path / "second", rig.sink.grpc_port, rig.sink.http_port)
    first.__enter__()
    try:
        config = sender_yaml(tmp_path / "send.yaml", template_dir, rig.endpoint(carrier), carrier, 8)
        run = Run(tmp_path, config)
        schedule(run, (2.0, first.kill), (5.0, second.__enter__))
        status = run.wait()
    finally:
        first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    taken = recorded_events(tmp_path / "first")
    received = {name: taken[name] + second.events()[name] for name in SIGNAL_NAMES}
    row = run.row("receiver SIGKILL, back 3 s later", carrier, received)
    no_traceback(run)
    assert status == 0, (run.stdout, run.stderr)
    stats = assert_accounted(run)
    assert row.failed == 0 and row.delivered == row.sent > 0 and row.retries > 0, stats
    assert sum(taken.values()) > 0 and sum(second.events().values()) > 0
    assert_received(stats, received, exactly=False)


# -- the user stops the run ------------------------------------------------------------


@pytest.mark.parametrize("carrier", ["grpc", "http"])
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_one_signal_drains_and_counts_everything(rig, template_dir, tmp_path, how, carrier):
    """One Ctrl-C or SIGTERM, with answers 300 ms on their way back: sending
    stops, the answers in flight are waited for, the summary and
    --stats-json are written, exit 130; every event accounted for, and the
    receiver got exactly what was delivered."""
    rig.toxic(carrier, "latency", "downstream", latency=300)
    config = sender_yaml(tmp_path / "send.yaml", template_dir, rig.endpoint(carrier), carrier, 60)
    run = Run(tmp_path, config)
    schedule(run, (4.0, lambda: run.process.send_signal(getattr(signal, how))))
    status = run.wait()
    rig.sink.stop()
    received = rig.sink.events()
    row = run.row(f"{how} once", carrier, received)
    no_traceback(run)
    assert status == 130, (run.stdout, run.stderr)
    assert "Sent for" in run.stdout and row.duration_s < 4 + STOP_SLACK_S
    stats = assert_accounted(run)
    assert json.loads(run.stats_path.read_text())["interrupted"] is True
    assert row.delivered > 0
    assert_received(stats, received, exactly=True)


@pytest.mark.parametrize("carrier", ["grpc", "http"])
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_a_second_signal_leaves_at_once(rig, template_dir, tmp_path, how, carrier):
    """A second one while answers are still on their way (2 s back here):
    exit 130 at once, without the summary (it would wait for the answers);
    --stats-json has the counts so far, marked interrupted and lower bounds
    (the requests in flight are counted nowhere); the receiver has at least
    what was counted delivered."""
    rig.toxic(carrier, "latency", "downstream", latency=2000)
    config = sender_yaml(tmp_path / "send.yaml", template_dir, rig.endpoint(carrier), carrier, 60, timeout=10)
    run = Run(tmp_path, config)
    number = getattr(signal, how)
    schedule(run, (4.0, lambda: run.process.send_signal(number)), (4.3, lambda: run.process.send_signal(number)))
    status = run.wait()
    rig.sink.stop()
    received = rig.sink.events()
    row = run.row(f"{how} twice", carrier, received, note="no summary; counts so far, lower bounds")
    no_traceback(run)
    assert status == 130, (run.stdout, run.stderr)
    assert "interrupted again, exiting now" in run.stderr
    assert "Sent for" not in run.stdout
    assert run.duration < 4.3 + 3.0, "it did not wait for the answers"
    stats = json.loads(run.stats_path.read_text())
    assert stats["interrupted"] is True and stats["lower_bound"] is True, stats
    assert row.sent > 0 and row.delivered + row.failed <= row.sent, "in flight: counted nowhere"
    for name in SIGNAL_NAMES:
        assert received[name] >= stats["signals"][name]["delivered"], name


# -- a worker process dies ----------------------------------------------------------------


@pytest.mark.parametrize("carrier", ["grpc", "http"])
def test_a_killed_worker_process_stops_the_run_with_lower_bounds(rig, template_dir, tmp_path, carrier):
    """`sending.processes: 2` and one worker SIGKILLed at 3 s: the run stops
    at once (its share of the load is gone, and a multiprocessing Event
    would have hung the others), says which worker died and how, marks the
    totals as lower bounds (--stats-json lower_bound), exits 1. The
    receiver has at least what was counted delivered."""
    config = sender_yaml(tmp_path / "send.yaml", template_dir, rig.endpoint(carrier), carrier, 30,
                         extra=", processes: 2")
    run = Run(tmp_path, config)

    def kill_a_worker() -> None:
        children = Path(f"/proc/{run.process.pid}/task/{run.process.pid}/children").read_text().split()
        assert len(children) == 2, children
        os.kill(int(children[-1]), signal.SIGKILL)

    schedule(run, (3.0, kill_a_worker))
    status = run.wait()
    rig.sink.stop()
    received = rig.sink.events()
    row = run.row("a worker process SIGKILLed", carrier, received, note="totals are lower bounds")
    no_traceback(run)
    assert status == 1, (run.stdout, run.stderr)
    assert row.duration_s < 3 + STOP_SLACK_S, "the run stopped, not ran out its 30 s"
    assert "worker process telegen-sender-1 was killed by SIGKILL after" in run.stdout
    assert "totals are lower bounds" in run.stderr
    stats = json.loads(run.stats_path.read_text())
    assert stats["lower_bound"] is True and stats["aborted"]
    for name in SIGNAL_NAMES:
        assert received[name] >= stats["signals"][name]["delivered"], name
