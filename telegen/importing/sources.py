"""Capture files -> export requests, recognised by content, not by name.

Framings:
- OTLP JSON lines: one `TracesData` / `MetricsData` / `LogsData` (or export
  request) per line: the Collector file exporter's `format: json`, and
  `telegen generate --json`;
- 4-byte big-endian length, then the message: the file exporter's
  `format: proto`;
- varint length, then the message: telegen's `.pb` streams, `telegen sink
  --record`, SDK captures written with writeDelimitedTo and the like;
and zstd (the file exporter's `compression: zstd`) around any of them: per
message (its default), or the whole file (its `nativeCompression` gate).
A message's signal is read from its wire shape (a span, a metric and a log
record start differently), so one file may mix signals.

Anything cut short or undecodable raises CaptureError naming the file and
the byte offset (or line) where it happened.
"""
from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError, Message

from ..errors import TelegenError
from ..templates import REQUEST_TYPES, otlp_json_message
from ..varint import decode_varint, iter_fields

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# The top-level key of each signal in OTLP JSON (both spellings protobuf's JSON mapping reads).
JSON_KEYS = {"resourceSpans": "traces", "resource_spans": "traces", "resourceMetrics": "metrics",
             "resource_metrics": "metrics", "resourceLogs": "logs", "resource_logs": "logs"}


# In a directory given as a source, files that are never captures (notes, configs).
NOT_CAPTURES = frozenset({".md", ".txt", ".yaml", ".yml", ".log", ".csv", ".png"})


class CaptureError(TelegenError, ValueError):
    """A capture file is missing, truncated, corrupt or not a capture (names the file and where)."""


@dataclass
class Captured:
    """One export request read from a capture."""

    signal: str
    message: Message  # an Export{Trace,Metrics,Logs}ServiceRequest
    where: str  # file and byte offset or line, for messages about it


def expand(sources: Sequence[str]) -> list[Path]:
    """Files named, globs expanded (sorted: rotated sets in order), a
    directory's regular files (sorted; hidden files, notes and configs such
    as metadata.yaml, and the `.part` of a recording still running left out)."""
    files: list[Path] = []
    for source in sources:
        if any(ch in source for ch in "*?["):
            matched = sorted(glob.glob(source))
            if not matched:
                raise CaptureError(f"{source}: no file matches")
            files += [Path(m) for m in matched if os.path.isfile(m)]
        elif os.path.isdir(source):
            inside = sorted(p for p in Path(source).iterdir() if p.is_file() and not p.name.startswith(".")
                            and p.suffix not in NOT_CAPTURES and not p.name.endswith(".part"))
            if not inside:
                raise CaptureError(f"{source}: the directory holds no capture files")
            files += inside
        elif os.path.isfile(source):
            files.append(Path(source))
        else:
            raise CaptureError(f"{source}: no such file or directory")
    return list(dict.fromkeys(files))


def read_capture(path: Path) -> Iterator[Captured]:
    """Every export request in one capture file, in order."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        return
    if data.startswith(ZSTD_MAGIC):
        data = _inflate_frames(data, str(path))
    yield from _messages(data, str(path))


def _messages(data: bytes, name: str) -> Iterator[Captured]:
    first = data.lstrip()[:1]
    if first in (b"{", b"["):
        yield from _json_lines(data, name)
    elif data[:1] == b"\x00":
        yield from _length_prefixed(data, name, big_endian=True)
    else:
        yield from _length_prefixed(data, name, big_endian=False)


def _json_lines(data: bytes, name: str) -> Iterator[Captured]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaptureError(f"{name}: byte offset {exc.start}: not UTF-8 text (an OTLP JSON file was expected "
                           "from its first byte)") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield _json_message(line, f"{name}:{number}")


def _json_message(line: str, where: str) -> Captured:
    try:
        parsed = json.loads(line)
    except ValueError as exc:
        raise CaptureError(f"{where}: not valid JSON ({exc}): a truncated or corrupt line") from None
    signals = {JSON_KEYS[key] for key in parsed if key in JSON_KEYS} if isinstance(parsed, dict) else set()
    if len(signals) != 1:
        raise CaptureError(f"{where}: not an OTLP JSON request: expected one of resourceSpans, "
                           "resourceMetrics or resourceLogs at the top level")
    signal = signals.pop()
    try:
        return Captured(signal, otlp_json_message(signal, parsed, where), where)
    except TelegenError as exc:
        raise CaptureError(str(exc)) from None


def _length_prefixed(data: bytes, name: str, big_endian: bool) -> Iterator[Captured]:
    view = memoryview(data)
    size, pos = len(view), 0
    framing = "4-byte big-endian length" if big_endian else "varint length"
    while pos < size:
        start = pos
        if big_endian:
            if pos + 4 > size:
                raise CaptureError(f"{name}: byte offset {start}: truncated {framing} ({size - pos} bytes left)")
            length, pos = int.from_bytes(view[pos:pos + 4], "big"), pos + 4
        else:
            try:
                length, pos = decode_varint(view, pos)
            except ValueError:
                raise CaptureError(f"{name}: byte offset {start}: truncated {framing}") from None
        if pos + length > size:
            raise CaptureError(f"{name}: byte offset {start}: the record declares {length} bytes but only "
                               f"{size - pos} remain (a truncated file?)")
        payload = bytes(view[pos:pos + length])
        where = f"{name}: byte offset {start}"
        if payload.startswith(ZSTD_MAGIC):
            payload = _inflate_frames(payload, name, base=pos)
        pos += length
        if payload.lstrip()[:1] == b"{":  # the file exporter's JSON, compressed: framed like its proto
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise CaptureError(f"{where}: not UTF-8 JSON inside its frame") from None
            yield _json_message(text, where)
            continue
        signal = detect_signal(payload)
        if signal is None:
            if not payload:
                continue  # an empty request: nothing to import
            raise CaptureError(f"{where}: not an OTLP traces, metrics or logs message ({framing} framing)")
        yield Captured(signal, _parse(signal, payload, where), where)


def _parse(signal: str, payload: bytes, where: str) -> Message:
    message = REQUEST_TYPES[signal]()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise CaptureError(f"{where}: not a valid {signal} message: {exc}") from None
    return message


def _inflate_frames(data: bytes, name: str, base: int = 0) -> bytes:
    """zstd frames, one after another, decompressed. Frames separated by a
    newline are the file exporter's JSON lines compressed one by one: they
    are joined with newlines again."""
    try:
        import zstandard
    except ImportError:
        raise CaptureError(f"{name}: zstd-compressed; reading it needs zstandard: pip install "
                           "'.[zstd]' in telegen's checkout") from None
    parts: list[bytes] = []
    separated = False
    pos = 0
    while pos < len(data):
        if data[pos:pos + 1] == b"\n":
            separated, pos = True, pos + 1
            continue
        if not data.startswith(ZSTD_MAGIC, pos):
            raise CaptureError(f"{name}: byte offset {base + pos}: expected a zstd frame")
        decompressor = zstandard.ZstdDecompressor().decompressobj()
        try:
            parts.append(decompressor.decompress(data[pos:]))
        except zstandard.ZstdError as exc:
            raise CaptureError(f"{name}: byte offset {base + pos}: corrupt zstd frame ({exc})") from None
        if not decompressor.eof:
            raise CaptureError(f"{name}: byte offset {base + pos}: truncated zstd frame")
        pos = len(data) - len(decompressor.unused_data)
    return (b"\n" if separated else b"").join(parts)


# -- which signal: a message's wire shape ------------------------------------------

def detect_signal(payload: bytes) -> str | None:
    """traces, metrics or logs, from the first item's fields; None when the
    message holds no item (or is not OTLP). The three messages nest alike
    (field 1: resource groups, field 2: scope groups, field 2: items), but a
    Span has fixed64 times in fields 7 and 8 and 16/8-byte ids in 1 and 2, a
    Metric a name in 1 and its data in 5, 7, 9, 10 or 11 (length-delimited),
    a LogRecord fixed64 times in 1 and 11 and no field-1 string."""
    item = _first(payload, (1, 2, 2))
    if item is None:
        return None
    fields = _fields(item)
    if fields is None:
        return None
    kinds = {(number, wire) for number, wire, _ in fields}
    lengths = {number: length for number, wire, length in fields if wire == 2}
    if (7, 1) in kinds or (8, 1) in kinds or (lengths.get(1) == 16 and lengths.get(2) == 8):
        return "traces"
    if (1, 2) in kinds and any((number, 2) in kinds for number in (5, 7, 9, 10, 11)):
        return "metrics"
    if kinds & {(1, 1), (11, 1), (2, 0), (3, 2), (5, 2), (6, 2), (8, 5), (9, 2), (10, 2), (12, 2)}:
        return "logs"
    return None


def _first(data: bytes, path: tuple[int, ...]) -> bytes | None:
    """The first length-delimited field reached along `path` (field numbers),
    trying every group on the way (a resource may have no scope, a scope no
    item); only as much of the message is walked as it takes."""
    if not path:
        return data
    for payload in _payloads(data, path[0]):
        found = _first(payload, path[1:])
        if found is not None:
            return found
    return None


def _payloads(data: bytes, want: int) -> Iterator[bytes]:
    """The payloads of field `want` (length-delimited), lazily; stops at the
    first byte that is not protobuf."""
    for field in _walk(data, want):
        if field is None:
            return
        number, wire, value = field
        if number == want and wire == 2:
            yield value


def _fields(data: bytes) -> list | None:
    """(number, wire type, length) of each field; None when `data` is not a
    protobuf message."""
    out = []
    for field in _walk(data, None):
        if field is None:
            return None
        out.append(field)
    return out


def _walk(data: bytes, want: int | None) -> Iterator:
    """(number, wire type, value) per field: a length-delimited field's
    payload when it is field `want`, else its length; None, then the end,
    where the bytes stop being protobuf."""
    view = memoryview(data)
    try:
        for number, wire, start, end in iter_fields(view):
            value: object = None
            if wire == 2:
                value = bytes(view[start:end]) if number == want else end - start
            yield number, wire, value
    except ValueError:
        yield None
