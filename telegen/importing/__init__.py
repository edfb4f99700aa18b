"""Captures -> templates: `telegen import` and `telegen.import_captures`.

    sources    capture files recognised by content (Collector file exports in
               JSON or proto, zstd or not; length-delimited .pb; telegen's --json)
    redact     --redact KEY / --redact-pattern REGEX: same-type keyed-hash stand-ins
    normalize  the template contract: one trace per record, times relative on
               the base, metric series kept whole, placeholders for zeros

Every source is read and checked before anything is written; the template
set is then written atomically (telegen.templates.TemplateSet.save), so a bad
capture leaves the output directory as it was.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .._version import __version__
from ..templates import DEFAULT_PREFIX, SIGNALS, TIME_BASE_NS, TemplateSet
from .normalize import Normalized, Normalizer
from .redact import Redactor
from .sources import Captured, CaptureError, detect_signal, expand, read_capture

__all__ = ["CaptureError", "Captured", "ImportResult", "detect_signal", "import_captures", "read_capture"]


@dataclass
class ImportResult:
    directory: Path
    written: list[Path]
    normalized: Normalized
    metadata: dict


def import_captures(sources: Sequence[str | os.PathLike], output_dir: str | os.PathLike,
                    prefix: str = DEFAULT_PREFIX, redact: Sequence[str] = (),
                    redact_patterns: Sequence[str] = (), json: bool = False) -> ImportResult:
    """Read every capture in `sources` (files, directories, globs), make
    templates of them and write them to `output_dir` as `<prefix>-<signal>.pb`
    with metadata.yaml. Raises CaptureError (naming the file and where) before
    writing anything when a source is missing, cut short or not a capture."""
    if not prefix or "/" in prefix or "\\" in prefix:
        raise CaptureError(f"--prefix: {prefix!r} is invalid: expected a non-empty file-name prefix without "
                           "path separators")
    files = expand([os.fspath(source) for source in sources])
    if not files:
        raise CaptureError("no capture files given")
    redactor = Redactor.build(redact, redact_patterns)
    normalizer = Normalizer()
    described = []
    for path in files:
        per_signal = dict.fromkeys(SIGNALS, 0)
        for captured in read_capture(path):
            redactor.request(captured.signal, captured.message)
            normalizer.add(captured.signal, captured.message)
            per_signal[captured.signal] += 1
        described.append({"path": str(path), "bytes": path.stat().st_size,
                          "requests": {s: n for s, n in per_signal.items() if n}})
    normalized = normalizer.result()
    if not (normalized.traces or normalized.metrics or normalized.logs):
        raise CaptureError(f"{', '.join(str(p) for p in files)}: no spans, metric points or log records in the "
                           "capture")
    metadata = {
        "telegen_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kind": "import",
        "sources": described,
        "counts": normalized.counts,
        "time_base_ns": TIME_BASE_NS,
        "capture_time_range": _time_range(normalized.time_range_ns),
        "placeholders": normalized.placeholders,
        "redactions": {"keys": sorted(redactor.keys), "patterns": [p.pattern for p in redactor.patterns],
                       "replaced": dict(redactor.replaced)},
    }
    templates = TemplateSet(traces=normalized.traces, metrics=normalized.metrics, logs=normalized.logs,
                            metadata=metadata)
    written = templates.save(output_dir, json=json, prefix=prefix)
    return ImportResult(Path(output_dir), written, normalized, metadata)


def _time_range(range_ns: tuple[int, int] | None) -> dict | None:
    if range_ns is None:
        return None
    start, end = range_ns

    def iso(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return {"start": iso(start), "end": iso(end), "seconds": round((end - start) / 1e9, 3)}
