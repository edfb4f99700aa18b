"""Metric templates: one ExportMetricsServiceRequest per metric, all its series.

Series come from deterministic pools of entities (hosts, nodes, pods,
containers, workloads, clusters): a metric whose data points have k attribute
combinations uses ceil(n / k) entities, each under its own ResourceMetrics
with one ScopeMetrics and one Metric holding exactly that entity's points.

Speed: data points are built with the official protobuf classes, but the
envelope around them (ResourceMetrics / ScopeMetrics / Metric header) is
framed from cached serialized bytes, so an entity's Resource is encoded once
per generate call however many metrics it reports. The framing writes fields
in field-number order, exactly as protobuf itself would, so decoding and
re-serializing a record gives the same bytes.
"""
from __future__ import annotations

import itertools
import math
import random
import uuid
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)

from . import otlp
from .base import METRIC_INTERVAL_NS, TIME_BASE_NS, SignalTemplates
from .config import GeneratorConfig, TimeseriesPerMetricConfig
from .metric_catalog import (
    CATALOG,
    COUNTER,
    DIMENSIONS,
    GAUGE,
    HISTOGRAM,
    HOSTMETRICS_SCRAPER,
    K8SCLUSTER,
    KUBELETSTATS,
    TYPE_ENTITY,
    UPDOWN,
    VALUE_RANGES,
    MetricSpec,
    extension_specs,
)
from .otlp import field_key, length_delimited, varint

# The order a type's catalog is taken in, one of each kind in turn.
KIND_TURNS = (GAUGE, COUNTER, HISTOGRAM, UPDOWN)

START_NS = TIME_BASE_NS
POINT_NS = TIME_BASE_NS + METRIC_INTERVAL_NS

# OpenTelemetry semantic-convention advice for duration histograms, in seconds.
SECONDS_BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


# --- choosing the metrics ----------------------------------------------------

def select_metrics(types: tuple[str, ...], count: int) -> list[tuple[str, MetricSpec]]:
    """`count` (type, spec) pairs with distinct names: every configured type's
    catalog first, taken round-robin, then extension names round-robin. Each
    type's catalog is taken kind by kind in turn (gauge, counter, histogram,
    up-down counter), so even a small config has every kind."""
    chosen: list[tuple[str, MetricSpec]] = []
    seen: set[str] = set()  # membership only; order comes from the lists

    def take(streams: list[tuple[str, Iterator[MetricSpec]]]) -> None:
        while streams and len(chosen) < count:
            for metric_type, stream in list(streams):
                spec = next((s for s in stream if s.name not in seen), None)
                if spec is None:
                    streams.remove((metric_type, stream))
                    continue
                seen.add(spec.name)
                chosen.append((metric_type, spec))
                if len(chosen) == count:
                    return

    take([(t, iter(_kinds_in_turn(CATALOG[t]))) for t in types])
    take([(t, extension_specs(t)) for t in types])
    if len(chosen) < count:
        raise ValueError(f"cannot name {count} distinct metrics for types {list(types)}")
    return chosen


def _kinds_in_turn(specs: Sequence[MetricSpec]) -> list[MetricSpec]:
    """`specs` reordered to take one of each kind in turn, keeping each kind's order."""
    by_kind = {kind: [s for s in specs if s.kind == kind] for kind in KIND_TURNS}
    by_kind["other"] = [s for s in specs if s.kind not in KIND_TURNS]
    ordered = []
    for row in itertools.zip_longest(*by_kind.values()):
        ordered.extend(s for s in row if s is not None)
    return ordered


def draw_series_counts(bounds: TimeseriesPerMetricConfig, metrics: int, rng: np.random.Generator) -> np.ndarray:
    """Per metric a count in [min, max], normal around `default`."""
    spread = (bounds.max - bounds.min) / 6
    drawn = rng.normal(bounds.default, spread, size=metrics)
    return np.clip(np.rint(drawn), bounds.min, bounds.max).astype(np.int64)


# --- entities ------------------------------------------------------------------

Attributes = tuple[tuple[str, str], ...]

REGIONS: tuple[tuple[str, str], ...] = (
    ("aws", "us-east-1"), ("aws", "us-west-2"), ("aws", "eu-west-1"), ("gcp", "us-central1"),
    ("aws", "eu-central-1"), ("azure", "westeurope"), ("aws", "ap-southeast-1"), ("gcp", "europe-west1"),
    ("azure", "eastus"), ("aws", "ap-northeast-1"),
)
ENVIRONMENTS: tuple[str, ...] = ("prod", "staging", "dev", "qa", "perf", "sandbox")
CLOUD_PLATFORM = {"aws": "aws_ec2", "gcp": "gcp_compute_engine", "azure": "azure_vm"}
K8S_PLATFORM = {"aws": "aws_eks", "gcp": "gcp_kubernetes_engine", "azure": "azure_aks"}
INSTANCE_TYPES = {
    "aws": ("m5.xlarge", "m6i.2xlarge", "c6i.4xlarge", "r6g.2xlarge", "t3.large"),
    "gcp": ("n2-standard-4", "n2-standard-8", "e2-standard-4", "c2-standard-16"),
    "azure": ("Standard_D4s_v5", "Standard_D8s_v5", "Standard_E4s_v5", "Standard_F8s_v2"),
}
HOST_ROLES: tuple[str, ...] = ("web", "api", "db", "cache", "worker", "batch", "kafka", "search", "etl", "ci-runner")
# Kubernetes' random-suffix alphabet (no vowels, no look-alike digits).
K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

DEPLOYMENTS: tuple[tuple[str, str], ...] = (
    ("frontend", "web"), ("checkout", "shop"), ("cart", "shop"), ("payment", "payments"),
    ("currency", "payments"), ("shipping", "shop"), ("email", "notifications"), ("recommendation", "shop"),
    ("product-catalog", "shop"), ("ad-service", "marketing"), ("quote", "shop"), ("fraud-detection", "payments"),
    ("accounting", "payments"), ("auth", "identity"), ("user-profile", "identity"), ("search-api", "search"),
    ("inventory", "shop"), ("notification-worker", "notifications"), ("order-processor", "shop"),
    ("api-gateway", "ingress"), ("image-resizer", "media"), ("pricing", "shop"), ("ledger", "payments"),
    ("session-store", "identity"), ("coredns", "kube-system"), ("metrics-server", "kube-system"),
    ("ingress-nginx-controller", "ingress-nginx"), ("cert-manager", "cert-manager"),
    ("otel-collector", "observability"), ("grafana", "observability"), ("argocd-server", "argocd"),
    ("cluster-autoscaler", "kube-system"),
)
DAEMONSETS: tuple[tuple[str, str], ...] = (
    ("kube-proxy", "kube-system"), ("aws-node", "kube-system"), ("fluent-bit", "logging"),
    ("node-exporter", "monitoring"), ("otel-collector-agent", "observability"), ("calico-node", "kube-system"),
    ("ebs-csi-node", "kube-system"), ("cilium", "kube-system"), ("nvidia-device-plugin", "kube-system"),
    ("promtail", "logging"), ("falco", "security"),
)
STATEFULSETS: tuple[tuple[str, str], ...] = (
    ("postgres", "data"), ("redis", "cache"), ("kafka", "streaming"), ("zookeeper", "streaming"),
    ("elasticsearch-master", "logging"), ("rabbitmq", "messaging"), ("mongodb", "data"),
    ("prometheus-k8s", "monitoring"), ("alertmanager-main", "monitoring"), ("loki", "logging"),
    ("vault", "security"), ("clickhouse", "analytics"),
)
CRONJOBS: tuple[tuple[str, str], ...] = (
    ("nightly-backup", "data"), ("report-generator", "analytics"), ("db-vacuum", "data"),
    ("cert-renewal", "cert-manager"), ("log-rotation", "logging"), ("cache-warmer", "shop"),
    ("invoice-export", "payments"), ("sitemap-builder", "web"), ("cleanup-orphans", "kube-system"),
    ("data-sync", "analytics"),
)
NAMESPACES: tuple[str, ...] = tuple(dict.fromkeys(
    ns for _, ns in (*DEPLOYMENTS, *DAEMONSETS, *STATEFULSETS, *CRONJOBS)
)) + ("default",)
SIDECARS: tuple[str, ...] = ("istio-proxy", "otel-agent", "vault-agent", "cloud-sql-proxy")
# Hosts, nodes, pods and containers live in the first few clusters; workload
# pools walk further along the cluster list as they need more entities.
HOME_CLUSTERS = 6


def cluster(index: int) -> tuple[str, str, str]:
    """The index-th cluster as (name, cloud provider, region); names repeat
    with a numeric suffix after every environment x region pair is used."""
    base, lap = index % (len(ENVIRONMENTS) * len(REGIONS)), index // (len(ENVIRONMENTS) * len(REGIONS))
    environment, (provider, region) = ENVIRONMENTS[base // len(REGIONS)], REGIONS[base % len(REGIONS)]
    name = f"{environment}-{region}" + (f"-{lap + 1:02d}" if lap else "")
    return name, provider, region


def zone(provider: str, region: str, r: random.Random) -> str:
    letter = r.choice("abc")
    if provider == "aws":
        return region + letter
    if provider == "gcp":
        return f"{region}-{letter}"
    return f"{region}-{'abc'.index(letter) + 1}"


def _suffix(r: random.Random, length: int) -> str:
    return "".join(r.choices(K8S_ALPHABET, k=length))


def _uid(r: random.Random) -> str:
    return str(uuid.UUID(int=r.getrandbits(128), version=4))


def _private_ip_name(r: random.Random, region: str) -> str:
    octets = "-".join(str(r.randrange(256)) for _ in range(3))
    domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    return f"ip-10-{octets}.{domain}"


def _unique(draw: Callable[[], Attributes], key: int, size: int) -> list[Attributes]:
    """`size` draws whose attribute `key` (an index) is unique, redrawing on a clash."""
    out: list[Attributes] = []
    seen: set[str] = set()  # membership only
    while len(out) < size:
        attrs = draw()
        if attrs[key][1] not in seen:
            seen.add(attrs[key][1])
            out.append(attrs)
    return out


def host_pool(r: random.Random, size: int) -> list[Attributes]:
    def draw() -> Attributes:
        provider, region = r.choice(REGIONS)
        if provider == "aws":
            name = _private_ip_name(r, region)
            host_id = f"i-0{r.getrandbits(64):016x}"
        else:
            name = f"{r.choice(HOST_ROLES)}-{r.choice(ENVIRONMENTS[:2])}-{r.randrange(1, 1000):03d}"
            host_id = str(r.getrandbits(63)) if provider == "gcp" else _uid(r)
        return (
            ("host.name", name), ("host.id", host_id), ("host.type", r.choice(INSTANCE_TYPES[provider])),
            ("host.arch", "amd64"), ("os.type", "linux"), ("cloud.provider", provider),
            ("cloud.platform", CLOUD_PLATFORM[provider]), ("cloud.region", region),
            ("cloud.availability_zone", zone(provider, region, r)),
        )
    return _unique(draw, 0, size)


def _node_name(r: random.Random, cluster_name: str, provider: str, region: str) -> str:
    if provider == "aws":
        return _private_ip_name(r, region)
    if provider == "gcp":
        return f"gke-{cluster_name}-default-pool-{r.getrandbits(32):08x}-{_suffix(r, 4)}"
    return f"aks-nodepool1-{r.randrange(10**7, 10**8)}-vmss{r.randrange(36**3):06x}"


def node_pool(r: random.Random, size: int) -> list[Attributes]:
    def draw() -> Attributes:
        name, provider, region = cluster(r.randrange(HOME_CLUSTERS))
        return (
            ("k8s.node.name", _node_name(r, name, provider, region)), ("k8s.node.uid", _uid(r)),
            ("k8s.cluster.name", name), ("cloud.provider", provider), ("cloud.platform", K8S_PLATFORM[provider]),
            ("cloud.region", region), ("cloud.availability_zone", zone(provider, region, r)),
        )
    return _unique(draw, 0, size)


def pod_pool(r: random.Random, size: int) -> list[Attributes]:
    # One live ReplicaSet hash per deployment and cluster, as after a rollout.
    replicaset_hash: dict[tuple[str, str], str] = {}

    def draw() -> Attributes:
        name, provider, region = cluster(r.randrange(HOME_CLUSTERS))
        deployment, namespace = r.choice(DEPLOYMENTS)
        template = replicaset_hash.setdefault((name, deployment), _suffix(r, r.choice((9, 10))))
        return (
            ("k8s.pod.name", f"{deployment}-{template}-{_suffix(r, 5)}"), ("k8s.pod.uid", _uid(r)),
            ("k8s.namespace.name", namespace), ("k8s.deployment.name", deployment),
            ("k8s.node.name", _node_name(r, name, provider, region)), ("k8s.cluster.name", name),
            ("cloud.provider", provider), ("cloud.region", region),
        )
    return _unique(draw, 0, size)


def container_pool(r: random.Random, size: int) -> list[Attributes]:
    def with_container(pod: Attributes) -> Attributes:
        deployment = dict(pod)["k8s.deployment.name"]
        name = deployment if r.random() < 0.75 else r.choice(SIDECARS)
        image = f"registry.example.com/{dict(pod)['k8s.namespace.name']}/{name}"
        return (
            ("container.id", f"{r.getrandbits(256):064x}"), ("k8s.container.name", name),
            ("container.image.name", image), *pod,
        )
    return [with_container(pod) for pod in pod_pool(r, size)]


def workload_pool(kind: str, vocabulary: tuple[tuple[str, str], ...], r: random.Random, size: int) -> list[Attributes]:
    """Workloads are unique by (cluster, name): entity i is name i % V in
    cluster i // V, the same apps deployed to cluster after cluster."""
    out: list[Attributes] = []
    for index in range(size):
        name, namespace = vocabulary[index % len(vocabulary)]
        cluster_name = cluster(index // len(vocabulary))[0]
        if kind == "replicaset":
            name = f"{name}-{_suffix(r, 10)}"
        elif kind == "job":
            # A CronJob's Job is named after its scheduled time in minutes.
            name = f"{name}-{r.randrange(28_900_000, 29_000_000)}"
        out.append((
            (f"k8s.{kind}.name", name), (f"k8s.{kind}.uid", _uid(r)),
            ("k8s.namespace.name", namespace), ("k8s.cluster.name", cluster_name),
        ))
    return out


def namespace_pool(r: random.Random, size: int) -> list[Attributes]:
    return [
        (("k8s.namespace.name", NAMESPACES[i % len(NAMESPACES)]), ("k8s.namespace.uid", _uid(r)),
         ("k8s.cluster.name", cluster(i // len(NAMESPACES))[0]))
        for i in range(size)
    ]


def cluster_pool(r: random.Random, size: int) -> list[Attributes]:
    out: list[Attributes] = []
    for index in range(size):
        name, provider, region = cluster(index)
        out.append((
            ("k8s.cluster.name", name), ("k8s.cluster.uid", _uid(r)), ("cloud.provider", provider),
            ("cloud.platform", K8S_PLATFORM[provider]), ("cloud.region", region),
        ))
    return out


POOL_BUILDERS: dict[str, Callable[[random.Random, int], list[Attributes]]] = {
    "host": host_pool,
    "node": node_pool,
    "pod": pod_pool,
    "container": container_pool,
    "deployment": lambda r, n: workload_pool("deployment", DEPLOYMENTS, r, n),
    "replicaset": lambda r, n: workload_pool("replicaset", DEPLOYMENTS, r, n),
    "hpa": lambda r, n: workload_pool("hpa", DEPLOYMENTS, r, n),
    "daemonset": lambda r, n: workload_pool("daemonset", DAEMONSETS, r, n),
    "statefulset": lambda r, n: workload_pool("statefulset", STATEFULSETS, r, n),
    "cronjob": lambda r, n: workload_pool("cronjob", CRONJOBS, r, n),
    "job": lambda r, n: workload_pool("job", CRONJOBS, r, n),
    "namespace": namespace_pool,
    "cluster": cluster_pool,
}


# --- service identity ------------------------------------------------------------

# The Collector receiver that reports an entity with no service of its own.
ENTITY_RECEIVER = {"host": "hostmetrics", "node": "kubeletstats", "namespace": "k8scluster", "cluster": "k8scluster"}


def service_identity(kind: str, attrs: Attributes) -> Attributes:
    """`service.name`, `service.instance.id` and, where one applies,
    `service.namespace` for an entity, as a well-configured Collector sets
    them (the semantic conventions' k8s rules: the workload names the
    service, the pod's namespace its namespace, namespace.pod.container the
    instance). Prometheus-style stores turn them into `job` and `instance` and
    drop every other resource attribute from the series (keeping them in
    `target_info`): without a distinct instance, all hosts or pods would write
    the same series."""
    a = dict(attrs)
    if kind == "container":
        namespace, pod, container = a["k8s.namespace.name"], a["k8s.pod.name"], a["k8s.container.name"]
        service = container if container in SIDECARS else a["k8s.deployment.name"]
        return (("service.name", service), ("service.namespace", namespace),
                ("service.instance.id", f"{namespace}.{pod}.{container}"))
    if kind == "pod":
        return (("service.name", a["k8s.deployment.name"]), ("service.namespace", a["k8s.namespace.name"]),
                ("service.instance.id", a["k8s.pod.uid"]))
    if kind in ENTITY_RECEIVER:
        uid = a.get("host.id") or a.get(f"k8s.{kind}.uid")
        scope = () if kind == "host" else (("service.namespace", a["k8s.cluster.name"]),)
        return (("service.name", ENTITY_RECEIVER[kind]), *scope, ("service.instance.id", uid))
    # A workload (deployment, replicaset, job, ...) is its own service.
    return (("service.name", a[f"k8s.{kind}.name"]), ("service.namespace", a["k8s.namespace.name"]),
            ("service.instance.id", a[f"k8s.{kind}.uid"]))


# --- wire framing ----------------------------------------------------------------

REQUEST_RESOURCE_METRICS = field_key(ExportMetricsServiceRequest, "resource_metrics")
RM_RESOURCE = field_key(ResourceMetrics, "resource")
RM_SCOPE_METRICS = field_key(ResourceMetrics, "scope_metrics")
SM_SCOPE = field_key(ScopeMetrics, "scope")
SM_METRICS = field_key(ScopeMetrics, "metrics")
METRIC_DATA = {GAUGE: field_key(Metric, "gauge"), HISTOGRAM: field_key(Metric, "histogram")}
METRIC_SUM = field_key(Metric, "sum")


class Encoded:
    """Per generate call: entity pools and the serialized pieces reused across
    metrics (framed resources and scopes, point-attribute lists)."""

    def __init__(self, seed: int, pool_size: int) -> None:
        self._seed = seed
        self._pool_size = pool_size
        self._pools: dict[str, list[Attributes]] = {}
        self._resources: dict[tuple[str, int], bytes] = {}
        self._scopes: dict[str, bytes] = {}
        self._combos: dict[tuple[str, ...], list[list[KeyValue]]] = {}

    def pool(self, kind: str) -> list[Attributes]:
        if kind not in self._pools:
            # Seeded per kind, so a pool never depends on which metric needed it first.
            r = random.Random(self._seed * 100 + list(POOL_BUILDERS).index(kind))
            self._pools[kind] = POOL_BUILDERS[kind](r, self._pool_size)
        return self._pools[kind]

    def resource(self, kind: str, index: int) -> bytes:
        key = (kind, index)
        if key not in self._resources:
            attrs = self.pool(kind)[index]
            identity = service_identity(kind, attrs)
            self._resources[key] = length_delimited(
                RM_RESOURCE, otlp.resource(dict((*identity, *attrs))).SerializeToString())
        return self._resources[key]

    def scope(self, name: str) -> bytes:
        if name not in self._scopes:
            self._scopes[name] = length_delimited(SM_SCOPE, otlp.scope(name).SerializeToString())
        return self._scopes[name]

    def combos(self, dims: tuple[str, ...]) -> list[list[KeyValue]]:
        """Every combination of the dimensions' values, as KeyValue lists."""
        if dims not in self._combos:
            product = itertools.product(*(DIMENSIONS[d] for d in dims))
            self._combos[dims] = [otlp.attributes([pair for alt in combo for pair in alt]) for combo in product]
        return self._combos[dims]


# --- values --------------------------------------------------------------------

def draw_values(range_name: str, n: int, rng: np.random.Generator) -> list[int] | list[float]:
    """n non-zero values for one metric's series."""
    low, high, as_int, uniform = VALUE_RANGES[range_name]
    if uniform:
        values = rng.uniform(low, high, n)
    else:
        values = np.exp(rng.uniform(math.log(low), math.log(high), n))
    if as_int:
        return np.maximum(np.rint(values), 1).astype(np.int64).tolist()
    return values.tolist()


def draw_histograms(n: int, rng: np.random.Generator) -> tuple[list, list, list, list, list]:
    """Cumulative latency histograms for n series: per series a log-normal
    latency (its own median and spread) split into SECONDS_BOUNDS buckets.
    Returns counts, sums, mins, maxes and bucket-count lists; min and max lie in
    the first and last non-empty buckets and sum/count between them."""
    bounds = np.array(SECONDS_BOUNDS)
    counts = np.exp(rng.uniform(math.log(100), math.log(5e6), n)).astype(np.int64)
    medians = np.exp(rng.uniform(math.log(0.004), math.log(1.5), n))
    sigmas = rng.uniform(0.4, 1.3, n)
    z = (np.log(bounds)[None, :] - np.log(medians)[:, None]) / sigmas[:, None]
    cdf = 1.0 / (1.0 + np.exp(-1.702 * z))  # logistic approximation of the normal CDF
    edges = np.concatenate([np.zeros((n, 1)), cdf, np.ones((n, 1))], axis=1)
    buckets = rng.multinomial(counts, np.diff(edges, axis=1))
    lower = np.concatenate([[0.0], bounds])
    upper = np.concatenate([bounds, [bounds[-1] * 2]])
    filled = buckets > 0
    first = filled.argmax(axis=1)
    last = filled.shape[1] - 1 - filled[:, ::-1].argmax(axis=1)
    mins = lower[first] + 0.2 * (upper[first] - lower[first])
    maxes = lower[last] + 0.9 * (upper[last] - lower[last])
    sums = buckets @ ((lower + upper) / 2)
    return counts.tolist(), sums.tolist(), mins.tolist(), maxes.tolist(), buckets.tolist()


def number_points(spec: MetricSpec, combos: list[list[KeyValue]], n: int,
                  rng: np.random.Generator) -> list[NumberDataPoint]:
    values = draw_values(spec.values, n, rng)
    k = len(combos)
    # Gauges have no start time: 0 is proto3's "unset" and is not encoded.
    start = 0 if spec.kind == GAUGE else START_NS
    if VALUE_RANGES[spec.values][2]:
        return [NumberDataPoint(attributes=combos[i % k], start_time_unix_nano=start, time_unix_nano=POINT_NS, as_int=v)
                for i, v in enumerate(values)]
    return [NumberDataPoint(attributes=combos[i % k], start_time_unix_nano=start, time_unix_nano=POINT_NS, as_double=v)
            for i, v in enumerate(values)]


def histogram_points(combos: list[list[KeyValue]], n: int, rng: np.random.Generator) -> list[HistogramDataPoint]:
    k = len(combos)
    counts, sums, mins, maxes, buckets = draw_histograms(n, rng)
    return [
        HistogramDataPoint(
            attributes=combos[i % k], start_time_unix_nano=START_NS, time_unix_nano=POINT_NS,
            count=counts[i], sum=sums[i], bucket_counts=buckets[i], explicit_bounds=SECONDS_BOUNDS,
            min=mins[i], max=maxes[i],
        )
        for i in range(n)
    ]


# --- records -------------------------------------------------------------------

HOST_SCRAPERS = {
    "cpu": "cpu", "memory": "memory", "disk": "disk", "filesystem": "filesystem", "network": "network",
    "tcp": "network", "paging": "paging", "processes": "processes",
}


def scope_name(metric_type: str, spec: MetricSpec) -> str:
    """The Collector receiver (hostmetrics: its scraper) that emits the metric."""
    if spec.scope:
        return spec.scope
    if metric_type == "host_metrics":
        subsystem = spec.name.split(".")[1]
        scraper = "load" if spec.name.startswith("system.cpu.load_average") else HOST_SCRAPERS.get(subsystem, "system")
        return HOSTMETRICS_SCRAPER.format(scraper)
    return K8SCLUSTER if metric_type == "k8s_cluster" else KUBELETSTATS


def _data_encoder(spec: MetricSpec) -> Callable[[list], bytes]:
    """Serializes one entity's points as the Metric's data field, tag included."""
    if spec.kind == GAUGE:
        return lambda points: length_delimited(METRIC_DATA[GAUGE], Gauge(data_points=points).SerializeToString())
    if spec.kind == HISTOGRAM:
        return lambda points: length_delimited(METRIC_DATA[HISTOGRAM], Histogram(
            data_points=points, aggregation_temporality=AGGREGATION_TEMPORALITY_CUMULATIVE).SerializeToString())
    monotonic = spec.kind == COUNTER
    return lambda points: length_delimited(METRIC_SUM, Sum(
        data_points=points, aggregation_temporality=AGGREGATION_TEMPORALITY_CUMULATIVE,
        is_monotonic=monotonic).SerializeToString())


def metric_record(metric_type: str, spec: MetricSpec, n: int, encoded: Encoded, rng: np.random.Generator) -> bytes:
    """One serialized ExportMetricsServiceRequest with the metric's n series."""
    combos = encoded.combos(spec.dims)
    k = len(combos)
    points = histogram_points(combos, n, rng) if spec.kind == HISTOGRAM else number_points(spec, combos, n, rng)
    header = Metric(name=spec.name, description=spec.description, unit=spec.unit).SerializeToString()
    scope = encoded.scope(scope_name(metric_type, spec))
    entity = spec.entity or TYPE_ENTITY[metric_type]
    encode_data = _data_encoder(spec)
    parts: list[bytes] = []
    for index in range(-(-n // k)):
        metric = header + encode_data(points[index * k:(index + 1) * k])
        scope_metrics = scope + length_delimited(SM_METRICS, metric)
        resource_metrics = encoded.resource(entity, index) + length_delimited(RM_SCOPE_METRICS, scope_metrics)
        parts += (REQUEST_RESOURCE_METRICS, varint(len(resource_metrics)), resource_metrics)
    return b"".join(parts)


def generate_metrics(config: GeneratorConfig, rng: np.random.Generator) -> SignalTemplates:
    """Metric templates for `config.metrics`: one record per metric.

    counts: {"metrics": number of metrics, "series": total series}."""
    settings = config.metrics
    if settings.metric_count == 0:
        return SignalTemplates(records=[], counts={"metrics": 0, "series": 0})
    chosen = select_metrics(settings.types, settings.metric_count)
    series = draw_series_counts(settings.timeseries_per_metric, len(chosen), rng)
    encoded = Encoded(int(rng.integers(2**31)), max(settings.timeseries_per_metric.max, 1))
    records = [
        metric_record(metric_type, spec, int(n), encoded, rng)
        for (metric_type, spec), n in zip(chosen, series)
    ]
    return SignalTemplates(records=records, counts={"metrics": len(records), "series": int(series.sum())})
