"""Pass/fail thresholds: a breach is listed plainly and the run exits 1; a
run within budget exits 0; bad thresholds name the key and what was expected."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import telegen
from telegen.send.config import SenderConfig, ThresholdsConfig
from telegen.send.report import SendReport, SignalReport
from telegen.send.report.thresholds import breaches
from telegen.sink import SinkFaults


def send(template_dir, tmp_path, sink, thresholds: dict) -> tuple[subprocess.CompletedProcess, dict]:
    config, stats = tmp_path / "send.yaml", tmp_path / "stats.json"
    config.write_text(json.dumps({"input": {"directory": str(template_dir)}, "thresholds": thresholds,
                                  "sending": {"rate_limit": {"events_per_second": 50000}, "stats_interval": 60}}))
    result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--insecure",
                             "--endpoint", sink.endpoint, "--duration", "2s", "--stats-json", str(stats)],
                            capture_output=True, text=True, timeout=60)
    return result, json.loads(stats.read_text())


def test_a_slow_rejecting_backend_breaches_and_the_run_exits_1(template_dir, tmp_path):
    with telegen.Sink(faults=SinkFaults(delay_ms=20, reject_fraction=0.1)) as sink:
        result, stats = send(template_dir, tmp_path, sink, {"p99_latency": "5ms", "max_rejected_ratio": 0.01,
                                                            "max_failed_ratio": 0.5})
    assert result.returncode == 1, result.stderr
    for signal in ("traces", "metrics", "logs"):
        assert f"telegen: run failed: threshold breached: {signal}: p99 latency per request" in result.stderr
        assert f"threshold breached: {signal}: " in result.stderr and "over max_rejected_ratio 1.0000%" in \
            result.stderr
    assert "max_failed_ratio" not in result.stderr  # nothing failed
    assert len(stats["thresholds_breached"]) == 6


def test_a_run_within_budget_exits_0(template_dir, tmp_path):
    with telegen.Sink() as sink:
        result, stats = send(template_dir, tmp_path, sink, {"p99_latency": "10s", "max_failed_ratio": 0,
                                                            "max_rejected_ratio": 0, "min_rate_ratio": 0.5})
    assert result.returncode == 0, result.stderr
    assert stats["thresholds_breached"] == []


def test_a_rate_under_its_target_breaches():
    report = SendReport(elapsed=10.0, signals={"logs": SignalReport(signal="logs", sent=800, delivered=800)},
                        target_events_per_second=100, processes=1)
    assert breaches(report, ThresholdsConfig(min_rate_ratio=0.97)) == [
        "delivered 80 events/s, 80.0% of the target 100: under min_rate_ratio 97.0%"]
    assert breaches(report, ThresholdsConfig(min_rate_ratio=0.8)) == []
    assert breaches(report, ThresholdsConfig()) == []


@pytest.mark.parametrize("thresholds, message", [
    ({"p99_latency": "fast"}, "thresholds.p99_latency: 'fast' is invalid: expected null or a duration > 0"),
    ({"max_failed_ratio": 2}, "thresholds.max_failed_ratio: 2 is invalid: expected null or a number between 0 and 1"),
    ({"p99": "1s"}, "unknown key thresholds.p99; did you mean thresholds.p99_latency?"),
])
def test_bad_thresholds_name_the_key(thresholds, message):
    with pytest.raises(telegen.ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        SenderConfig.from_dict({"thresholds": thresholds}, env={})


def test_abort_on_breach_stops_a_run_against_a_slow_backend_early(template_dir, tmp_path):
    config, stats = tmp_path / "send.yaml", tmp_path / "stats.json"
    config.write_text(json.dumps({"input": {"directory": str(template_dir)},
                                  "thresholds": {"p99_latency": "5ms", "abort_on_breach": "1s"},
                                  "sending": {"rate_limit": {"events_per_second": 50000}, "stats_interval": 0.5}}))
    with telegen.Sink(faults=SinkFaults(delay_ms=20)) as sink:
        result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--insecure",
                                 "--endpoint", sink.endpoint, "--duration", "60s", "--stats-json", str(stats)],
                                capture_output=True, text=True, timeout=60)
    report = json.loads(stats.read_text())
    assert result.returncode == 1, result.stderr
    assert report["elapsed_seconds"] < 10 and not report["interrupted"], "stopped early, not interrupted"
    assert report["aborted"].startswith("thresholds breached for ")
    assert "(abort_on_breach 1 s): " in report["aborted"] and "p99 latency per request" in report["aborted"]
    assert "aborting: thresholds breached for" in result.stdout
    assert "telegen: run failed: aborted: thresholds breached" in result.stderr


def test_a_fleet_is_judged_on_its_merged_totals():
    """Two senders each within a 100 ms p99 alone would still pass; together
    (the exact merge of their histograms) the fleet's p99 is the slow one's."""
    import numpy as np

    from telegen.fleet.report import FleetReport, SenderRow
    from telegen.send.report import latency
    from telegen.send.report.latency import Histogram

    def sender(seconds: float, count: int) -> SendReport:
        slots = np.zeros(latency.SLOTS, dtype=np.int64)
        for _ in range(count):
            latency.record(slots, 0, seconds)
        h = Histogram.from_slots(slots)
        return SendReport(elapsed=1.0, signals={"logs": SignalReport(signal="logs", sent=count, delivered=count,
                                                                     latency={"request": h, "batch": h})},
                          target_events_per_second=0, processes=1)

    fleet = FleetReport(elapsed=1.0, target_events_per_second=0,
                        senders=[SenderRow(index=0, node="a", report=sender(0.01, 95)),
                                 SenderRow(index=1, node="b", report=sender(0.4, 5))])
    thresholds = ThresholdsConfig(p99_latency=0.1)
    assert breaches(fleet.senders[0].report, thresholds) == []
    fleet.breaches = breaches(fleet.totals, thresholds)
    assert fleet.breaches == ["logs: p99 latency per request 400.0 ms, over p99_latency 100.0 ms"]
    assert fleet.failures() == ["threshold breached: logs: p99 latency per request 400.0 ms, over p99_latency "
                                "100.0 ms"]
    assert fleet.to_dict()["thresholds_breached"] == fleet.breaches
