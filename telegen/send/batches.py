"""Templates -> send-ready batches, once, at load time.

A batch is one serialized Export*ServiceRequest holding several templates,
with the items of one resource (and one scope) gathered under a single
ResourceX/ScopeX, kept under the maximum message size, and scanned once into
a patch plan. Regrouping decodes and re-encodes with protobuf, which is fine
here: nothing on the send path ever parses again.

A single template larger than the message limit (a 100,000-span trace) is cut
into pieces that each fit; the pieces stay one batch, patched together, so the
trace keeps one new trace id and one time shift, and go out as several
requests.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from .. import _fastpath
from ..errors import TemplateFileError
from ..templates import REQUEST_TYPES, decode_record, read_json_records, read_records
from .shard import SeriesCopies

# request field, resource-level item field, scope-level item field
NESTING: dict[str, tuple[str, str, str]] = {
    "traces": ("resource_spans", "scope_spans", "spans"),
    "metrics": ("resource_metrics", "scope_metrics", "metrics"),
    "logs": ("resource_logs", "scope_logs", "log_records"),
}
REPLICA_KEY = "telegen.replica"


@dataclass(frozen=True)
class Batch:
    """One send unit: `data` (a request, or several concatenated ones) and
    its patch plan. `pieces` are the (start, end) byte ranges sent as separate
    requests; one piece spans the whole buffer unless a template was too big."""

    signal: str
    data: bytes
    plan: _fastpath.PatchPlan
    events: int
    pieces: tuple[tuple[int, int], ...]
    piece_events: tuple[int, ...]


@dataclass(frozen=True)
class SignalTemplates:
    signal: str
    templates: int  # records loaded
    events: int  # spans / data points / log records in them
    batches: tuple[Batch, ...]
    # The `telegen.replica` numbers each batch goes out with, once per pass
    # each (metric series multiplier, and the shard's share of the fleet's).
    copies: SeriesCopies = SeriesCopies()

    @property
    def replicas(self) -> int:
        """Times each batch goes out per pass."""
        return self.copies.count

    @property
    def events_per_pass(self) -> int:
        return self.events * self.replicas


def read_template_file(path: str | os.PathLike, signal: str) -> list[bytes]:
    """Records of a `.pb` stream, or of an OTLP JSON file (one request per line)."""
    path = Path(path)
    if path.suffix == ".json":
        return read_json_records(path, signal)
    return read_records(path)


def _item_count(signal: str, message: Message) -> int:
    top, mid, leaf = NESTING[signal]
    if signal != "metrics":
        return sum(len(getattr(s, leaf)) for r in getattr(message, top) for s in getattr(r, mid))
    total = 0
    for r in message.resource_metrics:
        for s in r.scope_metrics:
            for metric in s.metrics:
                kind = metric.WhichOneof("data")
                total += len(getattr(metric, kind).data_points) if kind else 0
    return total


class _Merger:
    """Builds one request, gathering items under one resource and scope entry
    per distinct (resource, schema) and (scope, schema)."""

    def __init__(self, signal: str, replica_width: int) -> None:
        self.signal = signal
        self.request = REQUEST_TYPES[signal]()
        self.resources: dict[bytes, Message] = {}
        self.scopes: dict[tuple[bytes, bytes], Message] = {}
        self.replica_width = replica_width

    def add(self, message: Message) -> None:
        top, mid, leaf = NESTING[self.signal]
        for resource_item in getattr(message, top):
            rkey = resource_item.resource.SerializeToString() + b"\0" + resource_item.schema_url.encode()
            target = self.resources.get(rkey)
            if target is None:
                target = self.resources[rkey] = getattr(self.request, top).add()
                target.resource.CopyFrom(resource_item.resource)
                target.schema_url = resource_item.schema_url
                if self.replica_width:
                    target.resource.attributes.append(
                        KeyValue(key=REPLICA_KEY, value=AnyValue(string_value="0" * self.replica_width)))
            for scope_item in getattr(resource_item, mid):
                skey = (rkey, scope_item.scope.SerializeToString() + b"\0" + scope_item.schema_url.encode())
                scope_target = self.scopes.get(skey)
                if scope_target is None:
                    scope_target = self.scopes[skey] = getattr(target, mid).add()
                    scope_target.scope.CopyFrom(scope_item.scope)
                    scope_target.schema_url = scope_item.schema_url
                getattr(scope_target, leaf).extend(getattr(scope_item, leaf))

    def serialize(self) -> bytes:
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


def build_batches(signal: str, records: Sequence[bytes], per_batch: int, max_bytes: int,
                  replicas: int | SeriesCopies = 1, source: str = "<templates>") -> SignalTemplates:
    """Group `records` into batches of about `per_batch` events (traces for
    the traces signal: a trace is never split unless it alone exceeds
    max_bytes) and at most max_bytes per request. `replicas`: copies of each
    batch per pass, numbered 0..replicas-1, or a shard's SeriesCopies."""
    copies = replicas if isinstance(replicas, SeriesCopies) else SeriesCopies(count=max(1, replicas),
                                                                              total=max(1, replicas))
    replica_width = copies.width
    batches: list[Batch] = []
    merger = _Merger(signal, replica_width)
    units = 0
    size = 0
    total_events = 0
    for index, record in enumerate(records):
        message = decode_record(signal, record, f"{source} record {index}")
        events = _item_count(signal, message)
        total_events += events
        weight = 1 if signal == "traces" else events
        if len(record) > max_bytes:
            if units:
                batches.append(_finish(signal, [merger.serialize()]))
                merger, units, size = _Merger(signal, replica_width), 0, 0
            pieces = []
            for piece in _split_oversized(signal, message, max_bytes):
                piece_merger = _Merger(signal, replica_width)
                piece_merger.add(piece)
                pieces.append(piece_merger.serialize())
            batches.append(_finish(signal, pieces))
            continue
        if units and (units + weight > per_batch or size + len(record) > max_bytes):
            batches.append(_finish(signal, [merger.serialize()]))
            merger, units, size = _Merger(signal, replica_width), 0, 0
        merger.add(message)
        units += weight
        size += len(record)
    if units:
        batches.append(_finish(signal, [merger.serialize()]))
    return SignalTemplates(signal=signal, templates=len(records), events=total_events, batches=tuple(batches),
                           copies=copies)


def _finish(signal: str, pieces: Iterable[bytes]) -> Batch:
    bounds = []
    offset = 0
    parts = list(pieces)
    for part in parts:
        bounds.append((offset, offset + len(part)))
        offset += len(part)
    data = b"".join(parts)
    plan = _fastpath.scan(signal, data)
    piece_events = tuple(_fastpath.count_events(signal, part) for part in parts)
    return Batch(signal=signal, data=data, plan=plan, events=plan.events, pieces=tuple(bounds),
                 piece_events=piece_events)


def load_signal(signal: str, path: str | os.PathLike, per_batch: int, max_bytes: int,
                replicas: int | SeriesCopies = 1) -> SignalTemplates:
    records = read_template_file(path, signal)
    if not records:
        raise TemplateFileError(f"{path}: holds no {signal} templates")
    return build_batches(signal, records, per_batch, max_bytes, replicas, str(path))


def describe(loaded: SignalTemplates) -> str:
    """The seed sender's load line, e.g. `Loaded 10000 trace templates (162340 spans)`."""
    if loaded.signal == "traces":
        text = f"Loaded {loaded.templates} trace templates ({loaded.events} spans)"
    elif loaded.signal == "metrics":
        text = f"Loaded {loaded.templates} metric templates ({loaded.events} time series)"
        copies = loaded.copies
        if copies.total > 1:
            text += f", each sent as {copies.count} replicas ({loaded.events_per_pass} series)"
            if copies.count < copies.total:
                last = copies.first + copies.count - 1
                text += f" numbered {copies.first}..{last} of the fleet's {copies.total}"
    else:
        text = f"Loaded {loaded.templates} log templates"
    return f"{text} in {len(loaded.batches)} batches"
