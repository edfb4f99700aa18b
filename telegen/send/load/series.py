"""How many metric series a run writes each pass, counted two ways: as OTLP
series (resource, metric, point attributes) and as a Prometheus-style store
keeps them (one series per histogram bucket, `_sum` and `_count`, and a
`target_info` per resource), so what a backend stores can be checked
against what was sent. Read from the loaded batches once, after a run: not
on the send path."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from .batches import SignalTemplates

# The resource attributes a Prometheus-style store turns into `job` and
# `instance`; any other resource attribute goes to `target_info` only.
IDENTIFYING = ("service.namespace", "service.name", "service.instance.id")


@dataclass(frozen=True)
class SeriesCount:
    otlp: int  # distinct (resource, scope, metric, point attributes)
    prometheus: int  # what a Prometheus-style store holds for them

    def __mul__(self, copies: int) -> SeriesCount:
        return SeriesCount(self.otlp * copies, self.prometheus * copies)


def _pairs(attributes: Iterable[KeyValue]) -> tuple[tuple[str, bytes], ...]:
    return tuple(sorted((kv.key, kv.value.SerializeToString()) for kv in attributes))


def _requests(templates: SignalTemplates) -> Iterator[ExportMetricsServiceRequest]:
    for batch in templates.batches:
        for start, end in batch.pieces:
            yield ExportMetricsServiceRequest.FromString(batch.data[start:end])


def count_series(templates: SignalTemplates) -> SeriesCount:
    """The distinct series one pass of `templates` writes, all its copies
    (series multiplier, shard) included. A copy differs from another only in
    its instance id, so each copy's series are as many again."""
    otlp: set[tuple] = set()
    prometheus: set[tuple] = set()
    for request in _requests(templates):
        for rm in request.resource_metrics:
            attrs = {kv.key: kv.value.SerializeToString() for kv in rm.resource.attributes}
            job_instance = tuple(attrs.get(key) for key in IDENTIFYING)
            resource = _pairs(rm.resource.attributes)
            if any(key not in IDENTIFYING for key in attrs) and any(v is not None for v in job_instance):
                prometheus.add(("target_info", job_instance))
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point, extra in _points(metric):
                        labels = _pairs(point.attributes)
                        otlp.add((resource, sm.scope.name, metric.name, labels))
                        for suffix in extra:
                            prometheus.add((metric.name, suffix, job_instance, labels))
    return SeriesCount(len(otlp), len(prometheus)) * templates.copies.count


def _points(metric) -> Iterator[tuple[object, tuple[str, ...]]]:
    """Each point with the Prometheus series it becomes (name suffixes)."""
    kind = metric.WhichOneof("data")
    if kind in ("gauge", "sum"):
        for point in getattr(metric, kind).data_points:
            yield point, ("",)
    elif kind == "histogram":
        for point in metric.histogram.data_points:
            buckets = tuple(f"_bucket{{le={bound!r}}}" for bound in point.explicit_bounds) + ("_bucket{le=+Inf}",)
            yield point, (*buckets, "_count", *(("_sum",) if point.HasField("sum") else ()))
    elif kind == "summary":
        for point in metric.summary.data_points:
            quantiles = tuple(f"{{quantile={q.quantile!r}}}" for q in point.quantile_values)
            yield point, (*quantiles, "_count", "_sum")
    elif kind == "exponential_histogram":  # a native histogram: one series
        for point in metric.exponential_histogram.data_points:
            yield point, ("",)
