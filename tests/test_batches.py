"""Load-time batch assembly: every template event lands in exactly one batch,
resources are gathered, size limits hold, oversized traces stay one unit."""
from __future__ import annotations

from collections import Counter

import pytest
from conftest import decode_metrics, decode_traces

from telegen import _fastpath as fp
from telegen.errors import TemplateFileError
from telegen.send.load.batches import build_batches, describe, load_signal

NOW = 1_800_000_000_000_000_000


def span_ids(data: bytes) -> list[bytes]:
    return [s.span_id for rs in decode_traces(data).resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_trace_batches_hold_every_span_once_grouped_by_resource(templates):
    loaded = build_batches("traces", templates.traces, per_batch=10, max_bytes=4 * 2**20)
    assert loaded.templates == 60 and loaded.events == templates.counts["spans"]
    assert sum(b.events for b in loaded.batches) == loaded.events
    expected = Counter(sid for record in templates.traces for sid in span_ids(record))
    got = Counter(sid for batch in loaded.batches for sid in span_ids(batch.data))
    assert got == expected
    for batch in loaded.batches:
        request = decode_traces(batch.data)
        resources = [rs.resource.SerializeToString() for rs in request.resource_spans]
        assert len(resources) == len(set(resources)), "one ResourceSpans per resource"
        assert len({s.trace_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}) <= 10
    smaller = sum(len(b.data) for b in loaded.batches)
    assert smaller < sum(len(r) for r in templates.traces), "gathering resources saves bytes"


def test_oversized_trace_becomes_one_batch_of_several_requests(templates):
    big = max(templates.traces, key=len)
    loaded = build_batches("traces", [big], per_batch=100, max_bytes=32 * 1024)
    (batch,) = loaded.batches
    assert len(batch.pieces) > 3
    out = fp.patch(batch.plan, batch.data, now=NOW)
    trace_ids = set()
    total = 0
    for start, end in batch.pieces:
        assert end - start <= 40 * 1024
        spans = [s for rs in decode_traces(out[start:end]).resource_spans for ss in rs.scope_spans for s in ss.spans]
        trace_ids |= {s.trace_id for s in spans}
        total += len(spans)
    assert total == batch.events == len(span_ids(big))
    assert len(trace_ids) == 1, "the pieces of one trace share its new trace id"


def test_batch_boundaries_respect_the_message_limit(templates):
    loaded = build_batches("logs", templates.logs, per_batch=1000, max_bytes=16 * 1024)
    assert len(loaded.batches) > 1
    assert all(len(b.data) <= 16 * 1024 for b in loaded.batches)
    assert sum(b.events for b in loaded.batches) == 300


def test_metric_batches_count_points_and_carry_replica_attribute(templates):
    loaded = build_batches("metrics", templates.metrics, per_batch=40, max_bytes=4 * 2**20, replicas=12)
    assert loaded.events == templates.counts["series"] and loaded.replicas == 12
    assert loaded.events_per_pass == 12 * loaded.events
    for batch in loaded.batches:
        out = decode_metrics(fp.patch(batch.plan, batch.data, now=NOW, replica=7))
        for rm in out.resource_metrics:
            attrs = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
            assert attrs["telegen.replica"] == "07"


def test_load_from_pb_and_json_and_describe(templates, tmp_path):
    templates.save(tmp_path, json=True)
    from_pb = load_signal("traces", tmp_path / "telemetry-traces.pb", per_batch=100, max_bytes=4 * 2**20)
    from_json = load_signal("traces", tmp_path / "telemetry-traces.json", per_batch=100, max_bytes=4 * 2**20)
    assert [b.data for b in from_pb.batches] == [b.data for b in from_json.batches]
    assert describe(from_pb).startswith(f"Loaded 60 trace templates ({templates.counts['spans']} spans)")
    logs = load_signal("logs", tmp_path / "telemetry-logs.pb", per_batch=100, max_bytes=4 * 2**20)
    assert describe(logs).startswith("Loaded 300 log templates")


def test_bad_template_files(tmp_path, templates):
    with pytest.raises(TemplateFileError, match="not found"):
        load_signal("traces", tmp_path / "missing.pb", 10, 2**20)
    truncated = tmp_path / "t.pb"
    templates.save(tmp_path)
    data = (tmp_path / "telemetry-traces.pb").read_bytes()
    truncated.write_bytes(data[:-10])
    with pytest.raises(TemplateFileError, match=r"t\.pb: record at byte offset \d+"):
        load_signal("traces", truncated, 10, 2**20)
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    with pytest.raises(TemplateFileError, match="holds no traces templates"):
        load_signal("traces", empty, 10, 2**20)
    wrong = tmp_path / "wrong.pb"
    wrong.write_bytes(b"\x05\xff\xff\xff\xff\xff")
    with pytest.raises(TemplateFileError, match="wrong.pb record 0"):
        load_signal("traces", wrong, 10, 2**20)


# -- the compiled regrouping against its protobuf twin ---------------------------

@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
@pytest.mark.parametrize("width", [0, 3])
def test_regrouper_matches_its_protobuf_twin(templates, signal, width):
    from telegen.reference.regroup import regroup_reference
    records = templates.records(signal)
    for chunk in (records[:1], records[:7], records[3:40], records):
        grouper = fp.Regrouper(signal, width)
        for record in chunk:
            grouper.add(memoryview(record))  # views, as a mapped template file gives them
        ours = grouper.build()
        theirs = regroup_reference(signal, chunk, width)
        assert decode(signal, ours) == decode(signal, theirs)
        assert fp.count_events(signal, ours) == sum(fp.count_events(signal, r) for r in chunk)
        assert len(ours) == len(theirs), "same fields, same sizes; only the order inside a Resource may differ"


@pytest.mark.parametrize("max_bytes", [2048, 32 * 1024, 10**9])
def test_split_matches_its_protobuf_twin(templates, max_bytes):
    from telegen.reference.regroup import split_reference
    big = max(templates.traces, key=len)
    ours = fp.split("traces", big, max_bytes, 2)
    theirs = split_reference("traces", big, max_bytes, 2)
    assert [decode("traces", piece) for piece in ours] == [decode("traces", piece) for piece in theirs]
    assert sum(fp.count_events("traces", piece) for piece in ours) == fp.count_events("traces", big)


def test_regrouper_keeps_resources_and_scopes_apart_by_schema_url():
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from telegen.reference.regroup import regroup_reference
    requests = []
    for schema, scope_schema, body in (("s1", "", "a"), ("s2", "", "b"), ("s1", "x", "c"), ("s1", "", "d")):
        request = ExportLogsServiceRequest()
        rl = request.resource_logs.add(schema_url=schema)
        rl.resource.attributes.add(key="service.name").value.string_value = "svc"
        sl = rl.scope_logs.add(schema_url=scope_schema)
        sl.scope.name = "lib"
        sl.log_records.add(time_unix_nano=1).body.string_value = body
        requests.append(request.SerializeToString())
    grouper = fp.Regrouper("logs")
    for request in requests:
        grouper.add(request)
    merged = decode("logs", grouper.build())
    assert merged == decode("logs", regroup_reference("logs", requests))
    assert [rl.schema_url for rl in merged.resource_logs] == ["s1", "s2"]
    assert [[r.body.string_value for sl in rl.scope_logs for r in sl.log_records] for rl in merged.resource_logs] == [
        ["a", "d", "c"], ["b"]]


def test_regrouper_reports_malformed_input_with_its_offset(templates):
    grouper = fp.Regrouper("traces")
    record = templates.traces[0]
    with pytest.raises(ValueError, match=r"malformed traces request at byte offset \d+"):
        grouper.add(record[:-3])
    with pytest.raises(ValueError, match="outside"):
        grouper.add(record, 5, len(record) + 1)


def decode(signal: str, data: bytes):
    from telegen.templates import decode_record
    return decode_record(signal, data)


def _mapped_rss(path) -> int:
    """Bytes of `path` this process has mapped in (its mappings' Rss in smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps").read().splitlines():
        if "-" in line.split(" ", 1)[0]:  # a mapping's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1]) * 1024
    return total


def test_a_mapped_template_file_leaves_the_process_as_it_is_batched(templates, tmp_path, monkeypatch):
    """The load's peak memory: pages of the file already in batches are
    handed back while loading goes on, and the batches are the same."""
    import mmap

    from telegen.send.load import batches as loading

    templates.save(tmp_path)
    path = tmp_path / "telemetry-traces.pb"
    records, mapped = loading._read(path, "traces")
    assert sum(sum(memoryview(r).cast("B")[::4096]) for r in records) >= 0  # touch every page
    assert _mapped_rss(path) >= 0.9 * path.stat().st_size - mmap.PAGESIZE
    loading._page_releaser(mapped, records)(len(records))
    assert _mapped_rss(path) <= mmap.PAGESIZE
    del records
    mapped.close()
    # Released every 64 KiB instead of 32 MiB, the batches come out byte for byte the same.
    monkeypatch.setattr(loading, "RELEASE_BYTES", 64 * 1024)
    released = loading.load_signal("traces", path, 10, 64 * 1024)
    whole = build_batches("traces", templates.traces, 10, 64 * 1024)
    assert [b.data for b in released.batches] == [b.data for b in whole.batches]
    assert [b.pieces for b in released.batches] == [b.pieces for b in whole.batches]
