"""The generated spans that logs and exemplars name: a compact index.

Traces are generated first; while each trace is encoded, the trace builder
hands this index the spans other signals may point at (SERVER, INTERNAL and
the CLIENT spans of service calls; database calls are left out, no log or
metric here names them). Logs then draw the span they were "emitted in" from
it, and the RED metrics count the spans' durations and name them in
exemplars, so every trace id, span id, time and resource they carry is one
the traces file holds.

Memory: the full example config has 1.15 M spans, 1 M of them in ten
100,000-span traces. A trace's spans are all kept up to MAX_SPANS_PER_TRACE;
a larger trace keeps every k-th span (no random draw, so the traces' own
random stream is untouched), which keeps the index near 150,000 rows of a
few numbers each, and correlated logs spread over the many ordinary traces
rather than the few giant ones.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from .topology import Endpoint, Topology

SERVER = Span.SPAN_KIND_SERVER
CLIENT = Span.SPAN_KIND_CLIENT
INTERNAL = Span.SPAN_KIND_INTERNAL

MAX_SPANS_PER_TRACE = 64


@dataclass(frozen=True)
class IndexedService:
    """A generated service as the traces show it."""

    name: str
    language: str  # telemetry.sdk.language of its resources
    resources: tuple[Resource, ...]  # per instance: exactly the traces' Resource


@dataclass(frozen=True)
class SpanIndex:
    """Column arrays, one row per indexed span (rows of one trace adjacent).

    status: the HTTP status the span's request answered with (the value of
    its `http.response.status_code`; for gRPC spans the HTTP-style status
    their `rpc.grpc.status_code` derives from). entity: the number in the
    span's `url.path` (`{id}` of the route). client_ip: the last two octets
    of its `client.address`, as a * 256 + b. edge: the trace's root span
    (served over https to the outside)."""

    services: tuple[IndexedService, ...]
    endpoints: tuple[Endpoint, ...]
    trace_ids: tuple[bytes, ...]  # per trace
    span_ids: bytes  # 8 bytes per row
    trace: np.ndarray  # int32: row -> index into trace_ids
    service: np.ndarray  # int16
    instance: np.ndarray  # int8: index into services[service].resources
    kind: np.ndarray  # int8: SpanKind
    endpoint: np.ndarray  # int32: index into endpoints, -1 for INTERNAL spans
    status: np.ndarray  # int16
    error: np.ndarray  # bool: span status ERROR
    edge: np.ndarray  # bool
    entity: np.ndarray  # int32
    client_ip: np.ndarray  # int32
    start: np.ndarray  # int64, template time (TIME_BASE_NS + offset)
    end: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.trace)

    def trace_id(self, row: int) -> bytes:
        return self.trace_ids[self.trace[row]]

    def span_id(self, row: int) -> bytes:
        return self.span_ids[8 * row:8 * row + 8]

    def resource(self, row: int) -> Resource:
        return self.services[self.service[row]].resources[self.instance[row]]

    def path(self, row: int) -> str:
        """The span's `url.path`."""
        return self.endpoints[self.endpoint[row]].route.replace("{id}", str(int(self.entity[row])))

    def rows(self, *, kinds: Sequence[int], protocol: str | None = None,
             services: Sequence[int] | None = None) -> np.ndarray:
        """Rows of the given kinds; `protocol` keeps spans of endpoints of
        that protocol ("http", "grpc"); `services` of those services."""
        keep = np.isin(self.kind, kinds)
        if protocol is not None:
            protocols = np.array([ep.protocol == protocol for ep in self.endpoints] + [False])
            keep &= protocols[self.endpoint]  # -1 picks the trailing False
        if services is not None:
            keep &= np.isin(self.service, services)
        return np.flatnonzero(keep)


def empty_index() -> SpanIndex:
    return SpanIndexBuilder(None, []).finish()


class SpanIndexBuilder:
    """Collects spans trace by trace, as plain lists, then freezes them."""

    def __init__(self, topology: Topology | None, resources: Sequence[Sequence[Resource]]) -> None:
        services = topology.services if topology is not None else []
        self.services = tuple(IndexedService(svc.name, svc.language, tuple(resources[svc.index]))
                              for svc in services)
        self.endpoints: list[Endpoint] = [ep for svc in services for ep in svc.http_endpoints + svc.grpc_endpoints]
        self.endpoint_numbers = {ep: k for k, ep in enumerate(self.endpoints)}
        self.trace_ids: list[bytes] = []
        self.span_ids: list[bytes] = []
        self.columns: dict[str, list[int]] = {name: [] for name in (
            "trace", "service", "instance", "kind", "endpoint", "status", "error", "edge", "entity",
            "client_ip", "start", "end")}

    @staticmethod
    def positions(n: int) -> range:
        """Which of a trace's n spans are offered to the index."""
        return range(n) if n <= MAX_SPANS_PER_TRACE else range(0, n, -(-n // MAX_SPANS_PER_TRACE))

    def add_trace(self, trace_id: bytes) -> int:
        self.trace_ids.append(trace_id)
        return len(self.trace_ids) - 1

    def add_span(self, trace: int, span_id: bytes, service: int, instance: int, kind: int,
                 endpoint: Endpoint | None, status: int, error: bool, edge: bool, entity: int,
                 client_ip: int, start: int, end: int) -> None:
        c = self.columns
        self.span_ids.append(span_id)
        c["trace"].append(trace)
        c["service"].append(service)
        c["instance"].append(instance)
        c["kind"].append(kind)
        c["endpoint"].append(-1 if endpoint is None else self.endpoint_numbers[endpoint])
        c["status"].append(status)
        c["error"].append(error)
        c["edge"].append(edge)
        c["entity"].append(entity)
        c["client_ip"].append(client_ip)
        c["start"].append(start)
        c["end"].append(end)

    def finish(self) -> SpanIndex:
        c = self.columns
        dtypes = {"trace": np.int32, "service": np.int16, "instance": np.int8, "kind": np.int8,
                  "endpoint": np.int32, "status": np.int16, "error": bool, "edge": bool, "entity": np.int32,
                  "client_ip": np.int32, "start": np.int64, "end": np.int64}
        arrays = {name: np.array(c[name], dtype=dtype) for name, dtype in dtypes.items()}
        return SpanIndex(services=self.services, endpoints=tuple(self.endpoints), trace_ids=tuple(self.trace_ids),
                         span_ids=b"".join(self.span_ids), **arrays)
