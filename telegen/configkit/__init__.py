"""YAML configuration -> typed, validated, immutable dataclasses: the toolkit
every stage's config is built on (the generator's, the sender's, and those to
come). It belongs to no stage, so stages share it without importing each other.

A config is a tree of frozen dataclasses plus a `Schema` (rules by dotted key
path, derived defaults, secret paths); `build_dataclass` walks the type hints.
Bad input raises `telegen.ConfigError` with one line naming the dotted key
path, the value as written and what was expected; unknown keys and choices get
a did-you-mean, YAML syntax errors their line and column, and secret values
are shown as `***`.

    source   YAML files and text, strict duplicate keys, dotted overrides
    env      ${VAR} and ${VAR:-default} substitution
    rules    Rule, Range, OneOf, Duration, ...: what type hints do not say
    schema   Schema, build_dataclass, to_plain
    messages the message style, did-you-mean, the source-file prefix
"""
from .env import escape, substitute_env
from .messages import SECRET_SHOWN, did_you_mean, invalid, num, prefixed
from .rules import (
    AT_LEAST_0,
    AT_LEAST_1,
    INVALID,
    Duration,
    FileNamePrefix,
    NonEmpty,
    OneOf,
    Range,
    Rule,
    parse_duration,
)
from .schema import NOT_A_KEY, Derive, Schema, build_dataclass, to_plain
from .source import load_yaml_file, parse_yaml, read_source, read_text, set_dotted

__all__ = [
    "AT_LEAST_0",
    "AT_LEAST_1",
    "INVALID",
    "NOT_A_KEY",
    "SECRET_SHOWN",
    "Derive",
    "Duration",
    "FileNamePrefix",
    "NonEmpty",
    "OneOf",
    "Range",
    "Rule",
    "Schema",
    "build_dataclass",
    "did_you_mean",
    "escape",
    "invalid",
    "load_yaml_file",
    "num",
    "parse_duration",
    "parse_yaml",
    "prefixed",
    "read_source",
    "read_text",
    "set_dotted",
    "substitute_env",
    "to_plain",
]
