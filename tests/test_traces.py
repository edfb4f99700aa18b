"""Trace templates, decoded with the official OTLP classes."""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import replace

import pytest
from conftest import attr, spans_with_resource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from telegen.generate.base import TIME_BASE_NS, signal_rng
from telegen.generate.config import (
    CustomAttributesConfig,
    GeneratorConfig,
    HighSpanTracesConfig,
    IngressConfig,
    ServicesConfig,
    SpansConfig,
    TracesConfig,
)
from telegen.generate.traces import MAX_CHILDREN, generate_traces

SERVER, CLIENT, INTERNAL = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL
NO_HIGH = HighSpanTracesConfig(enabled=False)


def traces_for(traces: TracesConfig, seed: int = 7, semconv: str = "stable") -> list[list[tuple]]:
    config = GeneratorConfig(traces=traces, semantic_conventions=semconv)
    out = generate_traces(config, signal_rng(seed, "traces"))
    return [spans_with_resource(record) for record in out.records]


@pytest.fixture(scope="module")
def sample() -> list[list[tuple]]:
    """400 ordinary traces, 10% failing, plus one 3,000-span trace."""
    return traces_for(TracesConfig(count=400, error_rate=0.1, spans=SpansConfig(
        avg_per_trace=15, std_dev=5, high_span_traces=HighSpanTracesConfig(count=1, span_count=3000))))


def check_tree(trace: list[tuple]) -> dict[bytes, list]:
    """Assert one trace is a valid, properly timed tree; return children by span id."""
    spans = [span for _, _, span in trace]
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == len(spans), "span ids must be unique within a trace"
    assert len({s.trace_id for s in spans}) == 1
    assert len(spans[0].trace_id) == 16 and any(spans[0].trace_id)
    roots = [s for s in spans if not s.parent_span_id]
    assert len(roots) == 1, "exactly one root"
    children: dict[bytes, list] = defaultdict(list)
    for s in spans:
        assert len(s.span_id) == 8 and any(s.span_id)
        if s.parent_span_id:
            parent = by_id.get(s.parent_span_id)
            assert parent is not None, "every parent is in the same trace"
            children[s.parent_span_id].append(s)
            assert parent.start_time_unix_nano <= s.start_time_unix_nano
            assert s.end_time_unix_nano <= parent.end_time_unix_nano
        assert s.start_time_unix_nano < s.end_time_unix_nano
    # Reachability from the root proves there is no cycle.
    seen, stack = set(), [roots[0].span_id]
    while stack:
        sid = stack.pop()
        assert sid not in seen
        seen.add(sid)
        stack.extend(c.span_id for c in children[sid])
    assert len(seen) == len(spans)
    return children


def test_every_trace_is_a_valid_nested_tree(sample):
    for trace in sample:
        check_tree(trace)


def test_span_kinds_follow_the_call_structure(sample):
    for trace in sample:
        service_of = {span.span_id: res["service.name"].string_value for res, _, span in trace}
        children = check_tree(trace)
        root = next(span for _, _, span in trace if not span.parent_span_id)
        assert root.kind == SERVER
        for _, _, span in trace:
            kids = children[span.span_id]
            if span.kind == CLIENT and attr(span, "db.system.name") is None:
                # A service call: exactly one SERVER child, in another service.
                assert len(kids) == 1 and kids[0].kind == SERVER
                assert service_of[kids[0].span_id] != service_of[span.span_id]
            if span.kind == CLIENT and attr(span, "db.system.name") is not None:
                assert not kids, "database calls are leaves"
            if span.kind == SERVER and span.parent_span_id:
                parent = next(s for _, _, s in trace if s.span_id == span.parent_span_id)
                assert parent.kind == CLIENT
                assert span.flags & 0x300 == 0x300, "a server span's parent is remote"
            assert span.flags & 0x1, "sampled"


def test_gateway_forwards_its_route_to_the_owning_backend(sample):
    """The edge's GET /api/v1/users/{id} first calls the backend that serves
    GET /api/v1/users/{id}, as a real gateway routes."""
    checked = 0
    for trace in sample:
        if len(trace) < 3:
            continue
        spans = {s.span_id: (res["service.name"].string_value, s) for res, _, s in trace}
        children = check_tree(trace)
        root = next(s for _, s in spans.values() if not s.parent_span_id)
        first = min(children[root.span_id], key=lambda s: s.start_time_unix_nano)
        assert first.kind == CLIENT
        (backend,) = children[first.span_id]
        assert backend.name == root.name
        assert spans[backend.span_id][0] != "api-gateway"
        assert attr(backend, "url.path") == attr(root, "url.path")
        checked += 1
    assert checked > 300


def test_span_counts_follow_the_configured_normal_distribution():
    traces = traces_for(TracesConfig(count=4000, spans=SpansConfig(avg_per_trace=15, std_dev=5,
                                                                     high_span_traces=NO_HIGH)))
    sizes = [len(t) for t in traces]
    assert len(sizes) == 4000
    assert abs(statistics.mean(sizes) - 15) < 0.35
    assert abs(statistics.stdev(sizes) - 5) < 0.35
    assert min(sizes) >= 1


def test_span_counts_never_fall_below_one():
    traces = traces_for(TracesConfig(count=300, spans=SpansConfig(avg_per_trace=1, std_dev=3,
                                                                    high_span_traces=NO_HIGH)))
    sizes = Counter(len(t) for t in traces)
    assert sizes[1] > 100  # max(1, ...) clamps the whole lower half
    for trace in traces:
        check_tree(trace)


def test_high_span_trace_has_exact_size_depth_and_bounded_fanout():
    traces = traces_for(TracesConfig(count=3, spans=SpansConfig(
        avg_per_trace=5, std_dev=1, high_span_traces=HighSpanTracesConfig(count=1, span_count=20000))))
    big = max(traces, key=len)
    assert len(big) == 20000
    children = check_tree(big)
    assert max(len(k) for k in children.values()) <= MAX_CHILDREN
    parent_of = {span.span_id: span.parent_span_id for _, _, span in big}
    depth = {}
    for sid in parent_of:
        d, cur = 0, sid
        while parent_of[cur]:
            cur = parent_of[cur]
            d += 1
        depth[sid] = d
    assert max(depth.values()) >= 8, "several levels deep"
    assert len({res["service.name"].string_value for res, _, _ in big}) >= 3


def test_high_span_traces_are_part_of_the_count():
    config = TracesConfig(count=50, spans=SpansConfig(high_span_traces=HighSpanTracesConfig(count=2, span_count=1500)))
    out = generate_traces(GeneratorConfig(traces=config), signal_rng(3, "traces"))
    assert out.counts["traces"] == 50 and len(out.records) == 50
    sizes = [len(spans_with_resource(r)) for r in out.records]
    assert sizes.count(1500) == 2
    assert out.counts["spans"] == sum(sizes)
    assert out.counts["high_span_traces"] == 2


def test_times_are_relative_to_the_base_never_wall_clock(sample):
    for trace in sample:
        root = next(span for _, _, span in trace if not span.parent_span_id)
        assert root.start_time_unix_nano == TIME_BASE_NS
        for _, _, span in trace:
            for t in (span.start_time_unix_nano, span.end_time_unix_nano, *(e.time_unix_nano for e in span.events)):
                assert TIME_BASE_NS <= t < 10**15


def test_durations_look_real(sample):
    db = [s.end_time_unix_nano - s.start_time_unix_nano
          for t in sample for _, _, s in t if attr(s, "db.system.name") is not None]
    roots = [s.end_time_unix_nano - s.start_time_unix_nano for t in sample for _, _, s in t if not s.parent_span_id]
    assert 50_000 < statistics.median(db) < 10_000_000  # database calls: sub-ms to ms
    assert statistics.median(roots) > statistics.median(db)


def test_resources_carry_service_and_sdk_attributes(sample):
    for res, scope, _ in sample[0]:
        for key in ("service.name", "service.version", "service.instance.id", "deployment.environment.name",
                    "host.name", "telemetry.sdk.name", "telemetry.sdk.language", "telemetry.sdk.version"):
            assert key in res, key
        assert scope.name and scope.version
    names = {res["service.name"].string_value for t in sample for res, _, _ in t}
    assert names == {"api-gateway", "user-service", "order-service", "payment-service", "inventory-service"}


STABLE_KEYS = {"http_server": ("http.request.method", "http.response.status_code", "url.path", "http.route"),
               "db": ("db.system.name", "db.query.text", "db.operation.name")}
LEGACY_KEYS = {"http_server": ("http.method", "http.status_code", "http.target", "http.route"),
               "db": ("db.system", "db.statement", "db.operation")}


@pytest.mark.parametrize("generation,keys,absent", [
    ("stable", STABLE_KEYS, ("http.method", "db.statement", "db.system")),
    ("legacy", LEGACY_KEYS, ("http.request.method", "db.query.text", "db.system.name")),
])
def test_semantic_convention_attributes(generation, keys, absent):
    traces = traces_for(TracesConfig(count=80, spans=SpansConfig(high_span_traces=NO_HIGH)), semconv=generation)
    http_servers = dbs = 0
    for trace in traces:
        for _, _, span in trace:
            names = {kv.key for kv in span.attributes}
            assert not names & set(absent)
            if span.kind == SERVER and "http.route" in names:
                http_servers += 1
                assert set(keys["http_server"]) <= names
            if span.kind == CLIENT and keys["db"][0] in names:
                dbs += 1
                assert set(keys["db"]) <= names
        env_key = "deployment.environment.name" if generation == "stable" else "deployment.environment"
        assert env_key in trace[0][0]
    assert http_servers > 50 and dbs > 50


def test_grpc_calls_carry_rpc_attributes(sample):
    grpc = [s for t in sample for _, _, s in t if attr(s, "rpc.system") == "grpc"]
    assert grpc, "the topology has gRPC edges"
    for span in grpc:
        assert attr(span, "rpc.service") and attr(span, "rpc.method")
        assert span.name == f"{attr(span, 'rpc.service')}/{attr(span, 'rpc.method')}"
        assert attr(span, "rpc.grpc.status_code") is not None


def test_failing_requests_fail_consistently(sample):
    def root(trace):
        return next(s for _, _, s in trace if not s.parent_span_id)

    failing = [t for t in sample if root(t).status.code == Status.STATUS_CODE_ERROR]
    assert 20 <= len(failing) <= 70  # error_rate 0.1 of 401 traces
    for trace in failing:
        spans = {s.span_id: s for _, _, s in trace}
        root = next(s for s in spans.values() if not s.parent_span_id)
        assert attr(root, "http.response.status_code") >= 500
        events = [(s, e) for s in spans.values() for e in s.events if e.name == "exception"]
        assert len(events) == 1
        origin, event = events[0]
        assert attr(event, "exception.type") and attr(event, "exception.message")
        assert origin.start_time_unix_nano <= event.time_unix_nano <= origin.end_time_unix_nano
        # Every span from the failure up to the root is an error.
        cur = origin
        while True:
            assert cur.status.code == Status.STATUS_CODE_ERROR
            if not cur.parent_span_id:
                break
            cur = spans[cur.parent_span_id]
    healthy = [t for t in sample if t not in failing]
    for trace in healthy:
        assert all(s.status.code != Status.STATUS_CODE_ERROR for _, _, s in trace)
        assert not any(e.name == "exception" for _, _, s in trace for e in s.events)


def test_custom_attributes_keep_their_type_and_probability():
    traces = traces_for(TracesConfig(count=300, spans=SpansConfig(high_span_traces=NO_HIGH),
                                     custom_attributes=CustomAttributesConfig(count=20, probability=0.4)))
    types: dict[str, set] = defaultdict(set)
    carrying = total = 0
    for trace in traces:
        for _, _, span in trace:
            total += 1
            custom = [kv for kv in span.attributes if kv.key.startswith("app.")]
            if custom:
                carrying += 1
                assert len(custom) == 20
            for kv in custom:
                types[kv.key].add(kv.value.WhichOneof("value"))
    assert len(types) == 20
    assert all(len(t) == 1 for t in types.values()), types
    assert {next(iter(t)) for t in types.values()} == {"string_value", "int_value", "double_value", "bool_value"}
    assert abs(carrying / total - 0.4) < 0.05


def test_custom_attributes_disabled():
    traces = traces_for(TracesConfig(count=30, spans=SpansConfig(high_span_traces=NO_HIGH),
                                     custom_attributes=CustomAttributesConfig(count=0, probability=1.0)))
    assert not any(kv.key.startswith("app.") for t in traces for _, _, s in t for kv in s.attributes)


def test_multiple_ingress_services():
    services = ServicesConfig(ingress=IngressConfig(single=False, services=("api-gateway", "user-service")))
    traces = traces_for(TracesConfig(count=200, services=services, spans=SpansConfig(high_span_traces=NO_HIGH)))
    roots = Counter(res["service.name"].string_value for t in traces for res, _, s in t if not s.parent_span_id)
    assert set(roots) == {"api-gateway", "user-service"}


def test_more_services_than_names():
    services = ServicesConfig(count=9)
    traces = traces_for(TracesConfig(count=300, services=services, spans=SpansConfig(high_span_traces=NO_HIGH)))
    names = {res["service.name"].string_value for t in traces for res, _, _ in t}
    assert len(names) == 9


def test_zero_count_disables_traces():
    out = generate_traces(GeneratorConfig(traces=TracesConfig(count=0)), signal_rng(1, "traces"))
    assert out.records == [] and out.counts["spans"] == 0


def test_same_seed_same_bytes_other_seed_other_bytes():
    config = GeneratorConfig(traces=TracesConfig(count=50, spans=SpansConfig(
        high_span_traces=HighSpanTracesConfig(count=1, span_count=5000))))
    a = generate_traces(config, signal_rng(11, "traces")).records
    b = generate_traces(config, signal_rng(11, "traces")).records
    c = generate_traces(config, signal_rng(12, "traces")).records
    assert a == b
    assert a != c
    legacy = generate_traces(replace(config, semantic_conventions="legacy"), signal_rng(11, "traces")).records
    assert [len(spans_with_resource(r)) for r in legacy] == [len(spans_with_resource(r)) for r in a]



@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    services=st.integers(1, 9),
    multi_ingress=st.booleans(),
    avg=st.floats(1, 40),
    std=st.floats(0, 20),
    high=st.integers(1, 3000),
    error_rate=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_any_config_gives_valid_trees_of_exact_size(seed, services, multi_ingress, avg, std, high, error_rate):
    """Whatever the topology (a lone service, no calls, many ingresses) and
    sizes, every trace is a valid nested tree with exactly its span count."""
    ingress = IngressConfig(single=not multi_ingress)
    config = TracesConfig(count=12, error_rate=error_rate,
                          services=ServicesConfig(count=services, ingress=ingress),
                          spans=SpansConfig(avg_per_trace=avg, std_dev=std,
                                            high_span_traces=HighSpanTracesConfig(count=1, span_count=high)))
    out = generate_traces(GeneratorConfig(traces=config), signal_rng(seed, "traces"))
    traces = [spans_with_resource(r) for r in out.records]
    assert sum(len(t) for t in traces) == out.counts["spans"]
    assert high in [len(t) for t in traces]
    for trace in traces:
        children = check_tree(trace)
        assert all(len(k) <= MAX_CHILDREN for k in children.values())
