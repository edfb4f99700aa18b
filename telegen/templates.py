"""The on-disk template format: the contract between generator and sender.

Per signal, `<prefix>-<signal>.pb` is a stream of records, each a varint length
followed by one serialized Export{Trace,Metrics,Logs}ServiceRequest (the
standard length-delimited protobuf encoding; exponential histograms that
`telegen import` writes carry their bucket counts as varints padded to 10
bytes, see padded_exponential_metric). `<prefix>-<signal>.json`, when
asked for, holds the same requests as OTLP JSON, one per line. `metadata.yaml`
says what was made, from which config and seed.

Every file is written under a temporary name and renamed into place only when
all of them are complete, so a failed run leaves no partial output.
"""
from __future__ import annotations

import base64
import json as jsonlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor, json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .atomic import AtomicFile, commit_all
from .errors import OutputError, TemplateFileError
from .varint import decode_varint, encode_padded_varint, encode_varint

SIGNALS: tuple[str, ...] = ("traces", "metrics", "logs")
REQUEST_TYPES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}
METADATA_FILE = "metadata.yaml"
# Template times are offsets from a trace's (or record's) start plus this base
# (docs/templates.md): generated and imported templates alike.
TIME_BASE_NS: int = 1_000_000_000_000
DEFAULT_PREFIX = "telemetry"
# Spans per encoded piece of a large trace, generated or imported: bounds the
# memory one protobuf message takes. A longer trace's record is several such
# requests joined byte for byte (which protobuf reads as one).
CHUNK_SPANS = 4096
_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def pb_path(directory: str | os.PathLike, prefix: str, signal: str) -> Path:
    return Path(directory) / f"{prefix}-{signal}.pb"


def json_path(directory: str | os.PathLike, prefix: str, signal: str) -> Path:
    return Path(directory) / f"{prefix}-{signal}.json"


# -- length-delimited record streams ---------------------------------------------


def encode_records(records: Iterable[bytes]) -> Iterator[bytes]:
    for record in records:
        yield encode_varint(len(record))
        yield record


def split_records(data: bytes | memoryview, source: str = "<bytes>") -> Iterator[memoryview]:
    """Yield each record of a length-delimited stream without copying it.

    A truncated or malformed stream raises TemplateFileError naming the
    source and the byte offset where the bad record starts."""
    view = memoryview(data)
    size = len(view)
    pos = 0
    while pos < size:
        start = pos
        try:
            length, pos = decode_varint(view, pos)
        except ValueError:
            raise TemplateFileError(f"{source}: truncated record length at byte offset {start}") from None
        if pos + length > size:
            raise TemplateFileError(
                f"{source}: record at byte offset {start} declares {length} bytes but only {size - pos} remain"
                " (truncated file?)")
        yield view[pos:pos + length]
        pos += length


def read_records(path: str | os.PathLike) -> list[bytes]:
    """Every record of a `.pb` template stream, as bytes."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TemplateFileError(f"template file not found: {path}") from None
    except OSError as exc:
        raise TemplateFileError(f"cannot read template file {path}: {exc.strerror}") from None
    return [bytes(record) for record in split_records(data, str(path))]


def decode_record(signal: str, record: bytes | memoryview, source: str = "<record>") -> Message:
    """Parse one record with the official OTLP classes (for tests and tools,
    never for the send path)."""
    message = REQUEST_TYPES[signal]()
    try:
        message.ParseFromString(bytes(record))
    except DecodeError as exc:
        raise TemplateFileError(f"{source}: not a valid {message.DESCRIPTOR.name}: {exc}") from None
    return message


# -- exponential histograms: bucket counts the send path can grow in place -------


def _len_field(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def _padded_buckets(number: int, buckets: Message) -> bytes:
    body = type(buckets)(offset=buckets.offset).SerializeToString()
    if len(buckets.bucket_counts):
        body += _len_field(2, b"".join(encode_padded_varint(c) for c in buckets.bucket_counts))
    return _len_field(number, body)


def _keeping_fixed64(point: Message, names: frozenset[str]) -> bytes:
    """`point` encoded with the fixed64 fields in `names` on the wire even
    when 0 (protobuf leaves a zero out): where a template had such a field,
    the send path rewrites it in place, and a count that wraps to exactly 0
    stays there as an explicit 0 (the twin must write what the kernel does)."""
    zeros = sorted(point.DESCRIPTOR.fields_by_name[name].number for name in names if not getattr(point, name))
    if not zeros:
        return point.SerializeToString()
    before, rest = type(point)(), type(point)()
    before.CopyFrom(point)
    rest.CopyFrom(point)
    for known, _ in point.ListFields():
        (before if known.number >= zeros[0] else rest).ClearField(known.name)
    head = before.SerializeToString()
    return (head + encode_varint(zeros[0] << 3 | 1) + bytes(8)
            + _keeping_fixed64(rest, frozenset(n for n in names if point.DESCRIPTOR.fields_by_name[n].number
                                               > zeros[0])))


def padded_exponential_metric(metric: Message, kept: list[frozenset[str]] | None = None) -> bytes:
    """A Metric holding an exponential histogram, encoded with every bucket
    count a varint padded to 10 bytes: still protobuf (parsers read
    non-minimal varints), and the send path grows a captured series' buckets
    in place (GROW_VARINT10 in telegen/_plan.pxi). The other fields are
    protobuf's own encoding; the Buckets follow them on the wire, the
    temporality comes before the points, the name, description, unit and
    metadata before the histogram. `kept`, per point: fixed64 fields to
    write even when 0 (see _keeping_fixed64)."""
    data = metric.exponential_histogram
    points = b""
    for index, point in enumerate(data.data_points):
        bare = type(point)()
        bare.CopyFrom(point)
        bare.ClearField("positive")
        bare.ClearField("negative")
        encoded = _keeping_fixed64(bare, kept[index]) if kept else bare.SerializeToString()
        for number, name in ((8, "positive"), (9, "negative")):
            if point.HasField(name):
                encoded += _padded_buckets(number, getattr(point, name))
        points += _len_field(1, encoded)
    histogram = type(data)(aggregation_temporality=data.aggregation_temporality).SerializeToString() + points
    header = type(metric)(name=metric.name, description=metric.description, unit=metric.unit,
                          metadata=metric.metadata).SerializeToString()
    return header + _len_field(10, histogram)


def padded_exponential_request(request: Message) -> bytes:
    """A one-metric request of an exponential histogram, as `telegen import`
    writes it: its metric in the padded layout (padded_exponential_metric)."""
    rm = request.resource_metrics[0]
    sm = rm.scope_metrics[0]
    scope = type(sm)(scope=sm.scope, schema_url=sm.schema_url).SerializeToString()
    resource = type(rm)(resource=rm.resource, schema_url=rm.schema_url).SerializeToString()
    return _len_field(1, resource + _len_field(2, scope + _len_field(2, padded_exponential_metric(sm.metrics[0]))))


def padded_metrics_request(request: Message) -> bytes:
    """Any metrics request with its exponential histograms in the padded
    layout (each ResourceMetrics framed as padded_exponential_request frames
    its one, so a record of such requests joined reads back to the same
    bytes); protobuf's own encoding when it has none."""
    if not any(m.WhichOneof("data") == "exponential_histogram"
               for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics):
        return request.SerializeToString()
    out = []
    for rm in request.resource_metrics:
        body = type(rm)(resource=rm.resource, schema_url=rm.schema_url).SerializeToString()
        for sm in rm.scope_metrics:
            scope = type(sm)(scope=sm.scope, schema_url=sm.schema_url).SerializeToString()
            body += _len_field(2, scope + b"".join(
                _len_field(2, padded_exponential_metric(m) if m.WhichOneof("data") == "exponential_histogram"
                           else m.SerializeToString()) for m in sm.metrics))
        out.append(_len_field(1, body))
    return b"".join(out)


# -- OTLP JSON -------------------------------------------------------------------


def _convert_ids(node: Any, convert: Callable[[str], str]) -> None:
    """Rewrite every trace/span id string in an OTLP JSON tree in place.

    OTLP JSON writes ids as hex where protobuf's JSON mapping writes base64;
    every other bytes field stays base64. Attribute, body, resource and scope
    subtrees hold no ids and are skipped."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = convert(value)
            elif isinstance(value, (dict, list)) and key not in ("attributes", "body", "resource", "scope"):
                _convert_ids(value, convert)
    elif isinstance(node, list):
        for item in node:
            _convert_ids(item, convert)


def _base64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def _hex_to_base64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode()


# The repeated fields that nest request -> resource -> scope -> item.
NESTING: dict[str, tuple[str, str, str]] = {
    "traces": ("resource_spans", "scope_spans", "spans"),
    "metrics": ("resource_metrics", "scope_metrics", "metrics"),
    "logs": ("resource_logs", "scope_logs", "log_records"),
}


def _message_json(message: Message) -> str:
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    _convert_ids(data, _base64_to_hex)
    return jsonlib.dumps(data, separators=(",", ":"))


def _without(message: Message, name: str) -> Message:
    """A copy of `message` lacking field `name`, built without copying it."""
    shell = type(message)()
    for fd, value in message.ListFields():
        if fd.name == name:
            continue
        if fd.is_repeated:
            getattr(shell, fd.name).extend(value)
        elif fd.message_type:
            getattr(shell, fd.name).CopyFrom(value)
        else:
            setattr(shell, fd.name, value)
    return shell


def _json_fragments(message: Message, nesting: tuple[str, ...]) -> Iterator[str]:
    """OTLP JSON of `message`, streamed: the repeated fields in `nesting` are
    written element by element, so a 100,000-span trace never becomes one
    giant dict in memory."""
    if not nesting:
        yield _message_json(message)
        return
    name = nesting[0]
    head = _message_json(_without(message, name))
    yield head[:-1] + ("," if head != "{}" else "") + f'"{message.DESCRIPTOR.fields_by_name[name].json_name}":['
    for k, item in enumerate(getattr(message, name)):
        if k:
            yield ","
        yield from _json_fragments(item, nesting[1:])
    yield "]}"


def to_otlp_json(signal: str, record: bytes | memoryview) -> str:
    """One request as OTLP JSON (lowerCamelCase names, hex ids, enums as
    integers, 64-bit integers as strings), on a single line."""
    return "".join(_json_fragments(decode_record(signal, record), NESTING[signal]))


def from_otlp_json(signal: str, line: str, source: str = "<json>") -> bytes:
    """One OTLP JSON request back to serialized protobuf."""
    try:
        data = jsonlib.loads(line)
    except ValueError as exc:
        raise TemplateFileError(f"{source}: not a valid OTLP JSON {signal} request: {exc}") from None
    message = otlp_json_message(signal, data, source)
    # Exponential histograms go back to the padded layout the .pb holds.
    return padded_metrics_request(message) if signal == "metrics" else message.SerializeToString()


def otlp_json_message(signal: str, data: Any, source: str = "<json>") -> Message:
    """One OTLP JSON request, parsed already (a dict; it may be changed in
    place), as the official message. The OTLP mapping is converted straight
    into the message's constructor (7-8x protobuf's json_format, byte-identical
    on valid input, tested); anything it does not take goes through
    json_format, whose error message is the one reported."""
    cls = REQUEST_TYPES[signal]
    try:
        return cls(**_json_fields(data, cls.DESCRIPTOR))
    except (ValueError, TypeError, KeyError, AttributeError):
        pass
    try:
        _convert_ids(data, _hex_to_base64)
        return json_format.ParseDict(data, cls())
    except (ValueError, json_format.ParseError) as exc:
        raise TemplateFileError(f"{source}: not a valid OTLP JSON {signal} request: {exc}") from None


_FD = descriptor.FieldDescriptor
_INT_TYPES = frozenset({_FD.TYPE_INT64, _FD.TYPE_UINT64, _FD.TYPE_FIXED64, _FD.TYPE_SFIXED64, _FD.TYPE_SINT64})
_FLOAT_TYPES = frozenset({_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT})
_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})
# Per message descriptor: JSON key (lowerCamel or proto name) -> (field name, kind, message type, repeated, enum type).
_JSON_PLANS: dict[Any, dict[str, tuple[str, str, Any, bool, Any]]] = {}


def _json_plan(desc: Any) -> dict[str, tuple[str, str, Any, bool, Any]]:
    plan = _JSON_PLANS.get(desc)
    if plan is None:
        plan = {}
        for f in desc.fields:
            if f.type == _FD.TYPE_MESSAGE:
                kind = "message"
            elif f.type == _FD.TYPE_BYTES:
                kind = "hex" if f.name in _ID_FIELDS else "base64"  # OTLP JSON writes ids as hex
            elif f.type in _INT_TYPES:
                kind = "int"  # 64-bit integers are JSON strings
            elif f.type in _FLOAT_TYPES:
                kind = "float"  # "NaN", "Infinity" are strings
            elif f.type == _FD.TYPE_ENUM:
                kind = "enum"
            else:
                kind = "plain"
            plan[f.json_name] = plan[f.name] = (f.name, kind, f.message_type, f.is_repeated, f.enum_type)
        _JSON_PLANS[desc] = plan
    return plan


def _json_float(value: Any) -> float:
    return float(value) if isinstance(value, str) else value


def _json_fields(node: dict, desc: Any) -> dict[str, Any]:
    """An OTLP JSON object as constructor arguments of its message (KeyError
    for a key the message does not have)."""
    plan = _json_plan(desc)
    out: dict[str, Any] = {}
    for key, value in node.items():
        name, kind, child, repeated, enum = plan[key]
        if value is None:
            continue
        if kind == "message":
            out[name] = [_json_fields(v, child) for v in value] if repeated else _json_fields(value, child)
        elif kind == "int":
            out[name] = [int(v) for v in value] if repeated else int(value)
        elif kind == "hex":
            out[name] = bytes.fromhex(value)
        elif kind == "base64":
            out[name] = [base64.b64decode(v) for v in value] if repeated else base64.b64decode(value)
        elif kind == "float":
            out[name] = [_json_float(v) for v in value] if repeated else _json_float(value)
        elif kind == "enum":
            out[name] = value if isinstance(value, int) else enum.values_by_name[value].number
        else:
            out[name] = value
    return out


def read_json_records(path: str | os.PathLike, signal: str) -> list[bytes]:
    """Records of an OTLP JSON file (one request per line), serialized."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise TemplateFileError(f"template file not found: {path}") from None
    return [from_otlp_json(signal, line, f"{path}:{n}") for n, line in enumerate(lines, 1) if line.strip()]


# -- a whole template set --------------------------------------------------------


@dataclass
class TemplateSet:
    """Serialized templates per signal plus what describes them."""

    traces: list[bytes] = field(default_factory=list)
    metrics: list[bytes] = field(default_factory=list)
    logs: list[bytes] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def records(self, signal: str) -> list[bytes]:
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; expected one of {', '.join(SIGNALS)}")
        return getattr(self, signal)

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.metadata.get("counts", {}))

    def save(self, directory: str | os.PathLike, json: bool = False, prefix: str | None = None) -> list[Path]:
        """Write the `.pb` streams (and OTLP JSON with json=True) plus
        metadata.yaml into `directory`, atomically. Returns the paths written.
        Signals with no records get no file."""
        prefix = prefix or self.metadata.get("prefix") or DEFAULT_PREFIX
        directory = check_writable(directory)
        files: dict[Path, Iterable[bytes]] = {}
        for signal in SIGNALS:
            records = self.records(signal)
            if not records:
                continue
            files[pb_path(directory, prefix, signal)] = encode_records(records)
            if json:
                files[json_path(directory, prefix, signal)] = _json_lines(signal, records)
        metadata = dict(self.metadata, prefix=prefix, files={
            signal: pb_path(directory, prefix, signal).name for signal in SIGNALS if self.records(signal)})
        files[directory / METADATA_FILE] = [yaml.safe_dump(metadata, sort_keys=False).encode()]
        _write_atomically(directory, files)
        return list(files)

    @classmethod
    def load(cls, directory: str | os.PathLike, prefix: str | None = None) -> TemplateSet:
        return load(directory, prefix)


def _json_lines(signal: str, records: list[bytes]) -> Iterator[bytes]:
    for record in records:
        for fragment in _json_fragments(decode_record(signal, record), NESTING[signal]):
            yield fragment.encode()
        yield b"\n"


def check_writable(directory: str | os.PathLike) -> Path:
    """Create `directory` if needed and prove a file can be made in it, so a
    long generation never ends in a write error."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".telegen-probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"output directory {str(directory)!r} is not writable: {exc.strerror or exc}") from None
    return directory


def _write_atomically(directory: Path, files: dict[Path, Iterable[bytes]]) -> None:
    """The set's files, all written and synced before any takes its name."""
    opened: list[AtomicFile] = []
    try:
        for final, chunks in files.items():
            opened.append(AtomicFile(final))
            opened[-1].writelines(chunks)
        commit_all(opened)
    except OSError as exc:
        for f in opened:
            f.discard()
        where = f" ({Path(exc.filename).name})" if exc.filename else ""
        raise OutputError(f"cannot write templates to {str(directory)!r}{where}: {exc.strerror or exc}") from None
    except BaseException:
        for f in opened:
            f.discard()
        raise


def load(directory: str | os.PathLike, prefix: str | None = None) -> TemplateSet:
    """Read a template directory written by TemplateSet.save (or by another
    tool in the same layout). The prefix comes from metadata.yaml when there is
    one, else `telemetry`. A missing signal file means no templates of it."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TemplateFileError(f"template directory not found: {directory}")
    metadata: dict[str, Any] = {}
    meta_file = directory / METADATA_FILE
    if meta_file.exists():
        try:
            metadata = yaml.safe_load(meta_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TemplateFileError(f"{meta_file}: not valid YAML: {exc}") from None
    prefix = prefix or metadata.get("prefix") or DEFAULT_PREFIX
    loaded = {}
    for signal in SIGNALS:
        path = pb_path(directory, prefix, signal)
        loaded[signal] = read_records(path) if path.exists() else []
    if not any(loaded.values()):
        raise TemplateFileError(f"no template files ({prefix}-traces.pb, {prefix}-metrics.pb, "
                                f"{prefix}-logs.pb) in {directory}")
    return TemplateSet(metadata=metadata, **loaded)
