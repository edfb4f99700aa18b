"""Ramping stages (`sending.stages`, k6's meaning): the plan's arithmetic,
the config, and real runs against the sink: a row per stage whose figures
add up to the run's exactly, thresholds judged per stage, the timeline's
stage column, and every process on one clock. Rate accuracy per stage is a
benchmark (benchmarks/test_stages.py), not a timed test."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import telegen
from telegen.send.config import SenderConfig
from telegen.send.engine.plan import RatePlan, Stage
from telegen.sink import SinkFaults

SIGNALS = ("traces", "metrics", "logs")


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------

def test_a_ramp_starts_from_zero_and_each_stage_from_the_last_target():
    plan = RatePlan([Stage(10, 1000), Stage(5, 1000), Stage(0, 4000), Stage(10, 0)])
    assert plan.duration == 25
    assert [plan.rate_at(t) for t in (0, 5, 10, 12, 15, 20, 25, 30)] == [0, 500, 1000, 1000, 4000, 2000, 0, 0]
    # The integral: a triangle, a rectangle, a jump (no time), a triangle.
    assert plan.events_by(10) == pytest.approx(5000)
    assert plan.events_by(15) == pytest.approx(10000)
    assert plan.events_by(25) == pytest.approx(30000) == pytest.approx(plan.total_events)
    assert plan.average(0, 10) == pytest.approx(500) and plan.average(15, 25) == pytest.approx(2000)
    assert [plan.stage_at(t) for t in (0, 9.99, 10, 14.9, 15, 24, 25, 99)] == [0, 0, 1, 1, 3, 3, 3, 3]
    assert plan.time_for(30000.5) is None, "after a ramp to 0 nothing more is ever allowed"
    assert plan.describe() == ("ramp to 1,000/s over 10 s, hold 1,000/s 5 s, jump to 4,000/s, "
                               "ramp to 0/s over 10 s")


def test_without_stages_the_plan_is_one_rate():
    plan = RatePlan(constant=2000)
    assert not plan.staged and plan.duration == 0 and plan.rate_at(123) == 2000
    assert plan.events_by(1.5) == 3000 and plan.time_for(3000) == 1.5
    assert RatePlan().unthrottled and RatePlan().time_for(1) is None
    assert plan.scaled(0.5).rate_at(0) == 1000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.integers(0, 10**7)), min_size=1, max_size=6),
       st.floats(0, 1))
def test_time_for_inverts_events_by(stages, fraction):
    plan = RatePlan([Stage(d, r) for d, r in stages])
    if plan.total_events <= 0:
        return
    events = fraction * plan.total_events
    t = plan.time_for(events)
    assert t is not None and 0 <= t <= plan.duration + 1e-6
    assert plan.events_by(t) == pytest.approx(events, rel=1e-6, abs=1e-3)
    # The earliest such time: a moment before, fewer events were allowed.
    if t > 1e-3 and events > 1:
        assert plan.events_by(t - 1e-3) < events


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 100), st.integers(0, 10**6)), min_size=1, max_size=5))
def test_events_by_is_the_integral_of_rate_at(stages):
    plan = RatePlan([Stage(d, r) for d, r in stages])
    # The midpoint rule within each stage (exact for a linear ramp), summed.
    total = 0.0
    for segment in plan.segments:
        steps, width = 50, segment.duration / 50
        total += sum(plan.rate_at(segment.start + (k + 0.5) * width) for k in range(steps)) * width
    assert plan.events_by(plan.duration) == pytest.approx(total, rel=1e-9, abs=1e-6)
    assert plan.events_by(plan.duration / 3) <= plan.events_by(plan.duration / 2)


# ---------------------------------------------------------------------------
# The config
# ---------------------------------------------------------------------------

def test_stages_set_the_runs_length_and_no_pass_bound():
    config = SenderConfig.from_yaml("sending: {stages: [{duration: 30s, events_per_second: 1000}, "
                                    "{duration: 1m, events_per_second: 1000}]}", env={})
    assert config.sending.duration == 90 and config.sending.multiplier == 0
    assert SenderConfig.from_dict(config.to_dict(redact=False), env={}) == config
    assert config.with_overrides({"otlp.endpoint": "127.0.0.1:1"}).sending.stages == config.sending.stages
    both = SenderConfig.from_yaml("sending: {stages: [{duration: 1s, events_per_second: 1}], multiplier: 3}",
                                  env={})
    assert both.sending.duration == 1 and both.sending.multiplier == 3


@pytest.mark.parametrize("sending, message", [
    ({"stages": [{"duration": "10s"}]},
     "sending.stages[0]: {'duration': '10s'} is invalid: expected a mapping with duration and events_per_second "
     "(events_per_second missing)"),
    ({"stages": [{"duration": 1, "events_per_second": 1}, {"duration": "10x", "events_per_second": 1}]},
     "sending.stages[1].duration: '10x' is invalid: expected a duration >= 0"),
    ({"stages": [{"duration": 1, "events_per_second": -5}]},
     "sending.stages[0].events_per_second: -5 is invalid: expected an integer >= 0"),
    ({"stages": [{"duration": 1, "events_per_secnd": 5}]},
     "unknown key sending.stages[0].events_per_secnd; did you mean sending.stages[0].events_per_second?"),
    ({"stages": 5}, "sending.stages: 5 is invalid: expected a list of mappings with duration and events_per_second"),
    ({"stages": [7]}, "sending.stages[0]: 7 is invalid: expected a mapping with keys duration, events_per_second"),
    ({"stages": [{"duration": 0, "events_per_second": 5}]},
     "sending.stages: [{'duration': 0.0, 'events_per_second': 5}] is invalid: expected stages lasting more than 0 s"),
    ({"stages": [{"duration": 1, "events_per_second": 5}], "duration": "5m"},
     "sending.duration: '5m' is invalid: expected no duration with sending.stages"),
    ({"stages": [{"duration": 1, "events_per_second": 5}], "rate_limit": {"events_per_second": 9}},
     "sending.rate_limit.events_per_second: 9 is invalid: expected no rate with sending.stages"),
])
def test_bad_stages_name_the_key_the_value_and_what_was_expected(sending, message):
    with pytest.raises(telegen.ConfigError) as caught:
        SenderConfig.from_dict({"sending": sending}, env={})
    assert str(caught.value).startswith(message)


def test_duration_or_rate_flags_beside_stages_exit_2(tmp_path):
    config = tmp_path / "send.yaml"
    config.write_text(json.dumps({"sending": {"stages": [{"duration": 1, "events_per_second": 5}]}}))
    for flag in (["--duration", "5s"], ["--rate", "100"]):
        result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), *flag],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "with sending.stages" in result.stderr
        assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------
# Real runs
# ---------------------------------------------------------------------------

def staged_run(template_dir, tmp_path, sink, stages, thresholds=None, processes=1, interval=0.5):
    config, stats, report = tmp_path / "send.yaml", tmp_path / "stats.json", tmp_path / "report"
    config.write_text(json.dumps({
        "input": {"directory": str(template_dir)}, "thresholds": thresholds or {},
        "sending": {"stages": stages, "stats_interval": interval, "processes": processes,
                    "batch_size": {"traces": 10, "metrics": 200, "logs": 200}}}))
    result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--insecure",
                             "--endpoint", sink.endpoint, "--stats-json", str(stats), "--report", str(report)],
                            capture_output=True, text=True, timeout=120)
    return result, json.loads(stats.read_text()), list(csv.DictReader((report / "timeline.csv").open()))


def assert_stages_add_up(stats):
    for signal, totals in stats["signals"].items():
        for key in ("sent", "delivered", "failed", "rejected", "requests", "retries", "bytes"):
            assert sum(stage["signals"][signal][key] for stage in stats["stages"]) == totals[key], (signal, key)
        requests = sum(stage["signals"][signal]["latency"]["request"]["count"] for stage in stats["stages"])
        assert requests == totals["latency"]["request"]["count"]


def test_a_staged_run_reports_each_stage_and_cuts_the_timeline_at_their_ends(template_dir, tmp_path):
    stages = [{"duration": "1.5s", "events_per_second": 20000}, {"duration": "1.5s", "events_per_second": 20000},
              {"duration": 0, "events_per_second": 0}, {"duration": "1s", "events_per_second": 0},
              {"duration": 0, "events_per_second": 10000}, {"duration": "1s", "events_per_second": 10000}]
    with telegen.Sink(faults=SinkFaults(delay_ms=5)) as sink:
        result, stats, rows = staged_run(template_dir, tmp_path, sink, stages)
        received = sum(s.events for s in sink.stats().signals().values())
    assert result.returncode == 0, result.stderr
    assert "6 stages: ramp to 20,000/s over 1.5 s, hold 20,000/s 1.5 s, jump to 0/s, hold 0/s 1 s, " \
           "jump to 10,000/s, hold 10,000/s 1 s" in result.stdout
    # Jumps have no time and no row; the others one each, numbered as configured.
    assert [s["stage"] for s in stats["stages"]] == [1, 2, 4, 6] and all(s["of"] == 6 for s in stats["stages"])
    ramp, hold, pause, last = stats["stages"]
    assert (ramp["target_from"], ramp["target_to"], ramp["target_events_per_second"]) == (0, 20000, 10000)
    assert hold["target_events_per_second"] == 20000 and last["target_events_per_second"] == 10000
    assert all(s["complete"] for s in stats["stages"])
    assert pause["target_events_per_second"] == 0
    assert sum(pause["signals"][s]["sent"] for s in SIGNALS) < 0.05 * sum(hold["signals"][s]["sent"] for s in SIGNALS)
    assert_stages_add_up(stats)
    assert stats["delivered_events"] == received
    for number in (1, 2, 4, 6):
        assert f"stage {number}/6 (" in result.stdout
    assert "stage 2/6 (hold 20,000/s): target 20,000/s, sent " in result.stdout
    assert "[stage 2/6, target 20,000/s; " in result.stdout, "progress lines say the stage and its target now"
    # Timeline: the stage column follows the clock, and no row straddles a stage's end.
    traces = [r for r in rows if r["signal"] == "traces"]
    assert {r["stage"] for r in traces} == {"1", "2", "4", "6"}
    assert [r["stage"] for r in traces] == sorted((r["stage"] for r in traces), key=int)
    ends = {1: 1.5, 2: 3.0, 4: 4.0, 6: 5.0}
    for r in traces:
        start, end = float(r["seconds"]) - float(r["interval_seconds"]), float(r["seconds"])
        number = int(r["stage"])
        begin = {1: 0.0, 2: 1.5, 4: 3.0, 6: 4.0}[number]
        # Never before the stage began; cut at its end as soon as the watch wakes (a generous bound on a busy box).
        assert begin - 0.06 <= start and (end <= ends[number] + 1.0 or number == 6), r
    # Each stage's last row ends where the next stage's first row starts: the cut, shared, not a straddle.
    for before, after in zip(traces, traces[1:]):
        if before["stage"] != after["stage"]:
            assert float(after["seconds"]) - float(after["interval_seconds"]) == pytest.approx(
                float(before["seconds"]), abs=0.002)
            assert float(before["seconds"]) >= ends[int(before["stage"])] - 0.06


def test_thresholds_are_judged_per_stage(template_dir, tmp_path):
    # Stage 1 is easy; stage 2 asks for far more than two cores can send.
    stages = [{"duration": "1.5s", "events_per_second": 5000}, {"duration": 0, "events_per_second": 50_000_000},
              {"duration": "1.5s", "events_per_second": 50_000_000}]
    with telegen.Sink() as sink:
        result, stats, _ = staged_run(template_dir, tmp_path, sink, stages, {"min_rate_ratio": 0.8})
    assert result.returncode == 1
    assert "threshold breached in stage 3: delivered " in result.stdout
    assert "telegen: run failed: threshold breached: stage 3: delivered" in result.stderr
    assert "stage 1:" not in result.stderr
    first, third = stats["stages"]
    assert first["thresholds_breached"] == [] and len(third["thresholds_breached"]) == 1
    assert any(line.startswith("stage 3: ") for line in stats["thresholds_breached"])


def test_processes_follow_the_stages_on_one_clock(template_dir, tmp_path):
    stages = [{"duration": "1.5s", "events_per_second": 8000}, {"duration": "1.5s", "events_per_second": 8000}]
    with telegen.Sink() as sink:
        result, stats, _ = staged_run(template_dir, tmp_path, sink, stages, processes=2)
    assert result.returncode == 0, result.stderr
    assert stats["processes"] == 2 and len(stats["stages"]) == 2
    assert_stages_add_up(stats)
    ramp, hold = stats["stages"]
    # Loose bounds: the accuracy itself is benchmarked; here both halves of the rate must be there.
    assert 0.6 * 4000 < ramp["sent_events_per_second"] < 1.5 * 4000
    assert 0.6 * 8000 < hold["sent_events_per_second"] < 1.5 * 8000


def test_the_ramp_example_is_a_working_config():
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "examples" / "ramp-config.yaml"
    config = SenderConfig.load(path, env={})
    assert [s.events_per_second for s in config.sending.stages] == [200_000, 4_000_000]
    assert config.sending.duration == 25 and config.thresholds.abort_on_breach == 3


def test_the_chart_marks_stages_the_target_the_budget_and_the_abort(tmp_path):
    from telegen.send.report.latency import Histogram
    from telegen.send.report.timeline import StageMark, Timeline

    timeline = Timeline()
    timeline.stages = [StageMark(1, 0, 2, 0, 1000), StageMark(3, 2, 4, 2000, 2000)]
    timeline.p99_budget, timeline.aborted_at = 0.05, 3.5
    for second in (1, 2, 3, 3.5):
        for signal in SIGNALS:
            timeline.add(second, signal, 1.0 if second != 3.5 else 0.5,
                         {"delivered": 100 * second, "bytes": 1, "requests": 1, "failed": 0, "rejected": 0,
                          "retries": 0}, Histogram(), stage="1" if second <= 2 else "3")
    written = timeline.write(tmp_path)
    assert [p.name for p in written] == ["timeline.csv", "timeline.json", "chart.png"]
    assert (tmp_path / "chart.png").stat().st_size > 10_000
    rows = list(csv.DictReader((tmp_path / "timeline.csv").open()))
    assert [r["stage"] for r in rows if r["signal"] == "logs"] == ["1", "1", "3", "3"]
    assert rows[-1]["interval_seconds"] == "0.5"


def test_the_chart_leaves_out_the_drain_and_reads_rates_in_k_and_m():
    from telegen.send.report.latency import Histogram
    from telegen.send.report.timeline import Timeline, rate_label

    timeline = Timeline()
    counts = {"delivered": 100_000, "bytes": 1, "requests": 1, "failed": 0, "rejected": 0, "retries": 0}
    timeline.add(1.0, "logs", 1.0, counts, Histogram())
    timeline.add(2.2, "logs", 1.2, counts, Histogram(), drain=0.2)  # sent for 1 s, then drained
    timeline.add(2.25, "logs", 0.05, {**counts, "delivered": 10}, Histogram(), drain=0.05)  # all drain
    first, straddling, drain = timeline.rows
    assert first.sending_rate() == 100_000 and first.drain == 0
    # A rate over the part that sent, not a dip drawn from the drain's silence.
    assert straddling.sending_rate() == pytest.approx(100_000) and drain.sending_rate() is None
    assert [rate_label(v) for v in (0, 500, 2_500, 250_000, 1_000_000, 1_500_000)] == [
        "0", "500/s", "2.5k/s", "250k/s", "1M/s", "1.5M/s"]
