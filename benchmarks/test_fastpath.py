"""The compiled kernel on one core, on realistic batches built by the sender's
own batch assembly: scan (bytes/s) and patch, copy included (events/s), next
to a plain copy of the same bytes so the ratio shows what patching costs
beyond moving memory. Issue target: patch >= 50 million spans/s on one core.
"""
from __future__ import annotations

import pytest

import telegen
from telegen import _fastpath
from telegen.generate.config import (
    GeneratorConfig,
    HighSpanTracesConfig,
    LogsConfig,
    MetricsConfig,
    SpansConfig,
    TracesConfig,
)
from telegen.send.load.batches import build_batches

NOW = 1_800_000_000_000_000_000
# The seed's batch sizes: 100 traces, 1000 points, 1000 log records.
BATCH_SIZES = {"traces": 100, "metrics": 1000, "logs": 1000}
UNITS = {"traces": "spans", "metrics": "data points", "logs": "log records"}


@pytest.fixture(scope="module")
def batches():
    templates = telegen.generate(GeneratorConfig(
        seed=3,
        traces=TracesConfig(count=300, spans=SpansConfig(high_span_traces=HighSpanTracesConfig(enabled=False))),
        metrics=MetricsConfig(metric_count=30),
        logs=LogsConfig(count=3000),
    ))
    return {s: build_batches(s, templates.records(s), BATCH_SIZES[s], 4 * 2**20).batches[0]
            for s in BATCH_SIZES}


@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_patch(benchmark, batches, signal):
    batch = batches[signal]
    benchmark(_fastpath.patch, batch.plan, batch.data, NOW, 10**9, 0, NOW - 10**12, 5)
    per_second = batch.events / benchmark.stats.stats.mean
    benchmark.extra_info.update(events=batch.events, bytes=len(batch.data), events_per_second=per_second,
                                bytes_per_second=len(batch.data) / benchmark.stats.stats.mean)
    print(f"\npatch {signal}: {batch.events} {UNITS[signal]}, {len(batch.data) / 1e3:.0f} KB -> "
          f"{per_second / 1e6:.1f} M {UNITS[signal]}/s, "
          f"{len(batch.data) / benchmark.stats.stats.mean / 1e9:.1f} GB/s")


@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_copy_only(benchmark, batches, signal):
    """The floor under patch: one new bytes object with the same contents."""
    data = batches[signal].data
    benchmark(bytes, memoryview(data))
    benchmark.extra_info.update(bytes_per_second=len(data) / benchmark.stats.stats.mean)


@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_scan(benchmark, batches, signal):
    data = batches[signal].data
    benchmark(_fastpath.scan, signal, data)
    benchmark.extra_info.update(bytes_per_second=len(data) / benchmark.stats.stats.mean)
    print(f"\nscan {signal}: {len(data) / benchmark.stats.stats.mean / 1e6:.0f} MB/s")
