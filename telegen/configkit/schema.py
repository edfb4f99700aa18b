"""The walk from plain data (as YAML gives it) to frozen dataclasses, driven
by the dataclasses' type hints: a new key needs only a field, and a rule in
the Schema when its range is restricted."""
from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

import yaml

from ..errors import ConfigError
from .env import escape, substitute_text
from .messages import invalid, join, prefixed, unknown_key
from .rules import INVALID, Rule, coerce

_T = TypeVar("_T")

# In a field's metadata: the field is state, not a YAML key (neither read nor written).
NOT_A_KEY: Mapping[str, Any] = types.MappingProxyType({"config_key": False})

# Fills in the values whose default depends on others, given a section's raw
# data and its values converted so far.
Derive = Callable[[Mapping[str, Any], dict[str, Any]], None]


@dataclass(frozen=True)
class Schema:
    """What the walk needs beside the dataclasses' type hints. Paths are
    dotted key paths; "[]" means each list item, ".*" each mapping value."""

    rules: Mapping[str, Rule] = field(default_factory=dict)
    # Mappings whose keys are a fixed, case-insensitive set (normalised to upper case).
    key_choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    derived: Mapping[type, Derive] = field(default_factory=dict)
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
    with prefixed(source):
        result = _build(cls, data, "", schema)
        for check in checks:
            check(result)
        return result


def to_plain(value: Any) -> Any:
    """Plain YAML-safe data from a config object (the keys only, not NOT_A_KEY
    state); a literal "${" is written "$${" so that reading it back keeps it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_key(f): to_plain(getattr(value, f.name)) for f in dataclasses.fields(value) if _is_key(f)}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    return escape(value)


_NOUNS: dict[type, str] = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@cache
def _field_hints(cls: type) -> dict[str, Any]:
    """YAML key -> type hint of its field."""
    hints = typing.get_type_hints(cls)
    return {_key(f): hints[f.name] for f in dataclasses.fields(cls) if _is_key(f)}


@cache
def _field_names(cls: type) -> dict[str, str]:
    """YAML key -> field name: the same but where a key is a Python keyword
    (`for: 30s`), written `for_` with metadata {"key": "for"}."""
    return {_key(f): f.name for f in dataclasses.fields(cls) if _is_key(f)}


def _key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


@cache
def _required(cls: type) -> tuple[str, ...]:
    # A field without a default must be given (a ramp stage's duration and target).
    return tuple(_key(f) for f in dataclasses.fields(cls) if _is_key(f)
                 and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def _rule(schema: Schema, path: str) -> Rule | None:
    """The rule for a key path; an item of a list is looked up as "[]"."""
    return schema.rules.get(_LIST_INDEX.sub("[]", path))


_LIST_INDEX = re.compile(r"\[\d+\]")


def _is_key(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("config_key", True))


def _build(cls: type[_T], data: Any, path: str, schema: Schema) -> _T:
    hints = _field_hints(cls)
    if data is None:  # `traces:` with nothing under it: all defaults
        data = {}
    if not isinstance(data, Mapping):
        raise invalid(path or "top level", data, f"a mapping with keys {', '.join(hints)}")
    for key in data:
        if key not in hints:
            raise unknown_key(path, key, tuple(hints))
    missing = [name for name in _required(cls) if name not in data]
    if missing:
        raise invalid(path or "top level", dict(data), f"a mapping with {' and '.join(_required(cls))} "
                                                       f"({', '.join(missing)} missing)")
    names = _field_names(cls)
    values = {names[key]: _convert(data[key], hint, join(path, key), schema)
              for key, hint in hints.items() if key in data}
    derive = schema.derived.get(cls)
    if derive is not None:
        derive(data, values)
    return cls(**values)


def _convert(raw: Any, hint: Any, path: str, schema: Schema) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, raw, path, schema)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        others = [a for a in args if a is not type(None)]
        if len(others) > 1:
            return _convert_choice(raw, tuple(others), type(None) in args, path, schema)
        if raw is None:
            return None
        return _convert_scalar(raw, others[0], path, schema, _rule(schema, path), nullable=True)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if dataclasses.is_dataclass(item):
            return _convert_dataclass_list(raw, item, path, schema)
        if typing.get_origin(item) in (dict, Mapping):
            return _convert_mapping_list(raw, typing.get_args(item)[1], path, schema)
        return _convert_str_list(raw, path, schema)
    if origin in (dict, Mapping):
        return _convert_mapping(raw, typing.get_args(hint)[1], path, schema)
    return _convert_scalar(raw, hint, path, schema, _rule(schema, path))


def _convert_scalar(raw: Any, hint: type, path: str, schema: Schema, rule: Rule | None,
                    nullable: bool = False, secret: bool = False) -> Any:
    noun = _NOUNS[hint]
    raw = _substitute_scalar(raw, hint, path, schema, secret)
    value = rule.coerce(raw, hint) if rule is not None else coerce(raw, hint)
    if value is INVALID or (rule is not None and not rule.ok(value)):
        expected = rule.expected(noun) if rule is not None else noun
        if nullable:
            expected = f"null or {expected}"
        hint_text = rule.suggest(raw) if rule is not None and isinstance(raw, str) else ""
        raise invalid(path, raw, expected + hint_text, secret)
    return value


def _convert_choice(raw: Any, hints: tuple[type, ...], nullable: bool, path: str, schema: Schema) -> Any:
    """A value that may be one of several scalar types (`str | bool`: a file,
    or false for off), tried in the order the hint lists them."""
    if any(hint not in _NOUNS for hint in hints):
        raise TypeError(f"unsupported config type {hints} at {path}: a union of scalars only")
    if raw is None and nullable:
        return None
    rule = _rule(schema, path)
    for hint in hints:
        value = _substitute_scalar(raw, hint, path, schema, False)
        value = rule.coerce(value, hint) if rule is not None else coerce(value, hint)
        if value is not INVALID and (rule is None or rule.ok(value)):
            return value
    noun = " or ".join(_NOUNS[hint] for hint in hints)
    expected = rule.expected(noun) if rule is not None else noun
    hint_text = rule.suggest(raw) if rule is not None else ""
    raise invalid(path, raw, ("null or " if nullable else "") + expected + hint_text)


def _substitute_scalar(raw: Any, hint: type, path: str, schema: Schema, secret: bool) -> Any:
    if not isinstance(raw, str) or "$" not in raw:
        return raw
    env = os.environ if schema.env is None else schema.env
    text = substitute_text(raw, path, env, secret)
    if hint is str or text == raw:
        return text
    # `count: ${TRACES}` must give a number, so a substituted string is read
    # again as a YAML scalar ("5" -> 5, "true" -> True, "" -> null).
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return parsed if parsed is None or isinstance(parsed, (bool, int, float)) else text


def _convert_str_list(raw: Any, path: str, schema: Schema) -> tuple[str, ...]:
    # A bare string is iterable too; treating "a,b" as a list of letters would be a silent surprise.
    if not isinstance(raw, (list, tuple)):
        raise invalid(path, raw, "a list of strings")
    rule = _rule(schema, path + "[]")
    return tuple(_convert_scalar(item, str, f"{path}[{i}]", schema, rule) for i, item in enumerate(raw))


def _convert_dataclass_list(raw: Any, item: type, path: str, schema: Schema) -> tuple[Any, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        keys = " and ".join(_field_hints(item))
        raise invalid(path, raw, f"a list of mappings with {keys}")
    return tuple(_build(item, entry, f"{path}[{i}]", schema) for i, entry in enumerate(raw))


def _convert_mapping_list(raw: Any, value_hint: type, path: str, schema: Schema) -> tuple[dict[str, Any], ...]:
    """A list of mappings, or one mapping (a list of one): where one mapping
    is a template for many and a list names each (`otlp.tenants.headers`).
    Each item is a secret when the list's path is."""
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        return (_convert_mapping(raw, value_hint, path, schema),)
    if not isinstance(raw, (list, tuple)):
        raise invalid(path, raw, f"a mapping of key to {_NOUNS[value_hint]}, or a list of them",
                      path in schema.secrets)
    return tuple(_convert_mapping(entry, value_hint, f"{path}[{i}]", schema, secret=path in schema.secrets)
                 for i, entry in enumerate(raw))


def _convert_mapping(raw: Any, value_hint: type, path: str, schema: Schema,
                     secret: bool | None = None) -> dict[str, Any]:
    choices = schema.key_choices.get(path)
    secret = path in schema.secrets if secret is None else secret
    if not isinstance(raw, Mapping):
        keys = f" ({', '.join(choices)})" if choices else ""
        raise invalid(path, raw, f"a mapping of key{keys} to {_NOUNS[value_hint]}", secret)
    rule = _rule(schema, path + ".*")
    # With a fixed key set, keys left out get 0: giving the mapping replaces the default.
    result: dict[str, Any] = dict.fromkeys(choices, value_hint(0)) if choices else {}
    original: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.upper() if choices and isinstance(key, str) else key
        if choices and name not in choices:
            raise unknown_key(path, key, choices)
        if not isinstance(name, str):
            raise invalid(f"{path} key", key, "a string")
        if name in original:
            raise ConfigError(f"{path}.{key}: {key!r} is invalid: expected each key once "
                              f"(same as {original[name]!r}; keys are case-insensitive)")
        original[name] = key
        result[name] = _convert_scalar(value, value_hint, f"{path}.{key}", schema, rule, secret=secret)
    return result
