"""Prometheus self-metrics: what a running sender has done, for any Prometheus
to scrape (`telegen send --metrics-port [HOST:]PORT`), so a fleet is watched
with the monitoring people already run.

Read on each scrape from the run's own counters (the same shared memory the
progress lines read, every worker process summed): per signal the events
sent, delivered, failed and rejected, requests, bytes, retries, the export
latency histograms (per request and per batch), and the target rate.
Needs the `metrics` extra (prometheus-client).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from ...errors import TelegenError
from . import SendReport
from .latency import GROWTH, Histogram

# Prometheus buckets (seconds) the fine log buckets are summed into.
BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                                10.0, 30.0)
COUNTED = ("sent", "delivered", "failed", "rejected", "requests", "bytes", "retries")
_HELP = {
    "sent": "Events handed to the transport (spans, data points, log records)",
    "delivered": "Events the endpoint accepted",
    "failed": "Events that failed after their retries",
    "rejected": "Events the endpoint refused by partial success",
    "requests": "Export requests sent (first attempts)",
    "bytes": "Request body bytes handed to the transport",
    "retries": "Request attempts that were retried",
}


def prometheus_buckets(histogram: Histogram) -> tuple[list[tuple[str, float]], float]:
    """Cumulative (le, count) pairs for BUCKETS_S and +Inf, and the sum in
    seconds; a fine bucket counts under the first bound at or above its top
    (so within 1 % of the bound)."""
    counts = histogram.counts
    tops = [GROWTH ** k / 1e6 for k in range(len(counts))]
    out: list[tuple[str, float]] = []
    k = 0
    running = 0
    for bound in BUCKETS_S:
        while k < len(counts) and tops[k] <= bound * 1.0000001:
            running += int(counts[k])
            k += 1
        out.append((repr(bound), float(running)))
    out.append(("+Inf", float(histogram.count)))
    middles = [(GROWTH ** (i - 0.5)) / 1e6 if i else 0.5e-6 for i in range(len(counts))]
    total = float(sum(int(n) * m for n, m in zip(counts, middles) if n))
    return out, total


class _Collector:
    def __init__(self) -> None:
        self.current: Callable[[], SendReport] | None = None  # set once sending starts

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        if self.current is None:
            return
        report = self.current()
        for name in COUNTED:
            family = CounterMetricFamily(f"telegen_{name if name != 'bytes' else 'sent_bytes'}", _HELP[name],
                                         labels=["signal"])
            for signal, s in report.signals.items():
                family.add_metric([signal], getattr(s, name))
            yield family
        for kind, help_text in (("request", "Export request latency, each attempt to its answer"),
                                ("batch", "Batch latency, handed over to outcome, retries included")):
            family = HistogramMetricFamily(f"telegen_{kind}_latency_seconds", help_text, labels=["signal"])
            for signal, s in report.signals.items():
                buckets, total = prometheus_buckets(s.latency[kind])
                family.add_metric([signal], buckets, total)
            yield family
        rate = GaugeMetricFamily("telegen_target_events_per_second",
                                 "The rate this sender aims at now (a ramp's current target; 0: unthrottled)")
        rate.add_metric([], report.target_events_per_second)
        yield rate
        elapsed = GaugeMetricFamily("telegen_elapsed_seconds", "Seconds since sending started")
        elapsed.add_metric([], report.elapsed)
        yield elapsed


class MetricsServer:
    """Serves Prometheus text on http://HOST:PORT/metrics for one run: `start`
    binds (before loading, so a busy port fails fast), `attach` gets the
    run's counts once sending starts (engine.run's on_start), `stop` ends it.
    A PORT alone listens on 127.0.0.1; give 0.0.0.0:PORT to be scraped from
    other hosts (as in a Kubernetes pod)."""

    def __init__(self, address: str) -> None:
        host, sep, port = address.rpartition(":")
        if not port.isdigit() or int(port) > 65535:
            raise TelegenError(f"--metrics-port: {address!r} is invalid: expected PORT or HOST:PORT")
        self.host = host if sep and host else "127.0.0.1"
        self.port = int(port)
        self._server = None
        self._collector = _Collector()

    def attach(self, current: Callable[[], SendReport]) -> None:
        self._collector.current = current

    def start(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise TelegenError("--metrics-port needs prometheus-client: pip install prometheus-client, or the "
                               "metrics extra: pip install '.[metrics]' in telegen's checkout") from None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._collector)
        try:
            self._server, _ = start_http_server(self.port, addr=self.host, registry=registry)
        except OSError as exc:
            raise TelegenError(f"--metrics-port: cannot listen on {self.host}:{self.port}: "
                               f"{exc.strerror or exc}") from None
        self.port = self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
