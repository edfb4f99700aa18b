"""Shards without any engine: `telegen send --shard i/N` processes, and the
same through a Kubernetes Indexed Job's environment, against one receiver."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from conftest import Recorder, metric_series, serve, small_config

import telegen
from telegen.errors import ConfigError
from telegen.send.config import SenderConfig
from telegen.send.engine import build_schedule
from telegen.send.sender import Sender
from telegen.send.shard import SeriesCopies, parse_shard, shard_from_env

MULTIPLIER = 2  # metric_series_multiplier in these runs


def sender_yaml(path, template_dir, rate: int = 0) -> None:
    path.write_text(f"""
input: {{directory: "{template_dir}"}}
otlp: {{endpoint: "localhost:1", insecure: true}}
sending:
  rate_limit: {{events_per_second: {rate}}}
  batch_size: {{traces: 10, metrics: 100, logs: 100}}
  concurrency: 4
  multiplier: 1
  duration: 60s
  metric_series_multiplier: {MULTIPLIER}
  stats_interval: 60
""")


def run_fleet(template_dir, tmp_path, envs: list[dict[str, str]], args: list[list[str]]):
    """Start every sender at once against one recording receiver; wait for all."""
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir)
    recorder = Recorder()
    server, port = serve(recorder)
    try:
        processes = []
        for i, (env, extra) in enumerate(zip(envs, args)):
            command = [sys.executable, "-m", "telegen", "send", "--config", str(config), "--endpoint",
                       f"127.0.0.1:{port}", "--stats-json", str(tmp_path / f"sender-{i}.json"), *extra]
            processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                              env={**os.environ, **env}))
        outputs = [p.communicate(timeout=120) for p in processes]
    finally:
        server.stop(0)
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    reports = [json.loads((tmp_path / f"sender-{i}.json").read_text()) for i in range(len(processes))]
    return recorder, reports, [stdout for stdout, _ in outputs]


def check_fleet(recorder: Recorder, reports: list[dict], shards: int) -> None:
    """Exact accounting; traces, span ids and metric series all distinct across the senders."""
    counts = template_counts()
    for signal in ("traces", "metrics", "logs"):
        delivered = sum(r["signals"][signal]["delivered"] for r in reports)
        assert delivered == recorder.events(signal) > 0, signal
    spans = recorder.spans()
    assert len({s.trace_id for s in spans}) == shards * counts["traces"], "every shard's traces are new"
    assert len({s.span_id for s in spans}) == len(spans), "no span id repeats across senders"
    assert len(metric_series(recorder)) == shards * MULTIPLIER * counts["series"]


def template_counts() -> dict:
    return telegen.generate(small_config()).counts


def test_three_sharded_senders_split_the_work_without_collisions(template_dir, tmp_path):
    recorder, reports, outputs = run_fleet(template_dir, tmp_path, [{}, {}, {}],
                                           [["--shard", f"{i}/3"] for i in range(3)])
    check_fleet(recorder, reports, 3)
    for i, stdout in enumerate(outputs):
        assert f"Shard {i}/3: sending to" in stdout
        assert f"numbered {2 * i}..{2 * i + 1} of the fleet's 6" in stdout
    # Each shard's replica numbers are its own: 0-1, 2-3, 4-5.
    replicas = Counter()
    for request in recorder.requests["metrics"]:
        for rm in request.resource_metrics:
            for kv in rm.resource.attributes:
                if kv.key == "telegen.replica":
                    replicas[kv.value.string_value] += 1
    assert sorted(replicas) == ["0", "1", "2", "3", "4", "5"]


def test_indexed_job_environment(template_dir, tmp_path):
    envs = [{"JOB_COMPLETION_INDEX": str(i), "TELEGEN_SHARDS": "2"} for i in range(2)]
    recorder, reports, outputs = run_fleet(template_dir, tmp_path, envs, [[], []])
    check_fleet(recorder, reports, 2)
    assert "Shard 0/2: sending to" in outputs[0] and "Shard 1/2: sending to" in outputs[1]


def test_unsharded_multiplier_is_unchanged(template_dir, tmp_path):
    recorder, reports, _ = run_fleet(template_dir, tmp_path, [{}], [[]])
    check_fleet(recorder, reports, 1)


def test_a_shard_sends_its_share_of_the_fleet_rate(template_dir, tmp_path):
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir, rate=30_000)
    sender = Sender(SenderConfig.from_file(config, env={}, overrides={"sending.shard.index": 1,
                                                                      "sending.shard.count": 3}),
                    write=lambda line: None)
    assert sender.settings().events_per_second == pytest.approx(10_000)
    assert "Shard 1/3: sending" in sender.describe_setup()
    assert "10,000 events/s (1/3 of the fleet-wide 30,000)" in sender.describe_setup()


def test_schedule_numbers_replicas_per_shard(template_dir):
    loaded = Sender({"input": {"directory": str(template_dir)},
                     "sending": {"metric_series_multiplier": 3, "shard": {"index": 2, "count": 4}}},
                    write=lambda line: None).load()
    metrics = next(t for t in loaded if t.signal == "metrics")
    assert metrics.copies == SeriesCopies(first=6, count=3, total=12) and metrics.copies.width == 2
    numbers = Counter(item.replica for item in build_schedule(loaded) if item.signal == "metrics")
    assert sorted(numbers) == [6, 7, 8] and set(numbers.values()) == {len(metrics.batches)}
    assert {item.replica for item in build_schedule(loaded) if item.signal != "metrics"} == {-1}


@pytest.mark.parametrize(("text", "expected"), [("0/1", (0, 1)), ("3/4", (3, 4)), (" 2 / 10 ", (2, 10))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize(("text", "problem"), [("4/4", "below the count"), ("1/0", "at least 1"),
                                               ("1", "INDEX/COUNT"), ("-1/3", "INDEX/COUNT"), ("a/b", "INDEX/COUNT")])
def test_bad_shards_say_why(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_shard(text)


def test_shard_from_the_environment():
    assert shard_from_env({}) is None
    assert shard_from_env({"JOB_COMPLETION_INDEX": "3"}) is None, "an indexed job that is not a fleet"
    assert shard_from_env({"JOB_COMPLETION_INDEX": "3", "TELEGEN_SHARDS": "8"}) == (3, 8)
    assert shard_from_env({"TELEGEN_SHARD": "1/2", "JOB_COMPLETION_INDEX": "3", "TELEGEN_SHARDS": "8"}) == (1, 2)
    with pytest.raises(ConfigError, match=r"^TELEGEN_SHARD: '2/2' is invalid: the index must be below"):
        shard_from_env({"TELEGEN_SHARD": "2/2"})
    with pytest.raises(ConfigError, match=r"^TELEGEN_SHARDS: '4' needs JOB_COMPLETION_INDEX"):
        shard_from_env({"TELEGEN_SHARDS": "4"})
    with pytest.raises(ConfigError, match=r"^JOB_COMPLETION_INDEX='4' with TELEGEN_SHARDS='4' is invalid"):
        shard_from_env({"JOB_COMPLETION_INDEX": "4", "TELEGEN_SHARDS": "4"})
    assert SenderConfig.from_dict({}, env={"TELEGEN_SHARD": "2/5"}).sending.shard.index == 2


@pytest.mark.parametrize(("data", "message"), [
    ({"sending": {"shard": {"index": 3, "count": 3}}},
     "sending.shard.index: 3 is invalid: expected an integer < sending.shard.count (3): "
     "shards are numbered 0 .. count-1"),
    ({"sending": {"shard": {"count": 0}}}, "sending.shard.count: 0 is invalid: expected an integer >= 1"),
    ({"sending": {"shard": {"index": -1, "count": 2}}}, "sending.shard.index: -1 is invalid: expected an integer >= 0"),
])
def test_bad_shard_config(data, message):
    with pytest.raises(ConfigError) as error:
        SenderConfig.from_dict(data, env={})
    assert str(error.value) == message


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--shard", "3/3"], {}, "telegen: error: --shard: '3/3' is invalid: the index must be below the count"),
    (["--shard", "x"], {}, "telegen: error: --shard: 'x' is invalid: expected INDEX/COUNT"),
    ([], {"TELEGEN_SHARD": "0/0"}, "telegen: error: TELEGEN_SHARD: '0/0' is invalid: the count must be at least 1"),
])
def test_bad_shards_exit_2_with_one_line(template_dir, tmp_path, args, env, message):
    config = tmp_path / "sender.yaml"
    sender_yaml(config, template_dir)
    result = subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), *args],
                            capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
