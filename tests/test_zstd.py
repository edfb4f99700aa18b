"""Patchable zstd (telegen/_zstd.pyx), held to its plain-Python twin
(telegen/reference/zstd.py) and to the property that matters: the reference
decoder (the zstandard package) reads every patched frame as exactly the
bytes the uncompressed patch path makes with the same seed."""
from __future__ import annotations

import random
import shutil
import subprocess

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fastpath import PARAMS
from test_gzip import ANY_PARAMETERS, SIGNALS, classed_buffers, mutated_record, requests_of, sdk_requests

from telegen import _fastpath as fp
from telegen import _zstd
from telegen.reference import zstd as ref
from telegen.send.load.batches import build_batches
from telegen.send.load.compression import byte_classes, compress_batch, compress_batch_zstd, patched_zstd_bodies
from telegen.send.shard import SeriesCopies

NOW = 1_800_000_000_000_000_000
DECODER = zstandard.ZstdDecompressor()


def unzstd(frame: bytes) -> bytes:
    """The reference decoder's reading of one frame (which must be whole, and declare its size)."""
    params = zstandard.get_frame_parameters(frame)
    assert params.content_size >= 0 and not params.has_checksum
    return DECODER.decompress(frame)


def round_trip(signal: str, data: bytes, seed: int, **params) -> tuple[bytes, bytes]:
    """(what the uncompressed path sends, what the patched frame decompresses to)."""
    plan = fp.scan(signal, data)
    template = _zstd.compress(data, byte_classes(plan, data))
    raw = fp.patch(plan, data, seed=seed, **params)
    return raw, unzstd(_zstd.patch(template, raw))


# -- the twins agree -----------------------------------------------------------


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("chain, window_log", [(1, 10), (4, 12), (_zstd.DEFAULT_CHAIN, _zstd.DEFAULT_WINDOW_LOG)])
def test_compiled_and_reference_compress_byte_for_byte(templates, signal, chain, window_log):
    for data in requests_of(templates, signal):
        classes = byte_classes(fp.scan(signal, data), data)
        compiled = _zstd.compress(data, classes, 0, -1, chain, window_log)
        frame, runs = ref.compress(data, classes, 0, -1, chain, window_log)
        assert compiled.data == frame
        assert np.array_equal(compiled.runs, runs)
        raw = fp.patch(fp.scan(signal, data), data, NOW, seed=5, step=3)
        assert _zstd.patch(compiled, raw) == ref.patch(frame, runs, raw)
        head = b"\x01" + len(frame).to_bytes(4, "big")  # a gRPC message prefix, written in the same allocation
        headed = _zstd.patch(compiled, raw, head)
        assert headed == ref.patch(frame, runs, raw, head) == head + _zstd.patch(compiled, raw)


def test_the_predefined_tables_are_the_formats():
    """The decoding tables built by the format's rule give the format's
    Appendix A rows (a few spot checks), and every (symbol, next state) has
    exactly one encoder state."""
    assert ref.LL_TABLE.symbol[:4] == (0, 0, 1, 3) and ref.LL_TABLE.bits[:2] == (4, 4)
    assert ref.OF_TABLE.symbol[:4] == (0, 6, 9, 15)
    assert ref.ML_TABLE.symbol[:4] == (0, 1, 2, 3) and ref.ML_TABLE.bits[0] == 6
    for table, norm in ((ref.LL_TABLE, ref.LL_NORM), (ref.ML_TABLE, ref.ML_NORM), (ref.OF_TABLE, ref.OF_NORM)):
        size = 1 << table.log
        for s in range(len(norm)):
            covered = sorted(t for (symbol, t) in table.encode if symbol == s)
            assert covered == list(range(size))


# -- decompressed, it is the uncompressed path's output ------------------------------


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("params", PARAMS)
def test_patched_zstd_decompresses_to_the_patch_paths_bytes(templates, signal, params):
    for data in requests_of(templates, signal):
        for seed in (1, 2):
            raw, unpacked = round_trip(signal, data, seed, **params)
            assert unpacked == raw
            assert raw != data  # something did change


@pytest.mark.parametrize("signal", SIGNALS)
def test_real_sdk_output_round_trips(signal):
    data = sdk_requests()[signal]
    for seed in range(3):
        raw, unpacked = round_trip(signal, data, seed, now=NOW + seed, jitter_ns=10**6, step=seed)
        assert unpacked == raw


@pytest.mark.parametrize("signal", SIGNALS)
def test_whole_batches_round_trip_piece_by_piece(templates, signal):
    """The sender's batches (pieces over the message limit, blocks of 128 KiB,
    matches across blocks), replicas and keyed ids: one frame per piece, each
    decoding to its piece of the patched batch."""
    loaded = build_batches(signal, templates.records(signal), per_batch=10**6, max_bytes=300_000)
    for batch in loaded.batches:
        frames = compress_batch_zstd(batch)
        assert len(frames) == len(batch.pieces)
        clock = np.array([[NOW - 5, NOW - 7, 3, 0]], dtype=np.int64)
        slots = np.zeros(batch.plan.n_id_groups, dtype=np.int64)
        for replica in (-1, 7):
            raw = fp.patch(batch.plan, batch.data, NOW, 10**6, id_key=77, send_number=4, clock=clock, slots=slots,
                           replica=replica)
            bodies = patched_zstd_bodies(frames, raw)
            assert [unzstd(body) for body in bodies] == [raw[a:b] for a, b in batch.pieces]


def test_a_shards_metric_copies_round_trip(templates):
    """A fleet shard's metrics (its own copies of every series, told apart by
    replica digits the kernel writes into the resource) in patchable frames:
    every copy decodes to its patched bytes."""
    copies = SeriesCopies.for_shard(1, 3, 2, 1, 0)
    loaded = build_batches("metrics", templates.records("metrics"), 60, 4 * 2**20, copies)
    assert any(len(batch.plan.replicas) for batch in loaded.batches)
    for batch in loaded.batches[:4]:
        frames = compress_batch_zstd(batch)
        for replica in range(copies.first, copies.first + copies.count):
            raw = fp.patch(batch.plan, batch.data, NOW, 10**6, replica=replica, step=replica)
            assert [unzstd(body) for body in patched_zstd_bodies(frames, raw)] == \
                [raw[a:b] for a, b in batch.pieces]


def test_the_zstd_command_reads_it(templates, tmp_path):
    if not shutil.which("zstd"):
        pytest.skip("no zstd command here; the zstandard package is the reference decoder")
    data = b"".join(templates.records("logs")[:8])
    plan = fp.scan("logs", data)
    raw = fp.patch(plan, data, NOW, jitter_ns=10**9, step=4, seed=3)
    path = tmp_path / "body.zst"
    path.write_bytes(_zstd.patch(_zstd.compress(data, byte_classes(plan, data)), raw))
    assert subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout == raw


def test_size_beats_patchable_gzip_and_is_near_zstd_level_1(templates):
    """Raw literals give up zstd's Huffman-coded literals; the frame still
    beats patchable gzip, and stays within 1.5x of zstd level 1 (the
    benchmarks measure full-size batches)."""
    level1 = zstandard.ZstdCompressor(level=1)
    for signal in SIGNALS:
        loaded = build_batches(signal, templates.records(signal), per_batch=10**6, max_bytes=4 * 2**20)
        batch = loaded.batches[0]
        ours = sum(len(t.data) for t in compress_batch_zstd(batch))
        gzip_bytes = sum(len(t.data) for t in compress_batch(batch))
        library = sum(len(level1.compress(batch.data[a:b])) for a, b in batch.pieces)
        assert ours < gzip_bytes, signal
        assert ours < 1.5 * library, signal


# -- random parameters, mutated templates, a fuzzed compressor ------------------------


@ANY_PARAMETERS
def test_any_parameters_round_trip(templates, seed, now, jitter, backdate, step, replica, signal, records):
    data = b"".join(templates.records(signal)[:records])
    raw, unpacked = round_trip(signal, data, seed, now=now, jitter_ns=jitter, backdate_ns=backdate,
                               run_start=now - 10**9, step=step, replica=replica)
    assert unpacked == raw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), flips=st.integers(1, 6), signal=st.sampled_from(SIGNALS))
def test_mutated_templates_round_trip(templates, seed, flips, signal):
    data = mutated_record(templates, seed, flips, signal)
    if data is not None:
        raw, unpacked = round_trip(signal, data, seed, now=NOW, jitter_ns=1000, step=2, replica=3)
        assert unpacked == raw


@settings(max_examples=200, deadline=None)
@given(case=classed_buffers(), chain=st.sampled_from([1, 2, 16]), window_log=st.sampled_from([10, 11, 20]))
def test_fuzzed_compressor_agrees_with_its_twin_and_with_zstandard(case, chain, window_log):
    data, classes, raw, start, end = case
    compiled = _zstd.compress(data, classes, start, end, chain, window_log)
    frame, runs = ref.compress(data, classes, start, end, chain, window_log)
    assert compiled.data == frame and np.array_equal(compiled.runs, runs)
    assert unzstd(compiled.data) == data[start:end]
    body = _zstd.patch(compiled, raw)
    assert unzstd(body) == raw[start:end]
    assert body == ref.patch(frame, runs, raw)


@pytest.mark.parametrize("size", [0, 1, 31, 32, 4095, 4096, 2**17 - 1, 2**17, 2**17 + 1, 3 * 2**17 + 5])
def test_sizes_at_every_header_and_block_boundary(size):
    """Literal-section headers of 1, 2 and 3 bytes, frame content sizes of 1,
    2 and 4 bytes, one block or several, compressible or raw."""
    rnd = random.Random(size)
    for data in (bytes(rnd.randrange(256) for _ in range(size)), (b"otlp-span-" * (size // 10 + 1))[:size]):
        classes = np.frombuffer(data, dtype=np.uint8).astype(np.uint32)
        raw = bytearray(data)
        for k in range(0, size, 97):  # a changed byte now and then
            classes[k] = 256 + k
            raw[k] = rnd.randrange(256)
        template = _zstd.compress(data, classes)
        assert unzstd(template.data) == data
        assert unzstd(_zstd.patch(template, bytes(raw))) == bytes(raw)
        assert template.literals == len(range(0, size, 97))


def test_breaking_the_match_rule_is_caught(templates):
    """Let a match copy any changed byte for any other (all classes >= 256
    made one): the patched frame decodes to stale bytes where a match copied
    a field that changes differently, so the tests above guard the rule."""
    broken = 0
    for signal in SIGNALS:
        data = b"".join(templates.records(signal)[:4])
        plan = fp.scan(signal, data)
        classes = byte_classes(plan, data)
        careless = np.where(classes >= 256, 256, classes).astype(np.uint32)
        raw = fp.patch(plan, data, NOW, seed=1, step=1)
        broken += unzstd(_zstd.patch(_zstd.compress(data, careless), raw)) != raw
    assert broken == len(SIGNALS)


# -- bad input ---------------------------------------------------------------------


def test_damaged_or_mismatched_input_is_refused(templates):
    data = templates.records("logs")[0]
    classes = byte_classes(fp.scan("logs", data), data)
    with pytest.raises(ValueError, match="classes for"):
        _zstd.compress(data, classes[:-1])
    with pytest.raises(ValueError, match="outside"):
        _zstd.compress(data, classes, 5, len(data) + 1)
    with pytest.raises(ValueError, match="max_chain"):
        _zstd.compress(data, classes, max_chain=0)
    with pytest.raises(ValueError, match="window_log"):
        _zstd.compress(data, classes, window_log=30)
    template = _zstd.compress(data, classes)
    with pytest.raises(ValueError, match="reads up to"):
        _zstd.patch(template, data[:-1])
    assert _zstd.template_from_parts(template.data, template.start, template.end, template.runs).data == template.data
    bad = template.runs.copy()
    bad[-1, 1] = len(template.data)
    with pytest.raises(ValueError, match="outside the frame"):
        _zstd.template_from_parts(template.data, template.start, template.end, bad)
    bad = template.runs.copy()
    bad[-1, 0] = template.end
    with pytest.raises(ValueError, match="outside the raw range"):
        _zstd.template_from_parts(template.data, template.start, template.end, bad)
    with pytest.raises(ValueError, match="not a zstd template"):
        _zstd.template_from_parts(b"x" * 40, 0, 10, template.runs[:0])
