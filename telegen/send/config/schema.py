"""The sender's YAML configuration -> typed, validated, immutable objects.

The structure is the seed's (`input`, `otlp`, `sending`, `timestamps`) plus
what a load test needs beyond it; docs/configuration.md documents every key.
Parsing uses telegen.configkit's walk (type hints + rules), as every stage's
config does, so errors read the same: the dotted key path, the value, what
was expected.

Where a value comes from, lowest first: the default, the environment, the
YAML, then CLI flags (passed as dotted `overrides`): see .layers.

Header values are secrets (API keys): they never appear in a repr, an error
message or `to_dict()` (redacted unless asked otherwise).
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...configkit import (
    NOT_A_KEY,
    SECRET_SHOWN,
    Derive,
    Schema,
    build_dataclass,
    load_yaml_file,
    parse_yaml,
    prefixed,
    read_source,
    to_plain,
)
from ...errors import TemplateFileError
from ...templates import SIGNALS, pb_path
from ..engine.plan import RatePlan, Stage
from ..tenants import Tenants
from ..tenants import resolve as resolve_tenants
from .endpoints import DEFAULT_ENDPOINTS, http_url, split_endpoint
from .layers import env_layer, merge_layer, otlp_sections, override_layer, yaml_layer
from .rules import (
    CHECKS,
    HEADER_PATHS,
    RULES,
    derive_common_endpoint,
    derive_endpoint,
    derive_input,
    derive_sending,
    derive_tenants,
)

DEFAULT_DIRECTORY = "./generated"


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


@dataclass(frozen=True)
class InputConfig:
    """Template files per signal. Unset (or null): `<directory>/<prefix>-<signal>.pb`,
    skipped when it does not exist; a path: that `.pb` stream or OTLP JSON
    file, which must exist; false: the signal is not sent. Relative paths
    resolve against the working directory."""

    traces: str | bool | None = None
    metrics: str | bool | None = None
    logs: str | bool | None = None
    # None: ./generated, where `telegen generate --output-dir ./generated` writes
    # (skipped when missing, as its files are; a directory given must exist).
    directory: str | None = None
    prefix: str = "telemetry"
    # Where loaded batches are saved and mapped from (telegen.send.load.cache):
    # later loads take a fraction of a second, and senders on one machine that
    # share the directory share one copy in memory. None: no cache.
    cache_dir: str | None = None

    def named(self, signal: str) -> bool:
        """Whether the config names `signal`'s file itself (it must then exist)."""
        return isinstance(getattr(self, signal), str)

    def path(self, signal: str) -> str | None:
        """The file for `signal` (it may not exist), or None when the signal is off."""
        value = getattr(self, signal)
        if value is False:
            return None
        return value if isinstance(value, str) else str(pb_path(self.template_directory, self.prefix, signal))

    @property
    def template_directory(self) -> str:
        return self.directory or DEFAULT_DIRECTORY

    def files(self) -> dict[str, str]:
        """signal -> file to send, checked now (load time, not config time):
        a file the config names is kept even when missing, so that loading it
        reports the error; one in `directory` that is missing is skipped (a
        template set may hold some signals only)."""
        from_directory = [s for s in SIGNALS if getattr(self, s) is None]
        if from_directory and self.directory and not os.path.isdir(self.directory):
            raise TemplateFileError(f"input.directory: {self.directory} is not a directory; expected one written "
                                    f"by `telegen generate --output-dir {self.directory}` (the file of "
                                    f"{', '.join(from_directory)} is looked for there)")
        result: dict[str, str] = {}
        for signal in SIGNALS:
            path = self.path(signal)
            if path is not None and (self.named(signal) or os.path.exists(path)):
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
class TenantsConfig:
    """Many tenants from one sender (telegen.send.tenants): tenant n's
    headers are added to (and override) every endpoint's on its requests.
    `headers`: one map whose names and values may say {n} (0 .. count-1),
    or a list of maps, one per tenant (count: its length)."""

    count: int | None = None  # None: 1, or the list's length
    headers: tuple[Mapping[str, str], ...] = ()
    weights: str = "even"  # or zipf: tenant n's share of the rate is proportional to 1/(n+1)
    # Whether `headers` was written as a list (one map per tenant).
    listed: bool = field(default=False, metadata=NOT_A_KEY)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", tuple(h if isinstance(h, Headers) else Headers(h)
                                                  for h in self.headers))

    @property
    def configured(self) -> bool:
        return bool(self.headers) or (self.count or 1) > 1

    def resolve(self) -> Tenants:
        return resolve_tenants(self.count, self.headers, self.weights, self.listed)


@dataclass(frozen=True)
class OtlpConfig:
    # Empty: the protocol's default. For OTLP/HTTP a base URL: /v1/<signal> is appended.
    endpoint: str = ""
    headers: Mapping[str, str] = _headers_field()
    insecure: bool = False
    protocol: str = "grpc"  # or http/protobuf
    compression: str = "none"
    # Which client carries gRPC: grpcio, or curl (libcurl over HTTP/2, which
    # sends messages compressed in advance); auto: curl for gzip and zstd
    # (where libcurl speaks HTTP/2), grpcio uncompressed (transport/grpc_curl.choose).
    grpc_client: str = "auto"
    timeout: float = 10.0  # seconds per export RPC
    tls: TlsConfig = field(default_factory=TlsConfig)
    traces: SignalOtlpConfig = field(default_factory=SignalOtlpConfig)
    metrics: SignalOtlpConfig = field(default_factory=SignalOtlpConfig)
    logs: SignalOtlpConfig = field(default_factory=SignalOtlpConfig)
    tenants: TenantsConfig = field(default_factory=TenantsConfig)

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
    # A request is retried until either bound: attempts (the first included;
    # 0: no count) or seconds since its first attempt (0: no time bound), as
    # the Collector's exporterhelper bounds by max_elapsed_time. Time-based by
    # default, so a receiver restart of a few seconds is ridden out whatever
    # the back-off drew.
    max_attempts: int = 0
    max_elapsed: float = 60.0  # seconds
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
class ClockSkewConfig:
    services: int = 0  # how many services' clocks are off (0: none)
    max: float = 0.5  # seconds: each is off by up to plus or minus this


@dataclass(frozen=True)
class LateConfig:
    fraction: float = 0.0  # share of span and log sends whose times lie `by` in the past
    by: float = 600.0


@dataclass(frozen=True)
class DelayedChildrenConfig:
    fraction: float = 0.0  # share of traces whose non-root spans go out `by` after their root
    by: float = 30.0


@dataclass(frozen=True)
class ChurnConfig:
    fraction: float = 0.0  # share of metric series replaced by new series every `every`
    every: float = 60.0


@dataclass(frozen=True)
class BurstConfig:
    every: float = 0.0  # seconds between bursts' starts (0: none); the first after one `every`
    for_: float = field(default=30.0, metadata={"key": "for"})  # seconds each lasts
    factor: float = 5.0  # the rate is multiplied by this meanwhile


@dataclass(frozen=True)
class ScenariosConfig:
    """The messy traffic real backends see, each off until asked for
    (telegen.send.scenarios; docs/scenarios.md)."""

    clock_skew: ClockSkewConfig = field(default_factory=ClockSkewConfig)
    late: LateConfig = field(default_factory=LateConfig)
    delayed_children: DelayedChildrenConfig = field(default_factory=DelayedChildrenConfig)
    churn: ChurnConfig = field(default_factory=ChurnConfig)
    burst: BurstConfig = field(default_factory=BurstConfig)


@dataclass(frozen=True)
class SearchConfig:
    """The capacity search (`telegen send --find-max`; telegen.send.search):
    the offered rate climbs by `factor` from `min_rate`, then bisects around
    the knee, each step `step_duration` long and followed by `cooldown`;
    the knee is confirmed by a `hold`."""

    enabled: bool = False
    signal: str = "all"  # or traces, metrics, logs: search with that signal alone
    min_rate: float = 0.0  # events/s: the first step, failing here fails the search (0: auto, from the batch sizes)
    max_rate: float = 0.0  # events/s: stop climbing here (0: no bound but the sender's)
    factor: float = 2.0  # the probe's growth per step
    step_duration: float = 10.0
    cooldown: float = 5.0  # seconds sending nothing after each step: the backend drains
    hold: float = 60.0  # seconds at the knee found, to confirm it
    resolution: float = 0.05  # the knee lies within this share above the rate reported
    min_step: float = 0.0  # events/s: nor is it searched finer than this (0: the resolution alone)
    max_error_share: float = 0.01  # of the events attempted, refused (429/503, RESOURCE_EXHAUSTED, ...)
    max_p99: float = 1.0  # seconds of request latency (0: no latency limit)
    min_delivered_share: float = 0.9  # of the offered rate, in two windows running


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
    # Start `processes` beyond MAX_PROCESSES_PER_CORE x the cores this
    # process may use (refused without it: on 2 cores, 1,000 workers is a
    # typo, not a load test); `telegen send --force`.
    force: bool = False
    max_message_bytes: int = 4 * 1024 * 1024  # grpc's default receive limit
    # How gzip bodies are made where the carrier sends bytes as given
    # (OTLP/HTTP with compression gzip): "patchable" compresses each batch
    # once and patches it per send; "zlib" compresses every request (to compare).
    gzip_encoder: str = "patchable"
    # Likewise for zstd bodies (OTLP/HTTP with compression zstd): "patchable"
    # compresses each batch once into frames patched per send; "library"
    # compresses every request with the zstandard package, level 1 (to compare).
    zstd_encoder: str = "patchable"
    metric_series_multiplier: int = 1
    # Seconds between two samples of a metric series at least, as an SDK
    # exports every interval (more points per second then come from more
    # series: metric_series_multiplier); 0: as often as the rate asks.
    metric_interval: float = 0.0
    stats_interval: float = 5.0
    retry: RetryConfig = field(default_factory=RetryConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    scenarios: ScenariosConfig = field(default_factory=ScenariosConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

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
    """Pass/fail budgets checked when the run ends (telegen.send.report.thresholds):
    a breach is listed and the run exits 1. null: not checked."""

    # (failed + rejected) / sent, every signal. On by default: a run that lost
    # data must not pass as done. One budget for both kinds, because for the
    # backend's user they are one loss: 0.6 % failed and 0.6 % rejected are
    # 1.2 % of the points missing, which two 1 % budgets would both let pass.
    max_lost_ratio: float | None = 0.01
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
    grpc_client: str = "auto"  # as otlp.grpc_client says: auto, grpcio or curl
    # With several tenants (otlp.tenants): each tenant's whole header set,
    # `headers` with its own over them; empty with one tenant.
    tenant_headers: tuple[tuple[tuple[str, str], ...], ...] = ()

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
        beneath = env_layer(environ)  # outside the prefix: its errors name a variable
        schema = Schema(rules=RULES, derived=_DERIVED, secrets=HEADER_PATHS, env=environ)
        with prefixed(source):
            if data is not None and not isinstance(data, Mapping):
                return build_dataclass(cls, data, "<merged>", schema)  # raises: not a mapping
            merged: Any = {}
            for layer in (beneath, yaml_layer(data), override_layer(overrides or {})):
                merged = merge_layer(merged, layer, environ)
            return build_dataclass(cls, merged, "<merged>", schema, CHECKS)

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
        for signal in SIGNALS:
            if data["input"][signal] is None:
                del data["input"][signal]  # unset (the directory's file), not the null a migration warning is about
        tenants = data["otlp"]["tenants"]
        if not self.otlp.tenants.listed and len(tenants["headers"]) == 1:
            tenants["headers"] = tenants["headers"][0]  # one map filled in per tenant, as written
        if self.sending.stages:
            # Both follow from the stages; written out they would contradict them.
            del data["sending"]["duration"]
            del data["sending"]["rate_limit"]
        if redact:
            for section in otlp_sections(data):
                if isinstance(section.get("headers"), dict):
                    section["headers"] = dict.fromkeys(section["headers"], SECRET_SHOWN)
            headers = tenants["headers"]
            tenants["headers"] = ([dict.fromkeys(h, SECRET_SHOWN) for h in headers] if isinstance(headers, list)
                                  else dict.fromkeys(headers, SECRET_SHOWN))
        return data

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "<override>") -> SenderConfig:
        """A validated copy with dotted keys replaced, e.g. {"otlp.endpoint": "127.0.0.1:4317"}."""
        data = self.to_dict(redact=False)
        # The environment was applied already; ${...} in data is escaped.
        return type(self).from_dict(data, source, env={}, overrides=overrides)

    def tenants(self) -> Tenants | None:
        """The tenants, when there are several; None for one (its headers,
        if any, are then the endpoint's: see signal_target)."""
        tenants = self.otlp.tenants.resolve() if self.otlp.tenants.configured else None
        return tenants if tenants is not None and tenants.count > 1 else None

    def signal_target(self, signal: str) -> SignalTarget:
        """The endpoint, headers and transport settings for one signal, its
        per-signal overrides applied."""
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; expected one of {', '.join(SIGNALS)}")
        common = self.otlp
        own: SignalOtlpConfig = getattr(common, signal)
        headers = {key.lower(): value for key, value in common.headers.items()}
        headers.update((key.lower(), value) for key, value in own.headers.items())
        if common.tenants.configured and common.tenants.resolve().count == 1:
            headers.update(common.tenants.resolve().headers[0])  # one tenant: its headers on every request
        protocol = own.protocol or common.protocol
        insecure = common.insecure if own.insecure is None else own.insecure
        if protocol == "grpc":
            endpoint = split_endpoint(own.endpoint or common.endpoint or DEFAULT_ENDPOINTS[protocol])[0]
        else:
            endpoint, insecure = http_url(signal, own.endpoint, common.endpoint, insecure)
        tenants = self.tenants()
        tenant_headers = () if tenants is None else tuple(
            tuple({**headers, **dict(own_headers)}.items()) for own_headers in tenants.headers)
        return SignalTarget(
            endpoint=endpoint,
            headers=tuple(headers.items()),
            tenant_headers=tenant_headers,
            insecure=insecure,
            compression=common.compression,
            timeout=common.timeout,
            tls=common.tls,
            protocol=protocol,
            grpc_client=common.grpc_client,
        )


_DERIVED: dict[type, Derive] = {
    InputConfig: derive_input,
    SendingConfig: derive_sending,
    OtlpConfig: derive_common_endpoint,
    SignalOtlpConfig: derive_endpoint,
    TenantsConfig: derive_tenants,
}
