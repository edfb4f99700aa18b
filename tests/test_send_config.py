"""The sender's configuration: the seed's YAML, defaults, precedence
(default < environment < YAML < CLI override), per-signal targets, redaction
of header values, and one clear message per bad input."""
from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import pytest

from telegen.configkit import NOT_A_KEY, parse_duration
from telegen.errors import ConfigError, ConfigWarning, TemplateFileError
from telegen.send.config import (
    BatchSizeConfig,
    Headers,
    InputConfig,
    OtlpConfig,
    RateLimitConfig,
    RetryConfig,
    SenderConfig,
    SendingConfig,
    SignalOtlpConfig,
    SignalTarget,
    TimestampsConfig,
    TlsConfig,
    split_endpoint,
)
from telegen.templates import SIGNALS

SEED_YAML = """\
input: {traces: "./generated/telemetry-traces.pb", metrics: "./generated/telemetry-metrics.pb", logs: "./generated/telemetry-logs.pb"}
otlp: {endpoint: "api.honeycomb.io:443", headers: {x-honeycomb-team: "${HONEYCOMB_API_KEY}"}, insecure: false}
sending:
  rate_limit: {events_per_second: 1000000}
  batch_size: {traces: 100, metrics: 1000, logs: 1000}
  concurrency: 50
  duration: "10m"
  multiplier: 10
timestamps: {jitter_ms: 1000, backdate_ms: 0}
"""
SECRET = "hcaik_0123456789abcdef"


def load(text: str = "", env: dict[str, str] | None = None, **overrides: object) -> SenderConfig:
    """YAML text with an explicit environment (never the test runner's)."""
    flat = {key.replace("__", "."): value for key, value in overrides.items()}
    return SenderConfig.from_yaml(text, env=env or {}, overrides=flat)


def raises(message: str):  # type: ignore[no-untyped-def]
    return pytest.raises(ConfigError, match=re.escape(message))


# ---------------------------------------------------------------------------
# The seed and the defaults
# ---------------------------------------------------------------------------

def test_seed_yaml_parses_to_the_expected_objects() -> None:
    config = load(SEED_YAML, env={"HONEYCOMB_API_KEY": SECRET})
    assert config.input == InputConfig(traces="./generated/telemetry-traces.pb",
                                       metrics="./generated/telemetry-metrics.pb",
                                       logs="./generated/telemetry-logs.pb")
    assert all(config.input.named(signal) for signal in SIGNALS)
    assert config.otlp == OtlpConfig(endpoint="api.honeycomb.io:443",
                                     headers={"x-honeycomb-team": SECRET}, insecure=False)
    assert config.sending == SendingConfig(
        rate_limit=RateLimitConfig(1_000_000), batch_size=BatchSizeConfig(100, 1000, 1000),
        concurrency=50, duration=600.0, multiplier=10)
    assert config.timestamps == TimestampsConfig(jitter_ms=1000, backdate_ms=0)
    target = config.signal_target("traces")
    assert target == SignalTarget(endpoint="api.honeycomb.io:443", headers=(("x-honeycomb-team", SECRET),),
                                  insecure=False, compression="none", timeout=10.0, tls=TlsConfig())


def test_defaults_for_every_key_left_out() -> None:
    config = load("")
    assert config == SenderConfig() == load("sending:\notlp:\n")
    assert config.otlp.endpoint == "" and config.signal_target("traces").endpoint == "localhost:4317"
    assert dict(config.otlp.headers) == {}
    assert config.otlp.insecure is False and config.otlp.compression == "none"
    assert config.otlp.timeout == 10.0 and config.otlp.tls == TlsConfig()
    sending = config.sending
    # The seed's bounds: 10 passes or 10 minutes, whichever comes first.
    assert (sending.duration, sending.multiplier) == (600.0, 10)
    assert sending.rate_limit.events_per_second == 1_000_000
    assert (sending.batch_size.traces, sending.batch_size.metrics, sending.batch_size.logs) == (100, 1000, 1000)
    assert (sending.concurrency, sending.processes, sending.metric_series_multiplier) == (50, 1, 1)
    assert sending.max_message_bytes == 4 * 1024 * 1024
    assert sending.stats_interval == 5.0
    assert sending.retry == RetryConfig(max_attempts=0, max_elapsed=60.0, initial_backoff=1.0, max_backoff=30.0,
                                        backoff_multiplier=2.0)
    assert config.timestamps == TimestampsConfig(1000, 0)
    assert config.input == InputConfig(traces=None, metrics=None, logs=None, directory=None)
    assert config.input.template_directory == "./generated"
    assert not any(config.input.named(signal) for signal in SIGNALS)


def test_round_trip_and_load_forms(tmp_path: Path) -> None:
    config = load(SEED_YAML, env={"HONEYCOMB_API_KEY": "a${b"})
    again = SenderConfig.from_dict(config.to_dict(redact=False), env={})
    assert again == config and again.otlp.headers["x-honeycomb-team"] == "a${b"
    path = tmp_path / "sender.yaml"
    path.write_text("sending: {concurrency: 7}\n")
    assert SenderConfig.load(path, env={}).sending.concurrency == 7
    assert SenderConfig.load(str(path), env={}).sending.concurrency == 7
    assert SenderConfig.load("sending: {concurrency: 8}", env={}).sending.concurrency == 8
    assert SenderConfig.load({"sending": {"concurrency": 9}}, env={}).sending.concurrency == 9
    assert SenderConfig.load(config) is config
    with raises(f"{path}: sending.concurrency: 0 is invalid: expected an integer >= 1"):
        path.write_text("sending: {concurrency: 0}\n")
        SenderConfig.from_file(path, env={})
    with raises("config file not found: nope.yaml"):
        SenderConfig.load("nope.yaml")


def test_with_overrides_revalidates_and_keeps_defaults_optional() -> None:
    config = load("otlp: {headers: {a: b}}")
    changed = config.with_overrides({"otlp.endpoint": "127.0.0.1:4318", "sending.processes": 2})
    assert changed.otlp.endpoint == "127.0.0.1:4318" and changed.sending.processes == 2
    assert dict(changed.otlp.headers) == {"a": "b"}
    assert not any(changed.input.named(s) for s in SIGNALS)  # default input files stay skippable
    with raises("sending.processes: 0 is invalid: expected an integer >= 1"):
        config.with_overrides({"sending.processes": 0})


# ---------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("10m", 600.0), ("30s", 30.0), ("1h", 3600.0), ("1h30m", 5400.0), ("250ms", 0.25),
    ("1m30s", 90.0), ("1.5h", 5400.0), ("0", 0.0), ("45", 45.0), ("2.5", 2.5), (" 10M ", 600.0),
    ("1h2m3s4ms", 3723.004),
])
def test_duration_parsing(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert load(f"sending: {{duration: '{text}'}}").sending.duration == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10 minutes", "1d", "30s10m", "1m1m", "m", "10m-", "inf", "-5s"])
def test_bad_durations(text: str) -> None:
    with raises(f"sending.duration: {text!r} is invalid: expected a duration >= 0 such as 30s, 10m"):
        load(f"sending: {{duration: '{text}'}}")


def test_negative_and_other_durations() -> None:
    with raises("sending.duration: -1 is invalid: expected a duration >= 0"):
        load("sending: {duration: -1}")
    with raises("otlp.timeout: 0 is invalid: expected a duration > 0"):
        load("otlp: {timeout: 0}")
    assert load("otlp: {timeout: 500ms}").otlp.timeout == 0.5
    assert load("sending: {stats_interval: 1m, retry: {initial_backoff: 100ms}}").sending.stats_interval == 60
    assert load("sending: {duration: 0}").sending.duration == 0.0  # until stopped
    assert load("sending: {duration: 90}").sending.duration == 90.0  # a bare number is seconds


# ---------------------------------------------------------------------------
# ${VAR} substitution
# ---------------------------------------------------------------------------

def test_env_substitution() -> None:
    env = {"KEY": SECRET, "C": "12", "D": "30s", "EP": "http://collector:4317"}
    config = load("otlp: {endpoint: '${EP}', headers: {x-k: '${KEY}', x-d: '${NOPE:-fallback}'}}\n"
                  "sending: {concurrency: '${C}', duration: '${D}'}", env=env)
    assert dict(config.otlp.headers) == {"x-k": SECRET, "x-d": "fallback"}
    assert config.sending.concurrency == 12 and config.sending.duration == 30.0
    assert config.otlp.endpoint == "http://collector:4317" and config.otlp.insecure is True
    assert config.signal_target("logs").endpoint == "collector:4317"


def test_unset_variable_is_named() -> None:
    with raises("sending.concurrency: environment variable CONC is not set"):
        load("sending: {concurrency: '${CONC}'}")
    with raises("otlp.headers.x-honeycomb-team: environment variable HONEYCOMB_API_KEY is not set"):
        load(SEED_YAML)


def test_substitution_uses_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONEYCOMB_API_KEY", SECRET)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert SenderConfig.from_yaml(SEED_YAML).otlp.headers["x-honeycomb-team"] == SECRET


# ---------------------------------------------------------------------------
# Precedence: default < environment < YAML < override
# ---------------------------------------------------------------------------

ENV_ALL = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "env-host:1111",
    "OTEL_EXPORTER_OTLP_HEADERS": "x-a=env,x-b=env",
    "OTEL_EXPORTER_OTLP_INSECURE": "true",
    "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
}
YAML_ALL = "otlp: {endpoint: 'yaml-host:2222', headers: {x-b: yaml, x-c: yaml}, insecure: false, compression: none}"
OVERRIDES_ALL = {"otlp.endpoint": "cli-host:3333", "otlp.headers.x-c": "cli", "otlp.insecure": True,
                 "otlp.compression": "gzip"}


def summary(config: SenderConfig) -> tuple[str, dict[str, str], bool, str]:
    otlp = config.otlp
    return config.signal_target("traces").endpoint, dict(otlp.headers), otlp.insecure, otlp.compression


def test_precedence_default() -> None:
    assert summary(load("")) == ("localhost:4317", {}, False, "none")


def test_precedence_env_over_default() -> None:
    assert summary(load("", env=ENV_ALL)) == ("env-host:1111", {"x-a": "env", "x-b": "env"}, True, "gzip")


def test_precedence_yaml_over_env() -> None:
    assert summary(load(YAML_ALL, env=ENV_ALL)) == (
        "yaml-host:2222", {"x-a": "env", "x-b": "yaml", "x-c": "yaml"}, False, "none")


def test_precedence_override_over_yaml() -> None:
    config = SenderConfig.from_yaml(YAML_ALL, env=ENV_ALL, overrides=OVERRIDES_ALL)
    assert summary(config) == ("cli-host:3333", {"x-a": "env", "x-b": "yaml", "x-c": "cli"}, True, "gzip")


def test_overrides_of_sending_keys_and_literal_values() -> None:
    config = SenderConfig.from_yaml(SEED_YAML, env={"HONEYCOMB_API_KEY": "k"}, overrides={
        "sending.rate_limit.events_per_second": 5000, "sending.duration": "30s", "sending.processes": 2,
        "otlp.headers.x.dotted": "${NOT_SUBSTITUTED}"})
    assert config.sending.rate_limit.events_per_second == 5000
    assert config.sending.duration == 30.0 and config.sending.processes == 2
    assert config.otlp.headers["x.dotted"] == "${NOT_SUBSTITUTED}"  # CLI values are literal
    with raises("unknown key sending.proceses; did you mean sending.processes?"):
        load("", sending__proceses=2)


def test_env_values_are_literal_and_other_otel_variables() -> None:
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "x-a=%24%7BHOME%7D", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
           "OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca.pem", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/c.pem",
           "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/k.pem", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    config = load("", env=env)
    assert config.otlp.headers["x-a"] == "${HOME}"
    assert config.otlp.timeout == 2.5  # milliseconds in the variable, seconds in the config
    assert config.otlp.tls == TlsConfig("/ca.pem", "/c.pem", "/k.pem")
    assert config.otlp.endpoint == ""  # an empty variable counts as unset


# ---------------------------------------------------------------------------
# Endpoints as URLs
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("api.honeycomb.io:443", ("api.honeycomb.io:443", None)),
    ("localhost", ("localhost:4317", None)),
    ("https://api.honeycomb.io:443", ("api.honeycomb.io:443", "https")),
    ("https://api.honeycomb.io", ("api.honeycomb.io:4317", "https")),
    ("http://localhost:4317", ("localhost:4317", "http")),
    ("HTTP://localhost:4317/", ("localhost:4317", "http")),
    ("http://collector:4317/v1/traces", ("collector:4317", "http")),
    ("[::1]:4317", ("[::1]:4317", None)),
    ("http://[::1]", ("[::1]:4317", "http")),
    ("127.0.0.1:4317", ("127.0.0.1:4317", None)),
])
def test_split_endpoint(text: str, expected: tuple[str, str | None]) -> None:
    assert split_endpoint(text) == expected


@pytest.mark.parametrize(("text", "problem"), [
    ("grpc://host:4317", "the scheme must be http:// or https://"),
    ("host:99999", "the port must be a number from 1 to 65535"),
    ("host:", "the port after ':' is missing"),
    (":4317", "the host is missing"),
    ("::1", "an IPv6 address must be in brackets"),
    ("host/path", "a path needs a scheme"),
    ("bad host:1", "is not a host name"),
])
def test_bad_endpoints(text: str, problem: str) -> None:
    with raises(f"otlp.endpoint: {text!r} is invalid: expected host:port or a URL"):
        load(f"otlp: {{endpoint: '{text}'}}")
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load(f"otlp: {{endpoint: '{text}'}}")
    with raises(f"OTEL_EXPORTER_OTLP_ENDPOINT: {text!r} is invalid"):
        load("", env={"OTEL_EXPORTER_OTLP_ENDPOINT": text})


def test_scheme_implies_tls_choice() -> None:
    def target(yaml: str = "", env: dict[str, str] | None = None, **overrides: object) -> tuple[str, bool]:
        resolved = load(yaml, env, **overrides).signal_target("traces")
        return resolved.endpoint, resolved.insecure

    assert target(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"}) == ("localhost:4317", True)
    assert target(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "https://api.honeycomb.io:443"}) == (
        "api.honeycomb.io:443", False)
    # Set otherwise, beside the URL.
    assert target(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317",
                       "OTEL_EXPORTER_OTLP_INSECURE": "false"}) == ("localhost:4317", False)
    # The env URL's scheme is about the env endpoint; a YAML endpoint replaces both.
    assert target("otlp: {endpoint: 'api.honeycomb.io:443'}",
                  env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"}) == ("api.honeycomb.io:443", False)
    # A URL from a higher layer beats a lower layer's insecure...
    assert target("otlp: {endpoint: 'api.honeycomb.io:443', insecure: false}",
                  otlp__endpoint="http://127.0.0.1:4317") == ("127.0.0.1:4317", True)
    assert target("otlp: {endpoint: 'https://api.honeycomb.io:443'}",
                  env={"OTEL_EXPORTER_OTLP_INSECURE": "true"}) == ("api.honeycomb.io:443", False)
    # ...but an insecure from a higher layer wins.
    assert target("otlp: {endpoint: 'https://h:443'}", otlp__insecure=True) == ("h:443", True)
    assert target("otlp: {endpoint: 'h:443'}", env={"OTEL_EXPORTER_OTLP_INSECURE": "true"}) == ("h:443", True)


# ---------------------------------------------------------------------------
# Per-signal targets
# ---------------------------------------------------------------------------

def test_per_signal_yaml_overrides_and_header_merging() -> None:
    config = load("""\
otlp:
  endpoint: api.honeycomb.io:443
  headers: {x-honeycomb-team: KEY, X-Shared: common}
  compression: gzip
  metrics:
    headers: {x-honeycomb-dataset: my-metrics, x-shared: metrics}
  logs:
    endpoint: http://logs-collector:4317
""")
    traces, metrics, logs = (config.signal_target(s) for s in ("traces", "metrics", "logs"))
    assert traces.headers == (("x-honeycomb-team", "KEY"), ("x-shared", "common"))
    assert metrics.headers == (("x-honeycomb-team", "KEY"), ("x-shared", "metrics"),
                               ("x-honeycomb-dataset", "my-metrics"))
    assert metrics.endpoint == traces.endpoint == "api.honeycomb.io:443" and not metrics.insecure
    assert (logs.endpoint, logs.insecure, logs.compression) == ("logs-collector:4317", True, "gzip")
    with pytest.raises(ValueError, match="unknown signal 'spans'"):
        config.signal_target("spans")


def test_per_signal_env_variables() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://api.honeycomb.io:443",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=KEY",
           "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "x-honeycomb-dataset=svc-metrics",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://localhost:4317",
           "OTEL_EXPORTER_OTLP_LOGS_INSECURE": "true"}
    config = load("", env=env)
    metrics = config.signal_target("metrics")
    assert dict(metrics.headers) == {"x-honeycomb-team": "KEY", "x-honeycomb-dataset": "svc-metrics"}
    assert (metrics.endpoint, metrics.insecure) == ("api.honeycomb.io:443", False)
    traces = config.signal_target("traces")
    assert (traces.endpoint, traces.insecure, dict(traces.headers)) == ("localhost:4317", True,
                                                                        {"x-honeycomb-team": "KEY"})
    assert config.signal_target("logs").insecure is True
    # YAML per-signal keys win over the per-signal variables, key by key.
    config = load("otlp: {metrics: {headers: {x-honeycomb-dataset: from-yaml}}}", env=env)
    assert dict(config.signal_target("metrics").headers)["x-honeycomb-dataset"] == "from-yaml"


def test_header_names_are_lower_case_and_merge_across_layers() -> None:
    config = load("otlp: {headers: {X-Honeycomb-Team: yaml}}",
                  env={"OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=env,Other=1"})
    assert dict(config.otlp.headers) == {"x-honeycomb-team": "yaml", "other": "1"}
    with raises("otlp.headers.x-a: 'x-a' is invalid: expected each header once (same as 'x-a'"):
        load("otlp: {headers: {X-A: 1, x-a: 2}}")


# ---------------------------------------------------------------------------
# Secrets stay secret
# ---------------------------------------------------------------------------

def test_header_values_are_redacted_in_repr_and_to_dict() -> None:
    config = load("otlp: {headers: {x-honeycomb-team: '${K}'}, metrics: {headers: {x-m: '${K}'}}}",
                  env={"K": SECRET})
    target = config.signal_target("metrics")
    for text in (repr(config), str(config), repr(config.otlp), repr(config.otlp.headers),
                 repr(target), str(target), str(config.to_dict())):
        assert SECRET not in text
    assert "x-honeycomb-team" in repr(config) and "x-m" in repr(target)
    assert config.to_dict()["otlp"]["headers"] == {"x-honeycomb-team": "***"}
    assert config.to_dict()["otlp"]["metrics"]["headers"] == {"x-m": "***"}
    assert config.to_dict(redact=False)["otlp"]["headers"] == {"x-honeycomb-team": SECRET}
    assert repr(OtlpConfig(headers={"a": SECRET})) == repr(OtlpConfig(headers=Headers({"a": "x"})))


@pytest.mark.parametrize(("yaml", "env", "message"), [
    ("otlp: {headers: {x-k: 12345678}}", {}, "otlp.headers.x-k: *** is invalid: expected a string"),
    ("otlp: {headers: 'x-k=" + SECRET + "'}", {}, "otlp.headers: *** is invalid: expected a mapping"),
    ('otlp: {headers: {x-k: "' + SECRET + '\\n"}}', {}, "otlp.headers.x-k: *** is invalid: expected printable"),
    ("otlp: {headers: {x-k: '" + SECRET + "${X'}}", {}, "otlp.headers.x-k: *** is invalid: expected a closing"),
    ("otlp: {headers: {x-k: '" + SECRET + "${UNSET}'}}", {}, "otlp.headers.x-k: environment variable UNSET"),
    ("otlp: {metrics: {headers: {x-k: ['" + SECRET + "']}}}", {}, "otlp.metrics.headers.x-k: *** is invalid"),
    ("", {"OTEL_EXPORTER_OTLP_HEADERS": SECRET}, "OTEL_EXPORTER_OTLP_HEADERS: entry 1 is invalid"),
    ("", {"OTEL_EXPORTER_OTLP_HEADERS": "a=b,=" + SECRET},
     "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is invalid"),
    ("", {"OTEL_EXPORTER_OTLP_HEADERS": "x-k=caf%C3%A9" + SECRET},
     "otlp.headers.x-k: *** is invalid: expected printable ASCII"),
])
def test_errors_about_headers_never_show_the_value(yaml: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(yaml, env)
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)


# ---------------------------------------------------------------------------
# Bad input names the key path
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("yaml", "message"), [
    ("- a list", "top level: ['a list'] is invalid: expected a mapping with keys input, otlp, sending, timestamps"),
    ("otlp: 5", "otlp: 5 is invalid: expected a mapping with keys endpoint, headers"),
    ("otlp: {endpont: x}", "unknown key otlp.endpont; did you mean otlp.endpoint?"),
    ("sending: {rate: {}}", "unknown key sending.rate; did you mean sending.rate_limit?"),
    ("imput: {}", "unknown key imput; did you mean input?"),
    ("otlp: {insecure: 'yes'}", "otlp.insecure: 'yes' is invalid: expected true or false"),
    ("otlp: {compression: zip}", "otlp.compression: 'zip' is invalid: expected one of none, gzip, zstd; did you mean gzip?"),
    ("otlp: {timeout: -1}", "otlp.timeout: -1 is invalid: expected a duration > 0"),
    ("otlp: {tls: {cert_file: c.pem}}",
     "otlp.tls.key_file: null is invalid: expected a file path when otlp.tls.cert_file is set"),
    ("otlp: {tls: {key_file: k.pem}}",
     "otlp.tls.cert_file: null is invalid: expected a file path when otlp.tls.key_file is set"),
    ("otlp: {headers: {'bad name': v}}", "otlp.headers key: 'bad name' is invalid: expected a gRPC metadata name"),
    ("otlp: {headers: {x-bin: v}}", "otlp.headers key: 'x-bin' is invalid"),
    ("otlp: {traces: {endpoint: 'h:0'}}", "otlp.traces.endpoint: 'h:0' is invalid: expected null or host:port"),
    ("sending: {rate_limit: {events_per_second: -1}}",
     "sending.rate_limit.events_per_second: -1 is invalid: expected an integer >= 0"),
    ("sending: {rate_limit: {events_per_second: 1.5}}",
     "sending.rate_limit.events_per_second: 1.5 is invalid: expected an integer >= 0"),
    ("sending: {batch_size: {metrics: 0}}", "sending.batch_size.metrics: 0 is invalid: expected an integer >= 1"),
    ("sending: {batch_size: {spans: 10}}", "unknown key sending.batch_size.spans"),
    ("sending: {concurrency: 0}", "sending.concurrency: 0 is invalid: expected an integer >= 1"),
    ("sending: {multiplier: -1}", "sending.multiplier: -1 is invalid: expected an integer >= 0"),
    ("sending: {processes: two}", "sending.processes: 'two' is invalid: expected an integer >= 1"),
    ("sending: {max_message_bytes: 100}",
     "sending.max_message_bytes: 100 is invalid: expected an integer between 1024 and 2147483647"),
    ("sending: {metric_series_multiplier: 0}",
     "sending.metric_series_multiplier: 0 is invalid: expected an integer >= 1"),
    ("sending: {stats_interval: 0}", "sending.stats_interval: 0 is invalid: expected a duration > 0"),
    ("sending: {retry: {max_attempts: -1}}", "sending.retry.max_attempts: -1 is invalid: expected an integer >= 0"),
    ("sending: {retry: {max_attempts: 0, max_elapsed: 0}}",
     "sending.retry.max_elapsed: 0 is invalid: expected a duration > 0 when sending.retry.max_attempts is 0"),
    ("sending: {retry: {backoff_multiplier: 0.5}}",
     "sending.retry.backoff_multiplier: 0.5 is invalid: expected a number >= 1"),
    ("sending: {retry: {initial_backoff: 10s, max_backoff: 5s}}",
     "sending.retry.max_backoff: 5.0 is invalid: expected a duration >= sending.retry.initial_backoff (10)"),
    ("timestamps: {jitter_ms: -5}", "timestamps.jitter_ms: -5 is invalid: expected an integer >= 0"),
    ("timestamps: {backdate_ms: true}", "timestamps.backdate_ms: true is invalid: expected an integer >= 0"),
    ("input: {prefix: 'a/b'}", "input.prefix: 'a/b' is invalid: expected a non-empty file-name prefix"),
    ("input: {traces: 5}", "input.traces: 5 is invalid: expected null or a template file (.pb or OTLP JSON), or "
                           "false to turn the signal off"),
    ("sending: {concurrency: 1\n sending: 2", "malformed YAML"),
])
def test_bad_input_names_the_key_path(yaml: str, message: str) -> None:
    with raises(message):
        load(yaml)


@pytest.mark.parametrize(("var", "value", "message"), [
    ("OTEL_EXPORTER_OTLP_INSECURE", "yes", "OTEL_EXPORTER_OTLP_INSECURE: 'yes' is invalid: expected true or false"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "OTEL_EXPORTER_OTLP_COMPRESSION: 'brotli' is invalid: "
                                                 "expected one of none, gzip, zstd"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "OTEL_EXPORTER_OTLP_TIMEOUT: '10s' is invalid: "
                                         "expected a number of milliseconds > 0"),
    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "ftp://x", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'ftp://x' is invalid"),
    ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "1", "OTEL_EXPORTER_OTLP_LOGS_INSECURE: '1' is invalid"),
])
def test_malformed_environment_variables_are_named(var: str, value: str, message: str) -> None:
    with raises(message):
        load("", env={var: value})


def test_file_errors_are_prefixed_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("otlp: {compression: zip}\n")
    with raises(f"{path}: otlp.compression: 'zip' is invalid"):
        SenderConfig.from_file(path, env={})


# ---------------------------------------------------------------------------
# Input files
# ---------------------------------------------------------------------------

def test_default_input_files_are_skipped_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load("").input.files() == {}
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated" / "telemetry-logs.pb").write_bytes(b"")
    assert load("").input.files() == {"logs": "generated/telemetry-logs.pb"}


def test_named_input_files_are_kept_even_when_missing(tmp_path: Path) -> None:
    config = load(f"input: {{traces: '{tmp_path}/t.pb', metrics: false, logs: false}}")
    # Missing: an error when the sender loads it, not now.
    assert config.input.files() == {"traces": f"{tmp_path}/t.pb"}
    assert config.input.logs is False and config.input.metrics is False


def test_a_signal_left_out_or_null_is_the_directory_file_and_false_is_off(tmp_path: Path) -> None:
    for signal in SIGNALS:
        (tmp_path / f"telemetry-{signal}.pb").write_bytes(b"")
    every = {signal: str(tmp_path / f"telemetry-{signal}.pb") for signal in SIGNALS}
    assert load(f"input: {{directory: '{tmp_path}'}}").input.files() == every
    assert load(f"input: {{directory: '{tmp_path}', traces: true}}").input.files() == every
    with pytest.warns(ConfigWarning, match="input.metrics: '' now means the default file"):
        config = load(f"input: {{directory: '{tmp_path}', logs: false, metrics: ''}}")
    assert config.input.files() == {s: every[s] for s in ("traces", "metrics")}
    # Turning a signal off survives a round trip and overrides.
    assert SenderConfig.from_dict(config.to_dict(), env={}).input == config.input
    assert config.with_overrides({"sending.processes": 2}).input == config.input


def test_null_input_warns_that_its_meaning_changed(tmp_path: Path) -> None:
    # null used to turn the signal off; a config that relied on that hears so, naming the key.
    with pytest.warns(ConfigWarning, match=r"input\.metrics: null now means the default file in input\.directory "
                                           r"\(telemetry-metrics\.pb\), not 'off': write `metrics: false`"):
        config = load(f"input: {{directory: '{tmp_path}', metrics: null}}")
    assert config.input.metrics is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(f"input: {{directory: '{tmp_path}', metrics: false}}")  # no warning when off is explicit
        load(f"input: {{directory: '{tmp_path}'}}").with_overrides({"sending.processes": 2})


def test_input_directory(tmp_path: Path) -> None:
    (tmp_path / "run-traces.pb").write_bytes(b"")
    (tmp_path / "run-metrics.json").write_bytes(b"")
    own = tmp_path / "m.json"
    config = load(f"input: {{directory: '{tmp_path}', prefix: run, metrics: '{own}'}}")
    assert config.input.files() == {"traces": str(tmp_path / "run-traces.pb"), "metrics": str(own)}
    with pytest.raises(TemplateFileError, match="input.directory: .* is not a directory"):
        load(f"input: {{directory: '{tmp_path}/nope'}}").input.files()
    assert InputConfig(directory=str(tmp_path), prefix="run").files() == {"traces": str(tmp_path / "run-traces.pb")}


# ---------------------------------------------------------------------------
# The sender never imports the generator
# ---------------------------------------------------------------------------

def test_signal_otlp_config_defaults() -> None:
    assert SignalOtlpConfig() == SignalOtlpConfig(endpoint=None, headers={}, insecure=None)


def leaves(config: object, prefix: str = "") -> list[str]:
    """Every key path of a config dataclass, e.g. `sending.retry.max_backoff`."""
    out: list[str] = []
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        if f.metadata == NOT_A_KEY:
            continue
        value = getattr(config, f.name)
        key = f.metadata.get("key", f.name)  # a YAML key that is a Python keyword (burst.for)
        out += leaves(value, f"{prefix}{key}.") if dataclasses.is_dataclass(value) else [prefix + key]
    return out


def test_doc_documents_every_sender_key() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    section = text[text.index("## Sender configuration"):]
    paths = leaves(SenderConfig())
    assert "otlp.metrics.headers" in paths and "sending.retry.max_backoff" in paths
    assert [path for path in paths if f"`{path}`" not in section] == []


# ---------------------------------------------------------------------------
# OTLP/HTTP: protocol and endpoints as the exporter specification says
# ---------------------------------------------------------------------------

def http_urls(text: str = "", env: dict[str, str] | None = None, **overrides: object) -> dict[str, tuple[str, bool]]:
    config = load(text, env=env, **overrides)
    return {s: (config.signal_target(s).endpoint, config.signal_target(s).insecure) for s in SIGNALS}


@pytest.mark.parametrize(("yaml", "traces_url", "plaintext"), [
    ("", "http://localhost:4318/v1/traces", True),  # the specification's default
    ("endpoint: collector", "https://collector:4318/v1/traces", False),
    ("{endpoint: collector, insecure: true}", "http://collector:4318/v1/traces", True),
    ("endpoint: http://collector:4318", "http://collector:4318/v1/traces", True),
    ("endpoint: http://collector:4318/", "http://collector:4318/v1/traces", True),
    ("endpoint: https://api.honeycomb.io", "https://api.honeycomb.io/v1/traces", False),  # the scheme's port
    ("endpoint: http://gw.example:8080/otlp/", "http://gw.example:8080/otlp/v1/traces", True),
    ("endpoint: 'http://[::1]:4318'", "http://[::1]:4318/v1/traces", True),
])
def test_http_base_endpoint_gets_the_signal_path(yaml: str, traces_url: str, plaintext: bool) -> None:
    urls = http_urls(f"otlp: {{protocol: http/protobuf, {yaml.strip('{}')}}}" if yaml else
                     "otlp: {protocol: http/protobuf}")
    assert urls["traces"] == (traces_url, plaintext)
    assert urls["logs"][0] == traces_url.replace("/v1/traces", "/v1/logs")


def test_http_per_signal_endpoint_is_used_as_given() -> None:
    urls = http_urls("""\
otlp:
  protocol: http/protobuf
  endpoint: http://collector:4318
  traces: {endpoint: "https://traces.example/custom/path"}
  metrics: {endpoint: "http://metrics.example:9000"}
""")
    assert urls["traces"] == ("https://traces.example/custom/path", False)
    assert urls["metrics"] == ("http://metrics.example:9000/", True)  # no path: the root, nothing appended
    assert urls["logs"] == ("http://collector:4318/v1/logs", True)


def test_protocol_from_the_environment_and_its_precedence() -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
           "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://env:4317",
           "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://env:4318/v1/logs"}
    config = load("", env=env)
    assert [config.signal_target(s).protocol for s in SIGNALS] == ["http/protobuf", "grpc", "http/protobuf"]
    assert config.signal_target("traces").endpoint == "http://env:4318/v1/traces"
    assert config.signal_target("metrics").endpoint == "env:4317"
    assert config.signal_target("logs").endpoint == "http://env:4318/v1/logs"
    # YAML over the environment, a flag over both.
    assert load("otlp: {protocol: grpc}", env=env).signal_target("traces").protocol == "grpc"
    assert load("otlp: {protocol: grpc}", env=env, otlp__protocol="http/protobuf").signal_target(
        "traces").protocol == "http/protobuf"


def test_wrong_protocols_are_named() -> None:
    with raises("otlp.protocol: 'http/json' is invalid: expected one of grpc, http/protobuf (http for short) "
                "(telegen sends protobuf: use http/protobuf)"):
        load("otlp: {protocol: http/json}")
    with raises("otlp.logs.protocol: 'thrift' is invalid: expected null or one of grpc, http/protobuf (http for "
                "short)"):
        load("otlp: {logs: {protocol: thrift}}")


def test_the_cli_the_yaml_and_the_environment_take_the_same_protocol_names() -> None:
    # `--protocol http` is short for http/protobuf; so is `protocol: http` and OTEL_EXPORTER_OTLP_PROTOCOL=http.
    assert load("otlp: {logs: {protocol: http}}").signal_target("logs").protocol == "http/protobuf"
    assert load("", otlp__protocol="http").otlp.protocol == "http/protobuf"
    assert load("", env={"OTEL_EXPORTER_OTLP_PROTOCOL": "HTTP"}).otlp.protocol == "http/protobuf"
    from telegen.cli import _protocol_choices
    assert set(_protocol_choices()) == {"grpc", "http/protobuf", "http"}
    with raises("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'thrift' is invalid: expected one of grpc, http/protobuf"):
        load("", env={"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"})


def test_http_config_round_trips() -> None:
    config = load("otlp: {protocol: http/protobuf, endpoint: 'https://gw.example/otlp', "
                  "traces: {endpoint: 'https://t.example/x'}}")
    again = SenderConfig.from_dict(config.to_dict(redact=False), env={})
    assert again == config and again.signal_target("metrics").endpoint == "https://gw.example/otlp/v1/metrics"
    changed = config.with_overrides({"sending.processes": 2})
    assert changed.signal_target("traces").endpoint == "https://t.example/x"


@pytest.mark.parametrize("data, overrides, bounds", [
    ({}, {}, (600.0, 10)),  # neither given: the defaults, whichever comes first
    ({"sending": {"duration": "60s"}}, {}, (60.0, 0)),  # a duration alone is not cut short by passes
    ({"sending": {"multiplier": 3}}, {}, (0.0, 3)),
    ({"sending": {"multiplier": 3, "duration": 5}}, {}, (5.0, 3)),
    ({}, {"sending.duration": 60}, (60.0, 0)),  # --duration 60s
    ({"sending": {"multiplier": 2}}, {"sending.duration": 60}, (60.0, 2)),
])
def test_a_bound_the_user_sets_is_not_cut_short_by_a_default(data, overrides, bounds):
    sending = SenderConfig.from_dict(data, env={}, overrides=overrides).sending
    assert (sending.duration, sending.multiplier) == bounds


def test_the_setup_line_says_which_bound_holds():
    from telegen.send.sender import Sender
    line = Sender({"sending": {"duration": "60s"}}, write=lambda text: None).describe_setup()
    assert line.endswith("for 60 s")
    line = Sender({}, write=lambda text: None).describe_setup()
    assert line.endswith("for 600 s or 10 passes, whichever comes first")


def test_the_sender_example_loads_and_shows_every_key():
    """examples/sender-config.yaml: a working config that names every key."""
    path = Path(__file__).resolve().parents[1] / "examples" / "sender-config.yaml"
    config = SenderConfig.load(path, env={})
    assert config.sending.duration == 60 and config.sending.multiplier == 0
    # No endpoint: each protocol's local default (4317 gRPC, 4318 OTLP/HTTP); every signal from ./generated.
    assert config.otlp.endpoint == "" and config.otlp.insecure
    assert config.signal_target("traces").endpoint == "localhost:4317"
    http = config.with_overrides({"otlp.protocol": "http/protobuf"})
    assert http.signal_target("logs").endpoint == "http://localhost:4318/v1/logs"
    assert config.input.template_directory == "./generated" and config.input.prefix == "telemetry"
    assert [config.input.path(s) for s in SIGNALS] == [f"generated/telemetry-{s}.pb" for s in SIGNALS]
    text = path.read_text()
    missing = [p for p in leaves(SenderConfig()) if f"{p.rsplit('.', 1)[-1]}:" not in text]
    assert missing == []
