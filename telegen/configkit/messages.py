"""How a bad config is reported: one line naming the key path, the value
as the user wrote it, and what was expected, with a did-you-mean where a
near miss is likely."""
from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError

SECRET_SHOWN = "***"  # how a secret value appears in messages and redacted output


def join(path: str, key: str) -> str:
    """The dotted key path of `key` under `path` ("" is the top level)."""
    return f"{path}.{key}" if path else key


def invalid(path: str, value: Any, expected: str, secret: bool = False) -> ConfigError:
    """The one message style for a bad value: `path: value is invalid: expected ...`."""
    shown = SECRET_SHOWN if secret else show(value)
    return ConfigError(f"{path}: {shown} is invalid: expected {expected}")


def unknown_key(section: str, key: Any, valid: tuple[str, ...]) -> ConfigError:
    full = join(section, str(key))
    match = closest(str(key), valid)
    if match is not None:
        return ConfigError(f"unknown key {full}; did you mean {join(section, match)}?")
    where = f"under {section}" if section else "at the top level"
    return ConfigError(f"unknown key {full}; valid keys {where}: {', '.join(valid)}")


def did_you_mean(value: str, options: tuple[str, ...]) -> str:
    match = closest(value, options)
    return f"; did you mean {match}?" if match is not None else ""


def closest(word: str, options: tuple[str, ...]) -> str | None:
    """The option the user most likely meant: difflib's closest match ignoring
    case, else the only option that the word abbreviates ("dir" -> "directory")."""
    lowered = {option.lower(): option for option in options}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    if close:
        return lowered[close[0]]
    starts = [option for option in options if word and option.lower().startswith(word.lower())]
    return starts[0] if len(starts) == 1 else None


def show(value: Any) -> str:
    """A value as the user would recognise it from their YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def num(value: float | None) -> str:
    """A number as a person writes it: 40.0 -> "40", 99.89999999999999 -> "99.9"."""
    if value is None:
        return "none"
    if isinstance(value, float) and math.isfinite(value):
        value = round(value, 9)
        if value.is_integer():
            return str(int(value))
    return repr(value)


def source_prefix(source: str) -> str:
    # Placeholders such as "<string>" are not worth repeating in every message.
    return "" if source.startswith("<") and source.endswith(">") else f"{source}: "


@contextlib.contextmanager
def prefixed(source: str) -> Iterator[None]:
    """Re-raise ConfigErrors with the source file name in front (for configs
    that validate in several steps)."""
    prefix = source_prefix(source)
    try:
        yield
    except ConfigError as exc:
        if not prefix:
            raise
        raise ConfigError(prefix + str(exc)) from None
