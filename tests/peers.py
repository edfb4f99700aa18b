"""The real peers `make peers` builds, for the interop tests: an OpenTelemetry
Collector run as its own process on loopback ports, and where to find
telemetrygen. Tests skip (saying why) when the binaries are not built."""
from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from telegen.sink import free_port

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / ".peers"
COLLECTOR = PEERS / "otelcol-telegen"
TELEMETRYGEN = PEERS / "telemetrygen"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def need(binary: Path) -> Path:
    if not binary.exists():
        pytest.skip(f"{binary.name} is not built: run `make peers` (needs Go)")
    return binary


class PeerProcess:
    """A peer run as its own process: `command()` started in `workdir`
    (output to `<name>.log` there), ready once `ready()` holds; `with`
    stops it (terminate, then kill)."""

    name = "peer"
    start_timeout = 60.0

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"telegen-{self.name}-"))
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
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode}:\n{self.log.read()}")
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready within {self.start_timeout:.0f} s")

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


class Collector(PeerProcess):
    """`with Collector(exporters, pipelines) as c:` runs the Collector with an
    OTLP receiver on c.grpc_endpoint and c.http_endpoint, and its own
    telemetry (Prometheus text) readable with c.metrics()."""

    name = "otelcol"
    start_timeout = 30.0

    def __init__(self, exporters: dict | None = None, pipelines: dict[str, list[str]] | None = None,
                 workdir: Path | None = None) -> None:
        """`pipelines`: signal -> exporter names; by default every signal to every exporter."""
        need(COLLECTOR)
        super().__init__(workdir)
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.exporters = exporters or {"nop": {}}
        self.pipelines = pipelines or dict.fromkeys(("traces", "metrics", "logs"), list(self.exporters))

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def config(self) -> dict:
        return {
            "receivers": {"otlp": {"protocols": {
                "grpc": {"endpoint": self.grpc_endpoint, "max_recv_msg_size_mib": 64},
                "http": {"endpoint": self.http_endpoint}}}},
            "exporters": self.exporters,
            "service": {
                "telemetry": {"logs": {"level": "warn"}, "metrics": {"level": "detailed", "readers": [
                    {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": self.metrics_port}}}}]}},
                "pipelines": {signal: {"receivers": ["otlp"], "exporters": names}
                              for signal, names in self.pipelines.items()},
            },
        }

    def command(self) -> list[str]:
        path = self.workdir / f"otelcol-{self.grpc_port}.yaml"
        path.write_text(yaml.safe_dump(self.config()))
        return [str(COLLECTOR), "--config", str(path)]

    def ports(self) -> list[int]:
        return [self.grpc_port, self.http_port, self.metrics_port]

    def metrics(self) -> dict[str, float]:
        """Its own counters, summed over label sets: name -> value."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match and not line.startswith("#"):
                values[match.group(1)] = values.get(match.group(1), 0.0) + float(match.group(3))
        return values

    def wait_for(self, name: str, value: float, timeout: float = 30) -> dict[str, float]:
        """Poll its telemetry until counter `name` reaches `value` (exports are asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            metrics = self.metrics()
            if metrics.get(name, 0) >= value or time.monotonic() > deadline:
                return metrics
            time.sleep(0.2)

def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
