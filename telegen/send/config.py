"""The sender's YAML configuration -> typed, validated, immutable objects.

The structure is the seed's (`input`, `otlp`, `sending`, `timestamps`) plus
what a load test needs beyond it; docs/configuration.md documents every key.
Parsing uses telegen.configkit's walk (type hints + rules), as every stage's
config does, so errors read the same: the dotted key path, the value, what
was expected.

Where a value comes from, lowest first: the default, the environment (the
standard OTEL_EXPORTER_OTLP_* variables, and the shard's TELEGEN_SHARD or
JOB_COMPLETION_INDEX with TELEGEN_SHARDS), the YAML, then CLI flags (passed as
dotted `overrides`). The layers are merged as plain data before validation, so
each layer may give any subset of keys and headers merge key by key.

Header values are secrets (API keys): they never appear in a repr, an error
message or `to_dict()` (redacted unless asked otherwise).
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ..configkit import (
    AT_LEAST_0,
    AT_LEAST_1,
    NOT_A_KEY,
    SECRET_SHOWN,
    Derive,
    Duration,
    FileNamePrefix,
    OneOf,
    Range,
    Rule,
    Schema,
    build_dataclass,
    escape,
    invalid,
    load_yaml_file,
    parse_yaml,
    prefixed,
    read_source,
    set_dotted,
    substitute_env,
    to_plain,
)
from ..errors import ConfigError, TemplateFileError
from ..templates import SIGNALS, pb_path
from .shard import shard_from_env
from .stages import RatePlan, Stage

COMPRESSIONS: tuple[str, ...] = ("none", "gzip")
GZIP_ENCODERS: tuple[str, ...] = ("patchable", "zlib")  # telegen.send.compression
PROTOCOLS: tuple[str, ...] = ("grpc", "http/protobuf")
DEFAULT_PORT = 4317  # the OTLP/gRPC port, used when an endpoint names none
DEFAULT_HTTP_PORT = 4318  # the OTLP/HTTP port, for an endpoint with neither port nor scheme
# What an unset endpoint means, per protocol (the OTLP exporter specification's defaults).
DEFAULT_ENDPOINTS: dict[str, str] = {"grpc": "localhost:4317", "http/protobuf": "http://localhost:4318"}
DEFAULT_INPUT: dict[str, str] = {signal: f"./generated/telemetry-{signal}.pb" for signal in SIGNALS}


class Headers(Mapping[str, str]):
    """Immutable header name -> value mapping whose repr shows names only."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, str] = dict(items or {})

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{key!r}: {SECRET_SHOWN!r}" for key in self._items) + "}"

    __str__ = __repr__


def _headers_field() -> Any:
    return field(default_factory=Headers)


def _freeze_headers(config: Any) -> None:
    # Whatever mapping a caller passes, keep an immutable, redacting one.
    if not isinstance(config.headers, Headers):
        object.__setattr__(config, "headers", Headers(config.headers))


# ---------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class InputConfig:
    """Template files per signal: a `.pb` stream or an OTLP JSON `.json` file;
    null or empty disables the signal. `directory` (with `prefix`) stands for
    `<directory>/<prefix>-<signal>.pb` for every signal not named here."""

    traces: str | None = DEFAULT_INPUT["traces"]
    metrics: str | None = DEFAULT_INPUT["metrics"]
    logs: str | None = DEFAULT_INPUT["logs"]
    directory: str | None = None
    prefix: str = "telemetry"
    # Where loaded batches are saved and mapped from (telegen.send.loadcache):
    # later loads take a fraction of a second, and senders on one machine that
    # share the directory share one copy in memory. None: no cache.
    cache_dir: str | None = None
    # The signals whose path the user set; a file they name must exist, while
    # a default one is skipped when missing. None: inferred (a path other than
    # the default counts as set).
    given: tuple[str, ...] | None = field(default=None, compare=False, repr=False, metadata=NOT_A_KEY)

    def __post_init__(self) -> None:
        if self.given is None:
            inferred = tuple(s for s in SIGNALS if getattr(self, s) != DEFAULT_INPUT[s])
            object.__setattr__(self, "given", inferred)

    def path(self, signal: str) -> str | None:
        """The configured file for `signal` (it may not exist), or None when disabled."""
        if signal in (self.given or ()) or not self.directory:
            return getattr(self, signal) or None
        return str(pb_path(self.directory, self.prefix, signal))

    def files(self) -> dict[str, str]:
        """signal -> file to send, checked now (load time, not config time):
        a file the user named is kept even when missing, so that loading it
        reports the error; a default or directory-derived one that is missing
        is skipped."""
        if self.directory and not os.path.isdir(self.directory):
            raise TemplateFileError(f"input.directory: {self.directory} is not a directory; expected one "
                                    "written by `telegen generate`")
        result: dict[str, str] = {}
        for signal in SIGNALS:
            path = self.path(signal)
            if path is None:
                continue
            if signal not in (self.given or ()) and not os.path.exists(path):
                continue
            result[signal] = path
        return result


@dataclass(frozen=True)
class TlsConfig:
    ca_file: str | None = None  # PEM roots to trust; None: the system's
    cert_file: str | None = None  # client certificate for mTLS (with key_file)
    key_file: str | None = None


@dataclass(frozen=True)
class SignalOtlpConfig:
    """Per-signal overrides of `otlp`; None inherits, headers merge over the common ones."""

    endpoint: str | None = None  # for OTLP/HTTP, the full URL: used as given
    headers: Mapping[str, str] = _headers_field()
    insecure: bool | None = None
    protocol: str | None = None

    def __post_init__(self) -> None:
        _freeze_headers(self)


@dataclass(frozen=True)
class OtlpConfig:
    # Empty: the protocol's default. For OTLP/HTTP a base URL: /v1/<signal> is appended.
    endpoint: str = ""
    headers: Mapping[str, str] = _headers_field()
    insecure: bool = False
    protocol: str = "grpc"  # or http/protobuf
    compression: str = "none"
    timeout: float = 10.0  # seconds per export RPC
    tls: TlsConfig = field(default_factory=TlsConfig)
    traces: SignalOtlpConfig = field(default_factory=SignalOtlpConfig)
    metrics: SignalOtlpConfig = field(default_factory=SignalOtlpConfig)
    logs: SignalOtlpConfig = field(default_factory=SignalOtlpConfig)

    def __post_init__(self) -> None:
        _freeze_headers(self)


@dataclass(frozen=True)
class RateLimitConfig:
    events_per_second: int = 1_000_000  # over all signals; 0 = as fast as possible


@dataclass(frozen=True)
class BatchSizeConfig:
    traces: int = 100  # traces per request
    metrics: int = 1000  # data points per request
    logs: int = 1000  # log records per request


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 5  # attempts per request, the first included
    initial_backoff: float = 1.0  # seconds
    max_backoff: float = 30.0
    backoff_multiplier: float = 2.0


@dataclass(frozen=True)
class ShardConfig:
    """This sender is shard `index` of `count` in a fleet (see telegen.send.shard)."""

    index: int = 0
    count: int = 1


@dataclass(frozen=True)
class StageConfig:
    """One ramp stage (k6's meaning): over `duration` the target moves
    linearly from the previous stage's (the first from 0) to this one's."""

    duration: float  # seconds; 0 jumps to the target at once
    events_per_second: int  # over all signals, fleet-wide; 0 pauses


@dataclass(frozen=True)
class SendingConfig:
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    # Ramping stages: when given they set the rate over time instead of
    # rate_limit, and the run lasts as long as they do (their durations' sum).
    stages: tuple[StageConfig, ...] = ()
    batch_size: BatchSizeConfig = field(default_factory=BatchSizeConfig)
    concurrency: int = 50  # RPCs in flight per process
    # A run ends at whichever bound comes first: `duration` seconds or
    # `multiplier` full passes over the templates; 0 lifts a bound. The
    # defaults hold only when neither is given: a user who sets one bound
    # (flag or YAML) gets that bound alone, never cut short by the other's
    # default (see _derive_sending).
    duration: float = 600.0
    multiplier: int = 10
    processes: int = 1
    max_message_bytes: int = 4 * 1024 * 1024  # grpc's default receive limit
    # How gzip bodies are made where the carrier sends bytes as given
    # (OTLP/HTTP with compression gzip): "patchable" compresses each batch
    # once and patches it per send; "zlib" compresses every request (to compare).
    gzip_encoder: str = "patchable"
    metric_series_multiplier: int = 1
    stats_interval: float = 5.0
    retry: RetryConfig = field(default_factory=RetryConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)

    def rate_plan(self, share: float = 1.0) -> RatePlan:
        """The target rate over time (stages, or the one rate), times `share`
        (a shard's 1/N of the fleet-wide targets)."""
        return RatePlan([Stage(stage.duration, stage.events_per_second) for stage in self.stages],
                        self.rate_limit.events_per_second).scaled(share)


@dataclass(frozen=True)
class TimestampsConfig:
    jitter_ms: int = 1000
    backdate_ms: int = 0


@dataclass(frozen=True)
class ThresholdsConfig:
    """Pass/fail budgets checked when the run ends (telegen.send.thresholds):
    a breach is listed and the run exits 1. null: not checked."""

    max_failed_ratio: float | None = None  # failed / sent, every signal
    max_rejected_ratio: float | None = None  # rejected / sent, every signal
    p99_latency: float | None = None  # seconds: per-request p99 of every signal
    min_rate_ratio: float | None = None  # delivered events/s over the target rate (with a rate limit)
    # Seconds: stop the run once its progress intervals have breached a
    # threshold for this long (a backend that is down is not hammered on).
    abort_on_breach: float | None = None


@dataclass(frozen=True, repr=False)
class SignalTarget:
    """Where and how one signal is sent: what the transport needs."""

    endpoint: str  # gRPC: host:port; OTLP/HTTP: the URL requests are POSTed to
    headers: tuple[tuple[str, str], ...]  # lower-case names (gRPC metadata, HTTP headers)
    insecure: bool
    compression: str
    timeout: float
    tls: TlsConfig
    protocol: str = "grpc"

    def __repr__(self) -> str:
        headers = tuple((key, SECRET_SHOWN) for key, _ in self.headers)
        return (f"SignalTarget(endpoint={self.endpoint!r}, headers={headers!r}, insecure={self.insecure}, "
                f"compression={self.compression!r}, timeout={self.timeout}, tls={self.tls!r}, "
                f"protocol={self.protocol!r})")


@dataclass(frozen=True)
class SenderConfig:
    input: InputConfig = field(default_factory=InputConfig)
    otlp: OtlpConfig = field(default_factory=OtlpConfig)
    sending: SendingConfig = field(default_factory=SendingConfig)
    timestamps: TimestampsConfig = field(default_factory=TimestampsConfig)
    thresholds: ThresholdsConfig = field(default_factory=ThresholdsConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, source: str = "<dict>",
                  env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> SenderConfig:
        """Validate plain data (as YAML gives it) between the environment
        (`env`, default os.environ: OTEL_EXPORTER_OTLP_* beneath, ${VAR}
        inside) and `overrides` (dotted keys, e.g. CLI flags, on top)."""
        environ: Mapping[str, str] = os.environ if env is None else env
        beneath = _env_layer(environ)  # outside the prefix: its errors name a variable
        schema = Schema(rules=_RULES, derived=_DERIVED, secrets=_HEADER_PATHS, env=environ)
        with prefixed(source):
            if data is not None and not isinstance(data, Mapping):
                return build_dataclass(cls, data, "<merged>", schema)  # raises: not a mapping
            merged: Any = {}
            for layer in (beneath, _yaml_layer(data), _override_layer(overrides or {})):
                merged = _merge_layer(merged, layer, environ)
            return build_dataclass(cls, merged, "<merged>", schema, _CHECKS)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>", env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> SenderConfig:
        """Parse one YAML document; an empty document means all defaults."""
        return cls.from_dict(parse_yaml(text, source), source, env, overrides)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> SenderConfig:
        """Read a YAML config file (UTF-8)."""
        return cls.from_dict(load_yaml_file(path), os.fspath(path), env, overrides)

    @classmethod
    def load(cls, source: SenderConfig | Mapping[str, Any] | str | os.PathLike[str],
             env: Mapping[str, str] | None = None,
             overrides: Mapping[str, Any] | None = None) -> SenderConfig:
        """A config from a config, a mapping, a path or YAML text (a str is a
        path when it is one line ending in .yaml/.yml or naming a file)."""
        if isinstance(source, SenderConfig):
            return source.with_overrides(overrides) if overrides else source
        data, name = read_source(source)
        return cls.from_dict(data, name, env, overrides)

    def to_dict(self, redact: bool = True) -> dict[str, Any]:
        """Plain YAML-safe data. Header values read "***" unless `redact` is
        false; from_dict(to_dict(redact=False), env={}) gives an equal config."""
        data = to_plain(self)
        if self.sending.stages:
            # Both follow from the stages; written out they would contradict them.
            del data["sending"]["duration"]
            del data["sending"]["rate_limit"]
        if redact:
            for section in _otlp_sections(data):
                if isinstance(section.get("headers"), dict):
                    section["headers"] = dict.fromkeys(section["headers"], SECRET_SHOWN)
        return data

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "<override>") -> SenderConfig:
        """A validated copy with dotted keys replaced, e.g. {"otlp.endpoint": "127.0.0.1:4317"}."""
        data = self.to_dict(redact=False)
        # Input paths that were defaults stay defaults (skipped when missing).
        for signal in SIGNALS:
            if signal not in (self.input.given or ()):
                del data["input"][signal]
        # The environment was applied already; ${...} in data is escaped.
        return type(self).from_dict(data, source, env={}, overrides=overrides)

    def signal_target(self, signal: str) -> SignalTarget:
        """The endpoint, headers and transport settings for one signal, its
        per-signal overrides applied."""
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; expected one of {', '.join(SIGNALS)}")
        common = self.otlp
        own: SignalOtlpConfig = getattr(common, signal)
        headers = {key.lower(): value for key, value in common.headers.items()}
        headers.update((key.lower(), value) for key, value in own.headers.items())
        protocol = own.protocol or common.protocol
        insecure = common.insecure if own.insecure is None else own.insecure
        if protocol == "grpc":
            endpoint = split_endpoint(own.endpoint or common.endpoint or DEFAULT_ENDPOINTS[protocol])[0]
        else:
            endpoint, insecure = http_url(signal, own.endpoint, common.endpoint, insecure)
        return SignalTarget(
            endpoint=endpoint,
            headers=tuple(headers.items()),
            insecure=insecure,
            compression=common.compression,
            timeout=common.timeout,
            tls=common.tls,
            protocol=protocol,
        )


# ---------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)\Z", re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?\Z")


def split_endpoint(text: str) -> tuple[str, str | None]:
    """("host:port", scheme or None) from "host:port", "host", "[::1]:4317" or
    a URL such as "https://api.honeycomb.io:443" (a path is ignored: gRPC
    has none). A missing port is 4317. Raises ValueError saying what is wrong."""
    text = text.strip()
    if text.startswith("unix:"):
        return text, None  # a gRPC unix-socket target, passed through
    scheme = None
    match = _SCHEME.match(text)
    if match is not None:
        scheme = match.group(1).lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"the scheme must be http:// or https://, not {scheme}://")
        text = re.split(r"[/?#]", match.group(2), maxsplit=1)[0]
    elif "/" in text:
        raise ValueError("a path needs a scheme, as in https://host:port")
    host, port = _split_host_port(text)
    return f"{host}:{port}", scheme


def http_url(signal: str, own: str | None, base: str | None, insecure: bool) -> tuple[str, bool]:
    """(URL, plaintext?) that `signal`'s requests are POSTed to, as the OTLP
    exporter specification says: a per-signal endpoint is used as given (the
    root path when it has none); a base endpoint gets /v1/<signal> appended to
    its path. Without a scheme, `insecure` picks http:// over https://, and a
    missing port is 4318; with one, the scheme's own port (80, 443) applies."""
    text = (own or base or DEFAULT_ENDPOINTS["http/protobuf"]).strip()
    match = _SCHEME.match(text)
    if match is not None:
        scheme, rest = match.group(1).lower(), match.group(2)
    else:
        scheme, rest = ("http" if insecure else "https"), text
    split = re.search(r"[/?#]", rest)
    authority, path = (rest[:split.start()], rest[split.start():]) if split else (rest, "")
    path = path.split("#", 1)[0]
    host, port = _split_host_port(authority, None if match is not None else DEFAULT_HTTP_PORT)
    netloc = host if port is None else f"{host}:{port}"
    if own:
        path = path if path.startswith("/") else "/" + path
    else:
        query = ""
        if "?" in path:
            path, query = path.split("?", 1)
            query = "?" + query
        path = path.rstrip("/") + f"/v1/{signal}" + query
    return f"{scheme}://{netloc}{path}", scheme == "http"


def _split_host_port(text: str, default_port: int | None = DEFAULT_PORT) -> tuple[str, int | None]:
    if text.startswith("["):  # IPv6 literal
        end = text.find("]")
        if end < 0:
            raise ValueError("an IPv6 address needs a closing ]")
        host, rest = text[: end + 1], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError("expected :port after the IPv6 address")
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:
        raise ValueError("an IPv6 address must be in brackets, as in [::1]:4317")
    else:
        host, _, port_text = text.partition(":")
        if not host:
            raise ValueError("the host is missing")
        if not _HOST.match(host):
            raise ValueError(f"{host!r} is not a host name or address")
        if ":" in text and not port_text:
            raise ValueError("the port after ':' is missing")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, not {port_text!r}")
    return host, int(port_text)


def _endpoint_problem(text: str) -> str | None:
    try:
        split_endpoint(text)
    except ValueError as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint(Rule):
    empty_ok: bool = False  # per-signal: empty means "the common endpoint"

    def ok(self, value: Any) -> bool:
        return (self.empty_ok and not value.strip()) or _endpoint_problem(value) is None

    def expected(self, noun: str) -> str:
        return "host:port or a URL such as https://api.honeycomb.io:443 or http://localhost:4318"

    def suggest(self, value: Any) -> str:
        problem = _endpoint_problem(value)
        return f" ({problem})" if problem else ""


@dataclass(frozen=True)
class Protocol(Rule):
    def ok(self, value: Any) -> bool:
        return value in PROTOCOLS

    def expected(self, noun: str) -> str:
        return f"one of {', '.join(PROTOCOLS)}"

    def suggest(self, value: Any) -> str:
        if value == "http/json":
            return " (telegen sends protobuf: use http/protobuf)"
        if value == "http":
            return " (did you mean http/protobuf?)"
        return ""


_RULES: dict[str, Rule] = {
    "input.prefix": FileNamePrefix(),
    "otlp.endpoint": Endpoint(empty_ok=True),
    **{f"otlp.{signal}.endpoint": Endpoint(empty_ok=True) for signal in SIGNALS},
    "otlp.compression": OneOf(COMPRESSIONS),
    "otlp.protocol": Protocol(),
    **{f"otlp.{signal}.protocol": Protocol() for signal in SIGNALS},
    "otlp.timeout": Duration(low=0, low_open=True),
    "sending.rate_limit.events_per_second": AT_LEAST_0,
    **{f"sending.batch_size.{signal}": AT_LEAST_1 for signal in SIGNALS},
    "sending.concurrency": AT_LEAST_1,
    "sending.duration": Duration(low=0, note="0 = until stopped"),
    "sending.multiplier": AT_LEAST_0,
    "sending.stages[].duration": Duration(low=0),
    "sending.stages[].events_per_second": AT_LEAST_0,
    "sending.processes": AT_LEAST_1,
    "sending.max_message_bytes": Range(low=1024, high=2**31 - 1),
    "sending.gzip_encoder": OneOf(GZIP_ENCODERS),
    "sending.metric_series_multiplier": AT_LEAST_1,
    "sending.stats_interval": Duration(low=0, low_open=True),
    "sending.retry.max_attempts": AT_LEAST_1,
    "sending.retry.initial_backoff": Duration(low=0, low_open=True),
    "sending.retry.max_backoff": Duration(low=0, low_open=True),
    "sending.retry.backoff_multiplier": Range(low=1),
    "sending.shard.index": AT_LEAST_0,
    "sending.shard.count": AT_LEAST_1,
    "timestamps.jitter_ms": AT_LEAST_0,
    "thresholds.max_failed_ratio": Range(low=0, high=1),
    "thresholds.max_rejected_ratio": Range(low=0, high=1),
    "thresholds.p99_latency": Duration(low=0, low_open=True),
    "thresholds.min_rate_ratio": Range(low=0, high=1),
    "thresholds.abort_on_breach": Duration(low=0),
    "timestamps.backdate_ms": AT_LEAST_0,
}

_HEADER_PATHS: frozenset[str] = frozenset(
    ["otlp.headers"] + [f"otlp.{signal}.headers" for signal in SIGNALS])


# ---------------------------------------------------------------------------
# Derived values: what the raw data implies once converted
# ---------------------------------------------------------------------------

def _derive_input(raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    values["given"] = tuple(signal for signal in SIGNALS if signal in raw)
    for key in (*SIGNALS, "directory", "cache_dir"):
        if values.get(key) == "":
            values[key] = None  # `${TRACES:-}` disables, like null


def _derive_sending(raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    stages = values.get("stages") or ()
    if stages:
        _derive_staged(raw, values, stages)
        return
    # `--duration 60s` alone means a minute, however few templates there are.
    if "duration" in raw and "multiplier" not in raw:
        values["multiplier"] = 0
    elif "multiplier" in raw and "duration" not in raw:
        values["duration"] = 0.0


def _derive_staged(raw: Mapping[str, Any], values: dict[str, Any], stages: tuple[StageConfig, ...]) -> None:
    """The stages say both the rate and how long the run lasts: a duration
    or a rate given beside them would be a second answer, so it is an error
    rather than one silently winning."""
    if "duration" in raw:
        raise invalid("sending.duration", raw["duration"], "no duration with sending.stages (the run lasts as "
                      "long as the stages: the sum of their durations)")
    rate = raw.get("rate_limit")
    if isinstance(rate, Mapping) and "events_per_second" in rate:
        raise invalid("sending.rate_limit.events_per_second", rate["events_per_second"],
                      "no rate with sending.stages (each stage gives its own events_per_second)")
    total = sum(stage.duration for stage in stages)
    if total <= 0:
        raise invalid("sending.stages", to_plain(stages), "stages lasting more than 0 s in all")
    values["duration"] = total
    if "multiplier" not in raw:
        values["multiplier"] = 0


def _derive_endpoint(raw: Mapping[str, Any], values: dict[str, Any], unset: str | None = None) -> None:
    # A URL's scheme says whether TLS is wanted (http:// = plaintext) unless
    # `insecure` is given beside it. The endpoint is kept as written: an
    # OTLP/HTTP URL's path matters, and gRPC reads host:port from it later.
    # Unset: None per signal (inherit), "" for the common one (the default).
    endpoint = values.get("endpoint")
    if not endpoint or not endpoint.strip():
        if "endpoint" in values:
            values["endpoint"] = unset
        return
    values["endpoint"] = endpoint.strip()
    scheme = split_endpoint(endpoint)[1]
    if scheme is not None and raw.get("insecure") is None:
        values["insecure"] = scheme == "http"


def _derive_common_endpoint(raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    _derive_endpoint(raw, values, unset="")  # "": the protocol's default


_DERIVED: dict[type, Derive] = {
    InputConfig: _derive_input,
    SendingConfig: _derive_sending,
    OtlpConfig: _derive_common_endpoint,
    SignalOtlpConfig: _derive_endpoint,
}


# ---------------------------------------------------------------------------
# Rules across keys
# ---------------------------------------------------------------------------

# gRPC metadata names: lower-case token characters. "-bin" names carry bytes,
# and "grpc-" names are reserved by gRPC itself.
_HEADER_NAME = re.compile(r"[0-9a-z_.-]+\Z")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*\Z")


def _check_headers(config: SenderConfig) -> None:
    sections: list[tuple[str, Mapping[str, str]]] = [("otlp.headers", config.otlp.headers)]
    sections += [(f"otlp.{signal}.headers", getattr(config.otlp, signal).headers) for signal in SIGNALS]
    for path, headers in sections:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name) or name.endswith("-bin") or name.startswith("grpc-"):
                raise invalid(f"{path} key", name, "a gRPC metadata name: letters, digits, '-', '_' or '.', "
                                                   "not starting with grpc- nor ending in -bin")
            if not _HEADER_VALUE.match(value):
                raise invalid(f"{path}.{name}", value, "printable ASCII (gRPC metadata): no newline, "
                                                       "control or non-ASCII character", secret=True)


def _check_tls(config: SenderConfig) -> None:
    tls = config.otlp.tls
    if bool(tls.cert_file) != bool(tls.key_file):
        given, missing = ("cert_file", "key_file") if tls.cert_file else ("key_file", "cert_file")
        raise invalid(f"otlp.tls.{missing}", getattr(tls, missing),
                      f"a file path when otlp.tls.{given} is set (a client certificate goes with its key)")


def _check_retry(config: SenderConfig) -> None:
    retry = config.sending.retry
    if retry.max_backoff < retry.initial_backoff:
        raise invalid("sending.retry.max_backoff", retry.max_backoff,
                      f"a duration >= sending.retry.initial_backoff ({retry.initial_backoff:g})")


def _check_shard(config: SenderConfig) -> None:
    shard = config.sending.shard
    if shard.index >= shard.count:
        raise invalid("sending.shard.index", shard.index,
                      f"an integer < sending.shard.count ({shard.count}): shards are numbered 0 .. count-1")


_CHECKS: tuple[Callable[[SenderConfig], None], ...] = (_check_headers, _check_tls, _check_retry, _check_shard)


# ---------------------------------------------------------------------------
# Layers: environment < YAML < overrides, merged as plain data
# ---------------------------------------------------------------------------

def _copy(value: Any) -> Any:
    # Layers are edited in place (header names lower-cased); never the caller's data.
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(item) for item in value]
    return value


def _otlp_sections(data: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
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


def _yaml_layer(data: Mapping[str, Any] | None) -> dict[str, Any]:
    layer = _copy(data) if data is not None else {}
    _lower_header_names(layer)
    return layer


def _override_layer(overrides: Mapping[str, Any]) -> dict[str, Any]:
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


def _merge_layer(lower: Any, upper: Any, env: Mapping[str, str]) -> Any:
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
    return _SCHEME.match(text.strip()) is not None


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
    problem = _endpoint_problem(text)
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


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
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
