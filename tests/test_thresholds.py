"""Pass/fail thresholds: a breach is listed plainly and the run exits 1; a
run within budget exits 0; bad thresholds name the key and what was expected."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
from http_receiver import Answer, HttpRecorder, serve_http

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
        # ... and the default budget for lost events (10 % rejected), with the sink's reason.
        assert f"threshold breached: {signal}: lost " in result.stderr
    assert "over max_lost_ratio 1 %: rejected by the endpoint: sink fault: rejected " in result.stderr
    assert "max_failed_ratio" not in result.stderr  # nothing failed
    assert len(stats["thresholds_breached"]) == 9


def test_a_run_within_budget_exits_0(template_dir, tmp_path):
    with telegen.Sink() as sink:
        result, stats = send(template_dir, tmp_path, sink, {"p99_latency": "10s", "max_failed_ratio": 0,
                                                            "max_rejected_ratio": 0, "min_rate_ratio": 0.5})
    assert result.returncode == 0, result.stderr
    assert stats["thresholds_breached"] == []


def prometheus_like(every: int) -> HttpRecorder:
    """An OTLP/HTTP receiver that refuses every `every`th metrics request as
    Prometheus refuses points older than their series' newest: a 400 with
    "out of order sample" and the refused series, kilobytes of them."""
    body = ("out of order sample\n" + "".join(f'series {{__name__="queue_depth", shard="{i}"}} timestamp {i}\n'
                                              for i in range(200))).encode()
    counted = itertools.count(1)
    return HttpRecorder(lambda n, signal: Answer(400, {"Content-Type": "text/plain"}, body)
                        if signal == "metrics" and next(counted) % every == 0 else Answer())


def send_http(template_dir, tmp_path, recorder: HttpRecorder, thresholds: dict | None = None
              ) -> tuple[subprocess.CompletedProcess, dict]:
    config, stats = tmp_path / "send.yaml", tmp_path / "stats.json"
    config.write_text(json.dumps({"input": {"directory": str(template_dir)},
                                  "sending": {"rate_limit": {"events_per_second": 50000}, "stats_interval": 60},
                                  **({"thresholds": thresholds} if thresholds is not None else {})}))
    server, port = serve_http(recorder)
    try:
        result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--insecure",
                                 "--protocol", "http", "--endpoint", f"http://127.0.0.1:{port}", "--duration", "2s",
                                 "--stats-json", str(stats)], capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    return result, json.loads(stats.read_text())


def test_a_run_that_lost_a_third_of_its_points_fails_loudly_by_default(template_dir, tmp_path):
    """No thresholds configured; the backend refuses a third of the metrics
    requests. The run exits 1 with one line for metrics saying how much was
    lost and the backend's reason, the summary ends on a LOST line, and the
    reason, shortened to one line, is said once while the run goes."""
    result, stats = send_http(template_dir, tmp_path, prometheus_like(every=3))
    assert result.returncode == 1, result.stderr
    metrics = stats["signals"]["metrics"]
    lost = metrics["rejected"] / metrics["sent"]
    assert 0.2 < lost < 0.5 and metrics["failed"] == 0, metrics
    (reason, events), = metrics["reasons"]["rejected"].items()
    assert reason.startswith('HTTP 400: out of order sample series {__name__="queue_depth", shard="0"}')
    assert len(reason) <= 200 and reason.endswith("...") and events == metrics["rejected"]
    assert result.stderr.splitlines() == [
        f"telegen: run failed: threshold breached: metrics: lost {100 * lost:.3g} % of {metrics['sent']:,} events "
        f"({metrics['rejected']:,} rejected, 0 failed), over max_lost_ratio 1 %: rejected by the endpoint: {reason}"]
    summary = result.stdout[result.stdout.index("Sent for"):result.stdout.index("Wrote ")].splitlines()
    assert summary[-1] == (f"  LOST {100 * lost:.3g} % of metrics ({metrics['rejected']:,} of {metrics['sent']:,} "
                           f"events): rejected by the endpoint: {reason}")
    said = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and said[0].startswith("error: metrics: the endpoint rejected "), said
    assert said[0].endswith(f" events: {reason}")
    assert stats["thresholds_breached"] == [result.stderr.splitlines()[0].removeprefix(
        "telegen: run failed: threshold breached: ")]


def test_the_default_loss_budget_is_configurable(template_dir, tmp_path):
    """The same loss within a budget of one half exits 0, and the summary
    still ends on the loss; null turns the check off."""
    for budget in (0.5, None):
        result, stats = send_http(template_dir, tmp_path, prometheus_like(every=3), {"max_lost_ratio": budget})
        assert result.returncode == 0, result.stderr
        assert stats["thresholds_breached"] == [] and stats["signals"]["metrics"]["rejected"] > 0
        summary = result.stdout[result.stdout.index("Sent for"):result.stdout.index("Wrote ")].splitlines()
        assert summary[-1].startswith("  LOST ") and " of metrics (" in summary[-1]


def test_a_loss_within_one_percent_passes_and_one_over_fails():
    def report(rejected: int, failed: int = 0) -> SendReport:
        return SendReport(elapsed=1.0, signals={"logs": SignalReport(
            signal="logs", sent=1000, delivered=1000 - rejected - failed, rejected=rejected, failed=failed,
            reasons={"rejected": {"HTTP 400: too old": rejected}} if rejected else {})},
            target_events_per_second=0, processes=1)
    defaults = ThresholdsConfig()
    assert defaults.max_lost_ratio == 0.01
    assert breaches(report(10), defaults) == []
    # 0.6 % failed and 0.6 % rejected: 1.2 % lost, which one combined budget catches.
    assert breaches(report(6, failed=6), defaults) == [
        "logs: lost 1.2 % of 1,000 events (6 rejected, 6 failed), over max_lost_ratio 1 %: rejected by the "
        "endpoint: HTTP 400: too old"]
    assert breaches(report(11), ThresholdsConfig(max_lost_ratio=None)) == []


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
    ({"max_lost_ratio": -1}, "thresholds.max_lost_ratio: -1 is invalid: expected null or a number between 0 and 1"),
    ({"max_lost": 0.1}, "unknown key thresholds.max_lost; did you mean thresholds.max_lost_ratio?"),
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


def test_a_fleet_sums_its_senders_reasons():
    from telegen.fleet.report import FleetReport, SenderRow

    def sender(rejected: int, reason: str) -> SendReport:
        return SendReport(elapsed=1.0, signals={"metrics": SignalReport(
            signal="metrics", sent=100, delivered=100 - rejected, rejected=rejected,
            reasons={"rejected": {reason: rejected}})}, target_events_per_second=0, processes=1)

    fleet = FleetReport(elapsed=1.0, target_events_per_second=0,
                        senders=[SenderRow(index=0, node="a", report=sender(30, "HTTP 400: out of order sample")),
                                 SenderRow(index=1, node="b", report=sender(10, "HTTP 400: out of order sample")),
                                 SenderRow(index=2, node="b", report=sender(5, "HTTP 400: too old"))])
    totals = fleet.totals.signals["metrics"]
    assert totals.reasons == {"rejected": {"HTTP 400: out of order sample": 40, "HTTP 400: too old": 5}}
    assert fleet.summary().splitlines()[-1] == (
        "  LOST 15 % of metrics (45 of 300 events): rejected by the endpoint: HTTP 400: out of order sample (40); "
        "rejected by the endpoint: HTTP 400: too old (5)")
    assert fleet.to_dict()["signals"]["metrics"]["reasons"] == totals.reasons
