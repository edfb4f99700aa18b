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

import pytest
import test_gzip
import test_telemetrygen
from conftest import BATCH_SIZES, ROUNDS, median_of
from test_gzip import send_for

from telegen.send.transport import GRPC, HTTP_PROTOBUF

RATES = {"none": 1_000_000, "gzip": 100_000}
CARRIERS = {"http": (HTTP_PROTOBUF, "grpcio"), "grpcio": (GRPC, "grpcio"), "curl": (GRPC, "curl")}


sink = test_gzip.sink  # the sink in its own process, with gRPC and OTLP/HTTP
template_dir = test_telemetrygen.template_dir  # the benchmark templates, saved once


def send_with(loaded, sink, signal: str, carrier: str, compression: str) -> dict:
    protocol, client = CARRIERS[carrier]
    return send_for(loaded, sink, signal, compression, rate=RATES[compression], protocol=protocol, grpc_client=client)


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


@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_grpc_clients_unbounded_in_one_process(benchmark, template_dir, tmp_path, signal):
    """Uncompressed gRPC as fast as one `telegen send` process goes (the
    telemetrygen benchmark's telegen run, a fresh sink each), grpcio against
    libcurl, alternating: events/s and the sender's CPU per million events
    (start-up and load included). Why `auto` keeps grpcio uncompressed."""
    runs: dict[str, list[dict]] = {"grpcio": [], "curl": []}

    def one(client: str) -> dict:
        def send(endpoint: str) -> dict:
            return test_telemetrygen.telegen_run(template_dir, signal, "none", endpoint, tmp_path, grpc_client=client)
        return test_telemetrygen.figures(test_telemetrygen.with_sink(tmp_path, send), signal)

    def alternate():
        for _ in range(ROUNDS):
            for client in runs:
                runs[client].append(one(client))

    benchmark.pedantic(alternate, rounds=1)
    results = {client: median_of(values) for client, values in runs.items()}
    ratio = results["grpcio"]["events_per_second"] / results["curl"]["events_per_second"]
    benchmark.extra_info.update(kind="grpc_clients_unbounded", signal=signal, ratio=ratio, rounds=ROUNDS,
                                **{client: r for client, r in results.items()})
    print(f"\n{signal:8s} unbounded, one process: " + "  ".join(
        f"{client} {r['events_per_second']:,.0f}/s ({r['cpu_s_per_million']:.2f} CPU-s/M)"
        for client, r in results.items()) + f"  grpcio / libcurl x{ratio:.2f} events/s")
