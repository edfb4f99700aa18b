"""Real backends as test peers (`make peers` builds them from the Go module
proxy): Jaeger v2, Prometheus and VictoriaLogs, each run as its own process
on its default configuration with only OTLP ingest switched on, bound to
127.0.0.1 on free ports, with a throwaway data directory. Tests skip (saying
why) when a binary is not built. And a lossy hop to put in front of one: an
OTLP/HTTP relay that acknowledges every request but forwards only some."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from peers import PEERS, PeerProcess, need
from telegen.sink import free_port

JAEGER = PEERS / "jaeger"
PROMETHEUS = PEERS / "prometheus"
VICTORIALOGS = PEERS / "victoria-logs"
START_TIMEOUT = 60.0


class Backend(PeerProcess):
    """A backend process (tests/peers.py's PeerProcess) with a query API at `query_url`."""

    name = "backend"
    start_timeout = START_TIMEOUT

    def get_json(self, path: str, **params: object) -> object:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.query_url}{path}{query}", timeout=30) as response:
            return json.load(response)

    query_url = ""


class Prometheus(Backend):
    """Prometheus 3 with `--web.enable-otlp-receiver` and an empty config file
    (every setting at its default; nothing scraped)."""

    name = "prometheus"

    def __init__(self, workdir: Path) -> None:
        need(PROMETHEUS)
        super().__init__(workdir)
        self.port = free_port()
        self.query_url = f"http://127.0.0.1:{self.port}"
        self.otlp_endpoint = f"{self.query_url}/api/v1/otlp"  # OTLP/HTTP: /v1/metrics is appended

    def command(self) -> list[str]:
        config = self.workdir / "prometheus.yml"
        config.write_text("{}\n")
        return [str(PROMETHEUS), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={self.workdir / 'data'}", "--web.enable-otlp-receiver"]

    def ports(self) -> list[int]:
        return [self.port]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.query_url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        body = self.get_json("/api/v1/query", **params)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scalar(self, promql: str, at: float | None = None) -> float:
        result = self.query(promql, at)
        return float(result[0]["value"][1]) if result else 0.0


class VictoriaLogs(Backend):
    """VictoriaLogs with its defaults (OTLP logs on /insert/opentelemetry)."""

    name = "victoria-logs"

    def __init__(self, workdir: Path) -> None:
        need(VICTORIALOGS)
        super().__init__(workdir)
        self.port = free_port()
        self.query_url = f"http://127.0.0.1:{self.port}"
        self.otlp_endpoint = f"{self.query_url}/insert/opentelemetry"  # /v1/logs is appended

    def command(self) -> list[str]:
        return [str(VICTORIALOGS), f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.workdir / 'data'}", "-loggerLevel=WARN"]

    def ports(self) -> list[int]:
        return [self.port]

    def stats(self, logsql: str) -> list[dict]:
        """A LogsQL `stats` query's rows (fields as strings)."""
        data = urllib.parse.urlencode({"query": logsql}).encode()
        with urllib.request.urlopen(f"{self.query_url}/select/logsql/stats_query", data, timeout=30) as response:
            body = json.load(response)
        return [dict(row["metric"], value=row["value"][1]) for row in body["data"]["result"]]

    def query(self, logsql: str, limit: int = 1000) -> list[dict]:
        """Matching log entries (JSON lines)."""
        data = urllib.parse.urlencode({"query": logsql, "limit": limit}).encode()
        with urllib.request.urlopen(f"{self.query_url}/select/logsql/query", data, timeout=30) as response:
            return [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]


class Jaeger(Backend):
    """Jaeger v2 as its all-in-one default (memory storage, 100,000 traces
    kept; the batch processor), with only the OTLP receiver and the query
    service, on free ports."""

    name = "jaeger"

    def __init__(self, workdir: Path, max_traces: int = 100_000) -> None:
        need(JAEGER)
        super().__init__(workdir)
        self.grpc_port, self.http_port, self.query_port = free_port(), free_port(), free_port()
        self.max_traces = max_traces
        self.query_url = f"http://127.0.0.1:{self.query_port}"
        self.grpc_endpoint = f"127.0.0.1:{self.grpc_port}"
        self.http_endpoint = f"http://127.0.0.1:{self.http_port}"

    def config(self) -> dict:
        return {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query"],
                "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"],
                                         "exporters": ["jaeger_storage_exporter"]}},
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
            },
            "extensions": {
                # Off: its own traces would go to the OTLP default, 127.0.0.1:4317 (whatever
                # listens there), and flushing them to nothing holds its exit ~20 s.
                "jaeger_query": {"storage": {"traces": "some_storage"}, "enable_tracing": False,
                                 "http": {"endpoint": f"127.0.0.1:{self.query_port}"},
                                 "grpc": {"endpoint": f"127.0.0.1:{free_port()}"}},
                "jaeger_storage": {"backends": {"some_storage": {"memory": {"max_traces": self.max_traces}}}},
            },
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": self.grpc_endpoint, "max_recv_msg_size_mib": 64},
                                                 "http": {"endpoint": f"127.0.0.1:{self.http_port}"}}}},
            "processors": {"batch": {}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "some_storage"}},
        }

    def command(self) -> list[str]:
        path = self.workdir / "jaeger.yaml"
        path.write_text(yaml.safe_dump(self.config()))
        return [str(JAEGER), "--config", str(path)]

    def ports(self) -> list[int]:
        return [self.grpc_port, self.http_port, self.query_port]

    def services(self) -> list[str]:
        return self.get_json("/api/services")["data"] or []

    def traces(self, service: str, limit: int) -> list[dict]:
        return self.get_json("/api/traces", service=service, limit=limit)["data"] or []


class DroppingRelay:
    """An OTLP/HTTP hop that loses data the way an overloaded gateway with a
    full queue does: every `drop_every`-th request is answered 200 (an empty
    Export*ServiceResponse, so the sender counts it delivered) and never
    forwarded; the others go on to `upstream` (POSTed to the same path) and
    its answer comes back. `dropped` counts the events it lost, per signal,
    decoded with the official classes. `with DroppingRelay(url, 3) as relay:`
    listens on relay.url."""

    REQUESTS = {"/v1/traces": ("traces", ExportTraceServiceRequest),
                "/v1/metrics": ("metrics", ExportMetricsServiceRequest),
                "/v1/logs": ("logs", ExportLogsServiceRequest)}

    def __init__(self, upstream: str, drop_every: int) -> None:
        self.upstream = upstream.rstrip("/")
        self.drop_every = drop_every
        self.requests = 0
        self.dropped: dict[str, int] = {"traces": 0, "metrics": 0, "logs": 0}
        self.lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with relay.lock:
                    relay.requests += 1
                    drop = relay.requests % relay.drop_every == 0
                    if drop:
                        relay.dropped_events(self.path, body)
                if drop:
                    return self.answer(200, b"", "application/x-protobuf")
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "content-encoding")}
                request = urllib.request.Request(relay.upstream + self.path, data=body, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        self.answer(response.status, response.read(), response.headers.get("Content-Type", ""))
                except urllib.error.HTTPError as exc:
                    self.answer(exc.code, exc.read(), exc.headers.get("Content-Type", ""))

            def answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type or "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def dropped_events(self, path: str, body: bytes) -> None:
        """Counts the spans or log records of a dropped request (metrics:
        its data points)."""
        for suffix, (signal, message) in self.REQUESTS.items():
            if path.endswith(suffix):
                self.dropped[signal] += _events(signal, message.FromString(body))

    def __enter__(self) -> DroppingRelay:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _events(signal: str, request) -> int:
    if signal == "traces":
        return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
    if signal == "logs":
        return sum(len(scope.log_records) for resource in request.resource_logs for scope in resource.scope_logs)
    return sum(len(getattr(metric, metric.WhichOneof("data")).data_points) for resource in request.resource_metrics
               for scope in resource.scope_metrics for metric in scope.metrics)


def read_until(read, expect, timeout: float = 30.0, interval: float = 0.2):
    """Poll `read()` until `expect(value)` or the timeout; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if expect(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)
