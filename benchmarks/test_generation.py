"""Generation speed and memory for the full example config (issue target:
<= 60 s and <= 1.5 GB peak RSS on a 2-core machine).

Run with `make bench`; the figures land in pytest-benchmark's report
(extra_info) and are printed. Generation runs in a child process so its peak
RSS is measured alone (os.wait4 reports the child's own rusage).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FULL_CONFIG = ROOT / "examples" / "generator-config.yaml"
TARGET_SECONDS = 60.0
TARGET_RSS_BYTES = 1.5e9


def generate_in_child(config: Path) -> dict:
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "generate_once.py"), str(config)],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, out
    result = json.loads(out)
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024  # Linux reports KiB
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


def test_generate_full_example_config(benchmark):
    result = benchmark.pedantic(generate_in_child, args=(FULL_CONFIG,), rounds=1, iterations=1)
    counts, seconds = result["counts"], result["signal_seconds"]
    rates = {
        "spans_per_s": counts["spans"] / seconds["traces"],
        "series_per_s": counts["series"] / seconds["metrics"],
        "logs_per_s": counts["logs"] / seconds["logs"],
    }
    benchmark.extra_info.update(result, **rates)
    print(f"\nfull example config: generate {result['generate_seconds']:.1f} s + save {result['save_seconds']:.1f} s, "
          f"peak RSS {result['peak_rss_bytes'] / 1e6:.0f} MB, {result['bytes_written'] / 1e6:.0f} MB written")
    print(f"  traces  {counts['spans']} spans in {seconds['traces']:.1f} s = {rates['spans_per_s']:,.0f} spans/s")
    print(f"  metrics {counts['series']} series in {seconds['metrics']:.1f} s = {rates['series_per_s']:,.0f} series/s")
    print(f"  logs    {counts['logs']} records in {seconds['logs']:.1f} s = {rates['logs_per_s']:,.0f} logs/s")
    assert result["generate_seconds"] + result["save_seconds"] <= TARGET_SECONDS
    assert result["peak_rss_bytes"] <= TARGET_RSS_BYTES
