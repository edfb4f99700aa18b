"""Log templates: HTTP access logs, application logs and host/node system logs.

Each on-disk record is one ExportLogsServiceRequest holding exactly one log
record. Record times sit on TIME_BASE_NS (docs/templates.md) and the observed
time trails the event time by a drawn collection delay, so the sender keeps
that delay when it moves both to "now".

Correlated logs (logs.correlation.share of the HTTP access and application
logs) are emitted inside a span of the generated traces (the span index,
generate/correlation.py): they carry that span's trace and span id, an event
time within its template interval, and its resource, byte for byte, so a
backend joins them to the trace. Every other log carries no trace context:
ids that name no span would only be dangling links.
"""
from __future__ import annotations

import bisect
import re
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate
from typing import TypeVar

import numpy as np
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from . import log_catalog as catalog
from .base import TIME_BASE_NS, SignalTemplates
from .config import SEVERITIES, GeneratorConfig, service_names
from .correlation import INTERNAL, SERVER, SpanIndex, empty_index
from .otlp import attributes, field_key, resource, scope, varint
from .semconv import SemConv, semconv

SEVERITY_NUMBERS: dict[str, int] = {
    "DEBUG": SeverityNumber.SEVERITY_NUMBER_DEBUG,
    "INFO": SeverityNumber.SEVERITY_NUMBER_INFO,
    "WARN": SeverityNumber.SEVERITY_NUMBER_WARN,
    "ERROR": SeverityNumber.SEVERITY_NUMBER_ERROR,
}
TYPES: tuple[str, ...] = ("http_access", "application", "system")
TRACE_FLAGS_SAMPLED = 1
# Collection delay between an event and the agent observing it.
DELAY_MEDIAN_NS = 25_000_000
DELAY_MIN_NS = 1_000_000
DELAY_MAX_NS = 500_000_000

ENVIRONMENT = "production"
NAMESPACE = "shop"
CLUSTER = "shop-prod-eu-west-1"
NODE_COUNT = 6
INSTANCES_PER_SERVICE = 2
FILELOG_SCOPE = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/filelogreceiver"
JOURNALD_SCOPE = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/journaldreceiver"
COLLECTOR_VERSION = "0.102.0"


@dataclass(frozen=True)
class Origin:
    """Where a record comes from: a Resource and scope built once per
    generate call, plus attributes every record of that origin carries."""

    resource: Resource
    scope: InstrumentationScope
    extra: tuple[tuple[str, str], ...] = ()

    @cached_property
    def resource_bytes(self) -> bytes:
        """ResourceLogs with only its resource, serialized once."""
        return ResourceLogs(resource=self.resource).SerializeToString()

    @cached_property
    def scope_bytes(self) -> bytes:
        return ScopeLogs(scope=self.scope).SerializeToString()


Entry = tuple[Origin, LogRecord]


# --- templates and draws --------------------------------------------------------

def _fields(*texts: str) -> tuple[str, ...]:
    """The format fields of the texts, first occurrence order, no repeats."""
    seen: dict[str, None] = {}
    for text in texts:
        for _, name, _, _ in string.Formatter().parse(text):
            if name:
                seen[name] = None
    return tuple(seen)


def _values(fields: Sequence[str], draws: Sequence[float]) -> dict[str, str]:
    return {name: catalog.FILLERS[name](u) for name, u in zip(fields, draws)}


T = TypeVar("T")


def _weighted_picker(options: Sequence[tuple[T, float]]) -> Callable[[float], T]:
    """Maps a uniform draw to an option with the given relative weights."""
    values = [value for value, _ in options]
    total = sum(weight for _, weight in options)
    bounds = [acc / total for acc in accumulate(weight for _, weight in options)]
    last = len(values) - 1
    return lambda u: values[min(bisect.bisect_right(bounds, u), last)]


def split_counts(count: int, percentages: Sequence[float]) -> list[int]:
    """Exact per-type counts summing to `count` (largest-remainder rounding;
    ties go to the earlier type)."""
    total = sum(percentages)
    quotas = [count * p / total for p in percentages]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    return counts


def _correlated(rng: np.random.Generator, count: int, share: float, candidates: np.ndarray) -> list[bool]:
    """Which of `count` records are emitted inside a span: each with
    probability `share`, none when no span qualifies."""
    draws = rng.random(count)
    if not len(candidates):
        return [False] * count
    return (draws < share).tolist()


class _SpanOrigins:
    """The Origin of a log emitted in an indexed span: the span's own Resource
    (same object as the traces use, so the same attributes) and the log bridge
    of the service's language; one per (service, instance), built once."""

    def __init__(self, spans: SpanIndex) -> None:
        self.spans = spans
        self._origins: dict[tuple[int, int], Origin] = {}

    def get(self, service: int, instance: int) -> Origin:
        key = (service, instance)
        origin = self._origins.get(key)
        if origin is None:
            indexed = self.spans.services[service]
            language = catalog.LANGUAGES[indexed.language]
            origin = self._origins[key] = Origin(indexed.resources[instance],
                                                 scope(language.scope, language.scope_version))
        return origin

    def of_row(self, row: int) -> Origin:
        return self.get(int(self.spans.service[row]), int(self.spans.instance[row]))

    def service_number(self, name: str) -> int | None:
        return next((k for k, svc in enumerate(self.spans.services) if svc.name == name), None)


def _time_within(spans: SpanIndex, row: int, u: float) -> int:
    """A time in the span's [start, end], both ends included."""
    start, end = int(spans.start[row]), int(spans.end[row])
    return start + int(u * (end - start + 1)) if end > start else start


def _collection_delays(rng: np.random.Generator, count: int) -> list[int]:
    delays = rng.lognormal(np.log(DELAY_MEDIAN_NS), 1.0, count)
    return np.clip(delays, DELAY_MIN_NS, DELAY_MAX_NS).astype(np.int64).tolist()


def _log_record(severity: str, body: str, attrs: list[KeyValue], spans: SpanIndex | None = None,
                row: int = -1, time: int = 0) -> LogRecord:
    """A record; given a span (`spans`, `row`), emitted inside it at `time`."""
    record = LogRecord(severity_number=SEVERITY_NUMBERS[severity], severity_text=severity,
                       body=AnyValue(string_value=body), attributes=attrs)
    if spans is not None:
        record.trace_id = spans.trace_id(row)
        record.span_id = spans.span_id(row)
        record.flags = TRACE_FLAGS_SAMPLED
        record.time_unix_nano = time
    return record


# --- shared resource pieces -----------------------------------------------------

def _pod_hash(rng: np.random.Generator) -> str:
    return catalog.FILLERS["pod_hash"](float(rng.random()))


def _node_names(rng: np.random.Generator) -> list[str]:
    octets = rng.integers(1, 255, size=(NODE_COUNT, 2)).tolist()
    return [f"ip-10-0-{a}-{b}.eu-west-1.compute.internal" for a, b in octets]


def _pod_attributes(sc: SemConv, workload: str, node: str, pod: str) -> dict[str, str]:
    return {
        "host.name": node,
        "k8s.cluster.name": CLUSTER,
        "k8s.node.name": node,
        "k8s.namespace.name": NAMESPACE,
        "k8s.deployment.name": workload,
        "k8s.pod.name": pod,
        sc.deployment_environment: ENVIRONMENT,
    }


def _sdk_attributes(language: catalog.Language) -> dict[str, str]:
    return {
        "telemetry.sdk.language": language.name,
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": language.sdk_version,
    }


def _service_language(service: str, position: int) -> catalog.Language:
    name = catalog.SERVICE_LANGUAGES.get(service, catalog.LANGUAGE_CYCLE[position % len(catalog.LANGUAGE_CYCLE)])
    return catalog.LANGUAGES[name]


def _service_resource(sc: SemConv, service: str, version: str, language: catalog.Language,
                      node: str, pod: str) -> Resource:
    return resource({
        "service.name": service,
        "service.namespace": NAMESPACE,
        "service.version": version,
        # The OpenTelemetry Operator's form: namespace.pod.container.
        "service.instance.id": f"{NAMESPACE}.{pod}.{service}",
        **_pod_attributes(sc, service, node, pod),
        **_sdk_attributes(language),
    })


# --- HTTP access logs -----------------------------------------------------------

_METHOD_PICK = _weighted_picker(list(zip(catalog.HTTP_METHODS, catalog.HTTP_METHOD_WEIGHTS)))
_SUCCESS_PICK = {method: _weighted_picker(options) for method, options in catalog.SUCCESS_STATUSES.items()}
_CLIENT_ERROR_PICK = _weighted_picker(catalog.CLIENT_ERROR_STATUSES)
_SERVER_ERROR_PICK = _weighted_picker(catalog.SERVER_ERROR_STATUSES)
_PROTOCOL_PICK = _weighted_picker([((attr, line), w) for attr, line, w in catalog.PROTOCOLS])
_ROUTE_FIELDS = {route.path: _fields(route.path) for routes in catalog.ROUTES.values() for route in routes}
# Per-record uniform draws of an access log: one column per choice, then the
# path's variable parts, so no two choices share a draw.
_HTTP_CHOICES = 7
_HTTP_DRAWS = _HTTP_CHOICES + max(len(fields) for fields in _ROUTE_FIELDS.values())


def _web_tier_origins(config: GeneratorConfig, sc: SemConv, rng: np.random.Generator,
                      nodes: Sequence[str], span_origins: _SpanOrigins) -> list[Origin]:
    """Edge nginx hosts read by the collector's filelog receiver, an Envoy
    ingress, and the configured ingress service logging through its SDK (as
    the traces show it, when they do)."""
    filelog = scope(FILELOG_SCOPE, COLLECTOR_VERSION)
    origins = [
        Origin(resource({"service.name": "nginx", "service.version": "1.25.4", "host.name": f"edge-proxy-{i}",
                         "os.type": "linux", sc.deployment_environment: ENVIRONMENT}),
               filelog, (("log.file.path", "/var/log/nginx/access.log"), ("log.iostream", "stdout")))
        for i in (1, 2)
    ]
    envoy_scope = scope("envoy.access_loggers.open_telemetry", "1.30.2")
    for _ in range(INSTANCES_PER_SERVICE):
        node = nodes[int(rng.integers(len(nodes)))]
        pod = f"envoy-{_pod_hash(rng)}"
        attrs = {"service.name": "envoy", "service.version": "1.30.2", **_pod_attributes(sc, "envoy", node, pod)}
        origins.append(Origin(resource(attrs), envoy_scope))
    ingress = config.traces.services.ingress.service
    language = _service_language(ingress, 0)
    ingress_scope = scope(language.scope, language.scope_version)
    traced = span_origins.service_number(ingress)
    if traced is not None:
        instances = len(span_origins.spans.services[traced].resources)
        return origins + [span_origins.get(traced, k) for k in range(instances)]
    for _ in range(INSTANCES_PER_SERVICE):
        node = nodes[int(rng.integers(len(nodes)))]
        pod = f"{ingress}-{_pod_hash(rng)}"
        origins.append(Origin(_service_resource(sc, ingress, "2.4.0", language, node, pod), ingress_scope))
    return origins


def _http_status(method: str, u: float) -> int:
    if u < catalog.SERVER_ERROR_RATE:
        return _SERVER_ERROR_PICK(u / catalog.SERVER_ERROR_RATE)
    u -= catalog.SERVER_ERROR_RATE
    if u < catalog.CLIENT_ERROR_RATE:
        return _CLIENT_ERROR_PICK(u / catalog.CLIENT_ERROR_RATE)
    u -= catalog.CLIENT_ERROR_RATE
    return _SUCCESS_PICK[method](u / (1 - catalog.SERVER_ERROR_RATE - catalog.CLIENT_ERROR_RATE))


def _response_size(status: int, typical: int, spread: float, u: float) -> int:
    if status in (204, 304):
        return 0
    if status in (301, 302):
        return 162 + int(u * 10)
    if status >= 400:
        return 60 + int(u * 540)  # a short JSON error document
    return max(2, int(typical * spread))


def _http_severity(status: int) -> str:
    if status >= 500:
        return "ERROR"
    return "WARN" if status >= 400 else "INFO"


def _http_access_logs(count: int, config: GeneratorConfig, sc: SemConv, rng: np.random.Generator,
                      nodes: Sequence[str], span_origins: _SpanOrigins) -> list[Entry]:
    spans = span_origins.spans
    origins = _web_tier_origins(config, sc, rng, nodes, span_origins)
    picks = rng.integers(len(origins), size=count).tolist()
    draws = rng.random((count, _HTTP_DRAWS)).tolist()
    spreads = rng.lognormal(0.0, 0.45, count).tolist()
    # An access log is written as its request's SERVER span ends.
    candidates = spans.rows(kinds=(SERVER,), protocol="http")
    correlated = _correlated(rng, count, config.logs.correlation.share, candidates)
    rows = candidates[rng.integers(len(candidates), size=count)].tolist() if len(candidates) else []
    entries = []
    for i in range(count):
        u = draws[i]
        if correlated[i]:
            entries.append(_span_access_log(sc, span_origins, rows[i], u, spreads[i]))
            continue
        method = _METHOD_PICK(u[0])
        routes = catalog.ROUTES[method]
        route = routes[int(u[1] * len(routes))]
        status = _http_status(method, u[2])
        size = _response_size(status, route.body_bytes, spreads[i], u[3])
        client = catalog.FILLERS["client_ip"](u[4])
        agent = catalog.USER_AGENTS[int(u[5] * len(catalog.USER_AGENTS))]
        protocol, request_line_protocol = _PROTOCOL_PICK(u[6])
        path = route.path.format(**_values(_ROUTE_FIELDS[route.path], u[_HTTP_CHOICES:]))
        body = f'{client} - - "{method} {path} {request_line_protocol}" {status} {size}'
        origin = origins[picks[i]]
        attrs = attributes([
            (sc.http_method, method), (sc.url_path, path), (sc.http_status_code, status),
            (sc.response_body_size, size), (sc.client_address, client), (sc.user_agent, agent),
            (sc.protocol_version, protocol), *origin.extra,
        ])
        entries.append((origin, _log_record(_http_severity(status), body, attrs)))
    return entries


def _span_access_log(sc: SemConv, span_origins: _SpanOrigins, row: int, u: Sequence[float], spread: float) -> Entry:
    """The access log a service writes for the request of SERVER span `row`:
    method, route, path, status, client and protocol as the span has them."""
    spans = span_origins.spans
    endpoint = spans.endpoints[spans.endpoint[row]]
    method, status, edge = endpoint.method, int(spans.status[row]), bool(spans.edge[row])
    path = spans.path(row)
    a, b = divmod(int(spans.client_ip[row]), 256)
    client = f"203.0.{a}.{b}" if edge else f"10.0.{a}.{b}"
    protocol, request_line_protocol = ("2", "HTTP/2.0") if edge else ("1.1", "HTTP/1.1")
    routes = catalog.ROUTES[method]
    size = _response_size(status, routes[int(u[1] * len(routes))].body_bytes, spread, u[3])
    agent = catalog.USER_AGENTS[int(u[5] * len(catalog.USER_AGENTS))]
    body = f'{client} - - "{method} {path} {request_line_protocol}" {status} {size}'
    attrs = attributes([
        (sc.http_method, method), ("http.route", endpoint.route), (sc.url_path, path),
        (sc.http_status_code, status), (sc.response_body_size, size), (sc.client_address, client),
        (sc.user_agent, agent), (sc.protocol_version, protocol),
    ])
    record = _log_record(_http_severity(status), body, attrs, spans, row, int(spans.end[row]))
    return span_origins.of_row(row), record


# --- application logs -----------------------------------------------------------

@dataclass(frozen=True)
class _Service:
    name: str
    language: catalog.Language
    code_namespace: str
    templates: dict[str, tuple[catalog.AppTemplate, ...]]  # by severity


@dataclass(frozen=True)
class _Compiled:
    """An application template with its exception (ERROR only) and the
    format fields both need, so body and exception name the same host/ids."""

    template: catalog.AppTemplate
    exception: catalog.ExceptionInfo | None
    fields: tuple[str, ...]


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _code_namespace(service: str, language: catalog.Language) -> str:
    base = service.removesuffix("-service").replace("-", "")
    return {
        "java": f"com.shop.{base}.{_pascal(service)}",
        "python": f"{service.replace('-', '_')}.handlers",
        "go": f"github.com/shop/{service}/internal/server",
        "nodejs": _pascal(service),
        "dotnet": f"Shop.{_pascal(base)}.{_pascal(service)}",
    }[language.name]


def _function_name(function: str, language: catalog.Language) -> str:
    """The logging function's name as that language spells it."""
    if language.name == "python":
        return _snake(function)
    if language.name in ("go", "dotnet"):
        return _pascal(function)
    return function


def _build_service(name: str, position: int, language_name: str | None = None) -> _Service:
    """A service's log templates; `language_name` (the traces' language of a
    traced service) overrides the catalog's, so the SDK, code names and
    exceptions match the service's spans."""
    language = catalog.LANGUAGES[language_name] if language_name else _service_language(name, position)
    domain = catalog.DOMAIN_TEMPLATES.get(catalog.service_domain(name), {})
    templates = {sev: catalog.GENERIC_TEMPLATES[sev] + domain.get(sev, ()) for sev in SEVERITIES}
    return _Service(name, language, _code_namespace(name, language), templates)


def _compile(service: _Service) -> dict[str, list[_Compiled]]:
    compiled: dict[str, list[_Compiled]] = {}
    for severity in SEVERITIES:
        compiled[severity] = []
        for template in service.templates[severity]:
            exception = service.language.exceptions[template.kind] if template.kind else None
            texts = (template.text, exception.message) if exception else (template.text,)
            compiled[severity].append(_Compiled(template, exception, _fields(*texts)))
    return compiled


def _thread_name(language: catalog.Language, u: float) -> str | None:
    if language.name == "java":
        return f"http-nio-8080-exec-{1 + int(u * 200)}"
    if language.name == "python":
        return "MainThread" if u < 0.3 else f"ThreadPoolExecutor-0_{int(u * 16)}"
    if language.name == "dotnet":
        return f".NET ThreadPool Worker {1 + int(u * 32)}"
    return None  # Go and Node.js have no named threads to report


def _stacktrace(service: _Service, function: str, exception: catalog.ExceptionInfo, message: str,
                line: int) -> str | None:
    ns, lang = service.code_namespace, service.language.name
    head = f"{exception.type}: {message}"
    if lang == "java":
        cls = ns.rsplit(".", 1)[1]
        return (f"{head}\n\tat {ns}.{function}({cls}.java:{line})\n"
                "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)\n"
                "\tat java.base/java.lang.Thread.run(Thread.java:1583)")
    if lang == "python":
        return ("Traceback (most recent call last):\n"
                f'  File "/app/{ns.replace(".", "/")}.py", line {line}, in {function}\n'
                "    response = await self.client.send(request)\n"
                f"{head}")
    if lang == "nodejs":
        return (f"{head}\n    at {ns}.{function} (/app/src/{service.name}.js:{line})\n"
                "    at process.processTicksAndRejections (node:internal/process/task_queues:95)")
    if lang == "dotnet":
        cls = ns.rsplit(".", 1)[1]
        return f"{head}\n   at {ns}.{function}() in /src/{cls}.cs:line {line}"
    return None  # Go errors carry no stack trace


def _code_attributes(sc: SemConv, service: _Service, function: str) -> list[tuple[str, str]]:
    # Stable names carry the fully qualified function; legacy splits it.
    if sc.generation == "stable":
        return [(sc.code_function, f"{service.code_namespace}.{function}")]
    return [(sc.code_function, function), (sc.code_namespace, service.code_namespace)]


def _app_record(sc: SemConv, service: _Service, severity: str, compiled: _Compiled, draws: Sequence[float],
                aux: Sequence[float], spans: SpanIndex | None = None, row: int = -1, time: int = 0) -> LogRecord:
    values = _values(compiled.fields, draws)
    function = _function_name(compiled.template.function, service.language)
    attrs: list[tuple[str, str]] = _code_attributes(sc, service, function)
    thread = _thread_name(service.language, aux[0])
    if thread is not None:
        attrs.append(("thread.name", thread))
    if compiled.exception is not None:
        message = compiled.exception.message.format(**values)
        attrs += [("exception.type", compiled.exception.type), ("exception.message", message)]
        trace = _stacktrace(service, function, compiled.exception, message, 20 + int(aux[1] * 400))
        if trace is not None:
            attrs.append(("exception.stacktrace", trace))
    return _log_record(severity, compiled.template.text.format(**values), attributes(attrs), spans, row, time)


def _severity_probabilities(weights: dict[str, float]) -> np.ndarray:
    raw = np.array([float(weights.get(sev, 0.0)) for sev in SEVERITIES])
    if raw.sum() <= 0:
        raise ValueError("logs.types.application.severity_weights: at least one weight must be positive")
    return raw / raw.sum()


def _service_origins(services: Sequence[_Service], sc: SemConv, rng: np.random.Generator,
                     nodes: Sequence[str], span_origins: _SpanOrigins) -> list[tuple[_Service, Origin]]:
    """Where each service's logs come from: a traced service's own instances
    (the traces' resources), else pods of its own."""
    origins = []
    for service in services:
        version = catalog.FILLERS["version"](float(rng.random()))
        log_scope = scope(service.language.scope, service.language.scope_version)
        traced = span_origins.service_number(service.name)
        if traced is not None:
            instances = len(span_origins.spans.services[traced].resources)
            origins += [(service, span_origins.get(traced, k)) for k in range(instances)]
            continue
        for _ in range(INSTANCES_PER_SERVICE):
            node = nodes[int(rng.integers(len(nodes)))]
            pod = f"{service.name}-{_pod_hash(rng)}"
            res = _service_resource(sc, service.name, version, service.language, node, pod)
            origins.append((service, Origin(res, log_scope)))
    return origins


def _application_logs(count: int, config: GeneratorConfig, sc: SemConv, rng: np.random.Generator,
                      nodes: Sequence[str], span_origins: _SpanOrigins) -> list[Entry]:
    app = config.logs.types.application
    if not count:
        return []
    if app.services < 1:
        raise ValueError("logs.types.application.services: must be at least 1 when application logs are generated")
    spans = span_origins.spans
    languages = {svc.name: svc.language for svc in spans.services}
    names = service_names(config.traces.services.names, app.services)
    services = [_build_service(name, position, languages.get(name)) for position, name in enumerate(names)]
    compiled = {service.name: _compile(service) for service in services}
    by_name = {service.name: service for service in services}
    origins = _service_origins(services, sc, rng, nodes, span_origins)
    width = max(len(c.fields) for per_service in compiled.values() for per_sev in per_service.values()
                for c in per_sev)
    severities = rng.choice(len(SEVERITIES), size=count, p=_severity_probabilities(app.severity_weights)).tolist()
    picks = rng.integers(len(origins), size=count).tolist()
    choices = rng.random(count).tolist()
    draws = rng.random((count, width)).tolist()
    aux = rng.random((count, 2)).tolist()
    # Inside a request's SERVER span or the INTERNAL work under it, of a
    # service that logs; ERROR records in a failing span where one exists.
    traced = [k for k, svc in enumerate(spans.services) if svc.name in by_name]
    candidates = spans.rows(kinds=(SERVER, INTERNAL), services=traced)
    failing = candidates[spans.error[candidates]]
    correlated = _correlated(rng, count, config.logs.correlation.share, candidates)
    any_row = candidates[rng.integers(len(candidates), size=count)].tolist() if len(candidates) else []
    error_row = failing[rng.integers(len(failing), size=count)].tolist() if len(failing) else any_row
    within = rng.random(count).tolist()
    error = SEVERITIES.index("ERROR")
    entries = []
    for i in range(count):
        severity = SEVERITIES[severities[i]]
        if correlated[i]:
            row = error_row[i] if severities[i] == error else any_row[i]
            service = by_name[spans.services[spans.service[row]].name]
            origin = span_origins.of_row(row)
            time = _time_within(spans, row, within[i])
        else:
            service, origin = origins[picks[i]]
        pool = compiled[service.name][severity]
        template = pool[int(choices[i] * len(pool))]
        if correlated[i]:
            record = _app_record(sc, service, severity, template, draws[i], aux[i], spans, row, time)
        else:
            record = _app_record(sc, service, severity, template, draws[i], aux[i])
        entries.append((origin, record))
    return entries


# --- system logs ----------------------------------------------------------------

_EVENT_FIELDS = [_fields(event.text) for event in catalog.SYSTEM_EVENTS]
_EVENT_PROBABILITIES = np.array([event.weight for event in catalog.SYSTEM_EVENTS], dtype=float)
_EVENT_PROBABILITIES /= _EVENT_PROBABILITIES.sum()
_SOURCE_SCOPES = {"app": FILELOG_SCOPE}  # everything else comes from the journal


def _node_origins(sc: SemConv, nodes: Sequence[str]) -> list[dict[str, Origin]]:
    """Per node, one origin per collecting receiver (journald or filelog)."""
    journald = scope(JOURNALD_SCOPE, COLLECTOR_VERSION)
    filelog = scope(FILELOG_SCOPE, COLLECTOR_VERSION)
    result = []
    for node in nodes:
        res = resource({
            "host.name": node, "host.arch": "amd64", "os.type": "linux", "k8s.node.name": node,
            "k8s.cluster.name": CLUSTER, "cloud.provider": "aws", "cloud.region": "eu-west-1",
            sc.deployment_environment: ENVIRONMENT,
        })
        result.append({JOURNALD_SCOPE: Origin(res, journald), FILELOG_SCOPE: Origin(res, filelog)})
    return result


def _system_logs(count: int, sc: SemConv, rng: np.random.Generator, nodes: Sequence[str]) -> list[Entry]:
    origins = _node_origins(sc, nodes)
    events = rng.choice(len(catalog.SYSTEM_EVENTS), size=count, p=_EVENT_PROBABILITIES).tolist()
    picks = rng.integers(len(origins), size=count).tolist()
    width = max(len(fields) for fields in _EVENT_FIELDS)
    draws = rng.random((count, width)).tolist()
    entries = []
    for i in range(count):
        event = catalog.SYSTEM_EVENTS[events[i]]
        body = event.text.format(**_values(_EVENT_FIELDS[events[i]], draws[i]))
        origin = origins[picks[i]][_SOURCE_SCOPES.get(event.source, JOURNALD_SCOPE)]
        attrs = attributes([("log.source", event.source), ("event.type", event.event_type)])
        entries.append((origin, _log_record(event.severity, body, attrs)))
    return entries


# --- assembly -------------------------------------------------------------------

_RESOURCE_LOGS_TAG = field_key(ExportLogsServiceRequest, "resource_logs")
_SCOPE_LOGS_TAG = field_key(ResourceLogs, "scope_logs")
_LOG_RECORDS_TAG = field_key(ScopeLogs, "log_records")


def _request_bytes(origin: Origin, record: LogRecord) -> bytes:
    """ExportLogsServiceRequest{ResourceLogs{resource, ScopeLogs{scope, record}}},
    framed by hand around the origin's pre-serialized parts: copying the
    Resource into a fresh message per record would dominate generation time.
    Fields stay in field-number order, so the bytes equal protobuf's own."""
    record_bytes = record.SerializeToString()
    scope_logs = origin.scope_bytes + _LOG_RECORDS_TAG + varint(len(record_bytes)) + record_bytes
    resource_logs = origin.resource_bytes + _SCOPE_LOGS_TAG + varint(len(scope_logs)) + scope_logs
    return _RESOURCE_LOGS_TAG + varint(len(resource_logs)) + resource_logs


def _in_trace_order(entries: list[Entry], origins: _SpanOrigins) -> list[Entry]:
    """`entries` with the correlated ones, in the places they hold, put in the
    order of the traces they name: a batch of logs then names the spans of a
    few trace batches, so a sender that sends a log only after its span
    (telegen.send.load.correlate) sends logs all through a pass, not at its end."""
    places = {trace_id: k for k, trace_id in enumerate(origins.spans.trace_ids)}
    named = [k for k, (_, record) in enumerate(entries) if record.trace_id]
    ordered = sorted((entries[k] for k in named), key=lambda entry: places.get(bytes(entry[1].trace_id), 0))
    out = list(entries)
    for k, entry in zip(named, ordered):
        out[k] = entry
    return out


def _interleave(order: Sequence[int], streams: Sequence[list[Entry]]) -> Iterator[Entry]:
    cursors = [iter(stream) for stream in streams]
    for kind in order:
        yield next(cursors[kind])


def generate_logs(config: GeneratorConfig, rng: np.random.Generator, spans: SpanIndex | None = None) -> SignalTemplates:
    """One serialized ExportLogsServiceRequest per log record, the configured
    share of each type, interleaved in random order. `spans`: the generated
    traces' span index; without one (or with no traces) no log is correlated.

    counts: logs, per type, and logs_correlated (records naming a span)."""
    logs = config.logs
    count = max(0, logs.count)
    percentages = (logs.types.http_access.percentage, logs.types.application.percentage,
                   logs.types.system.percentage)
    counts = split_counts(count, percentages) if count else [0, 0, 0]
    templates = SignalTemplates(counts={"logs": count, **dict(zip(TYPES, counts)), "logs_correlated": 0})
    if not count:
        return templates
    sc = semconv(config.semantic_conventions)
    span_origins = _SpanOrigins(spans if spans is not None else empty_index())
    order = rng.permutation(np.repeat(np.arange(len(TYPES)), counts)).tolist()
    nodes = _node_names(rng)
    streams = [
        _http_access_logs(counts[0], config, sc, rng, nodes, span_origins),
        _application_logs(counts[1], config, sc, rng, nodes, span_origins),
        _system_logs(counts[2], sc, rng, nodes),
    ]
    delays = _collection_delays(rng, count)
    correlated = 0
    for (origin, record), delay in zip(_in_trace_order(list(_interleave(order, streams)), span_origins), delays):
        # A correlated record has its span's time already.
        if record.time_unix_nano:
            correlated += 1
        else:
            record.time_unix_nano = TIME_BASE_NS
        record.observed_time_unix_nano = record.time_unix_nano + delay
        templates.records.append(_request_bytes(origin, record))
    templates.counts["logs_correlated"] = correlated
    return templates
