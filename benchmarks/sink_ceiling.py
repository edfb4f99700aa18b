"""The sink's own ceiling per carrier: one pre-serialized ~600 KB traces request
POSTed (OTLP/HTTP, aiohttp client) or exported (OTLP/gRPC, grpcio raw bytes)
over and over from C connections/in-flight calls for S seconds, against
`telegen sink --listen-http` in its own process. Reports requests/s, events/s
and the sink process's CPU seconds per million events (from /proc), plus the
client's own CPU. Phases alternate (http, grpc, http, grpc ...).

    .venv/bin/python benchmarks/sink_ceiling.py [--seconds 5] [--concurrency 8] [--rounds 2] [--gzip]
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from telegen.sink import SERVICES, SinkProcess, count_events

TICKS = os.sysconf("SC_CLK_TCK")


def build_request(spans: int = 1500) -> bytes:
    def kv(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    t0 = 1_700_000_000_000_000_000
    out = []
    for i in range(spans):
        trace = (i // 15 + 1).to_bytes(16, "big")
        out.append(Span(trace_id=trace, span_id=(i + 1).to_bytes(8, "big"),
                        parent_span_id=(i // 15 * 15 + 1).to_bytes(8, "big") if i % 15 else b"",
                        name=f"GET /api/v1/orders/{i % 40}", kind=2,
                        start_time_unix_nano=t0 + i * 1000, end_time_unix_nano=t0 + i * 1000 + 250_000,
                        attributes=[kv("http.request.method", "GET"), kv("url.path", f"/api/v1/orders/{i % 40}"),
                                    kv("server.address", "orders.internal.example.com"),
                                    kv("http.response.status_code", "200"), kv("network.peer.address", "10.1.2.3"),
                                    kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) telegen-bench"),
                                    kv("http.route", "/api/v1/orders/{id}")]))
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[kv("service.name", "orders"), kv("host.name", "bench-1")]),
        scope_spans=[ScopeSpans(scope=InstrumentationScope(name="bench"), spans=out)])])
    return request.SerializeToString()


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def self_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def run_http(url: str, body: bytes, gzipped: bool, concurrency: int, seconds: float) -> int:
    import aiohttp

    headers = {"Content-Type": "application/x-protobuf"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"

    async def main() -> int:
        done = 0
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            async def worker() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        assert response.status == 200, response.status
                    done += 1
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done

    return asyncio.run(main())


def run_grpc(endpoint: str, body: bytes, gzipped: bool, concurrency: int, seconds: float) -> int:
    channel = grpc.insecure_channel(endpoint)
    call = channel.unary_unary(f"/{SERVICES['traces']}/Export", request_serializer=None, response_deserializer=None)
    compression = grpc.Compression.Gzip if gzipped else None
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    finished = threading.Event()
    state = {"done": 0, "in_flight": 0, "error": None}

    def launch() -> None:
        state["in_flight"] += 1
        call.future(body, timeout=30, compression=compression).add_done_callback(on_done)

    def on_done(future: grpc.Future) -> None:
        with lock:
            state["in_flight"] -= 1
            if future.exception() is not None:
                state["error"] = future.exception()
            else:
                state["done"] += 1
            if time.monotonic() < deadline and state["error"] is None:
                launch()
            elif state["in_flight"] == 0:
                finished.set()

    with lock:
        for _ in range(concurrency):
            launch()
    finished.wait(seconds + 60)
    channel.close()
    if state["error"] is not None:
        raise state["error"]
    return state["done"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--spans", type=int, default=1500)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    raw = build_request(args.spans)
    events = count_events("traces", raw)
    body = gzip.compress(raw, 1) if args.gzip else raw
    compressed = f"on ({len(body):,} bytes)" if args.gzip else "off"
    print(f"request: {len(raw):,} bytes, {events} spans; gzip {compressed}; "
          f"{args.concurrency} in flight, {args.seconds:g} s a phase")
    stats_json = Path(tempfile.mkdtemp()) / "sink-stats.json"
    sent = 0
    with SinkProcess(http=True, stats_json=stats_json) as sink:
        pid = sink.process.pid
        # Warm both paths up.
        sent += run_http(f"{sink.http_endpoint}/v1/traces", body, args.gzip, args.concurrency, 0.5)
        sent += run_grpc(sink.endpoint, raw, args.gzip, args.concurrency, 0.5)
        for round_ in range(args.rounds):
            for carrier in ("http", "grpc"):
                sink_before, client_before, started = proc_cpu(pid), self_cpu(), time.monotonic()
                if carrier == "http":
                    done = run_http(f"{sink.http_endpoint}/v1/traces", body, args.gzip, args.concurrency,
                                    args.seconds)
                else:  # grpcio compresses itself when asked
                    done = run_grpc(sink.endpoint, raw, args.gzip, args.concurrency, args.seconds)
                elapsed = time.monotonic() - started
                sent += done
                sink_cpu, client_cpu = proc_cpu(pid) - sink_before, self_cpu() - client_before
                million = done * events / 1e6
                print(f"round {round_ + 1} {carrier:<4}: {done / elapsed:7.1f} requests/s  "
                      f"{done * events / elapsed / 1e6:6.3f} M events/s  "
                      f"sink {sink_cpu:5.2f} CPU-s ({sink_cpu / million:.3f} CPU-s per M events, "
                      f"{sink_cpu / elapsed:.2f} cores)  client {client_cpu / million:.3f} CPU-s per M", flush=True)


    counted = json.loads(stats_json.read_text())["traces"]
    assert (counted["requests"], counted["events"]) == (sent, sent * events), (counted, sent)
    print(f"sink counted {counted['requests']:,} requests, {counted['events']:,} events: all answered OK")


if __name__ == "__main__":
    main()
