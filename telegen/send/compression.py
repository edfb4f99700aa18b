"""gzip request bodies for the carriers that take them as bytes (OTLP/HTTP).

Two ways, one result (a gzip member per request):
- **patchable** (the default): each request of a batch is compressed once, at
  load time, into a stream whose changing bytes stay patchable in place
  (telegen/_gzip.pyx, DESIGN.md "Patchable gzip"); a send patches the batch
  as usual, then writes the changed bytes' 9-bit literal codes into a copy of
  the compressed template and sets the trailer's CRC32.
- **zlib**: gzip.compress on every request, kept to compare against.

`byte_classes` is where the match rule comes from: it reads the patch plan
and names, for every byte the kernel writes, what the byte will become, so
the compressor only ever lets a match copy bytes that are sure to be equal.
"""
from __future__ import annotations

import dataclasses
import gzip
import time
from collections.abc import Sequence

import numpy as np
from zlib_ng.zlib_ng import crc32  # ~12x zlib's crc32 here (docs/performance.md): the CRC is most of a send's cost

from .. import _fastpath, _gzip
from .batches import Batch, SignalTemplates
from .transport import HTTP_PROTOBUF, Target

IDENTITY = "identity"
PATCHABLE = "patchable"
ZLIB = "zlib"
GZIP_ENCODERS: tuple[str, ...] = (PATCHABLE, ZLIB)
# zlib's default level, as grpcio's gzip uses: the carriers compare like for like.
ZLIB_LEVEL = 6

# Kinds of written bytes; each kind's key columns say what decides the new value.
_ID16, _ID8, _TIME_ADD, _TIME_WINDOW, _TIME_NOW, _TIME_START, _COUNTER, _GAUGE, _HIST_COUNT, _BUCKET, \
    _HIST_SUM, _REPLICA = range(1, 13)


def byte_classes(plan: _fastpath.PatchPlan, data: bytes | memoryview) -> np.ndarray:
    """uint32 per byte of `data`: the byte's value where the patch kernel
    leaves it alone, else 256 + a class number shared exactly by the bytes
    that always get the same new value (so a match between them stays true
    after every patch). Follows the kernel's writes in its order: the last
    write to a byte decides its class."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if len(raw) != plan.size:
        raise ValueError(f"buffer is {len(raw)} bytes but the plan was scanned from {plan.size}")
    # Every write, in the kernel's order, is a key row (kind and three
    # columns); `last[i]` is the row of the last write to byte i (-1: none).
    last = np.full(len(raw), -1, dtype=np.int64)
    written: list[np.ndarray] = []
    count = 0

    def old64(offsets: np.ndarray) -> np.ndarray:
        """The 8-byte little-endian values at `offsets`."""
        cells = raw[offsets[:, None] + np.arange(8)]
        return cells.copy().view("<u8")[:, 0].view(np.int64)

    def put(offsets: np.ndarray, width: int, kind: int, a: np.ndarray | int = 0, b: np.ndarray | int = 0,
            with_template_byte: bool = False) -> None:
        nonlocal count
        if not len(offsets):
            return
        index = (offsets[:, None] + np.arange(width)).ravel()
        rows = np.empty((len(index), 4), dtype=np.int64)
        rows[:, 0] = kind
        rows[:, 1] = np.repeat(np.broadcast_to(a, offsets.shape), width)
        rows[:, 2] = np.repeat(np.broadcast_to(b, offsets.shape), width)
        # Byte k of a field gets a value that depends on k (and, for an XOR
        # or a digit, on its template byte).
        rows[:, 3] = np.tile(np.arange(width) * 256, len(offsets)) + (raw[index] if with_template_byte else 0)
        last[index] = np.arange(count, count + len(index))
        written.append(rows)
        count += len(index)

    ids16, ids8 = plan.ids16, plan.ids8
    put(ids16[:, 0], 16, _ID16, ids16[:, 1], with_template_byte=True)
    put(ids8[:, 0], 8, _ID8, ids8[:, 1], with_template_byte=True)
    add = plan.time_add
    put(add[:, 0], 8, _TIME_ADD, add[:, 1], old64(add[:, 0]) if len(add) else 0)
    window = plan.time_window
    if len(window):
        put(window[:, 0], 8, _TIME_WINDOW, old64(window[:, 1]) - old64(window[:, 0]))
    put(plan.time_now, 8, _TIME_NOW)
    put(plan.time_start, 8, _TIME_START)
    counters = plan.counters
    put(counters[:, 0], 8, _COUNTER, counters[:, 1], old64(counters[:, 0]) if len(counters) else 0)
    gauges = plan.gauges
    put(gauges[:, 0], 8, _GAUGE, gauges[:, 0])  # a random step each: unique
    histograms, runs = plan.histograms, plan.bucket_runs
    put(histograms[:, 0], 8, _HIST_COUNT, histograms[:, 0])
    if len(runs):
        buckets = np.concatenate([start + 8 * np.arange(count) for start, count in runs if count]
                                 or [np.zeros(0, dtype=np.int64)]).astype(np.int64)
        values = old64(buckets) if len(buckets) else buckets
        growing = values != 0  # an empty bucket stays 0 however far counts grow
        put(buckets[growing], 8, _BUCKET, values[growing])
        last[(buckets[~growing, None] + np.arange(8)).ravel()] = -1
    if len(histograms):
        counts = old64(histograms[:, 0])
        sums = histograms[(histograms[:, 1] >= 0) & (counts != 0), 1]
        put(sums, 8, _HIST_SUM, sums)
    replicas = plan.replicas
    for width in np.unique(replicas[:, 1]) if len(replicas) else ():
        put(replicas[replicas[:, 1] == width, 0], int(width), _REPLICA, int(width), with_template_byte=True)
    classes = raw.astype(np.uint32)
    changed = np.flatnonzero(last >= 0)
    if len(changed):
        rows = np.concatenate(written)[last[changed]]
        # Number the distinct rows (np.unique(axis=0) does the same, 10x slower).
        order = np.lexsort(rows.T[::-1])
        ordered = rows[order]
        starts = np.empty(len(rows), dtype=bool)
        starts[0] = True
        np.any(ordered[1:] != ordered[:-1], axis=1, out=starts[1:])
        numbers = np.empty(len(rows), dtype=np.uint32)
        numbers[order] = np.cumsum(starts, dtype=np.uint32) - 1
        classes[changed] = 256 + numbers
    return classes


def body_encoding(target: Target, gzip_encoder: str) -> str:
    """What the engine does to a signal's request bodies: IDENTITY (sent as
    patched: uncompressed, or gRPC, which compresses inside grpcio because it
    has no supported way to send a message already compressed), or the gzip
    encoder for a carrier that sends the bytes it is given (OTLP/HTTP)."""
    if target.compression != "gzip" or target.protocol != HTTP_PROTOBUF:
        return IDENTITY
    return gzip_encoder


def with_gzip(loaded: SignalTemplates, write=None) -> SignalTemplates:
    """`loaded` with every batch compressed into patchable gzip templates
    (once per run, before workers fork, so they share them)."""
    if all(batch.gzip for batch in loaded.batches):
        return loaded
    started = time.monotonic()
    batches = tuple(batch if batch.gzip else dataclasses.replace(batch, gzip=compress_batch(batch))
                    for batch in loaded.batches)
    if write is not None:
        raw = sum(len(b.data) for b in batches)
        packed = sum(len(t.data) for b in batches for t in b.gzip)
        write(f"Compressed {len(batches)} {loaded.signal} batches for gzip in {time.monotonic() - started:.1f} s "
              f"({raw / 1e6:,.1f} MB -> {packed / 1e6:,.1f} MB, {packed / max(1, loaded.events):.0f} bytes per event)")
    return dataclasses.replace(loaded, batches=batches)


def compress_batch(batch: Batch, max_chain: int = _gzip.DEFAULT_CHAIN) -> tuple[_gzip.GzipTemplate, ...]:
    """The batch's requests (its pieces), each compressed once into a patchable gzip member."""
    classes = byte_classes(batch.plan, batch.data)
    return tuple(_gzip.compress(batch.data, classes, start, end, max_chain) for start, end in batch.pieces)


def patched_bodies(templates: Sequence[_gzip.GzipTemplate], raw: bytes) -> list[bytes]:
    """The gzip bodies of one send: `raw` is the batch as the kernel patched it."""
    view = memoryview(raw)
    return [_gzip.patch(t, raw, crc32(view[t.start:t.end])) for t in templates]


def zlib_bodies(requests: Sequence[bytes], level: int = ZLIB_LEVEL) -> list[bytes]:
    """gzip members made the ordinary way, one zlib pass per request."""
    return [gzip.compress(r, level, mtime=0) for r in requests]
