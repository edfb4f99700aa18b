"""generate() end to end: inputs it accepts, determinism, independence of
signals, and the placeholder invariants the sender relies on, checked on every
field of every record by walking the decoded messages."""
from __future__ import annotations

from dataclasses import replace

from conftest import small_config
from google.protobuf.message import Message

import telegen
from telegen.generate.base import TIME_BASE_NS
from telegen.generate.config import LogsConfig
from telegen.templates import SIGNALS, decode_record

WALL_CLOCK_FLOOR = 10**15  # 1970-01-12: any real timestamp is far above


def walk(message: Message, path: str = ""):
    """Yield (field path, field descriptor, value) for every set scalar field."""
    for fd, value in message.ListFields():
        name = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type is not None:
            items = value if fd.is_repeated else [value]
            for item in items:
                yield from walk(item, name)
        elif fd.is_repeated:
            for item in value:
                yield name, fd, item
        else:
            yield name, fd, value


def test_no_wall_clock_time_anywhere(templates):
    seen = 0
    for signal in SIGNALS:
        for record in templates.records(signal):
            for name, fd, value in walk(decode_record(signal, record)):
                if fd.name.endswith("time_unix_nano"):
                    seen += 1
                    assert TIME_BASE_NS <= value < WALL_CLOCK_FLOOR, (signal, name, value)
    assert seen > 1000


def test_every_patched_field_is_a_nonzero_placeholder(templates):
    """The sender patches in place, so each such field must be present (proto3
    drops zeros) and never all-zero bytes."""
    for record in templates.traces:
        for rs in decode_record("traces", record).resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    assert span.start_time_unix_nano and span.end_time_unix_nano and span.flags
                    assert any(span.trace_id) and any(span.span_id)
                    assert all(e.time_unix_nano for e in span.events)
    for record in templates.logs:
        for rl in decode_record("logs", record).resource_logs:
            for sl in rl.scope_logs:
                for log in sl.log_records:
                    assert log.time_unix_nano and log.observed_time_unix_nano
                    assert (not log.trace_id) or (any(log.trace_id) and any(log.span_id) and log.flags)
    for record in templates.metrics:
        for name, _, value in walk(decode_record("metrics", record)):
            if name.endswith("data_points.time_unix_nano"):
                assert value == TIME_BASE_NS + 60_000_000_000


def test_accepts_object_dict_yaml_and_path(tmp_path):
    text = "seed: 3\ntraces: {count: 5, spans: {high_span_traces: {enabled: false}}}\n" \
           "metrics: {metric_count: 2, timeseries_per_metric: {min: 1, max: 3, default: 2}}\nlogs: {count: 10}\n"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    from_yaml = telegen.generate(text)
    from_path = telegen.generate(path)
    from_dict = telegen.generate(telegen.GeneratorConfig.from_yaml(text).to_dict())
    assert from_yaml.traces == from_path.traces == from_dict.traces
    assert from_yaml.counts["traces"] == 5 and from_yaml.counts["logs"] == 10


def test_same_seed_same_bytes_everywhere(templates):
    again = telegen.generate(small_config())
    other = telegen.generate(small_config(), seed=99)
    for signal in SIGNALS:
        assert templates.records(signal) == again.records(signal)
        assert templates.records(signal) != other.records(signal)
    assert other.metadata["seed"] == 99 and other.metadata["config"]["seed"] == 99


def test_a_random_seed_is_recorded_and_reproduces():
    config = replace(small_config(), seed=None)
    first = telegen.generate(config)
    seed = first.metadata["seed"]
    assert isinstance(seed, int)
    assert telegen.generate(config, seed=seed).traces == first.traces


def test_signals_draw_from_independent_streams(templates):
    """Changing one signal's settings never changes another's output."""
    fewer_logs = telegen.generate(replace(small_config(), logs=LogsConfig(count=7)))
    assert fewer_logs.traces == templates.traces
    assert fewer_logs.metrics == templates.metrics
    assert len(fewer_logs.logs) == 7


def test_metadata_counts_and_timings(templates):
    meta = templates.metadata
    assert meta["counts"]["traces"] == len(templates.traces)
    assert meta["counts"]["metrics"] == len(templates.metrics)
    assert meta["counts"]["logs"] == len(templates.logs)
    assert set(meta["generation_seconds"]) == set(SIGNALS)
    assert meta["time_base_ns"] == TIME_BASE_NS
