"""gRPC on libcurl beside grpcio and the OTLP/HTTP carrier, per signal, on the
benchmark templates at the seed's batch sizes (conftest), against the sink in
its own process on the same cores.

The sender's CPU per million events at an equal rate every carrier holds
(the methods alternate, medians of ROUNDS):
- uncompressed, at 1,000,000 events/s: OTLP/HTTP, gRPC on grpcio, gRPC on
  libcurl. Issue target: gRPC on libcurl <= 1.2x OTLP/HTTP (1.1x per signal
  the aim).
- gzip, at 100,000 events/s (under grpcio's zlib ceiling here): OTLP/HTTP
  with patchable gzip, gRPC on grpcio (its zlib on every request), gRPC on
  libcurl with patchable gzip. Issue target: <= 1.3x OTLP/HTTP with
  patchable gzip.
"""
from __future__ import annotations

import resource

import pytest
from conftest import BATCH_SIZES, CONCURRENCY, ROUNDS, SECONDS, median_of
from sink_ceiling import proc_cpu

from telegen.send.engine import SendSettings, run
from telegen.send.transport import GRPC, HTTP_PROTOBUF, Target
from telegen.sink import SinkProcess

RATES = {"none": 1_000_000, "gzip": 100_000}
CARRIERS = {"http": (HTTP_PROTOBUF, "grpcio"), "grpcio": (GRPC, "grpcio"), "curl": (GRPC, "curl")}


@pytest.fixture(scope="module")
def sink():
    with SinkProcess(http=True) as process:
        yield process


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def send_with(loaded, sink, signal: str, carrier: str, compression: str) -> dict:
    protocol, client = CARRIERS[carrier]
    endpoint = f"{sink.http_endpoint}/v1/{signal}" if protocol == HTTP_PROTOBUF else sink.endpoint
    target = Target(endpoint=endpoint, insecure=True, compression=compression, protocol=protocol, grpc_client=client)
    settings = SendSettings(targets={signal: target}, concurrency=CONCURRENCY, duration=SECONDS,
                            stats_interval=3600, events_per_second=RATES[compression])
    pid = sink.process.pid
    before, sink_before = _cpu(), proc_cpu(pid)
    report = run([loaded[signal]], settings, write=lambda line: None)
    cpu, sink_cpu = _cpu() - before, proc_cpu(pid) - sink_before
    r = report.signals[signal]
    assert r.failed == 0 and r.delivered == r.sent > 0
    return {"events_per_second": r.delivered / report.elapsed, "cpu_s_per_million": cpu / (r.delivered / 1e6),
            "sink_cpu_s_per_million": sink_cpu / (r.delivered / 1e6), "wire_bytes_per_event": r.bytes / r.sent}


@pytest.mark.parametrize("compression", list(RATES))
@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_grpc_carriers_at_an_equal_rate(benchmark, loaded, sink, signal, compression):
    runs: dict[str, list[dict]] = {name: [] for name in CARRIERS}

    def alternate():
        for _ in range(ROUNDS):
            for name in CARRIERS:
                runs[name].append(send_with(loaded, sink, signal, name, compression))

    benchmark.pedantic(alternate, rounds=1)
    results = {name: median_of(values) for name, values in runs.items()}
    ratio = results["curl"]["cpu_s_per_million"] / results["http"]["cpu_s_per_million"]
    grpcio = results["grpcio"]["cpu_s_per_million"] / results["http"]["cpu_s_per_million"]
    benchmark.extra_info.update(kind="grpc_carriers", signal=signal, compression=compression,
                                rate=RATES[compression], ratio=1 / ratio, rounds=ROUNDS, **results)
    print(f"\n{signal:8s} {compression:4s} at {RATES[compression]:,}/s, sender CPU-s per M events: " + "  ".join(
        f"{name} {r['cpu_s_per_million']:.3f} ({r['events_per_second']:,.0f}/s, {r['wire_bytes_per_event']:.0f} B)"
        for name, r in results.items())
        + f"  gRPC on libcurl / HTTP x{ratio:.2f}, grpcio / HTTP x{grpcio:.2f}")
