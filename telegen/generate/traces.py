"""Trace templates: realistic request trees over the service topology.

A trace is built in three passes over flat lists indexed by span number (a
child always has a larger index than its parent), so even a 100,000-span
trace is a few lists of ints, never a tree of Python objects:

1. shape: grow the tree span by span from the ingress SERVER span, choosing a
   parent and an action (downstream call = CLIENT + SERVER pair, database
   CLIENT span, INTERNAL work) until the trace has exactly its span count;
2. time: durations bottom-up (reverse index order), then start offsets
   top-down, all in integer nanoseconds so children nest exactly;
3. encode: spans in chunks, grouped under one ResourceSpans per service and one
   ScopeSpans per instrumentation scope, serialized and concatenated
   (serialized requests concatenate into one valid request).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from ..templates import CHUNK_SPANS
from .base import TIME_BASE_NS, SignalTemplates
from .config import GeneratorConfig, TracesConfig
from .correlation import SpanIndex, SpanIndexBuilder, empty_index
from .otlp import attributes, key_value, resource, scope
from .semconv import SemConv, semconv
from .topology import DB_PORTS, SCOPES, Database, Endpoint, Service, Topology, build_topology

SERVER = Span.SPAN_KIND_SERVER
CLIENT = Span.SPAN_KIND_CLIENT
INTERNAL = Span.SPAN_KIND_INTERNAL

# W3C "sampled" trace flag, plus the OTLP bits saying whether the parent is remote.
FLAGS_LOCAL_PARENT = 0x101
FLAGS_REMOTE_PARENT = 0x301

SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"
MAX_CHILDREN = 12  # bounded fan-out keeps even 100k-span trees several levels deep
PARALLEL_PROBABILITY = 0.3  # a parent runs its children concurrently, else one after another
CLIENT_ERROR_PROBABILITY = 0.02  # a successful trace answers 4xx at the edge

# Median durations (ns) and log-normal spreads of the leaf work.
DB_MEDIAN_NS = {"postgresql": 1_800_000, "mysql": 1_500_000, "redis": 250_000, "mongodb": 1_200_000}
DB_SIGMA = 0.7
WORK_MEDIAN_NS, WORK_SIGMA = 300_000, 1.0
SELF_MEDIAN_NS, SELF_SIGMA = 400_000, 0.8
NETWORK_MEDIAN_NS, NETWORK_SIGMA = 350_000, 0.5

EXCEPTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "java": (("java.net.SocketTimeoutException", "Read timed out"),
             ("org.postgresql.util.PSQLException", "ERROR: canceling statement due to statement timeout"),
             ("java.lang.IllegalStateException", "Connection pool exhausted")),
    "go": (("context.deadlineExceededError", "context deadline exceeded"),
           ("*net.OpError", "dial tcp 10.0.3.17:5432: connect: connection refused"),
           ("*errors.errorString", "sql: database is closed")),
    "python": (("httpx.ReadTimeout", "The read operation timed out"),
               ("psycopg.OperationalError", "server closed the connection unexpectedly"),
               ("redis.exceptions.ConnectionError", "Error 111 connecting to redis:6379. Connection refused.")),
    "nodejs": (("Error", "connect ECONNREFUSED 10.0.4.22:5432"),
               ("TimeoutError", "Request timed out after 5000ms"),
               ("MongoServerSelectionError", "Server selection timed out after 30000 ms")),
}
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "okhttp/4.12.0",
    "shop-ios/5.14.2 CFNetwork/1494.0.7 Darwin/23.4.0",
)

# Custom attributes: realistic names, each with the one type it always keeps.
CUSTOM_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("app.customer.tier", "string"), ("app.cart.item_count", "int"), ("app.feature.new_checkout", "bool"),
    ("app.order.total_usd", "double"), ("app.tenant.id", "string"), ("app.request.retry_count", "int"),
    ("app.cache.hit", "bool"), ("app.experiment.variant", "string"), ("app.queue.wait_ratio", "double"),
    ("app.user.account_age_days", "int"), ("app.payment.method", "string"), ("app.inventory.reserved", "bool"),
    ("app.recommendation.score", "double"), ("app.region.shard", "int"), ("app.client.platform", "string"),
    ("app.promo.applied", "bool"),
)
STRING_VALUES: dict[str, tuple[str, ...]] = {
    "app.customer.tier": ("free", "standard", "premium", "enterprise"),
    "app.experiment.variant": ("control", "treatment-a", "treatment-b"),
    "app.payment.method": ("card", "paypal", "apple_pay", "bank_transfer", "gift_card"),
    "app.client.platform": ("web", "ios", "android", "partner-api"),
}
CUSTOM_VALUE_POOL = 256  # distinct values per custom attribute

SQL_OPERATIONS = ("SELECT", "SELECT", "SELECT", "INSERT", "UPDATE", "DELETE")
REDIS_OPERATIONS = ("GET", "GET", "SET", "HGETALL", "EXPIRE", "DEL")
SQL_QUERIES = {
    "SELECT": "SELECT id, status, updated_at FROM {table} WHERE id = ?",
    "INSERT": "INSERT INTO {table} (id, status, payload) VALUES (?, ?, ?)",
    "UPDATE": "UPDATE {table} SET status = ? WHERE id = ?",
    "DELETE": "DELETE FROM {table} WHERE id = ?",
}
MONGO_OPERATIONS = ("find", "find", "insert", "update", "aggregate")


@dataclass(frozen=True)
class Operation:
    """A span's name, instrumentation scope and the attributes that never vary."""

    name: str
    scope: str  # category key into topology.SCOPES
    static: tuple[KeyValue, ...]
    db_system: str | None = None  # set on database calls: picks their latency profile


# What a span does: serve or call an endpoint, or a database/internal Operation.
SpanOp = Endpoint | Operation


class TraceBuilder:
    """Everything precomputed once per generate() so each span costs little."""

    def __init__(self, config: TracesConfig, topology: Topology, sem: SemConv, rng: np.random.Generator) -> None:
        self.config = config
        self.topology = topology
        self.sem = sem
        self.rng = rng
        self.resources = [[resource(self._resource_attributes(inst)) for inst in svc.instances]
                          for svc in topology.services]
        self.scopes = {key: scope(name, version) for key, (name, version) in SCOPES.items()}
        self.server_ops = {ep: self._server_op(ep) for svc in topology.services
                           for ep in svc.http_endpoints + svc.grpc_endpoints}
        self.client_ops = {ep: self._client_op(ep) for ep in self.server_ops}
        self.db_ops = [[self._db_ops(svc, db) for db in svc.databases] for svc in topology.services]
        self.internal_ops = [[self._internal_op(svc, op) for op in svc.internal_ops] for svc in topology.services]
        self.custom = self._custom_attribute_pools()
        self._kv_cache: dict[tuple[str, object], KeyValue] = {}
        self.index = SpanIndexBuilder(topology, self.resources)

    # -- precomputed operations -------------------------------------------------

    def _resource_attributes(self, instance: dict) -> dict:
        attrs = dict(instance)
        attrs[self.sem.deployment_environment] = "production"
        return attrs

    def _server_op(self, ep: Endpoint) -> Operation:
        svc = self.topology.services[ep.service]
        if ep.protocol == "http":
            return Operation(f"{ep.method} {ep.route}", "http_server", tuple(attributes({
                self.sem.http_method: ep.method, "http.route": ep.route,
            })))
        return Operation(f"{ep.route}/{ep.method}", "grpc", tuple(attributes({
            "rpc.system": "grpc", "rpc.service": ep.route, "rpc.method": ep.method,
            self.sem.server_host: svc.name, self.sem.server_port: 50051,
        })))

    def _client_op(self, ep: Endpoint) -> Operation:
        callee = self.topology.services[ep.service]
        if ep.protocol == "http":
            return Operation(ep.method, "http_client", tuple(attributes({
                self.sem.http_method: ep.method, self.sem.peer_host: callee.name, self.sem.peer_port: 8080,
                self.sem.protocol_version: "1.1",
            })))
        return Operation(f"{ep.route}/{ep.method}", "grpc", tuple(attributes({
            "rpc.system": "grpc", "rpc.service": ep.route, "rpc.method": ep.method,
            self.sem.peer_host: callee.name, self.sem.peer_port: 50051,
        })))

    def _db_ops(self, svc: Service, db: Database) -> list[Operation]:
        sem = self.sem
        category = {"postgresql": "sql", "mysql": "sql"}.get(db.system, db.system)
        common = {sem.db_system: db.system, sem.peer_host: db.host, sem.peer_port: DB_PORTS[db.system]}
        if db.system != "redis":
            common[sem.db_namespace] = db.namespace
        ops = []
        for collection in db.collections:
            if category == "sql":
                for op in SQL_OPERATIONS:
                    query = SQL_QUERIES[op].format(table=collection)
                    if db.system == "postgresql":  # numbered parameters: $1, $2, ...
                        query = _number_parameters(query)
                    attrs = dict(common, **{sem.db_collection: collection, sem.db_operation: op, sem.db_query: query})
                    ops.append(Operation(f"{op} {collection}", category, tuple(attributes(attrs)), db.system))
            elif category == "redis":
                for op in REDIS_OPERATIONS:
                    attrs = dict(common, **{sem.db_operation: op, sem.db_query: f"{op} {svc.noun}:?"})
                    ops.append(Operation(op, category, tuple(attributes(attrs)), db.system))
                break  # redis has keys, not collections
            else:
                collection_key = sem.db_collection if sem.generation == "stable" else "db.mongodb.collection"
                for op in MONGO_OPERATIONS:
                    query = f'{{"{op}": "{collection}", "filter": {{"_id": "?"}}}}'
                    attrs = dict(common, **{collection_key: collection, sem.db_operation: op, sem.db_query: query})
                    ops.append(Operation(f"{op} {collection}", category, tuple(attributes(attrs)), db.system))
        return ops

    def _internal_op(self, svc: Service, op: str) -> Operation:
        cls = "".join(p.capitalize() for p in svc.noun.split("_")) + "Handler"
        if self.sem.generation == "stable":
            attrs = {self.sem.code_function: f"{cls}.{op}"}
        else:
            attrs = {self.sem.code_function: op, self.sem.code_namespace: cls}
        return Operation(op, "internal", tuple(attributes(attrs)))

    def _custom_attribute_pools(self) -> list[list[KeyValue]]:
        names = list(CUSTOM_ATTRIBUTES)
        n = 0
        while len(names) < self.config.custom_attributes.count:
            kind = ("string", "int", "double", "bool")[n % 4]
            names.append((f"app.custom.field_{n:03d}", kind))
            n += 1
        pools = []
        for name, kind in names[: self.config.custom_attributes.count]:
            if kind == "bool":
                values: list = [True, False]
            elif kind == "int":
                values = [int(v) for v in self.rng.integers(1, 5000, size=CUSTOM_VALUE_POOL)]
            elif kind == "double":
                values = [round(float(v), 4) for v in self.rng.uniform(0.01, 500.0, size=CUSTOM_VALUE_POOL)]
            else:
                base = STRING_VALUES.get(name)
                values = list(base) if base else [f"{name.rsplit('.', 1)[-1]}-{int(v):04x}"
                                                  for v in self.rng.integers(0, 65536, size=CUSTOM_VALUE_POOL)]
            pools.append([key_value(name, v) for v in values])
        return pools

    def kv(self, key: str, value: object) -> KeyValue:
        """A KeyValue built once per distinct (key, value) that repeats across spans."""
        cached = self._kv_cache.get((key, value))
        if cached is None:
            cached = self._kv_cache[(key, value)] = key_value(key, value)  # type: ignore[arg-type]
        return cached

    # -- one trace ---------------------------------------------------------------

    def build(self, span_count: int, failing: bool) -> tuple[bytes, int]:
        shape = self._shape(span_count)
        starts, ends = self._times(shape)
        errors = self._error_path(shape) if failing else {}
        return self._encode(shape, starts, ends, errors), span_count

    def _shape(self, target: int) -> _Shape:
        rng = self.rng
        services = self.topology.services
        ingress = self.topology.ingress[int(rng.integers(0, len(self.topology.ingress)))]
        root_ep = _pick_endpoint(services[ingress].http_endpoints, float(rng.random()))
        shape = _Shape(target)
        shape.add(-1, SERVER, ingress, root_ep)
        expandable = [0]
        backend = self.topology.forwards.get(root_ep)
        if backend is not None and target >= 3:
            # A gateway first forwards the request to the backend that owns the route.
            client = shape.add(0, CLIENT, ingress, backend)
            expandable.append(shape.add(client, SERVER, backend.service, backend))
        draws = rng.random((target, 3)).tolist()
        while len(shape.parent) < target:
            u_parent, u_action, u_pick = draws[len(shape.parent)]
            slot = int(u_parent * len(expandable))
            p = expandable[slot]
            svc = services[shape.service[p]]
            remaining = target - len(shape.parent)
            can_call = remaining >= 2 and svc.calls
            if len(expandable) == 1 and len(shape.children[p]) == MAX_CHILDREN - 1:
                # The last open parent's last child must be able to have
                # children itself, or the tree could not grow any further.
                u_action = 0.0 if can_call else 0.99
            # Weights: call 0.45, database 0.30, internal work 0.25.
            if can_call and u_action < 0.45:
                callee, protocol = svc.calls[int(u_pick * len(svc.calls))]
                eps = services[callee].http_endpoints if protocol == "http" else services[callee].grpc_endpoints
                ep = _pick_endpoint(eps, u_pick * 7919 % 1.0)
                client = shape.add(p, CLIENT, svc.index, ep)
                server = shape.add(client, SERVER, callee, ep)
                expandable.append(server)
            elif u_action < 0.75:
                db = int(u_pick * len(svc.databases))
                ops = self.db_ops[svc.index][db]
                shape.add(p, CLIENT, svc.index, ops[int(u_pick * 104729) % len(ops)])
            else:
                ops = self.internal_ops[svc.index]
                expandable.append(shape.add(p, INTERNAL, svc.index, ops[int(u_pick * len(ops))]))
            if len(shape.children[p]) >= MAX_CHILDREN:
                expandable[slot] = expandable[-1]
                expandable.pop()
        return shape

    def _times(self, shape: _Shape) -> tuple[list[int], list[int]]:
        rng = self.rng
        n = len(shape.parent)
        z = rng.standard_normal((n, 3))
        work = np.exp(np.log(WORK_MEDIAN_NS) + WORK_SIGMA * z[:, 0]).astype(np.int64) + 1000
        selfs = np.exp(np.log(SELF_MEDIAN_NS) + SELF_SIGMA * z[:, 1]).astype(np.int64) + 1000
        net = np.exp(np.log(NETWORK_MEDIAN_NS) + NETWORK_SIGMA * z[:, 2]).astype(np.int64) + 1000
        db_log_median = {k: np.log(v) for k, v in DB_MEDIAN_NS.items()}
        parallel = (rng.random(n) < PARALLEL_PROBABILITY).tolist()
        gaps = rng.integers(5_000, 200_000, size=n).tolist()
        work_l, self_l, net_l, z0 = work.tolist(), selfs.tolist(), net.tolist(), z[:, 0].tolist()

        duration = [0] * n
        offset = [0] * n  # start relative to the parent's start
        kinds, ops, children = shape.kind, shape.op, shape.children
        for i in range(n - 1, -1, -1):
            kids = children[i]
            kind = kinds[i]
            if kind == CLIENT and not kids:  # database call
                op = ops[i]
                assert isinstance(op, Operation) and op.db_system is not None
                duration[i] = int(np.exp(db_log_median[op.db_system] + DB_SIGMA * z0[i])) + 1000
                continue
            if kind == CLIENT:  # the call: request and response cross the network
                (server,) = kids
                offset[server] = net_l[i]
                duration[i] = net_l[i] + duration[server] + net_l[server]
                continue
            lead = self_l[i] // 2 if kind == SERVER else 2_000
            if not kids:
                duration[i] = work_l[i]
                continue
            if parallel[i]:
                end = lead
                for k, c in enumerate(kids):
                    offset[c] = lead + k * gaps[c] // 4
                    end = max(end, offset[c] + duration[c])
            else:
                end = lead
                for c in kids:
                    offset[c] = end
                    end += duration[c] + gaps[c]
            duration[i] = end + (self_l[i] - self_l[i] // 2 if kind == SERVER else 2_000)
        starts = [TIME_BASE_NS] * n
        parent = shape.parent
        for i in range(1, n):
            starts[i] = starts[parent[i]] + offset[i]
        ends = [s + d for s, d in zip(starts, duration)]
        return starts, ends

    def _error_path(self, shape: _Shape) -> dict[int, int]:
        """Spans on the failing path -> the HTTP status they answer with.

        The failure starts at a database call or a downstream server and
        propagates to every ancestor, so the trace fails consistently."""
        candidates = [i for i in range(1, len(shape.parent))
                      if shape.kind[i] == SERVER or (shape.kind[i] == CLIENT and not shape.children[i])]
        origin = candidates[int(self.rng.integers(0, len(candidates)))] if candidates else 0
        status = (500, 502, 503, 504)[int(self.rng.integers(0, 4))]
        path = {}
        i = origin
        while i >= 0:
            path[i] = status
            i = shape.parent[i]
        path[-1] = origin  # remembered for the exception event
        return path

    def _encode(self, shape: _Shape, starts: list[int], ends: list[int], errors: dict[int, int]) -> bytes:
        rng = self.rng
        sem = self.sem
        n = len(shape.parent)
        trace_id = _nonzero(rng.bytes(16))
        span_ids = _unique_span_ids(rng, n)
        instance = rng.integers(0, len(self.resources[0]), size=len(self.topology.services)).tolist()
        services = self.topology.services
        origin = errors.get(-1, -1)
        edge_status = 200
        if not errors and rng.random() < CLIENT_ERROR_PROBABILITY:
            edge_status = (400, 401, 404, 404, 429)[int(rng.integers(0, 5))]
        custom_p = self.config.custom_attributes.probability
        pools = self.custom
        draws = rng.random((n, 2)).tolist()
        ids = rng.integers(1, 100000, size=n).tolist()
        root_op = shape.op[0]
        if n > 2 and isinstance(root_op, Endpoint) and self.topology.forwards.get(root_op) == shape.op[1]:
            ids[1] = ids[0]  # a forwarded request keeps its path
        ips = rng.integers(1, 255, size=(n, 2)).tolist()

        parts: list[bytes] = []
        for chunk_start in range(0, n, CHUNK_SPANS):
            request = ExportTraceServiceRequest()
            containers: dict[tuple[int, str], Any] = {}  # ScopeSpans.spans containers
            resource_spans: dict[int, ResourceSpans] = {}
            for i in range(chunk_start, min(n, chunk_start + CHUNK_SPANS)):
                kind = shape.kind[i]
                op = shape.op[i]
                p = shape.parent[i]
                svc = shape.service[i]
                status_code = errors.get(i, edge_status if i == 0 else 200)
                if isinstance(op, Endpoint):
                    operation = (self.server_ops if kind == SERVER else self.client_ops)[op]
                    attrs = list(operation.static)
                    if op.protocol == "http":
                        self._http_attributes(attrs, kind, op, i, ids[i if kind == CLIENT else p] if p >= 0 else ids[0],
                                              status_code, ips[i], draws[i][1])
                    else:
                        attrs.append(self.kv("rpc.grpc.status_code", _grpc_code(status_code)))
                else:
                    operation = op
                    attrs = list(operation.static)
                if i in errors and sem.generation == "stable":
                    attrs.append(self.kv("error.type", str(status_code) if i != origin or kind == SERVER
                                         else self._exception(services[svc].language, i)[0]))
                if draws[i][0] < custom_p:
                    pick = int(draws[i][1] * 65536)
                    attrs.extend(pool[(pick + 31 * k) % len(pool)] for k, pool in enumerate(pools))
                container = containers.get((svc, operation.scope))
                if container is None:
                    container = containers[(svc, operation.scope)] = self._scope_container(
                        request, resource_spans, svc, operation.scope, instance[svc])
                # add() builds the span in place: constructing it apart and
                # appending would copy every span once more.
                span = container.add(
                    trace_id=trace_id,
                    span_id=span_ids[i],
                    name=operation.name,
                    kind=kind,
                    start_time_unix_nano=starts[i],
                    end_time_unix_nano=ends[i],
                    attributes=attrs,
                    flags=FLAGS_REMOTE_PARENT if kind == SERVER and p >= 0 else FLAGS_LOCAL_PARENT,
                )
                if p >= 0:
                    span.parent_span_id = span_ids[p]
                if i in errors:
                    span.status.code = Status.STATUS_CODE_ERROR
                    span.status.message = f"HTTP {status_code}" if i != origin else "request failed"
                    if i == origin:
                        self._exception_event(span, services[svc].language, i, starts[i], ends[i])
            parts.append(request.SerializeToString())
        self._index(shape, starts, ends, errors, edge_status, trace_id, span_ids, instance, ids, ips)
        return b"".join(parts)

    def _index(self, shape: _Shape, starts: list[int], ends: list[int], errors: dict[int, int], edge_status: int,
               trace_id: bytes, span_ids: list[bytes], instance: list[int], ids: list[int],
               ips: list[list[int]]) -> None:
        """Offer the trace's spans to the span index, with the values their
        attributes were written from (same expressions as _encode's)."""
        index = self.index
        trace = index.add_trace(trace_id)
        for i in index.positions(len(shape.parent)):
            kind = shape.kind[i]
            op = shape.op[i]
            if isinstance(op, Endpoint):
                endpoint: Endpoint | None = op
                p = shape.parent[i]
                status = errors.get(i, edge_status if i == 0 else 200)
                if op.protocol == "http":
                    status = _answered(op.method, status)
                entity = ids[i if kind == CLIENT else p] if p >= 0 else ids[0]
            elif kind == CLIENT:
                continue  # a database call: nothing names it
            else:
                endpoint, status, entity = None, errors.get(i, 200), 0
            svc = shape.service[i]
            index.add_span(trace, span_ids[i], svc, instance[svc], kind, endpoint, status, i in errors, i == 0,
                           entity, ips[i][0] * 256 + ips[i][1], starts[i], ends[i])

    def _scope_container(self, request: ExportTraceServiceRequest, resource_spans: dict[int, ResourceSpans],
                         svc: int, category: str, instance: int):
        """The `spans` list of the ScopeSpans for (service, scope) in this request."""
        rs = resource_spans.get(svc)
        if rs is None:
            rs = resource_spans[svc] = request.resource_spans.add(schema_url=SCHEMA_URL)
            rs.resource.CopyFrom(self.resources[svc][instance])
        scope_spans = rs.scope_spans.add()
        scope_spans.scope.CopyFrom(self.scopes[(self.topology.services[svc].language, category)])
        return scope_spans.spans

    def _http_attributes(self, attrs: list[KeyValue], kind: int, ep: Endpoint, i: int, entity_id: int,
                         status_code: int, ip: list[int], u: float) -> None:
        sem = self.sem
        path = ep.route.replace("{id}", str(entity_id))
        callee = self.topology.services[ep.service]
        if kind == SERVER:
            edge = i == 0
            attrs.append(key_value(sem.url_path, path))
            attrs.append(self.kv(sem.url_scheme, "https" if edge else "http"))
            attrs.append(self.kv(sem.server_host, "shop.example.com" if edge else callee.name))
            attrs.append(self.kv(sem.server_port, 443 if edge else 8080))
            attrs.append(self.kv(sem.protocol_version, "2" if edge else "1.1"))
            if edge:
                attrs.append(key_value(sem.client_address, f"203.0.{ip[0]}.{ip[1]}"))
                attrs.append(self.kv(sem.user_agent, USER_AGENTS[int(u * len(USER_AGENTS))]))
            else:
                attrs.append(key_value(sem.client_address, f"10.0.{ip[0]}.{ip[1]}"))
        else:
            attrs.append(key_value(sem.url_full, f"http://{callee.name}:8080{path}"))
        attrs.append(self.kv(sem.http_status_code, _answered(ep.method, status_code)))

    def _exception(self, language: str, i: int) -> tuple[str, str]:
        options = EXCEPTIONS[language]
        return options[i % len(options)]

    def _exception_event(self, span: Span, language: str, i: int, start: int, end: int) -> None:
        exc_type, message = self._exception(language, i)
        event = span.events.add()
        event.name = "exception"
        event.time_unix_nano = end - max(1, (end - start) // 10)
        event.attributes.extend(attributes({
            "exception.type": exc_type,
            "exception.message": message,
            "exception.stacktrace": f"{exc_type}: {message}\n\tat {span.name} ({language})",
        }))


class _Shape:
    """A trace's tree as parallel lists indexed by span number."""

    __slots__ = ("parent", "kind", "service", "op", "children")

    def __init__(self, capacity: int) -> None:
        self.parent: list[int] = []
        self.kind: list[int] = []
        self.service: list[int] = []
        self.op: list[SpanOp] = []
        self.children: list[list[int]] = []

    def add(self, parent: int, kind: int, service: int, op: SpanOp) -> int:
        index = len(self.parent)
        self.parent.append(parent)
        self.kind.append(kind)
        self.service.append(service)
        self.op.append(op)
        self.children.append([])
        if parent >= 0:
            self.children[parent].append(index)
        return index


# Reads outnumber writes: weights by an endpoint's position in its service's
# list (topology builds them as GET by id, GET list, POST, PUT, DELETE, GET
# history for HTTP; Get, List, Create, Update for gRPC).
HTTP_ENDPOINT_WEIGHTS = (0.35, 0.2, 0.12, 0.08, 0.05, 0.2)
GRPC_ENDPOINT_WEIGHTS = (0.45, 0.3, 0.15, 0.1)


def _pick_endpoint(endpoints: list[Endpoint], u: float) -> Endpoint:
    weights = HTTP_ENDPOINT_WEIGHTS if endpoints[0].protocol == "http" else GRPC_ENDPOINT_WEIGHTS
    # Lists longer than one service's (a gateway's) repeat the pattern per backend.
    groups = len(endpoints) // len(weights)
    group, u = divmod(u * groups, 1.0)
    for k, w in enumerate(weights):
        if u < w:
            return endpoints[int(group) * len(weights) + k]
        u -= w
    return endpoints[int(group) * len(weights) + len(weights) - 1]


def _answered(method: str, status_code: int) -> int:
    """The status a successful request of `method` answers with (201 Created,
    204 No Content), else `status_code`."""
    if status_code == 200:
        return {"POST": 201, "DELETE": 204}.get(method, 200)
    return status_code


def _number_parameters(query: str) -> str:
    parts = query.split("?")
    return "".join(f"{part}${k}" for k, part in enumerate(parts[:-1], 1)) + parts[-1]


def _grpc_code(http_status: int) -> int:
    # 2 UNKNOWN, 13 INTERNAL, 14 UNAVAILABLE, 4 DEADLINE_EXCEEDED; 0 OK.
    return {500: 13, 502: 14, 503: 14, 504: 4}.get(http_status, 0 if http_status < 400 else 2)


def _nonzero(value: bytes) -> bytes:
    return value if any(value) else b"\x01" + value[1:]


def _unique_span_ids(rng: np.random.Generator, n: int) -> list[bytes]:
    raw = rng.bytes(8 * n)
    ids = [_nonzero(raw[k:k + 8]) for k in range(0, 8 * n, 8)]
    if len(set(ids)) != n:  # a 64-bit collision: redraw deterministically
        seen: set[bytes] = set()
        for k, value in enumerate(ids):
            while value in seen:
                value = _nonzero(rng.bytes(8))
            ids[k] = value
            seen.add(value)
    return ids


def span_counts(config: TracesConfig, rng: np.random.Generator) -> list[int]:
    """Span count of every trace, in output order: normal traces follow
    max(1, round(avg + std_dev * N(0,1))); high-span traces (part of
    `count`) are spread evenly through the list."""
    total = config.count
    high = config.spans.high_span_traces
    n_high = min(high.count, total) if high.enabled else 0
    normal = np.maximum(1, np.rint(config.spans.avg_per_trace
                                   + config.spans.std_dev * rng.standard_normal(total - n_high))).astype(int).tolist()
    counts: list[int] = []
    high_positions = {k * total // n_high for k in range(n_high)} if n_high else set()
    it = iter(normal)
    for position in range(total):
        counts.append(high.span_count if position in high_positions else next(it))
    return counts


@dataclass
class TraceTemplates(SignalTemplates):
    """Trace templates and the index of their spans that logs and metrics name."""

    spans: SpanIndex = field(default_factory=empty_index)


def generate_traces(config: GeneratorConfig, rng: np.random.Generator) -> TraceTemplates:
    tc = config.traces
    if tc.count == 0:
        return TraceTemplates(records=[], counts={"traces": 0, "spans": 0, "high_span_traces": 0})
    topology = build_topology(tc, rng)
    builder = TraceBuilder(tc, topology, semconv(config.semantic_conventions), rng)
    counts = span_counts(tc, rng)
    failing = (rng.random(len(counts)) < tc.error_rate).tolist()
    records = []
    total_spans = 0
    for count, fails in zip(counts, failing):
        record, spans = builder.build(count, fails)
        records.append(record)
        total_spans += spans
    high = tc.spans.high_span_traces
    n_high = min(high.count, tc.count) if high.enabled else 0
    return TraceTemplates(records=records, counts={"traces": len(records), "spans": total_spans,
                                                   "high_span_traces": n_high}, spans=builder.index.finish())
