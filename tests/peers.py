"""The real peers `make peers` builds, for the interop tests: an OpenTelemetry
Collector run as its own process on loopback ports, and where to find
telemetrygen. Tests skip (saying why) when the binaries are not built."""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
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
TOXIPROXY = PEERS / "toxiproxy-server"
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

    def __init__(self, exporters: dict | None = None, pipelines: dict[str, list[str] | dict] | None = None,
                 workdir: Path | None = None, processors: dict | None = None, tls: dict | None = None) -> None:
        """`exporters`, `processors`: name -> config, as in the Collector's
        YAML. `pipelines`: signal -> exporter names, which go through every
        processor in the order `processors` lists them; or signal ->
        {"processors": [...], "exporters": [...]} to choose. By default every
        signal through every processor to every exporter. `tls`: the
        receiver's TLS settings (cert_file, key_file, ...) on both protocols."""
        need(COLLECTOR)
        super().__init__(workdir)
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.exporters = exporters or {"nop": {}}
        self.processors = processors or {}
        self.pipelines = pipelines or dict.fromkeys(("traces", "metrics", "logs"), list(self.exporters))
        self.tls = tls

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def pipeline(self, route: list[str] | dict) -> dict:
        processors, exporters = ((route.get("processors", []), route["exporters"]) if isinstance(route, dict)
                                 else (list(self.processors), route))
        return {"receivers": ["otlp"], **({"processors": list(processors)} if processors else {}),
                "exporters": list(exporters)}

    def config(self) -> dict:
        return {
            "receivers": {"otlp": {"protocols": {
                "grpc": {"endpoint": self.grpc_endpoint, "max_recv_msg_size_mib": 64,
                         **({"tls": self.tls} if self.tls else {})},
                "http": {"endpoint": self.http_endpoint, **({"tls": self.tls} if self.tls else {})}}}},
            **({"processors": self.processors} if self.processors else {}),
            "exporters": self.exporters,
            "service": {
                "telemetry": {"logs": {"level": "warn"}, "metrics": {"level": "detailed", "readers": [
                    {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": self.metrics_port}}}}]}},
                "pipelines": {signal: self.pipeline(route) for signal, route in self.pipelines.items()},
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


class SlowSink(PeerProcess):
    """`telegen sink` in its own process (its GIL not the test's) on a free
    loopback port, answering every request `delay_ms` late: a downstream of
    bounded throughput. It answers at most 4 requests at once (its workers)."""

    name = "sink"
    start_timeout = 20.0

    def __init__(self, delay_ms: float, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.delay_ms = delay_ms

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "telegen", "sink", "--listen", self.endpoint, "--interval", "3600",
                "--delay-ms", str(self.delay_ms)]

    def ports(self) -> list[int]:
        return [self.port]


class LimitedCollector(Collector):
    """A Collector with a limited capacity: `with LimitedCollector() as c:`
    runs a SlowSink (c.sink) and a Collector whose pipelines go through a
    memory_limiter to an otlp exporter towards that sink, with no retries
    and a small sending queue (counted in events) whose batcher cuts exports
    of `batch_items` events, sent by `num_consumers` at a time.

    Each signal has its own exporter and queue, so each signal forwards at
    most c.events_per_second, nominally (num_consumers * batch_items per
    delay_ms: 10,000 by default), whatever the sender's batch size; less in
    practice, the sink's own time added to delay_ms. Past that the queue
    fills within `queue_items` events and the receiver refuses each request
    that does not fit, whole: gRPC UNAVAILABLE, HTTP 503, "sending queue is
    full" (a request of more than `queue_items` events is refused at any
    rate: "element size too large").

    Measured on 2 cores, logs alone at 100 a request, over gRPC or HTTP: it
    forwards about 9,300 a second; nothing refused at 9,000/s, 6 % at
    10,000/s, 20 % at 12,000/s, half at 20,000/s, 80 % at 50,000/s. All
    three signals at once (the sink and the sender sharing the CPUs): about
    6,500 spans and 6,000 points a second. Keep 3 * num_consumers within the
    sink's 4 workers.

    The memory_limiter's refusal ("data refused due to high memory usage")
    is answered the same way; the default limiter (1 GiB) never refuses
    here. No batch processor: it answers the receiver before it exports, so
    the receiver would refuse nothing and the queue drop silently."""

    def __init__(self, workdir: Path | None = None, delay_ms: float = 20, num_consumers: int = 1,
                 batch_items: int = 200, queue_items: int = 5000, memory_limiter: dict | None = None) -> None:
        need(COLLECTOR)
        self.sink = SlowSink(delay_ms, workdir)
        self.delay_ms, self.num_consumers, self.batch_items, self.queue_items = (delay_ms, num_consumers,
                                                                                 batch_items, queue_items)
        queue = {"enabled": True, "num_consumers": num_consumers, "sizer": "items", "queue_size": queue_items,
                 "batch": {"min_size": batch_items, "max_size": batch_items, "flush_timeout": "10ms"}}
        exporters = {"otlp": {"endpoint": self.sink.endpoint, "tls": {"insecure": True}, "compression": "none",
                              "timeout": "5s", "sending_queue": queue, "retry_on_failure": {"enabled": False}}}
        limiter = memory_limiter or {"check_interval": "100ms", "limit_mib": 1024, "spike_limit_mib": 256}
        super().__init__(exporters, workdir=self.sink.workdir, processors={"memory_limiter": limiter})

    @property
    def events_per_second(self) -> float:
        """The most events of one signal it forwards per second, nominally."""
        return self.num_consumers * self.batch_items * 1000 / self.delay_ms

    def __enter__(self):
        self.sink.__enter__()
        try:
            return super().__enter__()
        except BaseException:
            self.sink.__exit__(None, None, None)
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            super().__exit__(*exc_info)
        finally:
            self.sink.__exit__(*exc_info)


class Toxiproxy(PeerProcess):
    """toxiproxy (`make faults` builds it): TCP proxies on loopback whose
    links take toxics (latency, bandwidth, reset_peer, timeout, limit_data,
    ...) through its HTTP API while connections are open."""

    name = "toxiproxy"
    start_timeout = 20.0

    def __init__(self, workdir: Path | None = None) -> None:
        if not TOXIPROXY.exists():
            # The fault suite fails, never skips, without it.
            pytest.fail("toxiproxy-server is not built: run `make faults` (it builds it with Go)")
        super().__init__(workdir)
        self.port = free_port()

    def command(self) -> list[str]:
        return [str(TOXIPROXY), "-host", "127.0.0.1", "-port", str(self.port)]

    def ports(self) -> list[int]:
        return [self.port]

    def api(self, method: str, path: str, body: dict | None = None) -> object:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read()
        return json.loads(text) if text.strip() else None

    def proxy(self, name: str, upstream: str) -> str:
        """A new proxy to `upstream`; the address it listens on."""
        listen = f"127.0.0.1:{free_port()}"
        self.api("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True})
        return listen

    def delete(self, name: str) -> None:
        self.api("DELETE", f"/proxies/{name}")

    def add(self, proxy: str, toxic: str, kind: str, stream: str = "downstream", toxicity: float = 1.0,
            **attributes: float) -> None:
        self.api("POST", f"/proxies/{proxy}/toxics", {"name": toxic, "type": kind, "stream": stream,
                                                      "toxicity": toxicity, "attributes": attributes})

    def remove(self, proxy: str, toxic: str) -> None:
        self.api("DELETE", f"/proxies/{proxy}/toxics/{toxic}")


class SinkProcess(PeerProcess):
    """`telegen sink` in its own process, serving gRPC and OTLP/HTTP on free
    loopback ports (fixed for its life, so a restart serves the same ones).
    stop() ends it with SIGTERM and reads what it counted (--stats-json);
    kill() ends it with SIGKILL, which leaves only its --record stream (each
    request is in it before it is answered)."""

    name = "sink"
    start_timeout = 30.0

    def __init__(self, workdir: Path | None = None, grpc_port: int | None = None, http_port: int | None = None,
                 record: Path | None = None, args: tuple[str, ...] = ()) -> None:
        super().__init__(workdir)
        self.grpc_port, self.http_port = grpc_port or free_port(), http_port or free_port()
        self.record, self.args = record, args
        self.stats_path = self.workdir / f"sink-{self.grpc_port}-{time.monotonic_ns()}.json"
        self.stats: dict | None = None

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "telegen", "sink", "--listen", self.grpc_endpoint,
                "--listen-http", self.http_endpoint, "--interval", "3600", "--stats-json", str(self.stats_path),
                *(["--record", str(self.record)] if self.record else []), *self.args]

    def ports(self) -> list[int]:
        return [self.grpc_port, self.http_port]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.stats is None and self.stats_path.exists():
            self.stats = json.loads(self.stats_path.read_text())

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.log.close()

    def events(self) -> dict[str, int]:
        """What it took, per signal (after stop())."""
        assert self.stats is not None, "the sink wrote no --stats-json"
        return {signal: self.stats[signal]["events"] for signal in ("traces", "metrics", "logs")}


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
