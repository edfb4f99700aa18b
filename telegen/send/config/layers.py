"""Where values come from, lowest first: the environment (the standard
OTEL_EXPORTER_OTLP_* variables, and the shard's TELEGEN_SHARD or
JOB_COMPLETION_INDEX with TELEGEN_SHARDS), the YAML, then dotted overrides
(CLI flags). Layers are merged as plain data before validation, so each may
give any subset of keys, and headers merge key by key."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from ...configkit import escape, set_dotted, substitute_env
from ...errors import ConfigError
from ...templates import SIGNALS
from ..shard import shard_from_env
from ..transport.base import COMPRESSIONS, PROTOCOL_ALIASES, PROTOCOLS
from .endpoints import SCHEME, endpoint_problem


def _copy(value: Any) -> Any:
    # Layers are edited in place (header names lower-cased); never the caller's data.
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(item) for item in value]
    return value


def otlp_sections(data: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The otlp section and its per-signal sections, where they are mappings."""
    otlp = data.get("otlp")
    if not isinstance(otlp, dict):
        return
    yield otlp
    for signal in SIGNALS:
        if isinstance(otlp.get(signal), dict):
            yield otlp[signal]


def _section_paths() -> Iterator[tuple[str, ...]]:
    yield ("otlp",)
    for signal in SIGNALS:
        yield ("otlp", signal)


def _lower_header_names(layer: dict[str, Any]) -> None:
    # gRPC wants lower-case names, and layers must agree on them to merge.
    for parts in _section_paths():
        section = _get(layer, parts)
        if not isinstance(section, dict) or "headers" not in section:
            continue
        headers = section["headers"]
        if headers is None:
            section["headers"] = {}
            continue
        if not isinstance(headers, Mapping):
            continue  # the walk reports it
        lowered: dict[Any, Any] = {}
        for name, value in headers.items():
            key = name.lower() if isinstance(name, str) else name
            if key in lowered:
                path = ".".join((*parts, "headers"))
                raise ConfigError(f"{path}.{name}: {name!r} is invalid: expected each header once "
                                  f"(same as {key!r}; header names are case-insensitive)")
            lowered[key] = value
        section["headers"] = lowered


def _get(data: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def yaml_layer(data: Mapping[str, Any] | None) -> dict[str, Any]:
    layer = _copy(data) if data is not None else {}
    _lower_header_names(layer)
    return layer


def override_layer(overrides: Mapping[str, Any]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for dotted, value in overrides.items():
        set_dotted(layer, _override_parts(dotted), escape(value))
    _lower_header_names(layer)
    return layer


def _override_parts(dotted: str) -> list[str]:
    # Header names may contain dots: "otlp.headers.x.y" names header "x.y".
    for parts in _section_paths():
        prefix = ".".join((*parts, "headers")) + "."
        if dotted.startswith(prefix):
            return [*parts, "headers", dotted[len(prefix):]]
    return dotted.split(".")


def merge_layer(lower: Any, upper: Any, env: Mapping[str, str]) -> Any:
    if isinstance(lower, Mapping) and isinstance(upper, Mapping):
        lower = _drop_insecure_under_url(lower, upper, env)
    return _merged(lower, upper)


def _drop_insecure_under_url(lower: Mapping[str, Any], upper: Mapping[str, Any],
                             env: Mapping[str, str]) -> Any:
    """An endpoint URL in a higher layer brings its own TLS choice (its
    scheme): a lower layer's `insecure` was about another endpoint."""
    result = _copy(lower)
    for parts in _section_paths():
        above, below = _get(upper, parts), _get(result, parts)
        if not (isinstance(above, Mapping) and isinstance(below, dict)):
            continue
        if above.get("insecure") is None and _has_scheme(above.get("endpoint"), env):
            below.pop("insecure", None)
    return result


def _has_scheme(endpoint: Any, env: Mapping[str, str]) -> bool:
    if not isinstance(endpoint, str):
        return False
    try:
        text = substitute_env(endpoint, env=env)
    except ConfigError:
        return False  # the walk reports it, with its key path
    return SCHEME.match(text.strip()) is not None


def _merged(lower: Any, upper: Any) -> Any:
    if not isinstance(upper, Mapping):
        # `headers:` or `otlp:` left empty in YAML adds nothing; it does not
        # wipe what the environment gave.
        return lower if upper is None and isinstance(lower, Mapping) else upper
    if not isinstance(lower, Mapping):
        return upper
    result = dict(lower)
    for key, value in upper.items():
        result[key] = _merged(lower[key], value) if key in lower else value
    return result



# The standard OTLP exporter variables
# (https://opentelemetry.io/docs/specs/otel/protocol/exporter/).

def _env_endpoint(var: str, text: str) -> str:
    problem = endpoint_problem(text)
    if problem is not None:
        raise ConfigError(f"{var}: {text!r} is invalid: expected host:port or a URL such as "
                          f"https://api.honeycomb.io:443 ({problem})")
    return escape(text.strip())  # the scheme stays: the walk reads TLS from it


def _env_headers(var: str, text: str) -> dict[str, str]:
    """W3C-baggage style: "k1=v1,k2=v2", names and values URL-encoded."""
    headers: dict[str, str] = {}
    for index, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue
        name, sep, value = entry.partition("=")
        name = unquote(name.strip()).lower()
        if not sep or not name:
            # The entry is not shown: it may be a secret missing its "name=".
            raise ConfigError(f"{var}: entry {index} is invalid: expected name=value pairs separated "
                              "by commas, as in x-honeycomb-team=KEY,x-honeycomb-dataset=NAME")
        headers[name] = escape(unquote(value.strip()))
    return headers


def _env_compression(var: str, text: str) -> str:
    value = text.strip().lower()
    if value not in COMPRESSIONS:
        raise ConfigError(f"{var}: {text!r} is invalid: expected one of {', '.join(COMPRESSIONS)}")
    return value


def _env_protocol(var: str, text: str) -> str:
    value = text.strip().lower()
    value = PROTOCOL_ALIASES.get(value, value)
    if value not in PROTOCOLS:
        hint = " (telegen sends protobuf: use http/protobuf)" if value == "http/json" else ""
        raise ConfigError(f"{var}: {text!r} is invalid: expected one of {', '.join(PROTOCOLS)}{hint}")
    return value


def _env_bool(var: str, text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"{var}: {text!r} is invalid: expected true or false")
    return value == "true"


def _env_timeout(var: str, text: str) -> float:
    # The specification gives this one in milliseconds; the YAML uses seconds.
    try:
        millis = float(text.strip())
    except ValueError:
        millis = math.nan
    if not math.isfinite(millis) or millis <= 0:
        raise ConfigError(f"{var}: {text!r} is invalid: expected a number of milliseconds > 0")
    return millis / 1000.0


def _env_path(var: str, text: str) -> str:
    return escape(text.strip())


_ENV_VARIABLES: tuple[tuple[str, tuple[str, ...], Callable[[str, str], Any]], ...] = (
    ("OTEL_EXPORTER_OTLP_ENDPOINT", ("otlp", "endpoint"), _env_endpoint),
    ("OTEL_EXPORTER_OTLP_HEADERS", ("otlp", "headers"), _env_headers),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", ("otlp", "compression"), _env_compression),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", ("otlp", "protocol"), _env_protocol),
    ("OTEL_EXPORTER_OTLP_INSECURE", ("otlp", "insecure"), _env_bool),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", ("otlp", "timeout"), _env_timeout),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", ("otlp", "tls", "ca_file"), _env_path),
    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", ("otlp", "tls", "cert_file"), _env_path),
    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", ("otlp", "tls", "key_file"), _env_path),
    *((f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name.upper()}", ("otlp", signal, name), parse)
      for signal in SIGNALS
      for name, parse in (("endpoint", _env_endpoint), ("headers", _env_headers), ("insecure", _env_bool),
                          ("protocol", _env_protocol))),
)


ENV_VARIABLES: tuple[str, ...] = tuple(var for var, _, _ in _ENV_VARIABLES)


def env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for var, parts, parse in _ENV_VARIABLES:
        text = env.get(var)
        if text is None or not text.strip():
            continue  # the specification treats empty as unset
        set_dotted(layer, parts, parse(var, text))
    shard = shard_from_env(env)
    if shard is not None:
        set_dotted(layer, ("sending", "shard"), {"index": shard[0], "count": shard[1]})
    return layer

