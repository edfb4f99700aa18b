"""Metric names, units, instrument kinds and data-point dimensions.

The catalog follows the OpenTelemetry semantic conventions and the names the
OpenTelemetry Collector receivers emit (hostmetrics, kubeletstats,
k8scluster). Entries marked `# telegen extension` are not in either: they are
plausible additions so every metric type has some histograms. When a config
asks for more metrics than the catalog holds, `extension_specs` builds more
names in the same style from per-type subsystem x measure vocabularies.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

GAUGE = "gauge"
COUNTER = "counter"  # monotonic cumulative Sum
UPDOWN = "updown"  # non-monotonic cumulative Sum (semconv UpDownCounter)
HISTOGRAM = "histogram"  # explicit-bucket, cumulative

# A dimension is a tuple of alternatives; an alternative is the (key, value)
# pairs one data point carries for it (several keys when they belong together,
# like a filesystem's device, mountpoint and type).
Alternative = tuple[tuple[str, str], ...]
Dimension = tuple[Alternative, ...]


def _dim(key: str, *values: str) -> Dimension:
    return tuple(((key, value),) for value in values)


DIMENSIONS: dict[str, Dimension] = {
    "cpu": _dim("cpu", *(f"cpu{i}" for i in range(8))),
    "cpu_state": _dim("state", "user", "system", "idle", "interrupt", "nice", "softirq", "steal", "wait"),
    "cpu_mode": _dim("state", "user", "system"),
    "memory_state": _dim("state", "used", "free", "buffered", "cached", "slab_reclaimable", "slab_unreclaimable"),
    "disk_device": _dim("device", "nvme0n1", "nvme1n1", "sda", "sdb"),
    "disk_direction": _dim("direction", "read", "write"),
    "filesystem": (
        (("device", "/dev/nvme0n1p1"), ("mountpoint", "/"), ("type", "ext4"), ("mode", "rw")),
        (("device", "/dev/nvme0n1p15"), ("mountpoint", "/boot/efi"), ("type", "vfat"), ("mode", "rw")),
        (("device", "/dev/nvme1n1"), ("mountpoint", "/var/lib/docker"), ("type", "xfs"), ("mode", "rw")),
        (("device", "/dev/sdb1"), ("mountpoint", "/data"), ("type", "xfs"), ("mode", "rw")),
        (("device", "tmpfs"), ("mountpoint", "/run"), ("type", "tmpfs"), ("mode", "rw")),
    ),
    "filesystem_state": _dim("state", "used", "free", "reserved"),
    "network_device": _dim("device", "eth0", "eth1", "ens5", "lo"),
    "network_direction": _dim("direction", "receive", "transmit"),
    "protocol": _dim("protocol", "tcp"),
    "tcp_state": _dim(
        "state", "ESTABLISHED", "LISTEN", "TIME_WAIT", "CLOSE_WAIT", "SYN_SENT", "SYN_RECV",
        "FIN_WAIT_1", "FIN_WAIT_2", "LAST_ACK", "CLOSING", "CLOSE", "DELETE",
    ),
    "paging_device": _dim("device", "/swapfile", "/dev/dm-1"),
    "paging_state": _dim("state", "used", "free", "cached"),
    "paging_direction": _dim("direction", "page_in", "page_out"),
    "paging_type": _dim("type", "major", "minor"),
    "process_status": _dim("status", "running", "sleeping", "blocked", "stopped", "zombie", "idle"),
    "interface": _dim("interface", "eth0"),
    "volume": (
        (("k8s.volume.name", "kube-api-access"), ("k8s.volume.type", "projected")),
        (("k8s.volume.name", "data"), ("k8s.volume.type", "persistentVolumeClaim")),
        (("k8s.volume.name", "tmp"), ("k8s.volume.type", "emptyDir")),
        (("k8s.volume.name", "config"), ("k8s.volume.type", "configMap")),
    ),
    "quota_resource": _dim("resource", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "pods", "requests.storage"),
    "runtime_operation": _dim("operation_type", "create_container", "start_container", "stop_container", "pull_image", "list_containers", "container_status"),
    "api_verb": _dim("verb", "GET", "LIST", "WATCH", "CREATE", "UPDATE", "PATCH", "DELETE"),
    "api_resource": _dim("resource", "pods", "deployments", "services", "endpoints", "configmaps", "secrets", "nodes", "events", "leases"),
    "schedule_result": _dim("result", "scheduled", "unschedulable", "error"),
    "etcd_operation": _dim("operation", "get", "list", "create", "update", "delete", "txn"),
}

# Value ranges (low, high, as_int, uniform): log-uniform unless `uniform`,
# always above zero so the 8-byte value field is present for the sender.
VALUE_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "ratio": (0.01, 0.95, False, True),
    "seconds_total": (1.0e3, 5.0e7, False, False),
    "uptime": (3.6e3, 3.0e7, False, False),
    "load": (0.05, 12.0, False, False),
    "cores": (0.005, 4.0, False, False),
    "cores_allotted": (0.1, 8.0, False, False),
    "hertz": (1.2e9, 3.8e9, False, True),
    "memory": (5.0e7, 6.4e10, True, False),
    "storage": (1.0e9, 2.0e12, True, False),
    "bytes_total": (1.0e9, 5.0e13, True, False),
    "operations": (1.0e4, 1.0e10, True, False),
    "events": (1.0, 1.0e5, True, False),
    "faults": (1.0e3, 1.0e9, True, False),
    "inodes": (1.0e4, 6.0e7, True, False),
    "processes": (1.0, 800.0, True, False),
    "connections": (1.0, 5.0e3, True, False),
    "replicas": (1.0, 64.0, True, False),
    "one": (1.0, 1.0, True, True),  # condition and readiness flags: 1 = true
    "pod_phase": (2.0, 2.0, True, True),  # k8sclusterreceiver: 2 = Running
    "namespace_phase": (1.0, 1.0, True, True),  # 1 = Active
    "latency": (0.0, 0.0, False, True),  # histograms draw their own shape
}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str
    unit: str
    description: str
    dims: tuple[str, ...] = ()
    values: str = "ratio"
    # Which entity pool the series come from; None: the metric type's own.
    entity: str | None = None
    # The receiver that emits it, when not the type's default receiver.
    scope: str | None = None


S = MetricSpec
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/"
HOSTMETRICS_SCRAPER = CONTRIB + "hostmetricsreceiver/internal/scraper/{}scraper"
KUBELETSTATS = CONTRIB + "kubeletstatsreceiver"
K8SCLUSTER = CONTRIB + "k8sclusterreceiver"

# The entity every metric of a type describes, unless its spec says otherwise.
TYPE_ENTITY: dict[str, str] = {
    "host_metrics": "host",
    "k8s_cluster": "cluster",
    "k8s_node": "node",
    "k8s_pod": "pod",
    "k8s_container": "container",
}

CATALOG: dict[str, tuple[MetricSpec, ...]] = {
    "host_metrics": (
        S("system.cpu.time", COUNTER, "s", "Seconds each logical CPU spent on each mode.", ("cpu", "cpu_state"), "seconds_total"),
        S("system.cpu.utilization", GAUGE, "1", "Difference in system.cpu.time since the last measurement, divided by the elapsed time and number of logical CPUs.", ("cpu", "cpu_state"), "ratio"),
        S("system.cpu.load_average.1m", GAUGE, "{thread}", "Average CPU Load over 1 minute.", (), "load"),
        S("system.cpu.load_average.5m", GAUGE, "{thread}", "Average CPU Load over 5 minutes.", (), "load"),
        S("system.cpu.load_average.15m", GAUGE, "{thread}", "Average CPU Load over 15 minutes.", (), "load"),
        S("system.cpu.frequency", GAUGE, "Hz", "Current frequency of the CPU core in Hz.", ("cpu",), "hertz"),
        S("system.cpu.logical.count", UPDOWN, "{cpu}", "Number of available logical CPUs.", (), "replicas"),
        S("system.cpu.physical.count", UPDOWN, "{cpu}", "Number of available physical CPUs.", (), "replicas"),
        S("system.memory.usage", UPDOWN, "By", "Bytes of memory in use.", ("memory_state",), "memory"),
        S("system.memory.utilization", GAUGE, "1", "Percentage of memory bytes in use.", ("memory_state",), "ratio"),
        S("system.memory.limit", UPDOWN, "By", "Total memory available in the system.", (), "memory"),
        S("system.paging.usage", UPDOWN, "By", "Unix swap or windows pagefile usage.", ("paging_device", "paging_state"), "memory"),
        S("system.paging.utilization", GAUGE, "1", "Swap (unix) or pagefile (windows) utilization.", ("paging_device", "paging_state"), "ratio"),
        S("system.paging.operations", COUNTER, "{operation}", "The number of paging operations.", ("paging_direction", "paging_type"), "operations"),
        S("system.paging.faults", COUNTER, "{fault}", "The number of page faults.", ("paging_type",), "faults"),
        S("system.disk.io", COUNTER, "By", "Disk bytes transferred.", ("disk_device", "disk_direction"), "bytes_total"),
        S("system.disk.operations", COUNTER, "{operation}", "Disk operations count.", ("disk_device", "disk_direction"), "operations"),
        S("system.disk.io_time", COUNTER, "s", "Time disk spent activated.", ("disk_device",), "seconds_total"),
        S("system.disk.operation_time", COUNTER, "s", "Time spent in disk operations.", ("disk_device", "disk_direction"), "seconds_total"),
        S("system.disk.weighted_io_time", COUNTER, "s", "Time disk spent activated multiplied by the queue length.", ("disk_device",), "seconds_total"),
        S("system.disk.merged", COUNTER, "{operation}", "The number of disk reads/writes merged into single physical disk access operations.", ("disk_device", "disk_direction"), "operations"),
        S("system.disk.pending_operations", UPDOWN, "{operation}", "The queue size of pending I/O operations.", ("disk_device",), "processes"),
        S("system.disk.operation.duration", HISTOGRAM, "s", "Duration of disk read and write operations.", ("disk_device", "disk_direction"), "latency"),  # telegen extension
        S("system.filesystem.usage", UPDOWN, "By", "Filesystem bytes used.", ("filesystem", "filesystem_state"), "storage"),
        S("system.filesystem.utilization", GAUGE, "1", "Fraction of filesystem bytes used.", ("filesystem",), "ratio"),
        S("system.filesystem.inodes.usage", UPDOWN, "{inode}", "FileSystem inodes used.", ("filesystem", "filesystem_state"), "inodes"),
        S("system.network.io", COUNTER, "By", "The number of bytes transmitted and received.", ("network_device", "network_direction"), "bytes_total"),
        S("system.network.packets", COUNTER, "{packet}", "The number of packets transferred.", ("network_device", "network_direction"), "operations"),
        S("system.network.errors", COUNTER, "{error}", "The number of errors encountered.", ("network_device", "network_direction"), "events"),
        S("system.network.dropped", COUNTER, "{packet}", "The number of packets dropped.", ("network_device", "network_direction"), "events"),
        S("system.network.connections", UPDOWN, "{connection}", "The number of connections.", ("protocol", "tcp_state"), "connections"),
        S("system.network.conntrack.count", UPDOWN, "{entry}", "The count of entries in conntrack table.", (), "connections"),
        S("system.network.conntrack.max", UPDOWN, "{entry}", "The limit for entries in the conntrack table.", (), "connections"),
        S("system.network.connection.duration", HISTOGRAM, "s", "Lifetime of closed TCP connections.", ("network_device",), "latency"),  # telegen extension
        S("system.processes.count", UPDOWN, "{process}", "Total number of processes in each state.", ("process_status",), "processes"),
        S("system.processes.created", COUNTER, "{process}", "Total number of created processes.", (), "operations"),
        S("system.uptime", GAUGE, "s", "The time the system has been running.", (), "uptime"),
    ),
    "k8s_node": (
        S("k8s.node.cpu.usage", GAUGE, "{cpu}", "Total CPU usage (sum of all cores per second) averaged over the sample window.", (), "cores"),
        S("k8s.node.cpu.time", COUNTER, "s", "Total cumulative CPU time (sum of all cores) spent by the node.", (), "seconds_total"),
        S("k8s.node.memory.usage", GAUGE, "By", "Memory usage of the node.", (), "memory"),
        S("k8s.node.memory.available", GAUGE, "By", "Node memory available.", (), "memory"),
        S("k8s.node.memory.working_set", GAUGE, "By", "Node memory working set.", (), "memory"),
        S("k8s.node.memory.rss", GAUGE, "By", "Node memory RSS.", (), "memory"),
        S("k8s.node.memory.page_faults", GAUGE, "1", "Node memory page faults.", (), "faults"),
        S("k8s.node.memory.major_page_faults", GAUGE, "1", "Node memory major page faults.", (), "events"),
        S("k8s.node.network.io", COUNTER, "By", "Node network IO.", ("interface", "network_direction"), "bytes_total"),
        S("k8s.node.network.errors", COUNTER, "1", "Node network errors.", ("interface", "network_direction"), "events"),
        S("k8s.node.filesystem.usage", GAUGE, "By", "Node filesystem usage.", (), "storage"),
        S("k8s.node.filesystem.capacity", GAUGE, "By", "Node filesystem capacity.", (), "storage"),
        S("k8s.node.filesystem.available", GAUGE, "By", "Node filesystem available.", (), "storage"),
        S("k8s.node.uptime", COUNTER, "s", "The time since the node started.", (), "uptime"),
        S("k8s.node.condition_ready", GAUGE, "1", "Whether this node is Ready (1), not Ready (0) or in an unknown state (-1).", (), "one", scope=K8SCLUSTER),
        S("k8s.node.allocatable_cpu", GAUGE, "{cpu}", "Amount of cpu allocatable on the node.", (), "cores_allotted", scope=K8SCLUSTER),
        S("k8s.node.allocatable_memory", GAUGE, "By", "Amount of memory allocatable on the node.", (), "memory", scope=K8SCLUSTER),
        S("k8s.node.runtime.operation.duration", HISTOGRAM, "s", "Duration of container runtime operations.", ("runtime_operation",), "latency"),  # telegen extension
        S("k8s.node.pleg.relist.duration", HISTOGRAM, "s", "Duration of the pod lifecycle event generator relisting pods.", (), "latency"),  # telegen extension
    ),
    "k8s_pod": (
        S("k8s.pod.cpu.usage", GAUGE, "{cpu}", "Total CPU usage (sum of all cores per second) averaged over the sample window.", (), "cores"),
        S("k8s.pod.cpu.time", COUNTER, "s", "Total cumulative CPU time (sum of all cores) spent by the pod.", (), "seconds_total"),
        S("k8s.pod.cpu_limit_utilization", GAUGE, "1", "Pod cpu utilization as a ratio of the pod's total container limits.", (), "ratio"),
        S("k8s.pod.memory.usage", GAUGE, "By", "Memory usage of the pod.", (), "memory"),
        S("k8s.pod.memory.working_set", GAUGE, "By", "Pod memory working set.", (), "memory"),
        S("k8s.pod.memory.rss", GAUGE, "By", "Pod memory RSS.", (), "memory"),
        S("k8s.pod.memory.available", GAUGE, "By", "Pod memory available.", (), "memory"),
        S("k8s.pod.memory.page_faults", GAUGE, "1", "Pod memory page faults.", (), "faults"),
        S("k8s.pod.memory_limit_utilization", GAUGE, "1", "Pod memory utilization as a ratio of the pod's total container limits.", (), "ratio"),
        S("k8s.pod.network.io", COUNTER, "By", "Pod network IO.", ("interface", "network_direction"), "bytes_total"),
        S("k8s.pod.network.errors", COUNTER, "1", "Pod network errors.", ("interface", "network_direction"), "events"),
        S("k8s.pod.filesystem.usage", GAUGE, "By", "Pod filesystem usage.", (), "storage"),
        S("k8s.pod.filesystem.capacity", GAUGE, "By", "Pod filesystem capacity.", (), "storage"),
        S("k8s.pod.filesystem.available", GAUGE, "By", "Pod filesystem available.", (), "storage"),
        S("k8s.pod.uptime", COUNTER, "s", "The time since the pod started.", (), "uptime"),
        S("k8s.pod.phase", GAUGE, "1", "Current phase of the pod (1 - Pending, 2 - Running, 3 - Succeeded, 4 - Failed, 5 - Unknown).", (), "pod_phase", scope=K8SCLUSTER),
        S("k8s.volume.available", GAUGE, "By", "The number of available bytes in the volume.", ("volume",), "storage"),
        S("k8s.volume.capacity", GAUGE, "By", "The total capacity in bytes of the volume.", ("volume",), "storage"),
        S("k8s.pod.startup.duration", HISTOGRAM, "s", "Time from pod creation until all its containers are ready.", (), "latency"),  # telegen extension
    ),
    "k8s_container": (
        S("k8s.container.cpu.limit", UPDOWN, "{cpu}", "Maximum CPU resource limit set for the container.", (), "cores_allotted", scope=K8SCLUSTER),
        S("k8s.container.cpu.request", UPDOWN, "{cpu}", "CPU resource requested for the container.", (), "cores_allotted", scope=K8SCLUSTER),
        S("k8s.container.memory.limit", UPDOWN, "By", "Maximum memory resource limit set for the container.", (), "memory", scope=K8SCLUSTER),
        S("k8s.container.memory.request", UPDOWN, "By", "Memory resource requested for the container.", (), "memory", scope=K8SCLUSTER),
        S("k8s.container.ephemeral_storage.limit", UPDOWN, "By", "Maximum ephemeral storage resource limit set for the container.", (), "storage", scope=K8SCLUSTER),
        S("k8s.container.restarts", GAUGE, "{restart}", "How many times the container has restarted in the recent past.", (), "replicas", scope=K8SCLUSTER),
        S("k8s.container.ready", GAUGE, "1", "Whether a container has passed its readiness probe (0 for no, 1 for yes).", (), "one", scope=K8SCLUSTER),
        S("k8s.container.cpu_limit_utilization", GAUGE, "1", "Container cpu utilization as a ratio of the container's limits.", (), "ratio"),
        S("k8s.container.memory_limit_utilization", GAUGE, "1", "Container memory utilization as a ratio of the container's limits.", (), "ratio"),
        S("container.cpu.usage", GAUGE, "{cpu}", "Total CPU usage (sum of all cores per second) averaged over the sample window.", (), "cores"),
        S("container.cpu.time", COUNTER, "s", "Total cumulative CPU time (sum of all cores) spent by the container.", (), "seconds_total"),
        S("container.memory.usage", GAUGE, "By", "Memory usage of the container.", (), "memory"),
        S("container.memory.working_set", GAUGE, "By", "Container memory working set.", (), "memory"),
        S("container.memory.rss", GAUGE, "By", "Container memory RSS.", (), "memory"),
        S("container.memory.available", GAUGE, "By", "Container memory available.", (), "memory"),
        S("container.memory.page_faults", GAUGE, "1", "Container memory page faults.", (), "faults"),
        S("container.filesystem.usage", GAUGE, "By", "Container filesystem usage.", (), "storage"),
        S("container.filesystem.capacity", GAUGE, "By", "Container filesystem capacity.", (), "storage"),
        S("container.filesystem.available", GAUGE, "By", "Container filesystem available.", (), "storage"),
        S("container.uptime", COUNTER, "s", "The time since the container started.", (), "uptime"),
        S("container.image.pull.duration", HISTOGRAM, "s", "Time taken to pull the container's image.", (), "latency"),  # telegen extension
    ),
    "k8s_cluster": (
        S("k8s.deployment.available", GAUGE, "{pod}", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", (), "replicas", entity="deployment"),
        S("k8s.deployment.desired", GAUGE, "{pod}", "Number of desired pods in this deployment.", (), "replicas", entity="deployment"),
        S("k8s.replicaset.available", GAUGE, "{pod}", "Total number of available pods (ready for at least minReadySeconds) targeted by this replicaset.", (), "replicas", entity="replicaset"),
        S("k8s.replicaset.desired", GAUGE, "{pod}", "Number of desired pods in this replicaset.", (), "replicas", entity="replicaset"),
        S("k8s.daemonset.current_scheduled_nodes", GAUGE, "{node}", "Number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.", (), "replicas", entity="daemonset"),
        S("k8s.daemonset.desired_scheduled_nodes", GAUGE, "{node}", "Number of nodes that should be running the daemon pod (including nodes currently running the daemon pod).", (), "replicas", entity="daemonset"),
        S("k8s.daemonset.misscheduled_nodes", GAUGE, "{node}", "Number of nodes that are running the daemon pod, but are not supposed to run the daemon pod.", (), "one", entity="daemonset"),
        S("k8s.daemonset.ready_nodes", GAUGE, "{node}", "Number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.", (), "replicas", entity="daemonset"),
        S("k8s.statefulset.current_pods", GAUGE, "{pod}", "The number of pods created by the StatefulSet controller from the StatefulSet version.", (), "replicas", entity="statefulset"),
        S("k8s.statefulset.desired_pods", GAUGE, "{pod}", "Number of desired pods in the stateful set (the `spec.replicas` field).", (), "replicas", entity="statefulset"),
        S("k8s.statefulset.ready_pods", GAUGE, "{pod}", "Number of pods created by the stateful set that have the `Ready` condition.", (), "replicas", entity="statefulset"),
        S("k8s.statefulset.updated_pods", GAUGE, "{pod}", "Number of pods created by the StatefulSet controller from the StatefulSet version.", (), "replicas", entity="statefulset"),
        S("k8s.job.active_pods", GAUGE, "{pod}", "The number of actively running pods for a job.", (), "one", entity="job"),
        S("k8s.job.desired_successful_pods", GAUGE, "{pod}", "The desired number of successfully finished pods the job should be run with.", (), "one", entity="job"),
        S("k8s.job.failed_pods", GAUGE, "{pod}", "The number of pods which reached phase Failed for a job.", (), "one", entity="job"),
        S("k8s.job.max_parallel_pods", GAUGE, "{pod}", "The max desired number of pods the job should run at any given time.", (), "replicas", entity="job"),
        S("k8s.job.successful_pods", GAUGE, "{pod}", "The number of pods which reached phase Succeeded for a job.", (), "one", entity="job"),
        S("k8s.cronjob.active_jobs", GAUGE, "{job}", "The number of actively running jobs for a cronjob.", (), "one", entity="cronjob"),
        S("k8s.namespace.phase", GAUGE, "1", "The current phase of namespaces (1 for active and 0 for terminating).", (), "namespace_phase", entity="namespace"),
        S("k8s.hpa.current_replicas", GAUGE, "{pod}", "Current number of pod replicas managed by this autoscaler.", (), "replicas", entity="hpa"),
        S("k8s.hpa.desired_replicas", GAUGE, "{pod}", "Desired number of pod replicas managed by this autoscaler.", (), "replicas", entity="hpa"),
        S("k8s.hpa.min_replicas", GAUGE, "{pod}", "Minimum number of replicas to which the autoscaler can scale down.", (), "replicas", entity="hpa"),
        S("k8s.hpa.max_replicas", GAUGE, "{pod}", "Maximum number of replicas to which the autoscaler can scale up.", (), "replicas", entity="hpa"),
        S("k8s.resource_quota.hard_limit", GAUGE, "{resource}", "The upper limit for a particular resource in a specific namespace.", ("quota_resource",), "replicas", entity="namespace"),
        S("k8s.resource_quota.used", GAUGE, "{resource}", "The usage for a particular resource in a specific namespace.", ("quota_resource",), "replicas", entity="namespace"),
        S("k8s.apiserver.request.duration", HISTOGRAM, "s", "Latency of requests served by the Kubernetes API server.", ("api_verb", "api_resource"), "latency"),  # telegen extension
        S("k8s.scheduler.scheduling.duration", HISTOGRAM, "s", "Time taken to schedule a pod, by scheduling result.", ("schedule_result",), "latency"),  # telegen extension
        S("k8s.etcd.request.duration", HISTOGRAM, "s", "Latency of etcd requests made by the API server.", ("etcd_operation",), "latency"),  # telegen extension
    ),
}


# --- extension vocabulary (all telegen extensions) ---------------------------

@dataclass(frozen=True)
class Subsystem:
    name: str
    usage_unit: str  # the unit of what it holds: bytes, or an annotated count
    dims: tuple[str, ...] = ()


COUNT_UNIT = "{count}"


@dataclass(frozen=True)
class Measure:
    suffix: str
    kind: str
    unit: str  # "" means the subsystem's usage unit, COUNT_UNIT a count of its things
    values: str  # "" means by the unit: memory for By, connections for counts
    phrase: str


MEASURES: tuple[Measure, ...] = (
    Measure("usage", UPDOWN, "", "", "Current usage"),
    Measure("utilization", GAUGE, "1", "ratio", "Fraction in use"),
    Measure("io", COUNTER, "By", "bytes_total", "Bytes transferred"),
    Measure("limit", UPDOWN, "", "", "Configured limit"),
    Measure("operations", COUNTER, "{operation}", "operations", "Operations completed"),
    Measure("duration", HISTOGRAM, "s", "latency", "Duration of operations"),
    Measure("pressure", GAUGE, "1", "ratio", "Share of time stalled waiting"),
    Measure("errors", COUNTER, "{error}", "events", "Errors encountered"),
    Measure("available", UPDOWN, "", "", "Amount still available"),
    Measure("time", COUNTER, "s", "seconds_total", "Time spent busy"),
    Measure("latency", HISTOGRAM, "s", "latency", "Latency of requests"),
    Measure("requests", COUNTER, "{request}", "operations", "Requests handled"),
    Measure("count", UPDOWN, COUNT_UNIT, "connections", "Number of objects"),
)

PREFIX: dict[str, str] = {
    "host_metrics": "system",
    "k8s_cluster": "k8s",
    "k8s_node": "k8s.node",
    "k8s_pod": "k8s.pod",
    "k8s_container": "container",
}

SUBSYSTEMS: dict[str, tuple[Subsystem, ...]] = {
    "host_metrics": (
        Subsystem("cpu", "{cpu}", ("cpu",)), Subsystem("memory", "By"), Subsystem("disk", "By", ("disk_device",)),
        Subsystem("filesystem", "By", ("filesystem",)), Subsystem("network", "By", ("network_device",)),
        Subsystem("paging", "By"), Subsystem("processes", "{process}"), Subsystem("tcp", "{connection}"),
        Subsystem("udp", "{socket}"), Subsystem("nfs", "By"), Subsystem("hugepages", "By"), Subsystem("gpu", "By"),
        Subsystem("raid", "By"), Subsystem("interrupts", "{interrupt}", ("cpu",)), Subsystem("kernel", "{object}"),
        Subsystem("dns", "{query}"), Subsystem("ntp", "{peer}"), Subsystem("numa", "By"),
        Subsystem("file_descriptors", "{file}"), Subsystem("entropy", "{bit}"),
    ),
    "k8s_node": (
        Subsystem("cpu", "{cpu}"), Subsystem("memory", "By"), Subsystem("network", "By", ("interface",)),
        Subsystem("filesystem", "By"), Subsystem("ephemeral_storage", "By"), Subsystem("pids", "{process}"),
        Subsystem("kubelet", "{pod}"), Subsystem("runtime", "{container}"), Subsystem("image_filesystem", "By"),
        Subsystem("swap", "By"), Subsystem("volume", "By"), Subsystem("eviction", "{pod}"),
        Subsystem("cgroup", "{cgroup}"), Subsystem("pods", "{pod}"), Subsystem("conntrack", "{entry}"),
        Subsystem("hugepages", "By"),
    ),
    "k8s_pod": (
        Subsystem("cpu", "{cpu}"), Subsystem("memory", "By"), Subsystem("network", "By", ("interface",)),
        Subsystem("filesystem", "By"), Subsystem("ephemeral_storage", "By"), Subsystem("volume", "By", ("volume",)),
        Subsystem("pids", "{process}"), Subsystem("probe", "{probe}"), Subsystem("sockets", "{socket}"),
        Subsystem("swap", "By"), Subsystem("hugepages", "By"), Subsystem("threads", "{thread}"),
        Subsystem("file_descriptors", "{file}"), Subsystem("dns", "{query}"), Subsystem("sandbox", "{container}"),
    ),
    "k8s_container": (
        Subsystem("cpu", "{cpu}"), Subsystem("memory", "By"), Subsystem("filesystem", "By"),
        Subsystem("network", "By", ("interface",)), Subsystem("pids", "{process}"), Subsystem("blkio", "By"),
        Subsystem("throttling", "{period}"), Subsystem("oom", "{event}"), Subsystem("probe", "{probe}"),
        Subsystem("threads", "{thread}"), Subsystem("file_descriptors", "{file}"), Subsystem("swap", "By"),
        Subsystem("hugepages", "By"), Subsystem("sockets", "{socket}"), Subsystem("writable_layer", "By"),
    ),
    "k8s_cluster": (
        Subsystem("apiserver", "{request}", ("api_verb",)), Subsystem("scheduler", "{pod}"),
        Subsystem("etcd", "By", ("etcd_operation",)), Subsystem("controller_manager", "{item}"),
        Subsystem("coredns", "{query}"), Subsystem("ingress", "{request}"), Subsystem("service", "{endpoint}"),
        Subsystem("persistentvolume", "By"), Subsystem("node_pool", "{node}"), Subsystem("admission", "{request}"),
        Subsystem("webhook", "{request}"), Subsystem("kube_proxy", "{rule}"), Subsystem("autoscaler", "{node}"),
        Subsystem("workqueue", "{item}"), Subsystem("certificate", "{certificate}"), Subsystem("lease", "{lease}"),
    ),
}

# Inserted between subsystem and measure once plain subsystem x measure names
# run out: `system.memory.dirty.usage`, `k8s.pod.network.inbound.errors`.
QUALIFIERS: tuple[str, ...] = (
    "read", "write", "inbound", "outbound", "peak", "reserved", "shared", "cached", "pending",
    "active", "idle", "committed", "dirty", "throttled", "kernel", "user", "local", "remote",
    "primary", "secondary", "internal", "external", "retransmit", "compressed", "total",
)


def _value_range_for(unit: str) -> str:
    return "memory" if unit == "By" else "connections"


def _unit(measure: Measure, subsystem: Subsystem) -> str:
    if measure.unit == COUNT_UNIT:
        # Count what the subsystem holds: `{process}` for pids, objects for bytes.
        return "{object}" if subsystem.usage_unit == "By" else subsystem.usage_unit
    return measure.unit or subsystem.usage_unit


def _extension_spec(metric_type: str, subsystem: Subsystem, qualifiers: tuple[str, ...], measure: Measure) -> MetricSpec:
    name = ".".join((PREFIX[metric_type], subsystem.name, *qualifiers, measure.suffix))
    unit = _unit(measure, subsystem)
    what = " ".join((*qualifiers, subsystem.name.replace("_", " ")))
    return MetricSpec(
        name=name,
        kind=measure.kind,
        unit=unit,
        description=f"{measure.phrase} ({what}).",
        dims=subsystem.dims,
        values=measure.values or _value_range_for(unit),
    )


def extension_specs(metric_type: str) -> Iterator[MetricSpec]:
    """Practically endless, deterministic stream of plausible extra metrics for a type:
    subsystem x measure, then with one qualifier, then two, ... Callers skip
    names they already hold."""
    # Qualifiers outermost so a short run of names spreads over all subsystems.
    for depth in range(len(QUALIFIERS) + 1):
        for qualifiers in itertools.permutations(QUALIFIERS, depth):
            for subsystem in SUBSYSTEMS[metric_type]:
                for measure in MEASURES:
                    yield _extension_spec(metric_type, subsystem, qualifiers, measure)
