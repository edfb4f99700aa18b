"""Real backends as test peers (`make peers` builds them from the Go module
proxy): Jaeger v2, Prometheus and VictoriaLogs, each run as its own process
on its default configuration with only OTLP ingest switched on, bound to
127.0.0.1 on free ports, with a throwaway data directory. Tests skip (saying
why) when a binary is not built."""
from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from peers import PEERS, _listening, need
from telegen.sink import free_port

JAEGER = PEERS / "jaeger"
PROMETHEUS = PEERS / "prometheus"
VICTORIALOGS = PEERS / "victoria-logs"
START_TIMEOUT = 60.0


class Backend:
    """Starts `command` in `workdir`, waits for `ports`; `with` stops it."""

    name = "backend"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ports(self) -> list[int]:
        raise NotImplementedError

    def ready(self) -> bool:
        return all(_listening(port) for port in self.ports())

    def __enter__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.workdir / f"{self.name}.log", "w+")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(self.command(), cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode}:\n{self.log.read()}")
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.log.close()

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


def eventually(read, expect, timeout: float = 30.0, interval: float = 0.2):
    """Poll `read()` until `expect(value)` or the timeout; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if expect(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)
