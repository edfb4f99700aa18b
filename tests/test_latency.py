"""Export latency: the histogram's bounded error and exact merging, and the
latencies a run reports (progress, summary, stats JSON) across processes,
carriers and a slowed sink."""
from __future__ import annotations

import math
import random
import threading
import time

import numpy as np
import pytest
from conftest import loaded_batches
from hypothesis import given, settings
from hypothesis import strategies as st

import telegen
from telegen.fleet.report import FleetReport, SenderRow
from telegen.send.engine import SendSettings, run
from telegen.send.load.batches import build_batches
from telegen.send.report import SendReport, SignalReport, latency
from telegen.send.report.latency import Histogram
from telegen.send.transport import HTTP_PROTOBUF, Target
from telegen.sink import SinkFaults

SIGNALS = ("traces", "metrics", "logs")


def histogram_of(values) -> Histogram:
    slots = np.zeros(latency.SLOTS, dtype=np.int64)
    for v in values:
        latency.record(slots, 0, v)
    return Histogram.from_slots(slots)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 3000), scale=st.floats(1e-5, 1.0))
def test_percentiles_are_within_half_a_percent_of_the_exact_ones(seed, n, scale):
    """From 1 us to ~1,000 s (a request timeout is far below that)."""
    rnd = random.Random(seed)
    values = [min(900.0, scale * rnd.lognormvariate(0, 1.5) + 2e-6) for _ in range(n)]
    h = histogram_of(values)
    ordered = sorted(values)
    assert h.count == n
    assert h.max_ns == int(ordered[-1] * 1e9)
    for _, q in latency.PERCENTILES:
        exact = ordered[max(1, math.ceil(q * n)) - 1]  # the nearest-rank percentile
        assert abs(h.quantile(q) - exact) <= 0.005 * exact + 1e-9


def test_merging_is_exact_and_intervals_subtract():
    rnd = random.Random(3)
    parts = [[rnd.expovariate(100) for _ in range(500)] for _ in range(4)]
    merged = Histogram.merged(histogram_of(p) for p in parts)
    whole = histogram_of([v for p in parts for v in p])
    assert np.array_equal(merged.counts, whole.counts) and merged.max_ns == whole.max_ns
    since = whole - histogram_of(parts[0])
    assert np.array_equal(since.counts, histogram_of([v for p in parts[1:] for v in p]).counts)
    assert Histogram.from_dict(whole.to_dict()).counts.tolist() == whole.counts.tolist()


def test_extremes_land_in_the_end_buckets():
    h = histogram_of([0.0, 1e-9, 5000.0])
    assert h.counts[0] == 2 and h.counts[-1] == 1 and h.max_ns == 5000 * 10**9
    assert Histogram().quantile(0.5) == 0.0 and latency.line(Histogram()) == "no responses"
    assert latency.line(histogram_of([0.0123])).startswith("p50 12.3 ms")


@pytest.mark.parametrize("protocol", ["grpc", HTTP_PROTOBUF])
def test_a_slowed_sink_shows_in_the_latencies_merged_over_processes(templates, protocol):
    lines: list[str] = []
    with telegen.Sink(listen_http="127.0.0.1:0", faults=SinkFaults(delay_ms=40)) as sink:
        endpoint = sink.endpoint if protocol == "grpc" else sink.http_endpoint
        targets = {s: Target(endpoint=endpoint if protocol == "grpc" else f"{endpoint}/v1/{s}", insecure=True,
                             protocol=protocol) for s in SIGNALS}
        report = run(loaded_batches(templates), SendSettings(targets=targets, concurrency=4, passes=2, processes=2,
                                                     stats_interval=0.2), lines.append)
    for signal in SIGNALS:
        s = report.signals[signal]
        request, batch = s.latency["request"], s.latency["batch"]
        assert s.delivered == s.sent > 0 and request.count == s.requests, "every request of both processes"
        assert batch.count == s.batches
        assert 0.040 <= request.quantile(0.5) < 1.0, signal
        assert batch.quantile(0.5) >= request.quantile(0.5) * 0.995
        assert request.max_ns >= 40_000_000
        summary = report.to_dict()["signals"][signal]["latency"]["request"]
        assert summary["count"] == s.requests and summary["p50_ms"] >= 40
        assert Histogram.from_dict(summary["histogram"]).count == s.requests
    assert any(line.strip().startswith("latency per request p50") for line in lines)


def test_no_delay_is_fast_and_a_fleet_merges_exactly():
    a, b = histogram_of([0.001] * 10), histogram_of([0.5] * 10)
    reports = [SendReport(elapsed=1.0, signals={"logs": SignalReport(signal="logs", sent=10, delivered=10,
                                                                     latency={"request": h, "batch": h})},
                          target_events_per_second=0, processes=1) for h in (a, b)]
    fleet = FleetReport(elapsed=1.0, target_events_per_second=0,
                        senders=[SenderRow(index=i, node="n", report=r) for i, r in enumerate(reports)])
    total = fleet.signals["logs"].latency["request"]
    assert total.count == 20 and abs(total.quantile(0.9) - 0.5) < 0.003 and abs(total.quantile(0.5) - 0.001) < 1e-5
    assert fleet.signals["logs"].delivered == 20


@pytest.mark.parametrize("protocol", ["grpc", HTTP_PROTOBUF])
def test_a_batch_takes_as_long_as_its_slowest_request_not_its_pacing(templates, protocol):
    """Per batch and per request are two populations (a batch cut into pieces
    adds one request record per piece, one batch record), so their
    percentiles may cross; per batch, the batch's latency is never below its
    requests', and the engine's pacing of its pieces is not in it."""
    from telegen.send.transport import RetryPolicy, open_transport
    from telegen.sink import Sink

    batches = build_batches("traces", templates.records("traces"), 50, 64 * 1024).batches
    multi = [b for b in batches if len(b.pieces) >= 3][:3]
    assert multi, "the templates need batches cut into several requests"
    with Sink(listen_http="127.0.0.1:0", faults=SinkFaults(delay_ms=20)) as sink:
        endpoint = sink.endpoint if protocol == "grpc" else sink.http_endpoint + "/v1/traces"
        transport = open_transport("traces", Target(endpoint=endpoint, insecure=True, protocol=protocol),
                                   RetryPolicy())
        outcomes = []
        done = threading.Event()
        paced = []

        def pace(index: int) -> None:
            paced.append(index)
            time.sleep(0.3)  # the engine waiting for the rate between pieces

        try:
            for batch in multi:
                requests = [batch.data[a:b] for a, b in batch.pieces]
                done.clear()
                transport.send(requests, batch.piece_events, lambda o: (outcomes.append(o), done.set()), pace)
                assert done.wait(30)
        finally:
            transport.close()
    assert len(paced) == sum(len(b.pieces) - 1 for b in multi)
    for batch, outcome in zip(multi, outcomes):
        assert outcome.delivered == batch.events and len(outcome.latencies) == len(batch.pieces)
        assert max(outcome.latencies) <= outcome.elapsed
        # The slowest piece, from its hand-over: the 0.3 s of pacing before each later piece stays out.
        assert outcome.elapsed < max(outcome.latencies) + 0.15
