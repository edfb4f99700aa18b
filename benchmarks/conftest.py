"""Shared by the benchmark modules: the templates, their batches, and a
`telegen sink` in its own process (so it never shares the sender's GIL)."""
from __future__ import annotations

import os
import statistics

import pytest

import telegen
from telegen.generate.config import (
    GeneratorConfig,
    HighSpanTracesConfig,
    LogsConfig,
    MetricsConfig,
    SpansConfig,
    TracesConfig,
)
from telegen.send.load.batches import build_batches
from telegen.send.load.compression import with_gzip
from telegen.sink import SinkProcess

# TELEGEN_BENCH_QUICK=1 (make bench-quick) shortens every timed run.
QUICK = os.environ.get("TELEGEN_BENCH_QUICK") == "1"
SECONDS = 1.0 if QUICK else 3.0
ROUNDS = 1 if QUICK else 3  # compared methods alternate; medians reported
BATCH_SIZES = {"traces": 100, "metrics": 1000, "logs": 1000}  # the seed's
CONCURRENCY = 16


@pytest.fixture(scope="session")
def templates():
    return telegen.generate(GeneratorConfig(
        seed=5,
        traces=TracesConfig(count=3000, spans=SpansConfig(high_span_traces=HighSpanTracesConfig(enabled=False))),
        metrics=MetricsConfig(metric_count=300),
        logs=LogsConfig(count=30000),
    ))


@pytest.fixture(scope="session")
def loaded(templates):
    """Each signal's batches, with their patchable gzip templates made once
    here (a run makes them when it starts; inside a timed run they would be
    counted in its CPU)."""
    return {s: with_gzip(build_batches(s, templates.records(s), BATCH_SIZES[s], 4 * 2**20)) for s in BATCH_SIZES}


@pytest.fixture(scope="session")
def sink_endpoint():
    with SinkProcess() as sink:
        yield sink.endpoint


def median_of(runs: list[dict]) -> dict:
    """Each figure's median over alternating rounds."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}
