"""A test harness for a backend under load, with telegen's pytest fixtures
(installed with telegen: no conftest needed; pytest with the `pytest` extra).

    pip install '.[pytest]'
    pytest examples/test_my_backend.py          # or python -m pytest, here or anywhere

Here the backend is telegen's own sink, slowed down a little; point
`telegen_send` at your collector or backend instead (an endpoint string, and
`otlp={...}` for headers and TLS), and read what it received from its own API.
"""
import telegen
from telegen.sink import SinkFaults


def test_everything_sent_is_received(telegen_sink, telegen_send):
    report = telegen_send(telegen_sink, seconds=2, rate=50_000)
    received = telegen_sink.stats().signals()
    for name, sent in report.signals.items():
        assert sent.failed == sent.rejected == 0, name
        assert sent.delivered == received[name].events > 0, name


def test_latency_budget_over_otlp_http(telegen_send):
    with telegen.Sink(listen_http="127.0.0.1:0", faults=SinkFaults(delay_ms=5)) as backend:
        report = telegen_send(backend, seconds=2, protocol="http", otlp={"compression": "gzip"})
    for name, sent in report.signals.items():
        latency = sent.latency["request"]
        assert latency.count > 0, name
        assert latency.quantile(0.99) < 0.5, f"{name}: p99 {latency.quantile(0.99) * 1e3:.0f} ms is over budget"
