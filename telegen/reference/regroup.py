"""The plain-Python twins of the kernel's load-time regrouping
(telegen/_regroup.pxi: Regrouper and split): decode, merge, encode."""
from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from ..templates import NESTING, REQUEST_TYPES, decode_record, padded_exponential_metric

REPLICA_KEY = "telegen.replica"
INSTANCE_KEY = "service.instance.id"


def regroup_reference(signal: str, records: Sequence[bytes], replica_width: int = 0) -> bytes:
    """The twin of _fastpath.Regrouper: every item of `records` in one request,
    gathered per (resource, schema_url) and (scope, schema_url)."""
    merger = _Merger(signal, replica_width)
    for record in records:
        merger.add(decode_record(signal, record), bytes(record))
    return merger.serialize()


def split_reference(signal: str, record: bytes, max_bytes: int, replica_width: int = 0) -> list[bytes]:
    """The twin of _fastpath.split."""
    pieces = []
    for piece in _split_oversized(signal, decode_record(signal, record), max_bytes):
        merger = _Merger(signal, replica_width)
        merger.add(piece, bytes(record))
        pieces.append(merger.serialize())
    return pieces


def _number_resource(resource: Message, width: int) -> None:
    """A numbered copy's resource: `width` zeros after a dash at the end of
    `service.instance.id` (or "telegen-" and the zeros when there is none),
    and a `telegen.replica` attribute of `width` zeros."""
    zeros = "0" * width
    for kv in resource.attributes:
        if kv.key == INSTANCE_KEY and kv.value.WhichOneof("value") == "string_value" and kv.value.string_value:
            kv.value.string_value += "-" + zeros
            break
    else:
        resource.attributes.append(KeyValue(key=INSTANCE_KEY, value=AnyValue(string_value="telegen-" + zeros)))
    resource.attributes.append(KeyValue(key=REPLICA_KEY, value=AnyValue(string_value=zeros)))


class _Merger:
    """Builds one request, gathering items under one resource and scope entry
    per distinct (resource, schema) and (scope, schema)."""

    def __init__(self, signal: str, replica_width: int) -> None:
        self.signal = signal
        self.request = REQUEST_TYPES[signal]()
        self.resources: dict[bytes, Message] = {}
        self.scopes: dict[tuple[bytes, bytes], Message] = {}
        self.replica_width = replica_width
        self.sources: list[bytes] = []

    def add(self, message: Message, source: bytes = b"") -> None:
        """Merge `message`, decoded from `source` (its bytes say which
        exponential histograms it holds in the padded layout)."""
        self.sources.append(source)
        top, mid, leaf = NESTING[self.signal]
        for resource_item in getattr(message, top):
            rkey = resource_item.resource.SerializeToString() + b"\0" + resource_item.schema_url.encode()
            target = self.resources.get(rkey)
            if target is None:
                target = self.resources[rkey] = getattr(self.request, top).add()
                target.resource.CopyFrom(resource_item.resource)
                target.schema_url = resource_item.schema_url
                if self.replica_width:
                    _number_resource(target.resource, self.replica_width)
            for scope_item in getattr(resource_item, mid):
                skey = (rkey, scope_item.scope.SerializeToString() + b"\0" + scope_item.schema_url.encode())
                scope_target = self.scopes.get(skey)
                if scope_target is None:
                    scope_target = self.scopes[skey] = getattr(target, mid).add()
                    scope_target.scope.CopyFrom(scope_item.scope)
                    scope_target.schema_url = scope_item.schema_url
                getattr(scope_target, leaf).extend(getattr(scope_item, leaf))

    def serialize(self) -> bytes:
        # The kernel moves bytes, so an exponential histogram in the padded
        # layout (telegen import, generated application metrics) stays padded;
        # decoding loses the layout, so look for its padded bytes in the sources.
        if self.signal == "metrics":
            from .patch import _encode_metrics, _metrics  # patch imports this module
            padded = [metric.WhichOneof("data") == "exponential_histogram"
                      and any(padded_exponential_metric(metric) in source for source in self.sources)
                      for metric in _metrics(self.request)]
            if any(padded):
                return _encode_metrics(self.request, padded)
        return self.request.SerializeToString()


def _split_oversized(signal: str, message: Message, max_bytes: int) -> list[Message]:
    """Cut one request into requests of at most about max_bytes each, item by
    item, keeping every item with its resource and scope."""
    top, mid, leaf = NESTING[signal]
    pieces: list[Message] = []
    current = REQUEST_TYPES[signal]()
    size = 0
    for resource_item in getattr(message, top):
        for scope_item in getattr(resource_item, mid):
            for item in getattr(scope_item, leaf):
                item_size = item.ByteSize() + 16
                if size and size + item_size > max_bytes:
                    pieces.append(current)
                    current = REQUEST_TYPES[signal]()
                    size = 0
                r = getattr(current, top)
                if not len(r) or r[-1].resource != resource_item.resource:
                    new_r = r.add(schema_url=resource_item.schema_url)
                    new_r.resource.CopyFrom(resource_item.resource)
                    size += resource_item.resource.ByteSize() + 8
                r_last = r[-1]
                s = getattr(r_last, mid)
                if not len(s) or s[-1].scope != scope_item.scope:
                    new_s = s.add(schema_url=scope_item.schema_url)
                    new_s.scope.CopyFrom(scope_item.scope)
                    size += scope_item.scope.ByteSize() + 8
                getattr(s[-1], leaf).append(item)
                size += item_size
    if size:
        pieces.append(current)
    return pieces
