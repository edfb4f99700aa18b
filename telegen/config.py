"""YAML configuration -> typed, validated, immutable objects.

Only the dataclass definitions live here for now; parsing and validation
(`GeneratorConfig.from_dict` / `from_yaml` / `from_file` / `load`) are filled
in alongside. Every default below is documented in docs/configuration.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
class MetricsConfig:
    metric_count: int = 2000
    timeseries_per_metric: TimeseriesPerMetricConfig = field(default_factory=TimeseriesPerMetricConfig)
    types: tuple[str, ...] = METRIC_TYPES


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
class LogsConfig:
    count: int = 50000
    types: LogTypesConfig = field(default_factory=LogTypesConfig)


@dataclass(frozen=True)
class GeneratorConfig:
    output: OutputConfig = field(default_factory=OutputConfig)
    traces: TracesConfig = field(default_factory=TracesConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    # None: generate() draws a seed and records it in metadata.yaml.
    seed: int | None = None
    semantic_conventions: str = "stable"


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
