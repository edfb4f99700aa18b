"""Log templates, decoded with the official opentelemetry-proto classes."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from telegen.generate import log_catalog
from telegen.generate.base import TIME_BASE_NS
from telegen.generate.config import (
    ApplicationLogsConfig,
    GeneratorConfig,
    HttpAccessLogsConfig,
    LogsConfig,
    LogTypesConfig,
    SystemLogsConfig,
)
from telegen.generate.logs import generate_logs, split_counts

SEVERITY_NUMBERS = {"DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17}
# CLF without its time field: client, ident, user, request line, status, size.
CLF = re.compile(r'^(\S+) - - "([A-Z]+) (\S+) HTTP/([\d.]+)" (\d{3}) (\d+)$')
DATE = re.compile(r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b|\b\d{1,2}/[A-Z][a-z]{2}/\d{4}\b")
CLOCK = re.compile(r"\b\d{1,2}:\d{2}:\d{2}\b")
EPOCH = re.compile(r"\b\d{10,}\b")


@dataclass(frozen=True)
class Decoded:
    resource: dict[str, object]
    scope: str
    record: LogRecord
    attrs: dict[str, object]

    @property
    def kind(self) -> str:
        if "log.source" in self.attrs:
            return "system"
        if "http.request.method" in self.attrs or "http.method" in self.attrs:
            return "http_access"
        return "application"


def _value(value: AnyValue) -> object:
    return getattr(value, value.WhichOneof("value"))


def decode(raw: bytes) -> Decoded:
    request = ExportLogsServiceRequest.FromString(raw)
    assert len(request.resource_logs) == 1
    resource_logs = request.resource_logs[0]
    assert len(resource_logs.scope_logs) == 1
    scope_logs = resource_logs.scope_logs[0]
    assert len(scope_logs.log_records) == 1
    record = scope_logs.log_records[0]
    return Decoded(
        resource={kv.key: _value(kv.value) for kv in resource_logs.resource.attributes},
        scope=scope_logs.scope.name,
        record=record,
        attrs={kv.key: _value(kv.value) for kv in record.attributes},
    )


def logs_config(count: int, split: tuple[float, float, float] = (40, 40, 20), services: int = 5,
                weights: dict[str, float] | None = None, generation: str = "stable") -> GeneratorConfig:
    application = ApplicationLogsConfig(percentage=split[1], services=services)
    if weights is not None:
        application = ApplicationLogsConfig(percentage=split[1], services=services, severity_weights=weights)
    types = LogTypesConfig(http_access=HttpAccessLogsConfig(split[0]), application=application,
                           system=SystemLogsConfig(split[2]))
    return GeneratorConfig(logs=LogsConfig(count=count, types=types), semantic_conventions=generation)


@cache
def generated(count: int = 10_000, split: tuple[float, float, float] = (40, 40, 20), seed: int = 7,
              generation: str = "stable") -> tuple[dict[str, int], tuple[Decoded, ...]]:
    out = generate_logs(logs_config(count, split, generation=generation), np.random.default_rng(seed))
    return out.counts, tuple(decode(raw) for raw in out.records)


def of_kind(kind: str, **kwargs) -> list[Decoded]:
    return [d for d in generated(**kwargs)[1] if d.kind == kind]


# --- split ----------------------------------------------------------------------

@pytest.mark.parametrize("split", [(40, 40, 20), (10, 70, 20)])
def test_split_within_two_points(split: tuple[float, float, float]) -> None:
    counts, logs = generated(10_000, split)
    seen = Counter(d.kind for d in logs)
    assert len(logs) == counts["logs"] == 10_000
    for kind, percentage in zip(("http_access", "application", "system"), split):
        assert abs(100 * seen[kind] / len(logs) - percentage) <= 2
        assert seen[kind] == counts[kind]


def test_types_interleave() -> None:
    kinds = [d.kind for d in generated()[1][:200]]
    changes = sum(a != b for a, b in zip(kinds, kinds[1:]))
    assert changes > 50


def test_split_counts_largest_remainder() -> None:
    assert split_counts(7, (40, 40, 20)) == [3, 3, 1]
    assert split_counts(10, (33.3, 33.3, 33.4)) == [3, 3, 4]
    assert sum(split_counts(99_991, (12.5, 62.5, 25))) == 99_991


def test_zero_count() -> None:
    out = generate_logs(logs_config(0), np.random.default_rng(1))
    assert out.records == []
    assert out.counts == {"logs": 0, "http_access": 0, "application": 0, "system": 0, "logs_correlated": 0}


# --- every record ---------------------------------------------------------------

def test_records_are_canonical_protobuf() -> None:
    """Hand-framed requests must be exactly what protobuf itself writes."""
    out = generate_logs(logs_config(300), np.random.default_rng(11))
    for raw in out.records:
        assert ExportLogsServiceRequest.FromString(raw).SerializeToString() == raw


def test_severity_number_matches_text() -> None:
    for d in generated()[1]:
        assert d.record.severity_number == SEVERITY_NUMBERS[d.record.severity_text]


def test_times_are_relative_and_non_zero() -> None:
    for d in generated()[1]:
        record = d.record
        assert record.time_unix_nano == TIME_BASE_NS
        delay = record.observed_time_unix_nano - record.time_unix_nano
        assert 1_000_000 <= delay <= 500_000_000
        assert 0 < record.time_unix_nano < 10**15 and 0 < record.observed_time_unix_nano < 10**15


def _strings(d: Decoded) -> list[str]:
    values = [d.record.body.string_value, d.scope, *d.resource.values(), *d.attrs.values()]
    return [str(v) for v in values]


@pytest.mark.parametrize("generation", ["stable", "legacy"])
def test_no_timestamps_in_bodies_or_attributes(generation: str) -> None:
    for d in generated(generation=generation)[1]:
        for text in _strings(d):
            assert not DATE.search(text), text
            assert not CLOCK.search(text), text
            assert not EPOCH.search(text), text


def test_no_trace_context_without_spans() -> None:
    """Without traces to name (no span index) no log carries trace ids: ids
    that name no span would be dangling links. tests/test_correlation.py
    covers the logs emitted inside generated spans."""
    for d in generated()[1]:
        assert not d.record.trace_id and not d.record.span_id and not d.record.flags
    assert generated()[0]["logs_correlated"] == 0


# --- HTTP access logs ------------------------------------------------------------

def test_http_body_is_clf_without_time_and_agrees_with_attributes() -> None:
    for d in of_kind("http_access"):
        match = CLF.match(d.record.body.string_value)
        assert match, d.record.body.string_value
        client, method, path, protocol, status, size = match.groups()
        a = d.attrs
        assert a["client.address"] == client
        assert a["http.request.method"] == method
        assert a["url.path"] == path
        assert protocol in (a["network.protocol.version"], a["network.protocol.version"] + ".0")
        assert a["http.response.status_code"] == int(status)
        assert a["http.response.body.size"] == int(size)
        assert a["user_agent.original"]
        expected = "ERROR" if int(status) >= 500 else "WARN" if int(status) >= 400 else "INFO"
        assert d.record.severity_text == expected


def test_http_method_and_status_mix() -> None:
    logs = of_kind("http_access", count=20_000, split=(100, 0, 0))
    methods = Counter(d.attrs["http.request.method"] for d in logs)
    assert methods["GET"] > 3 * methods["POST"] > 0
    assert methods["POST"] > methods["PUT"] > methods["DELETE"] > methods["PATCH"] > 0
    statuses = [d.attrs["http.response.status_code"] for d in logs]
    share = lambda test: sum(map(test, statuses)) / len(statuses)  # noqa: E731
    assert share(lambda s: s == 200) > 0.6
    assert 0.04 < share(lambda s: 400 <= s < 500) < 0.08
    assert 0.007 < share(lambda s: s >= 500) < 0.025
    assert {201, 204, 301, 304} <= set(statuses)
    assert any(re.search(r"/\d{4,}", d.attrs["url.path"]) for d in logs)


def test_http_resources_are_a_web_tier() -> None:
    names = {d.resource["service.name"] for d in of_kind("http_access")}
    assert names == {"nginx", "envoy", "api-gateway"}
    for d in of_kind("http_access"):
        assert d.resource["host.name"] and d.resource["deployment.environment.name"] == "production"


# --- application logs ------------------------------------------------------------

def test_application_severity_mix_follows_default_weights() -> None:
    logs = of_kind("application")
    seen = Counter(d.record.severity_text for d in logs)
    weights = {"DEBUG": 15, "INFO": 60, "WARN": 15, "ERROR": 10}
    for severity, weight in weights.items():
        # Four binomial standard deviations at 4,000 records is under 3 points.
        assert abs(seen[severity] / len(logs) - weight / 100) < 0.03


@pytest.mark.parametrize("weights, expected", [
    ({"ERROR": 1.0}, {"ERROR": 1.0}),
    ({"DEBUG": 0.0, "INFO": 0.0, "WARN": 3.0, "ERROR": 1.0}, {"WARN": 0.75, "ERROR": 0.25}),
])
def test_application_severity_custom_weights(weights: dict[str, float], expected: dict[str, float]) -> None:
    out = generate_logs(logs_config(4_000, (0, 100, 0), weights=weights), np.random.default_rng(3))
    seen = Counter(decode(raw).record.severity_text for raw in out.records)
    assert set(seen) == set(expected)
    for severity, share in expected.items():
        assert abs(seen[severity] / 4_000 - share) < 0.03


def test_application_errors_carry_exceptions_matching_the_language() -> None:
    logs = of_kind("application")
    errors = [d for d in logs if d.record.severity_text == "ERROR"]
    assert errors
    for d in errors:
        language = log_catalog.LANGUAGES[d.resource["telemetry.sdk.language"]]
        assert d.attrs["exception.type"] in {e.type for e in language.exceptions.values()}
        assert d.attrs["exception.message"]
    assert not any("exception.type" in d.attrs for d in logs if d.record.severity_text != "ERROR")


def test_application_resources_and_messages_look_real() -> None:
    logs = of_kind("application")
    for d in logs:
        for key in ("service.name", "service.version", "service.instance.id", "host.name",
                    "deployment.environment.name", "telemetry.sdk.language", "telemetry.sdk.name",
                    "telemetry.sdk.version"):
            assert d.resource[key], key
        assert "{" not in d.record.body.string_value
        assert d.attrs["code.function.name"]
    # Variable parts make most lines unique, as in real logs.
    assert len({d.record.body.string_value for d in logs}) > 0.7 * len(logs)
    for severity in SEVERITY_NUMBERS:
        assert len(log_catalog.GENERIC_TEMPLATES[severity]) >= 15
    payments = [d.record.body.string_value for d in logs if d.resource["service.name"] == "payment-service"]
    assert any("Payment" in body or "Refund" in body or "Captured" in body for body in payments)


def test_application_service_count() -> None:
    out = generate_logs(logs_config(6_000, (0, 100, 0), services=12), np.random.default_rng(5))
    names = {decode(raw).resource["service.name"] for raw in out.records}
    assert len(names) == 12
    assert {"api-gateway", "user-service", "order-service", "payment-service", "inventory-service"} <= names


# --- system logs ----------------------------------------------------------------

def test_system_logs_carry_source_and_event_type() -> None:
    logs = of_kind("system")
    events = Counter(d.attrs["event.type"] for d in logs)
    assert {"startup", "shutdown", "resource_alert", "oom_kill", "health_check_failed"} <= set(events)
    assert {d.attrs["log.source"] for d in logs} == {"systemd", "kubelet", "kernel", "containerd", "app"}
    for d in logs:
        assert d.resource["host.name"] and "service.name" not in d.resource
        event = d.attrs["event.type"]
        if event in ("oom_kill", "node_not_ready"):
            assert d.record.severity_text == "ERROR"
        if event in ("startup", "config_reload"):
            assert d.record.severity_text == "INFO"


# --- semantic conventions and determinism -----------------------------------------

def test_legacy_attribute_names() -> None:
    http = of_kind("http_access", generation="legacy")
    for d in http:
        assert {"http.method", "http.status_code", "http.target", "http.user_agent"} <= set(d.attrs)
        assert "http.request.method" not in d.attrs and "url.path" not in d.attrs
        assert d.resource["deployment.environment"] == "production"
    app = of_kind("application", generation="legacy")
    assert all("code.function" in d.attrs and "code.function.name" not in d.attrs for d in app)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    config = logs_config(2_000)
    first = generate_logs(config, np.random.default_rng(42)).records
    assert first == generate_logs(config, np.random.default_rng(42)).records
    assert first != generate_logs(config, np.random.default_rng(43)).records
