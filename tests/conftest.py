"""Shared helpers: decode templates with the official opentelemetry-proto classes."""
from __future__ import annotations

from dataclasses import replace

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from telegen.generate.config import (
    GeneratorConfig,
    HighSpanTracesConfig,
    LogsConfig,
    MetricsConfig,
    SpansConfig,
    TimeseriesPerMetricConfig,
    TracesConfig,
)


def decode_traces(record: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(record)
    return message


def decode_metrics(record: bytes) -> ExportMetricsServiceRequest:
    message = ExportMetricsServiceRequest()
    message.ParseFromString(record)
    return message


def decode_logs(record: bytes) -> ExportLogsServiceRequest:
    message = ExportLogsServiceRequest()
    message.ParseFromString(record)
    return message


def spans_with_resource(record: bytes) -> list[tuple[dict, object, object]]:
    """(resource attributes, scope, span) for every span of one trace record."""
    out = []
    for rs in decode_traces(record).resource_spans:
        resource = {kv.key: kv.value for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            out.extend((resource, ss.scope, span) for span in ss.spans)
    return out


def attr(obj, key: str):
    """The Python value of attribute `key` of a span/log/point, or None."""
    for kv in obj.attributes:
        if kv.key == key:
            which = kv.value.WhichOneof("value")
            return getattr(kv.value, which)
    return None


def small_config(**overrides) -> GeneratorConfig:
    """A config that generates all three signals in well under a second."""
    config = GeneratorConfig(
        seed=1234,
        traces=TracesConfig(count=60, spans=SpansConfig(
            avg_per_trace=12, std_dev=4, high_span_traces=HighSpanTracesConfig(enabled=True, count=1, span_count=500))),
        metrics=MetricsConfig(metric_count=20, timeseries_per_metric=TimeseriesPerMetricConfig(min=5, max=20, default=10)),
        logs=LogsConfig(count=300),
    )
    return replace(config, **overrides)


@pytest.fixture
def small() -> GeneratorConfig:
    return small_config()
