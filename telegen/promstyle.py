"""What a Prometheus-style store makes of OTLP metrics (OpenTelemetry's
Prometheus compatibility rules): a resource's `job` and `instance`, and the
series a data point becomes. One place, for the series count a run reports
(send/load/series.py) and for finding a sent batch in Prometheus (verify)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

# The resource attributes that become `job` and `instance`; any other resource
# attribute goes to `target_info` only.
IDENTIFYING = ("service.namespace", "service.name", "service.instance.id")


def job_instance(attributes: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The job and instance labels a Prometheus-style store gives a resource."""
    name, namespace = attributes.get("service.name"), attributes.get("service.namespace")
    labels = []
    if name:
        labels.append(("job", f"{namespace}/{name}" if namespace else name))
    if attributes.get("service.instance.id"):
        labels.append(("instance", attributes["service.instance.id"]))
    return tuple(labels)


def data_points(metric) -> tuple[str | None, Sequence]:
    """A Metric's kind (its `data` field) and data points."""
    kind = metric.WhichOneof("data")
    return kind, (getattr(metric, kind).data_points if kind else ())


def point_series(kind: str, point) -> tuple[str, ...]:
    """The series one data point becomes, as name suffixes: a series per
    histogram bucket (`le`), per summary quantile, `_count` and `_sum`; an
    exponential histogram is one native histogram."""
    if kind == "histogram":
        buckets = tuple(f"_bucket{{le={bound!r}}}" for bound in point.explicit_bounds) + ("_bucket{le=+Inf}",)
        return (*buckets, "_count", *(("_sum",) if point.HasField("sum") else ()))
    if kind == "summary":
        return (*(f"{{quantile={q.quantile!r}}}" for q in point.quantile_values), "_count", "_sum")
    return ("",)
