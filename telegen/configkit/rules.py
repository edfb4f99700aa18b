"""Value rules: the ranges, choices and spellings the type hints alone do
not express, keyed by dotted path in a Schema."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

from .messages import did_you_mean, num

INVALID = object()  # what coerce returns for a raw value it cannot read as the type


def coerce(raw: Any, hint: type) -> Any:
    """`raw` as `hint` (bool, str, int or float) without surprises, or INVALID."""
    if hint is bool:
        return raw if isinstance(raw, bool) else INVALID
    if hint is str:
        return raw if isinstance(raw, str) else INVALID
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return INVALID  # YAML true/false are not numbers, even though bool subclasses int
    if hint is int:
        if isinstance(raw, int):
            return raw
        return int(raw) if raw.is_integer() else INVALID  # 10.0 is fine, 10.5 is not
    if hint is float:
        return float(raw) if math.isfinite(raw) else INVALID
    raise TypeError(f"unsupported config type {hint}")


class Rule:
    """A restriction on a value beyond its type."""

    def coerce(self, raw: Any, hint: type) -> Any:
        """The raw value as `hint`, or INVALID. Override to accept other
        spellings (a duration such as "10m" for a float of seconds)."""
        return coerce(raw, hint)

    def ok(self, value: Any) -> bool:
        raise NotImplementedError

    def expected(self, noun: str) -> str:
        """What a valid value is, given the type's noun ("an integer")."""
        raise NotImplementedError

    def suggest(self, value: Any) -> str:
        return ""


@dataclass(frozen=True)
class Range(Rule):
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    high_label: str | None = None

    def ok(self, value: Any) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def expected(self, noun: str) -> str:
        high = self.high_label or num(self.high)
        if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            return f"{noun} between {num(self.low)} and {high}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {num(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {high}")
        return f"{noun} {' and '.join(parts)}"


AT_LEAST_0 = Range(low=0)
AT_LEAST_1 = Range(low=1)


@dataclass(frozen=True)
class OneOf(Rule):
    options: tuple[str, ...]

    def ok(self, value: Any) -> bool:
        return value in self.options

    def expected(self, noun: str) -> str:
        return f"one of {', '.join(self.options)}"

    def suggest(self, value: Any) -> str:
        return did_you_mean(str(value), self.options)


class NonEmpty(Rule):
    def ok(self, value: Any) -> bool:
        return bool(value.strip())

    def expected(self, noun: str) -> str:
        return "a non-empty string"


class FileNamePrefix(Rule):
    # The prefix becomes part of file names inside a directory, so a
    # separator would silently write or read somewhere else.
    def ok(self, value: Any) -> bool:
        return bool(value.strip()) and not any(sep in value for sep in ("/", "\\", os.sep))

    def expected(self, noun: str) -> str:
        return "a non-empty file-name prefix without path separators (/ or \\)"


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_DURATION_UNITS: dict[str, float] = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float | None:
    """Seconds from "10m", "30s", "1h30m", "250ms", "1.5h" or a bare number
    of seconds; None when the text is none of these. Units go largest first,
    each at most once."""
    text = text.strip().lower()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) else None
    total, pos, last_rank = 0.0, 0, -1
    order = list(_DURATION_UNITS)
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            return None
        number, unit = match.groups()
        rank = order.index(unit)
        if rank <= last_rank:
            return None  # "30s10m" or "1m1m": almost certainly a typo
        total += float(number) * _DURATION_UNITS[unit]
        pos, last_rank = match.end(), rank
    return total if text else None


@dataclass(frozen=True)
class Duration(Range):
    """A number of seconds, also written "30s", "10m", "1h30m", "250ms"."""

    note: str = ""

    def coerce(self, raw: Any, hint: type) -> Any:
        if isinstance(raw, str):
            seconds = parse_duration(raw)
            return INVALID if seconds is None else seconds
        return super().coerce(raw, float)

    def expected(self, noun: str) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"{super().expected('a duration')} such as 30s, 10m, 1h30m, 250ms or a number of seconds{note}"
