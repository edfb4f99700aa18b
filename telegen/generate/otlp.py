"""Small builders over the official OTLP protobuf classes."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from .._version import __version__


def any_value(value: object) -> AnyValue:
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    raise TypeError(f"unsupported attribute value {value!r}")


def key_value(key: str, value: object) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def attributes(items: Mapping[str, object] | Iterable[tuple[str, object]]) -> list[KeyValue]:
    pairs = items.items() if isinstance(items, Mapping) else items
    return [key_value(k, v) for k, v in pairs]


def resource(items: Mapping[str, object]) -> Resource:
    return Resource(attributes=attributes(items))


def scope(name: str, version: str = __version__) -> InstrumentationScope:
    return InstrumentationScope(name=name, version=version)


# -- framing around pre-serialized parts ------------------------------------------
# Generators cache serialized Resources and scopes and frame records around
# them by hand: copying a Resource into a fresh message per record would
# dominate generation time. Tests check the bytes equal protobuf's own.


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Lengths below 16 KiB (nearly every envelope) come from a table.
_SMALL_VARINTS: tuple[bytes, ...] = tuple(_encode_varint(i) for i in range(1 << 14))


def varint(value: int) -> bytes:
    return _SMALL_VARINTS[value] if value < 16384 else _encode_varint(value)


def field_key(message: Any, field: str) -> bytes:
    """The key of a length-delimited (wire type 2) field of `message`."""
    return varint(message.DESCRIPTOR.fields_by_name[field].number << 3 | 2)


def length_delimited(key: bytes, payload: bytes) -> bytes:
    return key + varint(len(payload)) + payload
