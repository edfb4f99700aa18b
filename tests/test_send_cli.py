"""`telegen send`, `telegen.Sender` and `telegen demo` as a user runs them."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from conftest import Lines, eventually, settled, small_config

import telegen
from telegen.sink import Sink, SinkFaults


def sender_yaml(path, template_dir, extra: str = "", multiplier: int = 2) -> None:
    path.write_text(f"""
input: {{directory: "{template_dir}"}}
otlp: {{endpoint: "localhost:1", headers: {{x-honeycomb-team: "${{TEST_API_KEY}}"}}}}
sending:
  rate_limit: {{events_per_second: 0}}
  batch_size: {{traces: 10, metrics: 100, logs: 100}}
  concurrency: 4
  duration: "20s"
  multiplier: {multiplier}
  stats_interval: 1
  retry: {{max_attempts: 2, initial_backoff: 0.05, max_backoff: 0.1}}
{extra}""")


def send(*args: str, env_key: str = "s3cr3t-api-key", timeout: float = 60,
         env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os
    env = dict(os.environ, TEST_API_KEY=env_key, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "telegen", "send", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def summary_delivered(stdout: str) -> dict[str, int]:
    """Events delivered per signal, read from the summary (the lines after
    "Sent for"; progress lines above it say "delivered" too)."""
    summary = stdout[stdout.index("Sent for"):].splitlines()
    return {line.split()[0]: int(line.split()[1].replace(",", "")) for line in summary
            if line.split()[:1] in (["traces"], ["metrics"], ["logs"]) and "delivered" in line}


def test_sender_api_against_the_sink(template_dir):
    with Sink() as sink:
        report = telegen.Sender({
            "input": {"directory": str(template_dir)},
            "otlp": {"endpoint": sink.endpoint, "insecure": True},
            "sending": {"multiplier": 2, "rate_limit": {"events_per_second": 0}},
        }, write=lambda line: None).run()
        stats = settled(sink)
    counts = telegen.load(template_dir).counts
    assert report.signals["traces"].delivered == stats.traces.events == 2 * counts["spans"]
    assert report.signals["metrics"].delivered == stats.metrics.events == 2 * counts["series"]
    assert report.signals["logs"].delivered == stats.logs.events == 2 * counts["logs"]


def test_send_cli_reports_exact_counts_and_writes_json(template_dir, tmp_path):
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir)
    out = tmp_path / "report.json"
    with Sink() as sink:
        result = send("--config", str(config), "--endpoint", sink.endpoint, "--insecure", "--stats-json", str(out))
        stats = settled(sink)
    assert result.returncode == 0, result.stderr
    assert "Loaded 60 trace templates" in result.stdout and "Loaded 300 log templates" in result.stdout
    report = json.loads(out.read_text())
    for signal_name in ("traces", "metrics", "logs"):
        assert report["signals"][signal_name]["delivered"] == stats.signals()[signal_name].events > 0
    assert "s3cr3t-api-key" not in result.stdout + result.stderr + out.read_text()


def test_failures_are_counted_and_secrets_never_printed(template_dir, tmp_path):
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir)
    with Sink(faults=SinkFaults(error_code="UNAUTHENTICATED")) as sink:
        result = send("--config", str(config), "--endpoint", sink.endpoint, "--insecure")
    # Endpoint errors never stop a run early, but a run that delivered nothing failed.
    assert result.returncode == 1, result.stderr
    output = result.stdout + result.stderr
    assert "UNAUTHENTICATED" in output and "before any request succeeded" in output
    assert "Sent for" in result.stdout, "the summary comes first"
    for signal_name in ("traces", "metrics", "logs"):
        assert f"telegen: run failed: {signal_name}: none of " in result.stderr
    assert "s3cr3t-api-key" not in output


def test_a_signal_that_gets_nothing_through_fails_the_run(template_dir, tmp_path):
    """Traces and metrics reach the sink; logs go to a closed port."""
    from telegen.sink import free_port
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir, multiplier=1)
    with Sink() as sink:
        result = send("--config", str(config), "--endpoint", sink.endpoint, "--insecure", env_extra={
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
        stats = settled(sink)
    assert result.returncode == 1, result.stderr
    assert stats.traces.events > 0 and stats.metrics.events > 0 and stats.logs.events == 0
    assert "telegen: run failed: logs: none of " in result.stderr
    assert "run failed: traces" not in result.stderr and "run failed: metrics" not in result.stderr


def test_tls_against_a_plaintext_port_fails_the_run(template_dir, tmp_path):
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir, multiplier=1)
    with Sink() as sink:
        result = send("--config", str(config), "--endpoint", sink.endpoint)  # TLS: no --insecure
    assert result.returncode == 1, result.stderr
    output = result.stdout + result.stderr
    assert "before any request succeeded" in output
    # One telegen line says what it means; grpc's own log lines stay out of the terminal.
    assert "TLS handshake failed: the endpoint may be plaintext; use --insecure" in output
    assert "ssl_transport_security" not in output and "WRONG_VERSION_NUMBER: Invalid" not in output.split("error:")[0]


def test_ctrl_c_stops_gracefully_with_a_summary(template_dir, tmp_path):
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir, "timestamps: {jitter_ms: 10}\n", multiplier=0)
    with Sink() as sink:
        import os
        env = dict(os.environ, TEST_API_KEY="k")
        process = subprocess.Popen([sys.executable, "-m", "telegen", "send", "--config", str(config), "--endpoint",
                                    sink.endpoint, "--insecure", "--duration", "0", "--rate", "20000"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        eventually(lambda: sum(s.events for s in sink.stats().signals().values()) > 0, 60, "the first events")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
        received = settled(sink)
    assert process.returncode == 130, stderr
    assert "(interrupted)" in stdout and "delivered" in stdout
    delivered = sum(summary_delivered(stdout).values())
    assert delivered == received.traces.events + received.metrics.events + received.logs.events > 0


def test_user_errors_exit_2(template_dir, tmp_path):
    config = tmp_path / "sender.yaml"
    config.write_text("input: {traces: missing.pb}\nsending: {concurrency: 0}\n")
    result = send("--config", str(config))
    assert result.returncode == 2 and "sending.concurrency: 0" in result.stderr
    config.write_text(f"input: {{traces: {tmp_path / 'missing.pb'}}}\n")
    result = send("--config", str(config), "--insecure")
    assert result.returncode == 2 and "missing.pb" in result.stderr and "Traceback" not in result.stderr
    truncated = tmp_path / "t.pb"
    truncated.write_bytes((template_dir / "telemetry-traces.pb").read_bytes()[:-7])
    config.write_text(f"input: {{traces: {truncated}}}\n")
    result = send("--config", str(config), "--insecure")
    assert result.returncode == 2 and "byte offset" in result.stderr


@pytest.mark.parametrize("flags, message", [
    (["--duration", "10x"], "telegen: error: --duration: '10x' is invalid: expected a duration >= 0 such as 30s"),
    (["--processes", "0"], "telegen: error: --processes: 0 is invalid: expected an integer >= 1"),
    (["--rate", "-5"], "telegen: error: --rate: -5 is invalid: expected an integer >= 0"),
    (["--endpoint", "a b:1"], "telegen: error: --endpoint: 'a b:1' is invalid: expected host:port or a URL"),
])
def test_a_bad_flag_is_named_not_the_config_file(template_dir, tmp_path, flags, message):
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir)
    result = send("--config", str(config), *flags)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message) and str(config) not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_flag_contradicting_the_file_is_named(template_dir, tmp_path):
    config = tmp_path / "sender.yaml"
    config.write_text("sending: {stages: [{duration: 5s, events_per_second: 100}]}\n")
    result = send("--config", str(config), "--duration", "10s")
    assert result.returncode == 2
    assert result.stderr.startswith("telegen: error: --duration: '10s' is invalid: expected no duration with "
                                    "sending.stages")


@pytest.mark.parametrize("argv, first", [
    (["send", "--config", "x.yaml", "--rate", "abc"], "telegen send: error: argument --rate: invalid int value: 'abc'"),
    (["send", "--config", "x.yaml", "--bogus"], "telegen: error: unrecognized arguments: --bogus"),
    (["send"], "telegen send: error: the following arguments are required: --config"),
    (["sned"], "telegen: error: argument COMMAND: invalid choice: 'sned'"),
])
def test_usage_errors_are_one_line_and_a_hint(argv, first):
    result = subprocess.run([sys.executable, "-m", "telegen", *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(first), result.stderr
    assert lines[1].startswith("hint: ") and "--help" in lines[1]


def test_a_config_warning_is_one_line(template_dir, tmp_path):
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir, "")
    config.write_text(config.read_text().replace(f'input: {{directory: "{template_dir}"}}',
                                                 f'input: {{directory: "{template_dir}", logs: null}}'))
    with Sink() as sink:
        result = send("--config", str(config), "--endpoint", sink.endpoint, "--insecure", "--duration", "1s")
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warning == ["telegen: warning: input.logs: null now means the default file in input.directory "
                       "(telemetry-logs.pb), not 'off': write `logs: false` to turn the signal off, or leave the "
                       "key out"]
    # ... and the signal is sent, from the directory's file.
    assert summary_delivered(result.stdout)["logs"] > 0


def test_telemetry_sender_wrapper_and_demo(template_dir, tmp_path, capsys):
    from telegen.cli import main, telemetry_sender_main
    assert telemetry_sender_main(["--config", str(tmp_path / "none.yaml")]) == 2
    assert "telemetry-sender: error:" in capsys.readouterr().err
    assert main(["demo", "--seconds", "1.5"]) == 0
    out = capsys.readouterr().out
    assert out.count("match") == 3 and "MISMATCH" not in out


def test_second_ctrl_c_exits_at_once(template_dir, tmp_path):
    """The first Ctrl-C drains in-flight requests (slow here: the sink holds
    every request for a minute); the second leaves at once with status 130,
    without waiting for them and so without a summary."""
    import os
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir, multiplier=0)
    with Sink(faults=SinkFaults(delay_ms=60_000)) as sink:
        process = subprocess.Popen([sys.executable, "-m", "telegen", "send", "--config", str(config), "--endpoint",
                                    sink.endpoint, "--insecure", "--duration", "0"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=dict(os.environ, TEST_API_KEY="k"))
        stdout, stderr = Lines(process.stdout), Lines(process.stderr)
        stdout.wait_for("Sending")
        # The first progress line: requests are on the wire by then (a Ctrl-C
        # before the first leaves nothing to drain, and the run ends at once).
        stdout.wait_for(" req ")
        process.send_signal(signal.SIGINT)
        stderr.wait_for("Ctrl-C again to exit at once")
        assert process.poll() is None, "still draining after the first Ctrl-C"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        errors, output = stderr.rest(), stdout.rest()
    assert "interrupted again, exiting now" in errors and "Traceback" not in errors
    assert "Sent for" not in output, "it left before the drain, which would end in the summary"


def test_a_directory_with_another_prefix_names_it(tmp_path):
    telegen.generate(small_config()).save(tmp_path / "t", prefix="small")
    config = tmp_path / "send.yaml"
    config.write_text(f"input: {{directory: {tmp_path / 't'}}}\n")
    result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{tmp_path / 't'} has no telemetry-traces.pb, telemetry-metrics.pb, telemetry-logs.pb but has " \
           "templates with prefix small: set input.prefix: small" in result.stderr


def failing_yaml(path, template_dir, extra: str = "", logs: bool = True) -> None:
    """A config as a user writes it: the default retry policy (1 s back-off,
    then 2, 4, 8), progress every second, rate limited."""
    path.write_text(f"""
input: {{directory: "{template_dir}"{"" if logs else ", logs: false"}}}
sending: {{rate_limit: {{events_per_second: 5000}}, stats_interval: 1}}
{extra}""")


def test_grpc_to_an_http_port_tells_the_truth(template_dir, tmp_path):
    """The run the issue reported, against a real HTTP/1-only receiver: it
    ends at its duration though every request fails and is retried, progress
    says "0 delivered" (never "% done"), the error says to try
    --protocol http, once, the startup line names only the signals sent, and
    the summary ends on the loss."""
    from http_receiver import HttpRecorder, serve_http
    config, stats = tmp_path / "sender.yaml", tmp_path / "stats.json"
    # Logs off; their own endpoint must not show in the startup line.
    failing_yaml(config, template_dir, "otlp: {logs: {endpoint: logs.example:4317}}", logs=False)
    server, port = serve_http(HttpRecorder())
    try:
        result = send("--config", str(config), "--endpoint", f"127.0.0.1:{port}", "--insecure", "--duration", "3s",
                      "--stats-json", str(stats))
    finally:
        server.shutdown()
    assert result.returncode == 1, result.stderr
    report = json.loads(stats.read_text())
    assert report["elapsed_seconds"] < 4.0, "the duration bounds a run in which every request fails"
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("Sending to")] == [
        f"Sending to 127.0.0.1:{port} (grpc, insecure, none) with 1 process(es) x 50 requests in flight, "
        "5,000 events/s, for 3 s"]
    progress = [line for line in lines if line.split()[:1] in (["traces"], ["metrics"])]
    assert progress and all(" 0 delivered " in line for line in progress), progress
    assert "% done" not in result.stdout and "waiting for the answers in flight" in result.stdout
    hints = [line for line in lines if "try --protocol http (otlp.protocol: http/protobuf)" in line]
    assert 1 <= len(hints) <= 2, lines  # one per signal at most
    # In the gRPC client's words (grpcio, as `auto` picks it uncompressed; libcurl's: "expected SETTINGS frame").
    said = "Failed parsing HTTP/2"
    assert said in hints[0]
    assert sum(said in line for line in lines if line.startswith("error:")) == len(hints), \
        "each signal's reason is said once"
    summary = result.stdout[result.stdout.index("Sent for"):result.stdout.index("Wrote ")].splitlines()
    assert summary[-2].startswith("  LOST 100 % of traces (") and summary[-1].startswith("  LOST 100 % of metrics (")
    assert "failed: UNAVAILABLE: " in summary[-1] and said in summary[-1]
    failed = result.stderr.splitlines()
    assert [line.split(":")[2].strip() for line in failed] == ["traces", "metrics"], failed
    assert all(" events delivered (" in line and said in line for line in failed)


def test_http_to_a_grpc_port_says_to_try_protocol_grpc(template_dir, tmp_path):
    config = tmp_path / "sender.yaml"
    failing_yaml(config, template_dir)
    with Sink() as sink:
        result = send("--config", str(config), "--endpoint", sink.endpoint, "--insecure", "--protocol", "http",
                      "--duration", "1s")
    assert result.returncode == 1, result.stderr
    assert "try --protocol grpc (otlp.protocol: grpc)" in result.stdout, result.stdout
