"""GeneratorConfig: parsing, defaults, ${VAR} substitution and every bad-input message."""
from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from telegen.configkit import substitute_env
from telegen.errors import ConfigError, TelegenError
from telegen.generate.config import (
    _RULES,
    DEFAULT_SERVICE_NAMES,
    METRIC_TYPES,
    GeneratorConfig,
)

# The structure the issue specifies, verbatim: the defaults must equal it.
ISSUE_YAML = """\
output: {directory: "./generated", prefix: "telemetry"}
traces:
  count: 10000
  spans: {avg_per_trace: 15, std_dev: 5, high_span_traces: {enabled: true, count: 10, span_count: 100000}}
  services:
    count: 5
    names: ["api-gateway", "user-service", "order-service", "payment-service", "inventory-service"]
    ingress: {single: true, service: "api-gateway"}
  custom_attributes: {count: 10}
metrics:
  metric_count: 2000
  timeseries_per_metric: {min: 100, max: 500, default: 300}
  types: [host_metrics, k8s_cluster, k8s_node, k8s_pod, k8s_container]
logs:
  count: 50000
  types: {http_access: {percentage: 40}, application: {percentage: 40, services: 5}, system: {percentage: 20}}
"""

# Every key, none at its default (the example in docs/configuration.md has the same shape).
FULL_YAML = """\
seed: 42
semantic_conventions: legacy
output:
  directory: /tmp/telegen-out
  prefix: load-test
traces:
  count: 200
  error_rate: 0.05
  spans:
    avg_per_trace: 12.5
    std_dev: 4
    high_span_traces: {enabled: false, count: 2, span_count: 5000}
  services:
    count: 7
    names: [edge, accounts, orders]
    ingress:
      single: false
      service: edge
      services: [edge, accounts]
  custom_attributes: {count: 4, probability: 0.5}
metrics:
  metric_count: 50
  timeseries_per_metric: {min: 2, max: 20, default: 10}
  types: [host_metrics, k8s_pod]
logs:
  count: 1000
  types:
    http_access: {percentage: 50}
    application:
      percentage: 30.5
      services: 3
      severity_weights: {debug: 1, Info: 5, WARN: 2.5, error: 1}
    system: {percentage: 19.5}
"""


def load_with(data: dict[str, Any]) -> GeneratorConfig:
    return GeneratorConfig.from_dict(data)


def nested(path: str, value: Any) -> dict[str, Any]:
    """{"a.b.c": v} as nested dicts, so bad-input cases read as their key path."""
    *parents, leaf = path.split(".")
    data: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        data = {part: data}
    return data


def raises(fragment: str):
    return pytest.raises(ConfigError, match=re.escape(fragment))


# --- defaults and the happy paths ------------------------------------------

def test_defaults_equal_the_issue_structure() -> None:
    assert GeneratorConfig.from_yaml(ISSUE_YAML) == GeneratorConfig()


def test_defaults_values() -> None:
    config = GeneratorConfig()
    assert config.traces.services.names == DEFAULT_SERVICE_NAMES
    assert config.metrics.types == METRIC_TYPES
    assert config.seed is None and config.semantic_conventions == "stable"
    assert config.logs.types.application.severity_weights == {"DEBUG": 15.0, "INFO": 60.0, "WARN": 15.0, "ERROR": 10.0}


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n", "{}"])
def test_empty_document_means_defaults(text: str) -> None:
    assert GeneratorConfig.from_yaml(text) == GeneratorConfig()


def test_empty_section_means_its_defaults() -> None:
    assert GeneratorConfig.from_yaml("traces:\nmetrics:\n") == GeneratorConfig()


def test_full_example_is_read_exactly() -> None:
    config = GeneratorConfig.from_yaml(FULL_YAML)
    assert config.seed == 42 and config.semantic_conventions == "legacy"
    assert config.output.prefix == "load-test"
    assert config.traces.spans.std_dev == 4.0 and isinstance(config.traces.spans.std_dev, float)
    assert config.traces.services.names == ("edge", "accounts", "orders")
    assert config.traces.services.resolved_names()[:4] == ("edge", "accounts", "orders", "shipping-service")
    assert config.traces.services.ingress.services == ("edge", "accounts")
    assert config.traces.custom_attributes.probability == 0.5
    assert config.metrics.types == ("host_metrics", "k8s_pod")
    # Case-insensitive severities are normalised; percentages given as ints become floats.
    assert config.logs.types.application.severity_weights == {"DEBUG": 1.0, "INFO": 5.0, "WARN": 2.5, "ERROR": 1.0}
    assert config.logs.types.http_access.percentage == 50.0


def test_full_example_round_trips() -> None:
    config = GeneratorConfig.from_yaml(FULL_YAML)
    plain = config.to_dict()
    assert GeneratorConfig.from_dict(plain) == config
    # YAML-safe: lists not tuples, and safe_dump/safe_load preserve it.
    assert plain["traces"]["services"]["names"] == ["edge", "accounts", "orders"]
    assert GeneratorConfig.from_yaml(yaml.safe_dump(plain)) == config


def test_to_dict_round_trips_defaults_and_is_plain() -> None:
    plain = GeneratorConfig().to_dict()
    assert GeneratorConfig.from_dict(plain) == GeneratorConfig()
    assert isinstance(plain["metrics"]["types"], list)
    yaml.safe_dump(plain)  # raises on tuples or other non-plain objects


def test_to_dict_escapes_literal_dollar_brace() -> None:
    config = GeneratorConfig.from_dict({"output": {"directory": "/data/$${HOME}"}})
    assert config.output.directory == "/data/${HOME}"
    assert GeneratorConfig.from_dict(config.to_dict()) == config


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "gen.yaml"
    path.write_text(FULL_YAML)
    expected = GeneratorConfig.from_yaml(FULL_YAML)
    assert GeneratorConfig.from_file(path) == expected
    assert GeneratorConfig.from_file(str(path)) == expected


@pytest.mark.parametrize("kind", ["path", "str-path", "yml-str", "no-suffix", "text", "dict", "config"])
def test_load_dispatches(tmp_path: Path, kind: str) -> None:
    expected = GeneratorConfig.from_yaml(FULL_YAML)
    yaml_file = tmp_path / "gen.yaml"
    yaml_file.write_text(FULL_YAML)
    yml_file = tmp_path / "gen.yml"
    yml_file.write_text(FULL_YAML)
    plain_file = tmp_path / "generator-config"
    plain_file.write_text(FULL_YAML)
    source: Any = {
        "path": yaml_file, "str-path": str(yaml_file), "yml-str": str(yml_file),
        "no-suffix": str(plain_file), "text": FULL_YAML, "dict": expected.to_dict(), "config": expected,
    }[kind]
    assert GeneratorConfig.load(source) == expected


def test_load_one_line_yaml_text() -> None:
    assert GeneratorConfig.load("seed: 3").seed == 3


def test_load_missing_yaml_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with raises(f"config file not found: {missing}"):
        GeneratorConfig.load(str(missing))


def test_load_missing_plain_name() -> None:
    # One word that names no file is taken for a file name, not for YAML text.
    with raises("config file not found: no-such-config"):
        GeneratorConfig.load("no-such-config")


def test_load_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        GeneratorConfig.load(42)  # type: ignore[arg-type]


def test_with_overrides() -> None:
    config = GeneratorConfig().with_overrides({"output.directory": "/tmp/x", "seed": 9})
    assert config.output.directory == "/tmp/x" and config.seed == 9
    with raises("seed: -1 is invalid"):
        GeneratorConfig().with_overrides({"seed": -1})
    with raises("unknown key output.dir; did you mean output.directory?"):
        GeneratorConfig().with_overrides({"output.dir": "x"})


def test_ints_and_floats_coercion() -> None:
    config = load_with({"traces": {"count": 10.0, "spans": {"avg_per_trace": 7}}})
    assert config.traces.count == 10 and isinstance(config.traces.count, int)
    assert config.traces.spans.avg_per_trace == 7.0 and isinstance(config.traces.spans.avg_per_trace, float)


def test_counts_of_zero_disable_signals() -> None:
    config = load_with({
        "traces": {"count": 0, "services": {"count": 0}, "spans": {"high_span_traces": {"count": 0}}},
        "metrics": {"metric_count": 0, "types": []},
        "logs": {"count": 0},
    })
    assert (config.traces.count, config.metrics.metric_count, config.logs.count) == (0, 0, 0)


def test_derived_defaults_follow_user_values() -> None:
    config = load_with({"traces": {"services": {"names": ["edge", "db"], "count": 2}},
                        "metrics": {"timeseries_per_metric": {"min": 10, "max": 20}}})
    assert config.traces.services.ingress.service == "edge"
    assert config.metrics.timeseries_per_metric.default == 15


def test_severity_weights_missing_keys_get_zero() -> None:
    config = load_with(nested("logs.types.application.severity_weights", {"error": 3}))
    assert config.logs.types.application.severity_weights == {"DEBUG": 0.0, "INFO": 0.0, "WARN": 0.0, "ERROR": 3.0}


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, TelegenError)
    with pytest.raises(ValueError):
        load_with({"seed": -1})


def test_every_rule_names_a_real_key() -> None:
    # Guards the rule table against typos: a misspelt path would silently check nothing.
    def paths(cls: type, prefix: str) -> set[str]:
        out: set[str] = set()
        for name, hint in typing.get_type_hints(cls).items():
            path = f"{prefix}.{name}" if prefix else name
            if dataclasses.is_dataclass(hint):
                out |= paths(hint, path)
            out |= {path, path + "[]", path + ".*"}
        return out

    assert set(_RULES) <= paths(GeneratorConfig, "")


# --- ${VAR} substitution -----------------------------------------------------

def test_env_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_OUT", "/srv/out")
    monkeypatch.setenv("TG_TRACES", "123")
    monkeypatch.setenv("TG_RATE", "0.25")
    monkeypatch.setenv("TG_HIGH", "false")
    monkeypatch.delenv("TG_UNSET", raising=False)
    config = GeneratorConfig.from_yaml("""
output: {directory: "${TG_OUT}/run", prefix: "${TG_UNSET:-telemetry}-x"}
traces:
  count: ${TG_TRACES}
  error_rate: ${TG_RATE}
  spans: {high_span_traces: {enabled: "${TG_HIGH}"}}
  services: {names: ["${TG_UNSET:-edge}", "b"], count: 2}
seed: ${TG_UNSET:-7}
""")
    assert config.output.directory == "/srv/out/run"
    assert config.output.prefix == "telemetry-x"
    assert config.traces.count == 123 and config.traces.error_rate == 0.25
    assert config.traces.spans.high_span_traces.enabled is False
    assert config.traces.services.names == ("edge", "b")
    assert config.seed == 7


def test_env_unset_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TG_NOT_SET", raising=False)
    with raises("output.directory: environment variable TG_NOT_SET is not set"):
        load_with({"output": {"directory": "${TG_NOT_SET}/x"}})
    with raises("traces.services.names[1]: environment variable TG_NOT_SET is not set"):
        load_with({"traces": {"services": {"names": ["a", "${TG_NOT_SET}"]}}})


def test_env_substituted_value_is_still_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_COUNT", "-5")
    with raises("traces.count: -5 is invalid: expected an integer >= 0"):
        load_with({"traces": {"count": "${TG_COUNT}"}})


def test_env_escape_and_malformed() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert substitute_env("$${A}", "k", env=env) == "${A}"
    assert substitute_env("x${A}y$A", "k", env=env) == "x1y$A"
    assert substitute_env("${EMPTY:-d}|${EMPTY}", "k", env=env) == "d|"
    assert substitute_env({"a": ["${A}", 3]}, "root", env=env) == {"a": ["1", 3]}
    with raises("k: '${A' is invalid: expected a closing '}'"):
        substitute_env("${A", "k", env=env)
    with raises("k: '${1A}' is invalid"):
        substitute_env("${1A}", "k", env=env)
    with raises("root.b[0]: environment variable NOPE is not set"):
        substitute_env({"b": ["${NOPE}"]}, "root", env=env)


# --- bad input: files and YAML ------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with raises(f"config file not found: {missing}"):
        GeneratorConfig.from_file(missing)


def test_unreadable_file_directory(tmp_path: Path) -> None:
    folder = tmp_path / "conf.yaml"
    folder.mkdir()
    with raises(f"cannot read config file {folder}: it is a directory"):
        GeneratorConfig.from_file(folder)


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"seed: 1\n# \xff\n")
    with raises(f"{path}: byte 0xff at offset 10 is invalid: expected UTF-8 text"):
        GeneratorConfig.from_file(path)


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("traces:\n  count: 5\n  spans: [1, 2\nmetrics: {}\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: malformed YAML at line \d+, column \d+: "):
        GeneratorConfig.from_file(path)


def test_malformed_yaml_exact_position() -> None:
    with raises("malformed YAML at line 2, column 11: mapping values are not allowed here"):
        GeneratorConfig.from_yaml("traces:\n  count: x: 1\n")


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("traces:\n  count: 1\n  count: 2\n")
    with raises(f"{path}: malformed YAML at line 3, column 3: duplicate key 'count' (first at line 2)"):
        GeneratorConfig.from_file(path)


def test_value_errors_from_a_file_are_prefixed(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("traces:\n  count: -3\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: traces\.count: -3 is invalid: expected an integer >= 0$"):
        GeneratorConfig.from_file(path)


def test_messages_from_strings_are_not_prefixed() -> None:
    with pytest.raises(ConfigError, match=r"^traces\.count: -3 is invalid"):
        GeneratorConfig.from_yaml("traces: {count: -3}")


@pytest.mark.parametrize("text, shown", [("[1, 2]", "[1, 2]"), ("just text", "'just text'"), ("42", "42")])
def test_top_level_not_a_mapping(text: str, shown: str) -> None:
    with raises(f"top level: {shown} is invalid: expected a mapping with keys output, traces, metrics"):
        GeneratorConfig.from_yaml(text)


# --- bad input: keys and types ------------------------------------------------

@pytest.mark.parametrize("data, message", [
    ({"traces": {"spanz": {}}}, "unknown key traces.spanz; did you mean traces.spans?"),
    ({"trace": {}}, "unknown key trace; did you mean traces?"),
    ({"Metrics": {}}, "unknown key Metrics; did you mean metrics?"),
    (nested("traces.spans.high_span_traces.enable", True),
     "unknown key traces.spans.high_span_traces.enable; did you mean traces.spans.high_span_traces.enabled?"),
    ({"traces": {"zzz": 1}},
     "unknown key traces.zzz; valid keys under traces: count, spans, services, custom_attributes, error_rate"),
    ({"zzz": 1}, "unknown key zzz; valid keys at the top level: output, traces, metrics, logs, seed, semantic_conventions"),
    (nested("logs.types.application.severity_weights", {"warning": 1}),
     "unknown key logs.types.application.severity_weights.warning; did you mean logs.types.application.severity_weights.WARN?"),
    (nested("logs.types.application.severity_weights", {"FATAL": 1}),
     "unknown key logs.types.application.severity_weights.FATAL; valid keys under "
     "logs.types.application.severity_weights: DEBUG, INFO, WARN, ERROR"),
])
def test_unknown_keys(data: dict[str, Any], message: str) -> None:
    with raises(message):
        load_with(data)


@pytest.mark.parametrize("path, value, expected", [
    ("traces.count", True, "true is invalid: expected an integer >= 0"),
    ("traces.count", 10.5, "10.5 is invalid: expected an integer >= 0"),
    ("traces.count", "many", "'many' is invalid: expected an integer >= 0"),
    ("traces.count", None, "null is invalid: expected an integer >= 0"),
    ("traces.spans.std_dev", "5", "'5' is invalid: expected a number >= 0"),
    ("traces.spans.std_dev", False, "false is invalid: expected a number >= 0"),
    ("traces.spans.std_dev", float("nan"), "nan is invalid: expected a number >= 0"),
    ("traces.spans.high_span_traces.enabled", "yes please", "'yes please' is invalid: expected true or false"),
    ("traces.spans.high_span_traces.enabled", 1, "1 is invalid: expected true or false"),
    ("traces.services.names", "api-gateway", "'api-gateway' is invalid: expected a list of strings"),
    ("traces.services.names", {"a": 1}, "{'a': 1} is invalid: expected a list of strings"),
    ("traces.services.ingress.services", "edge", "'edge' is invalid: expected a list of strings"),
    ("metrics.types", "host_metrics", "'host_metrics' is invalid: expected a list of strings"),
    ("traces.spans", 15, "15 is invalid: expected a mapping with keys avg_per_trace, std_dev, high_span_traces"),
    ("logs.types.application.severity_weights", [1, 2], "[1, 2] is invalid: expected a mapping of key"),
    ("output.directory", 5, "5 is invalid: expected a non-empty string"),
    ("semantic_conventions", 1, "1 is invalid: expected one of stable, legacy"),
    ("seed", "abc", "'abc' is invalid: expected null or an integer >= 0 and < 2**63"),
    ("seed", 1.5, "1.5 is invalid: expected null or an integer >= 0 and < 2**63"),
    ("seed", True, "true is invalid: expected null or an integer >= 0 and < 2**63"),
])
def test_wrong_types(path: str, value: Any, expected: str) -> None:
    with raises(f"{path}: {expected}"):
        load_with(nested(path, value))


@pytest.mark.parametrize("path, value, expected", [
    ("traces.services.names", ["a", 7], "traces.services.names[1]: 7 is invalid: expected a non-empty string"),
    ("traces.services.names", ["a", ""], "traces.services.names[1]: '' is invalid: expected a non-empty string"),
    ("metrics.types", ["host_metrics", None], "metrics.types[1]: null is invalid: expected one of host_metrics"),
    ("logs.types.application.severity_weights", {"INFO": "lots"},
     "logs.types.application.severity_weights.INFO: 'lots' is invalid: expected a number >= 0"),
])
def test_wrong_item_types(path: str, value: Any, expected: str) -> None:
    with raises(expected):
        load_with(nested(path, value))


# --- bad input: ranges ----------------------------------------------------------

@pytest.mark.parametrize("path", [
    "traces.count",
    "traces.spans.high_span_traces.count",
    "traces.spans.high_span_traces.span_count",
    "traces.services.count",
    "traces.custom_attributes.count",
    "metrics.metric_count",
    "logs.count",
    "logs.types.application.services",
])
def test_negative_counts(path: str) -> None:
    with raises(f"{path}: -1 is invalid: expected an integer >= 0"):
        load_with(nested(path, -1))


@pytest.mark.parametrize("path, value, expected", [
    ("traces.spans.std_dev", -1, "-1 is invalid: expected a number >= 0"),
    ("traces.spans.std_dev", -0.5, "-0.5 is invalid: expected a number >= 0"),
    ("traces.spans.avg_per_trace", 0, "0 is invalid: expected a number > 0"),
    ("traces.spans.avg_per_trace", -3, "-3 is invalid: expected a number > 0"),
    ("traces.custom_attributes.probability", 1.5, "1.5 is invalid: expected a number between 0 and 1"),
    ("traces.custom_attributes.probability", -0.1, "-0.1 is invalid: expected a number between 0 and 1"),
    ("traces.error_rate", 2, "2 is invalid: expected a number between 0 and 1"),
    ("metrics.timeseries_per_metric.min", 0, "0 is invalid: expected an integer >= 1"),
    ("logs.types.http_access.percentage", -10, "-10 is invalid: expected a number >= 0"),
    ("logs.types.application.percentage", -10, "-10 is invalid: expected a number >= 0"),
    ("logs.types.system.percentage", -10, "-10 is invalid: expected a number >= 0"),
    ("seed", -1, "-1 is invalid: expected null or an integer >= 0 and < 2**63"),
    ("seed", 2**63, f"{2**63} is invalid: expected null or an integer >= 0 and < 2**63"),
    ("semantic_conventions", "stabel", "'stabel' is invalid: expected one of stable, legacy; did you mean stable?"),
    ("output.prefix", "", "'' is invalid: expected a non-empty file-name prefix without path separators"),
    ("output.prefix", "a/b", "'a/b' is invalid: expected a non-empty file-name prefix without path separators"),
    ("output.prefix", "a\\b", "'a\\\\b' is invalid: expected a non-empty file-name prefix without path separators"),
    ("output.directory", "", "'' is invalid: expected a non-empty string"),
    ("output.directory", "   ", "'   ' is invalid: expected a non-empty string"),
])
def test_out_of_range(path: str, value: Any, expected: str) -> None:
    with raises(f"{path}: {expected}"):
        load_with(nested(path, value))


def test_seed_bounds_accepted() -> None:
    assert load_with({"seed": 0}).seed == 0
    assert load_with({"seed": 2**63 - 1}).seed == 2**63 - 1
    assert load_with({"seed": None}).seed is None


def test_high_span_traces_need_spans_when_enabled() -> None:
    with raises("traces.spans.high_span_traces.span_count: 0 is invalid: expected an integer >= 1 when "
                "traces.spans.high_span_traces.enabled is true"):
        load_with(nested("traces.spans.high_span_traces", {"span_count": 0}))
    assert load_with(nested("traces.spans.high_span_traces", {"enabled": False, "span_count": 0}))


def test_timeseries_min_greater_than_max() -> None:
    with raises("metrics.timeseries_per_metric.min: 600 is invalid: expected an integer <= "
                "metrics.timeseries_per_metric.max (500)"):
        load_with(nested("metrics.timeseries_per_metric", {"min": 600, "max": 500, "default": 550}))


@pytest.mark.parametrize("default", [50, 501])
def test_timeseries_default_outside_bounds(default: int) -> None:
    with raises(f"metrics.timeseries_per_metric.default: {default} is invalid: expected an integer between "
                "min (100) and max (500)"):
        load_with(nested("metrics.timeseries_per_metric.default", default))


@pytest.mark.parametrize("percentages, terms", [
    ({"http_access": 40, "application": 40, "system": 30}, "40 + 40 + 30 = 110"),
    ({"http_access": 33.3, "application": 33.3, "system": 33.3}, "33.3 + 33.3 + 33.3 = 99.9"),
    ({"http_access": 0, "application": 0, "system": 0}, "0 + 0 + 0 = 0"),
])
def test_log_percentages_must_sum_to_100(percentages: dict[str, float], terms: str) -> None:
    types = {name: {"percentage": p} for name, p in percentages.items()}
    with raises(f"logs.types: percentages {terms} are invalid: expected http_access + application + system to sum to 100"):
        load_with({"logs": {"types": types}})


def test_log_percentages_tolerance() -> None:
    types = {"http_access": {"percentage": 100 / 3}, "application": {"percentage": 100 / 3},
             "system": {"percentage": 100 / 3}}
    assert load_with({"logs": {"types": types}}).logs.types.system.percentage == pytest.approx(33.333333)
    assert load_with({"logs": {"types": {"http_access": {"percentage": 100},
                                          "application": {"percentage": 0}, "system": {"percentage": 0}}}})


def test_application_logs_need_a_service() -> None:
    with raises("logs.types.application.services: 0 is invalid: expected an integer >= 1 when "
                "logs.types.application.percentage > 0"):
        load_with(nested("logs.types.application.services", 0))


def test_ingress_service_not_a_service() -> None:
    with raises("traces.services.ingress.service: 'gateway' is invalid: expected one of the services "
                "api-gateway, user-service, order-service, payment-service, inventory-service; "
                "did you mean api-gateway?"):
        load_with(nested("traces.services.ingress.service", "gateway"))


def test_ingress_service_beyond_count() -> None:
    # count 2 keeps only the first two names, so inventory-service is not a service.
    with raises("traces.services.ingress.service: 'inventory-service' is invalid: expected one of the services "
                "api-gateway, user-service"):
        load_with({"traces": {"services": {"count": 2, "ingress": {"service": "inventory-service"}}}})


def test_ingress_extra_generated_name_is_a_service() -> None:
    config = load_with({"traces": {"services": {"count": 7, "ingress": {"service": "notification-service"}}}})
    assert config.traces.services.ingress.service == "notification-service"


def test_ingress_services_when_not_single() -> None:
    ingress = {"single": False, "services": ["api-gateway", "nope-service"]}
    with raises("traces.services.ingress.services[1]: 'nope-service' is invalid: expected one of the services"):
        load_with(nested("traces.services.ingress", ingress))
    ok = load_with(nested("traces.services.ingress", {"single": False, "services": ["user-service"]}))
    assert ok.traces.services.ingress.services == ("user-service",)


def test_traces_need_a_service() -> None:
    with raises("traces.services.count: 0 is invalid: expected an integer >= 1 when traces.count > 0"):
        load_with(nested("traces.services.count", 0))


def test_duplicate_service_names() -> None:
    with raises("traces.services.names[2]: 'a' is invalid: expected a name not used before "
                "(duplicate of traces.services.names[0])"):
        load_with(nested("traces.services.names", ["a", "b", "a"]))


def test_metric_types_unknown_and_suggested() -> None:
    with raises("metrics.types[1]: 'k8s_pods' is invalid: expected one of host_metrics, k8s_cluster, k8s_node, "
                "k8s_pod, k8s_container; did you mean k8s_pod?"):
        load_with(nested("metrics.types", ["host_metrics", "k8s_pods"]))


def test_metric_types_duplicate() -> None:
    with raises("metrics.types[1]: 'k8s_pod' is invalid: expected each type once"):
        load_with(nested("metrics.types", ["k8s_pod", "k8s_pod"]))


def test_metric_types_empty_with_metrics() -> None:
    with raises("metrics.types: [] is invalid: expected at least one of host_metrics"):
        load_with(nested("metrics.types", []))


def test_severity_weights_negative() -> None:
    with raises("logs.types.application.severity_weights.ERROR: -1 is invalid: expected a number >= 0"):
        load_with(nested("logs.types.application.severity_weights", {"INFO": 1, "ERROR": -1}))


def test_severity_weights_all_zero() -> None:
    with raises("logs.types.application.severity_weights: {'DEBUG': 0.0, 'INFO': 0.0, 'WARN': 0.0, 'ERROR': 0.0} "
                "is invalid: expected at least one weight > 0"):
        load_with(nested("logs.types.application.severity_weights", {"info": 0}))


def test_severity_weights_duplicate_case() -> None:
    with raises("logs.types.application.severity_weights.INFO: 'INFO' is invalid: expected each key once"):
        load_with(nested("logs.types.application.severity_weights", {"info": 1, "INFO": 2}))


# --- docs/configuration.md stays in step with the code ----------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def leaf_paths(cls: type, prefix: str = "") -> list[str]:
    out: list[str] = []
    for name, hint in typing.get_type_hints(cls).items():
        path = f"{prefix}.{name}" if prefix else name
        out += leaf_paths(hint, path) if dataclasses.is_dataclass(hint) else [path]
    return out


def test_doc_full_example_is_the_defaults() -> None:
    text = DOC.read_text()
    example = text.split("### Full example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert GeneratorConfig.from_yaml(example) == GeneratorConfig()


def test_doc_documents_every_key() -> None:
    text = DOC.read_text()
    missing = [path for path in leaf_paths(GeneratorConfig) if f"| `{path}` |" not in text]
    assert missing == []
    assert "## Sender configuration" in text
