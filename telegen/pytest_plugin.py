"""telegen's pytest plugin (loaded by the `pytest11` entry point once telegen
is installed): fixtures for a test harness that checks a backend under load.
pytest is no dependency of telegen: the `pytest` extra (`pip install '.[pytest]'`) brings it,
and nothing but pytest loads this module (`import telegen` does not).

    def test_my_backend(telegen_sink, telegen_send):
        report = telegen_send(telegen_sink, seconds=2)
        received = telegen_sink.stats().signals()
        assert all(s.delivered == received[name].events for name, s in report.signals.items())

- `telegen_sink`: a running `telegen.Sink` (gRPC and OTLP/HTTP on free
  loopback ports, fresh counts per test): `.endpoint`, `.http_endpoint`,
  `.stats()`.
- `telegen_templates`: a small generated template set, made once per session
  in a temporary directory (`.directory`, `.counts`); override the
  `telegen_generator_config` fixture to change what is generated.
- `telegen_send`: sends those templates to an endpoint for a bounded time and
  returns the run's `SendReport` (counts, latency histograms).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .generate.config import (
    GeneratorConfig,
    HighSpanTracesConfig,
    LogsConfig,
    MetricsConfig,
    SpansConfig,
    TimeseriesPerMetricConfig,
    TracesConfig,
)
from .send.report import SendReport
from .sink import Sink
from .templates import TemplateSet


@dataclass(frozen=True)
class GeneratedTemplates:
    """A generated template set saved in `directory` (a `telegen generate` output)."""

    directory: Path
    templates: TemplateSet

    @property
    def counts(self) -> dict[str, int]:
        return self.templates.counts


@pytest.fixture(scope="session")
def telegen_generator_config() -> GeneratorConfig:
    """What `telegen_templates` generates: small (well under a second), every
    signal. Override this fixture in a conftest.py to generate something else."""
    return GeneratorConfig(
        seed=1,
        traces=TracesConfig(count=50, spans=SpansConfig(high_span_traces=HighSpanTracesConfig(enabled=False))),
        metrics=MetricsConfig(metric_count=20, timeseries_per_metric=TimeseriesPerMetricConfig(min=2, max=10,
                                                                                               default=5)),
        logs=LogsConfig(count=200),
    )


@pytest.fixture(scope="session")
def telegen_templates(telegen_generator_config: GeneratorConfig,
                      tmp_path_factory: pytest.TempPathFactory) -> GeneratedTemplates:
    from . import generate

    directory = tmp_path_factory.mktemp("telegen-templates")
    templates = generate(telegen_generator_config)
    templates.save(directory)
    return GeneratedTemplates(directory=directory, templates=templates)


@pytest.fixture
def telegen_sink() -> Iterator[Sink]:
    with Sink(listen="127.0.0.1:0", listen_http="127.0.0.1:0") as sink:
        yield sink


@pytest.fixture
def telegen_send(telegen_templates: GeneratedTemplates) -> Callable[..., SendReport]:
    """send(target, seconds=2.0, rate=0, protocol="grpc", **config) -> SendReport.

    `target`: a Sink (its gRPC or HTTP endpoint, by `protocol`) or an endpoint
    string (gRPC host:port, or an OTLP/HTTP base URL); plaintext unless
    `config` says otherwise. `rate`: events per second, 0 as fast as it goes.
    `config`: more sender config, merged over these settings (e.g.
    `otlp={"headers": {...}, "insecure": False}`, or
    `sending={"stages": [...]}`, which then sets the rate and the length)."""
    from .send.sender import Sender

    def send(target: Sink | str, seconds: float = 2.0, rate: float = 0, protocol: str = "grpc",
             **config: Any) -> SendReport:
        if isinstance(target, Sink):
            endpoint = target.http_endpoint if protocol != "grpc" else target.endpoint
        else:
            endpoint = target
        data: dict[str, Any] = {
            "input": {"directory": str(telegen_templates.directory)},
            "otlp": {"endpoint": endpoint, "insecure": True,
                     "protocol": "http/protobuf" if protocol in ("http", "http/protobuf") else protocol},
            "sending": {"duration": seconds, "rate_limit": {"events_per_second": rate}, "stats_interval": 3600},
        }
        if "stages" in config.get("sending", {}):
            del data["sending"]["duration"], data["sending"]["rate_limit"]
        for section, values in config.items():
            data[section] = {**data.get(section, {}), **values}
        return Sender(data, write=lambda line: None).run()

    return send
