"""`telegen demo`: the whole job on built-in defaults, on this machine only.

Generate a small template set (seconds), start `telegen sink` as its own
process on a free loopback port (SinkProcess), send to it for a few seconds
over gRPC or OTLP/HTTP, then print what the sender delivered beside what the
sink received.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from .errors import TelegenError
from .generate import generate
from .generate.config import GeneratorConfig
from .send.sender import Sender, summary
from .sink import SinkProcess
from .templates import SIGNALS

DEMO_TEMPLATES = {
    "seed": 7,
    "traces": {"count": 2000, "spans": {"avg_per_trace": 15, "std_dev": 5,
                                         "high_span_traces": {"enabled": True, "count": 1, "span_count": 20000}}},
    "metrics": {"metric_count": 200, "timeseries_per_metric": {"min": 50, "max": 200, "default": 120}},
    "logs": {"count": 20000},
}


def run_demo(seconds: float = 10.0, directory: str | None = None, protocol: str = "grpc") -> int:
    with tempfile.TemporaryDirectory(prefix="telegen-demo-") as scratch:
        templates_dir = Path(directory) if directory else Path(scratch) / "templates"
        started = time.perf_counter()
        templates = generate(GeneratorConfig.from_dict(DEMO_TEMPLATES))
        templates.save(templates_dir)
        counts = templates.counts
        print(f"Generated {counts['spans']:,} spans, {counts['series']:,} series and {counts['logs']:,} log records "
              f"in {time.perf_counter() - started:.1f} s into {templates_dir}", flush=True)

        sink_stats = Path(scratch) / "sink.json"
        sink_log = Path(scratch) / "sink.log"
        http = protocol != "grpc"
        with open(sink_log, "w") as log, SinkProcess(stats_json=sink_stats, output=log, http=http) as sink:
            endpoint = sink.http_endpoint if http else sink.endpoint
            print(f"Started telegen sink (pid {sink.process.pid}) on {endpoint} ({protocol})", flush=True)
            sender = Sender({
                "input": {"directory": str(templates_dir)},
                "otlp": {"endpoint": endpoint, "insecure": True, "protocol": protocol},
                "sending": {"rate_limit": {"events_per_second": 0}, "duration": f"{seconds:g}s", "multiplier": 0,
                            "concurrency": 16, "stats_interval": 2},
                "timestamps": {"jitter_ms": 1000, "backdate_ms": 0},
            }, write=lambda line: print(line, flush=True))
            report = sender.run()
            print(summary(report), flush=True)
        if not sink_stats.exists():
            raise TelegenError(f"the demo sink wrote no stats; its output:\n{sink_log.read_text()}")
        received = {s: json.loads(sink_stats.read_text())[s]["events"] for s in SIGNALS}
        delivered = {s: report.signals[s].delivered if s in report.signals else 0 for s in SIGNALS}
        print()
        print(f"{'signal':8s} {'sender delivered':>17s} {'sink received':>14s}  {'sender events/s':>15s}")
        for signal in SIGNALS:
            rate = report.signals[signal].events_per_second if signal in report.signals else 0
            verdict = "match" if delivered[signal] == received[signal] else "MISMATCH"
            print(f"{signal:8s} {delivered[signal]:>17,} {received[signal]:>14,}  {rate:>15,.0f}  {verdict}")
        print(f"{'total':8s} {report.delivered:>17,} {sum(received.values()):>14,}  {report.events_per_second:>15,.0f}")
        return 0 if delivered == received else 1
