"""benchmarks/report.py's guard: floors from the spread of unchanged runs,
and the check that fails a regression and passes noise."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from report import calibrate, check  # noqa: E402 - benchmarks/ is not a package


def runs(*values: float) -> list[dict]:
    return [{"ratios": {"telegen/x": value, "telegen/steady": 10.0}} for value in values]


def test_floors_leave_the_measured_range_below_the_lowest_run():
    floors = calibrate(runs(1.0, 1.3, 1.2))
    assert floors["telegen/x"] == 0.7  # 1.0 less the range 0.3
    assert floors["telegen/steady"] == 9.0  # no spread: at least 10 % of the median


def test_check_fails_below_a_floor_and_above_an_instruction_tolerance():
    baseline = {"floors": {"telegen/x": 0.7},
                "instructions": {"tolerance": 0.03, "kernel": {"traces": 500.0}, "send_path": {"traces": 510.0}}}
    counts = {"kernel": {"traces": 510.0}, "send_path": {"traces": 520.0}}
    assert check({"ratios": {"telegen/x": 0.71}}, baseline, counts) == []
    failures = check({"ratios": {"telegen/x": 0.69}}, baseline, {"kernel": {"traces": 520.0},
                                                                 "send_path": {"traces": 520.0}})
    assert failures == ["telegen/x: 0.69 is below its floor 0.70",
                        "instructions per event, kernel traces: 520.0 is more than 3% above the baseline 500.0"]
    assert check({"ratios": {}}, baseline) == ["telegen/x: missing from this run"]


def test_the_command_line_exits_1_on_a_regression(tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"floors": {}}))
    paths = []
    for index, value in enumerate((1.0, 1.1, 1.05)):
        path = tmp_path / f"run{index}.json"
        path.write_text(json.dumps(runs(value)[0]))
        paths.append(str(path))
    script = str(BENCHMARKS / "report.py")
    subprocess.run([sys.executable, script, "--calibrate", str(baseline), *paths], check=True, capture_output=True)
    assert json.loads(baseline.read_text())["floors"]["telegen/x"] == 0.895  # 1.0 less 10 % of the median 1.05
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(runs(0.95)[0]))
    bad.write_text(json.dumps(runs(0.85)[0]))
    passed = subprocess.run([sys.executable, script, "--check", str(good), str(baseline)], capture_output=True,
                            text=True)
    failed = subprocess.run([sys.executable, script, "--check", str(bad), str(baseline)], capture_output=True,
                            text=True)
    assert passed.returncode == 0 and "2 of 2 guarded figures within their bounds" in passed.stdout
    assert failed.returncode == 1 and "regression: telegen/x: 0.85 is below its floor" in failed.stdout


def test_gzip_benchmarks_become_guarded_ratios_and_a_table():
    from report import condense, markdown

    raw = {"benchmarks": [
        {"name": "test_patchable_gzip_size[traces]",
         "extra_info": {"kind": "gzip_size", "signal": "traces", "ratio": 0.96, "literals_per_event": 29.0,
                        "compress_mb_per_second": 90.0,
                        "bytes_per_event": {"raw": 419, "zlib1": 74.2, "zlib6": 64.9, "patchable": 77.3}}},
        {"name": "test_patchable_gzip_cpu[traces]",
         "extra_info": {"kind": "gzip_cpu", "signal": "traces", "ratio": 20.5,
                        "ns_per_event": {"patch": 30, "patch+patchable": 87, "zlib1": 1788, "zlib6": 4410}}}]}
    results = condense(raw)
    assert results["ratios"] == {"gzip/size zlib-1 over patchable traces": 0.96,
                                 "gzip/cpu zlib-1 over patchable traces": 20.5}
    table = markdown(results)
    assert "| traces | 419 | 74.2 | 64.9 | 77.3 | 1.04x | 30 | 87 | 1788 | 4410 | 20.5x | 90 MB/s |" in table


def test_zstd_benchmarks_become_the_compression_tables():
    from report import condense, markdown

    send = {name: {"events_per_second": rate, "cpu_s_per_million": cpu, "sink_cpu_s_per_million": 0.3,
                   "wire_bytes_per_event": wire}
            for name, rate, cpu, wire in (("none", 3e6, 0.25, 419), ("zlib", 3e5, 3.5, 65),
                                          ("patchable_gzip", 2e6, 0.36, 77), ("library", 1e6, 1.1, 52),
                                          ("patchable", 2.5e6, 0.28, 59))}
    raw = {"benchmarks": [
        {"name": "test_patchable_zstd_size[traces]",
         "extra_info": {"kind": "zstd_size", "signal": "traces", "ratio": 52.4 / 58.6, "gzip_ratio": 77.3 / 58.6,
                        "literals_per_event": 25.1, "compress_mb_per_second": 71.0,
                        "bytes_per_event": {"raw": 419, "zstd1": 52.4, "patchable_gzip": 77.3, "patchable": 58.6}}},
        {"name": "test_patchable_zstd_cpu[traces]",
         "extra_info": {"kind": "zstd_cpu", "signal": "traces", "ratio": 12.0,
                        "ns_per_event": {"patch": 36, "patch+patchable": 48, "patch+patchable_gzip": 99,
                                         "zstd1": 580}}},
        {"name": "test_patchable_zstd_send[traces]",
         "extra_info": {"kind": "zstd_send", "signal": "traces", "ratio": 0.9, "rate_ratio": 0.8, **send}}]}
    table = markdown(condense(raw))
    assert "| traces | 419 | 52.4 | 77.3 | 58.6 | 1.12x | 0.76x | 36 | 48 | 99 | 580 | 71 MB/s |" in table
    assert "| traces | zstd, patchable | 2,500,000 | 0.28 | 1.12x | 0.30 | 59 |" in table
    assert "| traces | gzip, zlib-6 per request | 300,000 | 3.50 | 14.00x | 0.30 | 65 |" in table
