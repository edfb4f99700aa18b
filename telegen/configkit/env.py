"""`${VAR}` and `${VAR:-default}` in config values, from the environment."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from ..errors import ConfigError
from .messages import SECRET_SHOWN, join

_T = TypeVar("_T")

# Alternatives in order: the "$${" escape, a closed ${...}, an unclosed "${".
_ENV_PATTERN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def substitute_env(value: _T, path: str = "", *, env: Mapping[str, str] | None = None) -> _T:
    """Replace ${VAR} and ${VAR:-default} in every string inside `value`
    (strings, and mappings/lists of them, recursively) from the environment.

    `$${` stands for a literal `${`. `${VAR:-default}` uses the default when VAR
    is unset or empty; `${VAR}` with VAR unset is a ConfigError naming VAR and
    `path`, the dotted key path of `value` used in messages.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    return _substitute(value, path, environ)


def _substitute(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return substitute_text(value, path, env) if "$" in value else value
    if isinstance(value, Mapping):
        return {k: _substitute(v, join(path, str(k)), env) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_substitute(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


def substitute_text(text: str, path: str, env: Mapping[str, str], secret: bool = False) -> str:
    """`text` with its ${...} replaced; `path` names it in errors."""
    where = path or "value"
    # A secret (a header value) is named by its key path only, never shown.
    shown = SECRET_SHOWN if secret else repr(text)

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body = match.group(1)
        if body is None:
            raise ConfigError(f"{where}: {shown} is invalid: expected a closing '}}' after '${{' "
                              "(write $${ for a literal ${)")
        name, has_default, default = body.partition(":-")
        if not _ENV_NAME.match(name):
            raise ConfigError(f"{where}: {shown} is invalid: expected ${{NAME}} or ${{NAME:-default}} "
                              f"with NAME an environment variable name, not {name!r}")
        current = env.get(name)
        if current is not None and not (has_default and current == ""):
            return current
        if has_default:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set (in {shown}); "
                          f"expected it to be set, or a default as ${{{name}:-default}}")

    return _ENV_PATTERN.sub(replace, text)


def escape(value: Any) -> Any:
    """`value` with every "${" written "$${", so that substitution keeps it
    as it is (environment variables, CLI flags, a config written back)."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, Mapping):
        return {key: escape(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape(item) for item in value]
    return value
