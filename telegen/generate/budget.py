"""How big a generator config's templates will be, estimated before any is
built, so a config whose output cannot fit in this machine's memory is refused
with one line naming the key, instead of a MemoryError (or an attempt to
allocate tens of GB) deep inside numpy."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .config import GeneratorConfig

# Bytes of template per event, and the generator's peak memory per byte of
# templates, measured on the full example config (docs/performance.md:
# 1,149,559 spans, 602,022 series, 50,000 log records in 866 MB of
# templates, peak RSS 1,063 MB), rounded up.
BYTES_PER_SPAN = 420
BYTES_PER_SERIES = 620
BYTES_PER_LOG = 340
PEAK_PER_BYTE = 1.5


@dataclass(frozen=True)
class Estimate:
    spans: float
    series: float
    logs: float

    @property
    def template_bytes(self) -> float:
        return self.spans * BYTES_PER_SPAN + self.series * BYTES_PER_SERIES + self.logs * BYTES_PER_LOG

    @property
    def peak_bytes(self) -> float:
        return self.template_bytes * PEAK_PER_BYTE


def estimate(config: GeneratorConfig) -> Estimate:
    """The events `config` asks for (float: a count from YAML may be huge)."""
    traces = config.traces
    high = traces.spans.high_span_traces
    spans = float(traces.count) * traces.spans.avg_per_trace
    if high.enabled and traces.count:
        spans += float(high.count) * high.span_count
    series = float(config.metrics.metric_count) * config.metrics.timeseries_per_metric.default
    return Estimate(spans=spans, series=series, logs=float(config.logs.count))


def available_memory() -> int | None:
    """Bytes this process may still use: MemAvailable, or the cgroup's limit if lower."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            found.append(int(text))
    if not found and hasattr(os, "sysconf"):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return min(found) if found else None


def check_fits(config: GeneratorConfig, available: int | None = None) -> Estimate:
    """Refuse (ConfigError, exit 2) a config whose generation would need more
    memory than is available, naming the key that asks for the most."""
    guess = estimate(config)
    limit = available_memory() if available is None else available
    if limit is None or guess.peak_bytes <= limit:
        return guess
    traces, high = config.traces, config.traces.spans.high_span_traces
    parts = {
        "traces.count": (float(traces.count) * traces.spans.avg_per_trace * BYTES_PER_SPAN, traces.count),
        "traces.spans.high_span_traces.span_count": (
            float(high.count) * high.span_count * BYTES_PER_SPAN if high.enabled and traces.count else 0.0,
            high.span_count),
        "metrics.metric_count": (guess.series * BYTES_PER_SERIES, config.metrics.metric_count),
        "logs.count": (guess.logs * BYTES_PER_LOG, config.logs.count),
    }
    key, (_, value) = max(parts.items(), key=lambda item: item[1][0])
    raise ConfigError(
        f"{key}: {value!r} is too large: the templates would be about {_human(guess.template_bytes)} "
        f"({guess.spans:,.0f} spans, {guess.series:,.0f} series, {guess.logs:,.0f} log records), and generating "
        f"them needs about {_human(guess.peak_bytes)} of memory where {_human(limit)} is available: expected a "
        f"value that fits (templates are replayed many times over: a smaller set sent with sending.multiplier "
        f"makes the same load)")


def _human(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n / 1e3:,.0f} kB"
