"""Small builders over the official OTLP protobuf classes."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from .._version import __version__

AttributeValue = str | bool | int | float | bytes | list


def any_value(value: AttributeValue) -> AnyValue:
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


def key_value(key: str, value: AttributeValue) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def attributes(items: Mapping[str, AttributeValue] | Iterable[tuple[str, AttributeValue]]) -> list[KeyValue]:
    pairs = items.items() if isinstance(items, Mapping) else items
    return [key_value(k, v) for k, v in pairs]


def resource(items: Mapping[str, AttributeValue]) -> Resource:
    return Resource(attributes=attributes(items))


def scope(name: str, version: str = __version__) -> InstrumentationScope:
    return InstrumentationScope(name=name, version=version)
