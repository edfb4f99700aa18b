"""Signals that hang together: logs emitted inside generated spans, and the
RED metrics whose exemplars name generated spans. Everything is checked on
the decoded templates (official opentelemetry-proto classes) against the
traces templates of the same set, and the exponential histograms' wire
layout on the raw bytes (and through the kernel's scan)."""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

import telegen
from telegen import _fastpath
from telegen.errors import ConfigError
from telegen.generate.base import METRIC_INTERVAL_NS, TIME_BASE_NS
from telegen.templates import decode_record
from telegen.varint import decode_varint, iter_fields

POINT_NS = TIME_BASE_NS + METRIC_INTERVAL_NS
APPLICATION_METRICS = {"http.server.request.duration", "http.client.request.duration", "rpc.server.duration",
                       "rpc.client.duration", "http.server.duration", "http.client.duration"}


def config(**changes: Any) -> dict[str, Any]:
    """The default generator config, scaled down: 200 traces (no high-span
    ones), 50 metrics of few series, 2,000 logs; `changes` as dotted keys."""
    data: dict[str, Any] = {
        "seed": 5,
        "traces": {"count": 200, "spans": {"high_span_traces": {"enabled": False}}},
        "metrics": {"metric_count": 50, "timeseries_per_metric": {"min": 2, "max": 10, "default": 5}},
        "logs": {"count": 2000},
    }
    cfg = telegen.GeneratorConfig.from_dict(data)
    return cfg.with_overrides(changes).to_dict() if changes else cfg.to_dict()


def value_of(kv: Any) -> object:
    return getattr(kv.value, kv.value.WhichOneof("value"))


def attrs(obj: Any) -> dict[str, object]:
    return {kv.key: value_of(kv) for kv in obj.attributes}


@dataclass(frozen=True)
class TracedSpan:
    span: Span
    resource: tuple[tuple[str, object], ...]

    @property
    def attrs(self) -> dict[str, object]:
        return attrs(self.span)

    @property
    def error(self) -> bool:
        return self.span.status.code == Status.STATUS_CODE_ERROR


@dataclass(frozen=True)
class Log:
    kind: str
    resource: tuple[tuple[str, object], ...]
    record: Any

    @property
    def attrs(self) -> dict[str, object]:
        return attrs(self.record)


@dataclass(frozen=True)
class Generated:
    templates: telegen.TemplateSet
    spans: dict[tuple[bytes, bytes], TracedSpan]
    logs: tuple[Log, ...]

    @property
    def counts(self) -> dict[str, int]:
        return self.templates.counts


def _log_kind(record: Any) -> str:
    keys = {kv.key for kv in record.attributes}
    if "log.source" in keys:
        return "system"
    return "http_access" if {"http.request.method", "http.method"} & keys else "application"


def _resource(resource: Any) -> tuple[tuple[str, object], ...]:
    return tuple((kv.key, value_of(kv)) for kv in resource.attributes)


@cache
def generated(**changes: Any) -> Generated:
    templates = telegen.generate(config(**changes))
    spans = {}
    for record in templates.traces:
        for rs in decode_record("traces", record).resource_spans:
            resource = _resource(rs.resource)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    spans[(span.trace_id, span.span_id)] = TracedSpan(span, resource)
    logs = []
    for record in templates.logs:
        rl = decode_record("logs", record).resource_logs[0]
        log = rl.scope_logs[0].log_records[0]
        logs.append(Log(_log_kind(log), _resource(rl.resource), log))
    return Generated(templates, spans, tuple(logs))


def correlated(g: Generated) -> list[Log]:
    return [log for log in g.logs if log.record.trace_id]


# --- logs inside spans --------------------------------------------------------------

def test_by_default_at_least_30_percent_of_logs_are_correlated() -> None:
    g = generated()
    share = len(correlated(g)) / len(g.logs)
    assert share >= 0.30
    # The default share (0.85 of HTTP access and application logs) of the 40/40/20 split.
    assert 0.62 < share < 0.74
    assert g.counts["logs_correlated"] == len(correlated(g))


def test_every_correlated_log_names_a_span_and_lies_within_it() -> None:
    g = generated()
    for log in correlated(g):
        record = log.record
        traced = g.spans.get((record.trace_id, record.span_id))
        assert traced is not None, "names no span of the traces templates"
        span = traced.span
        assert span.start_time_unix_nano <= record.time_unix_nano <= span.end_time_unix_nano
        assert record.observed_time_unix_nano >= record.time_unix_nano
        assert log.resource == traced.resource, "the resource of the span it was emitted in"
        assert record.flags == 1


def test_correlated_logs_spread_over_many_traces() -> None:
    g = generated()
    traces = Counter(log.record.trace_id for log in correlated(g))
    assert len(traces) > 0.5 * g.counts["traces"]
    assert max(traces.values()) < 0.05 * len(correlated(g))


def test_http_access_logs_come_from_their_server_span() -> None:
    g = generated()
    http = [log for log in correlated(g) if log.kind == "http_access"]
    assert http
    for log in http:
        traced = g.spans[(log.record.trace_id, log.record.span_id)]
        span, a = traced.span, traced.attrs
        assert span.kind == Span.SPAN_KIND_SERVER and "http.route" in a
        assert log.attrs["http.request.method"] == a["http.request.method"]
        assert log.attrs["http.route"] == a["http.route"]
        assert log.attrs["url.path"] == a["url.path"]
        assert log.attrs["http.response.status_code"] == a["http.response.status_code"]
        assert log.attrs["client.address"] == a["client.address"]
        assert log.record.time_unix_nano == span.end_time_unix_nano, "written as the response goes out"
    services = {dict(log.resource)["service.name"] for log in http}
    assert len(services) > 1, "every service with HTTP routes logs its requests"


def test_application_logs_come_from_spans_of_their_service() -> None:
    g = generated()
    app = [log for log in correlated(g) if log.kind == "application"]
    assert app
    for log in app:
        traced = g.spans[(log.record.trace_id, log.record.span_id)]
        assert traced.span.kind in (Span.SPAN_KIND_SERVER, Span.SPAN_KIND_INTERNAL)
        assert dict(log.resource)["telemetry.sdk.language"] == dict(traced.resource)["telemetry.sdk.language"]
    errors = [log for log in app if log.record.severity_text == "ERROR"]
    assert errors and any(span.error for span in g.spans.values())
    for log in errors:
        assert g.spans[(log.record.trace_id, log.record.span_id)].error, "an ERROR log from a failing span"


def test_system_and_uncorrelated_logs_carry_no_ids() -> None:
    g = generated()
    system = [log for log in g.logs if log.kind == "system"]
    assert system
    uncorrelated = [log for log in g.logs if not log.record.trace_id]
    assert {log.kind for log in uncorrelated} == {"system", "http_access", "application"}
    for log in uncorrelated:
        assert not log.record.span_id and not log.record.flags
        assert log.record.time_unix_nano == TIME_BASE_NS
    assert all(not log.record.trace_id for log in system)


def test_share_sets_how_many_logs_are_correlated() -> None:
    none = generated(**{"logs.correlation.share": 0})
    assert none.counts["logs_correlated"] == 0
    assert not any(log.record.trace_id or log.record.span_id for log in none.logs)
    every = generated(**{"logs.correlation.share": 1})
    kinds = Counter(log.kind for log in correlated(every))
    assert kinds == Counter(http_access=every.counts["http_access"], application=every.counts["application"])
    half = generated(**{"logs.correlation.share": 0.5})
    assert abs(half.counts["logs_correlated"] - 0.5 * 1600) < 100


def test_without_traces_logs_are_uncorrelated() -> None:
    g = generated(**{"traces.count": 0})
    assert len(g.logs) == 2000 and g.counts["logs_correlated"] == 0
    assert not any(log.record.trace_id for log in g.logs)
    assert g.counts["application_metrics"] == 0 and g.counts["exemplars"] == 0


# --- RED metrics and their exemplars -------------------------------------------------

def application_metrics(g: Generated) -> list[tuple[tuple[tuple[str, object], ...], Any]]:
    """(resource, metric) for every metric of the application records."""
    out = []
    for record in g.templates.metrics:
        for rm in decode_record("metrics", record).resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name in APPLICATION_METRICS:
                        out.append((_resource(rm.resource), metric))
    return out


def bucket_bounds(metric: Any, point: Any, value: float) -> tuple[float, float, int]:
    """(lower, upper, count) of the bucket holding `value`: explicit buckets
    are (bounds[i-1], bounds[i]], exponential ones (base**j, base**(j+1)]."""
    if metric.WhichOneof("data") == "histogram":
        bounds = [-math.inf, *point.explicit_bounds, math.inf]
        for i, count in enumerate(point.bucket_counts):
            if bounds[i] < value <= bounds[i + 1]:
                return bounds[i], bounds[i + 1], count
        raise AssertionError(value)
    base = 2 ** (2 ** -point.scale)
    offset = point.positive.offset
    for i, count in enumerate(point.positive.bucket_counts):
        if base ** (offset + i) < value <= base ** (offset + i + 1):
            return base ** (offset + i), base ** (offset + i + 1), count
    raise AssertionError(f"{value} outside every bucket")


def points(metric: Any) -> list:
    return list(getattr(metric, metric.WhichOneof("data")).data_points)


@pytest.mark.parametrize("generation", ["stable", "legacy"])
def test_every_exemplar_names_a_span_of_its_series_and_lies_in_its_bucket(generation: str) -> None:
    g = generated(semantic_conventions=generation)
    found = application_metrics(g)
    assert {m.name for _, m in found} >= ({"http.server.request.duration"} if generation == "stable"
                                          else {"http.server.duration"})
    exemplars = 0
    for resource, metric in found:
        per_second = {"s": 1.0, "ms": 1e3}[metric.unit]
        server = ".server." in metric.name
        for point in points(metric):
            a = attrs(point)
            assert 1 <= len(point.exemplars) <= 4
            for exemplar in point.exemplars:
                exemplars += 1
                traced = g.spans.get((exemplar.trace_id, exemplar.span_id))
                assert traced is not None, "names no span of the traces templates"
                span, s = traced.span, traced.attrs
                assert traced.resource == resource, "a span of that service instance"
                assert span.kind == (Span.SPAN_KIND_SERVER if server else Span.SPAN_KIND_CLIENT)
                if metric.name.startswith("http."):
                    method = "http.request.method" if generation == "stable" else "http.method"
                    status = "http.response.status_code" if generation == "stable" else "http.status_code"
                    assert s[method] == a[method] and s[status] == a[status]
                    if server:
                        assert s["http.route"] == a["http.route"]
                else:
                    assert (s["rpc.service"], s["rpc.method"]) == (a["rpc.service"], a["rpc.method"])
                    assert s["rpc.grpc.status_code"] == a["rpc.grpc.status_code"]
                duration = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e9 * per_second
                assert exemplar.as_double == pytest.approx(duration, rel=1e-12)
                lower, upper, count = bucket_bounds(metric, point, exemplar.as_double)
                assert lower < exemplar.as_double <= upper and count > 0
                assert TIME_BASE_NS <= exemplar.time_unix_nano <= POINT_NS
    assert exemplars == g.counts["exemplars"] > 0


def test_histograms_count_the_spans_of_their_series() -> None:
    g = generated()
    # The server spans of each (service instance, route, method, status):
    # the histogram of that series counts exactly them.
    expected: Counter = Counter()
    for traced in g.spans.values():
        s = traced.attrs
        if traced.span.kind == Span.SPAN_KIND_SERVER and "http.route" in s:
            key = (dict(traced.resource)["service.instance.id"], s["http.request.method"], s["http.route"],
                   s["http.response.status_code"], s["url.scheme"])
            expected[key] += 1
    seen: Counter = Counter()
    for resource, metric in application_metrics(g):
        assert getattr(metric, metric.WhichOneof("data")).aggregation_temporality == 2  # cumulative
        for point in points(metric):
            assert point.start_time_unix_nano == TIME_BASE_NS and point.time_unix_nano == POINT_NS
            assert point.min <= point.sum / point.count <= point.max
            if metric.WhichOneof("data") == "histogram":
                assert sum(point.bucket_counts) == point.count
                assert list(point.explicit_bounds) == [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1,
                                                       2.5, 5, 7.5, 10] or metric.unit == "ms"
            else:
                assert sum(point.positive.bucket_counts) + point.zero_count == point.count
                assert len(point.positive.bucket_counts) <= 160 and point.scale <= 3
            if metric.name == "http.server.request.duration":
                a = attrs(point)
                key = (dict(resource)["service.instance.id"], a["http.request.method"], a["http.route"],
                       a["http.response.status_code"], a["url.scheme"])
                seen[key] += point.count
    assert seen == expected


@pytest.mark.parametrize("generation", ["stable", "legacy"])
def test_each_series_has_one_point(generation: str) -> None:
    """A backend keys a series by resource, metric name and point attributes:
    two points of one series in a request would be one series twice."""
    g = generated(semantic_conventions=generation)
    series = Counter((resource, metric.name, tuple(sorted(attrs(point).items())))
                     for resource, metric in application_metrics(g) for point in points(metric))
    assert series and max(series.values()) == 1
    assert len(series) == g.counts["application_series"]


def test_metric_resources_are_the_services_trace_resources() -> None:
    g = generated()
    trace_resources = {traced.resource for traced in g.spans.values()}
    resources = {resource for resource, _ in application_metrics(g)}
    assert resources and resources <= trace_resources
    for resource in resources:
        r = dict(resource)
        assert r["service.name"] and r["service.namespace"] == "shop" and r["service.instance.id"]


def test_host_and_k8s_metrics_have_no_exemplars() -> None:
    g = generated()
    for record in g.templates.metrics:
        for rm in decode_record("metrics", record).resource_metrics:
            for metric in (m for sm in rm.scope_metrics for m in sm.metrics):
                if metric.name not in APPLICATION_METRICS:
                    assert not any(p.exemplars for p in points(metric)), metric.name


@pytest.mark.parametrize("kind, expected", [
    ("both", {"histogram", "exponential_histogram"}),
    ("explicit", {"histogram"}),
    ("exponential", {"exponential_histogram"}),
])
def test_histogram_kinds(kind: str, expected: set[str]) -> None:
    g = generated(**{"metrics.application.histograms": kind})
    kinds = {metric.WhichOneof("data") for _, metric in application_metrics(g)}
    assert kinds == expected
    if kind == "both":
        by_name = {metric.name: metric.WhichOneof("data") for _, metric in application_metrics(g)}
        assert by_name["http.server.request.duration"] == "histogram"
        assert by_name["http.client.request.duration"] == "exponential_histogram"


def test_application_metrics_can_be_turned_off_and_counted() -> None:
    on = generated()
    off = generated(**{"metrics.application.enabled": False})
    assert off.counts["application_metrics"] == off.counts["exemplars"] == 0
    assert on.counts["metrics"] == off.counts["metrics"] + on.counts["application_metrics"]
    assert on.counts["series"] == off.counts["series"] + on.counts["application_series"]
    assert on.counts["application_series"] == sum(len(points(m)) for _, m in application_metrics(on))
    # The host and k8s metrics do not change with them.
    assert on.templates.metrics[:50] == off.templates.metrics
    none = generated(**{"metrics.application.exemplars": 0})
    assert none.counts["exemplars"] == 0
    assert not any(p.exemplars for _, m in application_metrics(none) for p in points(m))


# --- exponential histograms on the wire -----------------------------------------------

def fields(data: bytes, start: int = 0, end: int | None = None):
    """(number, wire type, value start, value end) of each field in data[start:end]."""
    return iter_fields(data, start, end)


def nested(data: bytes, path: tuple[int, ...], start: int = 0, end: int | None = None):
    """Every length-delimited field reached by following field numbers `path`."""
    for number, wire, s, e in fields(data, start, end):
        if number == path[0]:
            if len(path) == 1:
                yield s, e
            else:
                assert wire == 2
                yield from nested(data, path[1:], s, e)


# request.resource_metrics(1).scope_metrics(2).metrics(2).exponential_histogram(10).data_points(1)
EXPONENTIAL_POINTS = (1, 2, 2, 10, 1)


def test_exponential_bucket_counts_are_10_byte_varints() -> None:
    g = generated(**{"metrics.application.histograms": "exponential"})
    checked = 0
    for record in g.templates.metrics:
        for start, end in nested(record, EXPONENTIAL_POINTS):
            wires = {number: wire for number, wire, _, _ in fields(record, start, end)}
            # count (4) and zero_count (7) fixed64, sum (5) a double, when present.
            assert wires[4] == 1 and wires[5] == 1 and wires.get(7, 1) == 1
            for buckets_start, buckets_end in nested(record, (8, 2), start, end):  # positive.bucket_counts
                pos = buckets_start
                while pos < buckets_end:
                    _, after = decode_varint(record, pos)
                    assert after - pos == 10
                    pos = after
                    checked += 1
    assert checked > 100


def test_the_kernel_scans_them_and_plans_the_exemplar_ids() -> None:
    g = generated()
    for record in g.templates.metrics:
        request = decode_record("metrics", record)
        names = {m.name for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        plan = _fastpath.scan("metrics", record)
        exemplars = [e for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                     for p in points(m) for e in p.exemplars]
        assert len(plan.ids16) == len(plan.ids8) == len(exemplars)
        for row, exemplar in zip(plan.ids16, exemplars):
            assert record[row[0]:row[0] + 16] == exemplar.trace_id
        for row, exemplar in zip(plan.ids8, exemplars):
            assert record[row[0]:row[0] + 8] == exemplar.span_id
        if names & APPLICATION_METRICS:
            assert exemplars
            # Exemplar times are "now" on every send, as the points' own.
            assert len(plan.time_now) >= len(exemplars)


# --- configuration ---------------------------------------------------------------------

@pytest.mark.parametrize("path, value, expected", [
    ("logs.correlation.share", 1.5, "1.5 is invalid: expected a number between 0 and 1"),
    ("logs.correlation.share", -0.1, "-0.1 is invalid: expected a number between 0 and 1"),
    ("metrics.application.histograms", "native",
     "'native' is invalid: expected one of explicit, exponential, both"),
    ("metrics.application.exponential_scale", 21, "21 is invalid: expected an integer between -10 and 20"),
    ("metrics.application.exemplars", -1, "-1 is invalid: expected an integer >= 0"),
    ("metrics.application.enabled", "yes", "'yes' is invalid: expected true or false"),
])
def test_bad_values_name_the_key(path: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {expected}")):
        telegen.GeneratorConfig.from_dict(_nested(path, value))


def _nested(path: str, value: object) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    data: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        data = {part: data}
    return data
