"""YAML configuration -> typed, validated, immutable objects.

The dataclasses below are the schema: parsing walks their fields and type
hints generically (`_build`), so a new key needs only a field here, a rule in
`_RULES` when its range is restricted, and a line in docs/configuration.md.
Every default below is documented there.

The walk is public for other configs (the sender's): `build_dataclass` with a
`Schema` of rules, `parse_yaml`/`load_yaml_file`, `read_source`, `set_dotted`,
`prefixed`, `invalid`, `to_plain`.

Bad input raises `ConfigError` with one message naming the dotted key path,
the offending value and what was expected.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

from telegen.errors import ConfigError

_T = TypeVar("_T")

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
        return cls.from_yaml(_read_text(path), os.fspath(path))

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
        return _to_plain(self)

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
# ${VAR} substitution
# ---------------------------------------------------------------------------

# Alternatives in order: the "$${" escape, a closed ${...}, an unclosed "${".
_ENV_PATTERN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def substitute_env(value: _T, path: str = "", *, env: Mapping[str, str] | None = None) -> _T:
    """Replace ${VAR} and ${VAR:-default} in every string inside `value`
    (strings, and mappings/lists of them, recursively) from the environment.

    `$${` stands for a literal `${`. `${VAR:-default}` uses the default when VAR
    is unset or empty; `${VAR}` with VAR unset is a ConfigError naming VAR and
    `path`, the dotted key path of `value` used in messages.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    return _substitute(value, path, environ)


def read_source(source: Mapping[str, Any] | str | os.PathLike[str]) -> tuple[Any, str]:
    """(plain data, source name) from a mapping, a path or YAML text, for a
    config's `load`. A str is a path when it is one line that ends in
    .yaml/.yml or names an existing file; otherwise it is YAML text."""
    if isinstance(source, Mapping):
        return source, "<dict>"
    if isinstance(source, os.PathLike):
        return load_yaml_file(source), os.fspath(source)
    if not isinstance(source, str):
        raise TypeError(f"cannot load a config from {type(source).__name__}; "
                        "expected a mapping, a path or YAML text")
    if _looks_like_path(source):
        return load_yaml_file(source), source
    data = parse_yaml(source, "<string>")
    if isinstance(data, str) and "\n" not in source.strip():
        # One plain word is never a valid config; the caller most likely
        # meant a file name that does not exist.
        raise ConfigError(f"config file not found: {source.strip()}")
    return data, "<string>"


def set_dotted(data: dict[str, Any], dotted: str | Sequence[str], value: Any) -> None:
    """data["a"]["b"] = value for dotted "a.b" (or the parts ("a", "b")),
    creating sections on the way: how CLI flags override a config."""
    parts = dotted.split(".") if isinstance(dotted, str) else list(dotted)
    shown = dotted if isinstance(dotted, str) else ".".join(parts)
    node: Any = data
    *parents, leaf = parts
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            where = ".".join(parents[: depth + 1])
            raise ConfigError(f"unknown key {shown}; {where} is a value, not a section")
    node[leaf] = value


def _substitute(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _substitute_text(value, path, env) if "$" in value else value
    if isinstance(value, Mapping):
        return {k: _substitute(v, _join(path, str(k)), env) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_substitute(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


def _substitute_text(text: str, path: str, env: Mapping[str, str], secret: bool = False) -> str:
    where = path or "value"
    # A secret (a header value) is named by its key path only, never shown.
    shown = SECRET_SHOWN if secret else repr(text)

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body = match.group(1)
        if body is None:
            raise ConfigError(f"{where}: {shown} is invalid: expected a closing '}}' after '${{' "
                              "(write $${ for a literal ${)")
        name, has_default, default = body.partition(":-")
        if not _ENV_NAME.match(name):
            raise ConfigError(f"{where}: {shown} is invalid: expected ${{NAME}} or ${{NAME:-default}} "
                              f"with NAME an environment variable name, not {name!r}")
        current = env.get(name)
        if current is not None and not (has_default and current == ""):
            return current
        if has_default:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set (in {shown}); "
                          f"expected it to be set, or a default as ${{{name}:-default}}")

    return _ENV_PATTERN.sub(replace, text)


# ---------------------------------------------------------------------------
# Reading files and YAML
# ---------------------------------------------------------------------------

def _looks_like_path(text: str) -> bool:
    if "\n" in text:
        return False
    return text.strip().lower().endswith((".yaml", ".yml")) or os.path.isfile(text)


def _read_text(path: str | os.PathLike[str]) -> str:
    name = os.fspath(path)
    try:
        raw = Path(name).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {name}") from None
    except IsADirectoryError:
        raise ConfigError(f"cannot read config file {name}: it is a directory; expected a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {name}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")  # tolerate a byte-order mark from Windows editors
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: byte 0x{raw[exc.start]:02x} at offset {exc.start} is invalid: "
                          "expected UTF-8 text") from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping; PyYAML would
    silently keep the last one, hiding a likely mistake."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                first = seen[ident].start_mark
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"duplicate key {key_node.value!r} (first at line {first.line + 1})",
                    key_node.start_mark)
            seen[ident] = key_node
        return super().construct_mapping(node, deep)


def load_yaml_file(path: str | os.PathLike[str]) -> Any:
    """The plain data of a YAML file (UTF-8); errors name the file."""
    return parse_yaml(_read_text(path), os.fspath(path))


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """One YAML document as plain data; a key repeated in a mapping is an error."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(_prefix(source) + _describe_yaml_error(exc)) from None


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    detail = f"{problem} ({context})" if context else problem
    return f"malformed YAML{where}: {detail}"


def _prefix(source: str) -> str:
    # Placeholders such as "<string>" are not worth repeating in every message.
    return "" if source.startswith("<") and source.endswith(">") else f"{source}: "


@contextlib.contextmanager
def _prefixed(source: str) -> Iterator[None]:
    """Re-raise ConfigErrors with the source file name in front."""
    prefix = _prefix(source)
    try:
        yield
    except ConfigError as exc:
        if not prefix:
            raise
        raise ConfigError(prefix + str(exc)) from None


prefixed = _prefixed  # public, for configs that validate in several steps


# ---------------------------------------------------------------------------
# Value rules: the ranges and choices the types alone do not express
# ---------------------------------------------------------------------------

class Rule:
    """A restriction on a value beyond its type, keyed by path in a Schema."""

    def coerce(self, raw: Any, hint: type) -> Any:
        """The raw value as `hint`, or INVALID. Override to accept other
        spellings (a duration such as "10m" for a float of seconds)."""
        return _coerce(raw, hint)

    def ok(self, value: Any) -> bool:
        raise NotImplementedError

    def expected(self, noun: str) -> str:
        """What a valid value is, given the type's noun ("an integer")."""
        raise NotImplementedError

    def suggest(self, value: Any) -> str:
        return ""


@dataclass(frozen=True)
class Range(Rule):
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    high_label: str | None = None

    def ok(self, value: Any) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def expected(self, noun: str) -> str:
        high = self.high_label or _num(self.high)
        if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            return f"{noun} between {_num(self.low)} and {high}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {high}")
        return f"{noun} {' and '.join(parts)}"


@dataclass(frozen=True)
class OneOf(Rule):
    options: tuple[str, ...]

    def ok(self, value: Any) -> bool:
        return value in self.options

    def expected(self, noun: str) -> str:
        return f"one of {', '.join(self.options)}"

    def suggest(self, value: Any) -> str:
        return _did_you_mean(str(value), self.options)


class NonEmpty(Rule):
    def ok(self, value: Any) -> bool:
        return bool(value.strip())

    def expected(self, noun: str) -> str:
        return "a non-empty string"


class FileNamePrefix(Rule):
    # The prefix becomes part of file names inside output.directory, so a
    # separator would silently write somewhere else.
    def ok(self, value: Any) -> bool:
        return bool(value.strip()) and not any(sep in value for sep in ("/", "\\", os.sep))

    def expected(self, noun: str) -> str:
        return "a non-empty file-name prefix without path separators (/ or \\)"


_AT_LEAST_0 = Range(low=0)
_AT_LEAST_1 = Range(low=1)
_PROBABILITY = Range(low=0, high=1)

# Keyed by dotted path; "[]" means each list item, ".*" each mapping value.
_RULES: dict[str, Rule] = {
    "output.directory": NonEmpty(),
    "output.prefix": FileNamePrefix(),
    "traces.count": _AT_LEAST_0,
    "traces.spans.avg_per_trace": Range(low=0, low_open=True),
    "traces.spans.std_dev": _AT_LEAST_0,
    "traces.spans.high_span_traces.count": _AT_LEAST_0,
    "traces.spans.high_span_traces.span_count": _AT_LEAST_0,
    "traces.services.count": _AT_LEAST_0,
    "traces.services.names[]": NonEmpty(),
    "traces.services.ingress.service": NonEmpty(),
    "traces.services.ingress.services[]": NonEmpty(),
    "traces.custom_attributes.count": _AT_LEAST_0,
    "traces.custom_attributes.probability": _PROBABILITY,
    "traces.error_rate": _PROBABILITY,
    "metrics.metric_count": _AT_LEAST_0,
    "metrics.timeseries_per_metric.min": _AT_LEAST_1,
    "metrics.timeseries_per_metric.max": _AT_LEAST_1,
    "metrics.timeseries_per_metric.default": _AT_LEAST_1,
    "metrics.types[]": OneOf(METRIC_TYPES),
    "logs.count": _AT_LEAST_0,
    "logs.types.http_access.percentage": _AT_LEAST_0,
    "logs.types.application.percentage": _AT_LEAST_0,
    "logs.types.application.services": _AT_LEAST_0,
    "logs.types.application.severity_weights.*": _AT_LEAST_0,
    "logs.types.system.percentage": _AT_LEAST_0,
    "seed": Range(low=0, high=2**63, high_open=True, high_label="2**63"),
    "semantic_conventions": OneOf(SEMCONV_GENERATIONS),
}

# Mappings whose keys are a fixed, case-insensitive set (normalised to upper case).
_KEY_CHOICES: dict[str, tuple[str, ...]] = {
    "logs.types.application.severity_weights": SEVERITIES,
}


# ---------------------------------------------------------------------------
# The generic walk: plain data -> dataclasses, driven by type hints
# ---------------------------------------------------------------------------

_BAD = object()  # sentinel: the raw value does not have the expected type
INVALID = _BAD  # what Rule.coerce returns for a value it cannot read

# In a field's metadata: the field is state, not a YAML key (neither read nor written).
NOT_A_KEY: Mapping[str, Any] = types.MappingProxyType({"config_key": False})

SECRET_SHOWN = "***"  # how a secret value appears in messages and redacted output


@dataclass(frozen=True)
class Schema:
    """What the walk needs beside the dataclasses' type hints. Paths are
    dotted key paths; "[]" means each list item, ".*" each mapping value."""

    rules: Mapping[str, Rule] = field(default_factory=dict)
    # Mappings whose keys are a fixed, case-insensitive set (normalised to upper case).
    key_choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Per class: fill in values whose default depends on others (raw data, converted values).
    derived: Mapping[type, Callable[[Mapping[str, Any], dict[str, Any]], None]] = field(default_factory=dict)
    # Mapping paths whose values are secrets: never shown in error messages.
    secrets: frozenset[str] = frozenset()
    # Where ${VAR} is looked up; None: os.environ at the time of the call.
    env: Mapping[str, str] | None = None


def build_dataclass(cls: type[_T], data: Any, source: str = "<dict>", schema: Schema = Schema(),
                    checks: Sequence[Callable[[_T], None]] = ()) -> _T:
    """Validate plain data (as YAML gives it) into the frozen dataclass `cls`,
    walking its type hints; keys left out take their defaults. `checks` then
    see the whole object (rules across keys). Errors are ConfigErrors naming
    the key path, prefixed with `source` unless it is a `<placeholder>`."""
    with _prefixed(source):
        result = _build(cls, data, "", schema)
        for check in checks:
            check(result)
        return result

_NOUNS: dict[type, str] = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@cache
def _field_hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if _is_key(f)}


def _is_key(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("config_key", True))


def _build(cls: type[_T], data: Any, path: str, schema: Schema) -> _T:
    hints = _field_hints(cls)
    if data is None:  # `traces:` with nothing under it: all defaults
        data = {}
    if not isinstance(data, Mapping):
        raise _invalid(path or "top level", data, f"a mapping with keys {', '.join(hints)}")
    for key in data:
        if key not in hints:
            raise _unknown_key(path, key, tuple(hints))
    values = {name: _convert(data[name], hint, _join(path, name), schema)
              for name, hint in hints.items() if name in data}
    derive = schema.derived.get(cls)
    if derive is not None:
        derive(data, values)
    return cls(**values)


def _convert(raw: Any, hint: Any, path: str, schema: Schema) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, raw, path, schema)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        others = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(others) != 1:
            raise TypeError(f"unsupported config type {hint} at {path}")
        if raw is None:
            return None
        return _convert_scalar(raw, others[0], path, schema, schema.rules.get(path), nullable=True)
    if origin is tuple:
        return _convert_str_list(raw, path, schema)
    if origin in (dict, Mapping):
        return _convert_mapping(raw, typing.get_args(hint)[1], path, schema)
    return _convert_scalar(raw, hint, path, schema, schema.rules.get(path))


def _convert_scalar(raw: Any, hint: type, path: str, schema: Schema, rule: Rule | None,
                    nullable: bool = False, secret: bool = False) -> Any:
    noun = _NOUNS[hint]
    raw = _substitute_scalar(raw, hint, path, schema, secret)
    value = rule.coerce(raw, hint) if rule is not None else _coerce(raw, hint)
    if value is _BAD or (rule is not None and not rule.ok(value)):
        expected = rule.expected(noun) if rule is not None else noun
        if nullable:
            expected = f"null or {expected}"
        hint_text = rule.suggest(raw) if rule is not None and isinstance(raw, str) else ""
        raise _invalid(path, raw, expected + hint_text, secret)
    return value


def _substitute_scalar(raw: Any, hint: type, path: str, schema: Schema, secret: bool) -> Any:
    if not isinstance(raw, str) or "$" not in raw:
        return raw
    env = os.environ if schema.env is None else schema.env
    text = _substitute_text(raw, path, env, secret)
    if hint is str or text == raw:
        return text
    # `count: ${TRACES}` must give a number, so a substituted string is read
    # again as a YAML scalar ("5" -> 5, "true" -> True, "" -> null).
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return parsed if parsed is None or isinstance(parsed, (bool, int, float)) else text


def _coerce(raw: Any, hint: type) -> Any:
    if hint is bool:
        return raw if isinstance(raw, bool) else _BAD
    if hint is str:
        return raw if isinstance(raw, str) else _BAD
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return _BAD  # YAML true/false are not numbers, even though bool subclasses int
    if hint is int:
        if isinstance(raw, int):
            return raw
        return int(raw) if raw.is_integer() else _BAD  # 10.0 is fine, 10.5 is not
    if hint is float:
        return float(raw) if math.isfinite(raw) else _BAD
    raise TypeError(f"unsupported config type {hint}")


def _convert_str_list(raw: Any, path: str, schema: Schema) -> tuple[str, ...]:
    # A bare string is iterable too; treating "a,b" as a list of letters would be a silent surprise.
    if not isinstance(raw, (list, tuple)):
        raise _invalid(path, raw, "a list of strings")
    rule = schema.rules.get(path + "[]")
    return tuple(_convert_scalar(item, str, f"{path}[{i}]", schema, rule) for i, item in enumerate(raw))


def _convert_mapping(raw: Any, value_hint: type, path: str, schema: Schema) -> dict[str, Any]:
    choices = schema.key_choices.get(path)
    secret = path in schema.secrets
    if not isinstance(raw, Mapping):
        keys = f" ({', '.join(choices)})" if choices else ""
        raise _invalid(path, raw, f"a mapping of key{keys} to {_NOUNS[value_hint]}", secret)
    rule = schema.rules.get(path + ".*")
    # With a fixed key set, keys left out get 0: giving the mapping replaces the default.
    result: dict[str, Any] = dict.fromkeys(choices, value_hint(0)) if choices else {}
    original: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.upper() if choices and isinstance(key, str) else key
        if choices and name not in choices:
            raise _unknown_key(path, key, choices)
        if not isinstance(name, str):
            raise _invalid(f"{path} key", key, "a string")
        if name in original:
            raise ConfigError(f"{path}.{key}: {key!r} is invalid: expected each key once "
                              f"(same as {original[name]!r}; keys are case-insensitive)")
        original[name] = key
        result[name] = _convert_scalar(value, value_hint, f"{path}.{key}", schema, rule, secret=secret)
    return result


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


_DERIVED_DEFAULTS: dict[type, Callable[[Mapping[str, Any], dict[str, Any]], None]] = {
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
        raise _invalid("traces.spans.high_span_traces.span_count", high.span_count,
                       "an integer >= 1 when traces.spans.high_span_traces.enabled is true")


def _check_services(config: GeneratorConfig) -> None:
    services = config.traces.services
    first_index: dict[str, int] = {}
    for i, name in enumerate(services.names):
        if name in first_index:
            raise _invalid(f"traces.services.names[{i}]", name,
                           f"a name not used before (duplicate of traces.services.names[{first_index[name]}])")
        first_index[name] = i
    if config.traces.count == 0:
        return  # traces are off: the service graph is never built
    if services.count < 1:
        raise _invalid("traces.services.count", services.count, "an integer >= 1 when traces.count > 0")
    names = services.resolved_names()
    ingress = services.ingress
    if ingress.single:
        _check_is_service("traces.services.ingress.service", ingress.service, names)
    else:
        for i, name in enumerate(ingress.services):
            _check_is_service(f"traces.services.ingress.services[{i}]", name, names)


def _check_is_service(path: str, name: str, names: tuple[str, ...]) -> None:
    if name not in names:
        raise _invalid(path, name, f"one of the services {', '.join(names)}" + _did_you_mean(name, names))


def _check_timeseries(config: GeneratorConfig) -> None:
    ts = config.metrics.timeseries_per_metric
    base = "metrics.timeseries_per_metric"
    if ts.min > ts.max:
        raise _invalid(f"{base}.min", ts.min, f"an integer <= {base}.max ({ts.max})")
    if not ts.min <= ts.default <= ts.max:
        raise _invalid(f"{base}.default", ts.default, f"an integer between min ({ts.min}) and max ({ts.max})")


def _check_metric_types(config: GeneratorConfig) -> None:
    metrics = config.metrics
    if metrics.metric_count > 0 and not metrics.types:
        raise _invalid("metrics.types", [], f"at least one of {', '.join(METRIC_TYPES)} "
                                            "when metrics.metric_count > 0")
    for i, kind in enumerate(metrics.types):
        if kind in metrics.types[:i]:
            raise _invalid(f"metrics.types[{i}]", kind, "each type once")


def _check_log_types(config: GeneratorConfig) -> None:
    kinds = config.logs.types
    parts = {f.name: getattr(kinds, f.name).percentage for f in dataclasses.fields(kinds)}
    total = sum(parts.values())
    if abs(total - 100.0) > 1e-6:
        terms = " + ".join(_num(p) for p in parts.values())
        raise ConfigError(f"logs.types: percentages {terms} = {_num(total)} are invalid: "
                          f"expected {' + '.join(parts)} to sum to 100")
    app = kinds.application
    if config.logs.count > 0 and app.percentage > 0 and app.services < 1:
        raise _invalid("logs.types.application.services", app.services,
                       "an integer >= 1 when logs.types.application.percentage > 0")
    if sum(app.severity_weights.values()) <= 0:
        raise _invalid("logs.types.application.severity_weights", app.severity_weights,
                       "at least one weight > 0")


_RELATIONS: tuple[Callable[[GeneratorConfig], None], ...] = (
    _check_high_span_traces,
    _check_services,
    _check_timeseries,
    _check_metric_types,
    _check_log_types,
)


# ---------------------------------------------------------------------------
# Messages and small helpers
# ---------------------------------------------------------------------------

def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _invalid(path: str, value: Any, expected: str, secret: bool = False) -> ConfigError:
    shown = SECRET_SHOWN if secret else _show(value)
    return ConfigError(f"{path}: {shown} is invalid: expected {expected}")


invalid = _invalid  # public: the one message style for a bad value, for other configs' checks


def _unknown_key(section: str, key: Any, valid: tuple[str, ...]) -> ConfigError:
    full = _join(section, str(key))
    match = _closest(str(key), valid)
    if match is not None:
        return ConfigError(f"unknown key {full}; did you mean {_join(section, match)}?")
    where = f"under {section}" if section else "at the top level"
    return ConfigError(f"unknown key {full}; valid keys {where}: {', '.join(valid)}")


def _did_you_mean(value: str, options: tuple[str, ...]) -> str:
    match = _closest(value, options)
    return f"; did you mean {match}?" if match is not None else ""


def _closest(word: str, options: tuple[str, ...]) -> str | None:
    """The option the user most likely meant: difflib's closest match ignoring
    case, else the only option that the word abbreviates ("dir" -> "directory")."""
    lowered = {option.lower(): option for option in options}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    if close:
        return lowered[close[0]]
    starts = [option for option in options if word and option.lower().startswith(word.lower())]
    return starts[0] if len(starts) == 1 else None


def _show(value: Any) -> str:
    """A value as the user would recognise it from their YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _num(value: float | None) -> str:
    # 40.0 -> "40", and float noise such as 99.89999999999999 -> "99.9".
    if value is None:
        return "none"
    if isinstance(value, float) and math.isfinite(value):
        value = round(value, 9)
        if value.is_integer():
            return str(int(value))
    return repr(value)


def to_plain(value: Any) -> Any:
    """Plain YAML-safe data from a config object (the keys only, not NOT_A_KEY
    state); a literal "${" is written "$${" so that reading it back keeps it."""
    return _to_plain(value)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value) if _is_key(f)}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, str):
        return value.replace("${", "$${")
    return value
