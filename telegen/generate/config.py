"""The generator's configuration: YAML -> typed, validated, immutable objects.

The dataclasses below are the schema: telegen.configkit walks their fields and
type hints, so a new key needs only a field here, a rule in `_RULES` when its
range is restricted, and a line in docs/configuration.md. Every default below
is documented there.

Bad input raises `ConfigError` with one message naming the dotted key path,
the offending value and what was expected.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..configkit import (
    AT_LEAST_0,
    AT_LEAST_1,
    Derive,
    FileNamePrefix,
    NonEmpty,
    OneOf,
    Range,
    Rule,
    Schema,
    build_dataclass,
    did_you_mean,
    invalid,
    num,
    parse_yaml,
    read_source,
    read_text,
    set_dotted,
    to_plain,
)
from ..errors import ConfigError

DEFAULT_SERVICE_NAMES: tuple[str, ...] = (
    "api-gateway",
    "user-service",
    "order-service",
    "payment-service",
    "inventory-service",
)
METRIC_TYPES: tuple[str, ...] = ("host_metrics", "k8s_cluster", "k8s_node", "k8s_pod", "k8s_container")
SEVERITIES: tuple[str, ...] = ("DEBUG", "INFO", "WARN", "ERROR")
SEMCONV_GENERATIONS: tuple[str, ...] = ("stable", "legacy")
HISTOGRAM_KINDS: tuple[str, ...] = ("explicit", "exponential", "both")


@dataclass(frozen=True)
class OutputConfig:
    directory: str = "./generated"
    prefix: str = "telemetry"


@dataclass(frozen=True)
class HighSpanTracesConfig:
    enabled: bool = True
    count: int = 10
    span_count: int = 100000


@dataclass(frozen=True)
class SpansConfig:
    avg_per_trace: float = 15.0
    std_dev: float = 5.0
    high_span_traces: HighSpanTracesConfig = field(default_factory=HighSpanTracesConfig)


@dataclass(frozen=True)
class IngressConfig:
    single: bool = True
    service: str = "api-gateway"
    # Used when single is false: the services that receive external traffic.
    # Empty means every service may start a trace.
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServicesConfig:
    count: int = 5
    names: tuple[str, ...] = DEFAULT_SERVICE_NAMES
    ingress: IngressConfig = field(default_factory=IngressConfig)

    def resolved_names(self) -> tuple[str, ...]:
        """The `count` service names the generator uses (see service_names)."""
        return service_names(self.names, self.count)


@dataclass(frozen=True)
class CustomAttributesConfig:
    count: int = 10
    # Probability that a span carries the custom attributes.
    probability: float = 0.3


@dataclass(frozen=True)
class TracesConfig:
    count: int = 10000
    spans: SpansConfig = field(default_factory=SpansConfig)
    services: ServicesConfig = field(default_factory=ServicesConfig)
    custom_attributes: CustomAttributesConfig = field(default_factory=CustomAttributesConfig)
    # Fraction of traces whose request fails (5xx, status ERROR, exception event).
    error_rate: float = 0.03


@dataclass(frozen=True)
class TimeseriesPerMetricConfig:
    min: int = 100
    max: int = 500
    default: int = 300


@dataclass(frozen=True)
class ApplicationMetricsConfig:
    """RED metrics of the generated services, computed from the generated spans."""

    enabled: bool = True
    # explicit: every latency metric has explicit buckets; exponential: every
    # one is an exponential histogram; both: server durations explicit, client
    # and RPC durations exponential, so the default output has each kind.
    histograms: str = "both"
    # The finest scale; a point whose values span more than 160 buckets at it
    # is written at the largest scale that fits, as an SDK downscales.
    exponential_scale: int = 3
    # Most exemplars per data point (one per non-empty bucket at most); 0: none.
    exemplars: int = 4


@dataclass(frozen=True)
class MetricsConfig:
    metric_count: int = 2000
    timeseries_per_metric: TimeseriesPerMetricConfig = field(default_factory=TimeseriesPerMetricConfig)
    types: tuple[str, ...] = METRIC_TYPES
    application: ApplicationMetricsConfig = field(default_factory=ApplicationMetricsConfig)


@dataclass(frozen=True)
class HttpAccessLogsConfig:
    percentage: float = 40.0


@dataclass(frozen=True)
class ApplicationLogsConfig:
    percentage: float = 40.0
    services: int = 5
    # Relative weights; they need not sum to 1 or 100.
    severity_weights: dict[str, float] = field(
        default_factory=lambda: {"DEBUG": 15.0, "INFO": 60.0, "WARN": 15.0, "ERROR": 10.0}
    )


@dataclass(frozen=True)
class SystemLogsConfig:
    percentage: float = 20.0


@dataclass(frozen=True)
class LogTypesConfig:
    http_access: HttpAccessLogsConfig = field(default_factory=HttpAccessLogsConfig)
    application: ApplicationLogsConfig = field(default_factory=ApplicationLogsConfig)
    system: SystemLogsConfig = field(default_factory=SystemLogsConfig)


@dataclass(frozen=True)
class LogCorrelationConfig:
    # Share of HTTP access and application logs emitted inside a generated
    # span (its trace and span id, a time within it, its resource). With the
    # default 40/40/20 split, 0.85 makes 68 % of all logs correlated.
    share: float = 0.85


@dataclass(frozen=True)
class LogsConfig:
    count: int = 50000
    types: LogTypesConfig = field(default_factory=LogTypesConfig)
    correlation: LogCorrelationConfig = field(default_factory=LogCorrelationConfig)


@dataclass(frozen=True)
class GeneratorConfig:
    output: OutputConfig = field(default_factory=OutputConfig)
    traces: TracesConfig = field(default_factory=TracesConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    # None: generate() draws a seed and records it in metadata.yaml.
    seed: int | None = None
    semantic_conventions: str = "stable"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, source: str = "<dict>") -> GeneratorConfig:
        """Validate plain data (as YAML gives it). Keys left out take their defaults.

        `source` prefixes every error message unless it is a `<placeholder>`.
        """
        return build_dataclass(cls, data, source, _GENERATOR_SCHEMA, _RELATIONS)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> GeneratorConfig:
        """Parse one YAML document; an empty document means all defaults."""
        return cls.from_dict(parse_yaml(text, source), source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> GeneratorConfig:
        """Read a YAML config file (UTF-8)."""
        return cls.from_yaml(read_text(path), os.fspath(path))

    @classmethod
    def load(cls, source: GeneratorConfig | Mapping[str, Any] | str | os.PathLike[str]) -> GeneratorConfig:
        """A config from whatever the caller has: a mapping, a path or YAML text.

        A str is a path when it is one line that ends in .yaml/.yml or names an
        existing file; otherwise it is YAML text.
        """
        if isinstance(source, GeneratorConfig):
            return source
        data, name = read_source(source)
        return cls.from_dict(data, name)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-safe data (dicts, lists, scalars); from_dict(to_dict())
        gives an equal config. A literal "${" in a string is written as "$${"
        so that loading it again does not substitute it."""
        return to_plain(self)

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "<override>") -> GeneratorConfig:
        """A validated copy with dotted keys replaced, e.g.
        {"output.directory": "/tmp/x", "seed": 7} (what the CLI flags override)."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            set_dotted(data, dotted, value)
        return type(self).from_dict(data, source)


# Names used, in order, when a config asks for more services than it names.
EXTRA_SERVICE_NAMES: tuple[str, ...] = (
    "shipping-service", "notification-service", "search-service", "recommendation-service",
    "auth-service", "cart-service", "catalog-service", "email-service", "fraud-service",
    "pricing-service", "review-service", "analytics-service", "billing-service",
    "profile-service", "media-service", "session-service", "ledger-service", "quote-service",
)


def service_names(names: tuple[str, ...] | list[str], count: int) -> tuple[str, ...]:
    """Exactly `count` distinct service names: the given ones first, then
    EXTRA_SERVICE_NAMES, then `service-N`."""
    result: list[str] = []
    taken: set[str] = set()
    candidates = list(names) + list(EXTRA_SERVICE_NAMES)
    n = 1
    while len(result) < count:
        if candidates:
            name = candidates.pop(0)
        else:
            name = f"service-{n}"
            n += 1
        if name not in taken:
            taken.add(name)
            result.append(name)
    return tuple(result)


# ---------------------------------------------------------------------------
# Value rules: the ranges and choices the types alone do not express
# ---------------------------------------------------------------------------

_PROBABILITY = Range(low=0, high=1)

# Keyed by dotted path; "[]" means each list item, ".*" each mapping value.
_RULES: dict[str, Rule] = {
    "output.directory": NonEmpty(),
    "output.prefix": FileNamePrefix(),
    "traces.count": AT_LEAST_0,
    "traces.spans.avg_per_trace": Range(low=0, low_open=True),
    "traces.spans.std_dev": AT_LEAST_0,
    "traces.spans.high_span_traces.count": AT_LEAST_0,
    "traces.spans.high_span_traces.span_count": AT_LEAST_0,
    "traces.services.count": AT_LEAST_0,
    "traces.services.names[]": NonEmpty(),
    "traces.services.ingress.service": NonEmpty(),
    "traces.services.ingress.services[]": NonEmpty(),
    "traces.custom_attributes.count": AT_LEAST_0,
    "traces.custom_attributes.probability": _PROBABILITY,
    "traces.error_rate": _PROBABILITY,
    "metrics.metric_count": AT_LEAST_0,
    "metrics.timeseries_per_metric.min": AT_LEAST_1,
    "metrics.timeseries_per_metric.max": AT_LEAST_1,
    "metrics.timeseries_per_metric.default": AT_LEAST_1,
    "metrics.types[]": OneOf(METRIC_TYPES),
    "metrics.application.histograms": OneOf(HISTOGRAM_KINDS),
    # The scales OTLP allows.
    "metrics.application.exponential_scale": Range(low=-10, high=20),
    "metrics.application.exemplars": AT_LEAST_0,
    "logs.count": AT_LEAST_0,
    "logs.types.http_access.percentage": AT_LEAST_0,
    "logs.types.application.percentage": AT_LEAST_0,
    "logs.types.application.services": AT_LEAST_0,
    "logs.types.application.severity_weights.*": AT_LEAST_0,
    "logs.types.system.percentage": AT_LEAST_0,
    "logs.correlation.share": _PROBABILITY,
    "seed": Range(low=0, high=2**63, high_open=True, high_label="2**63"),
    "semantic_conventions": OneOf(SEMCONV_GENERATIONS),
}

# Mappings whose keys are a fixed, case-insensitive set (normalised to upper case).
_KEY_CHOICES: dict[str, tuple[str, ...]] = {
    "logs.types.application.severity_weights": SEVERITIES,
}


# ---------------------------------------------------------------------------
# Defaults that depend on other values
# ---------------------------------------------------------------------------

def _derive_services(raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    # With renamed services "api-gateway" may not exist; the first service is
    # the natural ingress unless the user names one.
    ingress_raw = raw.get("ingress")
    if isinstance(ingress_raw, Mapping) and "service" in ingress_raw:
        return
    probe = ServicesConfig(**values)
    names = probe.resolved_names()
    if names:
        values["ingress"] = dataclasses.replace(probe.ingress, service=names[0])


def _derive_timeseries(raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    # The midpoint keeps `default` inside user-given bounds (and is 300 for 100..500).
    if "default" not in raw:
        probe = TimeseriesPerMetricConfig(**values)
        values["default"] = (probe.min + probe.max) // 2


_DERIVED_DEFAULTS: dict[type, Derive] = {
    ServicesConfig: _derive_services,
    TimeseriesPerMetricConfig: _derive_timeseries,
}

_GENERATOR_SCHEMA = Schema(rules=_RULES, key_choices=_KEY_CHOICES, derived=_DERIVED_DEFAULTS)


# ---------------------------------------------------------------------------
# Rules across keys
# ---------------------------------------------------------------------------

def _check_high_span_traces(config: GeneratorConfig) -> None:
    high = config.traces.spans.high_span_traces
    if high.enabled and high.span_count < 1:
        raise invalid("traces.spans.high_span_traces.span_count", high.span_count,
                       "an integer >= 1 when traces.spans.high_span_traces.enabled is true")


def _check_services(config: GeneratorConfig) -> None:
    services = config.traces.services
    first_index: dict[str, int] = {}
    for i, name in enumerate(services.names):
        if name in first_index:
            raise invalid(f"traces.services.names[{i}]", name,
                           f"a name not used before (duplicate of traces.services.names[{first_index[name]}])")
        first_index[name] = i
    if config.traces.count == 0:
        return  # traces are off: the service graph is never built
    if services.count < 1:
        raise invalid("traces.services.count", services.count, "an integer >= 1 when traces.count > 0")
    names = services.resolved_names()
    ingress = services.ingress
    if ingress.single:
        _check_is_service("traces.services.ingress.service", ingress.service, names)
    else:
        for i, name in enumerate(ingress.services):
            _check_is_service(f"traces.services.ingress.services[{i}]", name, names)


def _check_is_service(path: str, name: str, names: tuple[str, ...]) -> None:
    if name not in names:
        raise invalid(path, name, f"one of the services {', '.join(names)}" + did_you_mean(name, names))


def _check_timeseries(config: GeneratorConfig) -> None:
    ts = config.metrics.timeseries_per_metric
    base = "metrics.timeseries_per_metric"
    if ts.min > ts.max:
        raise invalid(f"{base}.min", ts.min, f"an integer <= {base}.max ({ts.max})")
    if not ts.min <= ts.default <= ts.max:
        raise invalid(f"{base}.default", ts.default, f"an integer between min ({ts.min}) and max ({ts.max})")


def _check_metric_types(config: GeneratorConfig) -> None:
    metrics = config.metrics
    if metrics.metric_count > 0 and not metrics.types:
        raise invalid("metrics.types", [], f"at least one of {', '.join(METRIC_TYPES)} "
                                            "when metrics.metric_count > 0")
    for i, kind in enumerate(metrics.types):
        if kind in metrics.types[:i]:
            raise invalid(f"metrics.types[{i}]", kind, "each type once")


def _check_log_types(config: GeneratorConfig) -> None:
    kinds = config.logs.types
    parts = {f.name: getattr(kinds, f.name).percentage for f in dataclasses.fields(kinds)}
    total = sum(parts.values())
    if abs(total - 100.0) > 1e-6:
        terms = " + ".join(num(p) for p in parts.values())
        raise ConfigError(f"logs.types: percentages {terms} = {num(total)} are invalid: "
                          f"expected {' + '.join(parts)} to sum to 100")
    app = kinds.application
    if config.logs.count > 0 and app.percentage > 0 and app.services < 1:
        raise invalid("logs.types.application.services", app.services,
                       "an integer >= 1 when logs.types.application.percentage > 0")
    if sum(app.severity_weights.values()) <= 0:
        raise invalid("logs.types.application.severity_weights", app.severity_weights,
                       "at least one weight > 0")


_RELATIONS: tuple[Callable[[GeneratorConfig], None], ...] = (
    _check_high_span_traces,
    _check_services,
    _check_timeseries,
    _check_metric_types,
    _check_log_types,
)
