"""Metric templates, decoded with the official opentelemetry-proto classes."""
from __future__ import annotations

import re
from collections import Counter
from functools import cache

import numpy as np
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE, Metric

from telegen.generate.base import METRIC_INTERVAL_NS, TIME_BASE_NS, SignalTemplates
from telegen.generate.config import METRIC_TYPES, GeneratorConfig, MetricsConfig, TimeseriesPerMetricConfig
from telegen.generate.metric_catalog import CATALOG
from telegen.generate.metrics import generate_metrics

# Units of things counted one by one: always integers. ({cpu} and {thread}
# are fractional: CPU cores in use, load average.)
COUNTED = {"{pod}", "{node}", "{packet}", "{operation}", "{error}", "{process}", "{connection}", "{request}"}
NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


def config(metric_count: int = 40, low: int = 5, high: int = 30, default: int = 15,
           types: tuple[str, ...] = METRIC_TYPES) -> GeneratorConfig:
    series = TimeseriesPerMetricConfig(min=low, max=high, default=default)
    return GeneratorConfig(metrics=MetricsConfig(metric_count=metric_count, timeseries_per_metric=series, types=types))


def generate(cfg: GeneratorConfig, seed: int = 7) -> SignalTemplates:
    return generate_metrics(cfg, np.random.default_rng(seed))


def decode(record: bytes) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest.FromString(record)


def metrics_of(request: ExportMetricsServiceRequest) -> list[Metric]:
    return [m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


def points_of(metric: Metric) -> list:
    return list(getattr(metric, metric.WhichOneof("data")).data_points)


def kind(metric: Metric) -> str:
    data = metric.WhichOneof("data")
    if data == "sum":
        return "counter" if metric.sum.is_monotonic else "updown"
    return data


def series_of(request: ExportMetricsServiceRequest) -> list[tuple]:
    """Each series' identity: its resource attributes plus its point attributes."""
    out = []
    for rm in request.resource_metrics:
        resource = tuple((a.key, a.value.string_value) for a in rm.resource.attributes)
        for metric in (m for sm in rm.scope_metrics for m in sm.metrics):
            for point in points_of(metric):
                out.append((resource, tuple((a.key, a.value.string_value) for a in point.attributes)))
    return out


@cache
def small() -> SignalTemplates:
    return generate(config())


@cache
def default_size() -> SignalTemplates:
    """The default config's 2000 metrics, with few series to stay fast."""
    return generate(config(metric_count=2000, low=1, high=4, default=2))


def summary(templates: SignalTemplates) -> list[tuple[str, str, str]]:
    """(name, unit, kind) per record; every record holds one metric."""
    out = []
    for record in templates.records:
        metrics = metrics_of(decode(record))
        assert len({(m.name, m.unit, kind(m)) for m in metrics}) == 1
        out.append((metrics[0].name, metrics[0].unit, kind(metrics[0])))
    return out


def test_one_record_per_metric_with_distinct_names() -> None:
    templates = small()
    names = [name for name, _, _ in summary(templates)]
    assert len(names) == len(set(names)) == 40
    assert templates.counts["metrics"] == 40


def test_semantic_convention_names_come_first() -> None:
    catalog_size = sum(len(specs) for specs in CATALOG.values())
    by_name = {name: (unit, k) for name, unit, k in summary(generate(config(catalog_size, 1, 3, 2)))}
    assert by_name["system.cpu.utilization"] == ("1", "gauge")
    assert by_name["system.network.io"] == ("By", "counter")
    assert by_name["system.memory.usage"] == ("By", "updown")
    assert by_name["k8s.pod.cpu.usage"][0] == "{cpu}"
    assert by_name["k8s.node.network.io"] == ("By", "counter")
    assert by_name["k8s.container.memory.limit"] == ("By", "updown")
    catalog = {spec.name for specs in CATALOG.values() for spec in specs}
    assert set(by_name) <= catalog


def test_only_configured_types_appear() -> None:
    names = [name for name, _, _ in summary(generate(config(metric_count=300, low=1, high=2, default=1,
                                                            types=("k8s_container",))))]
    assert all(name.startswith(("container.", "k8s.container.")) for name in names)
    host_only = [name for name, _, _ in summary(generate(config(metric_count=50, types=("host_metrics",))))]
    assert all(name.startswith("system.") for name in host_only)


def test_series_counts_within_bounds_and_distinct() -> None:
    templates = small()
    total = 0
    for record in templates.records:
        series = series_of(decode(record))
        assert 5 <= len(series) <= 30
        assert len(set(series)) == len(series)
        total += len(series)
    assert templates.counts["series"] == total


def test_series_counts_concentrate_around_default() -> None:
    counts = [len(series_of(decode(r))) for r in generate(config(metric_count=200, low=10, high=70, default=40)).records]
    assert 10 <= min(counts) and max(counts) <= 70
    assert 36 <= np.mean(counts) <= 44


def test_each_entity_has_its_own_resource_and_realistic_attributes() -> None:
    for record in small().records:
        request = decode(record)
        resources = [tuple((a.key, a.value.string_value) for a in rm.resource.attributes) for rm in request.resource_metrics]
        assert len(set(resources)) == len(resources)
        for rm in request.resource_metrics:
            assert len(rm.scope_metrics) == 1 and len(rm.scope_metrics[0].metrics) == 1
            assert "opentelemetry-collector-contrib/receiver/" in rm.scope_metrics[0].scope.name
    pods = [a.value.string_value for r in small().records for rm in decode(r).resource_metrics
            for a in rm.resource.attributes if a.key == "k8s.pod.name"]
    assert pods and all(re.fullmatch(r"[a-z][a-z-]*-[a-z0-9]{9,10}-[a-z0-9]{5}", pod) for pod in pods)


def test_all_kinds_in_default_size_config() -> None:
    kinds = Counter(k for _, _, k in summary(default_size()))
    assert set(kinds) == {"gauge", "counter", "updown", "histogram"}
    assert kinds["histogram"] >= 0.1 * 2000
    assert sum(kinds.values()) == 2000


def test_sums_are_cumulative_and_values_non_zero() -> None:
    for record in default_size().records[:600]:
        for metric in metrics_of(decode(record)):
            data = metric.WhichOneof("data")
            if data in ("sum", "histogram"):
                assert getattr(metric, data).aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
            for point in points_of(metric):
                if data in ("gauge", "sum"):
                    value = getattr(point, point.WhichOneof("value"))
                    assert value > 0
                    if metric.unit == "1" and point.WhichOneof("value") == "as_double":
                        assert 0 < value < 1
                    if metric.unit in COUNTED:
                        assert point.WhichOneof("value") == "as_int"


def test_histograms_are_consistent() -> None:
    histograms = [m for r in default_size().records for m in metrics_of(decode(r)) if m.WhichOneof("data") == "histogram"]
    assert histograms
    for metric in histograms:
        assert metric.unit == "s"
        for point in metric.histogram.data_points:
            bounds = list(point.explicit_bounds)
            assert bounds == sorted(bounds) and bounds[0] > 0
            assert len(point.bucket_counts) == len(bounds) + 1
            assert sum(point.bucket_counts) == point.count > 0
            assert 0 < point.min <= point.sum / point.count <= point.max


def test_times_are_template_times_never_wall_clock() -> None:
    for record in small().records + default_size().records[:300]:
        for metric in metrics_of(decode(record)):
            cumulative = metric.WhichOneof("data") != "gauge"
            for point in points_of(metric):
                assert point.time_unix_nano == TIME_BASE_NS + METRIC_INTERVAL_NS < 10**15
                assert point.start_time_unix_nano == (TIME_BASE_NS if cumulative else 0)


def test_records_are_canonical_protobuf() -> None:
    # The envelope is framed by hand from cached bytes; it must equal what
    # protobuf itself writes, or the sender's offsets could disagree.
    for record in small().records:
        assert decode(record).SerializeToString() == record


def test_deterministic_for_a_seed() -> None:
    assert generate(config(), seed=3).records == generate(config(), seed=3).records
    assert generate(config(), seed=3).records != generate(config(), seed=4).records


def test_zero_metrics() -> None:
    templates = generate(config(metric_count=0))
    assert templates.records == [] and templates.counts == {"metrics": 0, "series": 0}


@pytest.mark.parametrize("types", [METRIC_TYPES, ("k8s_pod",)])
def test_large_metric_count_gives_unique_plausible_names(types: tuple[str, ...]) -> None:
    templates = generate(config(metric_count=20000, low=1, high=1, default=1, types=types))
    names = [metrics_of(decode(r))[0].name for r in templates.records]
    assert len(set(names)) == 20000
    assert all(NAME.match(name) for name in names)
    assert templates.counts == {"metrics": 20000, "series": 20000}


def test_min_equals_max() -> None:
    templates = generate(config(metric_count=30, low=12, high=12, default=12))
    assert all(len(series_of(decode(r))) == 12 for r in templates.records)


@pytest.mark.parametrize("count", [20, 60])
def test_a_small_config_still_has_gauges_sums_and_histograms(count):
    """Each type's catalog is taken one kind at a time: 60 metrics over the
    five types once held no histogram at all."""
    from telegen.generate.metrics import generate_metrics

    config = GeneratorConfig(seed=7, metrics=MetricsConfig(
        metric_count=count, timeseries_per_metric=TimeseriesPerMetricConfig(min=1, max=3, default=2)))
    kinds = Counter()
    for record in generate_metrics(config, np.random.default_rng(7)).records:
        for rm in ExportMetricsServiceRequest.FromString(record).resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kinds[metric.WhichOneof("data")] += 1
    assert {"gauge", "sum", "histogram"} <= set(kinds), kinds
