"""`telegen demo`: the whole job on built-in defaults, on this machine only.

Generate a small template set (seconds), start `telegen sink` as its own
process on a free loopback port, send to it for a few seconds, then print
what the sender delivered beside what the sink received.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import GeneratorConfig
from .errors import TelegenError
from .generate import generate
from .send.sender import Sender, summary

SIGNALS = ("traces", "metrics", "logs")
DEMO_TEMPLATES = {
    "seed": 7,
    "traces": {"count": 2000, "spans": {"avg_per_trace": 15, "std_dev": 5,
                                         "high_span_traces": {"enabled": True, "count": 1, "span_count": 20000}}},
    "metrics": {"metric_count": 200, "timeseries_per_metric": {"min": 50, "max": 200, "default": 120}},
    "logs": {"count": 20000},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TelegenError(f"the demo sink exited early with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise TelegenError(f"the demo sink did not start listening on 127.0.0.1:{port} within {timeout:g} s")


def run_demo(seconds: float = 10.0, directory: str | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="telegen-demo-") as scratch:
        templates_dir = Path(directory) if directory else Path(scratch) / "templates"
        started = time.perf_counter()
        templates = generate(GeneratorConfig.from_dict(DEMO_TEMPLATES))
        templates.save(templates_dir)
        counts = templates.counts
        print(f"Generated {counts['spans']:,} spans, {counts['series']:,} series and {counts['logs']:,} log records "
              f"in {time.perf_counter() - started:.1f} s into {templates_dir}", flush=True)

        port = _free_port()
        sink_stats = Path(scratch) / "sink.json"
        sink_log = Path(scratch) / "sink.log"
        with open(sink_log, "w") as log:
            sink = subprocess.Popen([sys.executable, "-m", "telegen", "sink", "--listen", f"127.0.0.1:{port}",
                                     "--stats-json", str(sink_stats), "--interval", "3600"],
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(port, sink)
            print(f"Started telegen sink (pid {sink.pid}) on 127.0.0.1:{port}", flush=True)
            sender = Sender({
                "input": {"directory": str(templates_dir)},
                "otlp": {"endpoint": f"127.0.0.1:{port}", "insecure": True},
                "sending": {"rate_limit": {"events_per_second": 0}, "duration": f"{seconds:g}s", "multiplier": 0,
                            "concurrency": 16, "stats_interval": 2},
                "timestamps": {"jitter_ms": 1000, "backdate_ms": 0},
            }, write=lambda line: print(line, flush=True))
            report = sender.run()
            print(summary(report), flush=True)
        finally:
            sink.terminate()
            try:
                sink.wait(timeout=15)
            except subprocess.TimeoutExpired:
                sink.kill()
                sink.wait()
        if not sink_stats.exists():
            raise TelegenError(f"the demo sink wrote no stats; its output:\n{sink_log.read_text()}")
        received = json.loads(sink_stats.read_text())
        print()
        print(f"{'signal':8s} {'sender delivered':>17s} {'sink received':>14s}  {'sender events/s':>15s}")
        for signal in SIGNALS:
            sent = report.signals[signal].delivered if signal in report.signals else 0
            got = received[signal]["events"]
            rate = report.signals[signal].events_per_second if signal in report.signals else 0
            print(f"{signal:8s} {sent:>17,} {got:>14,}  {rate:>15,.0f}  {'match' if sent == got else 'MISMATCH'}")
        total = report.delivered
        print(f"{'total':8s} {total:>17,} {sum(received[s]['events'] for s in SIGNALS):>14,}  "
              f"{report.events_per_second:>15,.0f}")
        mismatched = any((report.signals[s].delivered if s in report.signals else 0) != received[s]["events"]
                         for s in SIGNALS)
        return 1 if mismatched else 0
