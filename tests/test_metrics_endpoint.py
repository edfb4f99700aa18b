"""`telegen send --metrics-port`: Prometheus text scraped while a real run
goes on, parsed with prometheus-client's own parser, matching the run's
final report; a bad or busy port is a clear error (exit 2)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

import telegen
from telegen.send.report import latency
from telegen.send.report.latency import Histogram
from telegen.send.report.prometheus import BUCKETS_S, prometheus_buckets
from telegen.sink import free_port


def scrape(port: int) -> dict:
    """{(name, signal or None): value} of one scrape (counters' samples end in _total)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("signal"), sample.labels.get("le"))
            out[key] = sample.value
    return out


def test_a_running_send_is_scraped_and_ends_where_its_report_does(template_dir, tmp_path):
    config = tmp_path / "send.yaml"
    config.write_text(json.dumps({"input": {"directory": str(template_dir)},
                                  "sending": {"rate_limit": {"events_per_second": 20000}, "stats_interval": 60}}))
    port = free_port()
    stats = tmp_path / "stats.json"
    with telegen.Sink(listen_http="127.0.0.1:0") as sink:
        process = subprocess.Popen([sys.executable, "-m", "telegen", "send", "--config", str(config), "--insecure",
                                    "--endpoint", sink.endpoint, "--duration", "4s", "--metrics-port", str(port),
                                    "--stats-json", str(stats)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env=dict(os.environ))
        seen = []
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                seen.append(scrape(port))
            except OSError:
                pass  # not listening yet, or already stopped
            time.sleep(0.3)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert f"Prometheus metrics on http://127.0.0.1:{port}/metrics" in output
    during = [s for s in seen if s.get(("telegen_delivered_total", "traces", None), 0) > 0]
    assert len(during) >= 2, "scraped while sending"
    last, report = during[-1], json.loads(stats.read_text())
    assert last[("telegen_target_events_per_second", None, None)] == 20000
    for signal in ("traces", "metrics", "logs"):
        final = report["signals"][signal]
        assert 0 < last[("telegen_delivered_total", signal, None)] <= final["delivered"]
        count = last[("telegen_request_latency_seconds_count", signal, None)]
        assert count == last[("telegen_request_latency_seconds_bucket", signal, "+Inf")] > 0
        assert last[("telegen_requests_total", signal, None)] >= count
    values = [s[("telegen_delivered_total", "logs", None)] for s in during]
    assert values == sorted(values), "counters only grow"


def test_histogram_buckets_are_cumulative_and_bounded():
    slots = np.zeros(latency.SLOTS, dtype=np.int64)
    for value in (0.0004, 0.003, 0.003, 0.2, 40.0):
        latency.record(slots, 0, value)
    buckets, total = prometheus_buckets(Histogram.from_slots(slots))
    counts = dict(buckets)
    assert [le for le, _ in buckets] == [repr(b) for b in BUCKETS_S] + ["+Inf"]
    assert counts["0.0005"] == 1 and counts["0.005"] == 3 and counts["0.25"] == 4 and counts["30.0"] == 4
    assert counts["+Inf"] == 5 and abs(total - 40.2064) < 0.5


def test_bad_or_busy_metrics_ports_exit_2(template_dir, tmp_path):
    config = tmp_path / "send.yaml"
    config.write_text(json.dumps({"input": {"directory": str(template_dir)}}))
    bad = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--metrics-port",
                          "nine"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--metrics-port: 'nine' is invalid: expected PORT or HOST:PORT" in bad.stderr
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--metrics-port",
                               str(taken.getsockname()[1])], capture_output=True, text=True)
    assert busy.returncode == 2 and "cannot listen on 127.0.0.1:" in busy.stderr
    assert "Traceback" not in busy.stderr


def test_the_run_report_has_a_row_per_interval_and_a_chart(template_dir, tmp_path):
    import csv
    config = tmp_path / "send.yaml"
    config.write_text(json.dumps({"input": {"directory": str(template_dir)},
                                  "sending": {"rate_limit": {"events_per_second": 30000}, "stats_interval": 0.5}}))
    report_dir = tmp_path / "report"
    # 100 ms per answer: requests are always in flight at the 3 s mark (at
    # 30,000 events/s a request goes about every 15 ms), so the drain shows.
    with telegen.Sink(faults=telegen.sink.SinkFaults(delay_ms=100)) as sink:
        result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--insecure",
                                 "--endpoint", sink.endpoint, "--duration", "3s", "--report", str(report_dir)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"Wrote {report_dir / 'timeline.csv'}, {report_dir / 'timeline.json'}, {report_dir / 'chart.png'}" \
        in result.stdout
    rows = list(csv.DictReader((report_dir / "timeline.csv").open()))
    assert {r["signal"] for r in rows} == {"traces", "metrics", "logs"}
    traces = [r for r in rows if r["signal"] == "traces"]
    assert len(traces) >= 5 and [float(r["seconds"]) for r in traces] == sorted(float(r["seconds"]) for r in traces)
    answered = [r for r in traces if r["latency_p99_ms"]]
    assert answered and all(100 <= float(r["latency_p50_ms"]) < 1000 for r in answered), "the sink's delay shows"
    assert sum(float(r["events_per_second"]) for r in traces) > 0
    # The drain after the 3 s (answers to requests in flight) is marked, never before it.
    assert all(float(r["drain_seconds"]) == 0 for r in traces if float(r["seconds"]) <= 3.0)
    last = traces[-1]
    assert float(last["seconds"]) > 3.0 and 0 < float(last["drain_seconds"]) <= float(last["interval_seconds"])
    as_json = json.loads((report_dir / "timeline.json").read_text())
    assert len(as_json) == len(rows) and as_json[0]["latency_ms"].keys() >= {"p50", "p99", "max"}
    assert (report_dir / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
