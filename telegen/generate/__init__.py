"""generate(): config -> TemplateSet. Pure Python + numpy; never imports the sender."""
from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from .._version import __version__
from ..templates import TemplateSet
from .application_metrics import generate_application_metrics
from .base import TIME_BASE_NS, signal_rng
from .budget import check_fits
from .config import GeneratorConfig
from .logs import generate_logs
from .metrics import generate_metrics
from .traces import generate_traces

__all__ = ["generate", "TIME_BASE_NS"]


def _as_config(config: GeneratorConfig | Mapping[str, Any] | str | os.PathLike | None) -> GeneratorConfig:
    if config is None:
        return GeneratorConfig()
    if isinstance(config, GeneratorConfig):
        return config
    return GeneratorConfig.load(config)


def generate(config: GeneratorConfig | Mapping[str, Any] | str | os.PathLike | None = None,
             seed: int | None = None) -> TemplateSet:
    """Build every signal's templates from `config` (an object, a dict, a YAML
    string or a path; defaults when None). `seed` overrides config.seed; with
    neither, a random seed is drawn and recorded in the metadata, so any run
    can be repeated byte for byte."""
    config = _as_config(config)
    check_fits(config)
    if seed is None:
        seed = config.seed if config.seed is not None else secrets.randbits(63)
    config = replace(config, seed=seed)
    seconds: dict[str, float] = {}
    # Traces first: logs and the application metrics name their spans (the
    # span index), so those follow the traces; host and k8s metrics do not.
    started = time.perf_counter()
    traces = generate_traces(config, signal_rng(seed, "traces"))
    seconds["traces"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    metrics = generate_metrics(config, signal_rng(seed, "metrics"))
    application = generate_application_metrics(config, traces.spans, signal_rng(seed, "application_metrics"))
    metrics.records += application.records
    metrics.counts = {
        "metrics": metrics.counts["metrics"] + application.counts["application_metrics"],
        "series": metrics.counts["series"] + application.counts["application_series"],
        **application.counts,
    }
    seconds["metrics"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    logs = generate_logs(config, signal_rng(seed, "logs"), traces.spans)
    seconds["logs"] = round(time.perf_counter() - started, 3)
    counts = {**traces.counts, **metrics.counts, **logs.counts}
    metadata = {
        "telegen_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": seed,
        "prefix": config.output.prefix,
        "semantic_conventions": config.semantic_conventions,
        "time_base_ns": TIME_BASE_NS,
        "counts": counts,
        "generation_seconds": seconds,
        "config": config.to_dict(),
    }
    return TemplateSet(traces=traces.records, metrics=metrics.records, logs=logs.records, metadata=metadata)
