"""OTLP/HTTP against `telegen sink --listen-http` (its own process), one run.

- Which HTTP client: the same pre-built batch bytes POSTed, same concurrency,
  in a bare loop by libcurl's multi interface (pycurl), by aiohttp's client
  and by urllib3's connection pool on threads; and by `telegen send` itself
  with each of its two candidate transports (libcurl, kept; aiohttp, in
  benchmarks/aiohttp_transport.py), driven by the engine with patching off, so
  they carry the engine's own work too. Events/s and the sender's CPU seconds per
  million events (this process, every thread); the clients alternate.
- The carriers side by side: `telegen send` unthrottled over http/protobuf
  and over gRPC, per signal, gzip off and on, alternating. Issue targets:
  HTTP >= 0.9x gRPC's events/s, and <= 1.2x its sender CPU per million.
"""
from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
import time

import pytest
from conftest import BATCH_SIZES, CONCURRENCY, ROUNDS, SECONDS, median_of

from telegen.send.engine import SendSettings, run, worker
from telegen.send.transport import GRPC, HTTP_PROTOBUF, Target
from telegen.sink import SinkProcess


@pytest.fixture(scope="module")
def sink():
    with SinkProcess(http=True) as process:
        yield process


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _result(events: int, elapsed: float, cpu: float) -> dict:
    return {"events_per_second": events / elapsed, "cpu_s_per_million": cpu / (events / 1e6)}


def _unpatched(item) -> bytes:
    return item.batch.data


@contextlib.contextmanager
def aiohttp_transport():
    """The engine with the aiohttp transport in place of the libcurl one."""
    from aiohttp_transport import AiohttpTransport

    chosen = worker.open_transport
    worker.open_transport = lambda signal, target, retry: (AiohttpTransport(signal, target, retry)
                                                          if target.protocol == HTTP_PROTOBUF
                                                          else chosen(signal, target, retry))
    try:
        yield
    finally:
        worker.open_transport = chosen


def send_for(loaded, sink, signal: str, protocol: str, compression: str = "none", patch: bool = True,
             seconds: float = SECONDS) -> dict:
    endpoint = f"{sink.http_endpoint}/v1/{signal}" if protocol == HTTP_PROTOBUF else sink.endpoint
    target = Target(endpoint=endpoint, insecure=True, compression=compression, protocol=protocol)
    settings = SendSettings(targets={signal: target}, concurrency=CONCURRENCY, duration=seconds,
                            stats_interval=3600, prepare=None if patch else _unpatched)
    before = _cpu()
    report = run([loaded[signal]], settings, write=lambda line: None)
    cpu = _cpu() - before
    r = report.signals[signal]
    assert r.failed == 0 and r.delivered == r.sent > 0
    return _result(r.delivered, report.elapsed, cpu)


def _bodies(loaded, signal: str) -> list[tuple[bytes, int]]:
    return [(batch.data, batch.events) for batch in loaded[signal].batches if len(batch.pieces) == 1]


def post_with_aiohttp(url: str, bodies: list[tuple[bytes, int]], seconds: float = SECONDS) -> dict:
    import aiohttp

    async def main() -> int:
        events = 0
        deadline = time.monotonic() + seconds
        headers = {"Content-Type": "application/x-protobuf"}
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def worker(offset: int) -> None:
                nonlocal events
                k = offset
                while time.monotonic() < deadline:
                    body, n = bodies[k % len(bodies)]
                    k += CONCURRENCY
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        assert response.status == 200
                    events += n
            await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
        return events

    before, started = _cpu(), time.monotonic()
    events = asyncio.run(main())
    return _result(events, time.monotonic() - started, _cpu() - before)


def post_with_pycurl(url: str, bodies: list[tuple[bytes, int]], seconds: float = SECONDS) -> dict:
    """libcurl's multi interface on one thread, as bare as the aiohttp loop."""
    import pycurl

    multi = pycurl.CurlMulti()
    handles = []
    for _ in range(CONCURRENCY):
        curl = pycurl.Curl()
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.HTTPHEADER, ["Content-Type: application/x-protobuf", "Expect:"])
        curl.setopt(pycurl.WRITEFUNCTION, len)
        curl.setopt(pycurl.UPLOAD_BUFFERSIZE, 2 * 2**20)
        handles.append(curl)
    deadline = time.monotonic() + seconds
    events, k = 0, 0
    sizes: dict = {}

    def start(curl) -> None:
        nonlocal k
        body, n = bodies[k % len(bodies)]
        k += 1
        sizes[curl] = n
        curl.setopt(pycurl.POSTFIELDS, body)
        multi.add_handle(curl)

    before, started = _cpu(), time.monotonic()
    for curl in handles:
        start(curl)
    active = len(handles)
    while active:
        multi.select(0.01)
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, done, failed = multi.info_read()
            assert not failed, failed
            for curl in done:
                assert curl.getinfo(pycurl.RESPONSE_CODE) == 200
                multi.remove_handle(curl)
                events += sizes[curl]
                if time.monotonic() < deadline:
                    start(curl)
                else:
                    active -= 1
            if not queued:
                break
    result = _result(events, time.monotonic() - started, _cpu() - before)
    for curl in handles:
        curl.close()
    multi.close()
    return result


def post_with_urllib3(url: str, bodies: list[tuple[bytes, int]], seconds: float = SECONDS) -> dict:
    import urllib3

    pool = urllib3.PoolManager(maxsize=CONCURRENCY, block=True)
    deadline = time.monotonic() + seconds
    counts = [0] * CONCURRENCY
    headers = {"Content-Type": "application/x-protobuf"}

    def worker(index: int) -> None:
        k = index
        while time.monotonic() < deadline:
            body, n = bodies[k % len(bodies)]
            k += CONCURRENCY
            response = pool.request("POST", url, body=body, headers=headers, retries=False)
            assert response.status == 200
            counts[index] += n

    before, started = _cpu(), time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = _result(sum(counts), time.monotonic() - started, _cpu() - before)
    pool.clear()
    return result


def test_http_clients(benchmark, loaded, sink):
    """Which client carries the same bytes for the least sender CPU."""
    url = f"{sink.http_endpoint}/v1/traces"
    bodies = _bodies(loaded, "traces")
    runs: dict[str, list[dict]] = {"telegen send, pycurl": [], "telegen send, aiohttp": [], "pycurl": [],
                                   "aiohttp": [], "urllib3": []}

    def alternate() -> None:
        for _ in range(ROUNDS):
            runs["telegen send, pycurl"].append(send_for(loaded, sink, "traces", HTTP_PROTOBUF, patch=False))
            with aiohttp_transport():
                runs["telegen send, aiohttp"].append(send_for(loaded, sink, "traces", HTTP_PROTOBUF, patch=False))
            runs["pycurl"].append(post_with_pycurl(url, bodies))
            runs["aiohttp"].append(post_with_aiohttp(url, bodies))
            runs["urllib3"].append(post_with_urllib3(url, bodies))

    benchmark.pedantic(alternate, rounds=1)
    results = {name: median_of(values) for name, values in runs.items()}
    benchmark.extra_info.update(kind="http_clients", signal="traces", clients=results, rounds=ROUNDS)
    for name, result in results.items():
        print(f"\n{name:22s} {result['events_per_second']:>12,.0f} spans/s  "
              f"sender CPU {result['cpu_s_per_million']:.3f} s per million")


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_http_beside_grpc(benchmark, loaded, sink, signal, compression):
    grpc_runs, http_runs = [], []

    def alternate() -> None:
        for _ in range(ROUNDS):
            grpc_runs.append(send_for(loaded, sink, signal, GRPC, compression))
            http_runs.append(send_for(loaded, sink, signal, HTTP_PROTOBUF, compression))

    benchmark.pedantic(alternate, rounds=1)
    grpc_result, http_result = median_of(grpc_runs), median_of(http_runs)
    rate_ratio = http_result["events_per_second"] / grpc_result["events_per_second"]
    cpu_ratio = http_result["cpu_s_per_million"] / grpc_result["cpu_s_per_million"]
    benchmark.extra_info.update(kind="http_vs_grpc", signal=signal, compression=compression, grpc=grpc_result,
                                http=http_result, ratio=rate_ratio, cpu_ratio=cpu_ratio, rounds=ROUNDS)
    print(f"\n{signal:8s} gzip={compression:4s}  grpc {grpc_result['events_per_second']:>12,.0f}/s "
          f"({grpc_result['cpu_s_per_million']:.2f} CPU-s/M)  http {http_result['events_per_second']:>12,.0f}/s "
          f"({http_result['cpu_s_per_million']:.2f} CPU-s/M)  rate x{rate_ratio:.2f}  CPU x{cpu_ratio:.2f}")
