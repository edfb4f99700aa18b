"""The load cache: a signal's batches and patch plans saved once, then mapped.

Loading builds batches (regrouped requests) and scans them into patch plans.
With `input.cache_dir` set, the result is written to one file per (template
file, batch settings) and every later load maps that file instead: in a
fraction of a second, and with the pages shared. N senders on one machine
pointed at one cache directory hold one copy of the batches in memory, not N:
the page cache's. Senders that start together build it once: the first takes
a lock and builds, the others wait for it and map the result.

A run that sends patchable gzip or zstd (OTLP/HTTP with compression gzip or
zstd) caches the batches' compressed templates too, in a second file beside
the first (`.gzip` or `.zstd`, built the first time such a run loads them):
compressing the full example config takes ~10 s (gzip) or more (zstd),
reading it back well under one.

A file is written to a temporary name and renamed into place, so a reader
sees a whole file or none. Its name carries everything the batches depend on
(the template file's path, size, modification time and inode; batch sizes;
the replica attribute's width; telegen's version), so a changed template or
setting simply makes a new one. A file that fails its checks is rebuilt.

File layout: MAGIC, the header's length (8 bytes, little-endian), the header
(JSON: batches, their pieces and plan scalars, where each array starts),
padding to a 64-byte boundary, then the body: per batch its request bytes and
its plan arrays, each 8-byte aligned.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import mmap
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ... import _fastpath, _gzip, _zstd
from ..._version import __version__
from ...atomic import AtomicFile
from ...errors import TemplateFileError
from ..shard import SeriesCopies
from .batches import Batch, SignalTemplates, load_signal
from .compression import with_gzip, with_zstd

MAGIC = b"TELEGEN-LOAD-CACHE\n"
FORMAT = 4  # 2: plans carry time_series and series_values (metric series kept whole); 3: series_start, and
           # series_values name their series' first and last times; 4: group_ids, time_keys (keyed ids),
           # exp_histograms and varint_runs
GZIP_MAGIC = b"TELEGEN-GZIP-CACHE\n"
GZIP_FORMAT = 4  # 2: byte classes of series times and values; 3: of series starts, values keyed by their span;
                # 4: of exponential histograms that grow
ZSTD_MAGIC = b"TELEGEN-ZSTD-CACHE\n"
ZSTD_FORMAT = 2  # 2: a block's own FSE tables
_ALIGN = 64


class CacheError(ValueError):
    """A cache file that cannot be used as it is (damaged, or another format)."""


def cache_file(cache_dir: str | os.PathLike, signal: str, template: str | os.PathLike, per_batch: int,
               max_bytes: int, replica_width: int) -> Path:
    """Where the batches of `template`, built with these settings, are cached."""
    path = Path(template).resolve()
    stat = path.stat()
    identity = json.dumps([FORMAT, __version__, signal, str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino,
                           per_batch, max_bytes, replica_width])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return Path(cache_dir) / f"{path.stem}-{digest}.batches"


def load_cached(signal: str, template: str | os.PathLike, per_batch: int, max_bytes: int, copies: SeriesCopies,
                cache_dir: str | os.PathLike, write: Callable[[str], None] = print,
                gzip: bool = False, zstd: bool = False) -> SignalTemplates:
    """The batches of `template` from the cache, built and saved first if they
    are not there; with `gzip` (`zstd`), their patchable gzip templates
    (zstd frames) too. A cache directory that cannot be written costs the
    sharing, not the run: the batches are built in memory and the reason is said."""
    loaded = _load_batches(signal, template, per_batch, max_bytes, copies, cache_dir, write)
    if not gzip and not zstd:
        return loaded
    codec = "gzip" if gzip else "zstd"
    fill = with_gzip if gzip else with_zstd
    target = cache_file(cache_dir, signal, template, per_batch, max_bytes, copies.width).with_suffix(f".{codec}")
    try:
        with file_lock(target):
            if target.exists():
                try:
                    return open_compressed_cache(target, loaded, codec)
                except CacheError as exc:
                    write(f"Rebuilding the {codec} cache {target}: {exc}")
            compressed = fill(loaded, write)
            save_compressed(compressed, target, codec)
            write(f"Saved the {codec} cache {target} ({target.stat().st_size / 2**20:,.1f} MiB)")
            return compressed
    except OSError as exc:
        write(f"Cannot use the {codec} cache in {cache_dir} ({exc.strerror or exc}); compressing {signal} without it")
        return fill(loaded, write)


def _load_batches(signal: str, template: str | os.PathLike, per_batch: int, max_bytes: int, copies: SeriesCopies,
                  cache_dir: str | os.PathLike, write: Callable[[str], None]) -> SignalTemplates:
    try:
        target = cache_file(cache_dir, signal, template, per_batch, max_bytes, copies.width)
    except FileNotFoundError:
        raise TemplateFileError(f"template file not found: {template}") from None
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        with file_lock(target):
            if target.exists():
                try:
                    return open_cache(target, copies)
                except CacheError as exc:
                    write(f"Rebuilding the load cache {target}: {exc}")
            loaded = load_signal(signal, template, per_batch, max_bytes, copies, write)
            save(loaded, target)
            write(f"Saved the load cache {target} ({target.stat().st_size / 2**20:,.1f} MiB)")
            del loaded  # map the saved file instead: shared pages, no second copy
            return open_cache(target, copies)
    except OSError as exc:
        write(f"Cannot use the load cache in {cache_dir} ({exc.strerror or exc}); loading {signal} without it")
        return load_signal(signal, template, per_batch, max_bytes, copies, write)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (a `.lock` file beside it), across the
    processes of one machine: one builder at a time per cache file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def save(loaded: SignalTemplates, target: str | os.PathLike) -> None:
    """Write `loaded` to `target` atomically (a temporary file, then a rename)."""
    target = Path(target)
    batches: list[dict[str, Any]] = []
    offset = 0
    for batch in loaded.batches:
        entry: dict[str, Any] = {"data": [offset, len(batch.data)], "pieces": [list(p) for p in batch.pieces],
                                 "piece_events": list(batch.piece_events), "plan": batch.plan.scalars(),
                                 "arrays": {}}
        offset = _aligned(offset + len(batch.data), 8)
        for name, array in batch.plan.arrays().items():
            entry["arrays"][name] = [offset, len(array)]
            offset += array.nbytes
        batches.append(entry)
    header = json.dumps({"format": FORMAT, "telegen": __version__, "signal": loaded.signal,
                         "templates": loaded.templates, "events": loaded.events, "batches": batches}).encode()
    with AtomicFile(target) as out:
        prefix = MAGIC + len(header).to_bytes(8, "little") + header
        out.write(prefix + b"\0" * (_aligned(len(prefix), _ALIGN) - len(prefix)))
        written = 0
        for batch in loaded.batches:
            out.write(batch.data)
            written = _pad(out, written + len(batch.data), 8)
            for array in batch.plan.arrays().values():
                out.write(np.ascontiguousarray(array).tobytes())
                written += array.nbytes


def open_cache(path: str | os.PathLike, copies: SeriesCopies) -> SignalTemplates:
    """Map a cache file: every batch's data and plan arrays are read-only views
    of the mapping, shared with any other process that maps it."""
    with open(path, "rb") as file:
        try:
            mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file
            raise CacheError("the file is empty") from None
    try:
        return _read(mapping, copies)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise CacheError(str(exc) or type(exc).__name__) from None


def _header(data: bytes | mmap.mmap, magic: bytes, fmt: int, what: str) -> tuple[dict[str, Any], int]:
    """A cache file's JSON header, checked, and where its body starts."""
    if data[:len(magic)] != magic:
        raise CacheError(f"not a telegen {what}")
    header_at = len(magic) + 8
    header_size = int.from_bytes(data[len(magic):header_at], "little")
    header = json.loads(data[header_at:header_at + header_size])
    if header.get("format") != fmt or header.get("telegen") != __version__:
        raise CacheError(f"written by telegen {header.get('telegen')} (format {header.get('format')})")
    return header, _aligned(header_at + header_size, _ALIGN)


def _read(mapping: mmap.mmap, copies: SeriesCopies) -> SignalTemplates:
    header, body = _header(mapping, MAGIC, FORMAT, "load cache")
    view = memoryview(mapping)
    batches = []
    for entry in header["batches"]:
        start, length = entry["data"]
        if body + start + length > len(mapping):
            raise CacheError("the file is shorter than its header says (truncated?)")
        arrays = {}
        for name, (dtype, columns) in _fastpath.PLAN_ARRAYS.items():
            at, rows = entry["arrays"][name]
            count = rows * max(columns, 1)
            array = np.frombuffer(mapping, dtype=dtype, count=count, offset=body + at)
            arrays[name] = array.reshape(rows, columns) if columns else array
        plan = _fastpath.plan_from_arrays(arrays=arrays, **entry["plan"])
        if plan.size != length:
            raise CacheError("a batch's plan does not match its data")
        batches.append(Batch(signal=header["signal"], data=view[body + start:body + start + length], plan=plan,
                             events=plan.events, pieces=tuple(tuple(p) for p in entry["pieces"]),
                             piece_events=tuple(entry["piece_events"])))
    return SignalTemplates(signal=header["signal"], templates=header["templates"], events=header["events"],
                           batches=tuple(batches), copies=copies)


def _gzip_parts(t: _gzip.GzipTemplate) -> tuple[tuple[str, bytes], ...]:
    return ("data", t.data), ("sites", t.sites.tobytes()), ("codes", t.codes.tobytes())


def _gzip_template(part: Callable[[str], bytes], start: int, end: int) -> _gzip.GzipTemplate:
    return _gzip.template_from_parts(part("data"), start, end, np.frombuffer(part("sites"), dtype=np.int64),
                                     np.frombuffer(part("codes"), dtype=np.uint16))


def _zstd_parts(t: _zstd.ZstdTemplate) -> tuple[tuple[str, bytes], ...]:
    return ("data", t.data), ("runs", t.runs.tobytes())


def _zstd_template(part: Callable[[str], bytes], start: int, end: int) -> _zstd.ZstdTemplate:
    return _zstd.template_from_parts(part("data"), start, end, np.frombuffer(part("runs"), dtype=np.int64))


# Per codec: the file's magic and format, a template's parts, and a template from its parts.
_CODECS: dict[str, tuple[bytes, int, Callable, Callable]] = {
    "gzip": (GZIP_MAGIC, GZIP_FORMAT, _gzip_parts, _gzip_template),
    "zstd": (ZSTD_MAGIC, ZSTD_FORMAT, _zstd_parts, _zstd_template),
}


def save_compressed(loaded: SignalTemplates, target: str | os.PathLike, codec: str) -> None:
    """Write the `codec` (gzip, zstd) templates of `loaded`'s batches to `target` atomically."""
    magic, version, parts_of, _ = _CODECS[codec]
    target = Path(target)
    batches: list[list[dict[str, Any]]] = []
    parts: list[bytes] = []
    offset = 0
    for batch in loaded.batches:
        entries = []
        for t in getattr(batch, codec):
            entry = {"start": t.start, "end": t.end, "size": len(batch.data)}
            for name, part in parts_of(t):
                entry[name] = [offset, len(part)]
                parts.append(part)
                parts.append(b"\0" * (_aligned(len(part), 8) - len(part)))
                offset = _aligned(offset + len(part), 8)
            entries.append(entry)
        batches.append(entries)
    header = json.dumps({"format": version, "telegen": __version__, "signal": loaded.signal,
                         "batches": batches}).encode()
    prefix = magic + len(header).to_bytes(8, "little") + header
    with AtomicFile(target) as out:
        out.write(prefix + b"\0" * (_aligned(len(prefix), _ALIGN) - len(prefix)))
        out.writelines(parts)


def open_compressed_cache(path: str | os.PathLike, loaded: SignalTemplates, codec: str) -> SignalTemplates:
    """`loaded` with its batches' `codec` templates read from `path` (checked
    against the batches and bounds, so a damaged file is a CacheError)."""
    magic, version, _, template_of = _CODECS[codec]
    data = Path(path).read_bytes()
    try:
        header, body = _header(data, magic, version, f"{codec} cache")
        if header["signal"] != loaded.signal or len(header["batches"]) != len(loaded.batches):
            raise CacheError("it does not hold these batches")

        def reader(entry: dict[str, Any]) -> Callable[[str], bytes]:
            def part(name: str) -> bytes:
                at, length = entry[name]
                if body + at + length > len(data):
                    raise CacheError("the file is shorter than its header says (truncated?)")
                return data[body + at:body + at + length]
            return part

        batches = []
        for batch, entries in zip(loaded.batches, header["batches"]):
            if [(e["start"], e["end"], e["size"]) for e in entries] != [(a, b, len(batch.data))
                                                                        for a, b in batch.pieces]:
                raise CacheError("it does not hold these batches")
            templates = tuple(template_of(reader(e), e["start"], e["end"]) for e in entries)
            batches.append(dataclasses.replace(batch, **{codec: templates}))
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise CacheError(str(exc) or type(exc).__name__) from None
    return dataclasses.replace(loaded, batches=tuple(batches))


def _aligned(offset: int, boundary: int) -> int:
    return -(-offset // boundary) * boundary


def _pad(out: AtomicFile, written: int, boundary: int) -> int:
    padding = _aligned(written, boundary) - written
    out.write(b"\0" * padding)
    return written + padding
