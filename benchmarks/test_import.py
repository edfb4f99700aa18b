"""`telegen import` speed: the benchmark templates (3,000 traces, 300 metrics,
30,000 log records) written as a Collector file export would hold them
(OTLP JSON lines, and 4-byte big-endian framed protobuf), then imported:
events per second and capture MB per second, per format. Import is a
one-off step (pure Python over the official protobuf classes); the figure
says how long a capture of a given size takes, not a send-path rate.
"""
from __future__ import annotations

import time

import pytest

from telegen.importing import import_captures
from telegen.templates import SIGNALS, to_otlp_json


@pytest.fixture(scope="module")
def captures(templates, tmp_path_factory):
    directory = tmp_path_factory.mktemp("captures")
    for signal in SIGNALS:
        records = templates.records(signal)
        (directory / f"{signal}.json").write_text("".join(to_otlp_json(signal, r) + "\n" for r in records))
        (directory / f"{signal}.proto").write_bytes(b"".join(len(r).to_bytes(4, "big") + r for r in records))
    return directory


@pytest.mark.parametrize("fmt", ["proto", "json"])
def test_import_speed(benchmark, captures, tmp_path, fmt):
    files = [captures / f"{signal}.{fmt}" for signal in SIGNALS]
    size = sum(f.stat().st_size for f in files)

    def once():
        started = time.perf_counter()
        result = import_captures(files, tmp_path / f"out-{time.perf_counter_ns()}")
        return result, time.perf_counter() - started

    result, seconds = benchmark.pedantic(once, rounds=1)
    counts = result.normalized.counts
    events = counts["spans"] + counts["data_points"] + counts["logs"]
    benchmark.extra_info.update(kind="import", format=fmt, events=events, seconds=seconds,
                                events_per_second=events / seconds, mb_per_second=size / 1e6 / seconds)
    print(f"\nimport {fmt:5s}: {events:,} events ({size / 1e6:.1f} MB) in {seconds:.2f} s: "
          f"{events / seconds:,.0f} events/s, {size / 1e6 / seconds:.1f} MB/s")
    assert counts["traces"] == len({r for r in result.normalized.traces}) > 0
