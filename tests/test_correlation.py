"""Signals that hang together after every refresh: a sent log names a span
that was sent, with its time inside that span's sent interval; an exemplar
names a sent span. Checked by receivers that decode every request, over
several passes, over gRPC and HTTP, with several processes and two shards,
on the default generator config's templates (the `templates` fixture: its
logs inside spans, its RED metrics' exemplars) and on hand-made ones."""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from conftest import Recorder, decode_traces, loaded_batches, serve
from http_receiver import HttpRecorder, serve_http
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

from telegen import _fastpath as fp
from telegen.reference.patch import derived_keys, patch_reference
from telegen.send.engine import SendSettings, run
from telegen.send.engine.clock import TraceClock
from telegen.send.load.correlate import correlate
from telegen.send.transport import RetryPolicy, Target
from telegen.templates import TemplateSet

SIGNALS = ("traces", "metrics", "logs")
NOW = 1_800_000_000_000_000_000
MS = 1_000_000


def correlated(templates: TemplateSet, logs_per_trace: int = 3, seed: int = 7) -> TemplateSet:
    """`templates` with logs written inside its spans (ids and a time within
    the span, the span's resource) and a histogram whose exemplars name
    spans: what the generator's correlated defaults look like."""
    r = random.Random(seed)
    logs, exemplars = [], []
    for record in templates.traces:
        request = decode_traces(record)
        for rs in request.resource_spans:
            spans = [s for ss in rs.scope_spans for s in ss.spans]
            chosen = r.sample(spans, min(logs_per_trace, len(spans)))
            out = ExportLogsServiceRequest()
            rl = out.resource_logs.add(resource=rs.resource)
            scope = rl.scope_logs.add()
            for span in chosen:
                t = r.randint(span.start_time_unix_nano, span.end_time_unix_nano)
                scope.log_records.add(time_unix_nano=t, observed_time_unix_nano=t + 5, trace_id=span.trace_id,
                                      span_id=span.span_id, severity_text="INFO",
                                      body=AnyValue(string_value=f"inside {span.name}"))
            logs.append(out.SerializeToString())
            exemplars.extend(chosen[:1])
    uncorrelated = []  # as generated, less the trace ids that name no span of these templates
    for record in templates.logs:
        request = ExportLogsServiceRequest.FromString(record)
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for log in sl.log_records:
                    log.ClearField("trace_id")
                    log.ClearField("span_id")
        uncorrelated.append(request.SerializeToString())
    metrics = ExportMetricsServiceRequest()
    rm = metrics.resource_metrics.add()
    rm.resource.attributes.add(key="service.name", value=AnyValue(string_value="api"))
    rm.resource.attributes.add(key="service.instance.id", value=AnyValue(string_value="api-1"))
    metric = rm.scope_metrics.add().metrics.add(name="http.server.request.duration", unit="s")
    metric.histogram.aggregation_temporality = m.AGGREGATION_TEMPORALITY_CUMULATIVE
    for k in range(0, len(exemplars), 5):
        point = metric.histogram.data_points.add(start_time_unix_nano=10**12, time_unix_nano=10**12 + 60 * 10**9,
                                                 count=5, sum=0.5, bucket_counts=[2, 3], explicit_bounds=[0.1])
        point.attributes.append(KeyValue(key="route", value=AnyValue(string_value=f"/r{k}")))
        for span in exemplars[k:k + 5]:
            point.exemplars.add(time_unix_nano=10**12, as_double=0.05, trace_id=span.trace_id, span_id=span.span_id)
    return dataclasses.replace(templates, logs=logs + uncorrelated,
                               metrics=templates.metrics + [metrics.SerializeToString()])


def check_correlation(recorder) -> dict[str, float]:
    """The shares the issue asks for, from what a receiver decoded."""
    spans = {(s.trace_id, s.span_id): (s.start_time_unix_nano, s.end_time_unix_nano) for s in recorder.spans()}
    assert len(spans) == len(recorder.spans()), "span ids unique across every send"
    logs = [r for req in recorder.requests["logs"] for rl in req.resource_logs for sl in rl.scope_logs
            for r in sl.log_records if r.trace_id]
    named = [spans.get((r.trace_id, r.span_id)) for r in logs]
    inside = [w is not None and w[0] - MS <= r.time_unix_nano <= w[1] + MS for r, w in zip(logs, named)]
    exemplars = [e for req in recorder.requests["metrics"] for rm in req.resource_metrics for sm in rm.scope_metrics
                 for metric in sm.metrics if metric.WhichOneof("data") in ("histogram", "exponential_histogram", "sum")
                 for p in getattr(metric, metric.WhichOneof("data")).data_points for e in p.exemplars]
    return {"logs": len(logs), "logs_named": sum(w is not None for w in named) / max(1, len(logs)),
            "logs_inside": sum(inside) / max(1, len(logs)), "exemplars": len(exemplars),
            "exemplars_named": sum((e.trace_id, e.span_id) in spans for e in exemplars) / max(1, len(exemplars))}


def settings(targets: dict[str, Target], **overrides) -> SendSettings:
    values = dict(targets=targets, concurrency=4, stats_interval=60, drain_timeout=5, passes=2,
                  jitter_ns=50 * MS, backdate_ns=10 * MS,
                  retry=RetryPolicy(max_attempts=4, initial_backoff=0.05, max_backoff=0.2))
    values.update(overrides)
    return SendSettings(**values)


def quiet(_: str) -> None:
    pass


def assert_correlated(shares: dict[str, float]) -> None:
    assert shares["logs"] > 100 and shares["exemplars"] > 10, shares
    assert shares["logs_named"] >= 0.99, shares
    assert shares["logs_inside"] >= 0.99, shares
    assert shares["exemplars_named"] >= 0.99, shares


# -- the kernel: keyed ids ----------------------------------------------------------


def test_keyed_ids_are_a_function_of_the_template_id_the_key_and_the_send(templates):
    batch = b"".join(templates.traces[:10])
    plan = fp.scan("traces", batch)
    one = fp.patch(plan, batch, NOW, id_key=5, send_number=3)
    ids = lambda data: [(s.trace_id, s.span_id, s.parent_span_id) for s in decode_traces(data).resource_spans[0]
                        .scope_spans[0].spans]  # noqa: E731
    again = fp.patch(plan, batch, NOW + 7, id_key=5, send_number=3)
    assert ids(one) == ids(again), "the same send derives the same ids, whenever it is patched"
    assert not set(ids(one)) & set(ids(fp.patch(plan, batch, NOW, id_key=5, send_number=4)))
    assert not set(ids(one)) & set(ids(fp.patch(plan, batch, NOW, id_key=6, send_number=3)))
    template = decode_traces(batch).resource_spans[0].scope_spans[0].spans[0]
    sent = decode_traces(one).resource_spans[0].scope_spans[0].spans[0]
    k0, k1, k2, _ = derived_keys(5, 3, template.trace_id)
    assert sent.trace_id == (int.from_bytes(template.trace_id[:8], "little") ^ k0).to_bytes(8, "little") + \
        (int.from_bytes(template.trace_id[8:], "little") ^ k1).to_bytes(8, "little")
    assert sent.span_id == (int.from_bytes(template.span_id, "little") ^ k2).to_bytes(8, "little")


@pytest.mark.parametrize("signal", SIGNALS)
def test_keyed_patches_agree_with_reference(templates, signal):
    data = correlated(templates)
    records = data.records(signal)
    rng = random.Random(3)
    clock = [[NOW - 5 * MS, NOW - 9 * MS, 4, 0], [NOW - 1, NOW - 2, -1, 0], [NOW - 3 * MS, NOW - 2 * MS, 7, 3]]
    for batch in [b"".join(records[i:i + 6]) for i in range(0, min(len(records), 30), 6)] + records[-2:]:
        plan = fp.scan(signal, batch)
        slots = [rng.choice([-1, 0, 1, 2, 5]) for _ in range(plan.n_id_groups)]
        params = dict(now=NOW, jitter_ns=10**9, backdate_ns=10**6, step=3, id_key=2**64 - 3, send_number=11)
        for seed in (1, 2):
            compiled = fp.patch(plan, batch, seed=seed, clock=np.array(clock, dtype=np.int64),
                                slots=np.array(slots, dtype=np.int64), **params)
            assert compiled == patch_reference(signal, batch, seed=seed, clock=clock, slots=slots, **params)


def test_a_log_follows_its_span_wherever_and_whenever_it_is_patched(templates):
    data = correlated(templates)
    loaded = correlate(loaded_batches(data, ("traces", "logs")))
    traces, logs = loaded
    clock = TraceClock(len(traces.batches), key=42)
    sent = {}
    for slot, batch in enumerate(traces.batches):
        now = NOW + slot * 10**9
        out = fp.patch(batch.plan, batch.data, now, 10**9, 0, id_key=clock.key, send_number=0)
        clock.record(slot, 0, now)
        sent.update({(s.trace_id, s.span_id): s for rs in decode_traces(out).resource_spans
                     for ss in rs.scope_spans for s in ss.spans})
    found = 0
    for batch in logs.batches:
        assert batch.slots is not None or not batch.needs
        out = fp.patch(batch.plan, batch.data, NOW + 10**12, 10**9, 0, id_key=clock.key, send_number=9,
                       clock=clock.table, slots=batch.slots if batch.slots is not None else None)
        for rl in ExportLogsServiceRequest.FromString(out).resource_logs:
            for record in (r for sl in rl.scope_logs for r in sl.log_records if r.trace_id):
                span = sent.get((record.trace_id, record.span_id))
                if span is not None:
                    found += 1
                    assert span.start_time_unix_nano <= record.time_unix_nano <= span.end_time_unix_nano
    template_spans = {(s.trace_id, s.span_id) for r in data.traces for rs in decode_traces(r).resource_spans
                      for ss in rs.scope_spans for s in ss.spans}
    assert found == sum((r.trace_id, r.span_id) in template_spans for record in data.logs
                        for rl in ExportLogsServiceRequest.FromString(record).resource_logs
                        for sl in rl.scope_logs for r in sl.log_records) > 100


# -- a run: what a receiver decodes ----------------------------------------------------


def test_logs_and_exemplars_name_sent_spans_over_grpc(templates):
    recorder = Recorder()
    server, port = serve(recorder)
    try:
        target = Target(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=5)
        report = run(loaded_batches(templates), settings({s: target for s in SIGNALS}), quiet)
    finally:
        server.stop(0)
    assert all(report.signals[s].delivered == report.signals[s].sent > 0 for s in SIGNALS)
    shares = check_correlation(recorder)
    assert_correlated(shares)
    logs = recorder.events("logs")
    assert shares["logs"] >= 0.3 * logs, "by default at least 30 % of all logs are inside a span"


def test_logs_and_exemplars_name_sent_spans_over_http_with_gzip_and_two_processes(templates):
    recorder = HttpRecorder()
    server, port = serve_http(recorder)
    try:
        targets = {s: Target(endpoint=f"http://127.0.0.1:{port}/v1/{s}", protocol="http/protobuf",
                             compression="gzip", timeout=5) for s in SIGNALS}
        report = run(loaded_batches(templates), settings(targets, processes=2, passes=3), quiet)
    finally:
        server.shutdown()
    assert all(report.signals[s].delivered == report.signals[s].sent > 0 for s in SIGNALS)
    assert_correlated(check_correlation(recorder))


def test_two_shards_each_name_their_own_spans(templates):
    recorder = Recorder()
    server, port = serve(recorder)
    try:
        target = Target(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=5)
        for _ in range(2):  # each shard a run of its own: its own key, nothing shared
            run(loaded_batches(templates), settings({s: target for s in SIGNALS}), quiet)
    finally:
        server.stop(0)
    assert_correlated(check_correlation(recorder))


def test_a_run_that_ends_early_names_no_span_it_did_not_send(templates):
    """Stopped by its duration in its first pass, at a rate that cannot get
    through one: logs go only once the spans they name have."""
    recorder = Recorder()
    server, port = serve(recorder)
    loaded = loaded_batches(templates)
    per_pass = sum(t.events_per_pass for t in loaded)
    try:
        target = Target(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=5)
        report = run(loaded, settings({s: target for s in SIGNALS}, passes=0, duration=2.0,
                                      events_per_second=0.7 * per_pass / 2.0), quiet)
    finally:
        server.stop(0)
    assert sum(r.sent for r in report.signals.values()) < 0.8 * per_pass, "the first pass never ended"
    shares = check_correlation(recorder)
    assert shares["logs"] > 0
    assert shares["logs_named"] == 1.0 and shares["logs_inside"] == 1.0, shares
    assert shares["exemplars"] == 0 or shares["exemplars_named"] == 1.0, shares


def test_hand_made_correlation_holds_too(templates):
    """Logs spread over every trace, and exemplars across trace batches."""
    recorder = Recorder()
    server, port = serve(recorder)
    try:
        target = Target(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=5)
        run(loaded_batches(correlated(templates)), settings({s: target for s in SIGNALS}), quiet)
    finally:
        server.stop(0)
    assert_correlated(check_correlation(recorder))
