"""`--redact KEY` and `--redact-pattern REGEX`: captured production traffic
made shareable. Attribute values (resources, scopes, spans, events, links,
log records, metric points) under a named key, and text matching a pattern
in string values and log bodies, are replaced by stand-ins of the same type
drawn from a keyed hash: the same value always gets the same stand-in within
an import (cardinality and joins survive), and the key is random per import
and never written, so a stand-in cannot be looked up from a guess.
"""
from __future__ import annotations

import hashlib
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message

from .sources import CaptureError


@dataclass
class Redactor:
    keys: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()
    secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    replaced: dict[str, int] = field(default_factory=dict)  # what was replaced, by key or pattern

    @classmethod
    def build(cls, keys: Sequence[str] = (), patterns: Sequence[str] = ()) -> Redactor:
        compiled = []
        for text in patterns:
            try:
                compiled.append(re.compile(text))
            except re.error as exc:
                raise CaptureError(f"--redact-pattern: {text!r} is invalid: expected a regular expression ({exc})") \
                    from None
        return cls(frozenset(keys), tuple(compiled))

    @property
    def active(self) -> bool:
        return bool(self.keys or self.patterns)

    def _digest(self, kind: bytes, value: bytes) -> bytes:
        return hashlib.blake2b(kind + b"\x00" + value, key=self.secret, digest_size=16).digest()

    def _count(self, what: str) -> None:
        self.replaced[what] = self.replaced.get(what, 0) + 1

    # -- values --------------------------------------------------------------

    def stand_in(self, any_value: Message) -> None:
        """Replace an AnyValue in place by a stand-in of the same type."""
        kind = any_value.WhichOneof("value")
        if kind == "string_value":
            any_value.string_value = "redacted-" + self._digest(b"s", any_value.string_value.encode()).hex()[:12]
        elif kind == "int_value":
            digest = self._digest(b"i", str(any_value.int_value).encode())
            any_value.int_value = struct.unpack("<q", digest[:8])[0] & 0x7FFFFFFFFFFF
        elif kind == "double_value":
            digest = self._digest(b"d", struct.pack("<d", any_value.double_value))
            any_value.double_value = struct.unpack("<Q", digest[:8])[0] / 2**64 * 1000.0
        elif kind == "bool_value":
            any_value.bool_value = bool(self._digest(b"b", bytes([any_value.bool_value]))[0] & 1)
        elif kind == "bytes_value":
            data = any_value.bytes_value
            out = b""
            while len(out) < len(data):
                out += self._digest(b"y" + len(out).to_bytes(4, "little"), data)
            any_value.bytes_value = out[:len(data)]
        elif kind == "array_value":
            for item in any_value.array_value.values:
                self.stand_in(item)
        elif kind == "kvlist_value":
            for kv in any_value.kvlist_value.values:
                self.stand_in(kv.value)

    def _text(self, text: str) -> str:
        for pattern in self.patterns:
            def swap(match: re.Match[str], pattern: re.Pattern[str] = pattern) -> str:
                self._count(f"pattern {pattern.pattern}")
                return "redacted-" + self._digest(b"p", match.group(0).encode()).hex()[:12]
            text = pattern.sub(swap, text)
        return text

    def _patterned(self, any_value: Message) -> None:
        kind = any_value.WhichOneof("value")
        if kind == "string_value":
            any_value.string_value = self._text(any_value.string_value)
        elif kind == "array_value":
            for item in any_value.array_value.values:
                self._patterned(item)
        elif kind == "kvlist_value":
            for kv in any_value.kvlist_value.values:
                self._attribute(kv)

    def _attribute(self, kv: Message) -> None:
        if kv.key in self.keys:
            self._count(f"key {kv.key}")
            self.stand_in(kv.value)
        elif self.patterns:
            self._patterned(kv.value)

    def attributes(self, attributes: Iterable[Message]) -> None:
        for kv in attributes:
            self._attribute(kv)

    # -- messages ------------------------------------------------------------

    def request(self, signal: str, message: Message) -> None:
        """Every attribute (and log body) of one export request, in place."""
        if not self.active:
            return
        groups = {"traces": ("resource_spans", "scope_spans", "spans"),
                  "metrics": ("resource_metrics", "scope_metrics", "metrics"),
                  "logs": ("resource_logs", "scope_logs", "log_records")}[signal]
        for resource_group in getattr(message, groups[0]):
            self.attributes(resource_group.resource.attributes)
            for scope_group in getattr(resource_group, groups[1]):
                self.attributes(scope_group.scope.attributes)
                for item in getattr(scope_group, groups[2]):
                    getattr(self, f"_{signal}_item")(item)

    def _traces_item(self, span: Message) -> None:
        self.attributes(span.attributes)
        for event in span.events:
            self.attributes(event.attributes)
        for link in span.links:
            self.attributes(link.attributes)

    def _logs_item(self, log: Message) -> None:
        self.attributes(log.attributes)
        if self.patterns:
            self._patterned(log.body)

    def _metrics_item(self, metric: Message) -> None:
        kind = metric.WhichOneof("data")
        if kind is None:
            return
        for point in getattr(metric, kind).data_points:
            self.attributes(point.attributes)
            for exemplar in getattr(point, "exemplars", ()):
                self.attributes(exemplar.filtered_attributes)
