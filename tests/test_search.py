"""The capacity search (`telegen send --find-max`): its planner against
model backends, the controlled rate across forked workers, the step
verdicts, and whole searches against real receivers: the sink at full
speed (the configured max holds), one signal alone, a sender held to a
fraction of a core (sender-bound, never reported as the backend's limit),
and the CLI's output, JSON, chart and exit statuses."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from telegen import Sender
from telegen.send.report import SenderLoad
from telegen.send.report.latency import SLOTS, Histogram, record
from telegen.send.search import Planner, RateControl, SearchSettings, judge
from telegen.send.search.judge import Window
from telegen.send.search.report import MAX_RATE, SENDER_BOUND
from telegen.sink import Sink

# -- the planner, against model backends -------------------------------------------


def search_model(capacity: float, settings: SearchSettings, delivered=None) -> tuple[Planner, list[float]]:
    """Run the planner against a backend that holds any rate <= capacity and
    delivers `delivered(rate)` (default: its capacity) when it does not."""
    planner = Planner(settings)
    tried = []
    rate = planner.next()
    while rate is not None and len(tried) < 50:
        tried.append(rate)
        held = rate <= capacity
        planner.record(rate, held, None if held else (delivered or (lambda r: capacity))(rate))
        rate = planner.next()
    return planner, tried


@pytest.mark.parametrize("capacity", [1_500, 9_999, 37_000, 250_000, 3_000_000])
def test_the_planner_brackets_the_capacity_within_the_resolution(capacity):
    settings = SearchSettings(min_rate=1000, resolution=0.05)
    planner, tried = search_model(capacity, settings)
    assert planner.low <= capacity < planner.high <= planner.low * 1.05 + 1e-6
    # The delivered-rate hint: a handful of steps past the probe.
    probe = sum(1 for rate in tried if rate <= capacity * 2 and rate in
                [1000 * 2 ** k for k in range(30)])
    assert len(tried) - probe <= 4, tried


@pytest.mark.parametrize("capacity", [9_999, 37_000, 250_000])
def test_without_a_usable_hint_it_bisects_and_still_converges(capacity):
    # A backend that delivers nothing when overloaded (a hint of 0 is outside the bracket).
    settings = SearchSettings(min_rate=1000, resolution=0.05)
    planner, tried = search_model(capacity, settings, delivered=lambda rate: 0.0)
    assert planner.low <= capacity < planner.high <= planner.low * 1.05 + 1e-6
    assert len(tried) < 20


def test_a_misleading_hint_does_not_stall_it():
    # Delivers far more than its capacity when overloaded (retries counted late): still converges.
    settings = SearchSettings(min_rate=1000, resolution=0.05)
    planner, tried = search_model(20_000, settings, delivered=lambda rate: 0.99 * rate)
    assert planner.low <= 20_000 < planner.high <= planner.low * 1.05 + 1e-6
    assert len(tried) < 20


def test_max_rate_ends_the_climb_and_a_failed_min_rate_ends_the_search():
    planner, tried = search_model(10**9, SearchSettings(min_rate=1000, max_rate=5000))
    assert tried == [1000, 2000, 4000, 5000] and planner.high is None
    planner, tried = search_model(500, SearchSettings(min_rate=1000))
    assert tried == [1000] and planner.low is None


def test_min_rate_auto_gives_each_window_several_requests():
    settings = SearchSettings(step_duration=10).resolved(request_events=3000, processes=2)
    assert settings.min_rate == pytest.approx(4 * 3000 * 2 / 2.0)
    assert SearchSettings(min_rate=50).resolved(3000, 1).min_rate == 50
    assert SearchSettings(max_rate=2000).resolved(3000, 1).min_rate == 2000


# -- the controlled rate -------------------------------------------------------------


def test_the_controlled_rate_integrates_its_changes():
    control = RateControl(0.0)
    control.begin(time.monotonic())
    assert control.time_for(1) is None  # paused: never
    control.set(1000)
    at = control.now()
    assert control.events_by(at + 2) == pytest.approx(control.events_by(at) + 2000)
    assert control.time_for(control.events_by(at) + 500) == pytest.approx(at + 0.5, abs=1e-3)
    plan = control.plan(0.25)
    assert plan.rate_at(0) == 250 and plan.events_by(at + 4) == pytest.approx(control.events_by(at + 4) / 4)
    control.set(0)
    frozen = control.events_by(control.now())
    assert control.events_by(control.now() + 100) == pytest.approx(frozen)


RATES = {100.0 * 3 ** k for k in range(12)}


def _read_while_written(control: RateControl, seconds: float, out) -> None:
    """In a forked process: every state read is one the writer wrote whole
    (its rate one written; its time and events never behind the last read)."""
    previous = (0.0, 0.0, 0.0)
    reads = 0
    ok = True
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        state = control._read()
        ok = ok and state[2] in RATES and state[0] >= previous[0] and state[1] >= previous[1]
        previous, reads = state, reads + 1
    out.put((ok, reads, previous))


def test_forked_workers_read_every_change_whole():
    control = RateControl(100.0)
    control.begin(time.monotonic())
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_read_while_written, args=(control, 1.0, out))
    child.start()
    end = time.monotonic() + 1.0
    rate, writes = 100.0, 0
    while time.monotonic() < end:
        rate = 100.0 if rate > 1e5 else rate * 3
        control.set(rate)
        writes += 1
    ok, reads, last = out.get(timeout=10)
    child.join(10)
    assert ok and reads > 1000 and writes > 1000
    assert last[1] <= control.events_by(control.now())


# -- verdicts -----------------------------------------------------------------------


def window(offered=1000.0, sent=1000, delivered=1000, answered=1000, refused=0, latency_ms=5.0, cpu=0.1,
           slot_wait=0.0, seconds=1.0) -> Window:
    slots = [0] * SLOTS
    for _ in range(20):
        record(slots, 0, latency_ms / 1e3)
    histogram = Histogram.from_slots(slots)
    return Window(seconds, offered, sent, delivered, 0, 0, histogram,
                  SenderLoad(1, cpu, slot_wait, answered, refused), slots=50, slack=0)


LIMITS = SearchSettings(max_error_share=0.01, max_p99=1.0)


def test_a_step_the_backend_took_holds():
    verdict, figures = judge([window()] * 5, LIMITS, None)
    assert verdict.passed and figures.delivered_rate == 1000


def test_refusals_above_the_limit_fail_a_step_but_the_first_window_is_not_judged():
    assert not judge([window()] + [window(refused=20)] * 4, LIMITS, None)[0].passed
    assert judge([window(refused=900)] + [window()] * 4, LIMITS, None)[0].passed
    assert judge([window(refused=900)] + [window()] * 4, LIMITS, None)[0].passed


def test_latency_and_delivery_fail_a_step():
    verdict = judge([window(latency_ms=1500)] * 5, LIMITS, None)[0]
    assert (verdict.passed, verdict.reason) == (False, "latency")
    # Short in two windows running: slots full, latency grown from 5 ms.
    verdict = judge([window()] + [window(sent=1000, delivered=500, slot_wait=0.9, latency_ms=80)] * 4, LIMITS,
                    0.005)[0]
    assert (verdict.passed, verdict.reason) == (False, "delivery")
    # Short in one window only: holds.
    windows = [window(), window(delivered=500), window(), window(delivered=500), window()]
    assert judge(windows, LIMITS, 0.005)[0].passed


def test_who_was_the_bottleneck():
    # The sender sent 60 % of the target with its slots free: the sender.
    verdict = judge([window(sent=600, delivered=600, cpu=0.99)] * 5, LIMITS, 0.005)[0]
    assert verdict.reason == "sender" and "99 % CPU" in verdict.detail
    # Slots full and latency unchanged: the sender's concurrency, not the backend.
    verdict = judge([window(sent=600, delivered=600, slot_wait=0.95, latency_ms=5)] * 5, LIMITS, 0.005)[0]
    assert verdict.reason == "concurrency"


# -- whole searches against real receivers ---------------------------------------------


def search_config(template_dir, endpoint: str, **search) -> dict:
    return {"input": {"directory": str(template_dir)},
            "otlp": {"endpoint": endpoint, "insecure": True},
            "sending": {"batch_size": {"traces": 10, "metrics": 100, "logs": 100}, "concurrency": 8,
                        "search": {"enabled": True, "step_duration": 1.5, "cooldown": 0.3, "hold": 1.5, **search}}}


def test_a_fast_sink_takes_the_max_rate_and_every_step_is_delivered(template_dir):
    with Sink() as sink:
        report = Sender(search_config(template_dir, sink.endpoint, max_rate=40_000),
                        write=lambda line: None).find_max()
        stats = sink.stats()
    assert report.stop_reason == MAX_RATE and report.found and report.exit_status() == 0
    assert report.max_sustainable_eps == 40_000 and report.confirmed
    assert [s.phase for s in report.steps][-1] == "hold" and all(s.passed for s in report.steps)
    for step in report.steps:  # what each step offered went out, and was answered
        assert step.sent_rate == pytest.approx(step.rate, rel=0.15)
        assert step.delivered_rate == pytest.approx(step.rate, rel=0.15)
    run = report.run
    assert run is not None and not run.interrupted
    assert stats.traces.events + stats.metrics.events + stats.logs.events == run.delivered


def test_one_signal_alone(template_dir):
    with Sink() as sink:
        report = Sender(search_config(template_dir, sink.endpoint, max_rate=8_000, signal="logs", hold=0),
                        write=lambda line: None).find_max()
        stats = sink.stats()
    assert report.signals == "logs" and list(report.run.signals) == ["logs"]
    assert stats.logs.events > 0 and stats.traces.events == stats.metrics.events == 0


def cli_yaml(path, template_dir, **search) -> None:
    lines = "\n".join(f"    {key}: {value}" for key, value in search.items())
    path.write_text(f"""
input: {{directory: "{template_dir}"}}
otlp: {{insecure: true}}
sending:
  batch_size: {{traces: 10, metrics: 100, logs: 100}}
  concurrency: 8
  search:
{lines}
""")


def test_a_sender_held_to_a_fraction_of_a_core_is_the_bottleneck_not_the_backend(template_dir, tmp_path):
    """The sender process is stopped and continued (SIGSTOP/SIGCONT, as
    cpulimit does) so it runs 15 % of the time: a fast sink never limits
    it; the search must say the sender was the bound, report no maximum,
    and exit 1."""
    config = tmp_path / "search.yaml"
    cli_yaml(config, template_dir, min_rate=20000, factor=4, step_duration=2, cooldown=0.2, hold=1)
    stats = tmp_path / "search.json"
    with Sink() as sink:
        process = subprocess.Popen([sys.executable, "-m", "telegen", "send", "--config", str(config), "--endpoint",
                                    sink.endpoint, "--find-max", "--stats-json", str(stats)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        done = threading.Event()

        def throttle() -> None:
            # 15 ms of every 100 ms running, once the search has begun.
            deadline = time.monotonic() + 90
            while not done.is_set() and time.monotonic() < deadline:
                try:
                    os.kill(process.pid, signal.SIGSTOP)
                    time.sleep(0.085)
                    os.kill(process.pid, signal.SIGCONT)
                except ProcessLookupError:
                    return
                time.sleep(0.015)

        time.sleep(1.5)  # loading runs at full speed
        thread = threading.Thread(target=throttle, daemon=True)
        thread.start()
        try:
            out, err = process.communicate(timeout=100)
        finally:
            done.set()
            thread.join()
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
    assert process.returncode == 1, out + err
    assert "search: limited by the sender" in out and "add processes or senders" in out
    search = json.loads(stats.read_text())["search"]
    assert search["stop_reason"] == SENDER_BOUND and search["max_sustainable_eps"] is None
    assert search["steps"][-1]["reason"] == "sender"
    assert "telegen: search failed: limited by the sender" in err


def test_the_cli_writes_the_search_to_json_and_the_chart(template_dir, tmp_path):
    pytest.importorskip("matplotlib")
    config = tmp_path / "search.yaml"
    cli_yaml(config, template_dir, max_rate=20000, step_duration=1, cooldown=0.2, hold=1)
    with Sink() as sink:
        result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--endpoint",
                                 sink.endpoint, "--find-max", "--stats-json", str(tmp_path / "out.json"), "--report",
                                 str(tmp_path / "report")], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "search: the backend took the configured max_rate, 20,000 events/s" in result.stdout
    search = json.loads((tmp_path / "out.json").read_text())["search"]
    assert search["max_sustainable_eps"] == 20000 and search["stop_reason"] == "max_rate"
    assert {"step", "phase", "rate", "error_share", "latency_ms", "passed"} <= set(search["steps"][0])
    assert (tmp_path / "report" / "search.png").stat().st_size > 10_000


@pytest.mark.parametrize(("flags", "message"), [
    (["--find-max", "--rate", "1000"], "--rate: cannot be given with --find-max"),
    (["--find-max", "span"], "--find-max: invalid choice"),
])
def test_bad_search_flags_exit_2(template_dir, tmp_path, flags, message):
    config = tmp_path / "search.yaml"
    cli_yaml(config, template_dir, step_duration=1)
    result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--endpoint",
                             "127.0.0.1:1", *flags], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_bad_search_limits_name_the_key(template_dir, tmp_path):
    config = tmp_path / "search.yaml"
    cli_yaml(config, template_dir, enabled="true", min_rate=5000, max_rate=100)
    result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--endpoint",
                             "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "sending.search.max_rate: 100 is invalid" in result.stderr and "Traceback" not in result.stderr


# -- backends of a known capacity ------------------------------------------------------

CAPACITY = 7_000


def known_capacity_config(template_dir, sink: Sink, protocol: str, **search) -> dict:
    endpoint = sink.endpoint if protocol == "grpc" else sink.http_endpoint
    return {"input": {"directory": str(template_dir)},
            "otlp": {"endpoint": endpoint, "insecure": True, "protocol": protocol},
            "sending": {"batch_size": {"traces": 10, "metrics": 100, "logs": 100}, "concurrency": 8,
                        "retry": {"max_attempts": 2, "initial_backoff": 0.1, "max_backoff": 0.2},
                        "search": {"enabled": True, "min_rate": 2000, "step_duration": 2, "cooldown": 0.4,
                                   "hold": 3, **search}}}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_backend_refusing_above_its_capacity_is_found_within_10_percent(template_dir, protocol):
    """A token bucket of CAPACITY events/s answering RESOURCE_EXHAUSTED
    (HTTP 429) above it: the knee is found by refusals, within 10 %."""
    started = time.monotonic()
    with Sink(listen_http="127.0.0.1:0", capacity=CAPACITY) as sink:
        lines: list[str] = []
        report = Sender(known_capacity_config(template_dir, sink, protocol), write=lines.append).find_max()
    assert time.monotonic() - started < 60
    assert report.stop_reason == "knee" and report.found and report.confirmed, "\n".join(lines)
    assert report.max_sustainable_eps == pytest.approx(CAPACITY, rel=0.10), "\n".join(lines)
    # Within the resolution, or (a hold that failed moved the knee down by it) twice that.
    assert report.degraded_at_eps <= report.max_sustainable_eps * 1.11, "\n".join(lines)
    failed = [step for step in report.steps if not step.passed]
    assert failed and all(step.reason == "errors" for step in failed), "\n".join(lines)
    assert "degradation began at" in "\n".join(report.lines())


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_backend_whose_latency_grows_with_load_is_found_within_10_percent(template_dir, protocol):
    """One FIFO server of CAPACITY events/s: nothing refused, latency grows
    once offered more. With a 100 ms p99 limit the knee is found by latency
    (or by the delivered rate falling behind), within 10 %."""
    started = time.monotonic()
    with Sink(listen_http="127.0.0.1:0", capacity=CAPACITY, capacity_mode="queue") as sink:
        lines: list[str] = []
        report = Sender(known_capacity_config(template_dir, sink, protocol, max_p99=0.1),
                        write=lines.append).find_max()
    assert time.monotonic() - started < 60
    assert report.stop_reason == "knee" and report.found, "\n".join(lines)
    assert report.max_sustainable_eps == pytest.approx(CAPACITY, rel=0.10), "\n".join(lines)
    failed = [step for step in report.steps if not step.passed]
    assert failed and {step.reason for step in failed} <= {"latency", "delivery"}, "\n".join(lines)
    assert all(step.error_share == 0 for step in report.steps)


def test_min_step_closes_the_bracket_coarser_than_the_resolution():
    planner, tried = search_model(37_000, SearchSettings(min_rate=1000, resolution=0.01, min_step=5_000))
    assert planner.low <= 37_000 < planner.high <= planner.low + 5_000
    fine, more = search_model(37_000, SearchSettings(min_rate=1000, resolution=0.01))
    assert len(tried) <= len(more)


def test_an_auto_min_rate_that_fails_probes_downward():
    settings = SearchSettings(min_rate=0, step_duration=1).resolved(request_events=2000, processes=1)
    assert settings.auto_min and settings.min_rate == 40_000
    planner, tried = search_model(7_000, settings)
    assert tried[:4] == [40_000, 20_000, 10_000, 5_000]
    assert planner.low <= 7_000 < planner.high <= planner.low * 1.05 + 1e-6
    planner, tried = search_model(50, settings)  # below the floor: it ends there
    assert planner.low is None and min(tried) >= 100


def test_ctrl_c_stops_a_search_with_its_summary_and_exit_130(template_dir, tmp_path):
    config = tmp_path / "search.yaml"
    cli_yaml(config, template_dir, step_duration=3, cooldown=0.5, hold=5)
    with Sink() as sink:
        process = subprocess.Popen([sys.executable, "-m", "telegen", "send", "--config", str(config), "--endpoint",
                                    sink.endpoint, "--find-max", "--stats-json", str(tmp_path / "out.json")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sink.stats().traces.events == 0:
            time.sleep(0.1)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "Sent for" in out and "search: interrupted" in out
    search = json.loads((tmp_path / "out.json").read_text())["search"]
    assert search["stop_reason"] == "interrupted" and search["max_sustainable_eps"] is None


def test_a_report_read_back_from_json_is_the_same():
    from telegen.send.search.report import SearchReport
    step_json = {"step": 1, "phase": "probe", "rate": 1000.0, "start_seconds": 0.0, "end_seconds": 2.0,
                 "sent_events_per_second": 990.0, "delivered_events_per_second": 980.0, "error_share": 0.001,
                 "latency_ms": {"p50": 1.5, "p99": 9.0}, "sender_cpu_share": 0.1, "slot_wait_share": 0.0,
                 "passed": True, "reason": None, "detail": "",
                 "windows": [{"end_seconds": 1.0, "delivered_events_per_second": 1000.0, "p99_ms": 8.0}]}
    data = {"signals": "all", "max_sustainable_eps": 1000.0, "lower_bound_eps": 1000.0, "degraded_at_eps": None,
            "resolution": 0.05, "confirmed": True, "stop_reason": "max_rate", "found": True, "sender": "1 process",
            "conclusion": "x", "mix": {"traces": 0.75, "logs": 0.25},
            "max_sustainable_by_signal": {"traces": 750.0, "logs": 250.0}, "steps": [step_json]}
    assert SearchReport.from_dict(data).to_dict() == data


def test_the_rate_found_splits_per_signal_in_the_templates_mix(template_dir):
    with Sink() as sink:
        report = Sender(search_config(template_dir, sink.endpoint, max_rate=10_000, hold=0),
                        write=lambda line: None).find_max()
    assert set(report.mix) == {"traces", "metrics", "logs"} and sum(report.mix.values()) == pytest.approx(1)
    split = report.to_dict()["max_sustainable_by_signal"]
    assert sum(split.values()) == pytest.approx(10_000, rel=1e-4)
    assert any(line.startswith("  at that rate: traces ") for line in report.lines())


def test_the_find_max_example_is_a_working_config(template_dir):
    from pathlib import Path

    from telegen.send.config import SenderConfig

    path = Path(__file__).resolve().parents[1] / "examples" / "find-max.yaml"
    config = SenderConfig.load(path, env={})
    assert not config.sending.search.enabled  # --find-max turns it on
    assert (config.sending.search.step_duration, config.sending.search.hold) == (5, 15)
    assert config.input.template_directory == "./generated-small" and config.input.prefix == "small"
    # The example's search, shortened, against a backend refusing above 5,000/s.
    quick = config.with_overrides({"input.directory": str(template_dir), "input.prefix": "telemetry",
                                   "sending.search.step_duration": 2, "sending.search.cooldown": 0.3,
                                   "sending.search.hold": 2, "sending.search.min_rate": 1000})
    with Sink(capacity=5_000) as sink:
        report = Sender(quick.with_overrides({"otlp.endpoint": sink.endpoint}), write=lambda line: None).find_max()
    assert report.found and report.max_sustainable_eps == pytest.approx(5_000, rel=0.15)
