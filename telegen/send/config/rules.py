"""What the type hints do not say about the sender's config: rules per key,
values derived from what was written, and checks across keys."""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...configkit import (
    AT_LEAST_0,
    AT_LEAST_1,
    Duration,
    FileNamePrefix,
    OneOf,
    Range,
    Rule,
    invalid,
    to_plain,
)
from ...configkit.messages import show
from ...errors import ConfigWarning
from ...templates import SIGNALS
from ..load.compression import GZIP_ENCODERS, ZSTD_ENCODERS
from ..tenants import MAX_TENANTS, WEIGHTS, bad_placeholder, fill, has_placeholder
from ..transport.base import COMPRESSIONS, GRPC_CLIENTS, PROTOCOL_ALIASES, PROTOCOLS
from ..transport.grpc_curl import choose as choose_grpc_client
from .endpoints import endpoint_problem, split_endpoint

if TYPE_CHECKING:
    from .schema import SenderConfig, StageConfig


class InputFile(Rule):
    """A signal's template file, or false for off (true: the default file)."""

    def ok(self, value: Any) -> bool:
        return isinstance(value, bool) or isinstance(value, str)

    def expected(self, noun: str) -> str:
        return "a template file (.pb or OTLP JSON), or false to turn the signal off"


@dataclass(frozen=True)
class Endpoint(Rule):
    empty_ok: bool = False  # per-signal: empty means "the common endpoint"

    def ok(self, value: Any) -> bool:
        return (self.empty_ok and not value.strip()) or endpoint_problem(value) is None

    def expected(self, noun: str) -> str:
        return "host:port or a URL such as https://api.honeycomb.io:443 or http://localhost:4318"

    def suggest(self, value: Any) -> str:
        problem = endpoint_problem(value)
        return f" ({problem})" if problem else ""


@dataclass(frozen=True)
class Protocol(Rule):
    def coerce(self, raw: Any, hint: type) -> Any:
        return PROTOCOL_ALIASES.get(raw, raw) if isinstance(raw, str) else super().coerce(raw, hint)

    def ok(self, value: Any) -> bool:
        return value in PROTOCOLS

    def expected(self, noun: str) -> str:
        return f"one of {', '.join(PROTOCOLS)} (http for short)"

    def suggest(self, value: Any) -> str:
        if value == "http/json":
            return " (telegen sends protobuf: use http/protobuf)"
        return ""


RULES: dict[str, Rule] = {
    "input.prefix": FileNamePrefix(),
    **{f"input.{signal}": InputFile() for signal in SIGNALS},
    "otlp.endpoint": Endpoint(empty_ok=True),
    **{f"otlp.{signal}.endpoint": Endpoint(empty_ok=True) for signal in SIGNALS},
    "otlp.compression": OneOf(COMPRESSIONS),
    "otlp.protocol": Protocol(),
    "otlp.grpc_client": OneOf(GRPC_CLIENTS),
    **{f"otlp.{signal}.protocol": Protocol() for signal in SIGNALS},
    "otlp.timeout": Duration(low=0, low_open=True),
    "otlp.tenants.count": Range(low=1, high=MAX_TENANTS),
    "otlp.tenants.weights": OneOf(WEIGHTS),
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
    "sending.zstd_encoder": OneOf(ZSTD_ENCODERS),
    "sending.metric_series_multiplier": AT_LEAST_1,
    "sending.metric_interval": Duration(low=0, note="0 = as often as the rate asks"),
    "sending.stats_interval": Duration(low=0, low_open=True),
    "sending.retry.max_attempts": AT_LEAST_0,
    "sending.retry.max_elapsed": Duration(low=0, note="0 = no time bound"),
    "sending.retry.initial_backoff": Duration(low=0, low_open=True),
    "sending.retry.max_backoff": Duration(low=0, low_open=True),
    "sending.retry.backoff_multiplier": Range(low=1),
    "sending.shard.index": AT_LEAST_0,
    "sending.shard.count": AT_LEAST_1,
    "sending.scenarios.clock_skew.services": AT_LEAST_0,
    "sending.scenarios.clock_skew.max": Duration(low=0),
    "sending.scenarios.late.fraction": Range(low=0, high=1),
    "sending.scenarios.late.by": Duration(low=0),
    "sending.scenarios.delayed_children.fraction": Range(low=0, high=1),
    "sending.scenarios.delayed_children.by": Duration(low=0),
    "sending.scenarios.churn.fraction": Range(low=0, high=1),
    "sending.scenarios.churn.every": Duration(low=0, low_open=True),
    "sending.scenarios.burst.every": Duration(low=0, note="0 = no bursts"),
    "sending.scenarios.burst.for": Duration(low=0, low_open=True),
    "sending.scenarios.burst.factor": Range(low=0, low_open=True),
    "sending.search.signal": OneOf(("all", *SIGNALS)),
    "sending.search.min_rate": AT_LEAST_0,
    "sending.search.max_rate": AT_LEAST_0,
    "sending.search.factor": Range(low=1, low_open=True),
    "sending.search.step_duration": Duration(low=0, low_open=True),
    "sending.search.cooldown": Duration(low=0),
    "sending.search.hold": Duration(low=0, note="0 = no hold"),
    "sending.search.resolution": Range(low=0, high=1, low_open=True),
    "sending.search.min_step": AT_LEAST_0,
    "sending.search.max_error_share": Range(low=0, high=1),
    "sending.search.max_p99": Duration(low=0, note="0 = no latency limit"),
    "sending.search.min_delivered_share": Range(low=0, high=1),
    "timestamps.jitter_ms": AT_LEAST_0,
    "thresholds.max_lost_ratio": Range(low=0, high=1),
    "thresholds.max_failed_ratio": Range(low=0, high=1),
    "thresholds.max_rejected_ratio": Range(low=0, high=1),
    "thresholds.p99_latency": Duration(low=0, low_open=True),
    "thresholds.min_rate_ratio": Range(low=0, high=1),
    "thresholds.abort_on_breach": Duration(low=0),
    "timestamps.backdate_ms": AT_LEAST_0,
}


HEADER_PATHS: frozenset[str] = frozenset(
    ["otlp.headers", "otlp.tenants.headers"] + [f"otlp.{signal}.headers" for signal in SIGNALS])


def derive_input(raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    for signal in SIGNALS:
        value = values.get(signal)
        if value is True:
            values[signal] = None  # on: the file in `directory`, as if unset
        elif signal in raw and (value is None or value == ""):
            values[signal] = None
            # null (and `${TRACES:-}`) used to turn the signal off: say what it means now.
            warnings.warn(f"input.{signal}: {show(raw[signal])} now means the default file in input.directory "
                          f"({raw.get('prefix', 'telemetry')}-{signal}.pb), not 'off': write `{signal}: false` "
                          "to turn the signal off, or leave the key out",
                          ConfigWarning, stacklevel=2)
    if values.get("cache_dir") == "":
        values["cache_dir"] = None  # `${CACHE:-}`: no cache, like null


def derive_sending(raw: Mapping[str, Any], values: dict[str, Any]) -> None:
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


def derive_endpoint(raw: Mapping[str, Any], values: dict[str, Any], unset: str | None = None) -> None:
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


def derive_common_endpoint(raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    derive_endpoint(raw, values, unset="")  # "": the protocol's default


def derive_tenants(raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    """A list of header maps names each tenant; one map is filled in per tenant."""
    headers = raw.get("headers")
    values["listed"] = isinstance(headers, (list, tuple)) and len(headers) > 0
    values["headers"] = tuple({name.lower(): value for name, value in h.items()}
                              for h in values.get("headers", ()))



# gRPC metadata names: lower-case token characters. "-bin" names carry bytes,
# and "grpc-" names are reserved by gRPC itself.
_HEADER_NAME = re.compile(r"[0-9a-z_.-]+\Z")

_HEADER_VALUE = re.compile(r"[\x20-\x7e]*\Z")


def _check_headers(config: SenderConfig) -> None:
    sections: list[tuple[str, Mapping[str, str]]] = [("otlp.headers", config.otlp.headers)]
    sections += [(f"otlp.{signal}.headers", getattr(config.otlp, signal).headers) for signal in SIGNALS]
    tenants = config.otlp.tenants
    if tenants.listed:
        sections += [(f"otlp.tenants.headers[{n}]", h) for n, h in enumerate(tenants.headers)]
    elif tenants.headers:
        sections.append(("otlp.tenants.headers", tenants.headers[0]))
    for path, headers in sections:
        for name, value in headers.items():
            # {n} in a tenant's header is a number once filled in.
            filled = fill(name, 0)
            if not _HEADER_NAME.match(filled) or filled.endswith("-bin") or filled.startswith("grpc-"):
                raise invalid(f"{path} key", name, "a gRPC metadata name: letters, digits, '-', '_' or '.', "
                                                   "not starting with grpc- nor ending in -bin")
            if not _HEADER_VALUE.match(value):
                raise invalid(f"{path}.{name}", value, "printable ASCII (gRPC metadata): no newline, "
                                                       "control or non-ASCII character", secret=True)


def _check_tenants(config: SenderConfig) -> None:
    """Tenants that would not be told apart, or a count the list contradicts."""
    tenants = config.otlp.tenants
    path = "otlp.tenants"
    texts = [text for h in tenants.headers for item in h.items() for text in item]
    for h in tenants.headers:
        for name, value in h.items():
            for text, where in ((name, f"{path}.headers key"), (value, f"{path}.headers.{name}")):
                if bad_placeholder(text):
                    raise invalid(where, text, "{n} or {n:03} (the tenant's number, zero-padded to 3 digits) "
                                               "where the tenant's number goes", secret=where != f"{path}.headers key")
    if tenants.listed:
        if tenants.count is not None and tenants.count != len(tenants.headers):
            raise invalid(f"{path}.count", tenants.count,
                          f"{len(tenants.headers)} (the number of header maps listed in {path}.headers), or "
                          "no count: a list names every tenant")
    elif (tenants.count or 1) > 1 and not any(has_placeholder(text) for text in texts):
        # Every tenant would send the same headers: the backend would see one
        # tenant while the report split the load into several.
        raise invalid(f"{path}.headers", {name: "***" for h in tenants.headers for name in h},
                      f"a header name or value with {{n}} (the tenant's number, 0 .. {tenants.count - 1}) "
                      f"with {path}.count {tenants.count}, or a list of header maps, one per tenant: "
                      "otherwise every tenant is the same tenant")
    if tenants.configured:
        resolved = tenants.resolve()
        seen: dict[tuple[tuple[str, str], ...], int] = {}
        for n, headers in enumerate(resolved.headers):
            key = tuple(sorted(headers))
            if key in seen:
                raise invalid(f"{path}.headers", f"tenants {seen[key]} and {n}",
                              "a different header set per tenant (these two send the same headers)", secret=False)
            seen[key] = n


def _check_tls(config: SenderConfig) -> None:
    tls = config.otlp.tls
    if bool(tls.cert_file) != bool(tls.key_file):
        given, missing = ("cert_file", "key_file") if tls.cert_file else ("key_file", "cert_file")
        raise invalid(f"otlp.tls.{missing}", getattr(tls, missing),
                      f"a file path when otlp.tls.{given} is set (a client certificate goes with its key)")


def _check_retry(config: SenderConfig) -> None:
    retry = config.sending.retry
    if retry.max_attempts == 0 and retry.max_elapsed == 0:
        raise invalid("sending.retry.max_elapsed", 0, "a duration > 0 when sending.retry.max_attempts is 0 "
                      "(one of them must bound the retries)")
    if retry.max_backoff < retry.initial_backoff:
        raise invalid("sending.retry.max_backoff", retry.max_backoff,
                      f"a duration >= sending.retry.initial_backoff ({retry.initial_backoff:g})")


def _check_shard(config: SenderConfig) -> None:
    shard = config.sending.shard
    if shard.index >= shard.count:
        raise invalid("sending.shard.index", shard.index,
                      f"an integer < sending.shard.count ({shard.count}): shards are numbered 0 .. count-1")


def _check_scenarios(config: SenderConfig) -> None:
    burst = config.sending.scenarios.burst
    if burst.every > 0 and burst.for_ >= burst.every:
        raise invalid("sending.scenarios.burst.for", burst.for_,
                      f"a duration < sending.scenarios.burst.every ({burst.every:g} s): a burst ends before the next")


def _check_search(config: SenderConfig) -> None:
    search = config.sending.search
    if not search.enabled:
        return
    if search.max_rate and search.max_rate < search.min_rate:
        written = int(search.max_rate) if float(search.max_rate).is_integer() else search.max_rate
        raise invalid("sending.search.max_rate", written,
                      f"events/s >= sending.search.min_rate ({search.min_rate:g}), or 0 for no bound")
    if config.sending.scenarios.burst.every > 0:
        raise invalid("sending.scenarios.burst.every", config.sending.scenarios.burst.every,
                      "0 with sending.search: a search sets the rate itself, bursts would blur its steps")
    if config.sending.stages:
        raise invalid("sending.stages", "(given)", "no stages with sending.search: a search sets the rate itself")


def _check_compression(config: SenderConfig) -> None:
    if config.otlp.compression != "zstd":
        return
    if choose_grpc_client(config.otlp.grpc_client, "zstd") == "curl":
        return  # gRPC on libcurl sends zstd messages (grpc-encoding: zstd)
    for signal in SIGNALS:
        if config.signal_target(signal).protocol == "grpc":
            where = "otlp.protocol" if getattr(config.otlp, signal).protocol is None else f"otlp.{signal}.protocol"
            raise invalid("otlp.compression", "zstd",
                          f"none or gzip with gRPC on grpcio ({where} is grpc; grpcio has no zstd): set "
                          "otlp.grpc_client: curl (gRPC on libcurl sends zstd), or otlp.protocol: http/protobuf")


CHECKS: tuple[Callable[[SenderConfig], None], ...] = (_check_headers, _check_tenants, _check_tls, _check_retry,
                                                      _check_shard, _check_scenarios, _check_search,
                                                      _check_compression)

