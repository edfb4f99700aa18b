"""`telegen fleet` on this machine: a local Ray instance, senders against one
`telegen sink` process.

- events/s with 1 and 2 senders, unthrottled, 10 s (on 2 cores shared with
  the sink and Ray itself, 2 senders cannot double; a 16-core machine is
  where scaling shows);
- the driver's CPU per sender per second (polling, progress, summing);
- the fleet-wide rate held over 10 s (issue target: within 3 %).
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest
from conftest import BATCH_SIZES, CONCURRENCY, QUICK

from telegen.fleet import Fleet

pytest.importorskip("ray")
SECONDS = 3 if QUICK else 10


@pytest.fixture(scope="module")
def template_dir(templates, tmp_path_factory):
    directory = tmp_path_factory.mktemp("fleet-templates")
    templates.save(directory)
    return directory


def config_for(template_dir, endpoint: str, rate: int) -> dict:
    return {"input": {"directory": str(template_dir)}, "otlp": {"endpoint": endpoint, "insecure": True},
            "sending": {"batch_size": BATCH_SIZES, "concurrency": CONCURRENCY, "duration": SECONDS,
                        "multiplier": 0, "rate_limit": {"events_per_second": rate}, "stats_interval": 5}}


def plain_send(template_dir, endpoint: str, tmp_path) -> float:
    """The same config as one `telegen send` process, no Ray: the baseline."""
    config, stats = tmp_path / "send.yaml", tmp_path / "send.json"
    config.write_text(json.dumps(config_for(template_dir, endpoint, 0)))
    subprocess.run([sys.executable, "-m", "telegen", "send", "--config", str(config), "--stats-json", str(stats)],
                   check=True, capture_output=True)
    return json.loads(stats.read_text())["events_per_second"]


def fleet_run(template_dir, endpoint: str, senders: int, rate: int) -> dict:
    fleet = Fleet(config_for(template_dir, endpoint, rate), senders=senders, write=lambda line: None)
    before = resource.getrusage(resource.RUSAGE_SELF)
    report = fleet.run()
    after = resource.getrusage(resource.RUSAGE_SELF)
    driver_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert report.failures() == []
    return {"events_per_second": report.events_per_second, "elapsed": report.elapsed,
            "driver_cpu_per_sender_second": driver_cpu / senders / report.elapsed,
            "per_sender": [row.report.events_per_second for row in report.senders]}


@pytest.mark.parametrize("senders", [1, 2])
def test_fleet_throughput(benchmark, template_dir, sink_endpoint, senders, tmp_path):
    def measure() -> dict:
        baseline = plain_send(template_dir, sink_endpoint, tmp_path)
        return {**fleet_run(template_dir, sink_endpoint, senders, 0), "plain_send": baseline}

    result = benchmark.pedantic(measure, rounds=1)
    benchmark.extra_info.update(kind="fleet", senders=senders, **result)
    print(f"\nfleet of {senders}: {result['events_per_second']:,.0f} events/s "
          f"(senders: {', '.join(f'{r:,.0f}' for r in result['per_sender'])}); one plain `telegen send` "
          f"{result['plain_send']:,.0f}; driver CPU {1000 * result['driver_cpu_per_sender_second']:.1f} ms "
          "per sender per second")


def test_fleet_rate_limit(benchmark, template_dir, sink_endpoint):
    target = 400_000
    result = benchmark.pedantic(fleet_run, args=(template_dir, sink_endpoint, 2, target), rounds=1)
    error = result["events_per_second"] / target - 1
    benchmark.extra_info.update(kind="fleet_rate", target=target, error=error, **result)
    print(f"\nfleet of 2 at {target:,} events/s: {result['events_per_second']:,.0f} ({100 * error:+.2f} %)")
    assert abs(error) <= 0.03
