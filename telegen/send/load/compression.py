"""Compressed request bodies (gzip, zstd) for the carriers that take them as
bytes (OTLP/HTTP).

Two ways per codec, one result (a gzip member or a zstd frame per request):
- **patchable** (the default): each request of a batch is compressed once, at
  load time, into a stream whose changing bytes stay patchable in place
  (docs/design.md, "Patchable gzip" and "Patchable zstd"); a send patches the
  batch as usual, then
  - gzip (telegen/_gzip.pyx): writes the changed bytes' 9-bit literal codes
    into a copy of the compressed template and sets the trailer's CRC32;
  - zstd (telegen/_zstd.pyx): copies the changed bytes into a copy of the
    frame, where they sit as raw literals (no checksum to set).
- **zlib** (gzip) and **library** (zstd, the zstandard package, level 1):
  the codec's library on every request, kept to compare against.

`byte_classes` is where the match rule comes from: it reads the patch plan
and names, for every byte the kernel writes, what the byte will become, so
the compressor only ever lets a match copy bytes that are sure to be equal.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import time
from collections.abc import Sequence

import numpy as np
from zlib_ng.zlib_ng import crc32  # ~12x zlib's crc32 here (docs/performance.md): the CRC is most of a send's cost

from ... import _fastpath, _gzip, _zstd
from ..transport.base import CURL, GRPC, HTTP_PROTOBUF, Target
from .batches import Batch, SignalTemplates

PATCHABLE = "patchable"
ZLIB = "zlib"
LIBRARY = "library"
GZIP_ENCODERS: tuple[str, ...] = (PATCHABLE, ZLIB)
ZSTD_ENCODERS: tuple[str, ...] = (PATCHABLE, LIBRARY)
# zlib's default level, as grpcio's gzip uses: the carriers compare like for like.
ZLIB_LEVEL = 6
# zstd's fastest standard level: the library's cheapest bodies, what a sender
# compressing per request would choose.
ZSTD_LEVEL = 1


@dataclasses.dataclass(frozen=True)
class BodyEncoding:
    """What the engine does to a signal's request bodies: `codec` "identity"
    (sent as patched: uncompressed, or gRPC, which compresses inside grpcio),
    "gzip" or "zstd" (compressed by the engine, for a carrier that sends the
    bytes it is given), by `encoder` (PATCHABLE, ZLIB or LIBRARY). `framed`:
    each body is a gRPC message, its 5-byte prefix written in the same
    allocation as the body (gRPC on libcurl), so framing costs no copy."""

    codec: str
    encoder: str = ""
    framed: bool = False

    @property
    def patchable(self) -> bool:
        return self.encoder == PATCHABLE

    def head(self, batch: Batch) -> bytes:
        """What the patch kernel writes before the batch: its gRPC message
        prefix where the batch goes out whole and uncompressed, else nothing."""
        if self.framed and self.codec == "identity" and len(batch.pieces) == 1:
            return grpc_head(len(batch.data), compressed=False)
        return b""

    def __str__(self) -> str:
        return self.codec if self.codec == "identity" else f"{self.codec}, {self.encoder}"


def grpc_head(length: int, compressed: bool) -> bytes:
    """A gRPC message prefix: the compressed flag and the big-endian length
    (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md)."""
    return (b"\x01" if compressed else b"\x00") + length.to_bytes(4, "big")


def _framed(messages: Sequence[bytes | memoryview], compressed: bool) -> list[bytes]:
    return [b"".join((grpc_head(len(m), compressed), m)) for m in messages]


IDENTITY = BodyEncoding("identity")

def byte_classes(plan: _fastpath.PatchPlan, data: bytes | memoryview) -> np.ndarray:
    """uint32 per byte of `data`: the byte's value where the patch kernel
    leaves it alone, else 256 + a class number shared exactly by the bytes
    that always get the same new value (so a match between them stays true
    after every patch). Follows the kernel's writes in its order: the last
    write to a byte decides its class."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if len(raw) != plan.size:
        raise ValueError(f"buffer is {len(raw)} bytes but the plan was scanned from {plan.size}")
    classes = raw.astype(np.uint32)
    # Each kind of write numbers its bytes from `base` up, so kinds never share a class.
    base = 256

    def old64(offsets: np.ndarray) -> np.ndarray:
        """The 8-byte little-endian values at `offsets`."""
        return raw[offsets[:, None] + np.arange(8)].copy().view("<i8")[:, 0]

    def field_numbers(*keys: np.ndarray) -> tuple[np.ndarray, int]:
        """A number per field, equal exactly where all its keys are; and how many."""
        order = np.lexsort(keys[::-1])
        new = np.zeros(len(order), dtype=bool)
        for key in keys:
            ordered = key[order]
            new[1:] |= ordered[1:] != ordered[:-1]
        numbers = np.empty(len(order), dtype=np.int64)
        numbers[order] = np.cumsum(new)
        return numbers, int(new.sum()) + 1 if len(order) else 0

    def put(offsets: np.ndarray, width: int, numbers: np.ndarray, count: int) -> None:
        """Byte k of a field numbered f gets class base + f * width + k."""
        nonlocal base
        if len(offsets):
            index = offsets[:, None] + np.arange(width)
            classes[index] = base + numbers[:, None].astype(np.uint32) * width + np.arange(width, dtype=np.uint32)
        base += count * width

    def put_xor(offsets: np.ndarray, width: int, groups: np.ndarray, n_groups: int) -> None:
        """An id XORed with its group's key: byte k's new value depends on the
        group, k and its template byte."""
        nonlocal base
        if len(offsets):
            index = offsets[:, None] + np.arange(width)
            classes[index] = (base + (groups[:, None].astype(np.uint32) * width + np.arange(width, dtype=np.uint32))
                              * 256 + raw[index])
        base += n_groups * width * 256

    put_xor(plan.ids16[:, 0], 16, plan.ids16[:, 1], plan.n_id_groups)
    put_xor(plan.ids8[:, 0], 8, plan.ids8[:, 1], plan.n_id_groups)
    add = plan.time_add
    if len(add):  # the group's shift added to the template time
        put(add[:, 0], 8, *field_numbers(add[:, 1], old64(add[:, 0])))
    window = plan.time_window
    if len(window):  # now less the template's (end - start)
        put(window[:, 0], 8, *field_numbers(old64(window[:, 1]) - old64(window[:, 0])))
    series = plan.time_series
    if len(series):  # now less the template's distance to its series' last point
        put(series[:, 0], 8, *field_numbers(old64(series[:, 1]) - old64(series[:, 0])))
    for offsets in (plan.time_now, plan.time_start):  # one value for all
        put(offsets, 8, np.zeros(len(offsets), dtype=np.int64), 1)
    starts = plan.series_start
    if len(starts):  # the start less the template's distance from min(start, first time) to the last point
        own, first = old64(starts[:, 0]).view(np.uint64), old64(starts[:, 1]).view(np.uint64)
        put(starts[:, 0], 8, *field_numbers(old64(starts[:, 2]) - np.minimum(own, first).view(np.int64)))
    counters = plan.counters
    if len(counters):  # grown from the template value by the step
        put(counters[:, 0], 8, *field_numbers(counters[:, 1], old64(counters[:, 0])))
    gauges = plan.gauges  # a random step each: unique
    put(gauges[:, 0], 8, np.arange(len(gauges)), len(gauges))
    histograms, runs = plan.histograms, plan.bucket_runs
    put(histograms[:, 0], 8, np.arange(len(histograms)), len(histograms))
    if len(runs):
        counts = runs[:, 1]
        first = np.repeat(np.cumsum(counts) - counts, counts)  # each bucket's run starts at this bucket number
        buckets = np.repeat(runs[:, 0], counts) + 8 * (np.arange(counts.sum()) - first)
        values = old64(buckets) if len(buckets) else np.zeros(0, dtype=np.int64)
        growing = values != 0  # an empty bucket stays 0 however far counts grow
        put(buckets[growing], 8, *field_numbers(values[growing]))
        empty = (buckets[~growing, None] + np.arange(8)).ravel()
        classes[empty] = raw[empty]
    if len(histograms):
        sums = histograms[(histograms[:, 1] >= 0) & (old64(histograms[:, 0]) != 0), 1]
        put(sums, 8, np.arange(len(sums)), len(sums))
    exponential, varints = plan.exp_histograms, plan.varint_runs
    if len(exponential):  # count, sum and zero count: each its own
        fields = np.concatenate([exponential[:, 0], exponential[exponential[:, 1] >= 0, 1],
                                 exponential[exponential[:, 2] >= 0, 2]])
        put(fields, 8, np.arange(len(fields)), len(fields))
    if len(varints):  # a padded bucket count grows from its template value by the step; 0 stays 0
        counts = varints[:, 1]
        first = np.repeat(np.cumsum(counts) - counts, counts)
        buckets = np.repeat(varints[:, 0], counts) + 10 * (np.arange(counts.sum()) - first)
        low, high = old64(buckets), old64(buckets + 2)
        growing = (low & 0x7F7F7F7F7F7F7F7F) != 0
        growing |= (high >> 48) & 0x7F7F != 0
        put(buckets[growing], 10, *field_numbers(low[growing], high[growing]))
        same = (buckets[~growing, None] + np.arange(10)).ravel()
        classes[same] = raw[same]
    values = plan.series_values
    # The template value plus its series' increase (last - first) times the
    # replay's time over the series' span (last time - first time); a
    # histogram's count (kind 4) plus what its parts grew by: unique.
    if len(values):
        counts = values[values[:, 3] == 4, 0]
        put(counts, 8, np.arange(len(counts)), len(counts))
    for padded in (False, True):
        rows = values[((values[:, 3] == 3) == padded) & (values[:, 3] != 4)] if len(values) else values
        if not len(rows):
            continue
        span = old64(rows[:, 5]) - old64(rows[:, 4])
        if padded:  # 10-byte varints: keyed by their first 8 bytes and the last 2
            def key(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                return old64(offsets), old64(offsets + 2)
            put(rows[:, 0], 10, *field_numbers(*key(rows[:, 0]), *key(rows[:, 1]), *key(rows[:, 2]), span))
        else:
            put(rows[:, 0], 8, *field_numbers(rows[:, 3], old64(rows[:, 0]), old64(rows[:, 1]), old64(rows[:, 2]),
                                              span))
    replicas = plan.replicas
    for width in np.unique(replicas[:, 1]) if len(replicas) else ():
        offsets = replicas[replicas[:, 1] == width, 0]
        put_xor(offsets, int(width), np.zeros(len(offsets), dtype=np.int64), 1)  # digit k of the replica number
    return classes


def body_encoding(target: Target, gzip_encoder: str = PATCHABLE, zstd_encoder: str = PATCHABLE) -> BodyEncoding:
    """How a signal's request bodies are made: compressed by the engine where
    the carrier sends the bytes it is given (OTLP/HTTP, gRPC on libcurl, whose
    bodies are also framed as gRPC messages), else IDENTITY (uncompressed, or
    gRPC on grpcio, which compresses gzip itself, having no supported way to
    send a message compressed in advance)."""
    framed = target.protocol == GRPC and target.grpc_client == CURL
    if not (framed or target.protocol == HTTP_PROTOBUF):
        return IDENTITY
    if target.compression not in ("gzip", "zstd"):
        return BodyEncoding("identity", framed=True) if framed else IDENTITY
    return BodyEncoding(target.compression, gzip_encoder if target.compression == "gzip" else zstd_encoder,
                        framed=framed)


def with_gzip(loaded: SignalTemplates, write=None) -> SignalTemplates:
    """`loaded` with every batch compressed into patchable gzip templates
    (once per run, before workers fork, so they share them)."""
    return _with_templates(loaded, "gzip", compress_batch, write)


def _with_templates(loaded: SignalTemplates, codec: str, compress, write=None) -> SignalTemplates:
    """`loaded` with each batch's `codec` field (gzip, zstd) filled by `compress(batch)` where empty."""
    if all(getattr(batch, codec) for batch in loaded.batches):
        return loaded
    started = time.monotonic()
    batches = tuple(batch if getattr(batch, codec) else dataclasses.replace(batch, **{codec: compress(batch)})
                    for batch in loaded.batches)
    if write is not None:
        raw = sum(len(b.data) for b in batches)
        packed = sum(len(t.data) for b in batches for t in getattr(b, codec))
        write(f"Compressed {len(batches)} {loaded.signal} batches for {codec} in {time.monotonic() - started:.1f} s "
              f"({raw / 1e6:,.1f} MB -> {packed / 1e6:,.1f} MB, {packed / max(1, loaded.events):.0f} bytes per event)")
    return dataclasses.replace(loaded, batches=batches)


def compress_batch(batch: Batch, max_chain: int = _gzip.DEFAULT_CHAIN) -> tuple[_gzip.GzipTemplate, ...]:
    """The batch's requests (its pieces), each compressed once into a patchable gzip member."""
    classes = byte_classes(batch.plan, batch.data)
    return tuple(_gzip.compress(batch.data, classes, start, end, max_chain) for start, end in batch.pieces)


def patched_bodies(templates: Sequence[_gzip.GzipTemplate], raw: bytes, framed: bool = False) -> list[bytes]:
    """The gzip bodies of one send: `raw` is the batch as the kernel patched
    it; `framed`: each after its gRPC message prefix."""
    view = memoryview(raw)
    if framed:
        return [_gzip.patch(t, raw, crc32(view[t.start:t.end]), grpc_head(len(t.data), compressed=True))
                for t in templates]
    return [_gzip.patch(t, raw, crc32(view[t.start:t.end])) for t in templates]


def zlib_bodies(requests: Sequence[bytes], level: int = ZLIB_LEVEL) -> list[bytes]:
    """gzip members made the ordinary way, one zlib pass per request."""
    return [gzip.compress(r, level, mtime=0) for r in requests]


def with_zstd(loaded: SignalTemplates, write=None) -> SignalTemplates:
    """`loaded` with every batch compressed into patchable zstd frames (once
    per run, before workers fork, so they share them)."""
    return _with_templates(loaded, "zstd", compress_batch_zstd, write)


def compress_batch_zstd(batch: Batch, max_chain: int = _zstd.DEFAULT_CHAIN,
                        window_log: int = _zstd.DEFAULT_WINDOW_LOG) -> tuple[_zstd.ZstdTemplate, ...]:
    """The batch's requests (its pieces), each compressed once into a patchable zstd frame."""
    classes = byte_classes(batch.plan, batch.data)
    return tuple(_zstd.compress(batch.data, classes, start, end, max_chain, window_log)
                 for start, end in batch.pieces)


def patched_zstd_bodies(templates: Sequence[_zstd.ZstdTemplate], raw: bytes, framed: bool = False) -> list[bytes]:
    """The zstd bodies of one send: `raw` is the batch as the kernel patched
    it; `framed`: each after its gRPC message prefix."""
    if framed:
        return [_zstd.patch(t, raw, grpc_head(len(t.data), compressed=True)) for t in templates]
    return [_zstd.patch(t, raw) for t in templates]


def library_zstd_bodies(requests: Sequence[bytes], level: int = ZSTD_LEVEL) -> list[bytes]:
    """zstd frames made the ordinary way, one library call per request."""
    compressor = _library_compressor(level)
    return [compressor.compress(r) for r in requests]


@functools.lru_cache(maxsize=4)
def _library_compressor(level: int):
    import zstandard

    # A compressor holds its context: made once per process and level, as a
    # sender that compresses per request would keep it.
    return zstandard.ZstdCompressor(level=level)


def with_compression(loaded: SignalTemplates, encoding: BodyEncoding, write=None) -> SignalTemplates:
    """`loaded` with what `encoding` needs made once: patchable gzip or zstd templates, or nothing."""
    if not encoding.patchable:
        return loaded
    return with_gzip(loaded, write) if encoding.codec == "gzip" else with_zstd(loaded, write)


def bodies(batch: Batch, data: bytes, encoding: BodyEncoding, headed: bool = False) -> list[bytes]:
    """The request bodies of one send of `batch`, `data` being it patched
    (`headed`: after encoding.head(batch), as the kernel wrote it)."""
    framed = encoding.framed
    if encoding.patchable:
        if encoding.codec == "gzip" and batch.gzip:
            return patched_bodies(batch.gzip, data, framed)
        if encoding.codec == "zstd" and batch.zstd:
            return patched_zstd_bodies(batch.zstd, data, framed)
    if headed:
        return [data]
    if encoding.codec == "identity" and framed:
        # One copy per piece: its prefix and its bytes joined from a view.
        view = memoryview(data)
        return _framed([view] if len(batch.pieces) == 1 else [view[a:b] for a, b in batch.pieces], False)
    requests = [data] if len(batch.pieces) == 1 else [data[a:b] for a, b in batch.pieces]
    if encoding.codec == "gzip":
        requests = zlib_bodies(requests)
    elif encoding.codec == "zstd":
        requests = library_zstd_bodies(requests)
    return _framed(requests, True) if framed else requests
