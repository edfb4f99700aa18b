"""Seed-scale loading: the full example config's templates (~825 MB).

- load time of one sender, in memory and from the load cache (cold: built and
  saved; warm: mapped), each in a fresh process, medians of 3;
- RSS of one sender after loading and one patch of every batch;
- two sharded `telegen send` processes running at once against one sink, with
  and without a shared cache directory: their RSS and PSS (proportional set
  size: shared pages split between the processes that map them) sampled
  every second.

Issue targets: load <= 5 s; sender RSS, after loading and at its peak while
loading (what a pod is sized for), <= 1.3 x the template bytes + 100 MB;
two senders on one machine share one copy of the batches (total PSS with a
shared cache well under two copies).
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from load_once import memory

from telegen.sink import SinkProcess

ROOT = Path(__file__).resolve().parent.parent
FULL_CONFIG = ROOT / "examples" / "generator-config.yaml"
TARGET_LOAD_SECONDS = 5.0
RUNS = 3
SEND_SECONDS = 15
FLEET_RATE = 400_000  # events/s over both senders: a steady load, far below either's ceiling


@pytest.fixture(scope="module")
def full_templates(tmp_path_factory):
    directory = tmp_path_factory.mktemp("full")
    subprocess.run([sys.executable, "-m", "telegen", "generate", "--config", str(FULL_CONFIG), "--output-dir",
                    str(directory)], check=True, capture_output=True)
    return directory


def load_in_child(directory: Path, cache_dir: Path | None = None) -> dict:
    command = [sys.executable, str(ROOT / "benchmarks" / "load_once.py"), str(directory)]
    if cache_dir is not None:
        command.append(str(cache_dir))
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def median_run(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def test_load_full_example(benchmark, full_templates, tmp_path):
    def measure() -> dict:
        in_memory = median_run([load_in_child(full_templates) for _ in range(RUNS)])
        colds, warms = [], []
        for run in range(RUNS):
            cache = tmp_path / f"cache-{run}"
            colds.append(load_in_child(full_templates, cache))
            warms.append(load_in_child(full_templates, cache))
            shutil.rmtree(cache)
        return {"in_memory": in_memory, "cache_cold": median_run(colds), "cache_warm": median_run(warms)}

    result = benchmark.pedantic(measure, rounds=1)
    template_bytes = result["in_memory"]["template_bytes"]
    bound = 1.3 * template_bytes + 100e6
    benchmark.extra_info.update(kind="loading", template_bytes=template_bytes, rss_bound=bound, runs=RUNS, **result)
    print(f"\nfull example templates {template_bytes / 1e6:.0f} MB, medians of {RUNS} fresh processes:")
    for name, run in result.items():
        print(f"  {name:10s} load {run['load_seconds']:5.2f} s  RSS {run['rss'] / 1e6:6.0f} MB  "
              f"peak {run['peak_rss'] / 1e6:6.0f} MB  anonymous {run['anonymous'] / 1e6:5.0f} MB  "
              f"(RSS bound {bound / 1e6:.0f} MB)")
    assert result["in_memory"]["load_seconds"] <= TARGET_LOAD_SECONDS
    assert result["cache_warm"]["load_seconds"] <= TARGET_LOAD_SECONDS
    assert max(run["rss"] for run in result.values()) <= bound
    assert max(run["peak_rss"] for run in result.values()) <= bound


def run_two_senders(directory: Path, tmp_path: Path, cache_dir: Path | None) -> dict:
    config = tmp_path / "sender.yaml"
    cache = f", cache_dir: \"{cache_dir}\"" if cache_dir else ""
    with SinkProcess() as sink:
        config.write_text(f"""
input: {{directory: "{directory}"{cache}}}
otlp: {{endpoint: "{sink.endpoint}", insecure: true}}
sending: {{rate_limit: {{events_per_second: {FLEET_RATE}}}, duration: "{SEND_SECONDS}s", multiplier: 0,
          concurrency: 16, stats_interval: 3600}}
""")
        senders = [subprocess.Popen([sys.executable, "-m", "telegen", "send", "--config", str(config),
                                     "--shard", f"{i}/2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True) for i in range(2)]
        samples = []
        deadline = time.monotonic() + SEND_SECONDS + 120
        while any(s.poll() is None for s in senders) and time.monotonic() < deadline:
            time.sleep(1.0)
            try:
                samples.append([memory(s.pid) for s in senders])
            except (FileNotFoundError, ProcessLookupError):
                break
        outputs = [s.communicate(timeout=60)[0] for s in senders]
    assert all(s.returncode == 0 for s in senders), outputs
    # The last full samples are the steady state: loaded, sending.
    steady = samples[-max(3, len(samples) // 3):-1] or samples
    return {"rss_each": max(max(m["rss"] for m in sample) for sample in steady),
            "rss_total": max(sum(m["rss"] for m in sample) for sample in steady),
            "pss_total": max(sum(m["pss"] for m in sample) for sample in steady),
            "anonymous_total": max(sum(m["anonymous"] for m in sample) for sample in steady)}


def test_two_senders_full_example(benchmark, full_templates, tmp_path):
    def measure() -> dict:
        alone = run_two_senders(full_templates, tmp_path, None)
        shared = run_two_senders(full_templates, tmp_path, tmp_path / "cache")
        return {"separate": alone, "shared_cache": shared}

    result = benchmark.pedantic(measure, rounds=1)
    template_bytes = sum(p.stat().st_size for p in full_templates.glob("*.pb"))
    benchmark.extra_info.update(kind="two_senders", template_bytes=template_bytes, seconds=SEND_SECONDS,
                                rate=FLEET_RATE, **result)
    print(f"\ntwo sharded senders, full example templates ({template_bytes / 1e6:.0f} MB), "
          f"{FLEET_RATE:,} events/s together for {SEND_SECONDS} s:")
    for name, run in result.items():
        print(f"  {name:12s} RSS each {run['rss_each'] / 1e6:5.0f} MB, RSS total {run['rss_total'] / 1e6:5.0f} MB, "
              f"PSS total {run['pss_total'] / 1e6:5.0f} MB, anonymous total {run['anonymous_total'] / 1e6:5.0f} MB")
    assert result["shared_cache"]["pss_total"] < 0.75 * result["separate"]["pss_total"]
    assert result["shared_cache"]["rss_each"] <= 1.3 * template_bytes + 100e6
