"""Templates -> send-ready batches, once, at load time.

A batch is one serialized Export*ServiceRequest holding several templates,
with the items of one resource (and one scope) gathered under a single
ResourceX/ScopeX, kept under the maximum message size, and scanned once into
a patch plan. The regrouping moves bytes at the wire level in compiled code
(`_fastpath.Regrouper`; its twin is telegen/reference/regroup.py): no item is
ever decoded, so the full example config's 825 MB load in seconds.

A single template larger than the message limit (a 100,000-span trace) is cut
into pieces that each fit; the pieces stay one batch, patched together, so the
trace keeps one new trace id and one time shift, and go out as several
requests.
"""
from __future__ import annotations

import functools
import gc
import mmap
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import _fastpath, _gzip, _zstd
from ...errors import TemplateFileError
from ...templates import read_json_records, split_records
from ..shard import SeriesCopies

Buffer = bytes | memoryview
REPLICA_KEY = "telegen.replica"
# How often a long load says how far it has got.
PROGRESS_INTERVAL = 2.0
ANNOUNCE_BYTES = 32 * 2**20  # files this big get a line before loading starts
# How much of a mapped template file is batched before its pages are handed back.
RELEASE_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Batch:
    """One send unit: `data` (a request, or several concatenated ones) and
    its patch plan. `pieces` are the (start, end) byte ranges sent as separate
    requests; one piece spans the whole buffer unless a template was too big."""

    signal: str
    data: bytes
    plan: _fastpath.PatchPlan
    events: int
    pieces: tuple[tuple[int, int], ...]
    piece_events: tuple[int, ...]
    # Each piece compressed once into a patchable gzip member, when the run
    # sends gzip bodies (telegen.send.load.compression); empty otherwise.
    gzip: tuple[_gzip.GzipTemplate, ...] = ()
    # Likewise into a patchable zstd frame, when the run sends zstd bodies.
    zstd: tuple[_zstd.ZstdTemplate, ...] = ()
    # Correlation (telegen.send.load.correlate), set once every signal is
    # loaded: a trace batch's row in the run's trace clock (-1: none); for a
    # batch naming traces, the clock row of each id group's trace (-1: none),
    # and the rows that must have gone out before its first send.
    slot: int = -1
    slots: np.ndarray | None = None
    needs: tuple[int, ...] = ()
    # A log batch's time groups keyed to a sent trace: that trace's clock row each.
    tied: np.ndarray | None = None
    # The delayed_children scenario: the non-root spans of some of a trace
    # batch's traces, sent a while after it with its send's keys and time
    # (telegen.send.scenarios.delayed); how many traces they belong to.
    children: Batch | None = None
    delayed_traces: int = 0
    # The churn scenario: the distinct series one copy of this metric batch
    # writes, as OTLP counts them and as a Prometheus-style store does.
    series: tuple[int, int] = (0, 0)

    @functools.cached_property
    def series_period(self) -> float:
        """Seconds the batch must wait between sends so that its metric
        series (several points kept whole, as `telegen import` writes them)
        never overlap in time: the longest series' span plus its shortest
        interval; 0 for a batch without such series."""
        rows = self.plan.time_series
        if not len(rows):
            return 0.0
        raw = np.frombuffer(self.data, dtype=np.uint8)
        def times(offsets: np.ndarray) -> np.ndarray:
            return raw[offsets[:, None] + np.arange(8)].copy().view("<u8")[:, 0]
        distances = times(rows[:, 1]).astype(np.int64) - times(rows[:, 0]).astype(np.int64)
        positive = distances[distances > 0]
        return float(distances.max() + (positive.min() if len(positive) else 0)) / 1e9


@dataclass(frozen=True)
class SignalTemplates:
    signal: str
    templates: int  # records loaded
    events: int  # spans / data points / log records in them
    batches: tuple[Batch, ...]
    # The `telegen.replica` numbers each batch goes out with, once per pass
    # each (metric series multiplier, and the shard's share of the fleet's).
    copies: SeriesCopies = SeriesCopies()

    @property
    def replicas(self) -> int:
        """Times each batch goes out per pass."""
        return self.copies.count

    @property
    def events_per_pass(self) -> int:
        return self.events * self.replicas


def build_batches(signal: str, records: Sequence[Buffer], per_batch: int, max_bytes: int,
                  replicas: int | SeriesCopies = 1, source: str = "<templates>",
                  progress: Callable[[int, int], None] | None = None,
                  batched: Callable[[int], None] | None = None) -> SignalTemplates:
    """Group `records` into batches of about `per_batch` events (traces for
    the traces signal: a trace is never split unless it alone exceeds
    max_bytes) and at most max_bytes per request. `replicas`: copies of each
    batch per pass, numbered 0..replicas-1, or a shard's SeriesCopies.
    `progress(records done, records)` is called every PROGRESS_INTERVAL s;
    `batched(n)` whenever the first n records are in finished batches (no
    longer read), about every RELEASE_BYTES."""
    copies = replicas if isinstance(replicas, SeriesCopies) else SeriesCopies(count=max(1, replicas),
                                                                              total=max(1, replicas))
    # Loading makes many small containers that never form cycles; the cyclic
    # collector would only walk them again and again (13 % of a metrics load).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _build(signal, records, per_batch, max_bytes, copies, source, progress, batched)
    finally:
        if collecting:
            gc.enable()


def _build(signal: str, records: Sequence[Buffer], per_batch: int, max_bytes: int, copies: SeriesCopies,
           source: str, progress: Callable[[int, int], None] | None,
           batched: Callable[[int], None] | None) -> SignalTemplates:
    width = copies.width
    batches: list[Batch] = []
    grouper = _fastpath.Regrouper(signal, width)
    units = size = total_events = 0
    first_pending = 0  # the first record not yet in a finished batch
    unreleased = 0  # bytes of records batched since `batched` was last called
    next_report = time.monotonic() + PROGRESS_INTERVAL
    for index, record in enumerate(records):
        try:
            events = _fastpath.count_events(signal, record)
            total_events += events
            weight = 1 if signal == "traces" else events
            if len(record) > max_bytes:
                if units:
                    batches.append(_finished(signal, grouper, records, first_pending, index, source))
                    grouper, units, size = _fastpath.Regrouper(signal, width), 0, 0
                batches.append(finish_batch(signal, _fastpath.split(signal, record, max_bytes, width)))
                first_pending, unreleased = index + 1, unreleased + len(record)
                continue
            if units and (units + weight > per_batch or size + len(record) > max_bytes):
                batches.append(_finished(signal, grouper, records, first_pending, index, source))
                grouper, units, size = _fastpath.Regrouper(signal, width), 0, 0
                first_pending = index
            grouper.add(record)
        except TemplateFileError:
            raise
        except ValueError as exc:
            raise TemplateFileError(f"{source} record {index}: {exc}") from None
        units += weight
        size += len(record)
        unreleased += len(record)
        if batched is not None and unreleased >= RELEASE_BYTES and first_pending:
            batched(first_pending)
            unreleased = 0
        if progress is not None and time.monotonic() >= next_report:
            progress(index + 1, len(records))
            next_report += PROGRESS_INTERVAL
    if units:
        batches.append(_finished(signal, grouper, records, first_pending, len(records), source))
    return SignalTemplates(signal=signal, templates=len(records), events=total_events, batches=tuple(batches),
                           copies=copies)


def _finished(signal: str, grouper: _fastpath.Regrouper, records: Sequence[Buffer], first: int, end: int,
              source: str) -> Batch:
    """The batch of records[first:end] (regrouped in `grouper`), scanned; a
    record the scan refuses (a valid protobuf of another signal reads as
    this one's fields with the wrong types) is named by its place in the
    file, not by an offset into the joined batch."""
    try:
        return finish_batch(signal, [grouper.build()])
    except ValueError as exc:
        for index in range(first, end):
            try:
                _fastpath.scan(signal, records[index])
            except ValueError as own:
                raise TemplateFileError(f"{source} record {index}: {own}") from None
        raise TemplateFileError(f"{source} records {first}-{end - 1}: {exc}") from None


def finish_batch(signal: str, pieces: Sequence[bytes]) -> Batch:
    """One batch of `pieces` (a request, or the pieces a too-big one was cut into), scanned."""
    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    plan = _fastpath.scan(signal, data)
    bounds = []
    offset = 0
    for part in pieces:
        bounds.append((offset, offset + len(part)))
        offset += len(part)
    piece_events = ((plan.events,) if len(pieces) == 1
                    else tuple(_fastpath.count_events(signal, part) for part in pieces))
    return Batch(signal=signal, data=data, plan=plan, events=plan.events, pieces=tuple(bounds),
                 piece_events=piece_events)


def read_template_file(path: str | os.PathLike, signal: str) -> list[Buffer]:
    """Records of a `.pb` stream (views into the file's bytes, not copies), or
    of an OTLP JSON file (one request per line)."""
    return _read(Path(path), signal)[0]


def _read(path: Path, signal: str) -> tuple[list[Buffer], mmap.mmap | None]:
    if path.suffix == ".json":
        return read_json_records(path, signal), None
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            # Mapped, not read: the records are views of the page cache, with
            # no copy of the file in the process and no fresh pages to fault in.
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except FileNotFoundError:
        raise TemplateFileError(f"template file not found: {path}") from None
    except OSError as exc:
        raise TemplateFileError(f"cannot read template file {path}: {exc.strerror}") from None
    return list(split_records(mapped if mapped is not None else b"", str(path))), mapped


def _page_releaser(mapped: mmap.mmap, records: Sequence[Buffer]) -> Callable[[int], None]:
    """`batched(n)` for a mapped file: the pages of its first n records leave
    the process (they stay in the page cache). A mapped page counts in the
    sender's RSS until then, so without this the load's peak held the file
    and the batches made of it at once: 1.5x the template bytes, where the
    batches alone are 1.15x."""
    # Record i ends at ends[i]: each is its length's varint, then its bytes.
    lengths = np.fromiter((len(r) for r in records), dtype=np.int64, count=len(records))
    varint_bytes = 1 + sum((lengths >= 1 << (7 * k)).astype(np.int64) for k in range(1, 10))
    ends = np.cumsum(lengths + varint_bytes)
    page = mmap.PAGESIZE
    released = 0

    def release(n: int) -> None:
        nonlocal released
        upto = int(ends[n - 1]) // page * page
        if upto > released:
            mapped.madvise(mmap.MADV_DONTNEED, released, upto - released)
            released = upto

    return release


def load_signal(signal: str, path: str | os.PathLike, per_batch: int, max_bytes: int,
                replicas: int | SeriesCopies = 1, write: Callable[[str], None] | None = None) -> SignalTemplates:
    """Read and batch one signal's template file; with `write`, a line now and
    then while a big file loads."""
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if write is not None:
            write(f"Loading {signal} from {path}: {done:,} of {total:,} templates "
                  f"({time.monotonic() - started:.0f} s)")

    records, mapped = _read(Path(path), signal)
    size = sum(len(record) for record in records)
    if write is not None and size >= ANNOUNCE_BYTES:
        write(f"Loading {len(records):,} {signal} templates ({size / 2**20:,.1f} MiB) from {path}")
    if not records:
        raise TemplateFileError(f"{path}: holds no {signal} templates")
    batched = _page_releaser(mapped, records) if mapped is not None and hasattr(mapped, "madvise") else None
    return build_batches(signal, records, per_batch, max_bytes, replicas, str(path), progress, batched)


def describe(loaded: SignalTemplates) -> str:
    """The seed sender's load line, e.g. `Loaded 10000 trace templates (162340 spans)`."""
    if loaded.signal == "traces":
        text = f"Loaded {loaded.templates} trace templates ({loaded.events} spans)"
    elif loaded.signal == "metrics":
        text = f"Loaded {loaded.templates} metric templates ({loaded.events} time series)"
        copies = loaded.copies
        if copies.total > 1:
            text += f", each sent as {copies.count} replicas ({loaded.events_per_pass} series)"
            if copies.count < copies.total:
                last = copies.first + copies.count - 1
                text += f" numbered {copies.first}..{last} of the fleet's {copies.total}"
    else:
        text = f"Loaded {loaded.templates} log templates"
    return f"{text} in {len(loaded.batches)} batches"
