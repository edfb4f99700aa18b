"""Where config data comes from: YAML files and text (strict: a key given
twice is an error; syntax errors name line and column), mappings, and
dotted-key overrides such as CLI flags."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .messages import source_prefix


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


def _looks_like_path(text: str) -> bool:
    if "\n" in text:
        return False
    return text.strip().lower().endswith((".yaml", ".yml")) or os.path.isfile(text)


def read_text(path: str | os.PathLike[str]) -> str:
    """A config file's text (UTF-8, a byte-order mark tolerated); errors name the file."""
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
    return parse_yaml(read_text(path), os.fspath(path))


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """One YAML document as plain data; a key repeated in a mapping is an error."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(source_prefix(source) + _describe_yaml_error(exc)) from None


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    detail = f"{problem} ({context})" if context else problem
    return f"malformed YAML{where}: {detail}"
