"""The on-disk format: .pb streams, OTLP JSON, metadata, atomic writes, reading back."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import decode_logs, decode_metrics, decode_traces, small_config

import telegen
from telegen.errors import OutputError, TemplateFileError
from telegen.templates import (
    from_otlp_json,
    read_json_records,
    read_records,
    split_records,
    to_otlp_json,
)
from telegen.varint import encode_varint

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from conftest import small_config
    templates = telegen.generate(small_config())
    directory = tmp_path_factory.mktemp("templates")
    paths = templates.save(directory, json=True)
    return templates, directory, paths


def test_save_writes_streams_json_and_metadata(generated):
    templates, directory, paths = generated
    names = sorted(p.name for p in paths)
    assert names == sorted(["telemetry-traces.pb", "telemetry-metrics.pb", "telemetry-logs.pb",
                            "telemetry-traces.json", "telemetry-metrics.json", "telemetry-logs.json",
                            "metadata.yaml"])
    assert not list(directory.glob(".*")), "no temporary files left behind"


def test_pb_streams_round_trip(generated):
    templates, directory, _ = generated
    for signal in ("traces", "metrics", "logs"):
        records = read_records(directory / f"telemetry-{signal}.pb")
        assert records == templates.records(signal)
    loaded = telegen.load(directory)
    assert loaded.traces == templates.traces
    assert loaded.metrics == templates.metrics
    assert loaded.logs == templates.logs
    assert loaded.metadata["seed"] == 1234


def test_records_decode_with_official_classes(generated):
    templates, _, _ = generated
    assert all(decode_traces(r).resource_spans for r in templates.traces)
    assert all(decode_metrics(r).resource_metrics for r in templates.metrics)
    assert all(decode_logs(r).resource_logs for r in templates.logs)


def test_metadata(generated):
    templates, directory, _ = generated
    meta = yaml.safe_load((directory / "metadata.yaml").read_text())
    assert meta["telegen_version"] == telegen.__version__
    assert meta["seed"] == 1234
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", meta["created"])
    counts = meta["counts"]
    assert counts["traces"] == len(templates.traces) == 60
    assert counts["spans"] == sum(
        len(ss.spans) for r in templates.traces for rs in decode_traces(r).resource_spans for ss in rs.scope_spans)
    # The 20 configured metrics and the RED metrics of the traces' services.
    assert counts["application_metrics"] >= 2
    assert counts["metrics"] == len(templates.metrics) == 20 + counts["application_metrics"]
    assert counts["series"] > 0 and counts["logs"] == 300
    assert meta["config"]["traces"]["count"] == 60
    assert meta["files"] == {"traces": "telemetry-traces.pb", "metrics": "telemetry-metrics.pb",
                             "logs": "telemetry-logs.pb"}
    assert telegen.GeneratorConfig.from_dict(meta["config"]).traces.count == 60


def test_json_is_otlp_json(generated):
    templates, directory, _ = generated
    lines = (directory / "telemetry-traces.json").read_text().splitlines()
    assert len(lines) == len(templates.traces)
    request = json.loads(lines[0])
    span = request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert HEX32.match(span["traceId"]) and HEX16.match(span["spanId"])
    assert isinstance(span["startTimeUnixNano"], str) and span["startTimeUnixNano"].isdigit()
    assert isinstance(span["kind"], int)
    assert "start_time_unix_nano" not in span
    children = [s for rs in request["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]
                if "parentSpanId" in s]
    assert all(HEX16.match(s["parentSpanId"]) for s in children)
    logs = json.loads((directory / "telemetry-logs.json").read_text().splitlines()[0])
    record = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert isinstance(record["timeUnixNano"], str)
    if "traceId" in record:
        assert HEX32.match(record["traceId"])


def test_json_round_trips_to_the_same_protobuf(generated):
    templates, directory, _ = generated
    for signal in ("traces", "metrics", "logs"):
        assert read_json_records(directory / f"telemetry-{signal}.json", signal) == templates.records(signal)
    record = templates.traces[0]
    assert from_otlp_json("traces", to_otlp_json("traces", record)) == record


def test_truncated_stream_names_file_and_offset(tmp_path):
    good = b"".join(encode_varint(len(r)) + r for r in (b"\x0a\x00", b"\x0a\x00"))
    path = tmp_path / "bad-traces.pb"
    path.write_bytes(good + encode_varint(100) + b"\x0a\x00")
    with pytest.raises(TemplateFileError, match=rf"bad-traces\.pb: record at byte offset {len(good)} declares 100 bytes"):
        read_records(path)
    path.write_bytes(good + b"\xff")
    with pytest.raises(TemplateFileError, match=rf"truncated record length at byte offset {len(good)}"):
        read_records(path)
    assert [bytes(r) for r in split_records(good)] == [b"\x0a\x00", b"\x0a\x00"]


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(TemplateFileError, match="template file not found"):
        read_records(tmp_path / "nope.pb")
    with pytest.raises(TemplateFileError, match="template directory not found"):
        telegen.load(tmp_path / "missing")
    with pytest.raises(TemplateFileError, match="no template files"):
        telegen.load(tmp_path)


def test_unwritable_output_leaves_nothing(tmp_path, generated):
    templates, _, _ = generated
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError, match="not writable"):
        templates.save(blocker / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_empty_signals_write_no_file(tmp_path):
    from dataclasses import replace

    from conftest import small_config

    from telegen.generate.config import LogsConfig
    templates = telegen.generate(replace(small_config(), logs=LogsConfig(count=0)))
    names = {p.name for p in templates.save(tmp_path)}
    assert "telemetry-logs.pb" not in names and "telemetry-traces.pb" in names
    assert telegen.load(tmp_path).logs == []


def test_the_fast_otlp_json_path_matches_protobufs_json_format(tmp_path):
    """otlp_json_message converts OTLP JSON straight into the constructors;
    protobuf's json_format is the reference, byte for byte: generated
    templates of every signal, the Collector's JSON export, and the awkward
    values (NaN and infinities, uint64 above 2**63, enum names, bytes, nested
    arrays and maps)."""
    import copy
    import json as jsonlib

    from google.protobuf import json_format

    from telegen.templates import REQUEST_TYPES, _convert_ids, _hex_to_base64, otlp_json_message, to_otlp_json

    def reference(signal, data):
        data = copy.deepcopy(data)
        _convert_ids(data, _hex_to_base64)
        return json_format.ParseDict(data, REQUEST_TYPES[signal]()).SerializeToString()

    generated = telegen.generate(small_config())
    lines = {s: [to_otlp_json(s, r) for r in generated.records(s)[:50]] for s in ("traces", "metrics", "logs")}
    fixtures = Path(__file__).parent / "fixtures" / "collector"
    for signal in lines:
        lines[signal] += (fixtures / f"{signal}.json").read_text().splitlines()
    odd = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "a", "value": {"arrayValue": {"values": [{"doubleValue": "NaN"}, {"doubleValue": "-Infinity"},
                                                         {"bytesValue": "AAEC"}, {"intValue": "-7"}]}}},
        {"key": "m", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": "18446744073709551615", "severityNumber": "SEVERITY_NUMBER_WARN",
                                       "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
                                       "body": {"stringValue": "héllo"}, "flags": 1}]}]}]}
    lines["logs"].append(jsonlib.dumps(odd))
    for signal, texts in lines.items():
        for text in texts:
            data = jsonlib.loads(text)
            assert otlp_json_message(signal, jsonlib.loads(text)).SerializeToString() == reference(signal, data)
    with pytest.raises(telegen.TemplateFileError, match="not a valid OTLP JSON traces request"):
        otlp_json_message("traces", {"resourceSpans": [{"bogus": 1}]})
