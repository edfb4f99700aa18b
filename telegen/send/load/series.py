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

from ...promstyle import IDENTIFYING, data_points, job_instance, point_series
from .batches import SignalTemplates


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
    (series multiplier, shard, tenants) included. A copy differs from another
    only in its instance id, so each copy's series are as many again. With
    tenants: once every tenant has had every batch (see telegen.send.tenants)."""
    otlp: set[tuple] = set()
    prometheus: set[tuple] = set()
    for request in _requests(templates):
        for rm in request.resource_metrics:
            attributes = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
            identity = job_instance(attributes)
            resource = _pairs(rm.resource.attributes)
            if identity and any(key not in IDENTIFYING for key in attributes):
                prometheus.add(("target_info", identity))
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind, points = data_points(metric)
                    for point in points:
                        labels = _pairs(point.attributes)
                        otlp.add((resource, sm.scope.name, metric.name, labels))
                        for suffix in point_series(kind, point):
                            prometheus.add((metric.name, suffix, identity, labels))
    return SeriesCount(len(otlp), len(prometheus)) * (templates.copies.count * templates.copies.tenants)
