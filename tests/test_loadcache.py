"""The load cache: saved once, mapped after; same bytes as an in-memory load;
rebuilt when the templates change or the file is damaged; one builder among
senders that start together; a cache that cannot be written never stops a run."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import settled

import telegen
from telegen import _fastpath as fp
from telegen.send.load.batches import load_signal
from telegen.send.load.cache import MAGIC, CacheError, cache_file, load_cached, open_cache, save
from telegen.send.shard import SeriesCopies

NOW = 1_800_000_000_000_000_000
SIZES = {"traces": 10, "metrics": 60, "logs": 100}


def template(template_dir, signal):
    return template_dir / f"telemetry-{signal}.pb"


def patched(loaded, seed=7):
    return [fp.patch(b.plan, b.data, NOW, 10**9, 0, NOW - 10**12, 3, 5 if b.plan.replicas.size else -1, seed=seed)
            for b in loaded.batches]


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_a_mapped_load_patches_to_the_same_bytes(template_dir, tmp_path, signal):
    copies = SeriesCopies(first=4, count=2, total=8) if signal == "metrics" else SeriesCopies()
    memory = load_signal(signal, template(template_dir, signal), SIZES[signal], 32 * 1024, copies)
    lines = []
    mapped = load_cached(signal, template(template_dir, signal), SIZES[signal], 32 * 1024, copies, tmp_path,
                         lines.append)
    again = load_cached(signal, template(template_dir, signal), SIZES[signal], 32 * 1024, copies, tmp_path,
                        lines.append)
    assert isinstance(again.batches[0].data, memoryview), "the second load maps the file"
    target = cache_file(tmp_path, signal, template(template_dir, signal), SIZES[signal], 32 * 1024, copies.width)
    assert [line.split(" (")[0] for line in lines] == [f"Saved the load cache {target}"], "built once, then mapped"
    for loaded in (mapped, again):
        assert (loaded.templates, loaded.events, loaded.copies) == (memory.templates, memory.events, copies)
        assert [b.pieces for b in loaded.batches] == [b.pieces for b in memory.batches]
        assert [b.piece_events for b in loaded.batches] == [b.piece_events for b in memory.batches]
        assert [bytes(b.data) for b in loaded.batches] == [b.data for b in memory.batches]
        assert patched(loaded) == patched(memory)
    assert len(list(tmp_path.glob("*.batches"))) == 1


def test_a_changed_template_makes_a_new_cache_file(template_dir, tmp_path):
    source = tmp_path / "logs.pb"
    source.write_bytes(template(template_dir, "logs").read_bytes())
    first = cache_file(tmp_path / "cache", "logs", source, 100, 2**20, 0)
    load_cached("logs", source, 100, 2**20, SeriesCopies(), tmp_path / "cache", print)
    source.write_bytes(source.read_bytes() + source.read_bytes())
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert cache_file(tmp_path / "cache", "logs", source, 100, 2**20, 0) != first
    doubled = load_cached("logs", source, 100, 2**20, SeriesCopies(), tmp_path / "cache", print)
    assert doubled.templates == 600
    assert cache_file(tmp_path / "cache", "logs", source, 50, 2**20, 0) != cache_file(
        tmp_path / "cache", "logs", source, 100, 2**20, 0), "batch settings are part of the name"


@pytest.mark.parametrize("damage", ["truncate", "magic", "offsets", "empty"])
def test_a_damaged_cache_file_is_rebuilt_not_trusted(template_dir, tmp_path, damage):
    source = template(template_dir, "traces")
    target = cache_file(tmp_path, "traces", source, 10, 2**20, 0)
    save(load_signal("traces", source, 10, 2**20), target)
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "magic":
        data[:4] = b"XXXX"
    elif damage == "offsets":
        # Every plan offset moved past the end: must be refused, never patched with.
        loaded = open_cache(target, SeriesCopies())
        batch = loaded.batches[0]
        start = bytes(data).index(batch.plan.ids8.tobytes())
        bad = batch.plan.ids8.copy()
        bad[:, 0] += 10**9
        data[start:start + bad.nbytes] = bad.tobytes()
        del loaded, batch
    else:
        data = bytearray()
    target.write_bytes(bytes(data))
    with pytest.raises(CacheError):
        open_cache(target, SeriesCopies())
    lines = []
    rebuilt = load_cached("traces", source, 10, 2**20, SeriesCopies(), tmp_path, lines.append)
    assert any(line.startswith(f"Rebuilding the load cache {target}") for line in lines)
    assert rebuilt.events == telegen.load(template_dir).counts["spans"]
    assert target.read_bytes().startswith(MAGIC)


def test_plans_with_writes_outside_the_buffer_are_refused(template_dir):
    loaded = load_signal("metrics", template(template_dir, "metrics"), 60, 2**20, SeriesCopies(count=2, total=2))
    plan = loaded.batches[0].plan
    for name in ("time_now", "counters", "bucket_runs", "replicas", "ids8"):
        arrays = {key: np.array(value) for key, value in plan.arrays().items()}
        if not len(arrays[name]):
            continue
        arrays[name][0] = plan.size if arrays[name].ndim == 1 else [plan.size, *arrays[name][0][1:]]
        with pytest.raises(ValueError, match="outside|does not exist"):
            fp.plan_from_arrays(arrays=arrays, **plan.scalars())
    fp.plan_from_arrays(arrays=plan.arrays(), **plan.scalars())


def test_an_unwritable_cache_dir_loads_without_it(template_dir, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    lines = []
    loaded = load_cached("logs", template(template_dir, "logs"), 100, 2**20, SeriesCopies(), blocked / "cache",
                         lines.append)
    assert loaded.templates == 300 and isinstance(loaded.batches[0].data, bytes)
    assert any(line.startswith(f"Cannot use the load cache in {blocked / 'cache'}") for line in lines)


def test_senders_that_start_together_build_the_cache_once(template_dir, tmp_path):
    script = (
        "import sys\n"
        "from telegen.send.load.cache import load_cached\n"
        "from telegen.send.shard import SeriesCopies\n"
        "lines = []\n"
        "loaded = load_cached('traces', sys.argv[1], 10, 2**20, SeriesCopies(), sys.argv[2], lines.append)\n"
        "print('built' if any(l.startswith('Saved the load cache') for l in lines) else 'mapped', loaded.events)\n")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(template(template_dir, "traces")),
                                   str(tmp_path)], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=60)[0].split() for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert len({events for _, events in outputs}) == 1
    assert sorted(word for word, _ in outputs) == ["built", "mapped", "mapped"], outputs


def test_sender_uses_the_cache_dir(template_dir, tmp_path):
    from telegen.sink import Sink
    with Sink() as sink:
        config = {"input": {"directory": str(template_dir), "cache_dir": str(tmp_path / "cache")},
                  "otlp": {"endpoint": sink.endpoint, "insecure": True},
                  "sending": {"multiplier": 1, "rate_limit": {"events_per_second": 0}}}
        first = telegen.Sender(config, write=lambda line: None).run()
        second = telegen.Sender(config, write=lambda line: None).run()
        stats = settled(sink)
    assert len(list((tmp_path / "cache").glob("*.batches"))) == 3
    for signal in ("traces", "metrics", "logs"):
        assert first.signals[signal].delivered == second.signals[signal].delivered > 0
        assert stats.signals()[signal].events == 2 * first.signals[signal].delivered


def compressed_bodies(loaded, codec: str, seed=7):
    """What each batch's patchable gzip or zstd decompresses to, piece by
    piece, and what the uncompressed patch path makes with the same seed."""
    import zlib

    import zstandard

    from telegen.send.load.compression import patched_bodies, patched_zstd_bodies
    out = []
    for batch, raw in zip(loaded.batches, patched(loaded, seed)):
        if codec == "gzip":
            unpacked = [zlib.decompress(body, 31) for body in patched_bodies(batch.gzip, raw)]
        else:
            unpacked = [zstandard.ZstdDecompressor().decompress(body) for body in patched_zstd_bodies(batch.zstd, raw)]
        out.append((unpacked, [raw[a:b] for a, b in batch.pieces]))
    return out


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_compressed_templates_are_cached_beside_the_batches(template_dir, tmp_path, signal, codec):
    lines = []
    source = template(template_dir, signal)
    first = load_cached(signal, source, SIZES[signal], 8 * 1024, SeriesCopies(), tmp_path, lines.append,
                        **{codec: True})
    again = load_cached(signal, source, SIZES[signal], 8 * 1024, SeriesCopies(), tmp_path, lines.append,
                        **{codec: True})
    target = cache_file(tmp_path, signal, source, SIZES[signal], 8 * 1024, 0)
    assert [line.split(" (")[0].split(" in ")[0] for line in lines] == [
        f"Saved the load cache {target}", f"Compressed {len(first.batches)} {signal} batches for {codec}",
        f"Saved the {codec} cache {target.with_suffix('.' + codec)}"], "compressed once, then read back"
    assert any(len(b.pieces) > 1 for b in first.batches) or signal == "logs"
    for a, b in zip(first.batches, again.batches):
        assert [(t.data, t.start, t.end) for t in getattr(a, codec)] == \
            [(t.data, t.start, t.end) for t in getattr(b, codec)]
        if codec == "gzip":
            assert all(np.array_equal(x.sites, y.sites) for x, y in zip(a.gzip, b.gzip))
        else:
            assert all(np.array_equal(x.runs, y.runs) for x, y in zip(a.zstd, b.zstd))
    for unpacked, raw in compressed_bodies(again, codec):
        assert unpacked == raw


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_damaged_compressed_cache_is_rebuilt(template_dir, tmp_path, codec):
    source = template(template_dir, "traces")
    load_cached("traces", source, 10, 2**20, SeriesCopies(), tmp_path, print, **{codec: True})
    target = cache_file(tmp_path, "traces", source, 10, 2**20, 0).with_suffix(f".{codec}")
    data = target.read_bytes()
    for damaged in (data[: len(data) // 2], data[:40] + b"x" * (len(data) - 40), b""):
        target.write_bytes(damaged)
        lines = []
        rebuilt = load_cached("traces", source, 10, 2**20, SeriesCopies(), tmp_path, lines.append, **{codec: True})
        assert lines[0].startswith(f"Rebuilding the {codec} cache {target}: ")
        for unpacked, raw in compressed_bodies(rebuilt, codec):
            assert unpacked == raw


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_sender_caches_compressed_templates_for_http(template_dir, tmp_path, codec):
    with telegen.Sink(listen_http="127.0.0.1:0") as sink:
        config = {"input": {"directory": str(template_dir), "cache_dir": str(tmp_path / "cache")},
                  "otlp": {"endpoint": sink.http_endpoint, "protocol": "http/protobuf", "compression": codec},
                  "sending": {"multiplier": 1, "duration": 0, "rate_limit": {"events_per_second": 0}}}
        runs = []
        for _ in range(2):
            lines = []
            runs.append((telegen.Sender(config, write=lines.append).run(), lines))
    (first, first_lines), (second, second_lines) = runs
    assert sum(f"Saved the {codec} cache" in line for line in first_lines) == 3
    assert not any("Compressed" in line or "Saved" in line for line in second_lines)
    assert first.delivered == second.delivered > 0
    assert len(list((tmp_path / "cache").glob(f"*.{codec}"))) == 3


def test_series_plans_with_bad_offsets_or_counts_are_refused():
    """A cached plan of series kept whole is checked like any other: its
    value and time offsets, its starts, and every count's rows (they come
    before it, and are no count or double)."""
    from test_fastpath import series_metrics

    data = series_metrics()
    plan = fp.scan("metrics", data)
    counts = np.flatnonzero(plan.series_values[:, 3] == 4)
    assert len(counts) and len(plan.series_start)
    damages = [("series_values", (0, 5), plan.size), ("series_values", (0, 4), -1), ("series_start", (0, 1), plan.size),
               ("series_start", (0, 0), plan.size - 4), ("series_values", (counts[0], 2), counts[0] + 1),
               ("series_values", (counts[0], 1), -1), ("series_values", (counts[0], 3), 5)]
    for name, where, value in damages:
        arrays = {key: np.array(array) for key, array in plan.arrays().items()}
        arrays[name][where] = value
        with pytest.raises(ValueError, match="outside|precede|unknown"):
            fp.plan_from_arrays(arrays=arrays, **plan.scalars())
    fp.plan_from_arrays(arrays=plan.arrays(), **plan.scalars())
