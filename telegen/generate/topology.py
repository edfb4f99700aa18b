"""The service graph traces walk: services, their endpoints, calls and databases.

Built once per generate() call from the config and the seed. Services form a
DAG (a service only calls services after it in order), so every trace is
finite, and every service is reachable from the first ingress service.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import TracesConfig, service_names

LANGUAGES: tuple[str, ...] = ("java", "go", "python", "nodejs")
SDK_VERSIONS: dict[str, str] = {"java": "1.44.1", "go": "1.32.0", "python": "1.29.0", "nodejs": "1.29.0"}

# Instrumentation scope per (language, category): what the real
# instrumentation libraries call themselves, so backends group spans the way
# they would for real services.
SCOPES: dict[tuple[str, str], tuple[str, str]] = {
    ("java", "http_server"): ("io.opentelemetry.tomcat-10.0", "2.10.0-alpha"),
    ("java", "http_client"): ("io.opentelemetry.java-http-client", "2.10.0-alpha"),
    ("java", "grpc"): ("io.opentelemetry.grpc-1.6", "2.10.0-alpha"),
    ("java", "sql"): ("io.opentelemetry.jdbc", "2.10.0-alpha"),
    ("java", "redis"): ("io.opentelemetry.lettuce-5.1", "2.10.0-alpha"),
    ("java", "mongodb"): ("io.opentelemetry.mongo-3.1", "2.10.0-alpha"),
    ("java", "internal"): ("io.opentelemetry.opentelemetry-instrumentation-annotations-1.16", "2.10.0-alpha"),
    ("go", "internal"): ("github.com/acme/shop/internal/handlers", "1.0.0"),
    ("python", "internal"): ("shop.handlers", "1.0.0"),
    ("nodejs", "internal"): ("@acme/shop-handlers", "1.0.0"),
    ("go", "http_server"): ("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.57.0"),
    ("go", "http_client"): ("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.57.0"),
    ("go", "grpc"): ("go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc", "0.57.0"),
    ("go", "sql"): ("github.com/XSAM/otelsql", "0.35.0"),
    ("go", "redis"): ("github.com/redis/go-redis/extra/redisotel", "9.7.0"),
    ("go", "mongodb"): ("go.mongodb.org/mongo-driver/mongo/otelmongo", "0.57.0"),
    ("python", "http_server"): ("opentelemetry.instrumentation.fastapi", "0.50b0"),
    ("python", "http_client"): ("opentelemetry.instrumentation.httpx", "0.50b0"),
    ("python", "grpc"): ("opentelemetry.instrumentation.grpc", "0.50b0"),
    ("python", "sql"): ("opentelemetry.instrumentation.psycopg", "0.50b0"),
    ("python", "redis"): ("opentelemetry.instrumentation.redis", "0.50b0"),
    ("python", "mongodb"): ("opentelemetry.instrumentation.pymongo", "0.50b0"),
    ("nodejs", "http_server"): ("@opentelemetry/instrumentation-http", "0.57.0"),
    ("nodejs", "http_client"): ("@opentelemetry/instrumentation-undici", "0.10.0"),
    ("nodejs", "grpc"): ("@opentelemetry/instrumentation-grpc", "0.57.0"),
    ("nodejs", "sql"): ("@opentelemetry/instrumentation-pg", "0.50.0"),
    ("nodejs", "redis"): ("@opentelemetry/instrumentation-ioredis", "0.46.0"),
    ("nodejs", "mongodb"): ("@opentelemetry/instrumentation-mongodb", "0.50.0"),
}

DB_SYSTEMS: tuple[str, ...] = ("postgresql", "mysql", "redis", "mongodb")
DB_PORTS: dict[str, int] = {"postgresql": 5432, "mysql": 3306, "redis": 6379, "mongodb": 27017}
INTERNAL_WORK: tuple[str, ...] = (
    "validate_request", "authorize", "load_{noun}", "build_response", "apply_business_rules",
    "serialize_{noun}", "compute_{noun}_summary", "check_feature_flags", "enrich_{noun}", "render_template",
)
INSTANCES_PER_SERVICE = 3
# Kubernetes draws pod-template hashes and pod suffixes from this alphabet.
POD_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Endpoint:
    """Something a service serves: an HTTP route or a gRPC method."""

    service: int
    protocol: str  # "http" | "grpc"
    method: str  # HTTP method, or the gRPC method name
    route: str  # HTTP route template, or the full gRPC service name


@dataclass(frozen=True)
class Database:
    system: str
    namespace: str
    host: str
    collections: tuple[str, ...]


@dataclass
class Service:
    index: int
    name: str
    noun: str
    language: str
    version: str
    instances: list[dict[str, str | int]]  # resource attributes per instance
    http_endpoints: list[Endpoint] = field(default_factory=list)
    grpc_endpoints: list[Endpoint] = field(default_factory=list)
    calls: list[tuple[int, str]] = field(default_factory=list)  # (callee, protocol)
    databases: list[Database] = field(default_factory=list)
    internal_ops: list[str] = field(default_factory=list)


@dataclass
class Topology:
    services: list[Service]
    ingress: list[int]
    # Gateway route -> the backend endpoint it forwards to.
    forwards: dict[Endpoint, Endpoint] = field(default_factory=dict)


def _noun(name: str) -> str:
    base = name.removesuffix("-service").removesuffix("-api").replace("-", "_")
    if base in ("api_gateway", "gateway", "frontend", "web"):
        return "request"
    return base


UNCOUNTABLE = ("inventory", "search", "analytics", "media", "billing", "shipping")


def _plural(noun: str) -> str:
    if noun in UNCOUNTABLE:
        return noun
    if noun.endswith("y") and not noun.endswith("ey"):
        return noun[:-1] + "ies"
    return noun if noun.endswith("s") else noun + "s"


def _camel(noun: str) -> str:
    return "".join(part.capitalize() for part in noun.split("_"))


def _http_endpoints(index: int, noun: str) -> list[Endpoint]:
    coll = _plural(noun).replace("_", "-")
    return [
        Endpoint(index, "http", "GET", f"/api/v1/{coll}/{{id}}"),
        Endpoint(index, "http", "GET", f"/api/v1/{coll}"),
        Endpoint(index, "http", "POST", f"/api/v1/{coll}"),
        Endpoint(index, "http", "PUT", f"/api/v1/{coll}/{{id}}"),
        Endpoint(index, "http", "DELETE", f"/api/v1/{coll}/{{id}}"),
        Endpoint(index, "http", "GET", f"/api/v1/{coll}/{{id}}/history"),
    ]


def _grpc_endpoints(index: int, noun: str) -> list[Endpoint]:
    camel = _camel(noun)
    service = f"acme.{noun}.v1.{camel}Service"
    return [
        Endpoint(index, "grpc", f"Get{camel}", service),
        Endpoint(index, "grpc", f"List{_camel(_plural(noun))}", service),
        Endpoint(index, "grpc", f"Create{camel}", service),
        Endpoint(index, "grpc", f"Update{camel}", service),
    ]


def _instances(rng: np.random.Generator, name: str, language: str, version: str) -> list[dict[str, str | int]]:
    instances: list[dict[str, str | int]] = []
    for _ in range(INSTANCES_PER_SERVICE):
        replicaset = "".join(POD_HASH_ALPHABET[int(v)] for v in rng.integers(0, 27, size=9))
        suffix = "".join(POD_HASH_ALPHABET[int(v)] for v in rng.integers(0, 27, size=5))
        pod = f"{name}-{replicaset}-{suffix}"
        node = f"ip-10-{int(rng.integers(0, 256))}-{int(rng.integers(0, 256))}-{int(rng.integers(1, 255))}.ec2.internal"
        instance_id = "-".join(rng.bytes(n).hex() for n in (4, 2, 2, 2, 6))
        instances.append({
            "service.name": name,
            "service.namespace": "shop",
            "service.version": version,
            "service.instance.id": instance_id,
            "host.name": node,
            "host.arch": "amd64",
            "os.type": "linux",
            "k8s.cluster.name": "prod-us-east-1",
            "k8s.namespace.name": "shop",
            "k8s.deployment.name": name,
            "k8s.pod.name": pod,
            "cloud.provider": "aws",
            "cloud.region": "us-east-1",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.language": language,
            "telemetry.sdk.version": SDK_VERSIONS[language],
        })
    return instances


def build_topology(config: TracesConfig, rng: np.random.Generator) -> Topology:
    names = list(service_names(config.services.names, config.services.count))
    ingress_cfg = config.services.ingress
    if ingress_cfg.single:
        ingress_names = [ingress_cfg.service]
    else:
        ingress_names = list(ingress_cfg.services) or list(names)
    # Ingress services first: calls only go to later services, so the graph is
    # acyclic and the first ingress reaches every service.
    ordered = [n for n in names if n in ingress_names] + [n for n in names if n not in ingress_names]
    languages = list(LANGUAGES)
    rng.shuffle(languages)

    services: list[Service] = []
    for i, name in enumerate(ordered):
        language = languages[i % len(languages)]
        version = f"{int(rng.integers(1, 4))}.{int(rng.integers(0, 20))}.{int(rng.integers(0, 10))}"
        noun = _noun(name)
        services.append(Service(
            index=i, name=name, noun=noun, language=language, version=version,
            instances=_instances(rng, name, language, version),
            http_endpoints=_http_endpoints(i, noun),
            grpc_endpoints=_grpc_endpoints(i, noun),
            internal_ops=[op.format(noun=noun) for op in INTERNAL_WORK],
        ))

    n = len(services)
    ingress_set = set(range(len([x for x in ordered if x in ingress_names])))
    forwards: dict[Endpoint, Endpoint] = {}
    for j in range(1, n):
        # Every non-ingress service gets at least one caller before it.
        if j not in ingress_set:
            caller = int(rng.integers(0, j))
            services[caller].calls.append((j, _protocol(rng)))
    for i in range(n - 1):
        extra = int(rng.integers(0, 3))
        for j in rng.permutation(np.arange(i + 1, n))[:extra]:
            j = int(j)
            if j not in ingress_set and all(c != j for c, _ in services[i].calls):
                services[i].calls.append((j, _protocol(rng)))
    for svc in services:
        svc.calls.sort()
        if svc.noun == "request" and svc.calls:
            # A gateway routes its backends' paths (as Envoy or Kong would),
            # so its routes are theirs rather than a noun of its own.
            svc.http_endpoints = []
            for callee, _ in svc.calls:
                for ep in services[callee].http_endpoints:
                    route = Endpoint(svc.index, "http", ep.method, ep.route)
                    svc.http_endpoints.append(route)
                    forwards[route] = ep
        is_edge = svc.index in ingress_set and svc.noun == "request"
        db_count = 1 if is_edge else int(rng.integers(1, 3))
        systems = ["redis"] if is_edge else [DB_SYSTEMS[int(k)] for k in rng.permutation(len(DB_SYSTEMS))[:db_count]]
        for system in systems:
            plural = _plural(svc.noun)
            collections = (plural, f"{svc.noun}_events", f"{svc.noun}_audit")
            host = f"{svc.name}-{system}.shop.svc.cluster.local"
            svc.databases.append(Database(system, f"{svc.noun}_db", host, collections))
    return Topology(services=services, ingress=sorted(ingress_set), forwards=forwards)


def _protocol(rng: np.random.Generator) -> str:
    return "http" if rng.random() < 0.6 else "grpc"
