"""telegen beside the ways a Python user would otherwise replay telemetry, in
one run against `telegen sink` in its own process:

- naive replay: keep parsed protobuf messages, set ids and times field by
  field, SerializeToString(), send (same transport, concurrency, batches);
- the OpenTelemetry Python SDK: tracer + BatchSpanProcessor + OTLP gRPC
  exporter producing spans of the same shape (traces only).

Issue targets: telegen >= 5x the naive replay and >= 100x the SDK.
"""
from __future__ import annotations

import os
import statistics
import time

import pytest
from conftest import BATCH_SIZES, CONCURRENCY, ROUNDS, SECONDS

from telegen.send.engine import SendSettings, run
from telegen.send.transport import Target
from telegen.templates import decode_record


class NaiveReplay:
    """What a careful Python user would write without telegen's kernel."""

    def __init__(self, loaded) -> None:
        # By the batch's bytes: a run hands the worker copies of the batches
        # (numbered for correlation), never copies of their data.
        self.messages = {id(b.data): decode_record(t.signal, b.data) for t in loaded.values() for b in t.batches}
        self.run_start = time.time_ns()

    def __call__(self, item) -> bytes:
        message = self.messages[id(item.batch.data)]
        now = time.time_ns()
        {"traces": self._traces, "metrics": self._metrics, "logs": self._logs}[item.signal](message, now)
        return message.SerializeToString()

    @staticmethod
    def _traces(message, now: int) -> None:
        spans = [s for rs in message.resource_spans for ss in rs.scope_spans for s in ss.spans]
        window: dict[bytes, list[int]] = {}
        for s in spans:
            w = window.setdefault(s.trace_id, [s.start_time_unix_nano, s.end_time_unix_nano])
            w[0] = min(w[0], s.start_time_unix_nano)
            w[1] = max(w[1], s.end_time_unix_nano)
        new_trace = {tid: os.urandom(16) for tid in window}
        new_span = {s.span_id: os.urandom(8) for s in spans}
        for s in spans:
            start, end = window[s.trace_id]
            delta = now - (end - start) - start
            if s.parent_span_id:
                s.parent_span_id = new_span[s.parent_span_id]
            s.span_id = new_span[s.span_id]
            s.trace_id = new_trace[s.trace_id]
            s.start_time_unix_nano += delta
            s.end_time_unix_nano += delta
            for event in s.events:
                event.time_unix_nano += delta

    def _metrics(self, message, now: int) -> None:
        for rm in message.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    for p in getattr(m, kind).data_points:
                        p.time_unix_nano = now
                        if p.start_time_unix_nano:
                            p.start_time_unix_nano = self.run_start
                        if kind == "sum" and m.sum.is_monotonic:
                            if p.WhichOneof("value") == "as_int":
                                p.as_int += 1
                            else:
                                p.as_double += 1.0

    @staticmethod
    def _logs(message, now: int) -> None:
        for rl in message.resource_logs:
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    offset = r.observed_time_unix_nano - r.time_unix_nano
                    r.time_unix_nano = now
                    r.observed_time_unix_nano = now + offset
                    if r.trace_id:
                        r.trace_id = os.urandom(16)
                        r.span_id = os.urandom(8)


def send_rate(loaded, endpoint: str, signal: str, prepare, compression: str = "none") -> float:
    target = Target(endpoint=endpoint, insecure=True, compression=compression)
    settings = SendSettings(targets={signal: target}, concurrency=CONCURRENCY, duration=SECONDS,
                            stats_interval=3600, prepare=prepare)
    report = run([loaded[signal]], settings, write=lambda line: None)
    r = report.signals[signal]
    assert r.failed == 0 and r.delivered == r.sent
    return r.delivered / report.elapsed


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_telegen_vs_naive_replay(benchmark, loaded, sink_endpoint, signal, compression):
    """The two alternate ROUNDS times; medians, as the noise demands."""
    naives, fasts = [], []
    replay = NaiveReplay(loaded)

    def alternate() -> None:
        for _ in range(ROUNDS):
            naives.append(send_rate(loaded, sink_endpoint, signal, replay, compression))
            fasts.append(send_rate(loaded, sink_endpoint, signal, None, compression))

    benchmark.pedantic(alternate, rounds=1)
    naive, fast = statistics.median(naives), statistics.median(fasts)
    benchmark.extra_info.update(kind="naive", signal=signal, compression=compression, telegen=fast, naive=naive,
                                ratio=fast / naive)
    print(f"\n{signal:8s} gzip={compression:4s} telegen {fast:>12,.0f}/s  "
          f"naive protobuf replay {naive:>10,.0f}/s  ratio {fast / naive:.1f}x")


def sdk_spans_per_second(endpoint: str, templates, seconds: float, compression: str = "none") -> float:
    """Spans of the templates' shape (name, kind, attributes, tree) made and
    exported through the OpenTelemetry SDK as fast as it goes."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, set_span_in_context

    request = decode_record("traces", templates.traces[1])
    shape = [(s.name, s.kind, {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in s.attributes},
              s.span_id, s.parent_span_id)
             for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-peer"}))
    from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True,
                                compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)
    processor = BatchSpanProcessor(exporter,
                                   max_queue_size=2**20, max_export_batch_size=512)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("telegen.benchmark")
    kinds = {1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT}
    made = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        contexts = {}
        ordered = sorted(shape, key=lambda s: bool(s[4]))  # roots first; children follow parents in the file
        for name, kind, attributes, span_id, parent in ordered:
            context = contexts.get(parent) if parent else None
            span = tracer.start_span(name, context=context, kind=kinds.get(kind, SpanKind.INTERNAL),
                                     attributes=attributes)
            contexts[span_id] = set_span_in_context(span)
            span.end()
            made += 1
    provider.force_flush(timeout_millis=60_000)
    elapsed = time.monotonic() - started
    provider.shutdown()
    return made / elapsed


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_telegen_vs_opentelemetry_sdk(benchmark, loaded, templates, sink_endpoint, compression):
    """The SDK and telegen alternate ROUNDS times; medians."""
    sdks, fasts = [], []

    def alternate() -> None:
        for _ in range(ROUNDS):
            sdks.append(sdk_spans_per_second(sink_endpoint, templates, SECONDS, compression))
            fasts.append(send_rate(loaded, sink_endpoint, "traces", None, compression))

    benchmark.pedantic(alternate, rounds=1)
    sdk, fast = statistics.median(sdks), statistics.median(fasts)
    benchmark.extra_info.update(kind="sdk", signal="traces", compression=compression, telegen=fast, sdk=sdk,
                                ratio=fast / sdk)
    print(f"\ntraces   gzip={compression:4s} telegen {fast:>12,.0f}/s  "
          f"OpenTelemetry SDK {sdk:>10,.0f}/s  ratio {fast / sdk:.0f}x")
