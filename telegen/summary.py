"""`telegen inspect DIR`: what a template directory holds, decoded with the
official OTLP classes, and one sample trace drawn as a tree."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .templates import SIGNALS, TemplateSet, decode_record, load, pb_path

KIND_NAMES = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _size(path: Path) -> str:
    n = path.stat().st_size
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def _trace_lines(templates: TemplateSet, source: str = "<traces>") -> list[str]:
    total = 0
    largest = 0
    for index, record in enumerate(templates.traces):
        request = decode_record("traces", record, f"{source} record {index}")
        n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        total += n
        largest = max(largest, n)
    return [f"{len(templates.traces)} traces, {total} spans (largest trace {largest} spans)"]


def _metric_lines(templates: TemplateSet, source: str = "<metrics>") -> list[str]:
    kinds: Counter[str] = Counter()
    series = points = 0
    for index, record in enumerate(templates.metrics):
        request = decode_record("metrics", record, f"{source} record {index}")
        metrics = [m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
        if not metrics:
            continue
        kind = metrics[0].WhichOneof("data") or "none"
        if kind == "sum":
            kind = "counter" if metrics[0].sum.is_monotonic else "updowncounter"
        kinds[kind] += 1
        for m in metrics:
            if m.WhichOneof("data"):
                data_points = getattr(m, m.WhichOneof("data")).data_points
                points += len(data_points)
                # A series is an attribute set: imported captures keep several points of one.
                series += len({tuple(kv.SerializeToString() for kv in p.attributes) for p in data_points})
    mix = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    more = f" ({points} data points)" if points != series else ""
    return [f"{len(templates.metrics)} metrics ({mix}), {series} time series{more}"]


def _log_lines(templates: TemplateSet, source: str = "<logs>") -> list[str]:
    severities: Counter[str] = Counter()
    for index, record in enumerate(templates.logs):
        request = decode_record("logs", record, f"{source} record {index}")
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for log in sl.log_records:
                    severities[log.severity_text or "UNSET"] += 1
    total = sum(severities.values())
    mix = ", ".join(f"{s} {c}" for s, c in sorted(severities.items()))
    return [f"{total} log records (severity: {mix})"]


def sample_trace(templates: TemplateSet, max_spans: int = 25, source: str = "<traces>") -> list[str]:
    """The smallest multi-span trace among the first few, as an indented tree."""
    spans: list = []
    for index, record in enumerate(templates.traces[:200]):
        request = decode_record("traces", record, f"{source} record {index}")
        found: list = []
        for rs in request.resource_spans:
            service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "?")
            for ss in rs.scope_spans:
                found.extend((service, span) for span in ss.spans)
        if not spans or 8 <= len(found) <= max_spans:
            spans = found
        if 8 <= len(spans) <= max_spans and len({service for service, _ in spans}) > 2:
            break
    if not spans:
        return []
    children: dict[bytes, list] = {}
    roots = []
    for service, span in spans:
        if span.parent_span_id:
            children.setdefault(span.parent_span_id, []).append((service, span))
        else:
            roots.append((service, span))
    lines = [f"Sample trace ({len(spans)} spans; times are offsets from the trace start):"]

    def walk(node: tuple, depth: int, t0: int) -> None:
        if len(lines) > max_spans:
            return
        service, span = node
        start_ms = (span.start_time_unix_nano - t0) / 1e6
        dur_ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
        error = "  ERROR" if span.status.code == 2 else ""
        lines.append(f"  {'  ' * depth}{span.name}  [{service}, {KIND_NAMES.get(span.kind, span.kind)}]"
                     f"  +{start_ms:.2f} ms, {dur_ms:.2f} ms{error}")
        for child in sorted(children.get(span.span_id, []), key=lambda c: c[1].start_time_unix_nano):
            walk(child, depth + 1, t0)

    for root in roots:
        walk(root, 0, root[1].start_time_unix_nano)
    if len(spans) > max_spans:
        lines.append(f"  ... ({len(spans) - max_spans} more spans)")
    return lines


def describe(directory: str | os.PathLike) -> str:
    templates = load(directory)
    meta = templates.metadata
    prefix = meta.get("prefix", "telemetry")
    origin = (f"imported from {len(meta.get('sources', []))} capture file(s)" if meta.get("kind") == "import"
              else f"seed {meta.get('seed')}")
    out = [f"Templates in {directory}" + (
        f" (telegen {meta.get('telegen_version')}, {origin}, made {meta.get('created')})" if meta else "")]
    describers = {"traces": _trace_lines, "metrics": _metric_lines, "logs": _log_lines}
    for signal in SIGNALS:
        path = pb_path(directory, prefix, signal)
        if not templates.records(signal):
            out.append(f"  {signal:8s} (none)")
            continue
        for line in describers[signal](templates, str(path)):
            out.append(f"  {signal:8s} {path.name} ({_size(path)}): {line}")
    out.extend(sample_trace(templates, source=str(pb_path(directory, prefix, "traces"))))
    return "\n".join(out)
