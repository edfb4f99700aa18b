"""Patchable zstd beside the zstandard library and patchable gzip, per signal,
on the benchmark templates' batches at the seed's batch sizes (conftest).

- size: bytes per event over every batch: zstd level 1 (the library, one
  frame per request), patchable gzip and patchable zstd. Issue targets:
  patchable zstd <= patchable gzip; <= 1.1x zstd-1 is an aim, not a promise
  (raw literals give up zstd's Huffman-coded literals).
- CPU on one core (this thread's CPU time; the methods alternate): per event,
  the patch alone (uncompressed), the patch then patchable zstd (a copy of
  the frame, a memcpy per run of changed bytes), the patch then patchable
  gzip, and zstd level 1 alone on the patched bytes.
- end to end: `telegen send` over OTLP/HTTP to the sink process, uncompressed,
  with gzip (zlib-6 per request, and patchable) and zstd (the library's
  level 1 per request, and patchable), alternating; events/s,
  the sender's and the sink's CPU per million events, bytes on the wire per
  event. Unbounded, the rate is the sink's (it shares the sender's two cores
  and decodes every body), and a sender held back waits at a cost per event.
- at an equal rate: the same sends at EQUAL_RATE events/s, the sender's CPU
  per event uncompressed, with patchable zstd and with patchable gzip. Issue
  target: patchable zstd <= 1.2x uncompressed ("compression at memcpy cost").
- load: how fast a run compresses its batches before it starts (raw MB/s).
"""
from __future__ import annotations

import pytest
import test_gzip
import zstandard
from conftest import BATCH_SIZES, QUICK, ROUNDS, median_of
from test_gzip import CPU_SECONDS, _ns_per_event, _patch, send_for

from telegen.send.load.compression import (
    LIBRARY,
    PATCHABLE,
    ZLIB,
    ZSTD_LEVEL,
    compress_batch_zstd,
    patched_bodies,
    patched_zstd_bodies,
    with_zstd,
)

EQUAL_RATE = 1_000_000  # events/s: under every body's unbounded rate here, so each run holds it


sink = test_gzip.sink  # the sink in its own process, with OTLP/HTTP


@pytest.fixture(scope="module")
def zloaded(loaded):
    """The batches with their patchable zstd frames made once here (a run makes them when it starts)."""
    return {signal: with_zstd(templates) for signal, templates in loaded.items()}


@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_patchable_zstd_size(benchmark, zloaded, signal):
    batches = zloaded[signal].batches
    events = sum(b.events for b in batches)

    def compress_all():
        return [compress_batch_zstd(batch) for batch in batches]

    frames = benchmark.pedantic(compress_all, rounds=1 if QUICK else 3)
    level1 = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    raw = sum(len(b.data) for b in batches)
    sizes = {"raw": raw,
             "zstd1": sum(len(level1.compress(b.data[s:e])) for b in batches for s, e in b.pieces),
             "patchable_gzip": sum(len(t.data) for b in batches for t in b.gzip),
             "patchable": sum(len(f.data) for fs in frames for f in fs)}
    per_event = {name: size / events for name, size in sizes.items()}
    literals = sum(f.literals for fs in frames for f in fs) / events
    ratio = sizes["zstd1"] / sizes["patchable"]
    load_mb_s = raw / benchmark.stats.stats.median / 1e6
    benchmark.extra_info.update(kind="zstd_size", signal=signal, bytes_per_event=per_event, ratio=ratio,
                                gzip_ratio=sizes["patchable_gzip"] / sizes["patchable"],
                                literals_per_event=literals, compress_mb_per_second=load_mb_s, events=events)
    print(f"\n{signal:8s} bytes/event: raw {per_event['raw']:.0f}  zstd-1 {per_event['zstd1']:.1f}  "
          f"patchable gzip {per_event['patchable_gzip']:.1f}  patchable zstd {per_event['patchable']:.1f} "
          f"({1 / ratio:.2f}x zstd-1, {sizes['patchable'] / sizes['patchable_gzip']:.2f}x patchable gzip; "
          f"{literals:.1f} patched bytes/event)  compressed at load {load_mb_s:.0f} MB/s")


@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_patchable_zstd_cpu(benchmark, zloaded, signal):
    batches = zloaded[signal].batches
    patched = {id(b): _patch(b) for b in batches}
    level1 = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    methods = {
        "patch": _patch,
        "patch+patchable": lambda b: patched_zstd_bodies(b.zstd, _patch(b)),
        "patch+patchable_gzip": lambda b: patched_bodies(b.gzip, _patch(b)),
        "zstd1": lambda b: [level1.compress(patched[id(b)][s:e]) for s, e in b.pieces],
    }
    runs = []

    def alternate():
        for _ in range(ROUNDS):
            runs.append({name: _ns_per_event(work, batches, CPU_SECONDS) for name, work in methods.items()})

    benchmark.pedantic(alternate, rounds=1)
    ns = median_of(runs)
    ratio = ns["zstd1"] / ns["patch+patchable"]
    benchmark.extra_info.update(kind="zstd_cpu", signal=signal, ns_per_event=ns, ratio=ratio, rounds=ROUNDS)
    print(f"\n{signal:8s} ns/event, one core: patch {ns['patch']:.0f}  patch+patchable zstd "
          f"{ns['patch+patchable']:.0f}  patch+patchable gzip {ns['patch+patchable_gzip']:.0f}  "
          f"zstd-1 {ns['zstd1']:.0f}  (zstd-1 / patch+patchable zstd x{ratio:.1f})")


@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_patchable_zstd_send(benchmark, zloaded, sink, signal):
    modes = {"none": ("none", PATCHABLE), "zlib": ("gzip", ZLIB), "patchable_gzip": ("gzip", PATCHABLE),
             "library": ("zstd", LIBRARY), "patchable": ("zstd", PATCHABLE)}
    runs: dict[str, list[dict]] = {name: [] for name in modes}

    def alternate():
        for _ in range(ROUNDS):
            for name, (compression, encoder) in modes.items():
                runs[name].append(send_for(zloaded, sink, signal, compression, encoder))

    benchmark.pedantic(alternate, rounds=1)
    results = {name: median_of(values) for name, values in runs.items()}
    rate_ratio = results["patchable"]["events_per_second"] / results["none"]["events_per_second"]
    cpu_ratio = results["patchable"]["cpu_s_per_million"] / results["none"]["cpu_s_per_million"]
    benchmark.extra_info.update(kind="zstd_send", signal=signal, ratio=1 / cpu_ratio, rate_ratio=rate_ratio,
                                rounds=ROUNDS, **results)
    print(f"\n{signal:8s} over HTTP: " + "  ".join(
        f"{name} {r['events_per_second']:,.0f}/s (sender {r['cpu_s_per_million']:.2f}, sink "
        f"{r['sink_cpu_s_per_million']:.2f} CPU-s/M; {r['wire_bytes_per_event']:.0f} B/event)"
        for name, r in results.items())
        + f"  patchable zstd/none: rate x{rate_ratio:.2f}, sender CPU per event x{cpu_ratio:.2f}")


@pytest.mark.parametrize("signal", list(BATCH_SIZES))
def test_patchable_zstd_sender_cpu_at_an_equal_rate(benchmark, zloaded, sink, signal):
    modes = {"none": ("none", PATCHABLE), "patchable_gzip": ("gzip", PATCHABLE), "patchable": ("zstd", PATCHABLE)}
    runs: dict[str, list[dict]] = {name: [] for name in modes}

    def alternate():
        for _ in range(ROUNDS):
            for name, (compression, encoder) in modes.items():
                runs[name].append(send_for(zloaded, sink, signal, compression, encoder, rate=EQUAL_RATE))

    benchmark.pedantic(alternate, rounds=1)
    results = {name: median_of(values) for name, values in runs.items()}
    cpu_ratio = results["patchable"]["cpu_s_per_million"] / results["none"]["cpu_s_per_million"]
    benchmark.extra_info.update(kind="zstd_equal_rate", signal=signal, ratio=1 / cpu_ratio, rate=EQUAL_RATE,
                                rounds=ROUNDS, **results)
    print(f"\n{signal:8s} at {EQUAL_RATE:,}/s: " + "  ".join(
        f"{name} sender {r['cpu_s_per_million']:.3f} CPU-s/M ({r['events_per_second']:,.0f}/s)"
        for name, r in results.items()) + f"  patchable zstd/none: sender CPU per event x{cpu_ratio:.2f}")
